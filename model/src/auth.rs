//! Identity and authorisation: users, project roles and what each role may
//! do, API tokens, the acting principal, and the audit trail's shapes.
//!
//! Passwords and raw tokens appear in exactly two places here: [`NewUser`]
//! (input) and [`CreatedToken`] (shown once). Both redact them in `Debug`, so
//! logging either by accident cannot leak them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, FieldProblem};

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Longest password accepted, in characters (bounds the hashing work).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Longest username (the database enforces the same pattern).
pub const MAX_USERNAME_CHARS: usize = 64;

/// Longest display name.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// Longest API token name (the database enforces the same limit).
pub const MAX_TOKEN_NAME_CHARS: usize = 100;

/// Longest token lifetime that can be asked for, in days (ten years).
pub const MAX_TOKEN_DAYS: u32 = 3650;

/// Prefix of every API token, so scanners and people can recognise one.
pub const TOKEN_PREFIX: &str = "slp_";

/// What a member may be in a project. Roles are not a ladder: an approver
/// cannot build, a developer cannot approve; see [`Role::allows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything of the project and follows logs.
    Viewer,
    /// Creates and cancels builds, creates releases, deploys where no gate is.
    Developer,
    /// Approves or rejects gated deployments.
    Approver,
    /// Everything, including members, environments, secrets and settings.
    Admin,
}

impl Role {
    /// Every role, from least to most powerful.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Developer, Role::Approver, Role::Admin];

    /// The name used in the database, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// Whether this role grants `permission`:
    ///
    /// | role      | read | build | release | deploy | approve | admin |
    /// |-----------|------|-------|---------|--------|---------|-------|
    /// | viewer    | ✓    |       |         |        |         |       |
    /// | developer | ✓    | ✓     | ✓       | ✓      |         |       |
    /// | approver  | ✓    |       |         |        | ✓       |       |
    /// | admin     | ✓    | ✓     | ✓       | ✓      | ✓       | ✓     |
    pub fn allows(self, permission: Permission) -> bool {
        use Permission as P;
        match self {
            Role::Admin => true,
            Role::Viewer => permission == P::Read,
            Role::Developer => matches!(permission, P::Read | P::Build | P::Release | P::Deploy),
            Role::Approver => matches!(permission, P::Read | P::Approve),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    /// Parses a role name (case-insensitive); the error lists the allowed names.
    fn from_str(s: &str) -> Result<Role, String> {
        let wanted = s.trim();
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown role `{wanted}`: expected one of {}", names.join(", "))
            })
    }
}

/// Something a request needs to be allowed to do in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// See the project, its builds, releases, deployments and logs.
    Read,
    /// Create and cancel builds (following logs needs only [`Permission::Read`]).
    Build,
    /// Create releases.
    Release,
    /// Deploy to environments without an approval gate.
    Deploy,
    /// Approve or reject gated deployments.
    Approve,
    /// Manage members, environments, secrets and project settings.
    Admin,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 6] = [
        Permission::Read,
        Permission::Build,
        Permission::Release,
        Permission::Deploy,
        Permission::Approve,
        Permission::Admin,
    ];

    /// The name used in the API and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Build => "build",
            Permission::Release => "release",
            Permission::Deploy => "deploy",
            Permission::Approve => "approve",
            Permission::Admin => "admin",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user as the API returns it (never with its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// `usr_…` id.
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    /// A global admin is admin of every project and manages users.
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

/// Input for creating a user. `Debug` does not show the password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub username: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub password: String,
    #[serde(default)]
    pub is_admin: bool,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("password", &"[redacted]")
            .field("is_admin", &self.is_admin)
            .finish()
    }
}

impl NewUser {
    /// Trims the username and display name (an empty display name becomes
    /// `None`) and checks every field, reporting all problems at once. The
    /// password is checked as given, never quoted back.
    pub fn normalized(&self) -> Result<NewUser, AppError> {
        let mut problems = Vec::new();
        let username = self.username.trim().to_string();
        if let Err(message) = check_username(&username) {
            problems.push(FieldProblem { field: "username".into(), message });
        }
        let display_name = self.display_name.as_deref().map(str::trim).filter(|d| !d.is_empty()).map(str::to_string);
        if let Some(d) = &display_name {
            if d.chars().count() > MAX_DISPLAY_NAME_CHARS {
                problems.push(FieldProblem {
                    field: "display_name".into(),
                    message: format!("must be at most {MAX_DISPLAY_NAME_CHARS} characters"),
                });
            }
        }
        if let Err(message) = check_password(&self.password) {
            problems.push(FieldProblem { field: "password".into(), message });
        }
        if !problems.is_empty() {
            return Err(AppError::invalid_fields(problems));
        }
        Ok(NewUser { username, display_name, password: self.password.clone(), is_admin: self.is_admin })
    }
}

/// Checks a username: 1–64 characters of letters, digits and `._@-`,
/// starting with a letter or digit (the database's pattern).
pub fn check_username(username: &str) -> Result<(), String> {
    if username.is_empty() {
        return Err("is required".into());
    }
    if username.chars().count() > MAX_USERNAME_CHARS {
        return Err(format!("must be at most {MAX_USERNAME_CHARS} characters"));
    }
    let mut bytes = username.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if !first_ok || !rest_ok {
        return Err("must be letters, digits and `.`, `_`, `@`, `-`, starting with a letter or digit".into());
    }
    Ok(())
}

/// Checks a new password: at least 10 and at most 1024 characters. The
/// message never repeats the password.
pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
    }
    if password.trim().is_empty() {
        return Err("must not be only spaces".into());
    }
    Ok(())
}

/// A member of a project and their role there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user: User,
    pub role: Role,
    /// When the membership was created.
    pub created_at: DateTime<Utc>,
}

/// An API token as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// `tok_…` id.
    pub id: String,
    pub name: String,
    /// Set: the token acts only on this project (`prj_…`).
    pub project_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Input for creating an API token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    /// What the token is for, e.g. `ci` or `laptop`.
    pub name: String,
    /// Limit the token to one project (id or slug).
    #[serde(default)]
    pub project: Option<String>,
    /// Expire after this many days (1–3650); `None`: never.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A token just created: the only time its value is shown. `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    /// `slp_…`; send it as `Authorization: Bearer <token>`.
    pub token: String,
    pub info: TokenInfo,
}

impl fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedToken").field("token", &"[redacted]").field("info", &self.info).finish()
    }
}

/// Where a request came from, for sessions and the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The client's address as the server determined it.
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// Who is acting: a logged-in user (cookie) or a user's API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub user: User,
    /// The API token (`tok_…`) the request carried; `None` for a session.
    pub token_id: Option<String>,
    /// A project-scoped token can only act on this project (`prj_…`); on any
    /// other it counts as not being a member, even for a global admin.
    pub token_project: Option<String>,
    /// Where the request came from; recorded with every audit event.
    #[serde(default)]
    pub client: ClientInfo,
}

impl Principal {
    /// A global admin acting with full rights (not through a project-scoped token).
    pub fn is_global_admin(&self) -> bool {
        self.user.is_admin && self.token_project.is_none()
    }

    /// Whether this principal may act on `project_id` at all (token scope).
    pub fn may_touch_project(&self, project_id: &str) -> bool {
        self.token_project.as_deref().is_none_or(|p| p == project_id)
    }

    /// This principal with the request's origin attached.
    pub fn with_client(mut self, client: ClientInfo) -> Principal {
        self.client = client;
        self
    }
}

/// One recorded event of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// `aud_…` id.
    pub id: String,
    pub at: DateTime<Utc>,
    /// The acting user; `None` for the system or an anonymous caller.
    pub actor_user_id: Option<String>,
    /// The API token used, if any.
    pub actor_token_id: Option<String>,
    /// Username at the time, `system` or `anonymous`.
    pub actor_label: String,
    /// Dotted verb, e.g. `login.failed`, `token.created`, `member.added`.
    pub action: String,
    pub project_id: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// Extra facts (a JSON object); never contains secrets.
    pub detail: serde_json::Value,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl AuditEvent {
    /// `before → after` of an event whose detail records both (deploys,
    /// promotions, rollbacks, environment changes), in a few words for a
    /// table: a release tag, else a short git sha, else an environment's
    /// gate; `nothing` where nothing was (or is left). `None` for other events.
    pub fn change(&self) -> Option<String> {
        let (before, after) = (self.detail.get("before")?, self.detail.get("after")?);
        Some(format!("{} → {}", change_label(before), change_label(after)))
    }
}

/// A short name for one side of a before → after.
fn change_label(v: &serde_json::Value) -> String {
    let text = |key: &str| v.get(key).and_then(|x| x.as_str()).filter(|s| !s.is_empty());
    if v.is_null() {
        "nothing".into()
    } else if let Some(tag) = text("release") {
        tag.to_string()
    } else if let Some(sha) = text("git_sha") {
        sha.chars().take(12).collect()
    } else if let Some(n) = v.get("approval_required").and_then(|x| x.as_u64()) {
        format!("{n} approval(s)")
    } else {
        "?".into()
    }
}

/// Position in the audit trail: list events strictly older than this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCursor {
    pub at: DateTime<Utc>,
    pub id: String,
}

/// Filters for listing the audit trail (all optional, combined with AND).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Username (case-insensitive) or `usr_…` id of the actor.
    #[serde(default)]
    pub actor: Option<String>,
    /// An action (`login.failed`), or a family without a dot (`login`
    /// matches `login.succeeded` and `login.failed`).
    #[serde(default)]
    pub action: Option<String>,
    /// Project id or slug.
    #[serde(default)]
    pub project: Option<String>,
    /// Events at or after this time.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Events before this time.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Keyset cursor: the `next` of the previous page.
    #[serde(default)]
    pub before: Option<AuditCursor>,
    /// Page size, 1–500 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One page of the audit trail, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Pass as `before` to get the next (older) page; `None` on the last page.
    pub next: Option<AuditCursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_events_change_reads_its_before_and_after() {
        let event = |detail: serde_json::Value| AuditEvent {
            id: "aud_1".into(),
            at: chrono::Utc::now(),
            actor_user_id: None,
            actor_token_id: None,
            actor_label: "dev".into(),
            action: "deploy.requested".into(),
            project_id: None,
            target_type: None,
            target_id: None,
            detail,
            ip: None,
            user_agent: None,
        };
        let sha = "a".repeat(40);
        let deploy = event(serde_json::json!({ "before": { "release": "v1" }, "after": { "release": null, "git_sha": sha } }));
        assert_eq!(deploy.change().as_deref(), Some("v1 → aaaaaaaaaaaa"));
        let first = event(serde_json::json!({ "before": null, "after": { "release": "v1" } }));
        assert_eq!(first.change().as_deref(), Some("nothing → v1"));
        let gate = event(serde_json::json!({ "before": { "approval_required": 2 }, "after": { "approval_required": 1 } }));
        assert_eq!(gate.change().as_deref(), Some("2 approval(s) → 1 approval(s)"));
        assert_eq!(event(serde_json::json!({ "name": "DB_PASSWORD" })).change(), None);
    }

    #[test]
    fn roles_parse_and_print_their_names() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{}\"", r.as_str()));
        }
        assert_eq!("Admin".parse::<Role>(), Ok(Role::Admin));
        let err = "owner".parse::<Role>().unwrap_err();
        assert!(err.contains("viewer, developer, approver, admin"), "{err}");
    }

    #[test]
    fn only_admins_administer_and_approvers_cannot_deploy() {
        assert!(Role::ALL.iter().all(|r| r.allows(Permission::Read)));
        assert!(Permission::ALL.iter().all(|p| Role::Admin.allows(*p)));
        assert!(!Role::Developer.allows(Permission::Approve));
        assert!(!Role::Approver.allows(Permission::Deploy));
        assert!(!Role::Viewer.allows(Permission::Build));
        assert!(Role::ALL.iter().filter(|r| r.allows(Permission::Admin)).eq([&Role::Admin]));
    }

    #[test]
    fn passwords_need_ten_characters_and_are_not_quoted() {
        assert!(check_password("0123456789").is_ok());
        let err = check_password("short-pw1").unwrap_err();
        assert!(!err.contains("short-pw1"));
        assert!(check_password(&"x".repeat(1025)).is_err());
        assert!(check_password(&" ".repeat(12)).is_err());
    }

    #[test]
    fn usernames_follow_the_database_pattern() {
        for ok in ["alice", "a", "Bob.Smith", "ci-bot_1", "x@example.com", &"a".repeat(64)] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".alice", "al ice", "élise", &"a".repeat(65)] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_user_debug_and_token_debug_hide_secrets() {
        let u = NewUser { username: "a".into(), password: "hunter2hunter2".into(), ..Default::default() };
        assert!(!format!("{u:?}").contains("hunter2"));
        let t = CreatedToken {
            token: "slp_secretvalue".into(),
            info: TokenInfo {
                id: "tok_x".into(),
                name: "ci".into(),
                project_id: None,
                expires_at: None,
                created_at: Utc::now(),
                last_used_at: None,
                revoked_at: None,
            },
        };
        assert!(!format!("{t:?}").contains("secretvalue"));
    }

    #[test]
    fn new_user_reports_every_field() {
        let err = NewUser { username: " ".into(), password: "x".into(), ..Default::default() }
            .normalized()
            .unwrap_err();
        let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["username", "password"]);
    }
}
