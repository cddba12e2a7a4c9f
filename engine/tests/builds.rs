//! Builds end to end on the real Docker engine's BuildKit and a real registry
//! (`cargo xtask test` starts both and sets SLIPWAY_REGISTRY), with a fresh
//! database per test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_engine::builds::buildkit::BuildKitBackend;
use slipway_engine::builds::create::create_build;
use slipway_engine::logs::MASK;
use slipway_engine::builds::registry::remote_digest;
use slipway_engine::builds::runner::{Runner, RunnerConfig};
use slipway_engine::embedded::BASE_IMAGE;
use slipway_engine::secrets::{MasterKey, SecretBox};
use slipway_engine::Store;
use slipway_model::build::{BuildDetail, NewBuild};
use slipway_model::project::{NewProject, Project};
use slipway_model::status::BuildRunStatus;
use slipway_model::{AppError, ErrorCode};
use slipway_testkit::git::{git, repo, repo_with_links};
use slipway_testkit::projects::project;
use slipway_testkit::records::record_spec_with_manifest;
use slipway_testkit::services::{docker, image_reader, registry};
use sqlx::PgPool;

fn two_services() -> Vec<(&'static str, String)> {
    vec![
        (".slipway/manifest.yaml", "services:\n  api:\n    build:\n      context: api\n  web:\n    build: web\n".to_string()),
        ("api/Dockerfile", format!("FROM {BASE_IMAGE}\nCOPY . /app\nRUN echo api-step-output && ls /app\n")),
        ("api/main.sh", "echo hi\n".to_string()),
        ("api/.dockerignore", "secret.txt\n".to_string()),
        ("api/secret.txt", "must not be in the context\n".to_string()),
        ("web/Dockerfile", "FROM scratch\nCOPY index.html /index.html\n".to_string()),
        ("web/index.html", "<h1>web</h1>\n".to_string()),
    ]
}

struct Fixture {
    store: Store,
    runner: Runner,
    project: Project,
    _repo: tempfile::TempDir,
    _work: tempfile::TempDir,
}

async fn fixture(pool: PgPool, files: &[(&str, String)], tweak: impl FnOnce(&mut RunnerConfig)) -> Fixture {
    fixture_with_links(pool, files, &[], tweak).await
}

async fn fixture_with_links(
    pool: PgPool,
    files: &[(&str, String)],
    links: &[(&str, &str)],
    tweak: impl FnOnce(&mut RunnerConfig),
) -> Fixture {
    let store = Store::from_pool(pool);
    let repo = repo_with_links(files, links);
    let project = project(&store, "t", repo.path()).await;
    let docker = docker().await;
    let work = tempfile::tempdir().unwrap();
    let mut config = RunnerConfig::new(work.path().to_path_buf(), Some(registry()));
    config.lease = Duration::from_secs(5);
    config.heartbeat = Duration::from_millis(200);
    tweak(&mut config);
    let secrets = Arc::new(SecretBox::new(MasterKey::from_bytes([7; 32])));
    let runner = Runner::new(store.clone(), docker.clone(), Arc::new(BuildKitBackend::new(docker)), Some(secrets), config);
    Fixture { store, runner, project, _repo: repo, _work: work }
}

impl Fixture {
    async fn create(&self, f: impl FnOnce(&mut NewBuild)) -> BuildDetail {
        let mut input = NewBuild { project: self.project.slug.clone(), run: true, ..Default::default() };
        f(&mut input);
        create_build(&self.store, &input, None).await.unwrap()
    }

    async fn build_once(&self, f: impl FnOnce(&mut NewBuild)) -> BuildDetail {
        let d = self.create(f).await;
        self.runner.run_once().await.unwrap().expect("a queued run");
        self.store.get_build(&d.spec.id).await.unwrap()
    }

    async fn log_text(&self, run_id: &str) -> String {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT line FROM build_logs WHERE run_id = $1 ORDER BY seq")
            .bind(run_id)
            .fetch_all(self.store.pool())
            .await
            .unwrap();
        rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n")
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn multi_service_build_records_the_registry_digests(pool: PgPool) {
    let fx = fixture(pool, &two_services(), |_| {}).await;
    let d = fx.build_once(|_| {}).await;
    let run = &d.runs[0];
    assert_eq!(run.status, BuildRunStatus::Completed, "{:?}", run.error_message);
    assert_eq!(run.backend.as_deref(), Some("buildkit"));
    assert_eq!(d.artifacts.len(), 2);
    let host = registry();
    for a in &d.artifacts {
        let tag = format!("sha-{}", &d.spec.git_sha[..12]);
        assert_eq!(a.image_ref, format!("{host}/{}/{}:{tag}", fx.project.slug, a.service_name));
        let name = format!("{}/{}", fx.project.slug, a.service_name);
        let remote = remote_digest(&host, &name, &tag, &image_reader(&name)).await.unwrap();
        assert_eq!(remote.as_deref(), Some(a.digest.as_str()), "artifact digest must be the registry's");
        assert_eq!(a.platforms, ["linux/amd64"]);
    }
    let log = fx.log_text(&run.id).await;
    for phase_marker in ["cloning", "checked out", "context `api`", "api-step-output", "pushed", "artifact api"] {
        assert!(log.contains(phase_marker), "log lacks `{phase_marker}`:\n{log}");
    }
    assert!(log.contains("1 ignored by .dockerignore"), "{log}");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn failing_run_step_fails_the_run_naming_the_step(pool: PgPool) {
    let files = vec![
        (".slipway/manifest.yaml", "services:\n  api:\n    build: api\n".to_string()),
        ("api/Dockerfile", format!("FROM {BASE_IMAGE}\nRUN echo before-the-failure\nRUN exit 3\n")),
    ];
    let fx = fixture(pool, &files, |_| {}).await;
    let d = fx.build_once(|_| {}).await;
    let run = &d.runs[0];
    assert_eq!(run.status, BuildRunStatus::Failed);
    assert_eq!(run.error_code.as_deref(), Some("build_error"));
    assert!(run.failed_step.as_deref().unwrap_or_default().contains("RUN exit 3"), "{:?}", run.failed_step);
    assert!(d.artifacts.is_empty());
    assert!(fx.log_text(&run.id).await.contains("before-the-failure"));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn missing_dockerfile_is_a_zero_artifact_failure_with_guidance(pool: PgPool) {
    let files = vec![
        (".slipway/manifest.yaml", "services:\n  api:\n    build: api\n  worker:\n    build:\n      context: worker\n".to_string()),
        ("api/Dockerfile", "FROM scratch\nCOPY . /\n".to_string()),
        ("worker/README.md", "no Dockerfile here\n".to_string()),
    ];
    let fx = fixture(pool, &files, |_| {}).await;
    let d = fx.build_once(|_| {}).await;
    let run = &d.runs[0];
    assert_eq!(run.status, BuildRunStatus::Failed);
    let msg = run.error_message.clone().unwrap_or_default();
    assert!(msg.contains("services.worker.build.dockerfile"), "{msg}");
    assert!(msg.contains("worker/Dockerfile"), "{msg}");
    assert!(d.artifacts.is_empty(), "no partial artifacts");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn matching_build_reuses_artifacts_and_force_rebuild_builds_again(pool: PgPool) {
    let fx = fixture(pool, &two_services(), |_| {}).await;
    let first = fx.build_once(|_| {}).await;
    assert_eq!(first.runs[0].status, BuildRunStatus::Completed);

    let second = fx.build_once(|_| {}).await;
    let run = &second.runs[0];
    assert_eq!(run.status, BuildRunStatus::Completed);
    assert_eq!(run.reused_from_run_id.as_deref(), Some(first.runs[0].id.as_str()));
    let digests = |d: &BuildDetail| d.artifacts.iter().map(|a| a.digest.clone()).collect::<Vec<_>>();
    assert_eq!(digests(&second), digests(&first));
    assert!(fx.log_text(&run.id).await.contains(&format!("reusing 2 artifact(s) of run {}", first.runs[0].id)));

    let forced = fx.build_once(|b| b.force_rebuild = true).await;
    assert_eq!(forced.runs[0].status, BuildRunStatus::Completed);
    assert_eq!(forced.runs[0].reused_from_run_id, None);
    assert!(fx.log_text(&forced.runs[0].id).await.contains("api-step-output"));

    // Other services requested: no reuse either.
    let only_web = fx.build_once(|b| b.services = Some(vec!["web".into()])).await;
    assert_eq!(only_web.runs[0].reused_from_run_id, None);
    assert_eq!(only_web.artifacts.len(), 1);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn reuse_can_be_switched_off_globally(pool: PgPool) {
    let fx = fixture(pool, &two_services(), |c| c.reuse = false).await;
    fx.build_once(|_| {}).await;
    let second = fx.build_once(|_| {}).await;
    assert_eq!(second.runs[0].status, BuildRunStatus::Completed);
    assert_eq!(second.runs[0].reused_from_run_id, None);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn cancelling_a_long_run_step_stops_it_promptly(pool: PgPool) {
    let files = vec![
        (".slipway/manifest.yaml", "services:\n  slow:\n    build: slow\n".to_string()),
        ("slow/Dockerfile", format!("FROM {BASE_IMAGE}\nRUN echo started-sleeping && sleep 60\n")),
    ];
    let fx = Arc::new(fixture(pool, &files, |_| {}).await);
    let d = fx.create(|b| b.force_rebuild = true).await;
    let build_id = d.spec.id.clone();
    let worker = {
        let fx = fx.clone();
        tokio::spawn(async move { fx.runner.run_once().await.unwrap() })
    };
    // Wait until the RUN step is running.
    let run_id = d.runs[0].id.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fx.log_text(&run_id).await.contains("started-sleeping") {
        assert!(Instant::now() < deadline, "the RUN step never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let asked = Instant::now();
    fx.store.request_cancel(&build_id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), worker).await.expect("the worker ends after a cancel").unwrap();
    let stopped_after = asked.elapsed();
    let run = fx.store.get_run(&run_id).await.unwrap();
    assert_eq!(run.status, BuildRunStatus::Cancelled);
    // README: "cancel stops the RUN step within about a second". A few
    // seconds of slack for a busy machine; `cargo xtask bench builds` measures it.
    assert!(stopped_after < Duration::from_secs(5), "took {stopped_after:?}");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_run_over_its_timeout_fails_as_timeout_error(pool: PgPool) {
    let files = vec![
        (".slipway/manifest.yaml", "services:\n  slow:\n    build: slow\n".to_string()),
        ("slow/Dockerfile", format!("FROM {BASE_IMAGE}\nRUN sleep 30\n")),
    ];
    let fx = fixture(pool, &files, |_| {}).await;
    let d = fx.build_once(|b| b.timeout_seconds = Some(2)).await;
    assert_eq!(d.runs[0].status, BuildRunStatus::Failed);
    assert_eq!(d.runs[0].error_code.as_deref(), Some("timeout_error"));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn two_workers_never_claim_the_same_run(pool: PgPool) {
    let store = Store::from_pool(pool);
    let fx_repo = repo(&[(".slipway/manifest.yaml", "services:\n  a:\n    build: a\n"), ("a/Dockerfile", "FROM scratch\n")]);
    let project = store
        .create_project(&NewProject { name: "claims".into(), repo_url: fx_repo.path().display().to_string(), ..Default::default() }, None)
        .await
        .unwrap();
    // 30 specs, each with a pending run (same commit; distinct idempotency keys).
    for i in 0..30 {
        let input = NewBuild {
            project: project.slug.clone(),
            idempotency_key: Some(format!("k{i}")),
            services: Some(vec!["a".into()]),
            build_args: vec![format!("N={i}")],
            run: true,
            ..Default::default()
        };
        create_build(&store, &input, None).await.unwrap();
    }
    let claim_all = |worker: &'static str| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(c) = store.claim_run(worker, Duration::from_secs(60), "buildkit").await.unwrap() {
                mine.push(c.run.id);
            }
            mine
        })
    };
    let (a, b) = tokio::join!(claim_all("worker-a"), claim_all("worker-b"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 30);
    let mut all: Vec<_> = a.iter().chain(b.iter()).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 30, "a run was claimed twice");
}

/// Ends the lease of every building run of `worker` now, as if its worker had
/// stopped renewing it long ago (no waiting for a clock to run out).
async fn expire_leases_of(store: &Store, worker: &str) {
    let expired = sqlx::query(
        "UPDATE build_runs SET lease_expires_at = now() - interval '1 second' WHERE lease_owner = $1 AND status = 'building'",
    )
    .bind(worker)
    .execute(store.pool())
    .await
    .unwrap()
    .rows_affected();
    assert!(expired > 0, "{worker} held no lease");
}

/// Polls until every run of `build_id` has finished (or 120 s pass).
async fn wait_until_finished(store: &Store, build_id: &str) -> BuildDetail {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let d = store.get_build(build_id).await.unwrap();
        if d.runs.iter().all(|r| r.status.is_terminal()) {
            return d;
        }
        assert!(Instant::now() < deadline, "build {build_id} did not finish: {:?}", d.runs);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn the_runners_own_loop_requeues_a_run_whose_worker_died_and_completes_it(pool: PgPool) {
    let fx = fixture(pool, &two_services(), |_| {}).await;
    let d = fx.create(|_| {}).await;
    // A worker claims the run and dies without a heartbeat; its lease runs out.
    let dead = fx.store.claim_run("dead-worker", Duration::from_secs(3600), "buildkit").await.unwrap().unwrap();
    assert_eq!(dead.run.status, BuildRunStatus::Building);
    expire_leases_of(&fx.store, "dead-worker").await;
    // A live worker's loop (not a direct call to the reaper) takes it over.
    let runner = Arc::new(fx.runner);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = runner.clone().start(shutdown.clone());
    let done = wait_until_finished(&fx.store, &d.spec.id).await;
    shutdown.cancel();
    let _ = worker.await;
    let run = &done.runs[0];
    assert_eq!(run.status, BuildRunStatus::Completed, "{:?}", run.error_message);
    assert_eq!(run.attempt, 2);
    assert_eq!(run.runner_ref.as_deref(), Some(runner.config().worker_id.as_str()));
    assert_eq!(done.artifacts.len(), 2);
    // The dead worker cannot record anything any more.
    let late = fx
        .store
        .finish_run(&run.id, "dead-worker", &slipway_engine::builds::RunOutcome::Cancelled { message: "late".into() })
        .await
        .unwrap();
    assert!(!late);
    assert_eq!(fx.store.get_run(&run.id).await.unwrap().status, BuildRunStatus::Completed);
}

/// README: "a run whose worker died is queued again (or failed with a clear
/// message after 3 attempts)".
#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_run_whose_worker_dies_three_times_fails_with_a_clear_error(pool: PgPool) {
    let fx = fixture(pool, &two_services(), |_| {}).await;
    let attempts = fx.runner.config().max_attempts;
    assert_eq!(attempts, 3, "the documented default");
    let d = fx.create(|_| {}).await;
    for attempt in 1..=3 {
        let worker = format!("dead-worker-{attempt}");
        let claimed = fx.store.claim_run(&worker, Duration::from_secs(3600), "buildkit").await.unwrap().expect("the run is queued");
        assert_eq!(claimed.run.attempt, attempt);
        expire_leases_of(&fx.store, &worker).await;
        let reaped = fx.store.reap_expired_runs(attempts).await.unwrap();
        let run = fx.store.get_run(&d.runs[0].id).await.unwrap();
        if attempt < 3 {
            assert_eq!(reaped, (1, 0), "attempt {attempt} is queued again");
            assert_eq!(run.status, BuildRunStatus::Pending);
        } else {
            assert_eq!(reaped, (0, 1), "the third lost attempt fails the run");
            assert_eq!(run.status, BuildRunStatus::Failed);
            assert_eq!(run.error_code.as_deref(), Some("unknown"));
            assert_eq!(
                run.error_message.as_deref(),
                Some("its worker (dead-worker-3) stopped renewing the lease 3 time(s); the build did not finish. Run it again.")
            );
        }
    }
    assert!(fx.store.claim_run("late-worker", Duration::from_secs(60), "buildkit").await.unwrap().is_none(), "nothing left to claim");
}

/// A build longer than its lease keeps it by heartbeats: another process's
/// reaper, sweeping all along, never takes it away.
#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_run_longer_than_its_lease_keeps_it_by_heartbeats(pool: PgPool) {
    let files = vec![
        (".slipway/manifest.yaml", "services:\n  slow:\n    build: slow\n".to_string()),
        // A nonce defeats BuildKit's cache: the step must really run for 6 s.
        ("slow/Dockerfile", format!("FROM {BASE_IMAGE}\nRUN echo heartbeat-{} && sleep 6\n", slipway_model::id::new_id("n"))),
    ];
    let fx = Arc::new(
        fixture(pool, &files, |c| {
            c.lease = Duration::from_secs(2);
            c.heartbeat = Duration::from_millis(200);
        })
        .await,
    );
    let d = fx.create(|b| b.force_rebuild = true).await;
    let worker = {
        let fx = fx.clone();
        tokio::spawn(async move { fx.runner.run_once().await.unwrap() })
    };
    let mut sweeps = 0;
    let mut outlived_a_lease = false;
    while !worker.is_finished() {
        let (requeued, failed) = fx.store.reap_expired_runs(3).await.unwrap();
        assert_eq!((requeued, failed), (0, 0), "a heartbeating run was reaped");
        sweeps += 1;
        let run = fx.store.get_run(&d.runs[0].id).await.unwrap();
        if let (BuildRunStatus::Building, Some(started)) = (run.status, run.started_at) {
            outlived_a_lease |= (chrono::Utc::now() - started).to_std().unwrap_or_default() > Duration::from_secs(4);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.await.unwrap();
    let run = fx.store.get_run(&d.runs[0].id).await.unwrap();
    assert_eq!(run.status, BuildRunStatus::Completed, "{:?}", run.error_message);
    assert_eq!(run.attempt, 1, "never claimed twice");
    assert!(outlived_a_lease, "the run never built for longer than two leases (cached?)");
    assert!(sweeps > 10, "the reaper swept while it ran ({sweeps} sweeps)");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn build_auth_and_secret_values_never_reach_the_stored_log(pool: PgPool) {
    // A registry of its own that takes any credentials: the test registry
    // refuses credentials it did not issue (and a namespace of another project).
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", slipway_engine::embedded::free_port().unwrap()).parse().unwrap();
    let mut byo = slipway_engine::embedded::EmbeddedRegistry::start(dir.path(), addr, None).await.unwrap();
    let host = byo.addr.to_string();
    let manifest = format!(
        "registry:\n  host: {host}\n  auth:\n    username_secret: REG_USER\n    token_secret: REG_TOKEN\nservices:\n  api:\n    build: api\n"
    );
    let files = vec![
        (".slipway/manifest.yaml", manifest),
        (
            "api/Dockerfile",
            format!(
                "FROM {BASE_IMAGE}\nARG BUILD_APP\nRUN --mount=type=secret,id=BUILD_AUTH echo \"auth=$(cat /run/secrets/BUILD_AUTH) app=$BUILD_APP\"\n"
            ),
        ),
    ];
    let fx = fixture(pool, &files, |_| {}).await;
    list_registry(&fx, &host, Some(("REG_USER", "REG_TOKEN"))).await;
    let sb = SecretBox::new(MasterKey::from_bytes([7; 32]));
    fx.store.set_secret(&sb, &fx.project.id, None, "REG_USER", "robot-user", None).await.unwrap();
    fx.store.set_secret(&sb, &fx.project.id, None, "REG_TOKEN", "tok-9f8e7d6c5b4a", None).await.unwrap();
    let d = fx.build_once(|b| b.build_args = vec!["BUILD_AUTH".into(), "BUILD_APP".into()]).await;
    let run = &d.runs[0];
    assert_eq!(run.status, BuildRunStatus::Completed, "{:?}", run.error_message);
    // The test registry is Slipway's too, so the namespace is the project's own.
    assert!(d.artifacts[0].image_ref.starts_with(&format!("{host}/{}/api:", fx.project.slug)));
    let log = fx.log_text(&run.id).await;
    assert!(log.contains(&format!("app={}", fx.project.slug)), "{log}");
    assert!(log.contains(&format!("auth={MASK}")), "BUILD_AUTH must be masked:\n{log}");
    for secret in ["tok-9f8e7d6c5b4a", "robot-user"] {
        assert!(!log.contains(secret), "`{secret}` leaked into the log");
    }
    let all: Vec<(String,)> = sqlx::query_as("SELECT line FROM build_logs").fetch_all(fx.store.pool()).await.unwrap();
    assert!(all.iter().all(|(l,)| !l.contains("tok-9f8e7d6c5b4a")));
    let run_json = serde_json::to_string(&fx.store.get_build(&d.spec.id).await.unwrap()).unwrap();
    assert!(!run_json.contains("tok-9f8e7d6c5b4a"));
    byo.stop().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn registry_none_records_local_artifacts_without_pushing(pool: PgPool) {
    let files = vec![
        (".slipway/manifest.yaml", "registry: none\nservices:\n  web:\n    build: web\n".to_string()),
        ("web/Dockerfile", "FROM scratch\nCOPY index.html /\n".to_string()),
        ("web/index.html", "x\n".to_string()),
    ];
    let fx = fixture(pool, &files, |_| {}).await;
    let d = fx.build_once(|b| b.development = true).await;
    assert_eq!(d.runs[0].status, BuildRunStatus::Completed, "{:?}", d.runs[0].error_message);
    let a = &d.artifacts[0];
    assert_eq!(a.image_ref, format!("slipway.local/{}/web:local", fx.project.slug), "local images live in the project's namespace");
    assert!(a.digest.starts_with("sha256:"));
    assert!(fx.log_text(&d.runs[0].id).await.contains("not pushed"));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn bad_build_requests_name_the_field(pool: PgPool) {
    let fx = fixture(pool, &two_services(), |_| {}).await;
    let err = |r: slipway_engine::Result<BuildDetail>| -> AppError { r.unwrap_err().into() };
    let base = || NewBuild { project: fx.project.slug.clone(), ..Default::default() };

    let e = err(create_build(&fx.store, &NewBuild { project: "nope".into(), ..base() }, None).await);
    assert_eq!(e.code, ErrorCode::NotFound);

    let e = err(create_build(&fx.store, &NewBuild { git_ref: Some("no-such-branch".into()), ..base() }, None).await);
    assert_eq!((e.code, e.problems[0].field.as_str()), (ErrorCode::InvalidInput, "ref"));

    let e = err(create_build(&fx.store, &NewBuild { git_ref: Some("A".repeat(40)), ..base() }, None).await);
    assert_eq!(e.problems[0].field, "ref");

    let e = err(create_build(&fx.store, &NewBuild { services: Some(vec!["api".into(), "ghost".into()]), ..base() }, None).await);
    assert_eq!(e.problems[0].field, "services[1]");
    assert!(e.message.contains("api, web"), "{}", e.message);

    let wrong = "0".repeat(64);
    let e = err(create_build(&fx.store, &NewBuild { manifest_hash: Some(wrong.clone()), ..base() }, None).await);
    assert_eq!(e.problems[0].field, "manifest_hash");
    assert!(e.message.contains(&wrong) && e.message.contains("manifest has"), "shows both hashes: {}", e.message);

    let e = err(create_build(&fx.store, &NewBuild { build_args: vec!["NOT_MANAGED".into()], ..base() }, None).await);
    assert_eq!(e.problems[0].field, "build_args[0]");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn same_idempotency_key_returns_the_same_build(pool: PgPool) {
    let fx = fixture(pool, &two_services(), |_| {}).await;
    let a = fx.create(|b| b.idempotency_key = Some("deploy-42".into())).await;
    let b = fx.create(|b| b.idempotency_key = Some("deploy-42".into())).await;
    assert_eq!(a.spec.id, b.spec.id);
    assert_eq!(b.runs.len(), 1, "no second run queued");
}

/// The image config (JSON) behind a manifest digest, read from the registry.
fn image_config(host: &str, name: &str, digest: &str) -> serde_json::Value {
    // With a pull token for `name` when the registry authenticates with Slipway's tokens.
    let bearer = slipway_engine::registry_auth::TokenIssuer::from_env(host).expect("a usable SLIPWAY_REGISTRY_TOKEN_KEY").map(|issuer| {
        let access = vec![slipway_engine::registry_auth::ResourceActions { resource_type: "repository".into(), name: name.into(), actions: vec!["pull".into()] }];
        format!("Bearer {}", issuer.registry_token("test", access, chrono::Utc::now().timestamp(), 300).unwrap())
    });
    let get = |url: String| {
        let req = ureq::get(&url).set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json");
        match &bearer {
            Some(b) => req.set("Authorization", b),
            None => req,
        }
    };
    let manifest: serde_json::Value = get(format!("http://{host}/v2/{name}/manifests/{digest}")).call().unwrap().into_json().unwrap();
    let config = manifest["config"]["digest"].as_str().expect("a config digest").to_string();
    get(format!("http://{host}/v2/{name}/blobs/{config}")).call().unwrap().into_json().unwrap()
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn concurrent_builds_of_one_commit_each_record_their_own_image(pool: PgPool) {
    // Ten builds of one commit whose only difference is a build arg, four at
    // a time: each artifact must be the image its own arg produced.
    let files = vec![
        (".slipway/manifest.yaml", "services:\n  app:\n    build: app\n".to_string()),
        ("app/Dockerfile", format!("FROM {BASE_IMAGE}\nARG N\nRUN echo \"n=$N\" > /n\n")),
    ];
    let fx = fixture(pool, &files, |c| {
        c.concurrency = 4;
        c.reuse = false;
    })
    .await;
    let mut builds = Vec::new();
    for n in 1..=10 {
        builds.push((n, fx.create(|b| b.build_args = vec![format!("N={n}")]).await.spec.id));
    }
    let runner = Arc::new(fx.runner);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = runner.clone().start(shutdown.clone());
    let started = Instant::now();
    let mut done = Vec::new();
    while done.len() < builds.len() {
        assert!(started.elapsed() < Duration::from_secs(240), "builds did not finish: {} of {}", done.len(), builds.len());
        done.clear();
        for (n, id) in &builds {
            let d = fx.store.get_build(id).await.unwrap();
            if d.runs.iter().all(|r| r.status.is_terminal()) {
                done.push((*n, d));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shutdown.cancel();
    let _ = worker.await;
    let host = registry();
    let name = format!("{}/app", fx.project.slug);
    let mut digests = std::collections::HashSet::new();
    let mut tags = std::collections::HashSet::new();
    for (n, d) in &done {
        let run = &d.runs[0];
        assert_eq!(run.status, BuildRunStatus::Completed, "build N={n}: {:?}", run.error_message);
        let a = &d.artifacts[0];
        let config = image_config(&host, &name, &a.digest);
        let history = config["history"].to_string();
        assert!(history.contains(&format!("N={n} ")), "build N={n} recorded {} whose history is {history}", a.digest);
        for other in (1..=10).filter(|o| o != n) {
            assert!(!history.contains(&format!("N={other} ")), "build N={n} recorded the image of N={other}");
        }
        // The human tag names this run's image, and differs per input.
        let tag = a.image_ref.rsplit_once(':').unwrap().1.to_string();
        let remote = remote_digest(&host, &name, &tag, &image_reader(&name)).await.unwrap();
        assert_eq!(remote.as_deref(), Some(a.digest.as_str()), "tag {tag} of build N={n}");
        digests.insert(a.digest.clone());
        tags.insert(tag);
    }
    assert_eq!(digests.len(), 10, "ten different inputs must give ten images");
    assert_eq!(tags.len(), 10, "ten different inputs must give ten tags");
}

/// A service whose build files are links that lead out of the checkout.
fn linked_out(links: &[(&'static str, &'static str)]) -> (Vec<(&'static str, String)>, Vec<(&'static str, &'static str)>) {
    let mut files = vec![(".slipway/manifest.yaml", "services:\n  api:\n    build: api\n".to_string())];
    if !links.iter().any(|(p, _)| *p == "api/Dockerfile" || *p == "api") {
        files.push(("api/Dockerfile", "FROM scratch\nCOPY . /app\n".to_string()));
    }
    if !links.iter().any(|(p, _)| *p == "api") {
        files.push(("api/main.sh", "echo hi\n".to_string()));
    }
    (files, links.to_vec())
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_dockerignore_linked_out_of_the_checkout_fails_the_build_naming_the_file(pool: PgPool) {
    // A host file outside the checkout that the link points at.
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), "main.sh\n").unwrap();
    let target: &'static str = Box::leak(outside.path().display().to_string().into_boxed_str());
    let (files, links) = linked_out(&[("api/.dockerignore", target)]);
    let fx = fixture_with_links(pool, &files, &links, |_| {}).await;
    let d = fx.build_once(|_| {}).await;
    let run = &d.runs[0];
    assert_eq!(run.status, BuildRunStatus::Failed);
    assert_eq!(run.error_code.as_deref(), Some("build_error"), "{:?}", run.error_message);
    let message = run.error_message.as_deref().unwrap_or_default();
    assert!(message.contains("service `api`") && message.contains(".dockerignore is a symbolic link"), "{message}");
    assert!(d.artifacts.is_empty(), "nothing was built");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_dockerfile_or_context_linked_out_of_the_checkout_fails_the_build(pool: PgPool) {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("Dockerfile"), "FROM scratch\nCOPY . /host\n").unwrap();
    let dir: &'static str = Box::leak(outside.path().display().to_string().into_boxed_str());
    let file: &'static str = Box::leak(outside.path().join("Dockerfile").display().to_string().into_boxed_str());
    for (links, field) in [
        (vec![("api/Dockerfile", file)], "services.api.build.dockerfile"),
        (vec![("api", dir)], "services.api.build.context"),
    ] {
        let (files, links) = linked_out(&links);
        let fx = fixture_with_links(pool.clone(), &files, &links, |_| {}).await;
        let d = fx.build_once(|_| {}).await;
        let run = &d.runs[0];
        assert_eq!(run.status, BuildRunStatus::Failed, "{field}");
        assert_eq!(run.error_code.as_deref(), Some("build_error"), "{:?}", run.error_message);
        let message = run.error_message.as_deref().unwrap_or_default();
        assert!(message.contains(field), "{message}");
        assert!(d.artifacts.is_empty(), "nothing was built");
    }
}

/// README: reuse needs "the same project, sha, manifest hash, services, build
/// args and registry" — different args or a different registry never reuse.
#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn reuse_is_keyed_on_build_args_and_registry(pool: PgPool) {
    let files = vec![
        (".slipway/manifest.yaml", "services:\n  app:\n    build: app\n".to_string()),
        ("app/Dockerfile", format!("FROM {BASE_IMAGE}\nARG N\nRUN echo \"n=$N\" > /n\n")),
    ];
    let fx = fixture(pool, &files, |_| {}).await;
    let first = fx.build_once(|b| b.build_args = vec!["N=1".into()]).await;
    assert_eq!(first.runs[0].status, BuildRunStatus::Completed, "{:?}", first.runs[0].error_message);
    let other_arg = fx.build_once(|b| b.build_args = vec!["N=2".into()]).await;
    assert_eq!(other_arg.runs[0].status, BuildRunStatus::Completed);
    assert_eq!(other_arg.runs[0].reused_from_run_id, None, "another value of an arg is another image");
    assert_ne!(other_arg.artifacts[0].digest, first.artifacts[0].digest);
    let other_registry = fx.build_once(|b| {
        b.build_args = vec!["N=1".into()];
        b.registry = Some(serde_json::json!("none"));
    })
    .await;
    assert_eq!(other_registry.runs[0].status, BuildRunStatus::Completed, "{:?}", other_registry.runs[0].error_message);
    assert_eq!(other_registry.runs[0].reused_from_run_id, None, "another registry is another image");
    assert!(!other_registry.artifacts[0].image_ref.starts_with(&registry()), "{}", other_registry.artifacts[0].image_ref);
    // Other inputs (a development build, a version) are other images and tags.
    let development = fx.build_once(|b| {
        b.build_args = vec!["N=1".into()];
        b.development = true;
    })
    .await;
    assert_eq!(development.runs[0].reused_from_run_id, None, "a development build reused {:?}", development.artifacts);
    assert!(development.artifacts[0].image_ref.contains(":local-a"), "{}", development.artifacts[0].image_ref);
    let versioned = fx.build_once(|b| {
        b.build_args = vec!["N=1".into()];
        b.inputs = Some(serde_json::json!({ "version": "3.0.0" }));
    })
    .await;
    assert_eq!(versioned.runs[0].reused_from_run_id, None);
    assert!(versioned.artifacts[0].image_ref.contains(":3.0.0-a"), "{}", versioned.artifacts[0].image_ref);
    let same = fx.build_once(|b| b.build_args = vec!["N=1".into()]).await;
    assert_eq!(same.runs[0].reused_from_run_id.as_deref(), Some(first.runs[0].id.as_str()), "same inputs reuse");
    assert_eq!(same.artifacts[0].digest, first.artifacts[0].digest);
    assert_eq!(same.artifacts[0].image_ref, first.artifacts[0].image_ref);
}

/// An image built with BUILD_ID or BUILD_GENERATION embeds a value that is
/// new for every build: such a build is never reused.
#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_build_that_embeds_its_build_id_is_never_reused(pool: PgPool) {
    let files = vec![
        (".slipway/manifest.yaml", "services:\n  app:\n    build: app\n".to_string()),
        ("app/Dockerfile", format!("FROM {BASE_IMAGE}\nARG BUILD_ID\nRUN echo \"id=$BUILD_ID\" > /id\n")),
    ];
    let fx = fixture(pool, &files, |_| {}).await;
    let first = fx.build_once(|b| b.build_args = vec!["BUILD_ID".into()]).await;
    assert_eq!(first.runs[0].status, BuildRunStatus::Completed, "{:?}", first.runs[0].error_message);
    let second = fx.build_once(|b| b.build_args = vec!["BUILD_ID".into()]).await;
    assert_eq!(second.runs[0].status, BuildRunStatus::Completed);
    assert_eq!(second.runs[0].reused_from_run_id, None, "build {} would carry build {}'s id", second.spec.id, first.spec.id);
}

/// The managed build args other than BUILD_APP and BUILD_AUTH (tested above)
/// reach the Dockerfile with their documented values.
#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn managed_build_args_carry_the_build_id_sha_manifest_generation_development_and_rack(pool: PgPool) {
    const ARGS: [&str; 6] = ["BUILD_ID", "BUILD_GIT_SHA", "BUILD_MANIFEST", "BUILD_GENERATION", "BUILD_DEVELOPMENT", "BUILD_RACK"];
    let declare: String = ARGS.iter().map(|a| format!("ARG {a}\n")).collect();
    let echo: String = ARGS.iter().map(|a| format!("{a}=${a}")).collect::<Vec<_>>().join(" ");
    let files = vec![
        (".slipway/manifest.yaml", "services:\n  app:\n    build: app\n".to_string()),
        ("app/Dockerfile", format!("FROM {BASE_IMAGE}\n{declare}RUN echo \"managed: {echo} nonce={}\"\n", slipway_model::id::new_id("n"))),
    ];
    let fx = fixture(pool, &files, |c| c.instance_name = "rack-under-test".into()).await;
    let args: Vec<String> = ARGS.iter().map(|a| a.to_string()).collect();
    let d = fx.build_once(|b| b.build_args = args.clone()).await;
    assert_eq!(d.runs[0].status, BuildRunStatus::Completed, "{:?}", d.runs[0].error_message);
    let expected = |generation: i32, development: bool| {
        format!(
            "BUILD_ID={} BUILD_GIT_SHA={} BUILD_MANIFEST=.slipway/manifest.yaml BUILD_GENERATION={generation} BUILD_DEVELOPMENT={development} BUILD_RACK=rack-under-test",
            d.spec.id, d.spec.git_sha
        )
    };
    let log = fx.log_text(&d.runs[0].id).await;
    assert!(log.contains(&format!("managed: {} nonce=", expected(1, false))), "{log}");
    // A second run of the same build is generation 2.
    fx.store.enqueue_run(&d.spec.id, None, true).await.unwrap();
    fx.runner.run_once().await.unwrap().expect("the second run");
    let again = fx.store.get_build(&d.spec.id).await.unwrap();
    let second = again.runs.iter().find(|r| r.seq == 2).expect("run 2");
    assert_eq!(second.status, BuildRunStatus::Completed, "{:?}", second.error_message);
    let log = fx.log_text(&second.id).await;
    assert!(log.contains(&format!("managed: {} nonce=", expected(2, false))), "{log}");
    let dev = fx.build_once(|b| {
        b.build_args = args.clone();
        b.development = true;
    })
    .await;
    let log = fx.log_text(&dev.runs[0].id).await;
    assert!(log.contains("BUILD_DEVELOPMENT=true"), "{log}");
}

/// README: images are named by the manifest's `image` when it has one, and a
/// pipeline build's `version` input is its tag.
#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn the_manifests_image_names_the_repository_and_the_version_input_is_the_tag(pool: PgPool) {
    let host = registry();
    let files = vec![
        (".slipway/manifest.yaml", "services:\n  web:\n    build: web\n".to_string()),
        ("web/Dockerfile", "FROM scratch\nCOPY index.html /index.html\n".to_string()),
        ("web/index.html", format!("{}\n", slipway_model::id::new_id("n"))),
    ];
    let fx = fixture(pool, &files, |_| {}).await;
    // On Slipway's registry a project's images live under its own namespace
    // (its token pushes nowhere else); within it, `image` names the repository.
    let slug = fx.project.slug.clone();
    std::fs::write(fx._repo.path().join(".slipway/manifest.yaml"), format!("services:\n  web:\n    image: {host}/{slug}/storefront\n    build: web\n")).unwrap();
    git(fx._repo.path(), &["commit", "-q", "-am", "name the image"]);
    let d = fx.build_once(|b| b.inputs = Some(serde_json::json!({ "version": "2.4.1" }))).await;
    assert_eq!(d.runs[0].status, BuildRunStatus::Completed, "{:?}", d.runs[0].error_message);
    let a = &d.artifacts[0];
    assert_eq!(a.image_ref, format!("{host}/{slug}/storefront:2.4.1"));
    let name = format!("{slug}/storefront");
    let remote = remote_digest(&host, &name, "2.4.1", &image_reader(&name)).await.unwrap();
    assert_eq!(remote.as_deref(), Some(a.digest.as_str()), "the registry's 2.4.1 is this build's image");
    // Without a version: the commit's tag, in the same repository.
    let plain = fx.build_once(|b| b.force_rebuild = true).await;
    assert_eq!(plain.artifacts[0].image_ref, format!("{host}/{slug}/storefront:sha-{}", &plain.spec.git_sha[..12]));
}

/// README: "Plain HTTP only for loopback hosts" (or listed ones). `127.1`
/// reaches this machine's loopback registry but is not a loopback *name*, so
/// it stands for a remote registry: Slipway must not confirm the push over
/// plain HTTP, and the run fails as a registry error with no artifact.
#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_registry_that_is_not_loopback_is_never_spoken_to_over_plain_http(pool: PgPool) {
    let port = registry().rsplit_once(':').map(|(_, p)| p.to_string()).expect("SLIPWAY_REGISTRY is host:port");
    let remote = format!("127.1:{port}");
    let files = vec![
        // No namespace: `127.1` reaches Slipway's registry, where only the project's own is allowed.
        (".slipway/manifest.yaml", format!("registry:\n  host: {remote}\nservices:\n  web:\n    build: web\n")),
        ("web/Dockerfile", "FROM scratch\nCOPY index.html /index.html\n".to_string()),
        ("web/index.html", format!("{}\n", slipway_model::id::new_id("n"))),
    ];
    let fx = fixture(pool, &files, |_| {}).await;
    list_registry(&fx, &remote, None).await;
    let d = fx.build_once(|_| {}).await;
    let run = &d.runs[0];
    assert_eq!(run.status, BuildRunStatus::Failed, "a plain-HTTP registry that is not loopback was used");
    assert_eq!(run.error_code.as_deref(), Some("registry_error"), "{:?}", run.error_message);
    let message = run.error_message.clone().unwrap_or_default();
    assert!(message.contains(&remote), "names the registry: {message}");
    assert!(d.artifacts.is_empty(), "nothing recorded");
}

// ----- a hostile member: registries, build secrets, token realms, masking -----

/// Lists `host` on the fixture project's registries list, with these secrets.
async fn list_registry(fx: &Fixture, host: &str, secrets: Option<(&str, &str)>) {
    let input = slipway_model::registry::NewAllowedRegistry {
        host: host.into(),
        username_secret: secrets.map(|s| s.0.to_string()),
        token_secret: secrets.map(|s| s.1.to_string()),
        auth_hosts: vec![],
    };
    fx.store.add_registry(&fx.project.id, &input, None).await.unwrap();
}

/// A loopback listener that only counts who connects to it (a stand-in for
/// an attacker's host, or an internal service that must not be reached).
struct Trap {
    host: String,
    hits: Arc<std::sync::atomic::AtomicUsize>,
}

impl Trap {
    async fn start() -> Trap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(conn);
            }
        });
        Trap { host, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn spec_count(store: &Store) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM build_specs").fetch_one(store.pool()).await.unwrap()
}

async fn set_db_and_prod_secrets(fx: &Fixture) {
    let sb = SecretBox::new(MasterKey::from_bytes([7; 32]));
    fx.store.set_secret(&sb, &fx.project.id, None, "DB_PASSWORD", "db-pw-4b1d9e0c", None).await.unwrap();
    fx.store.set_secret(&sb, &fx.project.id, None, "PROD_KEY", "prod-key-77aa31", None).await.unwrap();
}

fn exfiltrating_manifest(host: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            ".slipway/manifest.yaml",
            format!("registry:\n  host: {host}\n  auth:\n    username_secret: DB_PASSWORD\n    token_secret: PROD_KEY\nservices:\n  api:\n    build: api\n"),
        ),
        ("api/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n".to_string()),
    ]
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_manifest_sending_project_secrets_to_an_unlisted_registry_is_refused_and_nothing_is_queued(pool: PgPool) {
    let trap = Trap::start().await;
    let fx = fixture(pool, &exfiltrating_manifest(&trap.host), |_| {}).await;
    set_db_and_prod_secrets(&fx).await;
    let input = NewBuild { project: fx.project.slug.clone(), run: true, ..Default::default() };
    let e: AppError = create_build(&fx.store, &input, None).await.unwrap_err().into();
    assert_eq!(e.code, ErrorCode::InvalidInput, "{e:?}");
    assert_eq!(e.problems[0].field, "manifest.registry", "{e:?}");
    assert!(e.message.contains("not on the registries list"), "{}", e.message);
    assert_eq!(spec_count(&fx.store).await, 0, "no build was recorded");
    assert!(fx.runner.run_once().await.unwrap().is_none(), "no run was queued");
    assert_eq!(trap.hits(), 0, "nothing reached the attacker's host");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_listed_registry_named_with_other_secrets_than_its_listed_ones_is_refused(pool: PgPool) {
    let trap = Trap::start().await;
    let fx = fixture(pool, &exfiltrating_manifest(&trap.host), |_| {}).await;
    set_db_and_prod_secrets(&fx).await;
    list_registry(&fx, &trap.host, Some(("REG_USER", "REG_TOKEN"))).await;
    let input = NewBuild { project: fx.project.slug.clone(), run: true, ..Default::default() };
    let e: AppError = create_build(&fx.store, &input, None).await.unwrap_err().into();
    assert_eq!(e.problems[0].field, "manifest.registry", "{e:?}");
    assert!(e.message.contains("only the secrets REG_USER and REG_TOKEN"), "{}", e.message);
    // The same through a registry override.
    let input = NewBuild {
        project: fx.project.slug.clone(),
        registry: Some(serde_json::json!({ "host": trap.host, "auth": { "username_secret": "DB_PASSWORD", "token_secret": "PROD_KEY" } })),
        ..Default::default()
    };
    let e: AppError = create_build(&fx.store, &input, None).await.unwrap_err().into();
    assert_eq!(e.problems[0].field, "registry", "{e:?}");
    assert_eq!(spec_count(&fx.store).await, 0);
    assert_eq!(trap.hits(), 0);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_registry_taken_off_the_list_before_the_run_gets_no_credentials_and_the_run_fails_as_auth_error(pool: PgPool) {
    let trap = Trap::start().await;
    let mut files = exfiltrating_manifest(&trap.host);
    files[0].1 = files[0].1.replace("DB_PASSWORD", "REG_USER").replace("PROD_KEY", "REG_TOKEN");
    let fx = fixture(pool, &files, |_| {}).await;
    let sb = SecretBox::new(MasterKey::from_bytes([7; 32]));
    fx.store.set_secret(&sb, &fx.project.id, None, "REG_USER", "robot-user", None).await.unwrap();
    fx.store.set_secret(&sb, &fx.project.id, None, "REG_TOKEN", "tok-5e6f7a8b", None).await.unwrap();
    list_registry(&fx, &trap.host, Some(("REG_USER", "REG_TOKEN"))).await;
    let d = fx.create(|_| {}).await;
    assert!(fx.store.remove_registry(&fx.project.id, &trap.host).await.unwrap());
    fx.runner.run_once().await.unwrap().expect("the queued run");
    let d = fx.store.get_build(&d.spec.id).await.unwrap();
    let run = &d.runs[0];
    assert_eq!(run.status, BuildRunStatus::Failed);
    assert_eq!(run.error_code.as_deref(), Some("auth_error"), "{:?}", run.error_message);
    assert!(run.error_message.as_deref().unwrap_or_default().contains("not on the registries list"), "{:?}", run.error_message);
    assert!(d.artifacts.is_empty());
    assert_eq!(trap.hits(), 0, "the unlisted registry was contacted");
    let diagnosis = serde_json::to_string(&slipway_engine::builds::diagnose::diagnose(&fx.store, &d.spec.id).await.unwrap()).unwrap();
    assert!(diagnosis.contains("slipway registries add"), "the diagnosis says how to list it: {diagnosis}");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn build_auth_reaches_a_secret_mount_but_not_the_image_history_config_or_export(pool: PgPool) {
    // A registry of its own that takes any credentials: the test registry
    // refuses credentials it did not issue (and a namespace of another project).
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", slipway_engine::embedded::free_port().unwrap()).parse().unwrap();
    let mut byo = slipway_engine::embedded::EmbeddedRegistry::start(dir.path(), addr, None).await.unwrap();
    let host = byo.addr.to_string();
    let manifest = format!(
        "registry:\n  host: {host}\n  auth:\n    username_secret: REG_USER\n    token_secret: REG_TOKEN\nservices:\n  api:\n    build: api\n"
    );
    // (No namespace: the test registry is Slipway's, where only the project's own is allowed.)
    let nonce = slipway_model::id::new_id("n");
    let dockerfile = format!(
        "FROM {BASE_IMAGE}\n\
         RUN echo {nonce}\n\
         RUN --mount=type=secret,id=BUILD_AUTH test -s /run/secrets/BUILD_AUTH && echo \"secret-bytes=$(wc -c < /run/secrets/BUILD_AUTH)\"\n\
         ARG BUILD_AUTH\n\
         RUN echo \"as-arg=[$BUILD_AUTH]\" > /as-arg.txt && cat /as-arg.txt\n"
    );
    let files = vec![(".slipway/manifest.yaml", manifest), ("api/Dockerfile", dockerfile)];
    let fx = fixture(pool, &files, |_| {}).await;
    list_registry(&fx, &host, Some(("REG_USER", "REG_TOKEN"))).await;
    let sb = SecretBox::new(MasterKey::from_bytes([7; 32]));
    let password = "tok-history-3c9d81f2";
    fx.store.set_secret(&sb, &fx.project.id, None, "REG_USER", "robot-user", None).await.unwrap();
    fx.store.set_secret(&sb, &fx.project.id, None, "REG_TOKEN", password, None).await.unwrap();
    let d = fx.build_once(|b| {
        b.build_args = vec!["BUILD_AUTH".into()];
        b.force_rebuild = true;
    })
    .await;
    let run = &d.runs[0];
    let log = fx.log_text(&run.id).await;
    assert_eq!(run.status, BuildRunStatus::Completed, "{:?}\n{log}", run.error_message);
    // The Dockerfile read the credentials from the secret mount…
    let bytes: usize = log
        .lines()
        .find_map(|l| l.split("secret-bytes=").nth(1).and_then(|n| n.trim().parse().ok()))
        .unwrap_or_else(|| panic!("the secret mount was not readable:\n{log}"));
    assert!(bytes > password.len(), "BUILD_AUTH holds the credentials JSON ({bytes} bytes)");
    // …and not as a build arg.
    assert!(log.contains("as-arg=[]"), "BUILD_AUTH must not be a build arg:\n{log}");

    let docker = docker().await;
    let image = &d.artifacts[0].image_ref;
    let history = docker.image_history(image).await.unwrap();
    let history = serde_json::to_string(&history).unwrap();
    assert!(history.contains("secret-bytes"), "the history is the image's: {history}");
    let config = serde_json::to_string(&docker.inspect_image(image).await.unwrap()).unwrap();
    for (what, text) in [("history", &history), ("config", &config)] {
        assert!(!text.contains(password) && !text.contains("robot-user"), "the credentials are in the image {what}: {text}");
    }
    let export = slipway_engine::builds::transfer::export_build(&fx.store, &docker, &d.spec.id, None).await.unwrap();
    let archive = export.into_bytes().await.unwrap();
    let mut unpacked = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&archive[..]), &mut unpacked).unwrap();
    assert!(unpacked.len() > 1024, "the export holds the image");
    assert!(!unpacked.windows(password.len()).any(|w| w == password.as_bytes()), "the credentials are in the export archive");
    byo.stop().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_pem_key_printed_in_chunks_and_a_secret_in_a_step_name_never_reach_the_stored_log(pool: PgPool) {
    let body: Vec<String> = (0..4).map(|i| format!("MIIE{i}{}", slipway_model::id::new_id("k").replace('_', ""))).collect();
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", body.join("\n"));
    let token = "step-token-6d2e9a";
    let dockerfile = format!(
        "FROM {BASE_IMAGE}\nCOPY key.pem /key.pem\n\
         RUN while IFS= read -r l; do echo \"$l\"; sleep 0.2; done < /key.pem\n\
         RUN echo {token} > /dev/null && echo step-done\n"
    );
    let files = vec![
        (".slipway/manifest.yaml", "registry: none\nservices:\n  api:\n    build: api\n".to_string()),
        ("api/Dockerfile", dockerfile),
        ("api/key.pem", pem.clone()),
    ];
    let fx = fixture(pool, &files, |_| {}).await;
    let sb = SecretBox::new(MasterKey::from_bytes([7; 32]));
    fx.store.set_secret(&sb, &fx.project.id, None, "PEM_KEY", &pem, None).await.unwrap();
    fx.store.set_secret(&sb, &fx.project.id, None, "STEP_TOKEN", token, None).await.unwrap();
    let d = fx.build_once(|b| b.force_rebuild = true).await;
    let run = &d.runs[0];
    assert_eq!(run.status, BuildRunStatus::Completed, "{:?}", run.error_message);
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT line, step FROM build_logs WHERE run_id = $1 ORDER BY seq").bind(&run.id).fetch_all(fx.store.pool()).await.unwrap();
    let text = rows.iter().map(|(l, s)| format!("[{}] {l}", s.as_deref().unwrap_or("-"))).collect::<Vec<_>>().join("\n");
    assert!(text.contains("step-done"), "the steps ran:\n{text}");
    assert!(rows.iter().filter(|(l, _)| l.contains(MASK)).count() >= body.len(), "each key line was masked:\n{text}");
    for secret in body.iter().map(String::as_str).chain([token]) {
        assert!(!text.contains(secret), "`{secret}` reached the stored log:\n{text}");
    }
}

/// A registry in front of the test registry that, to Slipway's own digest
/// check only, answers with a Bearer challenge whose realm is `realm`.
async fn registry_with_realm(upstream: String, realm: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (upstream, realm) = (upstream.clone(), realm.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if text.starts_with("head /v2/") && text.contains("user-agent: slipway") {
                    let answer = format!(
                        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"{realm}\",service=\"registry\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    return;
                }
                let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await else { return };
                if up.write_all(&head).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
                }
            });
        }
    });
    host
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_registry_pointing_its_token_realm_at_an_internal_address_gets_no_credentials(pool: PgPool) {
    let internal = Trap::start().await;
    // In front of a registry that takes any credentials (the test registry takes only Slipway's tokens).
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", slipway_engine::embedded::free_port().unwrap()).parse().unwrap();
    let mut upstream = slipway_engine::embedded::EmbeddedRegistry::start(dir.path(), addr, None).await.unwrap();
    let host = registry_with_realm(upstream.addr.to_string(), format!("http://{}/token", internal.host)).await;
    let manifest = format!(
        "registry:\n  host: {host}\n  auth:\n    username_secret: REG_USER\n    token_secret: REG_TOKEN\nservices:\n  api:\n    build: api\n"
    );
    let files = vec![(".slipway/manifest.yaml", manifest), ("api/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n".to_string())];
    let fx = fixture(pool, &files, |_| {}).await;
    list_registry(&fx, &host, Some(("REG_USER", "REG_TOKEN"))).await;
    let sb = SecretBox::new(MasterKey::from_bytes([7; 32]));
    fx.store.set_secret(&sb, &fx.project.id, None, "REG_USER", "robot-user", None).await.unwrap();
    fx.store.set_secret(&sb, &fx.project.id, None, "REG_TOKEN", "tok-realm-0a9b8c", None).await.unwrap();
    let d = fx.build_once(|b| b.force_rebuild = true).await;
    let run = &d.runs[0];
    let log = fx.log_text(&run.id).await;
    assert_eq!(run.status, BuildRunStatus::Failed, "{log}");
    assert_eq!(run.error_code.as_deref(), Some("auth_error"), "{:?}\n{log}", run.error_message);
    let message = run.error_message.clone().unwrap_or_default();
    assert!(message.contains("refused") && message.contains("not https"), "{message}");
    assert!(d.artifacts.is_empty(), "no artifact recorded");
    assert_eq!(internal.hits(), 0, "the internal address was sent the credentials");
    upstream.stop().await;
}

/// The id of the image `name` names on the engine, if any.
async fn image_id(name: &str) -> Option<String> {
    docker().await.inspect_image(name).await.ok().and_then(|i| i.id)
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_project_named_slipway_building_a_busybox_service_at_version_1_leaves_the_base_image_alone(pool: PgPool) {
    // Before, local images were `<slug>/<service>`: this was `slipway/busybox:1`.
    let files = vec![
        (".slipway/manifest.yaml", "registry: none\nservices:\n  busybox:\n    build: busybox\n".to_string()),
        ("busybox/Dockerfile", format!("FROM {BASE_IMAGE}\nRUN echo not-the-base-image > /marker\n")),
    ];
    let fx = fixture(pool, &files, |_| {}).await;
    let base_before = image_id(BASE_IMAGE).await.expect("the base image");
    let slipway = fx
        .store
        .create_project(&NewProject { name: "Slipway".into(), repo_url: fx._repo.path().display().to_string(), ..Default::default() }, None)
        .await
        .unwrap();
    assert_eq!(slipway.slug, "slipway");
    let input = NewBuild { project: slipway.id.clone(), inputs: Some(serde_json::json!({ "version": "1" })), run: true, ..Default::default() };
    let d = create_build(&fx.store, &input, None).await.unwrap();
    fx.runner.run_once().await.unwrap().expect("a queued run");
    let d = fx.store.get_build(&d.spec.id).await.unwrap();
    assert_eq!(d.runs[0].status, BuildRunStatus::Completed, "{:?}", d.runs[0].error_message);
    assert_eq!(d.artifacts[0].image_ref, "slipway.local/slipway/busybox:1");
    assert_eq!(image_id(BASE_IMAGE).await.as_deref(), Some(base_before.as_str()), "the base image keeps its id");
    assert_eq!(image_id("slipway.local/slipway/busybox:1").await.as_deref(), Some(d.artifacts[0].digest.as_str()));
    let _ = docker().await.remove_image("slipway.local/slipway/busybox:1", None::<bollard::query_parameters::RemoveImageOptions>, None).await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_build_recorded_before_the_naming_rule_that_names_another_projects_image_fails_and_leaves_its_tag(pool: PgPool) {
    let victim = format!("victim-{}", &slipway_model::id::new_id("x")[2..14]);
    let manifest = format!("registry: none\nservices:\n  api:\n    build: api\n    image: slipway.local/{victim}/api\n");
    let files = vec![
        (".slipway/manifest.yaml", manifest.clone()),
        ("api/Dockerfile", format!("FROM {BASE_IMAGE}\nRUN echo attacker > /marker\n")),
    ];
    let fx = fixture(pool, &files, |_| {}).await;
    // build creation refuses this manifest now
    let e: AppError = create_build(&fx.store, &NewBuild { project: fx.project.id.clone(), ..Default::default() }, None).await.unwrap_err().into();
    assert_eq!(e.problems[0].field, "manifest.services.api.image", "{e:?}");
    // ... so record the build the way an older Slipway did, then run it.
    let sha = git(fx._repo.path(), &["rev-parse", "HEAD"]);
    let parsed = slipway_model::manifest::parse(&manifest).unwrap();
    let json: serde_json::Value = serde_json::from_str(&parsed.canonical_json()).unwrap();
    let spec_id = record_spec_with_manifest(&fx.store, &fx.project.id, &sha, &parsed.canonical_hash(), &manifest, &json).await;
    fx.store.enqueue_run(&spec_id, None, false).await.unwrap();
    // The victim's image, under the tag this build would give it.
    let victim_tag = format!("slipway.local/{victim}/api:sha-{}", &sha[..12]);
    let base = image_id(BASE_IMAGE).await.unwrap();
    let (repo, tag) = victim_tag.rsplit_once(':').unwrap();
    let options = bollard::query_parameters::TagImageOptions { repo: Some(repo.into()), tag: Some(tag.into()) };
    docker().await.tag_image(&base, Some(options)).await.unwrap();

    fx.runner.run_once().await.unwrap().expect("a queued run");
    let d = fx.store.get_build(&spec_id).await.unwrap();
    let moved = image_id(&victim_tag).await;
    let _ = docker().await.remove_image(&victim_tag, None::<bollard::query_parameters::RemoveImageOptions>, None).await;
    assert_eq!(d.runs[0].status, BuildRunStatus::Failed, "{:?}", d.runs[0]);
    assert_eq!(d.runs[0].error_code.as_deref(), Some("build_error"));
    let message = d.runs[0].error_message.clone().unwrap_or_default();
    assert!(message.contains("services.api.image") && message.contains(&victim), "{message}");
    assert!(d.artifacts.is_empty());
    assert_eq!(moved.as_deref(), Some(base.as_str()), "the victim's tag did not move");
    assert!(!fx.log_text(&d.runs[0].id).await.contains("building api"), "nothing was built");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_registry_of_the_projects_own_that_is_slipways_under_another_namespace_fails_before_building(pool: PgPool) {
    // Build creation cannot know that this host is Slipway's registry; the runner does.
    let files = vec![
        (".slipway/manifest.yaml", "registry:\n  host: registry.internal:5000\n  namespace: other\nservices:\n  api:\n    build: api\n".to_string()),
        ("api/Dockerfile", format!("FROM {BASE_IMAGE}\nRUN echo attacker\n")),
    ];
    let fx = fixture(pool, &files, |c| c.default_registry = Some("registry.internal:5000".into())).await;
    // On the project's registries list (an admin's mistake): the namespace rule still holds.
    list_registry(&fx, "registry.internal:5000", None).await;
    let d = fx.build_once(|_| {}).await;
    let run = &d.runs[0];
    assert_eq!(run.status, BuildRunStatus::Failed, "{run:?}");
    assert_eq!(run.error_code.as_deref(), Some("build_error"), "{run:?}");
    let message = run.error_message.clone().unwrap_or_default();
    assert!(message.contains("registry.namespace") && message.contains("Slipway's registry"), "{message}");
    assert!(!fx.log_text(&run.id).await.contains("building api"), "nothing was built");
    assert!(image_id(&format!("registry.internal:5000/other/api:sha-{}", &d.spec.git_sha[..12])).await.is_none());
}
