//! The authorisation matrix: every endpoint of the table × every kind of
//! caller, through the whole router, against a fresh database. Plus the
//! same-origin rule for cookies, revoked tokens, rate limits, and a scan for
//! secret values in responses, pages and log lines.

mod support;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use leptos::config::LeptosOptions;
use serde_json::{json, Value};
use slipway_app::auth::{Access, ENDPOINTS};
use slipway_engine::Store;
use slipway_model::auth::{NewToken, Principal, Role};
use slipway_model::project::NewProject;
use slipway_server::{app, AppState};
use slipway_testkit::records::record_spec;
use sqlx::PgPool;
use slipway_testkit::users::{token_for, PASSWORD};
use support::send;
use tower::ServiceExt;

struct World {
    router: Router,
    store: Store,
    project: String,
    build: String,
    run: String,
    deployment: String,
    pipeline_run: String,
    tokens: Vec<(Caller, Option<String>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Member(Role),
    OtherProjectAdmin,
    GlobalAdmin,
    /// A global administrator's token scoped to the other project: never
    /// global admin, a stranger to this project.
    ScopedGlobalAdmin,
}

async fn world(pool: PgPool) -> World {
    let store = Store::from_pool(pool);
    let root = store.create_user("root", None, PASSWORD, true).await.unwrap();
    let root_p = Principal { user: root, token_id: None, token_project: None, client: Default::default() };
    let project = store
        .create_project(&NewProject { name: "alpha".into(), repo_url: "https://git.example/alpha.git".into(), ..Default::default() }, None)
        .await
        .unwrap();
    let other = store
        .create_project(&NewProject { name: "beta".into(), repo_url: "https://git.example/beta.git".into(), ..Default::default() }, None)
        .await
        .unwrap();
    let (sha, hash) = ("a".repeat(40), "b".repeat(64));
    let spec_id = record_spec(&store, &project.id, &sha, &hash).await;
    // A completed run with an artifact, a release of it, two environments
    // (prod gated) and a deployment to prod awaiting approval.
    let first = store.enqueue_run(&spec_id, None, false).await.unwrap();
    store.claim_run("authz", std::time::Duration::from_secs(60), "test").await.unwrap().unwrap();
    store
        .insert_artifact(&first.id, &spec_id, &slipway_engine::builds::ArtifactInsert {
            service_name: "api".into(),
            image_ref: "127.0.0.1:5000/alpha/api:sha-aaaaaaaaaaaa".into(),
            digest: format!("sha256:{}", "c".repeat(64)),
            platforms: vec!["linux/amd64".into()],
            size_bytes: Some(1),
        })
        .await
        .unwrap();
    assert!(store.finish_run(&first.id, "authz", &slipway_engine::builds::RunOutcome::Completed { reused_from: None }).await.unwrap());
    let release = slipway_engine::release::create_release(
        &store,
        &slipway_model::release::NewRelease { project: project.id.clone(), build: spec_id.clone(), tag: Some("v1".into()), version: None, notes: None },
        None,
    )
    .await
    .unwrap();
    for (name, gate) in [("test", 0), ("prod", 1)] {
        slipway_engine::release::create_environment(
            &store,
            &project.id,
            &slipway_model::release::EnvironmentInput { name: name.into(), approval_required: gate, ..Default::default() },
        )
        .await
        .unwrap();
    }
    let deployment = slipway_engine::pipeline::request_deploy(
        &store,
        &project.id,
        &slipway_model::release::DeployRequest { environment: "prod".into(), release: Some("v1".into()), ..Default::default() },
        Some(&root_p.user.id),
        slipway_model::release::DeploymentKind::Deploy,
    )
    .await
    .unwrap();
    let _ = &release;
    let pipeline_run = slipway_model::id::new_id(slipway_model::id::PIPELINE_RUN);
    sqlx::query("INSERT INTO pipeline_runs (id, project_id, pipeline) VALUES ($1, $2, 'deploy')")
        .bind(&pipeline_run)
        .bind(&project.id)
        .execute(store.pool())
        .await
        .unwrap();
    let run = store.enqueue_run(&spec_id, None, false).await.unwrap();
    store.create_user("target-user", None, PASSWORD, false).await.unwrap();
    store.create_user("login-user", None, PASSWORD, false).await.unwrap();

    let mut tokens = vec![(Caller::Anonymous, None)];
    for role in Role::ALL {
        let name = format!("member-{}", role.as_str());
        let t = token_for(&store, &name, false).await;
        store.set_member(&project.id, &name, role, &root_p).await.unwrap();
        tokens.push((Caller::Member(role), Some(t)));
    }
    let t = token_for(&store, "outsider", false).await;
    store.set_member(&other.id, "outsider", Role::Admin, &root_p).await.unwrap();
    tokens.push((Caller::OtherProjectAdmin, Some(t)));
    tokens.push((Caller::GlobalAdmin, Some(token_for(&store, "global", true).await)));
    let scoped_admin = store.create_user("scoped-global", None, PASSWORD, true).await.unwrap();
    let scoped_admin = Principal { user: scoped_admin, token_id: None, token_project: None, client: Default::default() };
    let scoped = store.create_token(&scoped_admin, &NewToken { name: "scoped".into(), project: Some(other.id.clone()), expires_in_days: None }).await.unwrap();
    tokens.push((Caller::ScopedGlobalAdmin, Some(scoped.token)));

    let leptos = LeptosOptions::builder().output_name("slipway").site_root("target/site").site_pkg_dir("pkg").build();
    let router = app(AppState::for_tests(leptos, store.clone()));
    World { router, store, project: project.id, build: spec_id, run: run.id, deployment: deployment.id, pipeline_run, tokens }
}

/// A request to `path` that would succeed for an allowed caller.
fn request_for(w: &World, path: &str, n: usize, token: Option<&str>) -> Request<Body> {
    let (p, b, r, d) = (&w.project, &w.build, &w.run, &w.deployment);
    let (method, uri, body): (&str, String, Option<Value>) = match path {
        "GET /api/builds/{build}/logs" => ("GET", format!("/api/builds/{b}/logs?run={r}"), None),
        "GET /builds/{build}/logs.txt" => ("GET", format!("/builds/{b}/logs.txt?run={r}"), None),
        "GET /ws/builds/{build}/logs" => ("GET", format!("/ws/builds/{b}/logs?run={r}"), None),
        "GET /healthz" => ("GET", "/healthz".into(), None),
        "GET /metrics" => ("GET", "/metrics".into(), None),
        // No registry credential: 404 here (this world issues no registry tokens), else 401.
        "GET /internal/registry/token" => ("GET", "/internal/registry/token?service=slipway-registry&scope=repository:alpha/api:pull".into(), None),
        "POST /internal/registry/token" => ("POST", "/internal/registry/token".into(), None),
        // No engine in this world: 503 once the build is found exportable.
        "GET /builds/{build}/export" => ("GET", format!("/builds/{b}/export"), None),
        // Not an archive: 422.
        "POST /api/projects/{project}/import" => ("POST", format!("/api/projects/{p}/import"), Some(json!({}))),
        fn_path => {
            let body = match fn_path {
                "auth/me" | "auth/logout" | "tokens/list" | "users/list" | "projects/list" => json!({}),
                "auth/login" => json!({ "username": "login-user", "password": PASSWORD }),
                "auth/setup" => json!({ "token": "not-a-setup-token", "username": "x", "password": PASSWORD }),
                "auth/password" => json!({ "old_password": "wrong old password", "new_password": "another long password" }),
                "tokens/create" => json!({ "input": { "name": format!("made-{n}") } }),
                "tokens/revoke" => json!({ "token": "tok_00000000000000000000000000" }),
                "users/create" => json!({ "username": format!("new-user-{n}"), "password": PASSWORD }),
                "projects/create" => json!({ "input": { "name": format!("proj-{n}"), "repo_url": "https://git.example/x.git" } }),
                "projects/show" | "members/list" | "secrets/list" => json!({ "project": p }),
                "projects/settings" => json!({ "project": p, "auto_release": false }),
                "members/set" => json!({ "project": p, "username": "target-user", "role": "viewer" }),
                "members/remove" => json!({ "project": p, "username": "target-user" }),
                "secrets/set" => json!({ "project": p, "name": "API_KEY", "value": "s3cr3t-value-1234" }),
                "secrets/delete" => json!({ "project": p, "name": "API_KEY" }),
                "registries/list" => json!({ "project": p }),
                "registries/add" => json!({ "project": p, "registry": { "host": format!("reg-{n}.example"), "username_secret": "REG_USER", "token_secret": "REG_TOKEN" } }),
                "registries/remove" => json!({ "project": p, "host": format!("reg-{}.example", n - 1) }),
                "audit/list" => json!({ "query": {} }),
                "base-images/list" => json!({}),
                "base-images/add" => json!({ "input": { "pattern": format!("docker.io/library/img{n}") } }),
                "base-images/remove" => json!({ "pattern": format!("docker.io/library/img{}", n - 1) }),
                "clusters/list" => json!({}),
                "clusters/add" => json!({ "input": { "name": format!("cluster-{n}"), "in_cluster": true } }),
                "clusters/remove" => json!({ "name": format!("cluster-{}", n - 1) }),
                "clusters/check" => json!({ "name": "no-such-cluster" }),
                "builds/list" => json!({ "query": { "project": p } }),
                "builds/create" => json!({ "input": { "project": p, "ref": "main", "run": false } }),
                "builds/run" => json!({ "build": b }),
                "builds/cancel" | "builds/show" | "builds/runs" | "builds/artifacts" | "builds/diagnose" => json!({ "build": b }),
                "releases/create" => json!({ "input": { "project": p, "build": b } }),
                "releases/list" | "environments/list" | "deployments/board" => json!({ "project": p }),
                "releases/show" => json!({ "project": p, "release": "v1" }),
                "environments/save" => json!({ "project": p, "input": { "name": format!("env-{n}") } }),
                "environments/delete" => json!({ "project": p, "environment": format!("env-{}", n - 1) }),
                "deployments/request" => json!({ "project": p, "request": { "environment": "test", "release": "v1" } }),
                "deployments/promote" => json!({ "project": p, "from": "test", "to": "prod" }),
                "deployments/rollback" => json!({ "project": p, "environment": "test" }),
                "deployments/diff" => json!({ "project": p, "from": "test", "to": "prod" }),
                "deployments/approve" | "deployments/reject" | "deployments/show" => json!({ "deployment": d }),
                "pipelines/start" => json!({ "input": { "project": p, "git_sha": "a".repeat(40), "manifest_hash": "b".repeat(64) } }),
                "pipelines/show" => json!({ "run": w.pipeline_run }),
                "pipelines/list" => json!({ "project": p }),
                other => panic!("no request for endpoint `{other}`: add one to the matrix"),
            };
            ("POST", format!("/api/{fn_path}"), Some(body))
        }
    };
    let mut req = Request::builder().method(method).uri(uri).header("accept", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    match body {
        Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())).unwrap(),
        None => req.body(Body::empty()).unwrap(),
    }
}

/// What a caller must get from an endpoint: `None` = allowed (anything but 401/403,
/// and for project endpoints not 404 either).
fn expected(access: Access, caller: Caller) -> Option<StatusCode> {
    match (access, caller) {
        // Public endpoints may still refuse bad credentials (401), never by role.
        (Access::Public, _) => Some(StatusCode::OK),
        (_, Caller::Anonymous) => Some(StatusCode::UNAUTHORIZED),
        (Access::Authenticated, _) => None,
        (Access::Admin, Caller::GlobalAdmin) => None,
        (Access::Admin, _) => Some(StatusCode::FORBIDDEN),
        (Access::Project(_), Caller::GlobalAdmin) => None,
        // Not a member: the same answer as for a resource that does not exist.
        (Access::Project(_), Caller::OtherProjectAdmin | Caller::ScopedGlobalAdmin) => Some(StatusCode::NOT_FOUND),
        (Access::Project(perm), Caller::Member(role)) => (!role.allows(perm)).then_some(StatusCode::FORBIDDEN),
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn every_endpoint_answers_every_caller_as_the_table_says(pool: PgPool) {
    let w = world(pool).await;
    let mut n = 0;
    let mut failures = Vec::new();
    // Caller by caller, through the table in order (set before delete).
    for (caller, token) in &w.tokens {
        for ep in ENDPOINTS {
            n += 1;
            let (status, body) = send(&w.router, request_for(&w, ep.path, n, token.as_deref())).await;
            let ok = match expected(ep.access, *caller) {
                Some(StatusCode::OK) if ep.access == Access::Public => status != StatusCode::FORBIDDEN && status != StatusCode::INTERNAL_SERVER_ERROR,
                Some(want) => status == want,
                None => {
                    // Rollback of an environment with no earlier release may answer 404 for it.
                    let may_404 = ep.path == "deployments/rollback";
                    status != StatusCode::UNAUTHORIZED
                        && status != StatusCode::FORBIDDEN
                        && !(matches!(ep.access, Access::Project(_)) && status == StatusCode::NOT_FOUND && !may_404)
                        && status != StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            if !ok {
                failures.push(format!("{} as {caller:?}: got {status}, expected {:?}: {}", ep.path, expected(ep.access, *caller), &body[..body.len().min(200)]));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {n} cases wrong:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_registered_server_function_is_in_the_table() {
    let table: Vec<&str> = ENDPOINTS.iter().map(|e| e.path).collect();
    let mut missing = Vec::new();
    for (path, _) in server_fn::axum::server_fn_paths() {
        let short = path.strip_prefix("/api/").unwrap_or(path);
        if !table.contains(&short) {
            missing.push(path);
        }
    }
    assert!(missing.is_empty(), "server functions without an authorisation rule: {missing:?}");
}

async fn cookie_for(w: &World, username: &str) -> String {
    let req = Request::builder()
        .method("POST")
        .uri("/api/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(json!({ "username": username, "password": PASSWORD }).to_string()))
        .unwrap();
    let res = w.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    cookie.split(';').next().unwrap().to_string()
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_state_changing_call_with_a_cookie_from_another_origin_is_refused(pool: PgPool) {
    let w = world(pool).await;
    let cookie = cookie_for(&w, "member-developer").await;
    let create = |headers: &[(&str, &str)]| {
        let mut req = Request::builder()
            .method("POST")
            .uri("/api/builds/run")
            .header("content-type", "application/json")
            .header("host", "slipway.test")
            .header("cookie", &cookie);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(Body::from(json!({ "build": w.build }).to_string())).unwrap()
    };
    let (status, body) = send(&w.router, create(&[("origin", "http://evil.example")])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("cross-origin"), "{body}");
    let (status, _) = send(&w.router, create(&[("sec-fetch-site", "cross-site")])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Same origin: allowed (409: the build already has an active run).
    let (status, body) = send(&w.router, create(&[("origin", "http://slipway.test"), ("sec-fetch-site", "same-origin")])).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // Reads with the cookie from anywhere are fine (the browser will not let the other site read them).
    let read = Request::builder()
        .method("POST")
        .uri("/api/builds/show")
        .header("content-type", "application/json")
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .body(Body::from(json!({ "build": w.build }).to_string()))
        .unwrap();
    assert_eq!(send(&w.router, read).await.0, StatusCode::OK);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_revoked_or_expired_token_is_refused_at_once(pool: PgPool) {
    let w = world(pool).await;
    let user = w.store.find_user_by_username("member-viewer").await.unwrap().unwrap();
    let p = Principal { user, token_id: None, token_project: None, client: Default::default() };
    let created = w.store.create_token(&p, &NewToken { name: "short".into(), project: None, expires_in_days: None }).await.unwrap();
    let list = |t: &str| {
        Request::builder()
            .method("POST")
            .uri("/api/projects/list")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {t}"))
            .body(Body::from("{}"))
            .unwrap()
    };
    assert_eq!(send(&w.router, list(&created.token)).await.0, StatusCode::OK);
    w.store.revoke_token(&p, &created.info.id).await.unwrap();
    let (status, body) = send(&w.router, list(&created.token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Expired: move the expiry into the past.
    let other = w.store.create_token(&p, &NewToken { name: "exp".into(), project: None, expires_in_days: Some(1) }).await.unwrap();
    sqlx::query("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(&other.info.id)
        .execute(w.store.pool())
        .await
        .unwrap();
    assert_eq!(send(&w.router, list(&other.token)).await.0, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn wrong_passwords_are_rate_limited(pool: PgPool) {
    let w = world(pool).await;
    let login = |pw: &str| {
        Request::builder()
            .method("POST")
            .uri("/api/auth/login")
            .header("content-type", "application/json")
            .body(Body::from(json!({ "username": "login-user", "password": pw }).to_string()))
            .unwrap()
    };
    for _ in 0..5 {
        assert_eq!(send(&w.router, login("not the password")).await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = send(&w.router, login(PASSWORD)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits: {body}");
}

/// Collects every log line the server writes during a test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn no_response_page_or_log_line_contains_a_secret_value(pool: PgPool) {
    // A global subscriber: every log line of this test binary lands in the capture.
    static CAPTURE: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    let captured = CAPTURE
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            let _ = tracing::subscriber::set_global_default(subscriber);
            captured
        })
        .clone();

    let w = world(pool).await;
    let admin = w.tokens.iter().find(|(c, _)| *c == Caller::GlobalAdmin).unwrap().1.clone().unwrap();
    let secret = "zq-secret-value-8675309";
    let mut bodies = Vec::new();
    let post = |path: &str, body: Value| {
        Request::builder()
            .method("POST")
            .uri(format!("/api/{path}"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {admin}"))
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, body) = send(&w.router, post("secrets/set", json!({ "project": w.project, "name": "DB_PASSWORD", "value": secret }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    bodies.push(body);
    for (path, body) in [
        ("secrets/list", json!({ "project": w.project })),
        ("audit/list", json!({ "query": {} })),
        ("projects/show", json!({ "project": w.project })),
        ("builds/show", json!({ "build": w.build })),
    ] {
        let (status, body) = send(&w.router, post(path, body)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        bodies.push(body);
    }
    let page = Request::builder().uri("/projects/alpha").header("authorization", format!("Bearer {admin}")).body(Body::empty()).unwrap();
    let (status, html) = send(&w.router, page).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("DB_PASSWORD") || html.contains("alpha"), "the page rendered");
    bodies.push(html);
    // A setup link's token travels in the query string: the access log keeps only the path.
    let setup_token = "zq-setup-token-in-a-query-5551212";
    let link = Request::builder().uri(format!("/setup?token={setup_token}")).body(Body::empty()).unwrap();
    let (status, _) = send(&w.router, link).await;
    assert!(status.is_success() || status.is_client_error(), "{status}");
    let stored: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT ciphertext FROM secrets").fetch_all(w.store.pool()).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!String::from_utf8_lossy(&stored[0].0).contains(secret));
    for b in &bodies {
        assert!(!b.contains(secret), "a response contains the secret: {b}");
    }
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(logs.contains("secrets/set"), "the capture saw the requests: {} bytes: {}", logs.len(), &logs[..logs.len().min(600)]);
    assert!(!logs.contains(secret), "a log line contains the secret");
    assert!(logs.contains("/setup"), "the setup page request was logged");
    assert!(!logs.contains(setup_token), "the access log contains a query string");
}

fn post_as(w: &World, caller: Caller, path: &str, body: Value) -> Request<Body> {
    let token = w.tokens.iter().find(|(c, _)| *c == caller).and_then(|(_, t)| t.clone()).unwrap();
    Request::builder()
        .method("POST")
        .uri(format!("/api/{path}"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn count(w: &World, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(w.store.pool()).await.unwrap()
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_developer_cannot_override_a_builds_registry_to_send_project_secrets_elsewhere(pool: PgPool) {
    let w = world(pool).await;
    let specs = count(&w, "build_specs").await;
    let exfiltrate = json!({ "input": {
        "project": w.project,
        "registry": { "host": "evil.example", "auth": { "username_secret": "DB_PASSWORD", "token_secret": "PROD_KEY" } },
        "run": true,
    }});
    let (status, body) = send(&w.router, post_as(&w, Caller::Member(Role::Developer), "builds/create", exfiltrate.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("only project admins may override the registry"), "{body}");
    assert_eq!(count(&w, "build_specs").await, specs, "no build was recorded");
    // An admin may override, but only with a listed registry: 422 naming the field.
    let (status, body) = send(&w.router, post_as(&w, Caller::Member(Role::Admin), "builds/create", exfiltrate)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("\"field\":\"registry\""), "{body}");
    assert_eq!(count(&w, "build_specs").await, specs);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_developer_cannot_list_a_registry_to_receive_project_secrets(pool: PgPool) {
    let w = world(pool).await;
    let add = json!({ "project": w.project, "registry": { "host": "evil.example", "username_secret": "DB_PASSWORD", "token_secret": "PROD_KEY" } });
    for caller in [Caller::Member(Role::Developer), Caller::Member(Role::Approver), Caller::Member(Role::Viewer)] {
        let (status, body) = send(&w.router, post_as(&w, caller, "registries/add", add.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{caller:?}: {body}");
    }
    let (status, body) = send(&w.router, post_as(&w, Caller::OtherProjectAdmin, "registries/add", add.clone())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(count(&w, "project_registries").await, 0, "nothing was listed");
    // The project's admin can, and it is audited.
    let (status, body) = send(&w.router, post_as(&w, Caller::Member(Role::Admin), "registries/add", add)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'registry.listed'").fetch_one(w.store.pool()).await.unwrap();
    assert_eq!(audited, 1);
    let (status, _) = send(&w.router, post_as(&w, Caller::Member(Role::Developer), "registries/remove", json!({ "project": w.project, "host": "evil.example" }))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(count(&w, "project_registries").await, 1, "a developer cannot take it off either");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_viewer_never_sees_the_credentials_in_a_projects_repository_url(pool: PgPool) {
    let w = world(pool).await;
    let root = w.store.find_user_by_username("root").await.unwrap().unwrap();
    let root = Principal { user: root, token_id: None, token_project: None, client: Default::default() };
    let token = "ghp_R3poT0ken9f8e7d";
    let p = w
        .store
        .create_project(&NewProject { name: "gamma".into(), repo_url: format!("https://deploy:{token}@git.example/gamma.git"), ..Default::default() }, None)
        .await
        .unwrap();
    w.store.set_member(&p.id, "member-viewer", Role::Viewer, &root).await.unwrap();
    w.store.set_member(&p.id, "member-admin", Role::Admin, &root).await.unwrap();
    let mut bodies = Vec::new();
    for (caller, path, body) in [
        (Caller::Member(Role::Viewer), "projects/list", json!({})),
        (Caller::Member(Role::Viewer), "projects/show", json!({ "project": "gamma" })),
        (Caller::Member(Role::Admin), "projects/settings", json!({ "project": "gamma", "auto_release": true })),
    ] {
        let (status, body) = send(&w.router, post_as(&w, caller, path, body)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(body.contains("git.example/gamma.git"), "{path} shows the repository: {body}");
        bodies.push(body);
    }
    let viewer = w.tokens.iter().find(|(c, _)| *c == Caller::Member(Role::Viewer)).and_then(|(_, t)| t.clone()).unwrap();
    for page in ["/projects", "/projects/gamma"] {
        let req = Request::builder().uri(page).header("authorization", format!("Bearer {viewer}")).body(Body::empty()).unwrap();
        let (status, html) = send(&w.router, req).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        bodies.push(html);
    }
    for b in &bodies {
        assert!(!b.contains(token) && !b.contains("deploy:"), "a response shows the repository credentials: {b}");
    }
    // The stored URL is untouched: git still gets its credentials.
    assert!(w.store.get_project(&p.id).await.unwrap().repo_url.contains(token));
}
