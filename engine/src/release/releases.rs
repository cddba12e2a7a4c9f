//! Releases: created from a completed build of the same project, immutable,
//! tags unique per project.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use slipway_model::build::BuildSpec;
use slipway_model::id::{self, RELEASE};
use slipway_model::project::Project;
use slipway_model::release::{ImageDigests, NewRelease, Release, ReleaseCursor, ReleaseListQuery, ReleasePage};
use slipway_model::status::BuildRunStatus;
use slipway_model::{AppError, ErrorCode, FieldProblem};

use super::{decode_digests, internal};
use crate::error::{Error, Result};
use crate::Store;

#[derive(sqlx::FromRow)]
pub(super) struct ReleaseRow {
    id: String,
    project_id: String,
    build_id: String,
    git_sha: String,
    manifest_hash: String,
    image_digests: serde_json::Value,
    version: Option<String>,
    tag: Option<String>,
    notes: Option<String>,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
}

pub(super) const RELEASE_COLUMNS: &str =
    "r.id, r.project_id, r.build_id, r.git_sha, r.manifest_hash, r.image_digests, r.version, r.tag, r.notes, r.created_by, r.created_at";

impl ReleaseRow {
    pub(super) fn into_release(self, deployed_to: Vec<String>) -> Result<Release> {
        Ok(Release {
            image_digests: decode_digests(&self.id, self.image_digests)?,
            id: self.id,
            project_id: self.project_id,
            build_id: self.build_id,
            git_sha: self.git_sha,
            manifest_hash: self.manifest_hash,
            version: self.version,
            tag: self.tag,
            notes: self.notes,
            created_by: self.created_by,
            created_at: self.created_at,
            deployed_to,
        })
    }
}

/// Release id → names of the environments whose current deployment runs it,
/// in promotion order. One query: an index lookup per environment.
pub(super) async fn deployed_to_map(store: &Store, project_id: &str) -> Result<HashMap<String, Vec<String>>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT cur.release_id, e.name FROM environments e
         CROSS JOIN LATERAL (
             SELECT d.release_id FROM deployments d
             WHERE d.environment_id = e.id AND d.status = 'succeeded'
             ORDER BY d.completed_at DESC, d.id DESC LIMIT 1) cur
         WHERE e.project_id = $1 AND cur.release_id IS NOT NULL
         ORDER BY e.position",
    )
    .bind(project_id)
    .fetch_all(store.pool())
    .await?;
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (release, env) in rows {
        map.entry(release).or_default().push(env);
    }
    Ok(map)
}

async fn with_deployed_to(store: &Store, row: ReleaseRow) -> Result<Release> {
    let mut map = deployed_to_map(store, &row.project_id).await?;
    let envs = map.remove(&row.id).unwrap_or_default();
    row.into_release(envs)
}

/// Creates a release of a build: the build must belong to the project and
/// have a completed run with at least one artifact; the digests are those of
/// its newest completed run. The tag defaults to the version, else `r<N>`; a
/// tag already used in the project is a conflict naming `tag`.
#[tracing::instrument(skip_all, fields(project = %input.project, build = %input.build))]
pub async fn create_release(store: &Store, input: &NewRelease, created_by: Option<&str>) -> Result<Release> {
    let input = input.normalized()?;
    let project = store.get_project(&input.project).await?;
    let spec = match store.get_build_spec(&input.build).await {
        Ok(s) => s,
        Err(Error::App(e)) if e.code == ErrorCode::NotFound => {
            return Err(AppError::invalid("build", format!("build `{}` does not exist", input.build)).into())
        }
        Err(e) => return Err(e),
    };
    if spec.project_id != project.id {
        return Err(AppError::invalid(
            "build",
            format!("build {} belongs to project {}, not to {}", spec.id, spec.project_slug, project.slug),
        )
        .into());
    }
    let digests = releasable_digests(store, &spec).await?;
    let tag_given = input.tag.clone().or_else(|| input.version.clone());
    insert_release(store, &project, &spec, &digests, tag_given, input.version, input.notes, created_by).await
}

/// The digests of the newest completed run of a build, or why it cannot be released.
async fn releasable_digests(store: &Store, spec: &BuildSpec) -> Result<ImageDigests> {
    let runs = store.list_runs(&spec.id).await?;
    let Some(run) = runs.iter().find(|r| r.status == BuildRunStatus::Completed) else {
        let why = match runs.first() {
            None => "it has never run".to_string(),
            Some(r) => match &r.error_message {
                Some(m) => format!("its latest run {} is {}: {m}", r.id, r.status),
                None => format!("its latest run {} is {}", r.id, r.status),
            },
        };
        return Err(AppError::invalid(
            "build",
            format!("build {} has no completed run ({why}); only a completed build can be released", spec.id),
        )
        .into());
    };
    let artifacts = store.run_artifacts(&run.id).await?;
    if artifacts.is_empty() {
        return Err(AppError::invalid(
            "build",
            format!("build {} (run {}) completed without artifacts; there is nothing to release", spec.id, run.id),
        )
        .into());
    }
    Ok(artifacts.into_iter().map(|a| (a.service_name, a.digest)).collect())
}

/// Inserts a release; with no tag, picks the next free `r<N>`.
#[allow(clippy::too_many_arguments)]
async fn insert_release(
    store: &Store,
    project: &Project,
    spec: &BuildSpec,
    digests: &ImageDigests,
    tag: Option<String>,
    version: Option<String>,
    notes: Option<String>,
    created_by: Option<&str>,
) -> Result<Release> {
    let digests_json = serde_json::to_value(digests).map_err(internal)?;
    for _attempt in 0..10 {
        let (tag, defaulted) = match &tag {
            Some(t) => (t.clone(), false),
            None => {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT coalesce(max(substring(tag FROM '^r([0-9]{1,18})$')::bigint), 0) + 1
                     FROM releases WHERE project_id = $1",
                )
                .bind(&project.id)
                .fetch_one(store.pool())
                .await?;
                (format!("r{n}"), true)
            }
        };
        let inserted: std::result::Result<ReleaseRow, sqlx::Error> = sqlx::query_as(&format!(
            "INSERT INTO releases AS r (id, project_id, build_id, git_sha, manifest_hash, image_digests, version, tag, notes, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             RETURNING {RELEASE_COLUMNS}"
        ))
        .bind(id::new_id(RELEASE))
        .bind(&project.id)
        .bind(&spec.id)
        .bind(&spec.git_sha)
        .bind(&spec.manifest_hash)
        .bind(&digests_json)
        .bind(&version)
        .bind(&tag)
        .bind(&notes)
        .bind(created_by)
        .fetch_one(store.pool())
        .await;
        match inserted {
            Ok(row) => {
                tracing::info!(release = %row.id, tag = %tag, "release created");
                return row.into_release(Vec::new());
            }
            Err(sqlx::Error::Database(db)) if db.constraint() == Some("releases_project_tag_key") => {
                if defaulted {
                    continue; // another release took this number meanwhile
                }
                let existing: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM releases WHERE project_id = $1 AND tag = $2")
                        .bind(&project.id)
                        .bind(&tag)
                        .fetch_optional(store.pool())
                        .await?;
                let message = format!(
                    "release tag `{tag}` already exists in project {}{}; tags are immutable, choose another",
                    project.slug,
                    existing.map(|(id,)| format!(" ({id})")).unwrap_or_default()
                );
                return Err(AppError {
                    code: ErrorCode::Conflict,
                    message: format!("tag: {message}"),
                    problems: vec![FieldProblem { field: "tag".into(), message }],
                }
                .into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::conflict("tag: could not find a free release number; try again").into())
}

/// A release of a project by tag or by id (`rel_…`).
#[tracing::instrument(skip_all, fields(project = %project, release = %tag_or_id))]
pub async fn resolve_release(store: &Store, project: &str, tag_or_id: &str) -> Result<Release> {
    let project = store.get_project(project).await?;
    let key = tag_or_id.trim();
    let row: Option<ReleaseRow> = sqlx::query_as(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases r WHERE r.project_id = $1 AND (r.id = $2 OR r.tag = $2)
         ORDER BY (r.id = $2) DESC LIMIT 1"
    ))
    .bind(&project.id)
    .bind(key)
    .fetch_optional(store.pool())
    .await?;
    match row {
        Some(row) => with_deployed_to(store, row).await,
        None => Err(AppError::not_found(format!("release `{key}` in project {}", project.slug)).into()),
    }
}

/// A release by id.
pub async fn get_release(store: &Store, release_id: &str) -> Result<Release> {
    let row: Option<ReleaseRow> = sqlx::query_as(&format!("SELECT {RELEASE_COLUMNS} FROM releases r WHERE r.id = $1"))
        .bind(release_id)
        .fetch_optional(store.pool())
        .await?;
    match row {
        Some(row) => with_deployed_to(store, row).await,
        None => Err(AppError::not_found(format!("release `{release_id}`")).into()),
    }
}

/// Releases of a project, newest first, by keyset pages, each with the
/// environments it currently runs in.
#[tracing::instrument(skip_all, fields(project = %project))]
pub async fn list_releases(store: &Store, project: &str, q: &ReleaseListQuery) -> Result<ReleasePage> {
    let project = store.get_project(project).await?;
    let limit = i64::from(q.limit.unwrap_or(50).clamp(1, 200));
    let rows: Vec<ReleaseRow> = sqlx::query_as(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases r
         WHERE r.project_id = $1 AND ($2::timestamptz IS NULL OR (r.created_at, r.id) < ($2, $3))
         ORDER BY r.created_at DESC, r.id DESC LIMIT $4"
    ))
    .bind(&project.id)
    .bind(q.before.as_ref().map(|c| c.created_at))
    .bind(q.before.as_ref().map(|c| c.id.clone()))
    .bind(limit + 1)
    .fetch_all(store.pool())
    .await?;
    let mut map = deployed_to_map(store, &project.id).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let envs = map.remove(&row.id).unwrap_or_default();
        items.push(row.into_release(envs)?);
    }
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|r| ReleaseCursor { created_at: r.created_at, id: r.id.clone() })
    } else {
        None
    };
    Ok(ReleasePage { items, next })
}

/// Convox's "every build creates a release": when the build's project has
/// `auto_release` set and its newest completed run has artifacts not
/// released yet, creates a release of them (tag `r<N>`, created by the
/// build's creator). Returns it, or `None` when there was nothing to do.
#[tracing::instrument(skip_all, fields(build = %build_id))]
pub async fn maybe_auto_release(store: &Store, build_id: &str) -> Result<Option<Release>> {
    let spec = store.get_build_spec(build_id).await?;
    let project = store.get_project(&spec.project_id).await?;
    if !project.auto_release {
        return Ok(None);
    }
    let artifacts = store.build_artifacts(build_id).await?;
    if artifacts.is_empty() {
        return Ok(None);
    }
    let digests: ImageDigests = artifacts.iter().map(|a| (a.service_name.clone(), a.digest.clone())).collect();
    let digests_json = serde_json::to_value(&digests).map_err(internal)?;
    let (exists,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM releases WHERE build_id = $1 AND image_digests = $2)")
            .bind(build_id)
            .bind(&digests_json)
            .fetch_one(store.pool())
            .await?;
    if exists {
        return Ok(None);
    }
    let notes = Some(format!("automatic release of build {build_id} (run {})", artifacts[0].run_id));
    let release = insert_release(store, &project, &spec, &digests, None, None, notes, spec.created_by.as_deref()).await?;
    Ok(Some(release))
}
