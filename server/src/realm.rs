//! The registry token realm, `/internal/registry/token`: where the Docker
//! engine (and any registry client) exchanges a Slipway registry credential
//! for a short-lived registry token. `GET` speaks the registry token
//! protocol (Basic credentials, `service` and repeated `scope` in the
//! query); `POST` takes the OAuth2 password form (`grant_type=password`,
//! `username`, `password`, `service`, `scope`) or the same Basic header.
//! Anonymous requests and bad or expired credentials get 401.

use axum::body::Bytes;
use axum::extract::{FromRef, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use slipway_engine::registry_auth::{basic_credentials, Refusal, TokenIssuer};
use slipway_model::{AppError, ErrorCode};

use crate::http::AppState;

/// The path the registry's challenges name as their realm.
pub const PATH: &str = "/internal/registry/token";

/// The issuer this process answers for, if it issues registry tokens.
#[derive(Clone)]
pub struct Realm(pub Option<TokenIssuer>);

impl FromRef<AppState> for Realm {
    fn from_ref(state: &AppState) -> Self {
        Realm(state.registry_tokens.clone())
    }
}

/// The registry token protocol's answer: the error as everywhere else, with
/// the status that protocol expects (a registry client reads 401 as "send
/// credentials") and its Basic challenge.
fn error(status: StatusCode, e: AppError) -> Response {
    let mut res = crate::problem::ApiError(e).into_response();
    *res.status_mut() = status;
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"Slipway registry\""));
    }
    res
}

fn issue(realm: &Realm, password: Option<&str>, service: Option<&str>, scopes: &[String]) -> Response {
    let Some(issuer) = &realm.0 else {
        return error(StatusCode::NOT_FOUND, AppError::not_found("registry token service (this Slipway does not issue registry tokens)"));
    };
    match issuer.exchange(password, service, scopes) {
        Ok(token) => {
            tracing::info!(subject = %token.subject, access = ?token.access, "issued a registry token");
            (StatusCode::OK, Json(token)).into_response()
        }
        Err(e @ (Refusal::NoCredentials | Refusal::BadCredentials)) => {
            tracing::info!(reason = %e, "refused a registry token");
            error(StatusCode::UNAUTHORIZED, AppError::new(ErrorCode::Unauthenticated, e.to_string()))
        }
        Err(e @ Refusal::WrongService(_)) => error(StatusCode::UNPROCESSABLE_ENTITY, AppError::invalid("service", e.to_string())),
    }
}

fn basic_password(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    basic_credentials(value).map(|(_, password)| password)
}

fn all(params: &[(String, String)], key: &str) -> Vec<String> {
    params.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
}

fn first<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `GET /internal/registry/token?service=…&scope=…`: the registry token protocol.
pub async fn token_get(State(realm): State<Realm>, headers: HeaderMap, Query(params): Query<Vec<(String, String)>>) -> Response {
    issue(&realm, basic_password(&headers).as_deref(), first(&params, "service"), &all(&params, "scope"))
}

/// `POST /internal/registry/token`: the OAuth2 password form.
pub async fn token_post(State(realm): State<Realm>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, AppError::invalid("body", "expected an application/x-www-form-urlencoded form"));
    };
    if let Some(grant) = first(&params, "grant_type").filter(|g| *g != "password") {
        return error(StatusCode::UNPROCESSABLE_ENTITY, AppError::invalid("grant_type", format!("`{grant}` is not supported; use `password`")));
    }
    let password = first(&params, "password").map(str::to_string).or_else(|| basic_password(&headers));
    let scopes: Vec<String> = all(&params, "scope");
    issue(&realm, password.as_deref(), first(&params, "service"), &scopes)
}

/// A router serving only the realm, for `slipway-server services` (the
/// test suite's registry gets its tokens there).
pub fn router(issuer: TokenIssuer) -> axum::Router {
    axum::Router::new()
        .route(PATH, axum::routing::get(token_get).post(token_post))
        .with_state(Realm(Some(issuer)))
}
