//! A hostile member (or a stranger) tries to break a promise through the
//! public interface — the router, as the dashboard, the CLI and scripts reach
//! it — and each attempt must get a clear 4xx and change nothing: gates,
//! users, builds, sessions.
//!
//! The tests of this file run one at a time ([`serial`]): one of them counts
//! the process's password hashing, which the others would disturb.

mod support;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use slipway_engine::Store;
use slipway_model::auth::{NewToken, Principal, Role};
use slipway_model::project::NewProject;
use slipway_server::{Edge, Limits};
use sqlx::PgPool;
use slipway_testkit::git::{commit_manifest, empty_repo};
use slipway_testkit::users::{token_for, PASSWORD};
use support::{call, from_ip, post, router, router_with_edge, send};

/// Held by every test of this file.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

const GATED: &str = "services:\n  api:\n    build: api\nenvironments:\n  - name: staging\n  - name: production\n    approval:\n      required: 1\n      approvers: [alice]\n";
const UNGATED: &str = "services:\n  api:\n    build: api\nenvironments:\n  - name: staging\n  - name: production\n";

/// A project on a real git repository, its admin's and a developer's tokens.
struct Project {
    store: Store,
    router: axum::Router,
    repo: tempfile::TempDir,
    slug: String,
    id: String,
    admin: String,
    developer: String,
}

async fn project(pool: PgPool) -> Project {
    let store = Store::from_pool(pool);
    let admin = token_for(&store, "root", true).await;
    let developer = token_for(&store, "dev", false).await;
    let repo = empty_repo();
    let p = store
        .create_project(&NewProject { name: "payments".into(), repo_url: repo.path().display().to_string(), ..Default::default() }, None)
        .await
        .unwrap();
    let root = store.find_user_by_username("root").await.unwrap().unwrap();
    let by = Principal { user: root, token_id: None, token_project: None, client: Default::default() };
    store.set_member(&p.id, "dev", Role::Developer, &by).await.unwrap();
    Project { router: router(&store), store, repo, slug: p.slug, id: p.id, admin, developer }
}

impl Project {
    async fn build(&self, token: &str, git_ref: &str) -> (StatusCode, Value) {
        call(&self.router, "builds/create", Some(token), json!({ "input": { "project": self.slug, "ref": git_ref, "run": false } })).await
    }

    /// `(approval_required, approvers, deploy_target)` of an environment.
    async fn gate(&self, env: &str) -> (u32, Vec<String>, Value) {
        let envs = slipway_engine::release::list_environments(&self.store, &self.id).await.unwrap();
        let e = envs.into_iter().find(|e| e.name == env).unwrap();
        (e.approval_required, e.approvers, e.deploy_target)
    }

    async fn count(&self, table: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}")).fetch_one(self.store.pool()).await.unwrap();
        n
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_developer_cannot_drop_productions_gate_by_building_a_commit_without_it(pool: PgPool) {
    let _serial = serial().await;
    let p = project(pool).await;
    commit_manifest(p.repo.path(), GATED);
    let (status, body) = p.build(&p.developer, "main").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = p.gate("production").await;
    assert_eq!((before.0, before.1.clone()), (1, vec!["alice".to_string()]));
    let (builds, manifests) = (p.count("build_specs").await, p.count("manifests").await);

    let ungated = commit_manifest(p.repo.path(), UNGATED);
    let (status, body) = p.build(&p.developer, "main").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("production") && message.contains("approval.required 1 → 0"), "{message}");
    assert_eq!(body["problems"][0]["field"], "environments.production");
    // Nothing changed: the gate, and no build or manifest of that commit.
    assert_eq!(p.gate("production").await, before);
    assert_eq!((p.count("build_specs").await, p.count("manifests").await), (builds, manifests));

    // The same commit through a pipeline (a developer may deploy): refused the same way.
    let (status, body) = call(
        &p.router,
        "pipelines/start",
        Some(&p.developer),
        json!({ "input": { "project": p.slug, "git_sha": ungated } }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(p.gate("production").await, before);
    assert_eq!(p.count("pipeline_runs").await, 0);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_developer_cannot_loosen_a_gate_by_rebuilding_an_old_commit_or_widening_its_approvers(pool: PgPool) {
    let _serial = serial().await;
    let p = project(pool).await;
    let old = commit_manifest(p.repo.path(), UNGATED);
    commit_manifest(p.repo.path(), GATED);
    assert_eq!(p.build(&p.developer, "main").await.0, StatusCode::OK);
    let before = p.gate("production").await;
    let builds = p.count("build_specs").await;

    let (status, body) = p.build(&p.developer, &old).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().unwrap().contains("production"), "{body}");

    // More approvers (mallory may approve her own friend's deploy), another target.
    let wider = GATED.replace("approvers: [alice]", "approvers: [alice, mallory]").replace("  - name: production\n", "  - name: production\n    target: { kind: kubernetes, namespace: elsewhere }\n");
    commit_manifest(p.repo.path(), &wider);
    let (status, body) = p.build(&p.developer, "main").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("approvers would be added: mallory"), "{message}");
    assert!(message.contains("another target"), "{message}");
    assert_eq!(p.gate("production").await, before);
    assert_eq!(p.count("build_specs").await, builds);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_manifest_may_add_environments_and_tighten_a_gate_but_only_an_admin_loosens_it_audited(pool: PgPool) {
    let _serial = serial().await;
    let p = project(pool).await;
    commit_manifest(p.repo.path(), GATED);
    assert_eq!(p.build(&p.developer, "main").await.0, StatusCode::OK);
    let tighter = GATED.replace("required: 1\n      approvers: [alice]", "required: 2\n      approvers: [alice, bob]\n      wait_timer_seconds: 60")
        + "  - name: dr\n";
    // `bob` was not named before: adding him is a loosening, even with two required.
    commit_manifest(p.repo.path(), &tighter);
    assert_eq!(p.build(&p.developer, "main").await.0, StatusCode::CONFLICT);
    let tighter = GATED.replace("required: 1\n", "required: 1\n      wait_timer_seconds: 60\n") + "  - name: dr\n";
    commit_manifest(p.repo.path(), &tighter);
    let (status, body) = p.build(&p.developer, "main").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let envs = slipway_engine::release::list_environments(&p.store, &p.id).await.unwrap();
    assert_eq!(envs.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["staging", "production", "dr"]);
    assert_eq!(envs[1].wait_timer_seconds, 60);

    // The developer may not loosen it on the board either; the admin may, audited.
    let open = json!({ "project": p.slug, "environment": "production", "input": { "name": "production" } });
    let (status, body) = call(&p.router, "environments/save", Some(&p.developer), open.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(p.gate("production").await.0, 1);
    let (status, body) = call(&p.router, "environments/save", Some(&p.admin), open).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(p.gate("production").await.0, 0);
    let (_, audit) = call(&p.router, "audit/list", Some(&p.admin), json!({ "query": { "action": "environment.saved" } })).await;
    let detail = &audit["events"][0]["detail"];
    assert_eq!(detail["before"]["approval_required"], 1, "{audit}");
    assert_eq!(detail["before"]["approvers"], json!(["alice"]));
    assert_eq!(detail["after"]["approval_required"], 0);
    // Now the ungated manifest matches what the admin chose: it builds.
    commit_manifest(p.repo.path(), UNGATED);
    assert_eq!(p.build(&p.developer, "main").await.0, StatusCode::OK);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_global_admins_project_scoped_token_cannot_create_an_administrator(pool: PgPool) {
    let _serial = serial().await;
    let p = project(pool).await;
    let root = p.store.find_user_by_username("root").await.unwrap().unwrap();
    let by = Principal { user: root, token_id: None, token_project: None, client: Default::default() };
    let scoped = p.store.create_token(&by, &NewToken { name: "ci".into(), project: Some(p.slug.clone()), expires_in_days: None }).await.unwrap().token;
    let users = p.count("users").await;
    let (status, body) =
        call(&p.router, "users/create", Some(&scoped), json!({ "username": "mallory", "password": PASSWORD, "is_admin": true })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["message"].as_str().unwrap().contains("project-scoped"), "{body}");
    assert_eq!(p.count("users").await, users);
    assert!(p.store.find_user_by_username("mallory").await.unwrap().is_none());
    assert_eq!(call(&p.router, "users/list", Some(&scoped), json!({})).await.0, StatusCode::FORBIDDEN);
    // Within its project the token still acts as that project's admin.
    assert_eq!(call(&p.router, "members/list", Some(&scoped), json!({ "project": p.slug })).await.0, StatusCode::OK);
    // The same admin, unscoped, may.
    let (status, body) =
        call(&p.router, "users/create", Some(&p.admin), json!({ "username": "carol", "password": PASSWORD })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn setup_with_a_wrong_token_is_refused_before_any_password_is_hashed(pool: PgPool) {
    let _serial = serial().await;
    let store = Store::from_pool(pool);
    let real = store.create_setup_token().await.unwrap();
    let router = router(&store);
    // The longest password the policy accepts: the most hashing work per request.
    let heavy = "p".repeat(1024);
    let hashed_before = slipway_engine::auth::password_work_started();
    for i in 0..20u8 {
        let req = from_ip(post("auth/setup", None, &json!({ "token": format!("{}{i:02}", &real[..41]), "username": "admin", "password": heavy })), [203, 0, 113, 5]);
        let (status, body) = send(&router, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    assert_eq!(slipway_engine::auth::password_work_started(), hashed_before, "a refused setup must not hash");
    // That address is now limited; nothing was created.
    let req = from_ip(post("auth/setup", None, &json!({ "token": real, "username": "admin", "password": PASSWORD })), [203, 0, 113, 5]);
    let (status, body) = send(&router, req).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(store.user_count().await.unwrap(), 0);
    // The holder of the link, from elsewhere, sets up once.
    let req = from_ip(post("auth/setup", None, &json!({ "token": real, "username": "admin", "password": PASSWORD })), [198, 51, 100, 1]);
    let (status, body) = send(&router, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(store.user_count().await.unwrap(), 1);
}

fn login(username: &str, password: &str) -> Request<Body> {
    post("auth/login", None, &json!({ "username": username, "password": password }))
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn five_wrong_passwords_from_an_attacker_do_not_lock_the_owner_out(pool: PgPool) {
    let _serial = serial().await;
    let store = Store::from_pool(pool);
    store.create_user("alice", None, PASSWORD, false).await.unwrap();
    let router = router(&store);
    let attacker = [203, 0, 113, 9];
    for _ in 0..5 {
        assert_eq!(send(&router, from_ip(login("alice", "not her password"), attacker)).await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = send(&router, from_ip(login("alice", PASSWORD), attacker)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the attacker's address is refused: {body}");
    assert!(body.contains("minute"), "{body}");
    let (status, body) = send(&router, from_ip(login("alice", PASSWORD), [198, 51, 100, 7])).await;
    assert_eq!(status, StatusCode::OK, "the owner logs in from her address: {body}");
}

/// Moves every login attempt from `ip` back by `interval` (a Postgres
/// interval): the limiter counts in Postgres from each attempt's `at`, so this
/// is the time passing, without sleeping.
async fn age_attempts(store: &Store, ip: &str, interval: &str) {
    sqlx::query("UPDATE login_attempts SET at = at - $2::interval WHERE ip = $1")
        .bind(ip)
        .bind(interval)
        .execute(store.pool())
        .await
        .unwrap();
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn twenty_failed_logins_from_one_address_stop_it_for_fifteen_minutes_at_the_default_setting(pool: PgPool) {
    let _serial = serial().await;
    let store = Store::from_pool(pool);
    store.create_user("alice", None, PASSWORD, false).await.unwrap();
    // The router as the server builds it: the default login policy.
    let router = router(&store);
    let attacker = [203, 0, 113, 20];
    // 20 failures, 4 per username: under the per-account limits (5 per
    // address, backoff after 10), so only the per-address limit can trip.
    for i in 0..20 {
        let (status, body) = send(&router, from_ip(login(&format!("guess{}", i / 4), "wrong password"), attacker)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "failure {} is still answered: {body}", i + 1);
    }
    // The 21st attempt from that address is refused, even for a real account
    // with the right password.
    let (status, body) = send(&router, from_ip(login("alice", PASSWORD), attacker)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.contains("too many failed logins from this address; try again in 15 minutes"), "{body}");
    // Other addresses are not affected.
    let (status, body) = send(&router, from_ip(login("alice", PASSWORD), [198, 51, 100, 30])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // 14 minutes later: still refused, one minute to go.
    age_attempts(&store, "203.0.113.20", "14 minutes").await;
    let (status, body) = send(&router, from_ip(login("alice", PASSWORD), attacker)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.contains("try again in 1 minute"), "{body}");
    // Once 15 minutes have passed since the failures, the address may try again.
    age_attempts(&store, "203.0.113.20", "61 seconds").await;
    let (status, body) = send(&router, from_ip(login("alice", PASSWORD), attacker)).await;
    assert_eq!(status, StatusCode::OK, "the window has passed: {body}");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn five_failures_for_one_account_from_one_address_stop_that_pair_for_fifteen_minutes(pool: PgPool) {
    let _serial = serial().await;
    let store = Store::from_pool(pool);
    store.create_user("alice", None, PASSWORD, false).await.unwrap();
    let router = router(&store);
    let attacker = [203, 0, 113, 21];
    for _ in 0..5 {
        assert_eq!(send(&router, from_ip(login("alice", "wrong password"), attacker)).await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = send(&router, from_ip(login("alice", PASSWORD), attacker)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.contains("for this account from this address; try again in 15 minutes"), "{body}");
    age_attempts(&store, "203.0.113.21", "14 minutes 50 seconds").await;
    let (status, body) = send(&router, from_ip(login("alice", PASSWORD), attacker)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "10 seconds before the window ends: {body}");
    age_attempts(&store, "203.0.113.21", "11 seconds").await;
    let (status, body) = send(&router, from_ip(login("alice", PASSWORD), attacker)).await;
    assert_eq!(status, StatusCode::OK, "the window has passed: {body}");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_forwarded_for_header_counts_only_when_a_trusted_proxy_header_is_configured(pool: PgPool) {
    let _serial = serial().await;
    let store = Store::from_pool(pool);
    store.create_user("alice", None, PASSWORD, false).await.unwrap();
    store.create_user("bob", None, PASSWORD, false).await.unwrap();
    let forwarded = |req: Request<Body>, ip: &str| {
        let mut req = from_ip(req, [10, 0, 0, 1]);
        req.headers_mut().insert("x-forwarded-for", ip.parse().unwrap());
        req
    };
    // Without the setting, a made-up header does not dodge the limit.
    let plain = router(&store);
    for i in 0..5 {
        let (status, _) = send(&plain, forwarded(login("bob", "wrong password"), &format!("192.0.2.{i}"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(send(&plain, forwarded(login("bob", PASSWORD), "192.0.2.77")).await.0, StatusCode::TOO_MANY_REQUESTS);

    // Behind a proxy that sets it: the header's (right-most) address counts.
    let proxied = router_with_edge(&store, Edge::new(Some("x-forwarded-for".parse().unwrap()), false, Limits::default()));
    for _ in 0..5 {
        let (status, _) = send(&proxied, forwarded(login("alice", "wrong password"), "10.1.1.1, 203.0.113.50")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(send(&proxied, forwarded(login("alice", PASSWORD), "203.0.113.50")).await.0, StatusCode::TOO_MANY_REQUESTS);
    let res = tower::ServiceExt::oneshot(proxied.clone(), forwarded(login("alice", PASSWORD), "198.51.100.20")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let (ip,): (Option<String>,) =
        sqlx::query_as("SELECT ip FROM audit_events WHERE action = 'login.succeeded' ORDER BY at DESC LIMIT 1").fetch_one(store.pool()).await.unwrap();
    assert_eq!(ip.as_deref(), Some("198.51.100.20"));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn the_session_cookie_is_secure_over_https_and_when_forced(pool: PgPool) {
    let _serial = serial().await;
    let store = Store::from_pool(pool);
    store.create_user("alice", None, PASSWORD, false).await.unwrap();
    let cookie = |router: axum::Router, proto: Option<&'static str>| async move {
        let mut req = login("alice", PASSWORD);
        if let Some(p) = proto {
            req.headers_mut().insert("x-forwarded-proto", p.parse().unwrap());
        }
        let res = tower::ServiceExt::oneshot(router, req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.headers().get(header::SET_COOKIE).unwrap().to_str().unwrap().to_string()
    };
    // An untrusted X-Forwarded-Proto is ignored; behind a trusted proxy it counts.
    assert!(!cookie(router(&store), Some("https")).await.contains("Secure"));
    let proxied = Edge::new(Some("x-forwarded-for".parse().unwrap()), false, Limits::default());
    assert!(cookie(router_with_edge(&store, proxied), Some("https")).await.contains("; Secure"));
    let forced = Edge::new(None, true, Limits::default());
    assert!(cookie(router_with_edge(&store, forced), None).await.contains("; Secure"));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn an_oversized_body_or_list_is_refused_with_413_naming_the_limit(pool: PgPool) {
    let _serial = serial().await;
    let p = project(pool).await;
    let projects = p.count("projects").await;
    let huge = json!({ "input": { "name": "big", "repo_url": "/srv/big", "description": "x".repeat(2 * 1024 * 1024) } });
    let (status, body) = send(&p.router, post("projects/create", Some(&p.admin), &huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{}", &body[..body.len().min(300)]);
    assert!(body.contains("1024 KiB"), "{body}");
    // Without a declared length (chunked): refused while reading.
    let chunks = futures::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; 64 * 1024]))));
    let req = Request::builder()
        .method("POST")
        .uri("/api/projects/create")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", p.admin))
        .body(Body::from_stream(chunks))
        .unwrap();
    let (status, body) = send(&p.router, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(p.count("projects").await, projects);

    commit_manifest(p.repo.path(), GATED);
    let services: Vec<String> = (0..101).map(|i| format!("s{i}")).collect();
    let (status, body) =
        call(&p.router, "builds/create", Some(&p.developer), json!({ "input": { "project": p.slug, "services": services, "run": false } })).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["message"].as_str().unwrap().contains("at most 100"), "{body}");
    assert_eq!(p.count("build_specs").await, 0);
    let approvers: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let (status, body) = call(
        &p.router,
        "environments/save",
        Some(&p.admin),
        json!({ "project": p.slug, "input": { "name": "wide", "approval_required": 1, "approvers": approvers } }),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(p.count("environments").await, 0);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_second_import_while_one_runs_is_refused_with_429(pool: PgPool) {
    let _serial = serial().await;
    let p = project(pool).await;
    // The first import's upload stays open until the sender is dropped.
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
    let import = |body: Body| {
        Request::builder()
            .method("POST")
            .uri(format!("/api/projects/{}/import", p.slug))
            .header("authorization", format!("Bearer {}", p.developer))
            .body(body)
            .unwrap()
    };
    let first = tokio::spawn(tower::ServiceExt::oneshot(p.router.clone(), import(Body::from_stream(rx))));
    // The channel holds two chunks; the third goes through only once the
    // first import reads its upload, which it does holding its slot.
    for _ in 0..3 {
        futures::SinkExt::send(&mut tx, Ok(axum::body::Bytes::from_static(b"not yet an archive"))).await.unwrap();
    }
    let (status, body) = send(&p.router, import(Body::from("not an archive"))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.contains("at a time"), "{body}");
    assert!(!first.is_finished());
    drop(tx);
    let res = first.await.unwrap().unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    assert_eq!(p.count("build_specs").await, 0);
}
