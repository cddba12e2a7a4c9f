//! The one mapping from an error to an HTTP answer: an [`AppError`] as JSON
//! (`{"code", "message", "problems"}`) with the status its code stands for.
//! Plain routes return [`ApiError`]; the authentication middleware answers
//! with it; server functions (which Leptos answers with 500 whatever the
//! error) are given the same status by [`server_fn_status`], which reads the
//! `AppError` their body carries.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;
use slipway_model::AppError;

/// The status an error's code stands for (422 bad input, 404, 409, 429, 503, …).
pub fn status_of(e: &AppError) -> StatusCode {
    StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An [`AppError`] answered with the status its code stands for.
pub struct ApiError(pub AppError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (status_of(&self.0), Json(self.0)).into_response()
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e)
    }
}

impl From<slipway_engine::Error> for ApiError {
    fn from(e: slipway_engine::Error) -> Self {
        ApiError(e.into())
    }
}

/// Middleware for `/api/`: a server function's 500 whose body is an
/// [`AppError`] gets that error's status (other answers pass untouched).
pub async fn server_fn_status(req: Request<Body>, next: Next) -> Response {
    let is_api = req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    if !is_api || res.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
    };
    if let Ok(err) = serde_json::from_slice::<AppError>(&bytes) {
        parts.status = status_of(&err);
    }
    Response::from_parts(parts, Body::from(bytes))
}
