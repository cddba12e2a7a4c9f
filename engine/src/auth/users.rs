//! Users, passwords and the first-admin setup link.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use slipway_model::auth::{check_password, ClientInfo, NewUser, Principal, User};
use slipway_model::id::{self, USER};
use slipway_model::{AppError, ErrorCode, FieldProblem};
use sqlx::PgConnection;

use super::audit::{record_audit_in, AuditRecord};
use super::{password, random_secret, token_hash};
use crate::error::{Error, Result};
use crate::store::Store;

/// How long a setup link stays valid.
pub const SETUP_TOKEN_TTL_HOURS: i64 = 24;

/// The `login_attempts.username` under which refused setups are counted (no
/// username can be spelled like this, so it never meets a real account's count).
const SETUP_ATTEMPT_KEY: &str = "(setup)";

/// Advisory-lock key that serialises first-admin setup across processes.
const SETUP_LOCK_KEY: i64 = 0x534c_5057_5345_5455; // "SLPWSETU"

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User { id: r.id, username: r.username, display_name: r.display_name, is_admin: r.is_admin, created_at: r.created_at }
    }
}

/// The user columns, for tables aliased `u`.
pub(crate) const USER_COLUMNS: &str = "u.id, u.username, u.display_name, u.is_admin, u.created_at";

/// The conflict a duplicate username gives, naming the field.
fn username_taken() -> AppError {
    let message = "a user with this name already exists (names are compared ignoring case)";
    AppError {
        code: ErrorCode::Conflict,
        message: format!("username: {message}"),
        problems: vec![FieldProblem { field: "username".into(), message: message.into() }],
    }
}

fn map_user_insert_error(err: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() && db.constraint() == Some("users_username_lower_key") {
            return username_taken().into();
        }
    }
    err.into()
}

/// A principal for a user acting through the dashboard without a token
/// (used for audit records of actions the user just authenticated for).
pub(crate) fn principal_of(user: User, client: &ClientInfo) -> Principal {
    Principal { user, token_id: None, token_project: None, client: client.clone() }
}

/// Inserts a validated user with an already computed hash.
async fn insert_user(conn: &mut PgConnection, new: &NewUser, hash: &str) -> Result<User> {
    let row: UserRow = sqlx::query_as(&format!(
        "INSERT INTO users AS u (id, username, display_name, password_hash, is_admin)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING {USER_COLUMNS}"
    ))
    .bind(id::new_id(USER))
    .bind(&new.username)
    .bind(&new.display_name)
    .bind(hash)
    .bind(new.is_admin)
    .fetch_one(conn)
    .await
    .map_err(map_user_insert_error)?;
    Ok(row.into())
}

impl Store {
    /// Creates a user after checking every field (errors name them:
    /// `username`, `display_name`, `password`); a duplicate username, ignoring
    /// case, is a conflict naming `username`. The caller checks that the
    /// actor may, and records the `user.created` audit event.
    #[tracing::instrument(skip_all, fields(username = %username))]
    pub async fn create_user(
        &self,
        username: &str,
        display_name: Option<&str>,
        password: &str,
        is_admin: bool,
    ) -> Result<User> {
        let new = NewUser {
            username: username.into(),
            display_name: display_name.map(str::to_owned),
            password: password.into(),
            is_admin,
        }
        .normalized()?;
        let hash = password::hash_password(&new.password).await?;
        let mut conn = self.pool().acquire().await?;
        insert_user(&mut conn, &new, &hash).await
    }

    /// One user by id (`usr_…`); disabled users too.
    #[tracing::instrument(skip_all, fields(user = %user_id))]
    pub async fn get_user(&self, user_id: &str) -> Result<User> {
        let row: Option<UserRow> = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"))
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(Into::into).ok_or_else(|| AppError::not_found(format!("user `{user_id}`")).into())
    }

    /// The user with this username, compared ignoring case.
    #[tracing::instrument(skip_all)]
    pub async fn find_user_by_username(&self, username: &str) -> Result<Option<User>> {
        let row: Option<UserRow> =
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users u WHERE lower(u.username) = lower($1)"))
                .bind(username.trim())
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(Into::into))
    }

    /// The user named by a `usr_…` id or a username (ignoring case).
    pub(crate) async fn resolve_user(&self, conn: &mut PgConnection, id_or_username: &str) -> Result<Option<User>> {
        let key = id_or_username.trim();
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1 OR lower(u.username) = lower($1)
             ORDER BY (u.id = $1) DESC LIMIT 1"
        ))
        .bind(key)
        .fetch_optional(conn)
        .await?;
        Ok(row.map(Into::into))
    }

    /// Every user, by username.
    #[tracing::instrument(skip_all)]
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows: Vec<UserRow> = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users u ORDER BY lower(u.username)"))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// How many users exist (disabled ones included); 0 means setup is pending.
    #[tracing::instrument(skip_all)]
    pub async fn user_count(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM users").fetch_one(self.pool()).await?;
        Ok(n)
    }

    /// Changes a user's password: `old` must verify (otherwise an invalid
    /// `old_password`), `new` must pass the policy (an invalid `new_password`).
    /// The caller records the `password.changed` audit event and should then
    /// call [`Store::end_other_sessions`].
    #[tracing::instrument(skip_all, fields(user = %user_id))]
    pub async fn set_password(&self, user_id: &str, old: &str, new: &str) -> Result<()> {
        if let Err(message) = check_password(new) {
            return Err(AppError::invalid("new_password", message).into());
        }
        let (hash,): (String,) =
            sqlx::query_as("SELECT password_hash FROM users WHERE id = $1 AND disabled_at IS NULL")
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?
                .ok_or_else(|| AppError::new(ErrorCode::Unauthenticated, "this account no longer exists"))?;
        if !password::verify_password(&hash, old).await? {
            return Err(AppError::invalid("old_password", "is not your current password").into());
        }
        let new_hash = password::hash_password(new).await?;
        sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(user_id)
            .bind(&new_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends every session of a user except the one whose raw cookie is
    /// `keep` (the session making the request), e.g. after a password change,
    /// so a stolen session dies with the old password. Returns how many ended.
    #[tracing::instrument(skip_all, fields(user = %user_id))]
    pub async fn end_other_sessions(&self, user_id: &str, keep: Option<&str>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash IS DISTINCT FROM $2")
            .bind(user_id)
            .bind(keep.map(token_hash))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Creates a one-time setup token for the first admin, valid for
    /// [`SETUP_TOKEN_TTL_HOURS`] and only while no user exists. Returns the raw
    /// token (43 base64url characters) for the run command to print as a link;
    /// only its SHA-256 is stored. A conflict if users already exist.
    #[tracing::instrument(skip_all)]
    pub async fn create_setup_token(&self) -> Result<String> {
        if self.user_count().await? > 0 {
            return Err(AppError::conflict("setup is already complete: users exist; log in instead").into());
        }
        let raw = random_secret();
        sqlx::query("DELETE FROM setup_tokens WHERE expires_at <= now()").execute(self.pool()).await?;
        sqlx::query("INSERT INTO setup_tokens (token_hash, expires_at) VALUES ($1, now() + $2)")
            .bind(token_hash(&raw))
            .bind(Duration::hours(SETUP_TOKEN_TTL_HOURS))
            .execute(self.pool())
            .await?;
        Ok(raw)
    }

    /// Creates the first admin with a setup token from
    /// [`Store::create_setup_token`]. Works once, and only while no user
    /// exists (a conflict otherwise); an unknown, expired or used token is
    /// refused (401) — checked before any password hashing, so a caller
    /// without the token cannot make the server hash. An address with
    /// `max_failures_per_address` refused setups (or failed logins) within
    /// the login window is refused with 429. Every other setup token is
    /// discarded. Audited as `user.created` with `"via": "setup"`.
    #[tracing::instrument(skip_all)]
    pub async fn consume_setup_token(&self, token: &str, username: &str, password: &str, client: &ClientInfo) -> Result<User> {
        let policy = super::AuthPolicy::default();
        let ip = client.ip.as_deref().filter(|ip| !ip.is_empty());
        if let Some(ip) = ip {
            let (failures,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM login_attempts WHERE ip = $1 AND outcome = 'failed' AND at > now() - $2::interval",
            )
            .bind(ip)
            .bind(policy.login_window)
            .fetch_one(self.pool())
            .await?;
            if failures >= i64::from(policy.max_failures_per_address) {
                return Err(AppError::new(
                    ErrorCode::RateLimited,
                    format!(
                        "too many refused setup or login attempts from this address; try again in {} minutes",
                        policy.login_window.num_minutes()
                    ),
                )
                .into());
            }
        }
        let new = NewUser { username: username.into(), display_name: None, password: password.into(), is_admin: true }
            .normalized()?;
        let refused = || AppError::new(ErrorCode::Unauthenticated, "this setup link is invalid, expired or already used");
        if self.user_count().await? > 0 {
            return Err(AppError::conflict("setup is already complete: users exist; log in instead").into());
        }
        let known = super::is_secret_shaped(token.trim())
            && sqlx::query_as::<_, (i32,)>("SELECT 1 FROM setup_tokens WHERE token_hash = $1 AND expires_at > now()")
                .bind(token_hash(token.trim()))
                .fetch_optional(self.pool())
                .await?
                .is_some();
        if !known {
            sqlx::query("INSERT INTO login_attempts (username, ip, outcome) VALUES ($1, $2, 'failed')")
                .bind(SETUP_ATTEMPT_KEY)
                .bind(ip)
                .execute(self.pool())
                .await?;
            return Err(refused().into());
        }
        // Only a caller holding a valid token gets this far.
        let hash = password::hash_password(&new.password).await?;
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SETUP_LOCK_KEY).execute(&mut *tx).await?;
        let (users,): (i64,) = sqlx::query_as("SELECT count(*) FROM users").fetch_one(&mut *tx).await?;
        if users > 0 {
            return Err(AppError::conflict("setup is already complete: users exist; log in instead").into());
        }
        let found = sqlx::query("DELETE FROM setup_tokens WHERE token_hash = $1 AND expires_at > now()")
            .bind(token_hash(token.trim()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if found == 0 {
            return Err(refused().into());
        }
        sqlx::query("DELETE FROM setup_tokens").execute(&mut *tx).await?;
        let user = insert_user(&mut tx, &new, &hash).await?;
        let actor = principal_of(user.clone(), client);
        record_audit_in(
            &mut tx,
            &AuditRecord {
                actor: Some(&actor),
                action: "user.created".into(),
                target_type: Some("user".into()),
                target_id: Some(user.id.clone()),
                detail: json!({"username": user.username, "is_admin": true, "via": "setup"}),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(user)
    }
}
