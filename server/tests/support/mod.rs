//! Fixtures of the router tests: a router over a store, JSON calls, and the
//! API of the hostile-input tests. Users, tokens and git repositories are
//! `slipway-testkit`'s.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use leptos::config::LeptosOptions;
use serde_json::Value;
use slipway_engine::Store;
use slipway_server::{app, AppState, Edge};
use slipway_testkit::users::token_for;
use tower::ServiceExt;

pub fn leptos() -> LeptosOptions {
    LeptosOptions::builder().output_name("slipway").site_root("target/site").site_pkg_dir("pkg").build()
}

/// The router over `store` without engine or registry, with these edge settings.
pub fn router_with_edge(store: &Store, edge: Edge) -> Router {
    let mut state = AppState::for_tests(leptos(), store.clone());
    state.edge = std::sync::Arc::new(edge);
    app(state)
}

/// The router over `store` without engine or registry.
pub fn router(store: &Store) -> Router {
    app(AppState::for_tests(leptos(), store.clone()))
}

/// Sends a request; the status and the body as text.
pub async fn send(router: &Router, req: Request<Body>) -> (StatusCode, String) {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `POST /api/{path}` with a JSON body, as `token` (or anonymously).
pub fn post(path: &str, token: Option<&str>, body: &Value) -> Request<Body> {
    let mut req = Request::builder()
        .method("POST")
        .uri(format!("/api/{path}"))
        .header("content-type", "application/json")
        .header("accept", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.body(Body::from(body.to_string())).unwrap()
}

/// The request as if it came from the socket address `ip` (port 40000).
pub fn from_ip(mut req: Request<Body>, ip: [u8; 4]) -> Request<Body> {
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from((ip, 40000))));
    req
}

/// Calls a server function and parses the JSON answer.
pub async fn call(router: &Router, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let (status, text) = send(router, post(path, token, &body)).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The router (no engine, a secret key), its store and a global administrator's
/// token, for the hostile-input and fuzzing tests.
pub struct Api {
    pub router: Router,
    pub store: Store,
    /// A global administrator's API token.
    pub admin: String,
}

impl Api {
    pub async fn new(pool: sqlx::PgPool) -> Api {
        let state = AppState::for_tests(leptos(), Store::from_pool(pool));
        let store = state.store.clone();
        let admin = token_for(&store, "root", true).await;
        Api { router: app(state), store, admin }
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, String) {
        send(&self.router, req).await
    }

    /// A server function (`/api/<path>`) with a JSON body, as the holder of `token`.
    pub async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        call(&self.router, path, Some(token), body).await
    }

    /// Rows in `table` (to show an attack changed nothing).
    pub async fn rows(&self, table: &str) -> i64 {
        let n: (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}")).fetch_one(self.store.pool()).await.unwrap();
        n.0
    }

    /// A project created by the system (as demo seeding does) on `repo`.
    pub async fn system_project(&self, name: &str, repo: &Path) -> slipway_model::project::Project {
        let input = slipway_model::project::NewProject { name: name.into(), repo_url: repo.display().to_string(), ..Default::default() };
        self.store.create_project(&input, None).await.unwrap()
    }
}

/// A YAML alias bomb (10^10 nodes once expanded) with a valid service, so
/// only the expansion is wrong.
pub fn alias_bomb() -> String {
    let mut yaml = String::from("x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..=9 {
        let p = i - 1;
        yaml.push_str(&format!("x-a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    yaml.push_str("services:\n  api:\n    image: busybox\n");
    yaml
}
