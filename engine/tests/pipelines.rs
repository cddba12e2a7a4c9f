//! Manifest pipelines end to end: real Postgres (a fresh database per test),
//! real BuildKit builds pushed to the real registry by a real build worker,
//! and real containers on the local engine (`cargo xtask test` provides all
//! three). Containers are labelled with their project and removed at the end.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::query_parameters::ListContainersOptions;
use bollard::Docker;
use slipway_engine::builds::buildkit::BuildKitBackend;
use slipway_engine::builds::runner::{Runner, RunnerConfig};
use slipway_engine::embedded::BASE_IMAGE;
use slipway_engine::pipeline;
use slipway_engine::release::{self, target::container_name, DeployTarget, LocalDockerTarget};
use slipway_engine::Store;
use slipway_model::id;
use slipway_model::pipeline::{PipelineListQuery, PipelineRun, StepStatus};
use slipway_model::project::Project;
use slipway_model::release::{DeployRequest, DeploymentKind, ImageDigests};
use slipway_model::status::{DeploymentStatus, PipelineRunStatus};
use slipway_model::{AppError, ErrorCode};
use slipway_testkit::git::{git, repo};
use slipway_testkit::projects::project;
use slipway_testkit::services::{docker, local_target, registry, RemoveContainers};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const MANIFEST: &str = "services:
  api:
    build: api
  web:
    build: web
environments:
  - name: test
pipelines:
  deploy:
    steps:
      - name: ship
        depends_on: [release]
        deploy: { environment: test }
      - name: release
        depends_on: [build]
        release: {}
      - name: build
        build: {}
";

/// The two-service app; `api_extra` goes into api's Dockerfile. A nonce
/// keeps the images of this test apart from every other test's.
fn app_files(nonce: &str, api_extra: &str) -> Vec<(&'static str, String)> {
    let dockerfile = |extra: &str| {
        format!("FROM {BASE_IMAGE}\nCOPY index.html /srv/index.html\n{extra}CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/srv\"]\n")
    };
    vec![
        (".slipway/manifest.yaml", MANIFEST.to_string()),
        ("api/Dockerfile", dockerfile(api_extra)),
        ("api/index.html", format!("api {nonce}\n")),
        ("web/Dockerfile", dockerfile("")),
        ("web/index.html", format!("web {nonce}\n")),
    ]
}

struct Fixture {
    store: Store,
    docker: Docker,
    target: Arc<LocalDockerTarget>,
    project: Project,
    sha: String,
    hash: String,
    shutdown: CancellationToken,
    _repo: tempfile::TempDir,
    _work: tempfile::TempDir,
    _guard: RemoveContainers,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A project whose repository holds the app (with `api_extra` in api's
/// Dockerfile) and a build worker claiming its runs in the background.
async fn fixture(pool: PgPool, api_extra: &str) -> Fixture {
    let store = Store::from_pool(pool);
    let docker = docker().await;
    let repo = repo(&app_files(&id::new_id("n"), api_extra));
    let sha = git(repo.path(), &["rev-parse", "HEAD"]);
    let hash = slipway_model::manifest::hash_yaml(MANIFEST).unwrap();
    let project = project(&store, "pl", repo.path()).await;
    let work = tempfile::tempdir().unwrap();
    let mut config = RunnerConfig::new(work.path().to_path_buf(), Some(registry()));
    config.lease = Duration::from_secs(10);
    config.heartbeat = Duration::from_millis(200);
    let runner = Arc::new(Runner::new(store.clone(), docker.clone(), Arc::new(BuildKitBackend::new(docker.clone())), None, config));
    let shutdown = CancellationToken::new();
    runner.start(shutdown.clone());
    let target = Arc::new(local_target(docker.clone(), "pipelines").with_settle(Duration::from_millis(500)));
    let guard = RemoveContainers::labelled("dev.slipway.project", &project.id);
    Fixture { store, docker, target, project, sha, hash, shutdown, _repo: repo, _work: work, _guard: guard }
}

impl Fixture {
    /// Service → digest of the containers running in `env`, after checking
    /// each runs, is named for its service, has no network and was created
    /// from `repo@digest`.
    async fn running(&self, env: &str) -> ImageDigests {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("dev.slipway.project={}", self.project.id), format!("dev.slipway.environment={env}")],
        )]);
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
            .await
            .unwrap();
        let mut out = ImageDigests::new();
        for c in list {
            let info = self.docker.inspect_container(c.id.as_deref().unwrap(), None).await.unwrap();
            let labels = info.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
            let service = labels["dev.slipway.service"].clone();
            assert_eq!(labels.get("dev.slipway.test").map(String::as_str), Some("pipelines"));
            assert_eq!(info.name.as_deref(), Some(format!("/{}", container_name(&self.project.slug, env, &service)).as_str()));
            assert_eq!(info.state.as_ref().and_then(|s| s.running), Some(true), "{service} in {env} is not running");
            let host = info.host_config.as_ref().unwrap();
            assert_eq!(host.network_mode.as_deref(), Some("none"), "containers never get a network");
            let reference = info.config.as_ref().and_then(|c| c.image.clone()).unwrap();
            let (_, digest) = reference.split_once('@').expect("created from a reference pinned by digest");
            assert_eq!(labels["dev.slipway.digest"], digest);
            assert!(out.insert(service.clone(), digest.to_string()).is_none(), "two containers for {service} in {env}");
        }
        out
    }
}

fn digests_of(v: &serde_json::Value) -> ImageDigests {
    serde_json::from_value(v.clone()).expect("image_digests is a service → digest map")
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_deploy_request_by_sha_runs_the_pipeline_and_passes_outputs_downstream(pool: PgPool) {
    let fx = fixture(pool, "").await;
    let store = &fx.store;

    // The git_sha + manifest_hash shape of a deploy request starts the pipeline.
    let req = DeployRequest {
        environment: "test".into(),
        git_sha: Some(fx.sha.clone()),
        manifest_hash: Some(fx.hash.clone()),
        ..Default::default()
    };
    let requested = pipeline::request_deploy(store, &fx.project.slug, &req, None, DeploymentKind::Deploy).await.unwrap();
    assert_eq!(requested.status, DeploymentStatus::Pending, "{requested:?}");
    assert!(requested.image_digests.is_empty() && requested.release_id.is_none());
    assert_eq!(requested.git_sha.as_deref(), Some(fx.sha.as_str()));
    let run_id = requested.pipeline_run_id.clone().expect("the deployment names its pipeline run");
    let run = pipeline::get_pipeline_run(store, &run_id).await.unwrap();
    assert_eq!(run.status, PipelineRunStatus::Pending);
    assert_eq!((run.pipeline.as_str(), run.git_sha.as_deref(), run.manifest_hash.as_deref()), ("deploy", Some(fx.sha.as_str()), Some(fx.hash.as_str())));
    let order: Vec<(&str, &str, StepStatus)> = run.steps.iter().map(|s| (s.name.as_str(), s.action.as_str(), s.status)).collect();
    assert_eq!(
        order,
        [("build", "build", StepStatus::Pending), ("release", "release", StepStatus::Pending), ("ship", "deploy", StepStatus::Pending)],
        "steps in dependency order, whatever the order written"
    );

    // Two drivers (as two server processes would run) compete for the run.
    let drivers: Vec<_> = (0..2)
        .map(|_| pipeline::spawn_driver(store.clone(), fx.target.clone() as Arc<dyn DeployTarget>, fx.shutdown.clone()))
        .collect();
    // The steps are visible live: watch the build step start before the run ends.
    let started = Instant::now();
    let mut saw_running = false;
    let run = loop {
        let run = pipeline::get_pipeline_run(store, &run_id).await.unwrap();
        saw_running |= run.step("build").is_some_and(|s| s.status == StepStatus::Running && s.output_str("build_id").is_some());
        if run.status.is_terminal() {
            break run;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "pipeline run did not finish: {run:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(saw_running, "the build step was seen running with its build id before the run ended");
    assert_eq!(run.status, PipelineRunStatus::Succeeded, "{run:#?}");
    assert!(run.error_message.is_none() && run.started_at.is_some() && run.completed_at.is_some());
    for s in &run.steps {
        assert_eq!(s.status, StepStatus::Succeeded, "{s:?}");
        let (a, b) = (s.started_at.unwrap(), s.completed_at.unwrap());
        assert!(a <= b && s.error.is_none() && s.detail.is_none(), "{s:?}");
    }

    // build → build_id and image_digests: those of the build's artifacts.
    let build_step = run.step("build").unwrap();
    let build_id = build_step.output_str("build_id").unwrap().to_string();
    let build = store.get_build(&build_id).await.unwrap();
    assert_eq!(build.spec.project_id, fx.project.id);
    assert_eq!(build.spec.git_sha, fx.sha);
    assert_eq!(build.spec.inputs["pipeline_run_id"], run_id.as_str());
    let built: ImageDigests = build.artifacts.iter().map(|a| (a.service_name.clone(), a.digest.clone())).collect();
    assert_eq!(built.keys().map(String::as_str).collect::<Vec<_>>(), ["api", "web"]);
    assert_eq!(digests_of(&build_step.outputs["image_digests"]), built);

    // release ← build_id; → release_id and the same digests.
    let release_step = run.step("release").unwrap();
    let release_id = release_step.output_str("release_id").unwrap();
    let rel = release::get_release(store, release_id).await.unwrap();
    assert_eq!(rel.build_id, build_id, "the release step released the build step's build");
    assert_eq!(rel.image_digests, built);
    assert_eq!(digests_of(&release_step.outputs["image_digests"]), built);
    assert_eq!(release_step.outputs["release_tag"], rel.tag.clone().unwrap().as_str());

    // deploy ← release_id; → deployment_id: the deployment the request made.
    let ship = run.step("ship").unwrap();
    assert_eq!(ship.environment.as_deref(), Some("test"));
    assert_eq!(ship.output_str("deployment_id"), Some(requested.id.as_str()));
    let dep = release::get_deployment(store, &requested.id).await.unwrap();
    assert_eq!(dep.status, DeploymentStatus::Succeeded, "{:?}", dep.error_message);
    assert_eq!(dep.release_id.as_deref(), Some(rel.id.as_str()));
    assert_eq!(dep.pipeline_run_id.as_deref(), Some(run_id.as_str()));
    assert_eq!(dep.image_digests, built);

    // The containers in `test` run exactly the release's digests.
    assert_eq!(fx.running("test").await, rel.image_digests);

    // Driven once: one build, one release, one deployment.
    let (builds,): (i64,) = sqlx::query_as("SELECT count(*) FROM build_specs WHERE project_id = $1").bind(&fx.project.id).fetch_one(store.pool()).await.unwrap();
    let (releases,): (i64,) = sqlx::query_as("SELECT count(*) FROM releases WHERE project_id = $1").bind(&fx.project.id).fetch_one(store.pool()).await.unwrap();
    let (deployments,): (i64,) = sqlx::query_as("SELECT count(*) FROM deployments WHERE project_id = $1").bind(&fx.project.id).fetch_one(store.pool()).await.unwrap();
    assert_eq!((builds, releases, deployments), (1, 1, 1));
    let page = pipeline::list_pipeline_runs(store, &fx.project.slug, &PipelineListQuery::default()).await.unwrap();
    assert_eq!(page.items.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [run_id.as_str()]);

    // Driving a finished run changes nothing.
    let again = pipeline::drive_pipeline(store, fx.target.as_ref(), &run_id).await.unwrap();
    assert_eq!(again, run);
    fx.shutdown.cancel();
    for d in drivers {
        d.await.unwrap();
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_failing_build_step_fails_the_run_and_skips_the_rest(pool: PgPool) {
    let fx = fixture(pool, "RUN echo about to fail && exit 3\n").await;
    let store = &fx.store;
    let req = DeployRequest {
        environment: "test".into(),
        git_sha: Some(fx.sha.clone()),
        manifest_hash: Some(fx.hash.clone()),
        ..Default::default()
    };
    let requested = pipeline::request_deploy(store, &fx.project.slug, &req, None, DeploymentKind::Deploy).await.unwrap();
    let run_id = requested.pipeline_run_id.clone().unwrap();

    // Another driver holds the run: this one is refused, then takes over once the lease expires.
    sqlx::query("UPDATE pipeline_runs SET lease_owner = 'elsewhere', lease_expires_at = now() + interval '1 hour' WHERE id = $1")
        .bind(&run_id)
        .execute(store.pool())
        .await
        .unwrap();
    let err: AppError = pipeline::drive_pipeline(store, fx.target.as_ref(), &run_id).await.unwrap_err().into();
    assert_eq!(err.code, ErrorCode::Conflict, "{err:?}");
    sqlx::query("UPDATE pipeline_runs SET lease_expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(&run_id)
        .execute(store.pool())
        .await
        .unwrap();

    let run = tokio::time::timeout(Duration::from_secs(600), pipeline::drive_pipeline(store, fx.target.as_ref(), &run_id))
        .await
        .expect("the run ends")
        .unwrap();
    assert_eq!(run.status, PipelineRunStatus::Failed, "{run:#?}");
    let build = run.step("build").unwrap();
    assert_eq!(build.status, StepStatus::Failed);
    let error = build.error.as_deref().unwrap();
    assert!(error.contains("failed") && error.contains(build.output_str("build_id").unwrap()), "{error}");
    let release_step = run.step("release").unwrap();
    assert_eq!(release_step.status, StepStatus::Skipped);
    assert_eq!(release_step.error.as_deref(), Some("skipped: step `build` failed"));
    assert!(release_step.started_at.is_none() && release_step.outputs == serde_json::json!({}));
    let ship = run.step("ship").unwrap();
    assert_eq!(ship.status, StepStatus::Skipped);
    assert_eq!(ship.error.as_deref(), Some("skipped: step `release` skipped"));
    let message = run.error_message.as_deref().unwrap();
    assert!(message.starts_with("step `build` failed: build "), "{message}");

    // Nothing was released or deployed; the requested deployment failed with the reason.
    let (releases,): (i64,) = sqlx::query_as("SELECT count(*) FROM releases WHERE project_id = $1").bind(&fx.project.id).fetch_one(store.pool()).await.unwrap();
    assert_eq!(releases, 0);
    let dep = release::get_deployment(store, &requested.id).await.unwrap();
    assert_eq!(dep.status, DeploymentStatus::Failed);
    assert!(dep.error_message.as_deref().unwrap().contains(&run_id), "{:?}", dep.error_message);
    assert!(fx.running("test").await.is_empty(), "no container was started");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn starting_a_pipeline_checks_the_manifest_like_a_build(pool: PgPool) {
    let fx = fixture(pool, "").await;
    let store = &fx.store;
    let app = |r: slipway_engine::Result<PipelineRun>| -> AppError { r.unwrap_err().into() };
    let wrong = "f".repeat(64);
    let err = app(pipeline::start_pipeline(store, &fx.project.slug, None, &fx.sha, Some(&wrong), &serde_json::json!({}), None).await);
    assert_eq!(err.code, ErrorCode::InvalidInput);
    assert!(err.message.contains("does not match the manifest at"), "{}", err.message);
    let err = app(pipeline::start_pipeline(store, &fx.project.slug, Some("nope"), &fx.sha, None, &serde_json::json!({}), None).await);
    assert!(err.message.contains("no pipeline `nope`; it has: deploy"), "{}", err.message);
    let err = app(pipeline::start_pipeline(store, &fx.project.slug, None, &fx.sha, None, &serde_json::json!([1]), None).await);
    assert!(err.problems.iter().any(|p| p.field == "inputs"), "{err:?}");
    // A branch name resolves to its commit; the default pipeline is the only one.
    let run = pipeline::start_pipeline(store, &fx.project.slug, None, "main", None, &serde_json::json!({ "version": "1.2.3" }), None)
        .await
        .unwrap();
    assert_eq!((run.git_sha.as_deref(), run.manifest_hash.as_deref()), (Some(fx.sha.as_str()), Some(fx.hash.as_str())));
    assert_eq!(run.pipeline, "deploy");
    assert_eq!(run.inputs["version"], "1.2.3");
    // A deploy request for an environment no pipeline deploys to is refused before anything runs.
    release::create_environment(store, &fx.project.id, &slipway_model::release::EnvironmentInput { name: "other".into(), ..Default::default() })
        .await
        .unwrap();
    let req = DeployRequest { environment: "other".into(), git_sha: Some(fx.sha.clone()), ..Default::default() };
    let err: AppError = pipeline::request_deploy(store, &fx.project.slug, &req, None, DeploymentKind::Deploy).await.unwrap_err().into();
    assert!(err.message.contains("deploys to `other`"), "{}", err.message);
    let unchanged = pipeline::get_pipeline_run(store, &run.id).await.unwrap();
    assert_eq!(unchanged.status, PipelineRunStatus::Pending, "nobody drives runs in this test");
}
