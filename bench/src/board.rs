//! Promotion: the time from an Approve request to the deployment recorded as
//! running (local Docker target, tiny image), and the board server function's
//! latency with 10,000 releases and 100,000 deployments in the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use bollard::Docker;
use http_body_util::BodyExt;
use leptos::config::LeptosOptions;
use slipway_engine::builds::buildkit::BuildKitBackend;
use slipway_engine::builds::create::create_build;
use slipway_engine::builds::runner::{Runner, RunnerConfig};
use slipway_engine::embedded::{ensure_base_image, BASE_IMAGE};
use slipway_engine::release::{self, LocalDockerTarget};
use slipway_engine::secrets::{MasterKey, SecretBox};
use slipway_model::auth::{NewToken, Principal, Role};
use slipway_model::build::NewBuild;
use slipway_model::project::NewProject;
use slipway_model::release::{DeploymentKind, EnvironmentInput, NewRelease};
use slipway_model::status::DeploymentStatus;
use slipway_server::{app, AppState};
use tower::ServiceExt;

use crate::{fresh_store, percentile};

fn git(dir: &std::path::Path, args: &[&str]) -> anyhow::Result<()> {
    let ok = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
        .args(args)
        .status()?
        .success();
    anyhow::ensure!(ok, "git {args:?} failed");
    Ok(())
}

async fn post(router: &axum::Router, token: &str, path: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
    let req = Request::builder()
        .method("POST")
        .uri(format!("/api/{path}"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))?;
    let res = router.clone().oneshot(req).await?;
    let status = res.status();
    let bytes = res.into_body().collect().await?.to_bytes();
    anyhow::ensure!(status.is_success(), "{path}: {status}: {}", String::from_utf8_lossy(&bytes));
    Ok(serde_json::from_slice(&bytes)?)
}

async fn user(store: &slipway_engine::Store, name: &str, admin: bool) -> anyhow::Result<(Principal, String)> {
    let u = store.create_user(name, None, "benchmark password", admin).await?;
    let p = Principal { user: u, token_id: None, token_project: None, client: Default::default() };
    let t = store.create_token(&p, &NewToken { name: "bench".into(), project: None, expires_in_days: None }).await?.token;
    Ok((p, t))
}

pub async fn run() -> anyhow::Result<()> {
    let registry = std::env::var("SLIPWAY_REGISTRY").map_err(|_| anyhow::anyhow!("SLIPWAY_REGISTRY is not set: run through `cargo xtask bench`"))?;
    let docker = Docker::connect_with_local_defaults()?.negotiate_version().await?;
    ensure_base_image(&docker).await?;
    let store = fresh_store("board").await?;

    // A tiny service that keeps running.
    let repo = tempfile::tempdir()?;
    git(repo.path(), &["init", "-q", "-b", "main"])?;
    std::fs::create_dir_all(repo.path().join(".slipway"))?;
    std::fs::create_dir_all(repo.path().join("web"))?;
    std::fs::write(repo.path().join(".slipway/manifest.yaml"), "services:\n  web:\n    build: web\n")?;
    std::fs::write(
        repo.path().join("web/Dockerfile"),
        format!("FROM {BASE_IMAGE}\nRUN mkdir -p /srv && echo ok > /srv/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/srv\"]\n"),
    )?;
    git(repo.path(), &["add", "-A"])?;
    git(repo.path(), &["commit", "-q", "-m", "bench"])?;
    let (root, root_token) = user(&store, "bench-root", true).await?;
    let (_, dev_token) = user(&store, "bench-dev", false).await?;
    let (_, approver_token) = user(&store, "bench-approver", false).await?;
    let project = store
        .create_project(&NewProject { name: "board".into(), repo_url: repo.path().display().to_string(), ..Default::default() }, None)
        .await?;
    store.set_member(&project.id, "bench-dev", Role::Developer, &root).await?;
    store.set_member(&project.id, "bench-approver", Role::Approver, &root).await?;

    let work = tempfile::tempdir()?;
    let runner = Runner::new(
        store.clone(),
        docker.clone(),
        Arc::new(BuildKitBackend::new(docker.clone())),
        Some(Arc::new(SecretBox::new(MasterKey::from_bytes([3; 32])))),
        RunnerConfig::new(work.path().to_path_buf(), Some(registry)),
    );
    let build = create_build(&store, &NewBuild { project: project.id.clone(), run: true, ..Default::default() }, None).await?;
    runner.run_once().await?;
    let built = store.get_build(&build.spec.id).await?;
    anyhow::ensure!(!built.artifacts.is_empty(), "the fixture build failed: {:?}", built.runs.first().and_then(|r| r.error_message.clone()));
    let rel = release::create_release(
        &store,
        &NewRelease { project: project.id.clone(), build: build.spec.id.clone(), tag: Some("bench-1".into()), version: None, notes: None },
        None,
    )
    .await?;
    release::create_environment(&store, &project.id, &EnvironmentInput { name: "prod".into(), approval_required: 1, ..Default::default() }).await?;

    let leptos = LeptosOptions::builder().output_name("slipway").site_root("target/site").site_pkg_dir("pkg").build();
    let router = app(AppState::for_tests(leptos, store.clone()));
    let target = LocalDockerTarget::new(docker.clone());

    // Approve → running, five times (each round deploys the same release again).
    let mut approve_to_running = Vec::new();
    for _ in 0..5 {
        let d = post(&router, &dev_token, "deployments/request", serde_json::json!({ "project": project.slug, "request": { "environment": "prod", "release": rel.tag } })).await?;
        let id = d["id"].as_str().unwrap_or_default().to_string();
        let started = Instant::now();
        post(&router, &approver_token, "deployments/approve", serde_json::json!({ "deployment": id })).await?;
        loop {
            release::run_pending(&store, &target).await?;
            let d = release::get_deployment(&store, &id).await?;
            match d.status {
                DeploymentStatus::Succeeded => break,
                DeploymentStatus::Failed => anyhow::bail!("deployment failed: {:?}", d.error_message),
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        approve_to_running.push(started.elapsed());
    }
    println!(
        "approve → deployment recorded as running (local Docker, busybox httpd, 1 service): median {:.0} ms, max {:.0} ms over {} rounds",
        percentile(&mut approve_to_running, 0.5),
        percentile(&mut approve_to_running, 1.0),
        approve_to_running.len()
    );

    // 10,000 releases and 100,000 deployments over three environments.
    for name in ["test", "staging"] {
        release::create_environment(&store, &project.id, &EnvironmentInput { name: name.into(), ..Default::default() }).await?;
    }
    let envs: Vec<(String,)> = sqlx::query_as("SELECT id FROM environments WHERE project_id = $1 ORDER BY position").bind(&project.id).fetch_all(store.pool()).await?;
    let env_ids: Vec<String> = envs.into_iter().map(|e| e.0).collect();
    let digest = built.artifacts[0].digest.clone();
    let seeded = Instant::now();
    sqlx::query(
        "INSERT INTO releases (id, project_id, build_id, git_sha, manifest_hash, image_digests, tag, created_at)
         SELECT 'rel_0' || lpad(i::text, 25, '0'), $1, $2, $3, $4, jsonb_build_object('web', $5::text), 'seed-' || i,
                now() - (10001 - i) * interval '1 minute'
         FROM generate_series(1, 10000) i",
    )
    .bind(&project.id)
    .bind(&build.spec.id)
    .bind(&build.spec.git_sha)
    .bind(&build.spec.manifest_hash)
    .bind(&digest)
    .execute(store.pool())
    .await?;
    sqlx::query(
        "INSERT INTO deployments (id, project_id, environment_id, release_id, image_digests, git_sha, status, kind,
                                  created_at, started_at, completed_at)
         SELECT 'dep_0' || lpad(i::text, 25, '0'), $1, ($2::text[])[1 + i % 3], 'rel_0' || lpad((1 + i % 10000)::text, 25, '0'),
                jsonb_build_object('web', $3::text), $4, 'succeeded', 'deploy',
                now() - (100001 - i) * interval '10 seconds', now() - (100001 - i) * interval '10 seconds',
                now() - (100001 - i) * interval '10 seconds' + interval '1 second'
         FROM generate_series(1, 100000) i",
    )
    .bind(&project.id)
    .bind(&env_ids)
    .bind(&digest)
    .bind(&build.spec.git_sha)
    .execute(store.pool())
    .await?;
    sqlx::query("ANALYZE").execute(store.pool()).await?;
    println!("seeded 10,000 releases and 100,000 deployments in {:.1} s", seeded.elapsed().as_secs_f64());

    let mut latency = Vec::new();
    for i in 0..300 {
        let started = Instant::now();
        let board = post(&router, &root_token, "deployments/board", serde_json::json!({ "project": project.slug })).await?;
        if i == 0 {
            anyhow::ensure!(board["environments"].as_array().map(|a| a.len()) == Some(3), "the board has three columns");
        }
        latency.push(started.elapsed());
    }
    println!(
        "board server function (POST /api/deployments/board, token auth, JSON) with 10,000 releases / 100,000 deployments: p50 {:.2} ms, p99 {:.2} ms over {} calls",
        percentile(&mut latency, 0.5),
        percentile(&mut latency, 0.99),
        latency.len()
    );
    // Remove the containers the approvals deployed.
    let containers = docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptionsBuilder::default().all(true).filters(&std::collections::HashMap::from([("label".to_string(), vec![format!("dev.slipway.project-slug={}", project.slug)])])).build()))
        .await?;
    for c in containers {
        if let Some(id) = c.id {
            let _ = docker.remove_container(&id, Some(bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build())).await;
        }
    }
    let _ = DeploymentKind::Deploy;
    Ok(())
}
