//! Build diagnosis, each error class produced by a real cause on the real
//! Docker engine and real registries (`cargo xtask test` starts the engine,
//! Postgres and the default registry and sets SLIPWAY_REGISTRY), with a fresh
//! database per test.

use std::sync::Arc;
use std::time::Duration;

use slipway_engine::builds::buildkit::BuildKitBackend;
use slipway_engine::builds::create::create_build;
use slipway_engine::builds::diagnose::diagnose;
use slipway_engine::builds::legacy::LegacyBackend;
use slipway_engine::builds::runner::{Runner, RunnerConfig};
use slipway_engine::builds::BuildBackend;
use slipway_engine::embedded::{free_port, BASE_IMAGE};
use slipway_engine::secrets::{MasterKey, SecretBox};
use slipway_engine::Store;
use slipway_model::build::{BuildDetail, NewBuild};
use slipway_model::diagnose::{Diagnosis, FailureDiagnosis};
use slipway_model::project::Project;
use slipway_model::status::{BuildRunStatus, ErrorClass};
use slipway_testkit::git::repo;
use slipway_testkit::nonce;
use slipway_testkit::registry::{PrivateRegistry, HTPASSWD};
use slipway_testkit::projects::project;
use slipway_testkit::services::{docker, registry};
use sqlx::PgPool;

/// The master key of the fixture's secret box.
const KEY: [u8; 32] = [7; 32];

struct Fixture {
    store: Store,
    runner: Runner,
    project: Project,
    repo: tempfile::TempDir,
    _work: tempfile::TempDir,
}

#[derive(Clone, Copy)]
enum Backend {
    BuildKit,
    Legacy,
}

async fn fixture(pool: PgPool, files: &[(&str, String)], backend: Backend, tweak: impl FnOnce(&mut RunnerConfig)) -> Fixture {
    let store = Store::from_pool(pool);
    let repo = repo(files);
    let project = project(&store, "t", repo.path()).await;
    let docker = docker().await;
    let work = tempfile::tempdir().unwrap();
    let mut config = RunnerConfig::new(work.path().to_path_buf(), Some(registry()));
    config.lease = Duration::from_secs(5);
    config.heartbeat = Duration::from_millis(200);
    tweak(&mut config);
    let secrets = Arc::new(SecretBox::new(MasterKey::from_bytes(KEY)));
    let backend: Arc<dyn BuildBackend> = match backend {
        Backend::BuildKit => Arc::new(BuildKitBackend::new(docker.clone())),
        Backend::Legacy => Arc::new(LegacyBackend::new(docker.clone())),
    };
    let runner = Runner::new(store.clone(), docker, backend, Some(secrets), config);
    Fixture { store, runner, project, repo, _work: work }
}

impl Fixture {
    /// Puts `host` on the project's registries list with REG_USER/REG_TOKEN.
    async fn list_byo_registry(&self, host: &str) {
        let input = slipway_model::registry::NewAllowedRegistry {
            host: host.into(),
            username_secret: Some("REG_USER".into()),
            token_secret: Some("REG_TOKEN".into()),
            auth_hosts: vec![],
        };
        self.store.add_registry(&self.project.id, &input, None).await.unwrap();
    }

    async fn create(&self, f: impl FnOnce(&mut NewBuild)) -> BuildDetail {
        let mut input = NewBuild { project: self.project.slug.clone(), run: true, ..Default::default() };
        f(&mut input);
        create_build(&self.store, &input, None).await.unwrap()
    }

    /// Runs the one queued run to its end and diagnoses the build.
    async fn run_and_diagnose(&self, build_id: &str) -> Diagnosis {
        self.runner.run_once().await.unwrap().expect("a queued run");
        diagnose(&self.store, build_id).await.unwrap()
    }

    async fn build_and_diagnose(&self, f: impl FnOnce(&mut NewBuild)) -> Diagnosis {
        let d = self.create(f).await;
        self.run_and_diagnose(&d.spec.id).await
    }
}

/// The failure of a diagnosis that must have one, with the whole diagnosis on error.
/// Also prints the diagnosis when `SLIPWAY_TEST_DUMP` is set (to see what users see).
fn failure(d: &Diagnosis) -> &FailureDiagnosis {
    if std::env::var_os("SLIPWAY_TEST_DUMP").is_some() {
        eprintln!("{}", d.to_text());
    }
    d.failure.as_ref().unwrap_or_else(|| panic!("no failure in\n{}", d.to_text()))
}

fn manifest(extra: &str) -> String {
    format!("{extra}services:\n  api:\n    build: api\n")
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_completed_build_has_no_failure_and_the_last_30_lines_are_the_newest_runs(pool: PgPool) {
    let n = nonce();
    let files = vec![
        (".slipway/manifest.yaml", manifest("")),
        ("api/Dockerfile", format!("FROM {BASE_IMAGE}\nRUN for i in $(seq 1 40); do echo line-{n}-$i; done\n")),
    ];
    let fx = fixture(pool, &files, Backend::BuildKit, |_| {}).await;
    let first = fx.build_and_diagnose(|_| {}).await;
    assert!(first.failure.is_none(), "{}", first.to_text());
    assert_eq!(first.runs.len(), 1);
    let run = &first.runs[0];
    assert_eq!((run.status, run.backend.as_deref()), (BuildRunStatus::Completed, Some("buildkit")));
    assert!(run.duration_ms.is_some() && run.started_at.is_some() && run.error_class.is_none(), "{run:?}");
    assert_eq!(first.artifacts.len(), 1);
    assert!(first.artifacts[0].image_ref.starts_with(&registry()));
    // The last 30 of more than 30 lines, in order, ending with the run's end.
    assert_eq!(first.last_lines.len(), 30);
    assert_eq!(first.last_lines_run_id.as_deref(), Some(run.id.as_str()));
    let (total,): (i64,) = sqlx::query_as("SELECT count(*) FROM build_logs WHERE run_id = $1").bind(&run.id).fetch_one(fx.store.pool()).await.unwrap();
    let seqs: Vec<i64> = first.last_lines.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, ((total - 30)..total).collect::<Vec<_>>(), "the newest 30 lines, oldest first");
    assert_eq!(first.last_lines.last().map(|l| l.line.as_str()), Some("run completed"));
    let text = first.to_text();
    assert!(text.contains(&first.spec.git_sha) && text.contains(&first.spec.manifest_hash), "{text}");

    // A second run (it reuses the first one's artifacts): the last lines are
    // that run's only, none of the first run's output.
    fx.store.enqueue_run(&first.spec.id, None, false).await.unwrap();
    let second = fx.run_and_diagnose(&first.spec.id).await;
    assert!(second.failure.is_none(), "{}", second.to_text());
    assert_eq!(second.runs.len(), 2);
    let newest = &second.runs[0];
    assert_eq!(newest.seq, 2);
    assert_eq!(newest.reused_from_run_id.as_deref(), Some(run.id.as_str()));
    assert_eq!(second.last_lines_run_id.as_deref(), Some(newest.id.as_str()));
    assert!(second.last_lines.len() < 30, "{}", second.to_text());
    assert!(second.last_lines[0].line.starts_with(&format!("run {} (#2,", newest.id)), "{}", second.to_text());
    assert!(second.last_lines.iter().all(|l| !l.line.contains(&format!("line-{n}"))), "{}", second.to_text());
    let refs = |d: &Diagnosis| d.artifacts.iter().map(|a| (a.image_ref.clone(), a.digest.clone())).collect::<Vec<_>>();
    assert_eq!(refs(&second), refs(&first), "the reused artifacts");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_repository_gone_before_the_run_is_a_clone_error(pool: PgPool) {
    let files = vec![(".slipway/manifest.yaml", manifest("")), ("api/Dockerfile", "FROM scratch\n".to_string())];
    let fx = fixture(pool, &files, Backend::BuildKit, |_| {}).await;
    // The build is created while the repository exists; it is gone when the run clones.
    let d = fx.create(|_| {}).await;
    let moved = fx.repo.path().with_extension("moved");
    std::fs::rename(fx.repo.path(), &moved).unwrap();
    let diagnosis = fx.run_and_diagnose(&d.spec.id).await;
    std::fs::rename(&moved, fx.repo.path()).unwrap();
    let f = failure(&diagnosis);
    let repo = fx.repo.path().display().to_string();
    assert_eq!(f.class, ErrorClass::CloneError, "{}", diagnosis.to_text());
    assert_eq!(f.failed_phase.as_deref(), Some("clone"));
    assert!(f.evidence[0].starts_with("recorded error_code `clone_error`"), "{:?}", f.evidence);
    assert!(f.evidence.iter().any(|e| e.contains("`clone` phase")), "{:?}", f.evidence);
    assert!(f.raw_error.contains("could not clone") && f.raw_error.contains(&repo), "{}", f.raw_error);
    assert!(f.cause.contains(&format!("could not clone {repo}: repository not found")), "{}", f.cause);
    assert!(f.hint.contains(&repo) && f.hint.contains(&d.spec.git_sha[..12]), "{}", f.hint);
    assert!(f.hint.contains(&format!("slipway build run {}", d.spec.id)), "{}", f.hint);
    assert!(f.stage_lines.iter().any(|l| l.phase == "clone" && l.line.starts_with("cloning")), "{}", diagnosis.to_text());
    assert!(f.stage_lines.last().is_some_and(|l| l.line.starts_with("✗ could not clone")), "{}", diagnosis.to_text());
    assert_eq!((f.failed_step.as_deref(), f.failed_stage.as_deref()), (None, None));
}

/// A multi-stage Dockerfile whose `build` stage fails at its third step.
fn failing_build_stage(n: &str) -> Vec<(&'static str, String)> {
    vec![
        (".slipway/manifest.yaml", manifest("")),
        (
            "api/Dockerfile",
            format!(
                "FROM {BASE_IMAGE} AS build\nRUN echo compiling-{n}\nRUN echo stage-output-{n} && echo stage-stderr-{n} >&2 && exit 3\n\
                 FROM scratch\nCOPY --from=build /bin/busybox /busybox\n"
            ),
        ),
    ]
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_failing_run_in_a_named_stage_is_a_build_error_with_that_stages_output(pool: PgPool) {
    let n = nonce();
    let fx = fixture(pool, &failing_build_stage(&n), Backend::BuildKit, |_| {}).await;
    let d = fx.build_and_diagnose(|_| {}).await;
    let f = failure(&d);
    assert_eq!(f.class, ErrorClass::BuildError, "{}", d.to_text());
    let step = f.failed_step.clone().unwrap_or_default();
    assert!(step.starts_with("[build 3/3] RUN echo stage-output-") && step.ends_with("exit 3"), "{step}");
    assert_eq!(d.runs[0].failed_step.as_deref(), Some(step.as_str()), "the runner's record");
    assert_eq!(f.failed_stage.as_deref(), Some("build"));
    assert_eq!(f.failed_phase.as_deref(), Some("build"));
    assert_eq!(f.service.as_deref(), Some("api"));
    assert!(f.evidence[0].starts_with("recorded error_code `build_error`"), "{:?}", f.evidence);
    assert!(f.evidence.iter().any(|e| e == "the step exited with code 3"), "{:?}", f.evidence);
    // The stage's output: the RUN's stdout and stderr, only lines of stage `build`.
    let has = |text: String, stream: &str| f.stage_lines.iter().any(|l| l.line == text && l.stream == stream && l.step.as_deref() == Some(step.as_str()));
    assert!(has(format!("stage-output-{n}"), "stdout"), "{}", d.to_text());
    assert!(has(format!("stage-stderr-{n}"), "stderr"), "{}", d.to_text());
    assert!(f.stage_lines.iter().all(|l| l.step.as_deref().is_some_and(|s| s.starts_with("[build "))), "{}", d.to_text());
    assert!(f.stage_lines.len() <= 30);
    assert!(f.cause.contains(&step) && f.cause.contains("stage `build`") && f.cause.contains("exit code 3"), "{}", f.cause);
    assert!(f.hint.contains("`api/Dockerfile`") && f.hint.contains(&step), "{}", f.hint);
    assert!(d.to_text().contains("failed stage: build"));
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn the_legacy_builder_names_the_failed_stage_from_its_from_line(pool: PgPool) {
    let n = nonce();
    let fx = fixture(pool, &failing_build_stage(&n), Backend::Legacy, |_| {}).await;
    let d = fx.build_and_diagnose(|_| {}).await;
    let f = failure(&d);
    assert_eq!(f.class, ErrorClass::BuildError, "{}", d.to_text());
    let step = f.failed_step.clone().unwrap_or_default();
    assert!(step.starts_with("Step 3/") && step.contains(" : RUN echo stage-output-"), "{step}");
    assert_eq!(f.failed_stage.as_deref(), Some("build"), "{}", d.to_text());
    assert!(f.stage_lines.iter().any(|l| l.line == format!("stage-output-{n}")), "{}", d.to_text());
    assert!(f.stage_lines.iter().any(|l| l.line == format!("compiling-{n}")), "earlier steps of the stage: {}", d.to_text());
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_stopped_registry_is_a_registry_error_naming_the_host(pool: PgPool) {
    let files = vec![
        (".slipway/manifest.yaml", manifest("")),
        ("api/Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n".to_string()),
        ("api/hello.txt", nonce()),
    ];
    let fx = fixture(pool, &files, Backend::BuildKit, |_| {}).await;
    let host = format!("127.0.0.1:{}", free_port().unwrap());
    fx.list_byo_registry(&host).await;
    let d = fx.build_and_diagnose(|b| b.registry = Some(serde_json::json!({ "host": host }))).await;
    let f = failure(&d);
    assert_eq!(f.class, ErrorClass::RegistryError, "{}", d.to_text());
    assert_eq!(f.failed_phase.as_deref(), Some("push"));
    assert_eq!(f.service.as_deref(), Some("api"));
    assert!(f.evidence[0].starts_with("recorded error_code `registry_error`"), "{:?}", f.evidence);
    assert!(f.evidence.iter().any(|e| e.contains(&format!("registry host `{host}`")) && e.contains("registry override")), "{:?}", f.evidence);
    assert!(f.cause.contains(&format!("registry `{host}` could not be reached")), "{}", f.cause);
    assert!(f.hint.contains(&format!("curl http://{host}/v2/")) && f.hint.contains("the build's registry override"), "{}", f.hint);
    assert!(f.stage_lines.iter().any(|l| l.phase == "push"), "{}", d.to_text());
    assert!(d.artifacts.is_empty());
}

fn byo_files(host: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            ".slipway/manifest.yaml",
            manifest(&format!("registry:\n  host: {host}\n  namespace: team\n  auth:\n    username_secret: REG_USER\n    token_secret: REG_TOKEN\n")),
        ),
        ("api/Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n".to_string()),
        ("api/hello.txt", nonce()),
    ]
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn wrong_registry_credentials_are_an_auth_error_naming_the_secrets(pool: PgPool) {
    let reg = PrivateRegistry::start(Some(HTPASSWD));
    let host = reg.host();
    let fx = fixture(pool, &byo_files(&host), Backend::BuildKit, |_| {}).await;
    fx.list_byo_registry(&host).await;
    let sb = SecretBox::new(MasterKey::from_bytes(KEY));
    fx.store.set_secret(&sb, &fx.project.id, None, "REG_USER", "slipway", None).await.unwrap();
    fx.store.set_secret(&sb, &fx.project.id, None, "REG_TOKEN", "wrong-token-5d41402a", None).await.unwrap();
    let d = fx.build_and_diagnose(|_| {}).await;
    let f = failure(&d);
    assert_eq!(f.class, ErrorClass::AuthError, "{}", d.to_text());
    assert_eq!(f.failed_phase.as_deref(), Some("push"));
    assert!(f.evidence[0].starts_with("recorded error_code `auth_error`"), "{:?}", f.evidence);
    assert!(f.evidence.iter().any(|e| e.contains(&format!("registry host `{host}`"))), "{:?}", f.evidence);
    assert!(f.cause.contains(&format!("registry `{host}` refused")) && f.cause.contains("`REG_USER`") && f.cause.contains("`REG_TOKEN`"), "{}", f.cause);
    assert!(f.hint.contains("slipway secrets set REG_USER") && f.hint.contains("slipway secrets set REG_TOKEN"), "{}", f.hint);
    assert!(f.hint.contains(&format!("{host}/team")), "{}", f.hint);
    let json = serde_json::to_string(&d).unwrap();
    assert!(!json.contains("wrong-token-5d41402a"), "the password leaked into the diagnosis");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn missing_registry_secrets_are_an_auth_error_naming_the_missing_ones(pool: PgPool) {
    // The run stops before pushing, so no registry needs to listen there.
    let host = format!("127.0.0.1:{}", free_port().unwrap());
    let fx = fixture(pool, &byo_files(&host), Backend::BuildKit, |_| {}).await;
    fx.list_byo_registry(&host).await;
    let sb = SecretBox::new(MasterKey::from_bytes(KEY));
    fx.store.set_secret(&sb, &fx.project.id, None, "REG_USER", "slipway", None).await.unwrap();
    let d = fx.build_and_diagnose(|_| {}).await;
    let f = failure(&d);
    assert_eq!(f.class, ErrorClass::AuthError, "{}", d.to_text());
    assert_eq!(d.runs[0].error_class, Some(ErrorClass::AuthError), "the runner records the class of a preparation failure");
    assert!(f.hint.contains("set `REG_TOKEN` in project") && f.hint.contains("slipway secrets set REG_TOKEN"), "{}", f.hint);
    assert!(!f.hint.contains("set `REG_USER`"), "REG_USER is set: {}", f.hint);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_run_over_its_timeout_is_a_timeout_error_naming_the_running_step(pool: PgPool) {
    let n = nonce();
    let files = vec![
        (".slipway/manifest.yaml", manifest("")),
        ("api/Dockerfile", format!("FROM {BASE_IMAGE}\nRUN echo sleeping-{n} && sleep 30\n")),
    ];
    let fx = fixture(pool, &files, Backend::BuildKit, |_| {}).await;
    let d = fx.build_and_diagnose(|b| b.timeout_seconds = Some(2)).await;
    let f = failure(&d);
    assert_eq!(f.class, ErrorClass::TimeoutError, "{}", d.to_text());
    assert!(f.evidence[0].starts_with("recorded error_code `timeout_error`"), "{:?}", f.evidence);
    assert_eq!(d.runs[0].failed_step, None, "the runner records no step for a timeout");
    let step = f.failed_step.clone().unwrap_or_default();
    assert!(step.contains(&format!("RUN echo sleeping-{n} && sleep 30")), "the step that was running: {}", d.to_text());
    assert!(f.evidence.iter().any(|e| e.contains("was the step running when the run stopped")), "{:?}", f.evidence);
    assert!(f.cause.contains("2 s time limit"), "{}", f.cause);
    assert!(f.hint.contains("slipway build create --timeout-seconds 60"), "{}", f.hint);
    assert!(f.stage_lines.iter().any(|l| l.line == format!("sleeping-{n}")), "{}", d.to_text());
}

/// The engine's BuildKit ignores memory limits (measured on engine 20.10), so
/// this uses the legacy builder, whose RUN containers get the runner's
/// `build_memory`: a 256 MiB allocation under a 32 MiB limit is killed (137).
#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_step_killed_for_memory_is_a_resource_error(pool: PgPool) {
    let n = nonce();
    let files = vec![
        (".slipway/manifest.yaml", manifest("")),
        ("api/Dockerfile", format!("FROM {BASE_IMAGE}\nRUN echo {n} && dd if=/dev/zero of=/dev/null bs=256M count=1\n")),
    ];
    let fx = fixture(pool, &files, Backend::Legacy, |c| c.build_memory = Some(32 * 1024 * 1024)).await;
    let d = fx.build_and_diagnose(|_| {}).await;
    let f = failure(&d);
    assert_eq!(f.class, ErrorClass::ResourceError, "{}", d.to_text());
    assert_eq!(d.runs[0].backend.as_deref(), Some("legacy"));
    assert!(f.failed_step.as_deref().unwrap_or_default().contains("dd if=/dev/zero"), "{}", d.to_text());
    assert!(f.cause.contains("exit code 137") && f.cause.contains("out of memory"), "{}", f.cause);
    assert!(f.hint.contains("memory limit"), "{}", f.hint);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn an_unknown_build_is_not_found(pool: PgPool) {
    let store = Store::from_pool(pool);
    let err: slipway_model::AppError = diagnose(&store, "bld_01m7z5xqyze01vfds8r8zfehws").await.unwrap_err().into();
    assert_eq!(err.code, slipway_model::ErrorCode::NotFound, "{err:?}");
}
