//! Logins (with rate limiting shared by every server process through
//! Postgres), server-side sessions, logout.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use slipway_model::auth::{ClientInfo, Principal, User};
use slipway_model::id::{self, SESSION};
use slipway_model::{AppError, ErrorCode};

use super::audit::{record_audit_in, AuditRecord, ANONYMOUS_LABEL};
use super::users::{principal_of, UserRow, USER_COLUMNS};
use super::{is_secret_shaped, password, random_secret, token_hash, AuthPolicy};
use crate::error::Result;
use crate::store::Store;

/// Suggested name of the session cookie (HttpOnly, SameSite=Lax, Secure on HTTPS).
pub const SESSION_COOKIE: &str = "slipway_session";

/// What every failed login says, whether the user exists or not.
const BAD_CREDENTIALS: &str = "invalid username or password";

/// Longest username stored in `login_attempts` (longer input is cut).
const MAX_ATTEMPT_USERNAME_CHARS: usize = 256;

/// How often `last_seen_at` is written at most, in seconds.
const TOUCH_INTERVAL_SECONDS: i64 = 60;

/// The raw session token for the cookie, and when it expires. Only its
/// SHA-256 is stored; `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken {
    token: String,
    /// When the session ends (set the cookie's `Expires` / `Max-Age` from it).
    pub expires_at: DateTime<Utc>,
}

impl SessionToken {
    /// The cookie value: 43 base64url characters.
    pub fn expose(&self) -> &str {
        &self.token
    }

    /// The cookie value, consuming the token.
    pub fn into_string(self) -> String {
        self.token
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionToken").field("token", &"[redacted]").field("expires_at", &self.expires_at).finish()
    }
}

/// Why a login failed, recorded in the audit detail (never sent to the client).
#[derive(Debug, Clone, Copy)]
enum Failure {
    UnknownUser,
    WrongPassword,
    Disabled,
    RateLimitedAccount,
    RateLimitedAddress,
    AccountBackoff,
}

impl Failure {
    fn as_str(self) -> &'static str {
        match self {
            Failure::UnknownUser => "unknown_user",
            Failure::WrongPassword => "wrong_password",
            Failure::Disabled => "disabled",
            Failure::RateLimitedAccount => "rate_limited_account",
            Failure::RateLimitedAddress => "rate_limited_address",
            Failure::AccountBackoff => "account_backoff",
        }
    }
}

#[derive(sqlx::FromRow)]
struct LimitRow {
    pair_failures: i64,
    pair_oldest: Option<DateTime<Utc>>,
    account_failures: i64,
    account_latest: Option<DateTime<Utc>>,
    address_failures: i64,
    address_oldest: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct LoginRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
    disabled: bool,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    #[sqlx(flatten)]
    user: UserRow,
    session_id: String,
    stale: bool,
}

/// Whole minutes (at least 1) until `oldest + window` has passed.
fn minutes_until(oldest: Option<DateTime<Utc>>, window: Duration) -> i64 {
    let wait = oldest.map_or(window, |t| t + window - Utc::now());
    ((wait.num_seconds() + 59) / 60).max(1)
}

fn plural(n: i64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl Store {
    /// [`Store::login_with`] under [`AuthPolicy::default`].
    pub async fn login(&self, username: &str, password: &str, client: &ClientInfo) -> Result<(User, SessionToken)> {
        self.login_with(&AuthPolicy::default(), username, password, client).await
    }

    /// Checks a username and password and opens a session.
    ///
    /// * An unknown username, a wrong password and a disabled account all
    ///   fail with the same 401 `invalid username or password`, after the same
    ///   argon2 work (unknown users are verified against a dummy hash).
    /// * Refused with [`ErrorCode::RateLimited`] (429), even with the right
    ///   password, when this address has `max_failures_per_account_and_address`
    ///   failures for this username within `login_window` (since its last
    ///   success from here), or `max_failures_per_address` failures for any
    ///   username; or while the account backs off after
    ///   `account_backoff_after` failures from everywhere (a wait of seconds,
    ///   doubling, at most `account_backoff_max`). Failures from one address
    ///   never lock the account for others. The message says which and when
    ///   to retry. Attempts are counted in Postgres (a row is written before
    ///   the password is checked), so concurrent attempts and several server
    ///   processes agree.
    /// * Every attempt is audited: `login.succeeded`, or `login.failed` with
    ///   the username tried, the address and a reason; never the password.
    #[tracing::instrument(skip_all, fields(ip = ?client.ip))]
    pub async fn login_with(
        &self,
        policy: &AuthPolicy,
        username: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<(User, SessionToken)> {
        let username = username.trim();
        let key: String = username.to_lowercase().chars().take(MAX_ATTEMPT_USERNAME_CHARS).collect();
        let ip = client.ip.as_deref().filter(|ip| !ip.is_empty());
        // Keep the table small; the index on `at` makes this cheap.
        sqlx::query("DELETE FROM login_attempts WHERE at < now() - interval '1 day' - $1::interval")
            .bind(policy.login_window)
            .execute(self.pool())
            .await?;
        let (attempt_id,): (i64,) =
            sqlx::query_as("INSERT INTO login_attempts (username, ip) VALUES ($1, $2) RETURNING id")
                .bind(&key)
                .bind(ip)
                .fetch_one(self.pool())
                .await?;

        let backoff_depth = i64::from(policy.account_backoff_after) + 32;
        let limits: LimitRow = sqlx::query_as(
            "WITH pair AS (
                 SELECT at FROM login_attempts
                 WHERE username = $1 AND ip IS NOT DISTINCT FROM $2 AND id <> $3 AND outcome IN ('pending', 'failed')
                   AND at > now() - $4::interval
                   AND at > COALESCE((SELECT max(at) FROM login_attempts
                                      WHERE username = $1 AND ip IS NOT DISTINCT FROM $2 AND outcome = 'succeeded'), '-infinity')
                 ORDER BY at DESC LIMIT $5
             ), account AS (
                 SELECT at FROM login_attempts
                 WHERE username = $1 AND id <> $3 AND outcome IN ('pending', 'failed')
                   AND at > now() - $4::interval
                   AND at > COALESCE((SELECT max(at) FROM login_attempts
                                      WHERE username = $1 AND outcome = 'succeeded'), '-infinity')
                 ORDER BY at DESC LIMIT $7
             ), address AS (
                 SELECT at FROM login_attempts
                 WHERE $2::text IS NOT NULL AND ip = $2 AND id <> $3 AND outcome IN ('pending', 'failed')
                   AND at > now() - $4::interval
                 ORDER BY at DESC LIMIT $6
             )
             SELECT (SELECT count(*) FROM pair) AS pair_failures,
                    (SELECT min(at) FROM pair) AS pair_oldest,
                    (SELECT count(*) FROM account) AS account_failures,
                    (SELECT max(at) FROM account) AS account_latest,
                    (SELECT count(*) FROM address) AS address_failures,
                    (SELECT min(at) FROM address) AS address_oldest",
        )
        .bind(&key)
        .bind(ip)
        .bind(attempt_id)
        .bind(policy.login_window)
        .bind(i64::from(policy.max_failures_per_account_and_address))
        .bind(i64::from(policy.max_failures_per_address))
        .bind(backoff_depth)
        .fetch_one(self.pool())
        .await?;
        let backoff = policy.account_backoff(u32::try_from(limits.account_failures).unwrap_or(u32::MAX));
        let backoff_left = limits.account_latest.map_or(Duration::zero(), |t| t + backoff - Utc::now());
        let limited = if limits.pair_failures >= i64::from(policy.max_failures_per_account_and_address) {
            let n = minutes_until(limits.pair_oldest, policy.login_window);
            Some((
                Failure::RateLimitedAccount,
                format!("too many failed logins for this account from this address; try again in {n} minute{}", plural(n)),
            ))
        } else if ip.is_some() && limits.address_failures >= i64::from(policy.max_failures_per_address) {
            let n = minutes_until(limits.address_oldest, policy.login_window);
            Some((Failure::RateLimitedAddress, format!("too many failed logins from this address; try again in {n} minute{}", plural(n))))
        } else if backoff_left > Duration::zero() {
            let n = (backoff_left.num_milliseconds() + 999) / 1000;
            Some((
                Failure::AccountBackoff,
                format!("this account has had many failed logins recently; try again in {n} second{}", plural(n)),
            ))
        } else {
            None
        };
        if let Some((reason, message)) = limited {
            self.finish_attempt(attempt_id, "refused").await?;
            self.audit_login_failure(username, reason, client).await?;
            return Err(AppError::new(ErrorCode::RateLimited, message).into());
        }

        let row: Option<LoginRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS}, u.password_hash, (u.disabled_at IS NOT NULL) AS disabled
             FROM users u WHERE lower(u.username) = lower($1)"
        ))
        .bind(username)
        .fetch_optional(self.pool())
        .await?;
        password::warm_up().await;
        let verified = match password::verify_or_dummy(row.as_ref().map(|r| r.password_hash.clone()), password).await {
            Ok(v) => v,
            Err(e) => {
                // Too busy to check: not a failure of this account.
                self.finish_attempt(attempt_id, "refused").await?;
                return Err(e);
            }
        };
        let failure = match &row {
            None => Some(Failure::UnknownUser),
            Some(_) if !verified => Some(Failure::WrongPassword),
            Some(r) if r.disabled => Some(Failure::Disabled),
            Some(_) => None,
        };
        let (Some(row), None) = (row, failure) else {
            self.finish_attempt(attempt_id, "failed").await?;
            self.audit_login_failure(username, failure.unwrap_or(Failure::WrongPassword), client).await?;
            return Err(AppError::new(ErrorCode::Unauthenticated, BAD_CREDENTIALS).into());
        };
        self.finish_attempt(attempt_id, "succeeded").await?;
        let user: User = row.user.into();
        let session = self.create_session(&user, policy.session_ttl, client).await?;
        Ok((user, session))
    }

    async fn finish_attempt(&self, attempt_id: i64, outcome: &str) -> Result<()> {
        sqlx::query("UPDATE login_attempts SET outcome = $2 WHERE id = $1")
            .bind(attempt_id)
            .bind(outcome)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn audit_login_failure(&self, username: &str, reason: Failure, client: &ClientInfo) -> Result<()> {
        let tried: String = username.chars().take(MAX_ATTEMPT_USERNAME_CHARS).collect();
        self.record_audit(AuditRecord {
            actor_label: ANONYMOUS_LABEL.into(),
            action: "login.failed".into(),
            target_type: Some("user".into()),
            detail: json!({"username": tried, "reason": reason.as_str()}),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            ..Default::default()
        })
        .await?;
        Ok(())
    }

    /// Opens a session for a user who has just been authenticated by the
    /// caller (a login, or the first-admin setup); audited as `login.succeeded`.
    /// Expired sessions of the user are removed on the way.
    #[tracing::instrument(skip_all, fields(user = %user.id))]
    pub async fn create_session(&self, user: &User, ttl: Duration, client: &ClientInfo) -> Result<SessionToken> {
        if ttl <= Duration::zero() {
            return Err(AppError::invalid("session_ttl", "must be positive").into());
        }
        let raw = random_secret();
        let session_id = id::new_id(SESSION);
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND expires_at <= now()")
            .bind(&user.id)
            .execute(&mut *tx)
            .await?;
        let (expires_at,): (DateTime<Utc>,) = sqlx::query_as(
            "INSERT INTO sessions (id, user_id, token_hash, expires_at, ip, user_agent)
             VALUES ($1, $2, $3, now() + $4, $5, $6) RETURNING expires_at",
        )
        .bind(&session_id)
        .bind(&user.id)
        .bind(token_hash(&raw))
        .bind(ttl)
        .bind(&client.ip)
        .bind(&client.user_agent)
        .fetch_one(&mut *tx)
        .await?;
        let actor = principal_of(user.clone(), client);
        record_audit_in(
            &mut tx,
            &AuditRecord {
                actor: Some(&actor),
                action: "login.succeeded".into(),
                target_type: Some("session".into()),
                target_id: Some(session_id.clone()),
                detail: json!({"username": user.username, "expires_at": expires_at}),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(SessionToken { token: raw, expires_at })
    }

    /// The principal of a session cookie: `None` when the token is unknown,
    /// the session has expired or its user is disabled. Writes `last_seen_at`
    /// at most once a minute. Attach the request's origin with
    /// [`Principal::with_client`] so the audit events the engine records for
    /// this principal (tokens, members) say where they came from.
    #[tracing::instrument(skip_all)]
    pub async fn session_principal(&self, raw_token: &str) -> Result<Option<Principal>> {
        if !is_secret_shaped(raw_token) {
            return Ok(None);
        }
        let row: Option<SessionRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS}, s.id AS session_id,
                    (s.last_seen_at IS NULL OR s.last_seen_at < now() - make_interval(secs => $2)) AS stale
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_at > now() AND u.disabled_at IS NULL"
        ))
        .bind(token_hash(raw_token))
        .bind(TOUCH_INTERVAL_SECONDS as f64)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        if row.stale {
            sqlx::query("UPDATE sessions SET last_seen_at = now() WHERE id = $1")
                .bind(&row.session_id)
                .execute(self.pool())
                .await?;
        }
        Ok(Some(principal_of(row.user.into(), &ClientInfo::default())))
    }

    /// Ends the session of this cookie (nothing happens for an unknown one).
    /// The caller records the `logout` audit event.
    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, raw_token: &str) -> Result<()> {
        if !is_secret_shaped(raw_token) {
            return Ok(());
        }
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash(raw_token)).execute(self.pool()).await?;
        Ok(())
    }

    /// Deletes every expired session (housekeeping; expired ones are refused
    /// anyway). Returns how many went.
    #[tracing::instrument(skip_all)]
    pub async fn purge_expired_sessions(&self) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= now()").execute(self.pool()).await?;
        Ok(done.rows_affected())
    }
}
