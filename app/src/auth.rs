//! Who may call what. Every endpoint — server functions, plain HTTP routes
//! and websockets — is listed once in [`ENDPOINTS`] with the access it needs;
//! server functions call [`require`] with their own path, and a test checks
//! that every registered server function is in the table, so a new endpoint
//! cannot skip authorisation unnoticed.

use slipway_model::auth::Permission;

/// What an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, logged in or not.
    Public,
    /// Any logged-in user (results are filtered to what they may see).
    Authenticated,
    /// A member of the resource's project whose role allows this.
    Project(Permission),
    /// A global administrator.
    Admin,
}

/// One endpoint and its rule.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// Server functions: the path under `/api/`; other routes: `METHOD /path`.
    pub path: &'static str,
    pub access: Access,
    /// Changes state: cookie-authenticated calls must be same-origin.
    pub mutates: bool,
}

const fn ep(path: &'static str, access: Access, mutates: bool) -> Endpoint {
    Endpoint { path, access, mutates }
}

use Access::{Admin, Authenticated, Project, Public};
use Permission as P;

/// Every endpoint Slipway serves, with the access it needs.
pub const ENDPOINTS: &[Endpoint] = &[
    ep("auth/me", Public, false),
    ep("auth/login", Public, true),
    ep("auth/setup", Public, true),
    ep("auth/logout", Authenticated, true),
    ep("auth/password", Authenticated, true),
    ep("tokens/list", Authenticated, false),
    ep("tokens/create", Authenticated, true),
    ep("tokens/revoke", Authenticated, true),
    ep("users/list", Admin, false),
    ep("users/create", Admin, true),
    ep("projects/list", Authenticated, false),
    ep("projects/create", Authenticated, true),
    ep("projects/show", Project(P::Read), false),
    ep("projects/settings", Project(P::Admin), true),
    ep("members/list", Project(P::Read), false),
    ep("members/set", Project(P::Admin), true),
    ep("members/remove", Project(P::Admin), true),
    ep("secrets/list", Project(P::Admin), false),
    ep("secrets/set", Project(P::Admin), true),
    ep("secrets/delete", Project(P::Admin), true),
    ep("registries/list", Project(P::Admin), false),
    ep("registries/add", Project(P::Admin), true),
    ep("registries/remove", Project(P::Admin), true),
    ep("audit/list", Authenticated, false),
    ep("base-images/list", Authenticated, false),
    ep("base-images/add", Admin, true),
    ep("base-images/remove", Admin, true),
    ep("clusters/list", Admin, false),
    ep("clusters/add", Admin, true),
    ep("clusters/remove", Admin, true),
    ep("clusters/check", Admin, false),
    ep("builds/list", Authenticated, false),
    ep("builds/create", Project(P::Build), true),
    ep("builds/run", Project(P::Build), true),
    ep("builds/cancel", Project(P::Build), true),
    ep("builds/show", Project(P::Read), false),
    ep("builds/runs", Project(P::Read), false),
    ep("builds/artifacts", Project(P::Read), false),
    ep("builds/diagnose", Project(P::Read), false),
    ep("releases/create", Project(P::Release), true),
    ep("releases/list", Project(P::Read), false),
    ep("releases/show", Project(P::Read), false),
    ep("environments/list", Project(P::Read), false),
    ep("environments/save", Project(P::Admin), true),
    ep("environments/delete", Project(P::Admin), true),
    ep("deployments/request", Project(P::Deploy), true),
    ep("deployments/promote", Project(P::Deploy), true),
    ep("deployments/rollback", Project(P::Deploy), true),
    ep("deployments/approve", Project(P::Approve), true),
    ep("deployments/reject", Project(P::Approve), true),
    ep("deployments/show", Project(P::Read), false),
    ep("deployments/board", Project(P::Read), false),
    ep("deployments/diff", Project(P::Read), false),
    ep("pipelines/start", Project(P::Deploy), true),
    ep("pipelines/show", Project(P::Read), false),
    ep("pipelines/list", Project(P::Read), false),
    ep("GET /builds/{build}/export", Project(P::Read), false),
    ep("POST /api/projects/{project}/import", Project(P::Build), true),
    ep("GET /api/builds/{build}/logs", Project(P::Read), false),
    ep("GET /builds/{build}/logs.txt", Project(P::Read), false),
    ep("GET /ws/builds/{build}/logs", Project(P::Read), false),
    ep("GET /healthz", Public, false),
    // Also open to the metrics token (`--metrics-token`), which opens nothing else.
    ep("GET /metrics", Admin, false),
    // The registry token realm: authenticated by a registry credential, not a Slipway login.
    ep("GET /internal/registry/token", Public, false),
    ep("POST /internal/registry/token", Public, false),
];

/// The rule of an endpoint, if it is in the table.
pub fn endpoint(path: &str) -> Option<&'static Endpoint> {
    ENDPOINTS.iter().find(|e| e.path == path)
}

#[cfg(feature = "ssr")]
pub use server::*;

#[cfg(feature = "ssr")]
mod server {
    use super::{endpoint, Access, Endpoint};
    use slipway_engine::auth::Access as Membership;
    use slipway_model::auth::{Principal, Role};
    use slipway_model::{AppError, ErrorCode};

    /// How the caller authenticated, set on every request by the server's middleware.
    #[derive(Debug, Clone, Default)]
    pub struct AuthInfo {
        pub principal: Option<Principal>,
        /// True when the principal came from the session cookie (not a bearer token).
        pub via_cookie: bool,
        /// The raw session token of a cookie login (to end it on logout).
        pub session_token: Option<String>,
        /// The client's address: the socket's peer, or the configured
        /// trusted proxy header's value when the server is set up with one.
        pub ip: Option<String>,
        pub user_agent: Option<String>,
        /// Set `Secure` on cookies: the request came over https (or the
        /// server is configured to always do so).
        pub secure_cookie: bool,
    }

    /// The request's authentication, from the request parts Leptos provides.
    pub fn auth_info() -> AuthInfo {
        leptos::prelude::use_context::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<AuthInfo>().cloned())
            .unwrap_or_default()
    }

    /// The caller, allowed to use `path` (and on `project_id`, for project endpoints).
    #[derive(Debug, Clone)]
    pub struct Guard {
        pub principal: Option<Principal>,
        /// The caller's role in the project, for project endpoints.
        pub role: Option<Role>,
        pub info: AuthInfo,
    }

    impl Guard {
        /// The principal of an authenticated endpoint (always present there).
        pub fn user(&self) -> Result<&Principal, AppError> {
            self.principal.as_ref().ok_or_else(unauthenticated)
        }

        pub fn user_id(&self) -> Option<&str> {
            self.principal.as_ref().map(|p| p.user.id.as_str())
        }
    }

    /// 401 unless someone is logged in; call before looking a resource up, so
    /// an anonymous caller learns nothing about what exists.
    pub fn require_login() -> Result<(), AppError> {
        match auth_info().principal {
            Some(_) => Ok(()),
            None => Err(unauthenticated()),
        }
    }

    /// The 401 for a request without a valid session or token.
    pub fn unauthenticated() -> AppError {
        AppError::new(ErrorCode::Unauthenticated, "log in first (or send `Authorization: Bearer <token>`)")
    }

    /// Checks the caller against the table entry of `path` (server functions;
    /// plain routes and websockets reach [`authorize`] through the server's
    /// extractor). For project endpoints, a caller who is not a member gets
    /// `not_found()` — the same answer as for a resource that does not exist.
    pub async fn require(
        path: &str,
        project_id: Option<&str>,
        not_found: impl FnOnce() -> AppError,
    ) -> Result<Guard, AppError> {
        let ctx = crate::server::context()?;
        let rule = endpoint(path).ok_or_else(|| missing_from_table(path))?;
        authorize(&ctx.store, rule, auth_info(), project_id, not_found).await
    }

    /// The error for an endpoint that is not in [`super::ENDPOINTS`] (a bug).
    pub fn missing_from_table(path: &str) -> AppError {
        tracing::error!(path, "endpoint missing from the authorisation table");
        AppError::internal("this endpoint is not in the authorisation table")
    }

    /// The authorisation decision, the only one: `info`'s caller against
    /// `rule`, in `project_id` for project endpoints.
    ///
    /// * `Public`: anyone. `Authenticated`: 401 without a caller.
    /// * `Admin`: a global administrator acting without a project-scoped
    ///   token (a scoped token is never global admin); else 403.
    /// * `Project(p)`: the caller's role in the project, narrowed by token
    ///   scope, must allow `p`: a non-member (or a token scoped elsewhere)
    ///   gets `not_found()`, a member whose role is not enough a 403.
    pub async fn authorize(
        store: &slipway_engine::Store,
        rule: &Endpoint,
        info: AuthInfo,
        project_id: Option<&str>,
        not_found: impl FnOnce() -> AppError,
    ) -> Result<Guard, AppError> {
        let principal = info.principal.clone();
        match rule.access {
            Access::Public => Ok(Guard { principal, role: None, info }),
            Access::Authenticated => {
                let p = principal.ok_or_else(unauthenticated)?;
                Ok(Guard { principal: Some(p), role: None, info })
            }
            Access::Admin => {
                let p = principal.ok_or_else(unauthenticated)?;
                if !p.is_global_admin() {
                    let why = if p.user.is_admin {
                        "only a Slipway administrator may do this, and not with a project-scoped token: use a session or an unscoped token"
                    } else {
                        "only a Slipway administrator may do this"
                    };
                    return Err(AppError::new(ErrorCode::Forbidden, why));
                }
                Ok(Guard { principal: Some(p), role: Some(Role::Admin), info })
            }
            Access::Project(permission) => {
                let p = principal.ok_or_else(unauthenticated)?;
                let Some(project_id) = project_id else {
                    return Err(not_found());
                };
                let role = store.role_in(project_id, &p.user.id).await?;
                let role = slipway_engine::auth::scoped_role(&p, project_id, role);
                match slipway_engine::auth::access(role, permission) {
                    Membership::Allowed => Ok(Guard { principal: Some(p), role, info }),
                    Membership::NotMember => Err(not_found()),
                    Membership::Insufficient => Err(AppError::new(
                        ErrorCode::Forbidden,
                        format!(
                            "your role in this project ({}) does not allow {}",
                            role.map(|r| r.as_str()).unwrap_or("none"),
                            permission.as_str()
                        ),
                    )),
                }
            }
        }
    }

    /// Writes an audit event for the caller (failures are logged, never lost silently).
    pub async fn audit(
        guard: &Guard,
        action: &str,
        project_id: Option<&str>,
        target: Option<(&str, &str)>,
        detail: serde_json::Value,
    ) {
        let Ok(ctx) = crate::server::context() else { return };
        let record = slipway_engine::auth::AuditRecord {
            actor: guard.principal.as_ref(),
            actor_label: guard.principal.as_ref().map(|p| p.user.username.clone()).unwrap_or_else(|| "anonymous".into()),
            action: action.to_string(),
            project_id: project_id.map(str::to_string),
            target_type: target.map(|t| t.0.to_string()),
            target_id: target.map(|t| t.1.to_string()),
            detail,
            ip: guard.info.ip.clone(),
            user_agent: guard.info.user_agent.clone(),
        };
        if let Err(e) = ctx.store.record_audit(record).await {
            tracing::error!(error = %e, action, "writing an audit event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_listed_once() {
        let mut paths: Vec<_> = ENDPOINTS.iter().map(|e| e.path).collect();
        paths.sort();
        let before = paths.len();
        paths.dedup();
        assert_eq!(before, paths.len());
    }
}
