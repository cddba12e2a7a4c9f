//! The router: `/healthz`, server functions under `/api/`, the Leptos pages,
//! and static files — with request tracing and error statuses that match the
//! error (never a 500 for bad input).

use axum::body::Body;
use axum::extract::{FromRef, Request, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, handle_server_fns_with_context, LeptosRoutes};
use slipway_app::server::AppContext;
use slipway_app::{shell, App};
use slipway_engine::Store;
use axum::http::{header, HeaderValue};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::services::ServeDir;
use tower_http::set_header::{SetResponseHeader, SetResponseHeaderLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Everything a request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub leptos: LeptosOptions,
    pub store: Store,
    pub docker: Option<bollard::Docker>,
    pub docker_endpoint: String,
    /// `host:port` of the registry, or `None` when pushing is disabled.
    pub registry: Option<String>,
    /// This process's fan-out of live build logs.
    pub log_hub: slipway_engine::logs::LogHub,
    /// Encrypts project secrets (`None`: secrets cannot be set).
    pub secrets: Option<std::sync::Arc<slipway_engine::secrets::SecretBox>>,
    /// Issues the tokens of Slipway's registry (`None`: the registry does
    /// not authenticate with Slipway's tokens). Serves the realm and signs
    /// the credentials of imports and exports.
    pub registry_tokens: Option<slipway_engine::registry_auth::TokenIssuer>,
    /// Client address, cookie security and per-process limits.
    pub edge: std::sync::Arc<crate::edge::Edge>,
    /// This process's metrics for `/metrics` (`None`: not served).
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

impl AppState {
    /// A state with the database only: no engine, no registry (tests and tools).
    /// Must be called inside a tokio runtime (it starts the log hub).
    pub fn for_tests(leptos: LeptosOptions, store: Store) -> AppState {
        let secrets = std::sync::Arc::new(slipway_engine::secrets::SecretBox::new(
            slipway_engine::secrets::MasterKey::from_bytes([9; 32]),
        ));
        let store = store.with_secrets(secrets.clone());
        AppState {
            leptos,
            log_hub: slipway_engine::logs::LogHub::start(store.clone()),
            store,
            docker: None,
            docker_endpoint: "not connected".into(),
            registry: None,
            registry_tokens: None,
            edge: Default::default(),
            metrics: crate::metrics::Metrics::new(None),
            secrets: Some(secrets),
        }
    }

    fn context(&self) -> AppContext {
        AppContext { store: self.store.clone(), secrets: self.secrets.clone(), registry: self.registry.clone() }
    }
}

/// Builds the whole router; tests call this directly.
pub fn app(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let ctx = state.context();
    let page_ctx = ctx.clone();
    let options = state.leptos.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/api/{*fn_name}",
            get(server_fn_handler).post(server_fn_handler),
        )
        .route("/ws/builds/{build}/logs", get(crate::ws::follow_logs))
        .route("/api/builds/{build}/logs", get(crate::ws::log_page))
        .route("/builds/{build}/logs.txt", get(crate::ws::log_text))
        .route("/builds/{build}/export", get(crate::transfer::export))
        .route(crate::realm::PATH, get(crate::realm::token_get).post(crate::realm::token_post))
        .route(crate::metrics::PATH, get(crate::metrics::scrape))
        .leptos_routes_with_context(&state, routes, move || provide_context(page_ctx.clone()), move || shell(options.clone()))
        // The dashboard's wasm, JS and CSS: precompressed by `cargo xtask`
        // (brotli, gzip), revalidated by date on each load.
        .nest_service("/pkg", assets(&state.leptos))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        // Every body but an import's is read into memory, so it is bounded.
        .layer(middleware::from_fn_with_state(state.edge.clone(), crate::edge::limit_body))
        .route("/api/projects/{project}/import", axum::routing::post(crate::transfer::import))
        .layer(middleware::from_fn(crate::problem::server_fn_status))
        .layer(middleware::from_fn_with_state(state.clone(), crate::authn::authenticate))
        .layer(middleware::from_fn(crate::metrics::track))
        // Pages and answers compressed on the way out (quality 4: most of
        // the gain for little CPU); precompressed assets pass untouched.
        .layer(CompressionLayer::new().quality(CompressionLevel::Precise(4)))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(access_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// `/pkg/*` from the site root, with the `.br`/`.gz` files beside each asset.
fn assets(leptos: &LeptosOptions) -> SetResponseHeader<ServeDir, HeaderValue> {
    use tower::Layer;
    let dir = std::path::Path::new(leptos.site_root.as_ref()).join(leptos.site_pkg_dir.as_ref());
    let files = ServeDir::new(dir).precompressed_br().precompressed_gzip();
    SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")).layer(files)
}

async fn server_fn_handler(State(state): State<AppState>, req: Request<Body>) -> impl IntoResponse {
    let ctx = state.context();
    handle_server_fns_with_context(move || provide_context(ctx.clone()), req).await
}

/// The access log's span: method and path, never the query string (a setup
/// link carries its one-time token there).
fn access_span(req: &Request<Body>) -> tracing::Span {
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), version = ?req.version())
}

/// `GET /healthz`: database, Docker engine and registry, as JSON; 503 when degraded.
async fn healthz(State(state): State<AppState>, _public: crate::authz::Caller) -> impl IntoResponse {
    let health =
        slipway_engine::health::check(&state.store, state.docker.as_ref(), &state.docker_endpoint, state.registry.as_deref()).await;
    let status = if health.status == "ok" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(health))
}
