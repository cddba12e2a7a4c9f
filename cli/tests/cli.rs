//! The `slipway` binary against a real server (the whole router on a loopback
//! port, a fresh database from `#[sqlx::test]`).

use std::process::Command;

use leptos::config::LeptosOptions;
use slipway_engine::Store;
use slipway_server::{app, AppState};
use sqlx::PgPool;

async fn serve(pool: PgPool) -> String {
    let leptos = LeptosOptions::builder().output_name("slipway").site_root("target/site").site_pkg_dir("pkg").build();
    let store = Store::from_pool(pool);
    let state = AppState::for_tests(leptos, store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum_serve(listener, app(state)).await });
    format!("http://{addr}")
}

async fn axum_serve(listener: tokio::net::TcpListener, router: axum::Router) {
    let _ = axum::serve(listener, router).await;
}

/// Runs `slipway` off the async runtime; returns (success, stdout, stderr).
async fn slipway(server: &str, args: &[&str]) -> (bool, String, String) {
    let server = server.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_slipway")).arg("--server").arg(&server).args(&args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    })
    .await
    .unwrap()
}

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        assert!(Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .status()
            .unwrap()
            .success())
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(dir.path().join(".slipway")).unwrap();
    std::fs::create_dir_all(dir.path().join("api")).unwrap();
    std::fs::write(dir.path().join(".slipway/manifest.yaml"), "services:\n  api:\n    build: api\n").unwrap();
    std::fs::write(dir.path().join("api/Dockerfile"), "FROM scratch\n").unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "m"]);
    dir
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn cli_creates_lists_and_shows_projects_and_builds(pool: PgPool) {
    let server = serve(pool).await;
    let repo = repo();
    let path = repo.path().display().to_string();

    let (ok, out, err) = slipway(&server, &["project", "create", "shop", "--repo", &path]).await;
    assert!(ok, "{err}");
    assert!(out.contains("Created project shop (prj_"), "{out}");

    let (ok, out, _) = slipway(&server, &["project", "list"]).await;
    assert!(ok);
    assert!(out.lines().next().unwrap().starts_with("ID"), "a table with headers: {out}");
    assert!(out.contains("shop") && out.contains(&path), "{out}");

    let (ok, out, _) = slipway(&server, &["--json", "project", "show", "shop"]).await;
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["slug"], "shop");

    // --repo-dir resolves the ref and computes the manifest hash locally.
    let (ok, out, err) =
        slipway(&server, &["--json", "build", "create", "--project", "shop", "--repo-dir", &path, "--no-run"]).await;
    assert!(ok, "{err}");
    let build: serde_json::Value = serde_json::from_str(&out).unwrap();
    let build_id = build["spec"]["id"].as_str().unwrap().to_string();
    assert_eq!(build["spec"]["manifest_hash"].as_str().unwrap().len(), 64);

    let (ok, out, _) = slipway(&server, &["build", "list", "--project", "shop"]).await;
    assert!(ok);
    assert!(out.contains(&build_id) && out.contains("not run"), "{out}");

    let (ok, out, _) = slipway(&server, &["build", "run", &build_id]).await;
    assert!(ok, "{out}");
    let (ok, out, _) = slipway(&server, &["build", "cancel", &build_id]).await;
    assert!(ok);
    assert!(out.contains("Cancelled run"), "{out}");
    let (ok, out, _) = slipway(&server, &["build", "runs", &build_id]).await;
    assert!(ok);
    assert!(out.contains("cancelled"), "{out}");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn cli_errors_name_the_field_and_exit_non_zero(pool: PgPool) {
    let server = serve(pool).await;
    let (ok, _, err) = slipway(&server, &["project", "create", "x", "--repo", "relative/path"]).await;
    assert!(!ok);
    assert!(err.contains("repo_url"), "{err}");
    let (ok, _, err) = slipway(&server, &["build", "show", "bld_nope"]).await;
    assert!(!ok);
    assert!(err.contains("build"), "{err}");
    let (ok, _, err) = slipway("http://127.0.0.1:9", &["project", "list"]).await;
    assert!(!ok);
    assert!(err.contains("cannot reach Slipway"), "{err}");
}
