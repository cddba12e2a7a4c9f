//! Project isolation through the router: the allowed-images list is read by
//! members and changed only by global administrators.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use leptos::config::LeptosOptions;
use serde_json::{json, Value};
use slipway_engine::Store;
use slipway_model::auth::{NewToken, Principal, Role};
use slipway_model::project::{NewProject, Project};
use slipway_server::{app, AppState};
use sqlx::PgPool;
use tower::ServiceExt;

const PASSWORD: &str = "a long enough password";

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

async fn token_for(store: &Store, username: &str, is_admin: bool) -> (Principal, String) {
    let user = store.create_user(username, None, PASSWORD, is_admin).await.unwrap();
    let p = Principal { user, token_id: None, token_project: None, client: Default::default() };
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
