//! A whole Slipway for CLI tests: the router on a loopback port (with the
//! client address, as `slipway-server serve` has it), a build worker on the
//! real Docker engine and registry (`cargo xtask test` starts both and sets
//! SLIPWAY_REGISTRY), and a deploy executor running pending deployments on
//! local containers, which are removed when the server is dropped.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use leptos::config::LeptosOptions;
use slipway_engine::builds::buildkit::BuildKitBackend;
use slipway_engine::builds::runner::{Runner, RunnerConfig};
use slipway_engine::docker::Docker;
use slipway_engine::embedded::ensure_base_image;
use slipway_engine::release::LocalDockerTarget;
use slipway_engine::Store;
use slipway_model::auth::{NewToken, Principal};
use slipway_server::{app, AppState};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub fn registry() -> String {
    std::env::var("SLIPWAY_REGISTRY").expect("SLIPWAY_REGISTRY names the test registry (run the tests with `cargo xtask test`)")
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Writes `files` into `dir` and commits them; returns the new sha.
pub fn commit(dir: &Path, files: &[(&str, String)]) -> String {
    for (path, content) in files {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", "change"]);
    git(dir, &["rev-parse", "HEAD"])
}

/// What one `slipway` invocation did.
#[derive(Debug)]
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Stdout as JSON (for `--json` commands), with the output in the panic message.
    pub fn json(&self) -> serde_json::Value {
        assert!(self.ok, "the command failed: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// A served Slipway with a worker and a deploy executor.
pub struct Server {
    pub url: String,
    pub store: Store,
    /// The first administrator's API token.
    pub admin: String,
    shutdown: CancellationToken,
    label: String,
    _work: tempfile::TempDir,
}

impl Server {
    pub async fn start(pool: PgPool) -> Server {
        let store = Store::from_pool(pool);
        let docker = Docker::connect_with_local_defaults().expect("a Docker engine (cargo xtask test starts one)");
        ensure_base_image(&docker).await.expect("base image");
        let leptos = LeptosOptions::builder().output_name("slipway").site_root("target/site").site_pkg_dir("pkg").build();
        let mut state = AppState::for_tests(leptos, store.clone());
        state.docker = Some(docker.clone());
        state.registry = Some(registry());
        let shutdown = CancellationToken::new();

        // The build worker, with the secrets box the server encrypts with.
        let work = tempfile::tempdir().unwrap();
        let mut config = RunnerConfig::new(work.path().to_path_buf(), Some(registry()));
        config.heartbeat = Duration::from_millis(200);
        let runner = Arc::new(Runner::new(store.clone(), docker.clone(), Arc::new(BuildKitBackend::new(docker.clone())), state.secrets.clone(), config));
        runner.start(shutdown.clone());

        // The deploy executor: what `slipway-server serve` runs, woken the same way (Postgres NOTIFY).
        let label = format!("cli-{}", &slipway_model::id::new_id("x")[2..14]);
        let target = LocalDockerTarget::new(docker).with_labels([("dev.slipway.test".to_string(), label.clone())].into());
        slipway_engine::release::spawn_executor(store.clone(), Arc::new(target), Duration::from_millis(500), shutdown.clone());

        let admin = user(&store, "cli-admin", true).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = app(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
        });
        Server { url: format!("http://{addr}"), store, admin, shutdown, label, _work: work }
    }

    /// `slipway --server URL --token TOKEN ARGS…`, with `stdin` fed in.
    pub async fn run_with_input(&self, token: &str, args: &[&str], stdin: Option<&str>) -> Out {
        let (url, token) = (self.url.clone(), token.to_string());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let stdin = stdin.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
                .arg("--server")
                .arg(&url)
                .arg("--token")
                .arg(&token)
                .env("SLIPWAY_CONFIG", "/nonexistent/slipway-test-config.json")
                .env_remove("SLIPWAY_TOKEN")
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut input = child.stdin.take().unwrap();
            if let Some(text) = stdin {
                input.write_all(text.as_bytes()).unwrap();
            }
            drop(input);
            let out = child.wait_with_output().unwrap();
            Out {
                ok: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
        .await
        .unwrap()
    }

    pub async fn run(&self, token: &str, args: &[&str]) -> Out {
        self.run_with_input(token, args, None).await
    }

    /// Polls `check` (every 200 ms, up to 120 s) until it returns `Some`.
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let filter = format!("label=dev.slipway.test={}", self.label);
        if let Ok(out) = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output() {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect();
            if !ids.is_empty() {
                let _ = Command::new("docker").arg("rm").arg("-f").args(&ids).output();
            }
        }
    }
}

/// Creates a user (password `a long enough password`) and returns an API token of theirs.
pub async fn user(store: &Store, username: &str, admin: bool) -> String {
    let user = store.create_user(username, None, "a long enough password", admin).await.unwrap();
    let principal = Principal { user, token_id: None, token_project: None, client: Default::default() };
    store.create_token(&principal, &NewToken { name: "cli".into(), project: None, expires_in_days: None }).await.unwrap().token
}
