//! Authentication of every request: a bearer token (scripts, the CLI) or the
//! session cookie (the dashboard). The result goes into the request's
//! extensions as an [`AuthInfo`] that server functions and handlers read
//! (the decision itself is `slipway_app::auth::authorize`; plain routes reach
//! it through [`crate::authz::Caller`]).
//! Cookie-authenticated requests that change state, and websocket upgrades,
//! must be same-origin (`Sec-Fetch-Site`, else `Origin` against `Host`).

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use slipway_app::account::SESSION_COOKIE;
use slipway_app::auth::{endpoint, AuthInfo};
use slipway_model::{AppError, ErrorCode};

use crate::http::AppState;

fn error(e: AppError) -> Response {
    crate::problem::ApiError(e).into_response()
}

fn bearer(req: &Request) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_string())
}

fn session_cookie(req: &Request) -> Option<String> {
    req.headers().get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|cookies| {
        cookies.split(';').find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == SESSION_COOKIE && !v.is_empty()).then(|| v.to_string())
        })
    })
}

/// Whether a browser sent this from another site.
fn cross_origin(req: &Request) -> bool {
    if let Some(site) = req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin).trim_end_matches('/');
            origin_host != host
        }
        (Some(_), None) => true,
        // No Origin: not a cross-site browser request (curl, the CLI, same-origin GET).
        (None, _) => false,
    }
}

/// Whether this request changes state (server functions marked `mutates`, or unknown ones).
fn changes_state(req: &Request) -> bool {
    if req.method() == Method::GET || req.method() == Method::HEAD || req.method() == Method::OPTIONS {
        return false;
    }
    match req.uri().path().strip_prefix("/api/") {
        Some(path) => endpoint(path).map(|e| e.mutates).unwrap_or(true),
        None => true,
    }
}

/// The middleware: resolves the caller and refuses cross-origin cookie writes.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let mut info = AuthInfo {
        ip: state.edge.client_ip(&req),
        user_agent: req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(300).collect()),
        secure_cookie: state.edge.secure_cookie(&req),
        ..Default::default()
    };
    let client = slipway_model::auth::ClientInfo { ip: info.ip.clone(), user_agent: info.user_agent.clone() };
    if let Some(token) = bearer(&req) {
        // The metrics token opens `/metrics` and nothing else.
        if req.uri().path() == crate::metrics::PATH && state.metrics.as_ref().is_some_and(|m| m.is_token(&token)) {
            req.extensions_mut().insert(crate::metrics::ScrapeToken);
            req.extensions_mut().insert(info);
            return next.run(req).await;
        }
        match state.store.token_principal(&token).await {
            Ok(Some(p)) => info.principal = Some(p.with_client(client)),
            Ok(None) => {
                return error(AppError::new(
                    ErrorCode::Unauthenticated,
                    "the API token is not valid: unknown, revoked or expired (create a new one on the Account page)",
                ))
            }
            Err(e) => return error(e.into()),
        }
    } else if let Some(token) = session_cookie(&req) {
        match state.store.session_principal(&token).await {
            Ok(Some(p)) => {
                info.principal = Some(p.with_client(client));
                info.via_cookie = true;
                info.session_token = Some(token);
            }
            Ok(None) => {}
            Err(e) => return error(e.into()),
        }
    }
    let is_ws = req.uri().path().starts_with("/ws/");
    if info.via_cookie && (changes_state(&req) || is_ws) && cross_origin(&req) {
        tracing::warn!(path = %req.uri().path(), "refused a cross-origin request carrying the session cookie");
        return error(AppError::new(
            ErrorCode::Forbidden,
            "cross-origin request refused: requests made with the session cookie must come from the Slipway dashboard itself (scripts use a bearer token)",
        ));
    }
    req.extensions_mut().insert(info);
    next.run(req).await
}
