//! `/metrics`: who may read it, that it parses as Prometheus' text format,
//! and that what Slipway did shows up in it (requests by endpoint, a real
//! build on the Docker engine, its log lines, an approval and a deployment
//! decision), without letting a caller invent series.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use slipway_engine::builds::buildkit::BuildKitBackend;
use slipway_engine::builds::create::create_build;
use slipway_engine::builds::runner::{Runner, RunnerConfig};
use slipway_engine::embedded::BASE_IMAGE;
use slipway_engine::Store;
use slipway_engine::pipeline;
use slipway_engine::release::{self, LocalDockerTarget};
use slipway_model::build::NewBuild;
use slipway_model::release::{DeployRequest, DeploymentKind, NewRelease};
use slipway_model::status::DeploymentStatus;
use slipway_model::project::NewProject;
use slipway_model::status::BuildRunStatus;
use slipway_server::{app, AppState, Metrics};
use slipway_testkit::git::repo;
use slipway_testkit::services::docker;
use slipway_testkit::users::{token_for, user};
use sqlx::PgPool;

const METRICS_TOKEN: &str = "metrics-scrape-token-for-tests";

fn router(store: &Store) -> Router {
    let mut state = AppState::for_tests(support::leptos(), store.clone());
    state.metrics = Metrics::new(Some(METRICS_TOKEN.into()));
    assert!(state.metrics.is_some(), "the test process installs the Prometheus recorder");
    app(state)
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut req = Request::builder().method("GET").uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.body(Body::empty()).unwrap()
}

/// Scrapes `/metrics` with the metrics token and parses it.
async fn scrape(router: &Router) -> prometheus_parse::Scrape {
    let (status, text) = support::send(router, get("/metrics", Some(METRICS_TOKEN))).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// The value of the sample `name` whose labels include `labels` (0 when absent).
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref buckets) => buckets.last().map(|b| b.count).unwrap_or(0.0),
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn metrics_answer_only_an_administrator_or_the_metrics_token(pool: PgPool) {
    let store = Store::from_pool(pool);
    let router = router(&store);
    let admin = token_for(&store, "metrics-admin", true).await;
    let developer = token_for(&store, "metrics-dev", false).await;
    assert_eq!(support::send(&router, get("/metrics", None)).await.0, StatusCode::UNAUTHORIZED, "anonymous");
    assert_eq!(support::send(&router, get("/metrics", Some(&developer))).await.0, StatusCode::FORBIDDEN, "a user who is not an administrator");
    assert_eq!(support::send(&router, get("/metrics", Some("not-the-metrics-token"))).await.0, StatusCode::UNAUTHORIZED, "a wrong token");
    assert_eq!(support::send(&router, get("/metrics", Some(&admin))).await.0, StatusCode::OK, "a global administrator");
    assert_eq!(support::send(&router, get("/metrics", Some(METRICS_TOKEN))).await.0, StatusCode::OK, "the metrics token");
    // The metrics token opens /metrics and nothing else.
    let (status, body) = support::send(&router, support::post("projects/list", Some(METRICS_TOKEN), &serde_json::json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = support::send(&router, get("/healthz", Some(METRICS_TOKEN))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the metrics token is no API token");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn requests_are_counted_by_endpoint_and_status_and_paths_never_become_series(pool: PgPool) {
    let store = Store::from_pool(pool);
    let router = router(&store);
    let developer = token_for(&store, "metrics-counted", false).await;
    let before = scrape(&router).await;
    for _ in 0..3 {
        // 503 here (no engine in this router): counted under its status all the same.
        support::send(&router, get("/healthz", None)).await;
    }
    let (status, _) = support::send(&router, support::post("projects/list", Some(&developer), &serde_json::json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = support::send(&router, support::post("projects/show", Some(&developer), &serde_json::json!({ "project": "nope" }))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Paths a caller makes up: an unknown server function and a random route.
    support::send(&router, support::post("invented-fn-7f3a", Some(&developer), &serde_json::json!({}))).await;
    support::send(&router, get("/random-path-9c1e/deeper", None)).await;
    let after = scrape(&router).await;
    let count = |s: &prometheus_parse::Scrape, labels: &[(&str, &str)]| value(s, "slipway_http_request_duration_seconds_count", labels);
    assert!(count(&after, &[("endpoint", "GET /healthz")]) - count(&before, &[("endpoint", "GET /healthz")]) >= 3.0);
    assert!(count(&after, &[("endpoint", "projects/list"), ("status", "200")]) - count(&before, &[("endpoint", "projects/list"), ("status", "200")]) >= 1.0);
    assert!(count(&after, &[("endpoint", "projects/show"), ("status", "404")]) - count(&before, &[("endpoint", "projects/show"), ("status", "404")]) >= 1.0);
    assert!(
        after.samples.iter().all(|s| s.labels.values().all(|v| !v.contains("invented-fn") && !v.contains("random-path"))),
        "a made-up path became a label"
    );
    assert!(value(&after, "slipway_db_pool_max_connections", &[]) >= 1.0, "the pool's limit is exported");
    assert!(after.samples.iter().any(|s| s.metric == "slipway_db_pool_connections" && s.labels.get("state") == Some("in_use")));
    assert!(after.samples.iter().any(|s| s.metric == "slipway_build_runs_queued"));
    assert!(after.samples.iter().any(|s| s.metric == "slipway_websocket_followers"));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_build_and_its_gated_deployment_show_up_as_runs_durations_log_lines_decisions_and_outcomes(pool: PgPool) {
    let store = Store::from_pool(pool);
    let router = router(&store);
    let docker = docker().await;
    let nonce = slipway_model::id::new_id("n");
    let repo = repo(&[
        (".slipway/manifest.yaml", "registry: none\nservices:\n  api:\n    build: api\nenvironments:\n  - name: production\n    approval:\n      required: 1\n"),
        ("api/Dockerfile", &format!("FROM {BASE_IMAGE}\nRUN echo {nonce} > /marker\n")),
    ]);
    let project = store
        .create_project(&NewProject { name: "metered".into(), repo_url: repo.path().display().to_string(), ..Default::default() }, None)
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let runner = Runner::new(store.clone(), docker.clone(), Arc::new(BuildKitBackend::new(docker)), None, RunnerConfig::new(work.path().to_path_buf(), None));
    let before = scrape(&router).await;
    let d = create_build(&store, &NewBuild { project: project.id.clone(), run: true, ..Default::default() }, None).await.unwrap();
    runner.run_once().await.unwrap().expect("a queued run");
    let d = store.get_build(&d.spec.id).await.unwrap();
    assert_eq!(d.runs[0].status, BuildRunStatus::Completed, "{:?}", d.runs[0].error_message);
    let after = scrape(&router).await;
    let runs = |s: &prometheus_parse::Scrape| value(s, "slipway_build_runs_total", &[("status", "completed"), ("backend", "buildkit")]);
    assert_eq!(runs(&after) - runs(&before), 1.0, "one completed run");
    let durations = |s: &prometheus_parse::Scrape| value(s, "slipway_build_duration_seconds_count", &[("backend", "buildkit")]);
    assert_eq!(durations(&after) - durations(&before), 1.0, "its duration was observed once");
    let waits = |s: &prometheus_parse::Scrape| value(s, "slipway_build_queue_wait_seconds_count", &[]);
    assert_eq!(waits(&after) - waits(&before), 1.0, "its queue wait was observed once");
    let stored: (i64,) = sqlx::query_as("SELECT count(*) FROM build_logs WHERE run_id = $1").bind(&d.runs[0].id).fetch_one(store.pool()).await.unwrap();
    let lines = |s: &prometheus_parse::Scrape| value(s, "slipway_log_lines_ingested_total", &[]);
    // Other tests in this process may log at the same time: at least this run's lines.
    assert!(lines(&after) - lines(&before) >= stored.0 as f64, "{} lines stored, {} counted", stored.0, lines(&after) - lines(&before));

    // Its release through production's gate: one rejection, then an approval and a rollout.
    let release = release::create_release(&store, &NewRelease { project: project.slug.clone(), build: d.spec.id.clone(), ..Default::default() }, None)
        .await
        .unwrap();
    let developer = user(&store, "metrics-requester", false).await;
    let approver = user(&store, "metrics-approver", false).await;
    let request = DeployRequest { environment: "production".into(), release: release.tag.clone(), ..Default::default() };
    let rejected = pipeline::request_deploy(&store, &project.slug, &request, Some(&developer.id), DeploymentKind::Deploy).await.unwrap();
    release::reject(&store, &rejected.id, &approver.id, true).await.unwrap();
    let waiting = pipeline::request_deploy(&store, &project.slug, &request, Some(&developer.id), DeploymentKind::Deploy).await.unwrap();
    let approved = release::approve(&store, &waiting.id, &approver.id, true).await.unwrap();
    assert_eq!(approved.status, DeploymentStatus::Deploying, "one approval satisfies the gate");
    let labels = std::collections::BTreeMap::from([("dev.slipway.test".to_string(), "metrics".to_string())]);
    let target = LocalDockerTarget::new(bollard::Docker::connect_with_local_defaults().unwrap()).with_labels(labels);
    let done = release::execute_deployment(&store, &target, &waiting.id).await.unwrap();
    let end = scrape(&router).await;
    let decisions = |s: &prometheus_parse::Scrape, d: &str| value(s, "slipway_gate_decisions_total", &[("decision", d)]);
    assert_eq!(decisions(&end, "rejected") - decisions(&after, "rejected"), 1.0);
    assert_eq!(decisions(&end, "approved") - decisions(&after, "approved"), 1.0);
    let waits = |s: &prometheus_parse::Scrape| value(s, "slipway_approval_wait_seconds_count", &[("environment", "production")]);
    assert_eq!(waits(&end) - waits(&after), 1.0, "the approval that satisfied the gate was timed");
    let outcome = done.status.as_str();
    let deployments = |s: &prometheus_parse::Scrape| value(s, "slipway_deployments_total", &[("environment", "production"), ("outcome", outcome)]);
    assert_eq!(deployments(&end) - deployments(&after), 1.0, "the rollout ended as {outcome}");
    remove_test_containers().await;
}

/// Removes the containers this test's deployments started.
async fn remove_test_containers() {
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let filters = std::collections::HashMap::from([("label".to_string(), vec!["dev.slipway.test=metrics".to_string()])]);
    let options = bollard::query_parameters::ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    for c in docker.list_containers(Some(options)).await.unwrap_or_default() {
        if let Some(id) = c.id {
            let _ = docker.remove_container(&id, Some(bollard::query_parameters::RemoveContainerOptions { force: true, ..Default::default() })).await;
        }
    }
}
