//! The audit trail: an append-only table of who did what, when and from where.
//!
//! **The detail must never contain secrets**: no password, session cookie,
//! API token, setup link or secret value. Record names and ids instead
//! (`{"name": "REGISTRY_PASSWORD"}`, never the value). As a second line of
//! defence, [`record_audit_in`] replaces the values of keys that name a
//! secret (`password`, `token`, `secret`, `value`, `cookie`, …) with
//! `"[redacted]"` at any depth.
//!
//! The table's triggers refuse UPDATE, DELETE and TRUNCATE.

use chrono::{DateTime, Utc};
use slipway_model::auth::{AuditCursor, AuditEvent, AuditPage, AuditQuery, Principal, Role};
use slipway_model::id::{self, AUDIT, PROJECT};
use slipway_model::AppError;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::error::{Error, Result};
use crate::store::Store;

/// `actor_label` of events with no acting user (start-up, background work).
pub const SYSTEM_LABEL: &str = "system";

/// `actor_label` of events caused by a caller nobody is logged in as (failed logins).
pub const ANONYMOUS_LABEL: &str = "anonymous";

/// Default and largest page sizes of [`Store::list_audit`].
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// Keys whose values are replaced by `"[redacted]"` in a detail, compared
/// case-insensitively; keys ending in `_password`, `_secret` or `_token` too.
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "raw_token",
    "value",
    "cookie",
    "authorization",
    "api_key",
];

/// One event to record. Build it with struct-update syntax:
///
/// ```ignore
/// store.record_audit(AuditRecord {
///     actor: Some(&principal),
///     action: "build.created".into(),
///     project_id: Some(project.id.clone()),
///     target_type: Some("build".into()),
///     target_id: Some(build.id.clone()),
///     detail: json!({"git_sha": sha}),
///     ..Default::default()
/// }).await?;
/// ```
#[derive(Debug, Clone, Default)]
pub struct AuditRecord<'a> {
    /// The acting principal; `None` for the system or an anonymous caller.
    pub actor: Option<&'a Principal>,
    /// Who, as text; empty: the actor's username, or [`SYSTEM_LABEL`].
    pub actor_label: String,
    /// Dotted verb matching `^[a-z][a-z0-9_.-]{0,99}$`, e.g. `member.added`.
    pub action: String,
    /// The project the event belongs to (`prj_…`), if any.
    pub project_id: Option<String>,
    /// Kind of the thing acted on, e.g. `user`, `token`, `build`.
    pub target_type: Option<String>,
    /// Id of the thing acted on.
    pub target_id: Option<String>,
    /// Extra facts as a JSON object (`null` means `{}`). **Never secrets.**
    pub detail: serde_json::Value,
    /// The client's address; `None`: the actor's `client.ip`.
    pub ip: Option<String>,
    /// The client's user agent; `None`: the actor's `client.user_agent`.
    pub user_agent: Option<String>,
}

/// Whether `action` is a valid action name.
fn valid_action(action: &str) -> bool {
    let mut bytes = action.bytes();
    action.len() <= 100
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&k.as_str())
        || k.ends_with("_password")
        || k.ends_with("_secret")
        || k.ends_with("_token")
        || k.ends_with("_value")
}

/// Replaces the values of secret-looking keys, at any depth.
fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret_key(k) {
                    *v = serde_json::Value::String("[redacted]".into());
                } else {
                    redact(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// Appends one event using `conn`, so it can be part of the transaction that
/// made the change (pass `&mut *tx`). Returns the event's id.
#[tracing::instrument(skip_all, fields(action = %rec.action))]
pub async fn record_audit_in(conn: &mut PgConnection, rec: &AuditRecord<'_>) -> Result<String> {
    if !valid_action(&rec.action) {
        return Err(AppError::invalid("action", "must match ^[a-z][a-z0-9_.-]{0,99}$").into());
    }
    let mut detail = match &rec.detail {
        serde_json::Value::Null => serde_json::json!({}),
        serde_json::Value::Object(_) => rec.detail.clone(),
        _ => return Err(AppError::invalid("detail", "must be a JSON object").into()),
    };
    redact(&mut detail);
    let label = Some(rec.actor_label.trim())
        .filter(|l| !l.is_empty())
        .or_else(|| rec.actor.map(|p| p.user.username.as_str()))
        .unwrap_or(SYSTEM_LABEL);
    let ip = rec.ip.as_deref().or_else(|| rec.actor.and_then(|p| p.client.ip.as_deref()));
    let user_agent = rec.user_agent.as_deref().or_else(|| rec.actor.and_then(|p| p.client.user_agent.as_deref()));
    let id = id::new_id(AUDIT);
    sqlx::query(
        "INSERT INTO audit_events
             (id, actor_user_id, actor_token_id, actor_label, action, project_id, target_type, target_id,
              detail, ip, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(rec.actor.map(|p| p.user.id.as_str()))
    .bind(rec.actor.and_then(|p| p.token_id.as_deref()))
    .bind(label)
    .bind(&rec.action)
    .bind(&rec.project_id)
    .bind(&rec.target_type)
    .bind(&rec.target_id)
    .bind(&detail)
    .bind(ip)
    .bind(user_agent)
    .execute(conn)
    .await?;
    Ok(id)
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: String,
    at: DateTime<Utc>,
    actor_user_id: Option<String>,
    actor_token_id: Option<String>,
    actor_label: String,
    action: String,
    project_id: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    detail: serde_json::Value,
    ip: Option<String>,
    user_agent: Option<String>,
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        AuditEvent {
            id: r.id,
            at: r.at,
            actor_user_id: r.actor_user_id,
            actor_token_id: r.actor_token_id,
            actor_label: r.actor_label,
            action: r.action,
            project_id: r.project_id,
            target_type: r.target_type,
            target_id: r.target_id,
            detail: r.detail,
            ip: r.ip,
            user_agent: r.user_agent,
        }
    }
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

impl Store {
    /// Appends one event to the audit trail (in its own statement; use
    /// [`record_audit_in`] inside a transaction). Returns the event's id.
    pub async fn record_audit(&self, rec: AuditRecord<'_>) -> Result<String> {
        let mut conn = self.pool().acquire().await?;
        record_audit_in(&mut conn, &rec).await
    }

    /// A page of the audit trail, newest first, filtered by `q` (see
    /// [`AuditQuery`]). Pages are keyset-paginated on `(at, id)`: pass the
    /// returned `next` as `before` for the following page.
    #[tracing::instrument(skip_all)]
    pub async fn list_audit(&self, q: &AuditQuery) -> Result<AuditPage> {
        self.list_audit_within(q, None).await
    }

    /// [`Store::list_audit`] as `principal` may see it: a global admin sees
    /// everything; anyone else only the events of the projects they are an
    /// admin of (an empty page if none). Asking for another project is "not
    /// found", like a project that does not exist.
    #[tracing::instrument(skip_all, fields(user = %principal.user.id))]
    pub async fn list_audit_for(&self, principal: &Principal, q: &AuditQuery) -> Result<AuditPage> {
        if principal.is_global_admin() {
            return self.list_audit_within(q, None).await;
        }
        let administered: Vec<String> = match &principal.token_project {
            Some(scope) => match self.role_in(scope, &principal.user.id).await? {
                Some(Role::Admin) => vec![scope.clone()],
                _ => Vec::new(),
            },
            None => sqlx::query_as::<_, (String,)>(
                "SELECT project_id FROM project_members WHERE user_id = $1 AND role = 'admin'",
            )
            .bind(&principal.user.id)
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .map(|(id,)| id)
            .collect(),
        };
        if let Some(project) = q.project.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            let hidden = || Error::from(AppError::not_found(format!("project `{project}`")));
            let id = if id::parse_expect(PROJECT, project).is_ok() {
                project.to_owned()
            } else {
                self.get_project(project).await.map_err(|_| hidden())?.id
            };
            if !administered.contains(&id) {
                return Err(hidden());
            }
        }
        if administered.is_empty() {
            return Ok(AuditPage { events: Vec::new(), next: None });
        }
        self.list_audit_within(q, Some(&administered)).await
    }

    /// [`Store::list_audit`], limited to events of `projects` when given.
    async fn list_audit_within(&self, q: &AuditQuery, projects: Option<&[String]>) -> Result<AuditPage> {
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AppError::invalid("limit", format!("must be between 1 and {MAX_LIMIT}")).into());
        }
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT id, at, actor_user_id, actor_token_id, actor_label, action, project_id, target_type,
                    target_id, detail, ip, user_agent
             FROM audit_events WHERE true",
        );
        if let Some(actor) = q.actor.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            if actor.starts_with("usr_") {
                qb.push(" AND actor_user_id = ").push_bind(actor.to_owned());
            } else {
                qb.push(" AND lower(actor_label) = lower(").push_bind(actor.to_owned()).push(")");
            }
        }
        if let Some(action) = q.action.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            if !valid_action(action) {
                return Err(AppError::invalid(
                    "action",
                    "must be an action like `login.failed` or a family like `login`",
                )
                .into());
            }
            if action.contains('.') {
                qb.push(" AND action = ").push_bind(action.to_owned());
            } else {
                qb.push(" AND (action = ")
                    .push_bind(action.to_owned())
                    .push(" OR action LIKE ")
                    .push_bind(format!("{}.%", like_escape(action)))
                    .push(")");
            }
        }
        if let Some(project) = q.project.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            // Events outlive their project, so an id is taken as it is.
            let project_id = if id::parse_expect(PROJECT, project).is_ok() {
                project.to_owned()
            } else {
                self.get_project(project).await?.id
            };
            qb.push(" AND project_id = ").push_bind(project_id);
        }
        if let Some(projects) = projects {
            qb.push(" AND project_id = ANY(").push_bind(projects.to_vec()).push(")");
        }
        if let Some(since) = q.since {
            qb.push(" AND at >= ").push_bind(since);
        }
        if let Some(until) = q.until {
            qb.push(" AND at < ").push_bind(until);
        }
        if let Some(cursor) = &q.before {
            qb.push(" AND (at, id) < (")
                .push_bind(cursor.at)
                .push(", ")
                .push_bind(cursor.id.clone())
                .push(")");
        }
        qb.push(" ORDER BY at DESC, id DESC LIMIT ").push_bind(i64::from(limit) + 1);
        let mut rows: Vec<AuditRow> = qb.build_query_as().fetch_all(self.pool()).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(|r| AuditCursor { at: r.at, id: r.id.clone() }) } else { None };
        Ok(AuditPage { events: rows.into_iter().map(Into::into).collect(), next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_redacted_at_any_depth() {
        let mut v = serde_json::json!({
            "username": "alice",
            "password": "hunter2",
            "nested": [{"new_password": "x", "token_id": "tok_1", "Secret": "s"}],
        });
        redact(&mut v);
        assert_eq!(v["username"], "alice");
        assert_eq!(v["password"], "[redacted]");
        assert_eq!(v["nested"][0]["new_password"], "[redacted]");
        assert_eq!(v["nested"][0]["Secret"], "[redacted]");
        assert_eq!(v["nested"][0]["token_id"], "tok_1");
    }

    #[test]
    fn actions_follow_the_table_pattern() {
        assert!(valid_action("login.failed"));
        assert!(valid_action("member.role_changed"));
        assert!(!valid_action("Login"));
        assert!(!valid_action(""));
        assert!(!valid_action("a b"));
    }
}
