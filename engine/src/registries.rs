//! The registries list of each project (`project_registries`): which
//! registries builds may push to, which two secrets each may receive as
//! credentials, and which extra hosts its token service may be on. Build
//! creation and the runner both check a build's registry against it with
//! [`Store::allowed_registry_for`].

use chrono::{DateTime, Utc};
use slipway_model::id::{self, REGISTRY};
use slipway_model::manifest::Registry;
use slipway_model::registry::{check_allowed, normalize_host, AllowedRegistry, NewAllowedRegistry};
use slipway_model::AppError;

use crate::error::Result;
use crate::store::Store;

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    project_id: String,
    host: String,
    username_secret: Option<String>,
    token_secret: Option<String>,
    auth_hosts: Vec<String>,
    created_at: DateTime<Utc>,
}

impl From<Row> for AllowedRegistry {
    fn from(r: Row) -> Self {
        AllowedRegistry {
            id: r.id,
            project_id: r.project_id,
            host: r.host,
            username_secret: r.username_secret,
            token_secret: r.token_secret,
            auth_hosts: r.auth_hosts,
            created_at: r.created_at,
        }
    }
}

const COLUMNS: &str = "id, project_id, host, username_secret, token_secret, auth_hosts, created_at";

impl Store {
    /// Lists a registry for a project, or replaces its listing (secrets and
    /// auth hosts) when the host is already listed.
    #[tracing::instrument(skip_all, fields(project = %project_id))]
    pub async fn add_registry(&self, project_id: &str, input: &NewAllowedRegistry, created_by: Option<&str>) -> Result<AllowedRegistry> {
        let input = input.normalized()?;
        let row: Row = sqlx::query_as(&format!(
            "INSERT INTO project_registries (id, project_id, host, username_secret, token_secret, auth_hosts, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT ON CONSTRAINT project_registries_host_key DO UPDATE
                 SET username_secret = EXCLUDED.username_secret, token_secret = EXCLUDED.token_secret,
                     auth_hosts = EXCLUDED.auth_hosts
             RETURNING {COLUMNS}"
        ))
        .bind(id::new_id(REGISTRY))
        .bind(project_id)
        .bind(&input.host)
        .bind(&input.username_secret)
        .bind(&input.token_secret)
        .bind(&input.auth_hosts)
        .bind(created_by)
        .fetch_one(self.pool())
        .await?;
        Ok(row.into())
    }

    /// The project's registries list, by host.
    #[tracing::instrument(skip_all, fields(project = %project_id))]
    pub async fn list_registries(&self, project_id: &str) -> Result<Vec<AllowedRegistry>> {
        let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM project_registries WHERE project_id = $1 ORDER BY host"))
            .bind(project_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Takes a host off the project's list; `false` if it was not listed.
    #[tracing::instrument(skip_all, fields(project = %project_id))]
    pub async fn remove_registry(&self, project_id: &str, host: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM project_registries WHERE project_id = $1 AND host = $2")
            .bind(project_id)
            .bind(normalize_host(host))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The listing of `host` in the project, if it is listed.
    #[tracing::instrument(skip_all, fields(project = %project_id))]
    pub async fn find_registry(&self, project_id: &str, host: &str) -> Result<Option<AllowedRegistry>> {
        let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM project_registries WHERE project_id = $1 AND host = $2"))
            .bind(project_id)
            .bind(normalize_host(host))
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(Into::into))
    }

    /// Checks a build's registry against the project's list: `Ok(None)` for
    /// the built-in registry and `none`, `Ok(Some(listing))` for a listed
    /// registry whose named secrets are the listed ones, and an
    /// [`AppError`] naming `field` otherwise.
    pub async fn allowed_registry_for(&self, project_id: &str, project_slug: &str, registry: &Registry, field: &str) -> Result<Option<AllowedRegistry>> {
        let Registry::Byo { host, .. } = registry else { return Ok(None) };
        let listing = self.find_registry(project_id, host).await?;
        check_allowed(registry, listing.as_ref(), project_slug).map_err(|message| AppError::invalid(field, message))?;
        Ok(listing)
    }
}
