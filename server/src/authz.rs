//! The extractor through which every plain route and websocket is
//! authorised: [`Caller`] finds the route's rule in the endpoint table
//! (`slipway_app::auth::ENDPOINTS`, keyed `METHOD /matched/path`) and decides
//! with the one decision function, `slipway_app::auth::authorize`, that the
//! server functions use too. A route missing from the table answers 500 (a
//! bug the matrix test catches), never an unchecked 200.
//!
//! Rules other than `Project` are decided during extraction; for a
//! `Project` rule an anonymous caller is refused (401) before the handler
//! looks anything up, and the handler then calls [`Caller::project`] with
//! the project of the resource it found.

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::Method;
use slipway_app::auth::{authorize, endpoint, missing_from_table, unauthenticated, Access, AuthInfo, Endpoint, Guard};
use slipway_engine::Store;
use slipway_model::AppError;

use crate::http::AppState;
use crate::problem::ApiError;

/// The authenticated (or anonymous) caller of a plain route, with its rule.
pub struct Caller {
    rule: &'static Endpoint,
    info: AuthInfo,
    store: Store,
}

impl Caller {
    /// The caller may use this route on `project_id` (the project of the
    /// resource the handler found): the guard, or 401, `not_found()` for a
    /// non-member, 403 for a role without the permission.
    pub async fn project(&self, project_id: &str, not_found: impl FnOnce() -> AppError) -> Result<Guard, AppError> {
        authorize(&self.store, self.rule, self.info.clone(), Some(project_id), not_found).await
    }

    /// How the caller authenticated (address and user agent for the audit trail).
    pub fn info(&self) -> &AuthInfo {
        &self.info
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let path = parts.extensions.get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_default();
        // HEAD is answered by the GET route.
        let method = if parts.method == Method::HEAD { Method::GET } else { parts.method.clone() };
        let key = format!("{method} {path}");
        let rule = endpoint(&key).ok_or_else(|| missing_from_table(&key))?;
        let info = parts.extensions.get::<AuthInfo>().cloned().unwrap_or_default();
        match rule.access {
            Access::Project(_) if info.principal.is_none() => return Err(unauthenticated().into()),
            Access::Project(_) => {}
            _ => {
                authorize(&state.store, rule, info.clone(), None, || AppError::not_found(key.clone())).await?;
            }
        }
        Ok(Caller { rule, info, store: state.store.clone() })
    }
}
