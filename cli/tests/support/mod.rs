//! A whole Slipway for CLI tests: the router on a loopback port (with the
//! client address, as `slipway-server serve` has it), a build worker on the
//! real Docker engine and registry (`cargo xtask test` starts both and sets
//! SLIPWAY_REGISTRY), and a deploy executor running pending deployments on
//! local containers, which are removed when the server is dropped.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use leptos::config::LeptosOptions;
use slipway_engine::builds::buildkit::BuildKitBackend;
use slipway_engine::builds::runner::{Runner, RunnerConfig};
use slipway_engine::release::LocalDockerTarget;
use slipway_engine::Store;
use slipway_server::{app, AppState};
use slipway_testkit::nonce;
use slipway_testkit::services::{docker, registry, RemoveContainers};
use slipway_testkit::users::token_for;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

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

/// Runs `slipway --server URL --token TOKEN ARGS…` off the async runtime,
/// with `stdin` fed in, and no configuration file or token from the
/// environment.
pub async fn slipway(url: &str, token: &str, args: &[&str], stdin: Option<&str>) -> Out {
    let (url, token) = (url.to_string(), token.to_string());
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

/// A served Slipway with a worker and a deploy executor.
pub struct Server {
    pub url: String,
    pub store: Store,
    /// The first administrator's API token.
    pub admin: String,
    shutdown: CancellationToken,
    /// Removes the deploy executor's containers once the server is gone.
    _containers: RemoveContainers,
    _work: tempfile::TempDir,
}

impl Server {
    pub async fn start(pool: PgPool) -> Server {
        let store = Store::from_pool(pool);
        let docker = docker().await;
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
        let label = format!("cli-{}", nonce());
        let target = LocalDockerTarget::new(docker).with_labels([("dev.slipway.test".to_string(), label.clone())].into());
        slipway_engine::release::spawn_executor(store.clone(), Arc::new(target), Duration::from_millis(500), shutdown.clone());

        let admin = token_for(&store, "cli-admin", true).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = app(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
        });
        let containers = RemoveContainers::labelled("dev.slipway.test", &label);
        Server { url: format!("http://{addr}"), store, admin, shutdown, _containers: containers, _work: work }
    }

    /// `slipway --server URL --token TOKEN ARGS…`, with `stdin` fed in.
    pub async fn run_with_input(&self, token: &str, args: &[&str], stdin: Option<&str>) -> Out {
        slipway(&self.url, token, args, stdin).await
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
    }
}
