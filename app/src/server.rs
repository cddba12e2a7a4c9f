//! Server-side helpers for server functions: the context they run in.

use slipway_engine::Store;
use slipway_model::AppError;

/// What every server function can reach; provided by the server per request.
#[derive(Clone)]
pub struct AppContext {
    pub store: Store,
    /// Encrypts project secrets; `None` when the server has no key.
    pub secrets: Option<std::sync::Arc<slipway_engine::secrets::SecretBox>>,
    /// Slipway's registry (`host:port`), `None` when pushing is disabled:
    /// image names are checked against it when a build is created.
    pub registry: Option<String>,
}

/// The request's context, or an internal error if the server did not provide it.
pub fn context() -> Result<AppContext, AppError> {
    leptos::prelude::use_context::<AppContext>()
        .ok_or_else(|| AppError::internal("server context missing; this is a bug in the server setup"))
}
