//! API tokens for scripts and the CLI: `slp_` and 43 base64url characters,
//! sent as `Authorization: Bearer`, stored only as SHA-256.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use slipway_model::auth::{CreatedToken, NewToken, Principal, TokenInfo, MAX_TOKEN_DAYS, MAX_TOKEN_NAME_CHARS, TOKEN_PREFIX};
use slipway_model::id::{self, TOKEN};
use slipway_model::{AppError, FieldProblem};

use super::audit::{record_audit_in, AuditRecord};
use super::users::{UserRow, USER_COLUMNS};
use super::{is_secret_shaped, random_secret, token_hash};
use crate::error::Result;
use crate::store::Store;

/// How often `last_used_at` is written at most, in seconds.
const TOUCH_INTERVAL_SECONDS: i64 = 60;

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    project_id: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<TokenRow> for TokenInfo {
    fn from(r: TokenRow) -> Self {
        TokenInfo {
            id: r.id,
            name: r.name,
            project_id: r.project_id,
            expires_at: r.expires_at,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct PrincipalRow {
    #[sqlx(flatten)]
    user: UserRow,
    token_id: String,
    token_project: Option<String>,
    stale: bool,
}

const TOKEN_COLUMNS: &str = "t.id, t.name, t.project_id, t.expires_at, t.created_at, t.last_used_at, t.revoked_at";

/// Whether `raw` has the shape of an API token (cheap rejection before hashing).
pub fn looks_like_api_token(raw: &str) -> bool {
    raw.strip_prefix(TOKEN_PREFIX).is_some_and(is_secret_shaped)
}

impl Store {
    /// Creates an API token for the acting user and returns its value (shown
    /// once) with its metadata.
    ///
    /// * `name`: 1–100 characters. `expires_in_days`: 1–3650, or never.
    /// * `project` (id or slug) limits the token to that project; the user
    ///   must be a member of it (or a global admin), otherwise it is "not
    ///   found", like a project that does not exist. A token made with a
    ///   project-scoped token is scoped to that same project.
    ///
    /// Audited as `token.created` (name, scope, expiry; never the value).
    #[tracing::instrument(skip_all, fields(user = %by.user.id))]
    pub async fn create_token(&self, by: &Principal, new: &NewToken) -> Result<CreatedToken> {
        let mut problems = Vec::new();
        let name = new.name.trim();
        if name.is_empty() {
            problems.push(FieldProblem { field: "name".into(), message: "is required".into() });
        } else if name.chars().count() > MAX_TOKEN_NAME_CHARS {
            problems.push(FieldProblem {
                field: "name".into(),
                message: format!("must be at most {MAX_TOKEN_NAME_CHARS} characters"),
            });
        }
        if let Some(days) = new.expires_in_days {
            if !(1..=MAX_TOKEN_DAYS).contains(&days) {
                problems.push(FieldProblem {
                    field: "expires_in_days".into(),
                    message: format!("must be between 1 and {MAX_TOKEN_DAYS}"),
                });
            }
        }
        if !problems.is_empty() {
            return Err(AppError::invalid_fields(problems).into());
        }
        let requested = new.project.as_deref().map(str::trim).filter(|p| !p.is_empty());
        let project_id = match (requested, by.token_project.as_deref()) {
            (None, scope) => scope.map(str::to_owned),
            (Some(key), scope) => {
                let project = self.get_project(key).await?;
                let allowed = scope.is_none_or(|s| s == project.id)
                    && (by.user.is_admin || self.role_in(&project.id, &by.user.id).await?.is_some());
                if !allowed {
                    return Err(AppError::not_found(format!("project `{key}`")).into());
                }
                Some(project.id)
            }
        };
        let raw = format!("{TOKEN_PREFIX}{}", random_secret());
        let expires = new.expires_in_days.map(|d| Duration::days(i64::from(d)));
        let mut tx = self.pool().begin().await?;
        let row: TokenRow = sqlx::query_as(&format!(
            "INSERT INTO api_tokens AS t (id, user_id, name, token_hash, project_id, expires_at)
             VALUES ($1, $2, $3, $4, $5, now() + $6)
             RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(id::new_id(TOKEN))
        .bind(&by.user.id)
        .bind(name)
        .bind(token_hash(&raw))
        .bind(&project_id)
        .bind(expires)
        .fetch_one(&mut *tx)
        .await?;
        record_audit_in(
            &mut tx,
            &AuditRecord {
                actor: Some(by),
                action: "token.created".into(),
                project_id: row.project_id.clone(),
                target_type: Some("token".into()),
                target_id: Some(row.id.clone()),
                detail: json!({"name": row.name, "expires_at": row.expires_at, "owner": by.user.username}),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(CreatedToken { token: raw, info: row.into() })
    }

    /// The principal of a bearer token: `None` when it is unknown, revoked,
    /// expired, or its user is disabled — checked on every request, so a
    /// revocation takes effect at once. Writes `last_used_at` at most once a
    /// minute. Attach the request's origin with [`Principal::with_client`].
    #[tracing::instrument(skip_all)]
    pub async fn token_principal(&self, raw_token: &str) -> Result<Option<Principal>> {
        if !looks_like_api_token(raw_token) {
            return Ok(None);
        }
        let row: Option<PrincipalRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS}, t.id AS token_id, t.project_id AS token_project,
                    (t.last_used_at IS NULL OR t.last_used_at < now() - make_interval(secs => $2)) AS stale
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL
               AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.disabled_at IS NULL"
        ))
        .bind(token_hash(raw_token))
        .bind(TOUCH_INTERVAL_SECONDS as f64)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        if row.stale {
            sqlx::query("UPDATE api_tokens SET last_used_at = now() WHERE id = $1")
                .bind(&row.token_id)
                .execute(self.pool())
                .await?;
        }
        Ok(Some(Principal {
            user: row.user.into(),
            token_id: Some(row.token_id),
            token_project: row.token_project,
            client: Default::default(),
        }))
    }

    /// Every token of a user, newest first, revoked and expired ones included.
    #[tracing::instrument(skip_all, fields(user = %user_id))]
    pub async fn list_tokens(&self, user_id: &str) -> Result<Vec<TokenInfo>> {
        let rows: Vec<TokenRow> = sqlx::query_as(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.user_id = $1 ORDER BY t.created_at DESC, t.id DESC"
        ))
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Revokes a token of the acting user; a global admin (not through a
    /// project-scoped token) may revoke anyone's. Someone else's token is
    /// "not found". Revoking a revoked token changes nothing and records
    /// nothing. Audited as `token.revoked`.
    #[tracing::instrument(skip_all, fields(user = %by.user.id, token = %token_id))]
    pub async fn revoke_token(&self, by: &Principal, token_id: &str) -> Result<TokenInfo> {
        let mut tx = self.pool().begin().await?;
        let found: Option<(String, Option<DateTime<Utc>>)> =
            sqlx::query_as("SELECT user_id, revoked_at FROM api_tokens WHERE id = $1 FOR UPDATE")
                .bind(token_id)
                .fetch_optional(&mut *tx)
                .await?;
        let (owner, already) = match found {
            Some((owner, revoked_at)) if owner == by.user.id || by.is_global_admin() => (owner, revoked_at.is_some()),
            _ => return Err(AppError::not_found(format!("token `{token_id}`")).into()),
        };
        let row: TokenRow = sqlx::query_as(&format!(
            "UPDATE api_tokens t SET revoked_at = COALESCE(t.revoked_at, now()) WHERE t.id = $1
             RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(token_id)
        .fetch_one(&mut *tx)
        .await?;
        if already {
            tx.commit().await?;
            return Ok(row.into());
        }
        record_audit_in(
            &mut tx,
            &AuditRecord {
                actor: Some(by),
                action: "token.revoked".into(),
                project_id: row.project_id.clone(),
                target_type: Some("token".into()),
                target_id: Some(row.id.clone()),
                detail: json!({"name": row.name, "owner_user_id": owner}),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(row.into())
    }
}
