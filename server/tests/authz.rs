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
use slipway_app::auth::ENDPOINTS;
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

/// Who may call what, written by hand from the README ("Roles, gates, logins
/// and request limits" and "Accounts, roles, tokens, secrets, audit"), not
/// derived from `ENDPOINTS` or `Role::allows`: the router must answer as this
/// table says, so a wrong rule in the code turns the matrix red.
///
/// Columns, in order: anonymous, viewer, developer, approver, admin (the four
/// project roles), an admin of another project, a global administrator, and
/// a global administrator's token scoped to the other project. `ok` = allowed;
/// otherwise the refusal: 401 (log in first), 403 (role not enough), 404 (not
/// a member: the same answer as for something that does not exist).
const EXPECTED_ACCESS: &[(&str, &str)] = &[
    //                                        anon viewer dev approver admin other global scoped
    // Anyone: logging in, the first-admin setup, health, the registry's token realm.
    ("auth/me",                              "ok   ok     ok  ok       ok    ok    ok     ok"),
    ("auth/login",                           "ok   ok     ok  ok       ok    ok    ok     ok"),
    ("auth/setup",                           "ok   ok     ok  ok       ok    ok    ok     ok"),
    ("GET /healthz",                         "ok   ok     ok  ok       ok    ok    ok     ok"),
    ("GET /internal/registry/token",         "ok   ok     ok  ok       ok    ok    ok     ok"),
    ("POST /internal/registry/token",        "ok   ok     ok  ok       ok    ok    ok     ok"),
    // Any logged-in user: their own session, password and tokens; creating a
    // project (whoever creates one administers it); lists filtered to what
    // they may see.
    ("auth/logout",                          "401  ok     ok  ok       ok    ok    ok     ok"),
    ("auth/password",                        "401  ok     ok  ok       ok    ok    ok     ok"),
    ("tokens/list",                          "401  ok     ok  ok       ok    ok    ok     ok"),
    ("tokens/create",                        "401  ok     ok  ok       ok    ok    ok     ok"),
    ("tokens/revoke",                        "401  ok     ok  ok       ok    ok    ok     ok"),
    ("projects/list",                        "401  ok     ok  ok       ok    ok    ok     ok"),
    ("projects/create",                      "401  ok     ok  ok       ok    ok    ok     ok"),
    ("audit/list",                           "401  ok     ok  ok       ok    ok    ok     ok"),
    ("base-images/list",                     "401  ok     ok  ok       ok    ok    ok     ok"),
    ("builds/list",                          "401  ok     ok  ok       ok    ok    ok     ok"),
    // A global administrator alone manages users and the allowed images
    // (never through a project-scoped token).
    ("users/list",                           "401  403    403 403      403   403   ok     403"),
    ("users/create",                         "401  403    403 403      403   403   ok     403"),
    ("base-images/add",                      "401  403    403 403      403   403   ok     403"),
    ("base-images/remove",                   "401  403    403 403      403   403   ok     403"),
    // Clusters (Kubernetes deploy targets, kubeconfigs): global administrators only.
    ("clusters/list",                        "401  403    403 403      403   403   ok     403"),
    ("clusters/add",                         "401  403    403 403      403   403   ok     403"),
    ("clusters/remove",                      "401  403    403 403      403   403   ok     403"),
    ("clusters/check",                       "401  403    403 403      403   403   ok     403"),
    // Metrics: a global administrator's token (or the metrics-only token, not a caller here).
    ("GET /metrics",                         "401  403    403 403      403   403   ok     403"),
    // A viewer reads everything and follows logs.
    ("projects/show",                        "401  ok     ok  ok       ok    404   ok     404"),
    ("members/list",                         "401  ok     ok  ok       ok    404   ok     404"),
    ("builds/show",                          "401  ok     ok  ok       ok    404   ok     404"),
    ("builds/runs",                          "401  ok     ok  ok       ok    404   ok     404"),
    ("builds/artifacts",                     "401  ok     ok  ok       ok    404   ok     404"),
    ("builds/diagnose",                      "401  ok     ok  ok       ok    404   ok     404"),
    ("releases/list",                        "401  ok     ok  ok       ok    404   ok     404"),
    ("releases/show",                        "401  ok     ok  ok       ok    404   ok     404"),
    ("environments/list",                    "401  ok     ok  ok       ok    404   ok     404"),
    ("deployments/show",                     "401  ok     ok  ok       ok    404   ok     404"),
    ("deployments/board",                    "401  ok     ok  ok       ok    404   ok     404"),
    ("deployments/diff",                     "401  ok     ok  ok       ok    404   ok     404"),
    ("pipelines/show",                       "401  ok     ok  ok       ok    404   ok     404"),
    ("pipelines/list",                       "401  ok     ok  ok       ok    404   ok     404"),
    ("GET /builds/{build}/export",           "401  ok     ok  ok       ok    404   ok     404"),
    ("GET /api/builds/{build}/logs",         "401  ok     ok  ok       ok    404   ok     404"),
    ("GET /builds/{build}/logs.txt",         "401  ok     ok  ok       ok    404   ok     404"),
    ("GET /ws/builds/{build}/logs",          "401  ok     ok  ok       ok    404   ok     404"),
    // A developer creates, runs and cancels builds, creates releases, imports
    // builds, deploys (a gate makes it wait) and starts pipelines; an
    // approver does none of that.
    ("builds/create",                        "401  403    ok  403      ok    404   ok     404"),
    ("builds/run",                           "401  403    ok  403      ok    404   ok     404"),
    ("builds/cancel",                        "401  403    ok  403      ok    404   ok     404"),
    ("releases/create",                      "401  403    ok  403      ok    404   ok     404"),
    ("POST /api/projects/{project}/import",  "401  403    ok  403      ok    404   ok     404"),
    ("deployments/request",                  "401  403    ok  403      ok    404   ok     404"),
    ("deployments/promote",                  "401  403    ok  403      ok    404   ok     404"),
    ("deployments/rollback",                 "401  403    ok  403      ok    404   ok     404"),
    ("pipelines/start",                      "401  403    ok  403      ok    404   ok     404"),
    // An approver approves or rejects gated deployments; a developer cannot.
    ("deployments/approve",                  "401  403    403 ok       ok    404   ok     404"),
    ("deployments/reject",                   "401  403    403 ok       ok    404   ok     404"),
    // A project admin manages members, environments and gates, secrets,
    // registries and settings.
    ("projects/settings",                    "401  403    403 403      ok    404   ok     404"),
    ("members/set",                          "401  403    403 403      ok    404   ok     404"),
    ("members/remove",                       "401  403    403 403      ok    404   ok     404"),
    ("secrets/list",                         "401  403    403 403      ok    404   ok     404"),
    ("secrets/set",                          "401  403    403 403      ok    404   ok     404"),
    ("secrets/delete",                       "401  403    403 403      ok    404   ok     404"),
    ("registries/list",                      "401  403    403 403      ok    404   ok     404"),
    ("registries/add",                       "401  403    403 403      ok    404   ok     404"),
    ("registries/remove",                    "401  403    403 403      ok    404   ok     404"),
    ("environments/save",                    "401  403    403 403      ok    404   ok     404"),
    ("environments/delete",                  "401  403    403 403      ok    404   ok     404"),
];

/// The callers of [`EXPECTED_ACCESS`]'s columns, in order.
const COLUMNS: [Caller; 8] = [
    Caller::Anonymous,
    Caller::Member(Role::Viewer),
    Caller::Member(Role::Developer),
    Caller::Member(Role::Approver),
    Caller::Member(Role::Admin),
    Caller::OtherProjectAdmin,
    Caller::GlobalAdmin,
    Caller::ScopedGlobalAdmin,
];

/// What the hand-written table says `caller` gets from `path`: `None` =
/// allowed, else the refusal's status.
fn expected(path: &str, caller: Caller) -> Option<StatusCode> {
    let (_, row) = EXPECTED_ACCESS
        .iter()
        .find(|(p, _)| *p == path)
        .unwrap_or_else(|| panic!("`{path}` has no row in EXPECTED_ACCESS: write down who may call it"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.len(), COLUMNS.len(), "row of `{path}`");
    let column = COLUMNS.iter().position(|c| *c == caller).expect("a caller of the table");
    match cells[column] {
        "ok" => None,
        code => Some(StatusCode::from_bytes(code.as_bytes()).unwrap_or_else(|_| panic!("`{code}` in the row of `{path}`"))),
    }
}

/// Public in the table: even an anonymous caller is allowed.
fn public(path: &str) -> bool {
    expected(path, Caller::Anonymous).is_none()
}

/// A project's endpoint in the table: a member of another project gets 404.
fn of_a_project(path: &str) -> bool {
    expected(path, Caller::OtherProjectAdmin) == Some(StatusCode::NOT_FOUND)
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn every_endpoint_answers_every_caller_as_the_readme_says(pool: PgPool) {
    let w = world(pool).await;
    let mut n = 0;
    let mut failures = Vec::new();
    assert_eq!(w.tokens.iter().map(|(c, _)| *c).collect::<Vec<_>>(), COLUMNS, "one caller per column");
    // Caller by caller, through the table in order (set before delete).
    for (caller, token) in &w.tokens {
        for ep in ENDPOINTS {
            n += 1;
            let (status, body) = send(&w.router, request_for(&w, ep.path, n, token.as_deref())).await;
            let want = expected(ep.path, *caller);
            let ok = match want {
                Some(refusal) => status == refusal,
                // A public endpoint may still refuse bad credentials of its own
                // (a wrong setup token, no registry credential): 401, never 403.
                None if public(ep.path) => status != StatusCode::FORBIDDEN && status != StatusCode::INTERNAL_SERVER_ERROR,
                None => {
                    // Rollback of an environment with no earlier release may answer 404 for it.
                    let may_404 = ep.path == "deployments/rollback";
                    status != StatusCode::UNAUTHORIZED
                        && status != StatusCode::FORBIDDEN
                        && !(of_a_project(ep.path) && status == StatusCode::NOT_FOUND && !may_404)
                        && status != StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            if !ok {
                let want = want.map_or("allowed".to_string(), |s| s.to_string());
                failures.push(format!("{} as {caller:?}: got {status}, expected {want}: {}", ep.path, &body[..body.len().min(200)]));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {n} cases wrong:\n{}", failures.len(), failures.join("\n"));
}

/// The plain routes the router serves (`METHOD /path`), read from the
/// source of `app()` so a route added there cannot escape the tables.
fn router_routes() -> Vec<String> {
    let src = include_str!("../src/http.rs");
    assert!(!src.contains(".merge(") && !src.contains(".nest("), "the router is built from more than `.route` calls: enumerate those too");
    let mut routes = Vec::new();
    for call in src.split(".route(").skip(1) {
        // The arguments: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let end = call
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("a closed `.route(` call");
        let (path, handlers) = call[..end].split_once(',').expect(".route(path, handlers)");
        let path = match path.trim() {
            "crate::realm::PATH" => slipway_server::realm::PATH.to_string(),
            "crate::metrics::PATH" => slipway_server::metrics::PATH.to_string(),
            quoted => quoted.strip_prefix('"').and_then(|p| p.strip_suffix('"')).unwrap_or_else(|| panic!("a route path the test cannot read: {quoted}")).to_string(),
        };
        let mut methods = 0;
        for method in ["get", "post", "put", "patch", "delete", "head", "any"] {
            let called = handlers.match_indices(&format!("{method}(")).any(|(i, _)| {
                let before = handlers[..i].chars().next_back();
                !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if called {
                routes.push(format!("{} {path}", method.to_uppercase()));
                methods += 1;
            }
        }
        assert!(methods > 0, "no method read for the route {path}: {handlers}");
    }
    routes
}

#[test]
fn every_server_function_route_and_websocket_of_the_router_has_a_written_rule() {
    let table: Vec<&str> = ENDPOINTS.iter().map(|e| e.path).collect();
    let written: Vec<&str> = EXPECTED_ACCESS.iter().map(|(p, _)| *p).collect();
    let server_fns: Vec<String> =
        server_fn::axum::server_fn_paths().map(|(path, _)| path.strip_prefix("/api/").unwrap_or(path).to_string()).collect();
    let routes = router_routes();
    // Server functions are served under `/api/{*fn_name}`; the rest are plain routes.
    assert!(routes.contains(&"POST /api/{*fn_name}".to_string()), "{routes:?}");
    let plain: Vec<&String> = routes.iter().filter(|r| !r.ends_with("/api/{*fn_name}")).collect();
    let websockets: Vec<&&String> = plain.iter().filter(|r| r.contains(" /ws/")).collect();
    assert!(!server_fns.is_empty(), "no server function registered");
    assert!(!plain.is_empty(), "no plain route read from the router");
    assert!(!websockets.is_empty(), "no websocket read from the router");
    assert!(!table.is_empty() && !written.is_empty());

    let mut problems = Vec::new();
    for f in &server_fns {
        if !written.contains(&f.as_str()) {
            problems.push(format!("server function {f} has no row in EXPECTED_ACCESS"));
        }
        if !table.contains(&f.as_str()) {
            problems.push(format!("server function {f} is not in ENDPOINTS"));
        }
    }
    for r in &plain {
        if !written.contains(&r.as_str()) {
            problems.push(format!("route {r} has no row in EXPECTED_ACCESS"));
        }
        if !table.contains(&r.as_str()) {
            problems.push(format!("route {r} is not in ENDPOINTS"));
        }
    }
    // And back: every written row and every table entry is something the router serves.
    for p in written.iter().chain(&table) {
        let served = if p.contains(' ') { plain.iter().any(|r| r.as_str() == *p) } else { server_fns.iter().any(|f| f.as_str() == *p) };
        if !served {
            problems.push(format!("{p} is in a table but the router does not serve it"));
        }
    }
    let mut sorted = written.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != written.len() {
        problems.push("a row of EXPECTED_ACCESS is written twice".into());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
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
    // Each answer must be the one that shows the secret's record (else the
    // scan below would pass on an error page).
    for (path, body, shows) in [
        ("secrets/list", json!({ "project": w.project }), "\"name\":\"DB_PASSWORD\""),
        ("audit/list", json!({ "query": {} }), "\"action\":\"secret.set\""),
        ("projects/show", json!({ "project": w.project }), "\"slug\":\"alpha\""),
        ("builds/show", json!({ "build": w.build }), w.build.as_str()),
    ] {
        let (status, body) = send(&w.router, post(path, body)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(body.contains(shows), "{path} is not the expected answer (no {shows}): {body}");
        bodies.push(body);
    }
    let page = Request::builder().uri("/projects/alpha").header("authorization", format!("Bearer {admin}")).body(Body::empty()).unwrap();
    let (status, html) = send(&w.router, page).await;
    assert_eq!(status, StatusCode::OK);
    // The project page itself, with its secrets section listing the secret by name.
    assert!(html.contains(&w.project), "the page of project alpha (its id): {html}");
    assert!(html.contains(">Secrets</h2>") && html.contains("DB_PASSWORD"), "the page lists the secret by name: {html}");
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
