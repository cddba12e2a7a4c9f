//! `slipway build export` and `slipway build import` against a real server
//! (the whole router on a loopback port) with the real Docker engine and
//! registry `cargo xtask test` starts: the archive is streamed down to a
//! file and up again over HTTP with the bearer token.

mod support;

use std::io::{Read, Write};
use std::sync::Arc;

use leptos::config::LeptosOptions;
use slipway_engine::builds::buildkit::BuildKitBackend;
use slipway_engine::builds::create::create_build;
use slipway_engine::builds::runner::{Runner, RunnerConfig};
use slipway_engine::embedded::BASE_IMAGE;
use slipway_engine::Store;
use slipway_model::build::{ImportedBuild, NewBuild};
use slipway_model::project::NewProject;
use slipway_model::release::ImageDigests;
use slipway_model::status::BuildRunStatus;
use slipway_server::{app, AppState};
use slipway_testkit::git::repo;
use slipway_testkit::nonce;
use slipway_testkit::services::{docker, registry, tokens};
use slipway_testkit::users::token_for;
use sqlx::PgPool;

/// Runs `slipway` as `token`; returns (success, stdout, stderr).
async fn slipway(url: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = support::slipway(url, token, args, None).await;
    (out.ok, out.stdout, out.stderr)
}

/// The status line of a raw request to `addr`.
fn raw_status(addr: &str, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string()
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn the_cli_exports_a_build_to_a_file_and_imports_it_into_another_project(pool: PgPool) {
    let store = Store::from_pool(pool);
    let docker = docker().await;
    let token = token_for(&store, "cli-admin", true).await;
    let leptos = LeptosOptions::builder().output_name("slipway").site_root("target/site").site_pkg_dir("pkg").build();
    let mut state = AppState::for_tests(leptos, store.clone());
    state.docker = Some(docker.clone());
    state.registry = Some(registry());
    state.registry_tokens = tokens();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let router = app(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let url = format!("http://{addr}");

    // A built project and an empty one.
    let nonce = nonce();
    let repo = repo(&[
        (".slipway/manifest.yaml", "services:\n  api:\n    build: api\n".to_string()),
        ("api/Dockerfile", format!("FROM {BASE_IMAGE}\nCOPY id.txt /id.txt\n")),
        ("api/id.txt", format!("{nonce}\n")),
    ]);
    let mk = |name: &str| NewProject { name: name.into(), repo_url: repo.path().display().to_string(), ..Default::default() };
    let source = store.create_project(&mk("cli-src"), None).await.unwrap();
    let target = store.create_project(&mk("cli-dst"), None).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let config = RunnerConfig::new(work.path().to_path_buf(), Some(registry()));
    let runner = Runner::new(store.clone(), docker.clone(), Arc::new(BuildKitBackend::new(docker.clone())), None, config);
    let build = create_build(&store, &NewBuild { project: source.slug.clone(), run: true, ..Default::default() }, None).await.unwrap();
    runner.run_once().await.unwrap().expect("a queued run");
    let build = store.get_build(&build.spec.id).await.unwrap();
    assert_eq!(build.runs[0].status, BuildRunStatus::Completed, "{:?}", build.runs[0].error_message);
    let digests: ImageDigests = build.artifacts.iter().map(|a| (a.service_name.clone(), a.digest.clone())).collect();

    // Export to a file.
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("build.tgz");
    let file_arg = file.display().to_string();
    let (ok, stdout, stderr) = slipway(&url, &token, &["build", "export", &build.spec.id, "-f", &file_arg]).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("Exported build {}", build.spec.id)), "{stdout}");
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size > 100, "{size} bytes");
    let magic = std::fs::read(&file).unwrap();
    assert_eq!(&magic[..2], &[0x1f, 0x8b], "a gzip file");
    assert!(std::fs::read_dir(out_dir.path()).unwrap().count() == 1, "no partial file is left behind");

    // Import it into the other project.
    let (ok, stdout, stderr) = slipway(&url, &token, &["--json", "build", "import", "--project", &target.slug, "-f", &file_arg]).await;
    assert!(ok, "{stdout}{stderr}");
    let imported: ImportedBuild = serde_json::from_str(&stdout).unwrap();
    assert_eq!(imported.release.project_id, target.id);
    assert_eq!(imported.release.build_id, imported.build.spec.id);
    assert_eq!(imported.release.image_digests, digests);
    let (ok, stdout, _) = slipway(&url, &token, &["build", "import", "--project", &target.slug, "-f", &file_arg]).await;
    assert!(ok && stdout.contains("Created release r2"), "{stdout}");

    // Both are in the audit trail.
    let (exported,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_events WHERE action = 'build.exported' AND target_id = $1")
        .bind(&build.spec.id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    let (imports,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_events WHERE action = 'build.imported' AND project_id = $1")
        .bind(&target.id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!((exported, imports), (1, 2));

    // Errors the CLI shows: an unknown build, a file that is not an export.
    let (ok, _, stderr) = slipway(&url, &token, &["build", "export", "bld_00000000000000000000000000", "-f", &file_arg]).await;
    assert!(!ok && stderr.contains("not found"), "{stderr}");
    let junk = out_dir.path().join("junk.tgz");
    std::fs::write(&junk, "not an archive").unwrap();
    let junk_arg = junk.display().to_string();
    let (ok, _, stderr) = slipway(&url, &token, &["build", "import", "--project", &target.slug, "-f", &junk_arg]).await;
    assert!(!ok && stderr.contains("gzipped tar"), "{stderr}");

    // An upload over the limit is refused with 413 before its body is read.
    let request = format!(
        "POST /api/projects/{}/import HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/gzip\r\nContent-Length: {}\r\n\r\n",
        target.slug,
        3u64 * 1024 * 1024 * 1024
    );
    let status = tokio::task::spawn_blocking(move || raw_status(&addr, &request)).await.unwrap();
    assert!(status.contains(" 413 "), "{status}");
}
