//! Identity: users and passwords, the first-admin setup link, logins with
//! rate limiting, sessions, API tokens, project memberships, the audit trail,
//! and the authorisation decision every endpoint makes.
//!
//! Secrets handled here and how:
//!
//! * **Passwords** are hashed with argon2id (default parameters of the
//!   `argon2` crate: 19 MiB, 2 passes) on a blocking thread; only the PHC
//!   string is stored. A login for an unknown user verifies against a dummy
//!   hash, so it fails with the same error after the same work.
//! * **Session cookies, API tokens and setup links** are 32 random bytes from
//!   the operating system, base64url-encoded; only their SHA-256 is stored, and
//!   lookups are by that hash (so no comparison ever runs on the raw value).
//! * None of these values is logged, put in a tracing span or written to the
//!   audit trail; [`SessionToken`] and `CreatedToken` redact them in `Debug`.
//!
//! The store functions here do not check who may call them, except where the
//! rule is about ownership (revoking a token, changing one's password): the
//! server decides first (`slipway_app::auth::authorize`, built on [`check`]).

mod access;
mod audit;
mod members;
mod password;
mod sessions;
mod tokens;
mod users;

pub use access::{access, check, scoped_role, unauthenticated, Access};
pub use audit::{record_audit_in, AuditRecord, ANONYMOUS_LABEL, SYSTEM_LABEL};
pub use password::{hash_password, password_work_started, verify_password};
pub use sessions::{SessionToken, SESSION_COOKIE};
pub use tokens::looks_like_api_token;
pub use users::SETUP_TOKEN_TTL_HOURS;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Duration;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Tunable rules for logins and sessions; [`AuthPolicy::default`] is what
/// the README documents.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// How long a session lasts after login (default 7 days).
    pub session_ttl: Duration,
    /// The window in which failed logins are counted (default 15 minutes).
    pub login_window: Duration,
    /// Failed logins for one username from one address (since that
    /// address's last success) within the window after which that address
    /// may not try that account again until the window has passed (default
    /// 5). Other addresses are not affected, so nobody can lock someone out.
    pub max_failures_per_account_and_address: u32,
    /// Failed logins from one address within the window, whatever the
    /// username, after which that address is refused (default 20).
    pub max_failures_per_address: u32,
    /// Failed logins for one username from all addresses (since its last
    /// success) within the window after which the account backs off: each
    /// further attempt must wait 1 s, then 2 s, 4 s… after the latest
    /// failure, up to [`AuthPolicy::account_backoff_max`] (default 10).
    pub account_backoff_after: u32,
    /// The longest back-off wait of an account (default 60 seconds).
    pub account_backoff_max: Duration,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        AuthPolicy {
            session_ttl: Duration::days(7),
            login_window: Duration::minutes(15),
            max_failures_per_account_and_address: 5,
            max_failures_per_address: 20,
            account_backoff_after: 10,
            account_backoff_max: Duration::seconds(60),
        }
    }
}

impl AuthPolicy {
    /// How long an account with `failures` recent failures must wait after
    /// the latest one before the next attempt (zero below the threshold).
    pub fn account_backoff(&self, failures: u32) -> Duration {
        if failures < self.account_backoff_after {
            return Duration::zero();
        }
        let doublings = (failures - self.account_backoff_after).min(30);
        Duration::seconds(1i64 << doublings).min(self.account_backoff_max)
    }
}

/// 32 random bytes from the operating system, base64url without padding
/// (43 characters).
pub(crate) fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Length of [`random_secret`]'s output.
pub(crate) const SECRET_CHARS: usize = 43;

/// Whether `s` looks like a [`random_secret`] (cheap rejection before hashing).
pub(crate) fn is_secret_shaped(s: &str) -> bool {
    s.len() == SECRET_CHARS && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// SHA-256 of a raw token, as stored in `token_hash` columns.
pub(crate) fn token_hash(raw: &str) -> Vec<u8> {
    Sha256::digest(raw.as_bytes()).to_vec()
}

/// A row value the database should never hold (a role outside the CHECK list).
pub(crate) fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::CorruptRow(format!("unexpected value in the database: {what}"))
}
