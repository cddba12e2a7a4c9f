//! Builds: Slipway's end-to-end build of a fixture against a raw bollard
//! BuildKit build (and push) of the same context; a reuse hit; runs per
//! minute with 20 queued small builds; and how long a cancel takes to stop a
//! running RUN step (the tests only check a generous bound).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::query_parameters::{BuildImageOptionsBuilder, BuilderVersion, PushImageOptionsBuilder};
use bollard::Docker;
use futures::StreamExt;
use slipway_engine::builds::buildkit::BuildKitBackend;
use slipway_engine::builds::create::create_build;
use slipway_engine::builds::runner::{Runner, RunnerConfig};
use slipway_engine::builds::workspace;
use slipway_engine::embedded::{ensure_base_image, BASE_IMAGE};
use slipway_engine::secrets::{MasterKey, SecretBox};
use slipway_engine::Store;
use slipway_model::build::NewBuild;
use slipway_model::project::NewProject;
use slipway_model::status::BuildRunStatus;

use crate::{fresh_store, percentile};

const ROUNDS: usize = 7;

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let ok = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false"])
        .args(args)
        .status()?
        .success();
    anyhow::ensure!(ok, "git {args:?} failed");
    Ok(())
}

/// A repository with one service: the base image, a COPY of 50 files and a RUN.
fn fixture_repo() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    git(dir.path(), &["init", "-q", "-b", "main"])?;
    std::fs::create_dir_all(dir.path().join(".slipway"))?;
    std::fs::create_dir_all(dir.path().join("app/src"))?;
    std::fs::write(dir.path().join(".slipway/manifest.yaml"), "services:\n  app:\n    build: app\n")?;
    std::fs::write(
        dir.path().join("app/Dockerfile"),
        format!("FROM {BASE_IMAGE}\nARG N=0\nCOPY src /src\nRUN echo \"build $N\" && ls /src | wc -l\n"),
    )?;
    for i in 0..50 {
        std::fs::write(dir.path().join(format!("app/src/file{i}.txt")), format!("file {i}\n").repeat(100))?;
    }
    git(dir.path(), &["add", "-A"])?;
    git(dir.path(), &["commit", "-q", "-m", "bench fixture"])?;
    Ok(dir)
}

async fn raw_build(docker: &Docker, context: bytes::Bytes, tag: &str, n: usize) -> anyhow::Result<()> {
    let session = uuid::Builder::from_random_bytes(rand::random::<[u8; 16]>()).into_uuid().to_string();
    let args = std::collections::HashMap::from([("N".to_string(), n.to_string())]);
    let options = BuildImageOptionsBuilder::default()
        .t(tag)
        .dockerfile("Dockerfile")
        .version(BuilderVersion::BuilderBuildKit)
        .session(&session)
        .networkmode("none")
        .buildargs(&args)
        .rm(true)
        .build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context)));
    while let Some(item) = stream.next().await {
        item?;
    }
    Ok(())
}

async fn raw_push(docker: &Docker, repo: &str, tag: &str) -> anyhow::Result<()> {
    let options = PushImageOptionsBuilder::default().tag(tag).build();
    // The services' registry takes only tokens Slipway issues: a push credential for `bench-raw/…`.
    let host = repo.split('/').next().unwrap_or_default();
    let credentials = match slipway_engine::registry_auth::TokenIssuer::from_env(host)? {
        Some(issuer) => {
            let subject = slipway_engine::registry_auth::issuer::project_subject("bench-raw");
            let grant = slipway_engine::registry_auth::Grant::project("bench-raw", &[]);
            let (username, password) = issuer.credential(&subject, grant, slipway_engine::registry_auth::issuer::CREDENTIAL_TTL)?;
            Some(bollard::auth::DockerCredentials { username: Some(username), password: Some(password), serveraddress: Some(host.to_string()), ..Default::default() })
        }
        None => None,
    };
    let mut stream = docker.push_image(repo, Some(options), credentials);
    while let Some(item) = stream.next().await {
        let info = item?;
        if let Some(e) = info.error_detail.and_then(|d| d.message) {
            anyhow::bail!("push failed: {e}");
        }
    }
    Ok(())
}

async fn wait_done(store: &Store, build_id: &str) -> anyhow::Result<BuildRunStatus> {
    loop {
        let runs = store.list_runs(build_id).await?;
        if let Some(r) = runs.first() {
            if r.status.is_terminal() {
                return Ok(r.status);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run() -> anyhow::Result<()> {
    let registry = std::env::var("SLIPWAY_REGISTRY").map_err(|_| anyhow::anyhow!("SLIPWAY_REGISTRY is not set: run through `cargo xtask bench`"))?;
    let docker = Docker::connect_with_local_defaults()?.negotiate_version().await?;
    ensure_base_image(&docker).await?;
    let store = fresh_store("builds").await?;
    let repo = fixture_repo()?;
    let project = store
        .create_project(&NewProject { name: "bench".into(), repo_url: repo.path().display().to_string(), ..Default::default() }, None)
        .await?;
    let work = tempfile::tempdir()?;
    let mut config = RunnerConfig::new(work.path().to_path_buf(), Some(registry.clone()));
    config.heartbeat = Duration::from_millis(500);
    let secrets = Arc::new(SecretBox::new(MasterKey::from_bytes([1; 32])));
    let runner = Arc::new(Runner::new(store.clone(), docker.clone(), Arc::new(BuildKitBackend::new(docker.clone())), Some(secrets), config.clone()));

    // The same context, tarred once, for the raw builds.
    let checkout = tempfile::tempdir()?;
    let sha = workspace::resolve_ref(&project.repo_url, "main").await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let dest = checkout.path().join("src");
    workspace::checkout(&project.repo_url, &sha, &dest).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let (context, stats) = workspace::context_tar(&dest.join("app"))?;
    println!("fixture: 1 service, {} files, {} bytes of context; base {BASE_IMAGE}; registry {registry}", stats.files, stats.bytes);

    // Each round builds with a new N so neither side gets a fully cached RUN.
    let mut slipway = Vec::new();
    let mut raw_build_only = Vec::new();
    let mut raw_build_push = Vec::new();
    for round in 0..ROUNDS {
        let n = 1000 + round;
        let started = Instant::now();
        let d = create_build(
            &store,
            &NewBuild { project: "bench".into(), build_args: vec![format!("N={n}")], force_rebuild: true, run: true, ..Default::default() },
            None,
        )
        .await?;
        runner.run_once().await?;
        let status = wait_done(&store, &d.spec.id).await?;
        anyhow::ensure!(status == BuildRunStatus::Completed, "slipway build {} ended {status:?}", d.spec.id);
        slipway.push(started.elapsed());

        let repo_name = format!("{registry}/bench-raw/app");
        let tag = format!("r{n}");
        let started = Instant::now();
        raw_build(&docker, context.clone(), &format!("{repo_name}:{tag}"), n + 100).await?;
        raw_build_only.push(started.elapsed());
        raw_push(&docker, &repo_name, &tag).await?;
        raw_build_push.push(started.elapsed());
    }
    let s = percentile(&mut slipway, 0.5);
    let rb = percentile(&mut raw_build_only, 0.5);
    let rp = percentile(&mut raw_build_push, 0.5);
    println!("\nbuild of the fixture, median of {ROUNDS} (RUN step not cached):");
    println!("  slipway (clone, checkout, tar, BuildKit build, push, HEAD check, record): {s:8.1} ms");
    println!("  raw bollard BuildKit build + push of the same context:                 {rp:8.1} ms  (build alone {rb:.1} ms)");
    println!("  ratio slipway / raw build+push: {:.2}x", s / rp);

    // Reuse hit: same sha, manifest, services and args as an earlier completed run.
    let mut reuse = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let d = create_build(&store, &NewBuild { project: "bench".into(), build_args: vec!["N=1000".into()], run: true, ..Default::default() }, None).await?;
        runner.run_once().await?;
        wait_done(&store, &d.spec.id).await?;
        reuse.push(started.elapsed());
        let run = &store.list_runs(&d.spec.id).await?[0];
        anyhow::ensure!(run.reused_from_run_id.is_some(), "expected a reuse hit");
    }
    println!("\nreuse hit (create spec → run completed with reused artifacts): median {:.1} ms, max {:.1} ms", percentile(&mut reuse, 0.5), percentile(&mut reuse, 1.0));

    // Throughput: 20 queued small builds, workers with the default concurrency.
    let mut ids = Vec::new();
    for i in 0..20 {
        let d = create_build(
            &store,
            &NewBuild { project: "bench".into(), build_args: vec![format!("N={}", 5000 + i)], run: true, ..Default::default() },
            None,
        )
        .await?;
        ids.push(d.spec.id);
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let handle = runner.clone().start(shutdown.clone());
    for id in &ids {
        let status = wait_done(&store, id).await?;
        anyhow::ensure!(status == BuildRunStatus::Completed, "queued build {id} ended {status:?}");
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    let _ = handle.await;
    println!(
        "\nqueue: 20 small builds with concurrency {} on one process: {:.1} s → {:.1} runs/minute",
        config.concurrency,
        elapsed.as_secs_f64(),
        20.0 / elapsed.as_secs_f64() * 60.0
    );
    cancel_latency(&store, &runner).await
}

/// Cancel request → run recorded as cancelled, while a `RUN sleep` runs.
async fn cancel_latency(store: &Store, runner: &Arc<Runner>) -> anyhow::Result<()> {
    let repo = tempfile::tempdir()?;
    git(repo.path(), &["init", "-q", "-b", "main"])?;
    std::fs::create_dir_all(repo.path().join(".slipway"))?;
    std::fs::create_dir_all(repo.path().join("slow"))?;
    std::fs::write(repo.path().join(".slipway/manifest.yaml"), "services:\n  slow:\n    build: slow\n")?;
    std::fs::write(repo.path().join("slow/Dockerfile"), format!("FROM {BASE_IMAGE}\nARG N=0\nRUN echo \"sleeping $N\" && sleep 60\n"))?;
    git(repo.path(), &["add", "-A"])?;
    git(repo.path(), &["commit", "-q", "-m", "slow"])?;
    store
        .create_project(&NewProject { name: "bench-cancel".into(), repo_url: repo.path().display().to_string(), ..Default::default() }, None)
        .await?;
    let mut latencies = Vec::new();
    for round in 0..5 {
        let d = create_build(
            store,
            &NewBuild { project: "bench-cancel".into(), build_args: vec![format!("N={round}")], force_rebuild: true, run: true, ..Default::default() },
            None,
        )
        .await?;
        let run_id = d.runs.first().map(|r| r.id.clone()).ok_or_else(|| anyhow::anyhow!("no run queued"))?;
        let worker = {
            let runner = runner.clone();
            tokio::spawn(async move { runner.run_once().await })
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (sleeping,): (bool,) =
                sqlx::query_as("SELECT EXISTS (SELECT 1 FROM build_logs WHERE run_id = $1 AND line LIKE 'sleeping %')")
                    .bind(&run_id)
                    .fetch_one(store.pool())
                    .await?;
            if sleeping {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "the RUN step of {} never started", d.spec.id);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let asked = Instant::now();
        store.request_cancel(&d.spec.id).await?;
        let status = wait_done(store, &d.spec.id).await?;
        latencies.push(asked.elapsed());
        anyhow::ensure!(status == BuildRunStatus::Cancelled, "cancelled build {} ended {status:?}", d.spec.id);
        worker.await??;
    }
    println!(
        "\ncancel of a running RUN step (request → run cancelled), heartbeat {} ms: median {:.1} ms, max {:.1} ms",
        runner.config().heartbeat.as_millis(),
        percentile(&mut latencies, 0.5),
        percentile(&mut latencies, 1.0)
    );
    Ok(())
}

