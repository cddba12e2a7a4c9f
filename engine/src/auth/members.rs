//! Project memberships and the role a principal has in a project.
//!
//! The caller checks [`Permission::Admin`] on the project before changing
//! memberships; these functions only record and audit the change.
//!
//! [`Permission::Admin`]: slipway_model::auth::Permission::Admin

use chrono::{DateTime, Utc};
use serde_json::json;
use slipway_model::auth::{Member, Principal, Role, User};
use slipway_model::{AppError, ErrorCode, FieldProblem};

use super::access::scoped_role;
use super::audit::{record_audit_in, AuditRecord};
use super::corrupt;
use super::users::{UserRow, USER_COLUMNS};
use crate::error::{Error, Result};
use crate::store::Store;

#[derive(sqlx::FromRow)]
struct MemberRow {
    #[sqlx(flatten)]
    user: UserRow,
    role: String,
    member_since: DateTime<Utc>,
}

fn parse_role(s: &str) -> Result<Role> {
    s.parse().map_err(|_| corrupt(format_args!("role `{s}`")))
}

impl TryFrom<MemberRow> for Member {
    type Error = Error;

    fn try_from(r: MemberRow) -> Result<Self> {
        Ok(Member { role: parse_role(&r.role)?, user: r.user.into(), created_at: r.member_since })
    }
}

fn not_a_member(user: &str) -> Error {
    AppError::not_found(format!("member `{user}` of this project")).into()
}

fn map_member_insert_error(err: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() && db.constraint() == Some("project_members_pkey") {
            let message = "is already a member of this project (change their role instead)";
            return AppError {
                code: ErrorCode::Conflict,
                message: format!("username: {message}"),
                problems: vec![FieldProblem { field: "username".into(), message: message.into() }],
            }
            .into();
        }
        if db.is_foreign_key_violation() && db.constraint() == Some("project_members_project_id_fkey") {
            return AppError::not_found("project").into();
        }
    }
    err.into()
}

impl Store {
    /// Makes `user` (username, ignoring case, or `usr_…` id) a member of the
    /// project with `role`. An unknown user is an invalid `username`; an
    /// existing member is a conflict naming `username`. Audited as
    /// `member.added`.
    #[tracing::instrument(skip_all, fields(project = %project_id, role = %role))]
    pub async fn add_member(&self, project_id: &str, user: &str, role: Role, by: &Principal) -> Result<Member> {
        let mut tx = self.pool().begin().await?;
        let found: User = self
            .resolve_user(&mut tx, user)
            .await?
            .ok_or_else(|| AppError::invalid("username", format!("there is no user `{}`", user.trim())))?;
        let (created_at,): (DateTime<Utc>,) = sqlx::query_as(
            "INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3) RETURNING created_at",
        )
        .bind(project_id)
        .bind(&found.id)
        .bind(role.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_member_insert_error)?;
        record_audit_in(
            &mut tx,
            &AuditRecord {
                actor: Some(by),
                action: "member.added".into(),
                project_id: Some(project_id.to_owned()),
                target_type: Some("user".into()),
                target_id: Some(found.id.clone()),
                detail: json!({"username": found.username, "role": role}),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Member { user: found, role, created_at })
    }

    /// Adds `user` with `role`, or changes their role if they are already a
    /// member: [`Store::add_member`] or [`Store::set_role`], with their audit
    /// events.
    pub async fn set_member(&self, project_id: &str, user: &str, role: Role, by: &Principal) -> Result<Member> {
        match self.add_member(project_id, user, role, by).await {
            Err(Error::App(e)) if e.code == ErrorCode::Conflict => self.set_role(project_id, user, role, by).await,
            other => other,
        }
    }

    /// Changes a member's role (`user`: username or id); "not found" if they
    /// are not a member. Audited as `member.role_changed` with both roles,
    /// unless the role was already `role`.
    #[tracing::instrument(skip_all, fields(project = %project_id, role = %role))]
    pub async fn set_role(&self, project_id: &str, user: &str, role: Role, by: &Principal) -> Result<Member> {
        let mut tx = self.pool().begin().await?;
        let found = self.resolve_user(&mut tx, user).await?.ok_or_else(|| not_a_member(user.trim()))?;
        let old: Option<(String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT role, created_at FROM project_members WHERE project_id = $1 AND user_id = $2 FOR UPDATE",
        )
        .bind(project_id)
        .bind(&found.id)
        .fetch_optional(&mut *tx)
        .await?;
        let (old_role, created_at) = old.ok_or_else(|| not_a_member(user.trim()))?;
        let old_role = parse_role(&old_role)?;
        if old_role != role {
            sqlx::query("UPDATE project_members SET role = $3 WHERE project_id = $1 AND user_id = $2")
                .bind(project_id)
                .bind(&found.id)
                .bind(role.as_str())
                .execute(&mut *tx)
                .await?;
            record_audit_in(
                &mut tx,
                &AuditRecord {
                    actor: Some(by),
                    action: "member.role_changed".into(),
                    project_id: Some(project_id.to_owned()),
                    target_type: Some("user".into()),
                    target_id: Some(found.id.clone()),
                    detail: json!({"username": found.username, "from": old_role, "to": role}),
                    ..Default::default()
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Member { user: found, role, created_at })
    }

    /// Removes a member (`user`: username or id); "not found" if they are not
    /// one. Their project-scoped tokens stay but no longer grant anything.
    /// Audited as `member.removed`.
    #[tracing::instrument(skip_all, fields(project = %project_id))]
    pub async fn remove_member(&self, project_id: &str, user: &str, by: &Principal) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let found = self.resolve_user(&mut tx, user).await?.ok_or_else(|| not_a_member(user.trim()))?;
        let removed: Option<(String,)> =
            sqlx::query_as("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2 RETURNING role")
                .bind(project_id)
                .bind(&found.id)
                .fetch_optional(&mut *tx)
                .await?;
        let (role,) = removed.ok_or_else(|| not_a_member(user.trim()))?;
        record_audit_in(
            &mut tx,
            &AuditRecord {
                actor: Some(by),
                action: "member.removed".into(),
                project_id: Some(project_id.to_owned()),
                target_type: Some("user".into()),
                target_id: Some(found.id.clone()),
                detail: json!({"username": found.username, "role": role}),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The members of a project, by username.
    #[tracing::instrument(skip_all, fields(project = %project_id))]
    pub async fn list_members(&self, project_id: &str) -> Result<Vec<Member>> {
        let rows: Vec<MemberRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS}, m.role, m.created_at AS member_since
             FROM project_members m JOIN users u ON u.id = m.user_id
             WHERE m.project_id = $1 ORDER BY lower(u.username)"
        ))
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Member::try_from).collect()
    }

    /// The role of a user in a project: `Admin` for an enabled global admin
    /// (in every project), the membership's role, or `None`. Ignores token
    /// scope; for a request use [`Store::project_role`].
    #[tracing::instrument(skip_all, fields(project = %project_id, user = %user_id))]
    pub async fn role_in(&self, project_id: &str, user_id: &str) -> Result<Option<Role>> {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT CASE WHEN u.is_admin THEN 'admin' ELSE m.role END
             FROM users u LEFT JOIN project_members m ON m.user_id = u.id AND m.project_id = $1
             WHERE u.id = $2 AND u.disabled_at IS NULL",
        )
        .bind(project_id)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        row.and_then(|(r,)| r).map(|r| parse_role(&r)).transpose()
    }

    /// The role a request's principal has in a project: [`Store::role_in`]
    /// narrowed by token scope (a token scoped to another project has none).
    /// Feed it to [`crate::auth::access`].
    pub async fn project_role(&self, principal: &Principal, project_id: &str) -> Result<Option<Role>> {
        if !principal.may_touch_project(project_id) {
            return Ok(None);
        }
        let role = self.role_in(project_id, &principal.user.id).await?;
        Ok(scoped_role(principal, project_id, role))
    }

    /// The projects a principal may see: `None` means all of them (a global
    /// admin not using a project-scoped token); otherwise the ids, sorted.
    #[tracing::instrument(skip_all, fields(user = %principal.user.id))]
    pub async fn visible_project_ids(&self, principal: &Principal) -> Result<Option<Vec<String>>> {
        if principal.is_global_admin() {
            return Ok(None);
        }
        let ids: Vec<(String,)> = match &principal.token_project {
            Some(scope) if principal.user.is_admin => {
                sqlx::query_as("SELECT id FROM projects WHERE id = $1").bind(scope).fetch_all(self.pool()).await?
            }
            Some(scope) => {
                sqlx::query_as("SELECT project_id FROM project_members WHERE user_id = $1 AND project_id = $2")
                    .bind(&principal.user.id)
                    .bind(scope)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query_as("SELECT project_id FROM project_members WHERE user_id = $1 ORDER BY project_id")
                    .bind(&principal.user.id)
                    .fetch_all(self.pool())
                    .await?
            }
        };
        Ok(Some(ids.into_iter().map(|(id,)| id).collect()))
    }
}
