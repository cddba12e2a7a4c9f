//! The `slipway` binary against a real server (the whole router on a loopback
//! port, a fresh database from `#[sqlx::test]`).

mod support;

use std::process::Command;

use leptos::config::LeptosOptions;
use slipway_engine::Store;
use slipway_server::{app, AppState};
use slipway_testkit::git::repo as testkit_repo;
use slipway_testkit::users::token_for;
use sqlx::PgPool;

/// A served router and an administrator's token.
struct Srv {
    url: String,
    token: String,
}

async fn serve(pool: PgPool) -> Srv {
    let leptos = LeptosOptions::builder().output_name("slipway").site_root("target/site").site_pkg_dir("pkg").build();
    let store = Store::from_pool(pool);
    let token = token_for(&store, "cli-admin", true).await;
    let state = AppState::for_tests(leptos, store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum_serve(listener, app(state)).await });
    Srv { url: format!("http://{addr}"), token }
}

async fn axum_serve(listener: tokio::net::TcpListener, router: axum::Router) {
    let _ = axum::serve(listener, router).await;
}

/// Runs `slipway` as the administrator; returns (success, stdout, stderr).
async fn slipway(srv: &Srv, args: &[&str]) -> (bool, String, String) {
    let out = support::slipway(&srv.url, &srv.token, args, None).await;
    (out.ok, out.stdout, out.stderr)
}

/// A repository with a one-service manifest.
fn repo() -> tempfile::TempDir {
    testkit_repo(&[(".slipway/manifest.yaml", "services:\n  api:\n    build: api\n"), ("api/Dockerfile", "FROM scratch\n")])
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
    let (ok, _, err) = slipway(&Srv { url: "http://127.0.0.1:9".into(), token: "slp_x".into() }, &["project", "list"]).await;
    assert!(!ok);
    assert!(err.contains("cannot reach Slipway"), "{err}");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn login_stores_a_token_in_a_private_config_and_logout_revokes_it(pool: PgPool) {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let srv = serve(pool).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let run = |args: Vec<String>, stdin: Option<&'static str>| {
        let config = config.clone();
        let url = srv.url.clone();
        tokio::task::spawn_blocking(move || {
            let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
                .env("SLIPWAY_CONFIG", &config)
                .env_remove("SLIPWAY_TOKEN")
                .arg("--server")
                .arg(&url)
                .args(&args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            if let Some(input) = stdin {
                child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
            }
            let out = child.wait_with_output().unwrap();
            (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
        })
    };
    let (ok, out, err) = run(vec!["login".into(), "--username".into(), "cli-admin".into()], Some("a long enough password\n")).await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("Logged in"), "{out}");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let token = stored["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("slp_"));

    // Without --server or --token: both come from the config file.
    let (ok, out, _) = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let out = Command::new(env!("CARGO_BIN_EXE_slipway")).env("SLIPWAY_CONFIG", &config).arg("whoami").output().unwrap();
            (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
        })
        .await
        .unwrap()
    };
    assert!(ok);
    assert!(out.contains("cli-admin"), "{out}");

    let (ok, _, err) = run(vec!["logout".into()], None).await.unwrap();
    assert!(ok, "{err}");
    assert!(!config.exists());
    // The revoked token is refused at once.
    let (ok, _, err) = slipway(&Srv { url: srv.url.clone(), token }, &["project", "list"]).await;
    assert!(!ok);
    assert!(err.contains("not valid"), "{err}");
}

/// `slipway build logs --follow` from a CLI that is logged in (config file)
/// and from one given `SLIPWAY_TOKEN`: the websocket carries the token, and
/// the follower reads to the run's end.
#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn build_logs_follow_works_for_a_logged_in_cli_and_with_slipway_token(pool: PgPool) {
    let srv = serve(pool).await;
    let repo = repo();
    let path = repo.path().display().to_string();
    let (ok, _, err) = slipway(&srv, &["project", "create", "follow", "--repo", &path]).await;
    assert!(ok, "{err}");
    let (ok, out, err) = slipway(&srv, &["--json", "build", "create", "--project", "follow", "--ref", "main"]).await;
    assert!(ok, "{err}");
    let build: serde_json::Value = serde_json::from_str(&out).unwrap();
    let build_id = build["spec"]["id"].as_str().unwrap().to_string();
    // No worker runs in this server: cancel the queued run so it has an end.
    let (ok, _, err) = slipway(&srv, &["build", "cancel", &build_id]).await;
    assert!(ok, "{err}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, serde_json::json!({ "server": srv.url, "token": srv.token }).to_string()).unwrap();
    let follow = |env: Vec<(&'static str, String)>| {
        let build_id = build_id.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
            cmd.env_remove("SLIPWAY_TOKEN").env_remove("SLIPWAY_SERVER").env("SLIPWAY_CONFIG", "/nonexistent/slipway-test-config.json");
            for (k, v) in env {
                cmd.env(k, v);
            }
            let out = cmd.args(["build", "logs", &build_id, "--follow"]).output().unwrap();
            (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
        })
    };
    for (how, env) in [
        ("logged in", vec![("SLIPWAY_CONFIG", config.display().to_string())]),
        ("SLIPWAY_TOKEN", vec![("SLIPWAY_TOKEN", srv.token.clone()), ("SLIPWAY_SERVER", srv.url.clone())]),
    ] {
        let (code, err) = follow(env).await.unwrap();
        assert!(!err.contains("log in first"), "{how}: the follower was refused: {err}");
        assert!(err.contains("run cancelled"), "{how}: the follower must read to the run's end: {err}");
        assert_eq!(code, Some(1), "{how}: a cancelled run exits non-zero: {err}");
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn cli_adds_lists_and_removes_the_registries_a_project_may_push_to(pool: PgPool) {
    let server = serve(pool).await;
    let repo = repo();
    let path = repo.path().display().to_string();
    assert!(slipway(&server, &["project", "create", "shop", "--repo", &path]).await.0);

    let (ok, out, err) = slipway(
        &server,
        &["registries", "add", "Reg.Example:5000", "--project", "shop", "--username-secret", "REG_USER", "--token-secret", "REG_TOKEN", "--auth-host", "auth.example"],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("Listed registry reg.example:5000 in shop (credentials: REG_USER/REG_TOKEN)"), "{out}");

    let (ok, out, _) = slipway(&server, &["registries", "list", "--project", "shop"]).await;
    assert!(ok);
    assert!(out.starts_with("HOST") && out.contains("reg.example:5000") && out.contains("auth.example"), "{out}");

    // Half a credential pair is refused before anything is sent.
    let (ok, _, err) = slipway(&server, &["registries", "add", "other.example", "--project", "shop", "--username-secret", "REG_USER"]).await;
    assert!(!ok);
    assert!(err.contains("--token-secret"), "{err}");
    // A bad host is a 422 naming the field.
    let (ok, _, err) = slipway(&server, &["registries", "add", "not a host", "--project", "shop"]).await;
    assert!(!ok);
    assert!(err.contains("host"), "{err}");

    let (ok, out, _) = slipway(&server, &["registries", "remove", "reg.example:5000", "--project", "shop"]).await;
    assert!(ok);
    assert!(out.contains("Removed registry reg.example:5000"), "{out}");
    let (ok, out, _) = slipway(&server, &["--json", "registries", "list", "--project", "shop"]).await;
    assert!(ok);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap(), serde_json::json!([]));
    let (ok, _, err) = slipway(&server, &["registries", "remove", "reg.example:5000", "--project", "shop"]).await;
    assert!(!ok, "removing twice is a 404");
    assert!(err.contains("not found") || err.contains("registry"), "{err}");
}
