//! Router tests: the whole `app(state)` driven with `oneshot`, against a fresh
//! database from `#[sqlx::test]`, the real Docker engine and the test registry.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use leptos::config::LeptosOptions;
use serde_json::{json, Value};
use slipway_engine::Store;
use slipway_server::{app, AppState};
use slipway_testkit::git::{empty_repo, repo};
use sqlx::PgPool;
use tower::ServiceExt;

/// The router, and an administrator's API token for calling it.
struct TestApp {
    router: Router,
    token: String,
}

async fn router(pool: PgPool) -> TestApp {
    let store = Store::from_pool(pool);
    let admin = store.create_user("root-admin", None, "a long enough password", true).await.unwrap();
    let principal = slipway_model::auth::Principal {
        user: admin,
        token_id: None,
        token_project: None,
        client: Default::default(),
    };
    let token = store
        .create_token(&principal, &slipway_model::auth::NewToken { name: "tests".into(), project: None, expires_in_days: None })
        .await
        .unwrap()
        .token;
    TestApp { router: router_with(store).await, token }
}

async fn router_with(store: Store) -> Router {
    let leptos = LeptosOptions::builder().output_name("slipway").site_root("target/site").site_pkg_dir("pkg").build();
    let docker = bollard::Docker::connect_with_local_defaults().ok();
    let registry = std::env::var("SLIPWAY_REGISTRY").ok().filter(|r| r != "none");
    let registry_tokens = registry.as_deref().and_then(|r| slipway_engine::registry_auth::TokenIssuer::from_env(r).expect("a usable SLIPWAY_REGISTRY_TOKEN_KEY"));
    app(AppState {
        leptos,
        log_hub: slipway_engine::logs::LogHub::start(store.clone()),
        store,
        docker,
        docker_endpoint: "unix:///var/run/docker.sock".into(),
        registry,
        registry_tokens,
        secrets: None,
        metrics: None,
        edge: Default::default(),
    })
}

async fn call(app: &TestApp, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, String) {
    let router = &app.router;
    let mut req = Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {}", app.token));
    if body.is_some() {
        req = req.header("content-type", "application/json").header("accept", "application/json");
    }
    let req = req.body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty)).unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn healthz_reports_database_engine_and_registry(pool: PgPool) {
    let router = router(pool).await;
    let (status, body) = call(&router, "GET", "/healthz", None).await;
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["database"]["status"], "ok", "{body}");
    assert!(health["database"]["detail"].as_str().unwrap().starts_with("PostgreSQL"), "{body}");
    // CI starts the engine and a registry before the tests; both must be up.
    assert_eq!(health["docker"]["status"], "ok", "{body}");
    assert_eq!(health["registry"]["status"], "ok", "{body}");
    assert_eq!(status, StatusCode::OK);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn project_round_trip_through_the_api(pool: PgPool) {
    let router = router(pool).await;
    let repo = empty_repo();
    let body = json!({ "input": { "name": "Checkout", "repo_url": repo.path() } }).to_string();
    let (status, created) = call(&router, "POST", "/api/projects/create", Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(created["slug"], "checkout");

    let (status, listed) = call(&router, "POST", "/api/projects/list", Some("{}")).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["id"], created["id"]);
    assert_eq!(listed[0]["build_count"], 0);

    let (status, shown) = call(&router, "POST", "/api/projects/show", Some(r#"{"project":"checkout"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(serde_json::from_str::<Value>(&shown).unwrap()["id"], created["id"]);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn bad_input_is_422_naming_every_field_never_500(pool: PgPool) {
    let router = router(pool).await;
    let (status, body) =
        call(&router, "POST", "/api/projects/create", Some(r#"{"input":{"name":"","repo_url":"relative/path"}}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["code"], "invalid_input");
    let fields: Vec<&str> = err["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name", "repo_url"]);

    // Not JSON at all, and JSON missing the argument: still a 4xx with a reason.
    for bad in ["{not json", r#"{"wrong":1}"#] {
        let (status, body) = call(&router, "POST", "/api/projects/create", Some(bad)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(body.contains("invalid_input"), "{body}");
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn duplicate_project_is_409_and_unknown_project_is_404(pool: PgPool) {
    let router = router(pool).await;
    let repo = empty_repo();
    let body = json!({ "input": { "name": "dup", "repo_url": repo.path() } }).to_string();
    assert_eq!(call(&router, "POST", "/api/projects/create", Some(&body)).await.0, StatusCode::OK);
    let (status, again) = call(&router, "POST", "/api/projects/create", Some(&body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert!(again.contains("\"field\":\"name\""), "{again}");
    let (status, missing) = call(&router, "POST", "/api/projects/show", Some(r#"{"project":"ghost"}"#)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn dashboard_pages_render_on_the_server(pool: PgPool) {
    let router = router(pool).await;
    let repo = empty_repo();
    let body = json!({ "input": { "name": "rendered-project", "repo_url": repo.path() } }).to_string();
    call(&router, "POST", "/api/projects/create", Some(&body)).await;
    let (status, html) = call(&router, "GET", "/projects", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("rendered-project"), "server-rendered list lacks the project");
    assert!(html.contains("/pkg/slipway.js"), "hydration script missing");
    let (status, _) = call(&router, "GET", "/no/such/page", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A repository whose `main` holds a one-service manifest.
fn repo_with_manifest() -> tempfile::TempDir {
    repo(&[(".slipway/manifest.yaml", "services:\n  api:\n    build: api\n"), ("api/Dockerfile", "FROM scratch\n")])
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn build_endpoints_answer_with_statuses_that_name_the_problem(pool: PgPool) {
    let router = router(pool).await;
    let repo = repo_with_manifest();
    let body = json!({ "input": { "name": "builder", "repo_url": repo.path() } }).to_string();
    assert_eq!(call(&router, "POST", "/api/projects/create", Some(&body)).await.0, StatusCode::OK);

    // Created but not run: a spec with the manifest hash of the commit.
    let (status, created) =
        call(&router, "POST", "/api/builds/create", Some(r#"{"input":{"project":"builder","run":false}}"#)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();
    let build_id = created["spec"]["id"].as_str().unwrap().to_string();
    assert!(build_id.starts_with("bld_"));
    assert_eq!(created["runs"].as_array().unwrap().len(), 0);

    let (status, body) =
        call(&router, "POST", "/api/builds/create", Some(r#"{"input":{"project":"builder","services":["nope"]}}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("services[0]"), "{body}");

    let (status, body) = call(&router, "POST", "/api/builds/show", Some(r#"{"build":"not-an-id"}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("\"field\":\"build\""), "{body}");

    let ghost = slipway_model::id::encode("bld", uuid::Uuid::nil());
    let (status, _) = call(&router, "POST", "/api/builds/show", Some(&json!({ "build": ghost }).to_string())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = call(&router, "POST", "/api/builds/cancel", Some(&json!({ "build": build_id }).to_string())).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing to cancel: {body}");

    let (status, run) = call(&router, "POST", "/api/builds/run", Some(&json!({ "build": build_id }).to_string())).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let (status, body) = call(&router, "POST", "/api/builds/run", Some(&json!({ "build": build_id }).to_string())).await;
    assert_eq!(status, StatusCode::CONFLICT, "one active run per build: {body}");

    let (status, cancelled) = call(&router, "POST", "/api/builds/cancel", Some(&json!({ "build": build_id }).to_string())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_str::<Value>(&cancelled).unwrap()["status"], "cancelled");

    let (status, page) = call(&router, "POST", "/api/builds/list", Some(r#"{"query":{"project":"builder"}}"#)).await;
    assert_eq!(status, StatusCode::OK);
    let page: Value = serde_json::from_str(&page).unwrap();
    assert_eq!(page["items"][0]["id"], build_id.as_str());
    assert_eq!(page["items"][0]["status"], "cancelled");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn auto_release_is_a_project_setting_an_admin_can_switch(pool: PgPool) {
    let router = router(pool).await;
    let repo = empty_repo();
    let body = json!({ "input": { "name": "convoxy", "repo_url": repo.path() } }).to_string();
    assert_eq!(call(&router, "POST", "/api/projects/create", Some(&body)).await.0, StatusCode::OK);
    let (status, updated) = call(&router, "POST", "/api/projects/settings", Some(r#"{"project":"convoxy","auto_release":true}"#)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(serde_json::from_str::<Value>(&updated).unwrap()["auto_release"], true);
    let (_, shown) = call(&router, "POST", "/api/projects/show", Some(r#"{"project":"convoxy"}"#)).await;
    assert_eq!(serde_json::from_str::<Value>(&shown).unwrap()["auto_release"], true);
}
