//! Project isolation through the router: the allowed-images list is read by
//! members and changed only by global administrators; the registry token
//! realm gives a project's credential a token for its own repositories only,
//! and nothing to anonymous, forged or expired credentials.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use leptos::config::LeptosOptions;
use serde_json::{json, Value};
use slipway_engine::registry_auth::TokenIssuer;
use slipway_engine::Store;
use slipway_model::auth::{NewToken, Principal, Role};
use slipway_model::project::{NewProject, Project};
use slipway_server::{app, AppState};
use slipway_testkit::users::{principal, user};
use sqlx::PgPool;
use tower::ServiceExt;

struct World {
    router: Router,
    store: Store,
    alpha: Project,
    beta: Project,
    /// Global administrator.
    root: String,
    /// Administrator of project alpha only.
    alpha_admin: String,
    /// Developer of project beta only.
    beta_dev: String,
}

/// A user with an API token, as a caller and the token.
async fn token_for(store: &Store, username: &str, is_admin: bool) -> (Principal, String) {
    let p = principal(&user(store, username, is_admin).await);
    let t = store.create_token(&p, &NewToken { name: "t".into(), project: None, expires_in_days: None }).await.unwrap().token;
    (p, t)
}

async fn world(pool: PgPool) -> World {
    let store = Store::from_pool(pool);
    let (root_p, root) = token_for(&store, "root", true).await;
    let mut projects = Vec::new();
    for name in ["alpha", "beta"] {
        let input = NewProject { name: name.into(), repo_url: format!("https://git.example/{name}.git"), ..Default::default() };
        projects.push(store.create_project(&input, None).await.unwrap());
    }
    let beta = projects.pop().unwrap();
    let alpha = projects.pop().unwrap();
    let (_, alpha_admin) = token_for(&store, "alpha-admin", false).await;
    store.set_member(&alpha.id, "alpha-admin", Role::Admin, &root_p).await.unwrap();
    let (_, beta_dev) = token_for(&store, "beta-dev", false).await;
    store.set_member(&beta.id, "beta-dev", Role::Developer, &root_p).await.unwrap();
    let leptos = LeptosOptions::builder().output_name("slipway").site_root("target/site").site_pkg_dir("pkg").build();
    let router = app(AppState::for_tests(leptos, store.clone()));
    World { router, store, alpha, beta, root, alpha_admin, beta_dev }
}

async fn call(w: &World, token: &str, endpoint: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("POST")
        .uri(format!("/api/{endpoint}"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let res = w.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn patterns(w: &World) -> Vec<(String, Option<String>)> {
    w.store.list_allowed_images(None).await.unwrap().into_iter().map(|e| (e.pattern, e.project)).collect()
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_project_administrator_cannot_allow_another_projects_images_into_their_own(pool: PgPool) {
    let w = world(pool).await;
    let before = patterns(&w).await;
    assert_eq!(before, vec![("docker.io/slipway/busybox:1".to_string(), None)], "the embedded base image is allowed by default");
    let steal = json!({ "input": { "pattern": format!("127.0.0.1:5000/{}/*", w.beta.slug), "project": w.alpha.slug } });
    let (status, body) = call(&w, &w.alpha_admin, "base-images/add", steal.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = call(&w, &w.beta_dev, "base-images/remove", json!({ "pattern": "slipway/busybox:1" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(patterns(&w).await, before, "nothing changed");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_global_administrator_manages_the_list_and_members_see_what_applies_to_them(pool: PgPool) {
    let w = world(pool).await;
    let shared = format!("127.0.0.1:5000/{}/api", w.beta.slug);
    let (status, body) = call(&w, &w.root, "base-images/add", json!({ "input": { "pattern": shared, "project": w.alpha.slug } })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["project"], json!(w.alpha.slug));
    let (status, body) = call(&w, &w.root, "base-images/add", json!({ "input": { "pattern": "alpine" } })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["pattern"], json!("docker.io/library/alpine"), "stored canonical");
    // The same entry again: 409; a bad pattern: 422 naming the field.
    let (status, _) = call(&w, &w.root, "base-images/add", json!({ "input": { "pattern": "docker.io/library/alpine" } })).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = call(&w, &w.root, "base-images/add", json!({ "input": { "pattern": "*" } })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["problems"][0]["field"], json!("pattern"), "{body}");
    // beta's developer sees the global entries, not alpha's.
    let (status, body) = call(&w, &w.beta_dev, "base-images/list", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let seen: Vec<&str> = body.as_array().unwrap().iter().map(|e| e["pattern"].as_str().unwrap()).collect();
    assert_eq!(seen, vec!["docker.io/library/alpine", "docker.io/slipway/busybox:1"]);
    let (_, body) = call(&w, &w.alpha_admin, "base-images/list", json!({})).await;
    assert_eq!(body.as_array().unwrap().len(), 3, "{body}");
    // Removal names pattern and project; the audit trail has both changes.
    let (status, _) = call(&w, &w.root, "base-images/remove", json!({ "pattern": shared, "project": w.alpha.slug })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&w, &w.root, "base-images/remove", json!({ "pattern": shared, "project": w.alpha.slug })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_events WHERE action IN ('base_image.allowed', 'base_image.removed')")
        .fetch_one(w.store.pool())
        .await
        .unwrap();
    assert_eq!(n, 3);
}

/// The realm answers on the router; the registry is the test services' one.
async fn realm_world(pool: PgPool) -> (World, TokenIssuer, String) {
    let mut w = world(pool).await;
    let registry = std::env::var("SLIPWAY_REGISTRY").expect("SLIPWAY_REGISTRY names the test registry (run the tests with `cargo xtask test`)");
    let issuer = TokenIssuer::from_env(&registry)
        .expect("a usable SLIPWAY_REGISTRY_TOKEN_KEY")
        .expect("the test registry authenticates with Slipway's tokens (SLIPWAY_REGISTRY_TOKEN_KEY)");
    let leptos = LeptosOptions::builder().output_name("slipway").site_root("target/site").site_pkg_dir("pkg").build();
    let mut state = AppState::for_tests(leptos, w.store.clone());
    state.registry = Some(registry.clone());
    state.registry_tokens = Some(issuer.clone());
    w.router = app(state);
    (w, issuer, registry)
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

async fn realm(w: &World, method: &str, uri: &str, authorization: Option<&str>, form: Option<String>) -> (StatusCode, Option<String>, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let req = match form {
        Some(f) => req.header("content-type", "application/x-www-form-urlencoded").body(Body::from(f)).unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let res = w.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let challenge = res.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_string);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, challenge, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The `access` claim of a registry token.
fn access_of(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["access"].clone()
}

/// The registry's status for reading `name`'s tags with `token`.
fn registry_status(registry: &str, name: &str, token: &str) -> u16 {
    match ureq::get(&format!("http://{registry}/v2/{name}/tags/list")).set("Authorization", &format!("Bearer {token}")).call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn the_realm_gives_a_project_a_token_for_its_own_repositories_only(pool: PgPool) {
    let (w, issuer, registry) = realm_world(pool).await;
    let (user, password) = issuer.project_credential(&w.store, &w.alpha.id, &w.alpha.slug).await.unwrap();
    let (a, b) = (format!("{}/api", w.alpha.slug), format!("{}/api", w.beta.slug));
    let uri = format!("/internal/registry/token?service=slipway-registry&scope=repository:{a}:pull,push&scope=repository:{b}:pull,push");
    let (status, _, body) = realm(&w, "GET", &uri, Some(&basic(&user, &password)), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(body["access_token"], body["token"]);
    assert_eq!(body["expires_in"], json!(300));
    assert_eq!(access_of(&token), json!([{ "type": "repository", "name": a, "actions": ["pull", "push"] }]), "nothing of beta's");
    // The registry agrees: alpha's repository opens (404: nothing pushed yet), beta's does not.
    assert_eq!(registry_status(&registry, &a, &token), 404);
    assert_eq!(registry_status(&registry, &b, &token), 401);

    // The OAuth2 form (POST) gives the same; other grant types are refused.
    let form = format!("grant_type=password&username={user}&password={password}&service=slipway-registry&scope=repository:{b}:pull");
    let (status, _, body) = realm(&w, "POST", "/internal/registry/token", None, Some(form)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(access_of(body["token"].as_str().unwrap()), json!([]));
    let (status, _, body) = realm(&w, "POST", "/internal/registry/token", None, Some("grant_type=refresh_token&refresh_token=x".into())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["problems"][0]["field"], json!("grant_type"));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn the_realm_refuses_anonymous_forged_and_expired_credentials(pool: PgPool) {
    let (w, issuer, _) = realm_world(pool).await;
    let uri = format!("/internal/registry/token?service=slipway-registry&scope=repository:{}/api:pull", w.alpha.slug);
    let (status, challenge, body) = realm(&w, "GET", &uri, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(challenge.as_deref(), Some("Basic realm=\"Slipway registry\""));
    // A Slipway API token is not a registry credential.
    let (status, _, _) = realm(&w, "GET", &uri, Some(&basic("root", &w.root)), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let grant = slipway_engine::registry_auth::Grant::project(&w.alpha.slug, &[]);
    let (user, expired) = issuer.credential("alpha", grant.clone(), std::time::Duration::ZERO).unwrap();
    let (status, _, _) = realm(&w, "GET", &uri, Some(&basic(&user, &expired)), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an expired credential");
    // Another key's credential, and a registry token offered as a credential.
    let stranger = TokenIssuer::new(slipway_engine::registry_auth::SigningKey::generate().unwrap(), issuer.registry_host());
    let (_, forged) = stranger.credential("alpha", grant.clone(), std::time::Duration::from_secs(60)).unwrap();
    let (status, _, _) = realm(&w, "GET", &uri, Some(&basic(&user, &forged)), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a credential signed by another key");
    let token = issuer.registry_token("alpha", Vec::new(), chrono::Utc::now().timestamp(), 300).unwrap();
    let (status, _, _) = realm(&w, "GET", &uri, Some(&basic(&user, &token)), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a registry token is not a credential");
    // A token for another service.
    let (_, good) = issuer.credential("alpha", grant, std::time::Duration::from_secs(60)).unwrap();
    let (status, _, body) = realm(&w, "GET", "/internal/registry/token?service=other", Some(&basic(&user, &good)), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["problems"][0]["field"], json!("service"));
}
