//! The engine's own test fixture: a store with a build runner on the real
//! engine and registry, and projects whose repositories hold given files.
//! The fixtures every crate's tests share (git repositories, the test
//! services) are in `slipway-testkit`.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use slipway_engine::builds::buildkit::BuildKitBackend;
use slipway_engine::builds::create::create_build;
use slipway_engine::builds::runner::{Runner, RunnerConfig};
use slipway_engine::Store;
use slipway_model::build::{BuildDetail, NewBuild};
use slipway_model::project::Project;

use slipway_testkit::git::repo;
use slipway_testkit::projects::project;
use slipway_testkit::services::{docker, registry};

/// A store, a build runner on the real engine and registry, and the
/// repositories of the projects made with [`Builds::project`].
pub struct Builds {
    pub store: Store,
    pub docker: Docker,
    pub runner: Runner,
    repos: Vec<tempfile::TempDir>,
    _work: tempfile::TempDir,
}

impl Builds {
    pub async fn new(pool: sqlx::PgPool) -> Builds {
        let store = Store::from_pool(pool);
        let docker = docker().await;
        let work = tempfile::tempdir().expect("tempdir");
        let mut config = RunnerConfig::new(work.path().to_path_buf(), Some(registry()));
        config.lease = Duration::from_secs(10);
        config.heartbeat = Duration::from_millis(200);
        let runner = Runner::new(store.clone(), docker.clone(), Arc::new(BuildKitBackend::new(docker.clone())), None, config);
        Builds { store, docker, runner, repos: Vec::new(), _work: work }
    }

    /// A project named `<prefix><nonce>` whose repository holds `files`.
    pub async fn project(&mut self, prefix: &str, files: &[(&str, String)]) -> Project {
        let repo = repo(files);
        let project = project(&self.store, prefix, repo.path()).await;
        self.repos.push(repo);
        project
    }

    /// Creates a build of the project's `main`, runs it to the end and returns it.
    pub async fn build(&self, project: &Project) -> BuildDetail {
        let input = NewBuild { project: project.slug.clone(), run: true, ..Default::default() };
        let d = create_build(&self.store, &input, None).await.expect("build created");
        self.runner.run_once().await.expect("run").expect("a queued run");
        self.store.get_build(&d.spec.id).await.expect("build")
    }

    /// The stored log of a run, one line per line.
    pub async fn log_text(&self, run_id: &str) -> String {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT line FROM build_logs WHERE run_id = $1 ORDER BY seq")
            .bind(run_id)
            .fetch_all(self.store.pool())
            .await
            .expect("log");
        rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n")
    }
}

/// Records a completed build of `git_sha` without running one (its manifest
/// is `manifest`; each artifact is `(service, digest)` in Slipway's test
/// registry at 127.0.0.1:5000) and makes release `tag` of it.
pub async fn recorded_release(
    store: &Store,
    project: &Project,
    git_sha: &str,
    manifest: &str,
    artifacts: &[(&str, String)],
    tag: &str,
) -> slipway_model::release::Release {
    use slipway_engine::builds::{ArtifactInsert, RunOutcome};
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(format!("manifest of {git_sha}").as_bytes()))
    };
    let parsed = slipway_model::manifest::parse(manifest).expect("manifest");
    let spec_id = slipway_testkit::records::record_spec_with_manifest(store, &project.id, git_sha, &hash, manifest, &serde_json::json!({})).await;
    slipway_engine::release::sync_environments_from_manifest(store, &project.id, &parsed).await.expect("environments");
    let run = store.enqueue_run(&spec_id, None, false).await.expect("run");
    let claimed = store.claim_run("recorder", Duration::from_secs(60), "recorded").await.expect("claim").expect("a run");
    assert_eq!(claimed.run.id, run.id);
    for (service, digest) in artifacts {
        let insert = ArtifactInsert {
            service_name: (*service).into(),
            image_ref: format!("127.0.0.1:5000/{}/{service}:sha-{}", project.slug, &git_sha[..12]),
            digest: digest.clone(),
            platforms: vec![],
            size_bytes: None,
        };
        store.insert_artifact(&run.id, &spec_id, &insert).await.expect("artifact");
    }
    assert!(store.finish_run(&run.id, "recorder", &RunOutcome::Completed { reused_from: None }).await.expect("finish"));
    let input = slipway_model::release::NewRelease { project: project.slug.clone(), build: spec_id, tag: Some(tag.into()), ..Default::default() };
    slipway_engine::release::create_release(store, &input, None).await.expect("release")
}
