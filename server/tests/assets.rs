//! How the dashboard's bytes travel: the wasm, JS and CSS precompressed by
//! `cargo xtask` (brotli, gzip) and sent as such to a browser that accepts
//! them, revalidated by date on a warm load; pages and answers compressed on
//! the way out.

mod support;

use std::io::Read;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use leptos::config::LeptosOptions;
use slipway_engine::Store;
use slipway_server::{app, AppState};
use sqlx::PgPool;
use tower::ServiceExt;

/// A site root holding one asset and its two precompressed forms, each
/// distinct so the answer shows which file was sent.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("slipway_bg.wasm"), b"\0asm raw bytes of the dashboard").unwrap();
    std::fs::write(pkg.join("slipway_bg.wasm.br"), b"brotli form").unwrap();
    std::fs::write(pkg.join("slipway_bg.wasm.gz"), b"gzip form").unwrap();
    dir
}

async fn get(router: &axum::Router, uri: &str, headers: &[(header::HeaderName, &str)]) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(k, *v);
    }
    let res = router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn the_wasm_goes_out_precompressed_and_a_warm_load_revalidates_it(pool: PgPool) {
    let root = site();
    let leptos = LeptosOptions::builder().output_name("slipway").site_root(root.path().display().to_string()).site_pkg_dir("pkg").build();
    let router = app(AppState::for_tests(leptos, Store::from_pool(pool)));
    let wasm = "/pkg/slipway_bg.wasm";

    let (status, headers, body) = get(&router, wasm, &[(header::ACCEPT_ENCODING, "gzip, deflate, br, zstd")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap()), Some("br"));
    assert_eq!(body, b"brotli form", "the precompressed file itself, not compressed again");
    assert_eq!(headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap()), Some("application/wasm"));
    assert_eq!(headers.get(header::CACHE_CONTROL).map(|v| v.to_str().unwrap()), Some("no-cache"));

    let (_, headers, body) = get(&router, wasm, &[(header::ACCEPT_ENCODING, "gzip")]).await;
    assert_eq!(headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap()), Some("gzip"));
    assert_eq!(body, b"gzip form");

    let (_, headers, body) = get(&router, wasm, &[]).await;
    assert!(headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(body, b"\0asm raw bytes of the dashboard");

    // A warm load: the browser asks with the date it has; nothing is sent again.
    let (_, headers, _) = get(&router, wasm, &[(header::ACCEPT_ENCODING, "br")]).await;
    let modified = headers.get(header::LAST_MODIFIED).expect("a Last-Modified date").to_str().unwrap().to_string();
    let (status, _, body) = get(&router, wasm, &[(header::ACCEPT_ENCODING, "br"), (header::IF_MODIFIED_SINCE, &modified)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn answers_are_compressed_for_a_client_that_accepts_it(pool: PgPool) {
    let router = support::router(&Store::from_pool(pool));
    let (_, headers, body) = get(&router, "/healthz", &[(header::ACCEPT_ENCODING, "gzip")]).await;
    assert_eq!(headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap()), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text).unwrap();
    let health: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(health.get("database").is_some(), "{text}");
    let (_, headers, body) = get(&router, "/healthz", &[]).await;
    assert!(headers.get(header::CONTENT_ENCODING).is_none(), "no compression unasked");
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
}
