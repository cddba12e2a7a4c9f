//! `GET /metrics`: this process's metrics in Prometheus' text format, for a
//! global administrator's token or the metrics token (`--metrics-token`),
//! optionally on an address of its own (`--metrics-addr`).
//!
//! The engine records builds, logs, deployments and gates through the
//! `metrics` facade (`slipway_engine::metrics`); this module installs the
//! recorder (`metrics-exporter-prometheus`), times every HTTP request by
//! endpoint and status, and adds the gauges read at scrape time: database
//! pool use, queued runs, websocket followers.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use slipway_engine::metrics as m;

use crate::authz::Caller;
use crate::http::AppState;

/// Where the metrics are served.
pub const PATH: &str = "/metrics";

/// HTTP requests by `endpoint` (a server function's name or `METHOD /route`) and `status`.
pub const HTTP_DURATION: &str = "slipway_http_request_duration_seconds";
/// Log followers connected to this process.
pub const FOLLOWERS: &str = "slipway_websocket_followers";
/// Connections of this process's database pool, by `state` (`idle`, `in_use`).
pub const DB_POOL: &str = "slipway_db_pool_connections";
/// The database pool's limit.
pub const DB_POOL_MAX: &str = "slipway_db_pool_max_connections";
/// Build runs waiting in the queue (all replicas: read from the database).
pub const QUEUED_RUNS: &str = "slipway_build_runs_queued";

const HTTP_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// What `/metrics` needs: the recorder's handle and who may read it.
pub struct Metrics {
    handle: PrometheusHandle,
    /// A token that reads `/metrics` and nothing else (`None`: global administrators only).
    token: Option<String>,
}

impl Metrics {
    /// This process's metrics (the recorder is installed on first use).
    /// `None` when another recorder was installed first.
    pub fn new(token: Option<String>) -> Option<Arc<Metrics>> {
        let handle = recorder()?;
        let token = token.filter(|t| !t.trim().is_empty());
        Some(Arc::new(Metrics { handle, token }))
    }

    /// Whether `presented` is the metrics token (compared in constant time).
    pub fn is_token(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.token.as_deref().is_some_and(|t| t.len() == presented.len() && bool::from(t.as_bytes().ct_eq(presented.as_bytes())))
    }
}

/// The process's one recorder: installed once, shared by every router of the process.
fn recorder() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), HTTP_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(m::BUILD_DURATION.into()), m::BUILD_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(m::QUEUE_WAIT.into()), m::BUILD_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(m::APPROVAL_WAIT.into()), m::APPROVAL_BUCKETS));
            match builder.map(|b| b.install_recorder()) {
                Ok(Ok(handle)) => {
                    describe();
                    Some(handle)
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "metrics are off: another recorder is installed");
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics are off: bad histogram buckets");
                    None
                }
            }
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(m::BUILD_RUNS, "Build runs that ended, by status, backend and diagnosis class.");
    describe_histogram!(m::BUILD_DURATION, Unit::Seconds, "How long build runs took, start to end.");
    describe_histogram!(m::QUEUE_WAIT, Unit::Seconds, "How long build runs waited in the queue before a worker claimed them.");
    describe_counter!(m::LOG_LINES, "Build log lines stored.");
    describe_counter!(m::DEPLOYMENTS, "Deployments that ended, by environment and outcome.");
    describe_histogram!(m::APPROVAL_WAIT, Unit::Seconds, "How long approved deployments waited for their approvals.");
    describe_counter!(m::GATE_DECISIONS, "Decisions of deployment gates.");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "HTTP requests by endpoint and status.");
    describe_gauge!(FOLLOWERS, "Build log followers connected to this process.");
    describe_gauge!(DB_POOL, "Connections of the database pool, by state.");
    describe_gauge!(DB_POOL_MAX, "The database pool's connection limit.");
    describe_gauge!(QUEUED_RUNS, "Build runs waiting in the queue.");
}

/// Keeps histogram memory bounded between scrapes.
pub fn spawn_upkeep(metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            metrics.handle.run_upkeep();
        }
    })
}

/// Middleware: times each request under its endpoint's name. Names come
/// from the route table, never from the path itself, so a caller cannot
/// invent new series.
pub async fn track(req: Request, next: Next) -> Response {
    let endpoint = endpoint_label(&req);
    let started = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::histogram!(HTTP_DURATION, "endpoint" => endpoint, "status" => status).record(started.elapsed().as_secs_f64());
    res
}

fn endpoint_label(req: &Request) -> String {
    if let Some(name) = req.uri().path().strip_prefix("/api/") {
        if let Some(e) = slipway_app::auth::endpoint(name) {
            return e.path.to_string();
        }
    }
    match req.extensions().get::<MatchedPath>() {
        Some(path) if path.as_str() != "/api/{*fn_name}" => format!("{} {}", req.method(), path.as_str()),
        _ => "other".to_string(),
    }
}

/// Marks a request that presented the metrics token (set by the authentication middleware).
#[derive(Clone, Copy)]
pub struct ScrapeToken;

/// `GET /metrics`.
pub async fn scrape(State(state): State<AppState>, req: Request) -> Response {
    if req.extensions().get::<ScrapeToken>().is_none() {
        let (mut parts, _) = req.into_parts();
        if let Err(e) = <Caller as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, &state).await {
            return e.into_response();
        }
    }
    let Some(metrics) = state.metrics.clone() else {
        return (StatusCode::NOT_FOUND, "metrics are off in this process").into_response();
    };
    refresh_gauges(&state).await;
    metrics.handle.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.handle.render()).into_response()
}

async fn refresh_gauges(state: &AppState) {
    let pool = state.store.pool();
    let size = pool.size() as f64;
    let idle = pool.num_idle() as f64;
    metrics::gauge!(DB_POOL, "state" => "idle").set(idle);
    metrics::gauge!(DB_POOL, "state" => "in_use").set((size - idle).max(0.0));
    metrics::gauge!(DB_POOL_MAX).set(pool.options().get_max_connections() as f64);
    metrics::gauge!(FOLLOWERS).set(state.edge.followers() as f64);
    match state.store.queued_run_count().await {
        Ok(n) => metrics::gauge!(QUEUED_RUNS).set(n as f64),
        Err(e) => tracing::warn!(error = %e, "counting queued runs for /metrics"),
    }
}

/// `/metrics` alone, for `--metrics-addr`.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route(PATH, axum::routing::get(scrape))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::authn::authenticate))
        .with_state(state)
}
