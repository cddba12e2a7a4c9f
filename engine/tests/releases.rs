//! Releases, environments and deployments end to end: real Postgres (a fresh
//! database per test), real BuildKit builds pushed to the real registry, and
//! real containers on the local engine (`cargo xtask test` provides all
//! three). Containers are labelled with their project and removed at the end.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use bollard::Docker;
use sha2::{Digest, Sha256};
use slipway_engine::builds::buildkit::BuildKitBackend;
use slipway_engine::builds::create::create_build;
use slipway_engine::builds::runner::{Runner, RunnerConfig};
use slipway_engine::embedded::BASE_IMAGE;
use slipway_engine::pipeline;
use slipway_engine::release::{self, target::container_name, LocalDockerTarget};
use slipway_engine::builds::{ArtifactInsert, RunOutcome};
use slipway_engine::Store;
use slipway_model::build::{BuildDetail, NewBuild};
use slipway_model::id::{self, USER};
use slipway_model::project::{NewProject, Project};
use slipway_model::release::{
    DeployRequest, Deployment, DeploymentKind, EnvironmentInput, ImageDigests, NewRelease, Release, ReleaseListQuery,
};
use slipway_model::status::{BuildRunStatus, DeploymentStatus};
use slipway_model::{AppError, ErrorCode};
use slipway_testkit::git::{commit, git, repo};
use slipway_testkit::projects::project;
use slipway_testkit::records::record_spec;
use slipway_testkit::services::{docker, local_target, registry, RemoveContainers};
use sqlx::PgPool;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

const MANIFEST: &str = "services:
  api:
    build: api
  web:
    build: web
environments:
  - name: test
  - name: staging
  - name: production
    approval:
      required: 2
";

fn httpd_dockerfile() -> String {
    format!("FROM {BASE_IMAGE}\nCOPY index.html /srv/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/srv\"]\n")
}

/// The files of version `v` of the two-service app.
fn app_files(v: &str) -> Vec<(&'static str, String)> {
    vec![
        (".slipway/manifest.yaml", MANIFEST.to_string()),
        ("api/Dockerfile", httpd_dockerfile()),
        ("api/index.html", format!("api {v}\n")),
        ("web/Dockerfile", httpd_dockerfile()),
        ("web/index.html", format!("web {v}\n")),
    ]
}

struct Fixture {
    store: Store,
    docker: Docker,
    runner: Runner,
    target: LocalDockerTarget,
    project: Project,
    repo: tempfile::TempDir,
    _work: tempfile::TempDir,
    _guard: RemoveContainers,
}

async fn fixture(pool: PgPool) -> Fixture {
    let store = Store::from_pool(pool);
    let repo = repo(&app_files("v1"));
    let docker = docker().await;
    let project = project(&store, "r", repo.path()).await;
    let manifest = slipway_model::manifest::parse(MANIFEST).unwrap();
    release::sync_environments_from_manifest(&store, &project.id, &manifest).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut config = RunnerConfig::new(work.path().to_path_buf(), Some(registry()));
    config.lease = Duration::from_secs(10);
    config.heartbeat = Duration::from_millis(200);
    let runner = Runner::new(store.clone(), docker.clone(), Arc::new(BuildKitBackend::new(docker.clone())), None, config);
    let target = local_target(docker.clone(), "releases");
    let guard = RemoveContainers::labelled("dev.slipway.project", &project.id);
    Fixture { store, docker, runner, target, project, repo, _work: work, _guard: guard }
}

impl Fixture {
    fn commit(&self, files: &[(&str, String)]) -> String {
        commit(self.repo.path(), files)
    }

    /// Builds the current HEAD on BuildKit and pushes it to the registry.
    async fn build_head(&self) -> BuildDetail {
        let sha = git(self.repo.path(), &["rev-parse", "HEAD"]);
        let input = NewBuild { project: self.project.slug.clone(), git_ref: Some(sha), run: true, ..Default::default() };
        let d = create_build(&self.store, &input, None).await.unwrap();
        self.runner.run_once().await.unwrap().expect("a queued run");
        let d = self.store.get_build(&d.spec.id).await.unwrap();
        assert_eq!(d.runs[0].status, BuildRunStatus::Completed, "{:?}", d.runs[0].error_message);
        d
    }

    /// Commits version `v`, builds it and releases it with tag `v`.
    async fn release_version(&self, v: &str, files: Vec<(&'static str, String)>) -> Release {
        self.commit(&files);
        let build = self.build_head().await;
        let release = release::create_release(
            &self.store,
            &NewRelease { project: self.project.slug.clone(), build: build.spec.id.clone(), tag: Some(v.into()), ..Default::default() },
            None,
        )
        .await
        .unwrap();
        let from_artifacts: ImageDigests = build.artifacts.iter().map(|a| (a.service_name.clone(), a.digest.clone())).collect();
        assert_eq!(release.image_digests, from_artifacts);
        release
    }

    async fn deploy(&self, env: &str, release: &str, by: Option<&str>) -> slipway_engine::Result<Deployment> {
        let req = DeployRequest { environment: env.into(), release: Some(release.into()), ..Default::default() };
        pipeline::request_deploy(&self.store, &self.project.slug, &req, by, DeploymentKind::Deploy).await
    }

    async fn execute(&self, d: &Deployment) -> Deployment {
        release::execute_deployment(&self.store, &self.target, &d.id).await.unwrap()
    }

    /// Approves with each user (all allowed) and executes the deployment once it is deploying.
    async fn approve_and_run(&self, d: &Deployment, approvers: &[&str]) -> Deployment {
        let mut d = d.clone();
        for a in approvers {
            d = release::approve(&self.store, &d.id, a, true).await.unwrap();
        }
        assert_eq!(d.status, DeploymentStatus::Deploying, "{d:?}");
        let done = self.execute(&d).await;
        assert_eq!(done.status, DeploymentStatus::Succeeded, "{:?}", done.error_message);
        done
    }

    /// Service → digest of the containers running in `env`, after checking
    /// each: running, stable name, network `none`, created from
    /// `repo@digest`, and that digest among its image's registry digests.
    async fn running(&self, env: &str) -> BTreeMap<String, (String, String)> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("dev.slipway.project={}", self.project.id), format!("dev.slipway.environment={env}")],
        )]);
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
            .await
            .unwrap();
        let mut out = BTreeMap::new();
        for c in list {
            let id = c.id.clone().unwrap();
            let info = self.docker.inspect_container(&id, None).await.unwrap();
            let labels = info.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
            let service = labels["dev.slipway.service"].clone();
            assert_eq!(labels.get("dev.slipway.test").map(String::as_str), Some("releases"));
            assert_eq!(info.name.as_deref(), Some(format!("/{}", container_name(&self.project.slug, env, &service)).as_str()));
            assert_eq!(info.state.as_ref().and_then(|s| s.running), Some(true), "{service} in {env} is not running");
            let host = info.host_config.as_ref().unwrap();
            assert_eq!(host.network_mode.as_deref(), Some("none"), "containers never get a network");
            let restart = host.restart_policy.as_ref().and_then(|r| r.name);
            assert_eq!(restart, Some(bollard::models::RestartPolicyNameEnum::UNLESS_STOPPED));
            let networks = info.network_settings.as_ref().and_then(|n| n.networks.clone()).unwrap_or_default();
            assert!(networks.keys().all(|k| k == "none"), "{networks:?}");
            let reference = info.config.as_ref().and_then(|c| c.image.clone()).unwrap();
            let (_, digest) = reference.split_once('@').expect("created from a reference pinned by digest");
            let image = self.docker.inspect_image(info.image.as_deref().unwrap()).await.unwrap();
            assert!(image.repo_digests.unwrap_or_default().contains(&reference), "{reference} is not the image's registry digest");
            assert_eq!(labels["dev.slipway.digest"], digest);
            assert!(out.insert(service.clone(), (digest.to_string(), id)).is_none(), "two containers for {service} in {env}");
        }
        out
    }

    async fn cleanup(&self) {
        let filters = HashMap::from([("label".to_string(), vec![format!("dev.slipway.project={}", self.project.id)])]);
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
            .await
            .unwrap_or_default();
        for c in list {
            let _ = self
                .docker
                .remove_container(c.id.as_deref().unwrap_or_default(), Some(RemoveContainerOptions { force: true, ..Default::default() }))
                .await;
        }
    }
}

fn digests_of(running: &BTreeMap<String, (String, String)>) -> ImageDigests {
    running.iter().map(|(s, (d, _))| (s.clone(), d.clone())).collect()
}

async fn user(store: &Store, name: &str) -> String {
    let id = id::new_id(USER);
    sqlx::query("INSERT INTO users (id, username, password_hash) VALUES ($1, $2, $3)")
        .bind(&id)
        .bind(name)
        .bind("$argon2id$v=19$m=19456,t=2,p=1$test$test")
        .execute(store.pool())
        .await
        .unwrap();
    id
}

fn app_err<T: std::fmt::Debug>(r: slipway_engine::Result<T>) -> AppError {
    r.unwrap_err().into()
}

/// A project without a repository to build (for tests that need no images).
async fn plain_project(store: &Store) -> Project {
    let name = format!("p{}", &id::new_id("x")[2..14]);
    store
        .create_project(&NewProject { name, repo_url: "https://git.example/app.git".into(), ..Default::default() }, None)
        .await
        .unwrap()
}

fn digest(seed: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

fn sha(seed: &str) -> String {
    hex::encode(Sha256::digest(seed.as_bytes()))[..40].to_string()
}

/// Records a build without running one: a spec, a run that completed (with
/// these artifacts) or failed.
async fn recorded_build(store: &Store, project: &Project, git_sha: &str, artifacts: &[(&str, String)], completed: bool) -> String {
    let hash = hex::encode(Sha256::digest(format!("manifest of {git_sha}").as_bytes()));
    let spec_id = record_spec(store, &project.id, git_sha, &hash).await;
    let run = store.enqueue_run(&spec_id, None, false).await.unwrap();
    let claimed = store.claim_run("recorder", Duration::from_secs(60), "recorded").await.unwrap().unwrap();
    assert_eq!(claimed.run.id, run.id);
    for (service, d) in artifacts {
        store
            .insert_artifact(
                &run.id,
                &spec_id,
                &ArtifactInsert {
                    service_name: (*service).into(),
                    image_ref: format!("127.0.0.1:5000/{}/{service}:sha-{}", project.slug, &git_sha[..12]),
                    digest: d.clone(),
                    platforms: vec![],
                    size_bytes: None,
                },
            )
            .await
            .unwrap();
    }
    let outcome = if completed {
        RunOutcome::Completed { reused_from: None }
    } else {
        RunOutcome::Failed {
            code: "build_error".into(),
            message: "RUN exit 3: process did not complete successfully".into(),
            failed_step: Some("[api 2/2] RUN exit 3".into()),
        }
    };
    assert!(store.finish_run(&run.id, "recorder", &outcome).await.unwrap());
    spec_id
}

async fn recorded_release(store: &Store, project: &Project, tag: &str, seed: &str) -> Release {
    let build = recorded_build(
        store,
        project,
        &sha(seed),
        &[("api", digest(&format!("{seed}-api"))), ("web", digest(&format!("{seed}-web")))],
        true,
    )
    .await;
    release::create_release(
        store,
        &NewRelease { project: project.slug.clone(), build, tag: Some(tag.into()), ..Default::default() },
        None,
    )
    .await
    .unwrap()
}

fn gate(name: &str, required: u32, approvers: &[&str], wait: u64) -> EnvironmentInput {
    EnvironmentInput {
        name: name.into(),
        position: None,
        approval_required: required,
        approvers: approvers.iter().map(|a| a.to_string()).collect(),
        wait_timer_seconds: wait,
        deploy_target: None,
    }
}

// ---------------------------------------------------------------------------
// The promotion path on real containers
// ---------------------------------------------------------------------------

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_release_goes_from_test_to_production_through_a_two_approver_gate(pool: PgPool) {
    let fx = fixture(pool).await;
    sqlx::query("UPDATE projects SET auto_release = true WHERE id = $1").bind(&fx.project.id).execute(fx.store.pool()).await.unwrap();
    let (dev, alice, bob, carol) =
        (user(&fx.store, "dev").await, user(&fx.store, "alice").await, user(&fx.store, "bob").await, user(&fx.store, "carol").await);

    // Build: the project's auto_release setting makes it a release.
    let build = fx.build_head().await;
    let page = release::list_releases(&fx.store, &fx.project.slug, &ReleaseListQuery::default()).await.unwrap();
    assert_eq!(page.items.len(), 1, "every completed build creates a release");
    let rel = page.items[0].clone();
    assert_eq!(rel.tag.as_deref(), Some("r1"));
    assert_eq!(rel.build_id, build.spec.id);
    assert_eq!(rel.git_sha, build.spec.git_sha);
    let artifact_digests: ImageDigests = build.artifacts.iter().map(|a| (a.service_name.clone(), a.digest.clone())).collect();
    assert_eq!(rel.image_digests, artifact_digests);
    assert_eq!(release::resolve_release(&fx.store, &fx.project.slug, "r1").await.unwrap().id, rel.id);

    // Deploy to test, promote to staging: no gate, straight to deploying.
    let t = fx.deploy("test", "r1", Some(&dev)).await.unwrap();
    assert_eq!(t.status, DeploymentStatus::Deploying);
    let t = fx.execute(&t).await;
    assert_eq!(t.status, DeploymentStatus::Succeeded, "{:?}", t.error_message);
    assert_eq!(digests_of(&fx.running("test").await), rel.image_digests);

    let s = release::promote(&fx.store, &fx.project.slug, "test", "staging", Some(&dev)).await.unwrap();
    assert_eq!((s.kind, s.promoted_from.as_deref(), s.release_id.as_deref()), (DeploymentKind::Promote, Some("test"), Some(rel.id.as_str())));
    let s = fx.execute(&s).await;
    assert_eq!(s.status, DeploymentStatus::Succeeded, "{:?}", s.error_message);

    let before = release::diff(&fx.store, &fx.project.slug, "staging", "production").await.unwrap();
    assert!(before.services.iter().all(|d| d.changed && d.to_digest.is_none()), "{before:?}");
    assert_eq!(before.from_sha.as_deref(), Some(rel.git_sha.as_str()));

    // Production is gated: two approvals, never by the requester.
    let p = release::promote(&fx.store, &fx.project.slug, "staging", "production", Some(&dev)).await.unwrap();
    assert_eq!(p.status, DeploymentStatus::AwaitingApproval);
    assert_eq!((p.approvals_required, p.approvals_needed), (2, 2));
    assert!(p.approvers_still_needed.is_empty(), "any approver will do");

    let e = app_err(release::approve(&fx.store, &p.id, &dev, true).await);
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert!(e.message.contains("no self-approval"), "{}", e.message);
    let e = app_err(release::approve(&fx.store, &p.id, &carol, false).await);
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert!(e.message.contains("approver role"), "{}", e.message);

    let p1 = release::approve(&fx.store, &p.id, &alice, true).await.unwrap();
    assert_eq!((p1.status, p1.approvals_needed), (DeploymentStatus::AwaitingApproval, 1));
    assert_eq!(p1.approvals.iter().map(|a| a.username.as_str()).collect::<Vec<_>>(), ["alice"]);
    let e = app_err(release::approve(&fx.store, &p.id, &alice, true).await);
    assert_eq!(e.code, ErrorCode::Conflict, "one approval per user");
    assert!(fx.running("production").await.is_empty(), "nothing runs before the gate opens");

    let p2 = release::approve(&fx.store, &p.id, &bob, true).await.unwrap();
    assert_eq!((p2.status, p2.approvals_needed), (DeploymentStatus::Deploying, 0));
    assert!(p2.approved_at.is_some());
    let done = fx.execute(&p2).await;
    assert_eq!(done.status, DeploymentStatus::Succeeded, "{:?}", done.error_message);
    assert_eq!(done.containers.len(), 2);

    // The digests running in production are byte for byte the release's.
    let prod = fx.running("production").await;
    assert_eq!(digests_of(&prod), rel.image_digests);
    for c in &done.containers {
        assert_eq!(prod[&c.service].1, c.container_id);
        assert_eq!(c.image, format!("{}@{}", c.image.split('@').next().unwrap(), rel.image_digests[&c.service]));
    }

    let board = release::board(&fx.store, &fx.project.slug).await.unwrap();
    let names: Vec<&str> = board.environments.iter().map(|c| c.environment.name.as_str()).collect();
    assert_eq!(names, ["test", "staging", "production"]);
    for col in &board.environments {
        let cur = col.current.as_ref().expect("each environment runs the release");
        assert_eq!(cur.release_tag.as_deref(), Some("r1"));
        assert_eq!(cur.requested_by_name.as_deref(), Some("dev"));
        assert!(col.pending.is_empty());
        assert_eq!(col.history[0].id, cur.id);
    }
    let prod_col = &board.environments[2];
    assert_eq!(prod_col.current.as_ref().unwrap().approvals.len(), 2);

    let rel = release::get_release(&fx.store, &rel.id).await.unwrap();
    assert_eq!(rel.deployed_to, ["test", "staging", "production"]);
    let after = release::diff(&fx.store, &fx.project.slug, "staging", "production").await.unwrap();
    assert!(!after.has_changes(), "{after:?}");
    fx.cleanup().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn rejection_leaves_production_untouched(pool: PgPool) {
    let fx = fixture(pool).await;
    let (dev, alice, bob, carol) =
        (user(&fx.store, "dev").await, user(&fx.store, "alice").await, user(&fx.store, "bob").await, user(&fx.store, "carol").await);
    let v1 = fx.release_version("v1", app_files("v1")).await;
    let v2 = fx.release_version("v2", app_files("v2")).await;
    assert_ne!(v1.image_digests, v2.image_digests);

    let d1 = fx.deploy("production", "v1", Some(&dev)).await.unwrap();
    fx.approve_and_run(&d1, &[&alice, &bob]).await;
    let before = fx.running("production").await;
    assert_eq!(digests_of(&before), v1.image_digests);

    let d2 = fx.deploy("production", "v2", Some(&dev)).await.unwrap();
    assert_eq!(d2.status, DeploymentStatus::AwaitingApproval);
    let e = app_err(release::reject(&fx.store, &d2.id, &carol, false).await);
    assert_eq!(e.code, ErrorCode::Forbidden, "rejecting needs the same rights as approving");
    release::approve(&fx.store, &d2.id, &alice, true).await.unwrap();
    let rejected = release::reject(&fx.store, &d2.id, &bob, true).await.unwrap();
    assert_eq!(rejected.status, DeploymentStatus::Rejected);
    assert!(rejected.completed_at.is_some());
    assert_eq!(rejected.error_message.as_deref(), Some("rejected by bob"));

    let e = app_err(release::approve(&fx.store, &d2.id, &carol, true).await);
    assert_eq!(e.code, ErrorCode::Conflict, "{}", e.message);
    let e = app_err(release::execute_deployment(&fx.store, &fx.target, &d2.id).await);
    assert_eq!(e.code, ErrorCode::Conflict);

    assert_eq!(fx.running("production").await, before, "same containers, same digests");
    let board = release::board(&fx.store, &fx.project.slug).await.unwrap();
    let prod = &board.environments[2];
    assert_eq!(prod.current.as_ref().unwrap().release_tag.as_deref(), Some("v1"));
    assert_eq!(prod.history[0].status, DeploymentStatus::Rejected);
    fx.cleanup().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn rollback_restores_the_previous_digests(pool: PgPool) {
    let fx = fixture(pool).await;
    let (dev, alice, bob) = (user(&fx.store, "dev").await, user(&fx.store, "alice").await, user(&fx.store, "bob").await);
    let v1 = fx.release_version("v1", app_files("v1")).await;
    let v2 = fx.release_version("v2", app_files("v2")).await;

    let e = app_err(release::rollback(&fx.store, &fx.project.slug, "production", Some(&dev)).await);
    assert_eq!(e.code, ErrorCode::Conflict, "nothing to roll back yet");

    let d1 = fx.deploy("production", "v1", Some(&dev)).await.unwrap();
    fx.approve_and_run(&d1, &[&alice, &bob]).await;
    let d2 = fx.deploy("production", "v2", Some(&dev)).await.unwrap();
    fx.approve_and_run(&d2, &[&alice, &bob]).await;
    assert_eq!(digests_of(&fx.running("production").await), v2.image_digests);

    let rb = release::rollback(&fx.store, &fx.project.slug, "production", Some(&dev)).await.unwrap();
    assert_eq!(rb.kind, DeploymentKind::Rollback);
    assert_eq!(rb.status, DeploymentStatus::AwaitingApproval, "a rollback is gated like any deployment");
    assert_eq!(rb.release_id.as_deref(), Some(v1.id.as_str()));
    assert_eq!(rb.image_digests, v1.image_digests);
    fx.approve_and_run(&rb, &[&alice, &bob]).await;
    assert_eq!(digests_of(&fx.running("production").await), v1.image_digests);

    let rel = release::get_release(&fx.store, &v1.id).await.unwrap();
    assert_eq!(rel.deployed_to, ["production"]);
    assert!(release::get_release(&fx.store, &v2.id).await.unwrap().deployed_to.is_empty());
    fx.cleanup().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn two_concurrent_promotions_to_one_environment_do_not_both_deploy(pool: PgPool) {
    let fx = Arc::new(fixture(pool).await);
    let dev = user(&fx.store, "dev").await;
    let v1 = fx.release_version("v1", app_files("v1")).await;
    let t = fx.deploy("test", "v1", Some(&dev)).await.unwrap();
    assert_eq!(fx.execute(&t).await.status, DeploymentStatus::Succeeded);

    let promote = || {
        let fx = fx.clone();
        let dev = dev.clone();
        tokio::spawn(async move { release::promote(&fx.store, &fx.project.slug, "test", "staging", Some(&dev)).await })
    };
    let (a, b) = tokio::join!(promote(), promote());
    let results = [a.unwrap(), b.unwrap()];
    let shown = format!("{results:?}");
    let (oks, errs): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.is_ok());
    assert_eq!((oks.len(), errs.len()), (1, 1), "exactly one promotion deploys: {shown}");
    let winner = oks.into_iter().next().unwrap().unwrap();
    assert_eq!(winner.status, DeploymentStatus::Deploying);
    let loser: AppError = errs.into_iter().next().unwrap().unwrap_err().into();
    assert_eq!(loser.code, ErrorCode::Conflict);
    assert_eq!(loser.message, format!("environment staging is being deployed by {}; try again when it finishes", winner.id));
    let (deploying,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM deployments d JOIN environments e ON e.id = d.environment_id WHERE e.name = 'staging' AND e.project_id = $1",
    )
    .bind(&fx.project.id)
    .fetch_one(fx.store.pool())
    .await
    .unwrap();
    assert_eq!(deploying, 1);

    // A second executor of the same deployment is refused while the first one
    // is inside the target (held there until the second has been answered).
    let winner = winner.id.clone();
    let held = HeldTarget::new(&fx.target);
    let first = release::execute_deployment(&fx.store, &held, &winner);
    let second = async {
        held.entered.notified().await;
        let answer = release::execute_deployment(&fx.store, &fx.target, &winner).await;
        held.release.notify_one();
        answer
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.unwrap().status, DeploymentStatus::Succeeded);
    let refused = AppError::from(second.unwrap_err());
    assert_eq!(refused.code, ErrorCode::Conflict);
    assert_eq!(refused.message, format!("deployment {winner} is already being rolled out"), "refused by the lock, not by the status");
    // Once it has finished, executing it again is refused for another reason.
    let again = AppError::from(release::execute_deployment(&fx.store, &fx.target, &winner).await.unwrap_err());
    assert_eq!(again.message, format!("deployment {winner} is succeeded; only a deploying deployment can be executed"));
    assert_eq!(digests_of(&fx.running("staging").await), v1.image_digests);
    fx.cleanup().await;
}

/// A deploy target that signals when a rollout reaches it and waits for a
/// go-ahead before handing the plan to the real target: it lets a test act
/// while one executor is certainly in the middle of a rollout.
struct HeldTarget<'a> {
    inner: &'a LocalDockerTarget,
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl<'a> HeldTarget<'a> {
    fn new(inner: &'a LocalDockerTarget) -> Self {
        HeldTarget { inner, entered: tokio::sync::Notify::new(), release: tokio::sync::Notify::new() }
    }
}

impl release::DeployTarget for HeldTarget<'_> {
    fn name(&self) -> &'static str {
        "held-docker"
    }
    fn deploy<'b>(
        &'b self,
        plan: &'b release::DeployPlan,
    ) -> slipway_engine::builds::BoxFuture<'b, Result<Vec<slipway_model::release::ContainerView>, release::DeployError>> {
        Box::pin(async move {
            self.entered.notify_one();
            self.release.notified().await;
            release::DeployTarget::deploy(self.inner, plan).await
        })
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_container_that_cannot_start_fails_the_deployment_and_keeps_the_old_one(pool: PgPool) {
    let fx = fixture(pool).await;
    let v1 = fx.release_version("v1", app_files("v1")).await;
    let d = fx.deploy("test", "v1", None).await.unwrap();
    assert_eq!(fx.execute(&d).await.status, DeploymentStatus::Succeeded);
    let before = fx.running("test").await;

    // web becomes an image with no command at all.
    let mut files = app_files("v1");
    files[3].1 = "FROM scratch\nCOPY index.html /index.html\n".to_string();
    fx.release_version("nocmd", files).await;
    let bad = fx.deploy("test", "nocmd", None).await.unwrap();
    let bad = fx.execute(&bad).await;
    assert_eq!(bad.status, DeploymentStatus::Failed);
    let msg = bad.error_message.clone().unwrap_or_default();
    assert!(msg.starts_with("service web:") && msg.to_lowercase().contains("no command"), "{msg}");
    assert!(bad.containers.is_empty());
    assert_eq!(fx.running("test").await, before, "the old containers keep running; the new ones are gone");

    // api starts, prints, and exits 3.
    let mut files = app_files("v1");
    files[1].1 = format!(
        "FROM {BASE_IMAGE}\nCMD [\"sh\", \"-c\", \"echo starting up; echo 'fatal: no config found' >&2; exit 3\"]\n"
    );
    fx.release_version("crash", files).await;
    let crash = fx.deploy("test", "crash", None).await.unwrap();
    let crash = fx.execute(&crash).await;
    assert_eq!(crash.status, DeploymentStatus::Failed);
    let msg = crash.error_message.clone().unwrap_or_default();
    assert!(msg.contains("service api: the container exited with code 3"), "{msg}");
    assert!(msg.contains("fatal: no config found"), "the last log lines are in the reason: {msg}");
    assert_eq!(fx.running("test").await, before);
    assert_eq!(digests_of(&before), v1.image_digests);

    let board = release::board(&fx.store, &fx.project.slug).await.unwrap();
    let test = &board.environments[0];
    assert_eq!(test.current.as_ref().unwrap().release_tag.as_deref(), Some("v1"));
    let statuses: Vec<DeploymentStatus> = test.history.iter().map(|d| d.status).collect();
    assert_eq!(statuses, [DeploymentStatus::Failed, DeploymentStatus::Failed, DeploymentStatus::Succeeded]);
    fx.cleanup().await;
}

// ---------------------------------------------------------------------------
// Releases, gates and requests (recorded builds; no containers)
// ---------------------------------------------------------------------------

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn release_tags_are_unique_per_project_and_immutable(pool: PgPool) {
    let store = Store::from_pool(pool);
    let project = plain_project(&store).await;
    let other = plain_project(&store).await;
    let v1 = recorded_release(&store, &project, "v1.0.0", "a").await;
    assert_eq!(v1.tag.as_deref(), Some("v1.0.0"));

    let build_b = recorded_build(&store, &project, &sha("b"), &[("api", digest("b-api"))], true).await;
    let dup = |tag: Option<&str>, version: Option<&str>| NewRelease {
        project: project.slug.clone(),
        build: build_b.clone(),
        tag: tag.map(Into::into),
        version: version.map(Into::into),
        notes: None,
    };
    let e = app_err(release::create_release(&store, &dup(Some("v1.0.0"), None), None).await);
    assert_eq!(e.code, ErrorCode::Conflict);
    assert_eq!(e.problems[0].field, "tag");
    assert!(e.message.contains("`v1.0.0` already exists") && e.message.contains(&v1.id), "{}", e.message);
    let e = app_err(release::create_release(&store, &dup(None, Some("v1.0.0")), None).await);
    assert_eq!((e.code, e.problems[0].field.as_str()), (ErrorCode::Conflict, "tag"), "the version is the default tag");

    // The same tag in another project is fine; untagged releases get r<N>.
    recorded_release(&store, &other, "v1.0.0", "c").await;
    let r1 = release::create_release(&store, &dup(None, None), None).await.unwrap();
    let r2 = release::create_release(&store, &dup(None, None), None).await.unwrap();
    assert_eq!((r1.tag.as_deref(), r2.tag.as_deref()), (Some("r1"), Some("r2")));
    let versioned = release::create_release(&store, &dup(None, Some("2.0.0")), None).await.unwrap();
    assert_eq!(versioned.tag.as_deref(), Some("2.0.0"));
    let e = app_err(release::create_release(&store, &dup(Some("bad tag"), None), None).await);
    assert_eq!((e.code, e.problems[0].field.as_str()), (ErrorCode::InvalidInput, "tag"));

    // Nothing about a release can change, its tag least of all.
    let err = sqlx::query("UPDATE releases SET tag = 'v9' WHERE id = $1").bind(&v1.id).execute(store.pool()).await.unwrap_err();
    assert!(err.to_string().contains("immutable"), "{err}");
    let again = release::resolve_release(&store, &project.slug, "v1.0.0").await.unwrap();
    assert_eq!(again.id, v1.id);
    assert_eq!(again.image_digests, v1.image_digests);
    assert_eq!(release::resolve_release(&store, &project.id, &v1.id).await.unwrap().tag.as_deref(), Some("v1.0.0"));
    assert_eq!(app_err(release::resolve_release(&store, &other.slug, &v1.id).await).code, ErrorCode::NotFound);

    // Keyset pages, newest first.
    let p1 = release::list_releases(&store, &project.slug, &ReleaseListQuery { before: None, limit: Some(2) }).await.unwrap();
    assert_eq!(p1.items.iter().map(|r| r.tag.clone().unwrap()).collect::<Vec<_>>(), ["2.0.0", "r2"]);
    let p2 = release::list_releases(&store, &project.slug, &ReleaseListQuery { before: p1.next.clone(), limit: Some(2) }).await.unwrap();
    assert_eq!(p2.items.iter().map(|r| r.tag.clone().unwrap()).collect::<Vec<_>>(), ["r1", "v1.0.0"]);
    assert!(p2.next.is_none());
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_release_of_a_failed_build_is_refused_naming_the_build(pool: PgPool) {
    let store = Store::from_pool(pool);
    let project = plain_project(&store).await;
    let other = plain_project(&store).await;
    let failed = recorded_build(&store, &project, &sha("f"), &[], false).await;
    let new = |project: &Project, build: &str| NewRelease { project: project.slug.clone(), build: build.into(), ..Default::default() };

    let e = app_err(release::create_release(&store, &new(&project, &failed), None).await);
    assert_eq!((e.code, e.problems[0].field.as_str()), (ErrorCode::InvalidInput, "build"));
    assert!(e.message.contains(&failed) && e.message.contains("failed") && e.message.contains("RUN exit 3"), "{}", e.message);

    let empty = recorded_build(&store, &project, &sha("e"), &[], true).await;
    let e = app_err(release::create_release(&store, &new(&project, &empty), None).await);
    assert!(e.message.contains(&empty) && e.message.contains("without artifacts"), "{}", e.message);

    let foreign = recorded_build(&store, &other, &sha("o"), &[("api", digest("o"))], true).await;
    let e = app_err(release::create_release(&store, &new(&project, &foreign), None).await);
    assert!(e.message.contains(&foreign) && e.message.contains("belongs to project"), "{}", e.message);

    let e = app_err(release::create_release(&store, &new(&project, "bld_00000000000000000000000000"), None).await);
    assert_eq!(e.problems[0].field, "build");
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM releases").fetch_one(store.pool()).await.unwrap();
    assert_eq!(count, 0);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_changed_release_needs_new_approvals(pool: PgPool) {
    let store = Store::from_pool(pool);
    let project = plain_project(&store).await;
    let (dev, alice, bob) = (user(&store, "dev").await, user(&store, "alice").await, user(&store, "bob").await);
    release::create_environment(&store, &project.slug, &gate("production", 2, &[], 0)).await.unwrap();
    let v1 = recorded_release(&store, &project, "v1", "one").await;
    let v2 = recorded_release(&store, &project, "v2", "two").await;
    let req = |tag: &str| DeployRequest { environment: "production".into(), release: Some(tag.into()), ..Default::default() };

    let d = pipeline::request_deploy(&store, &project.slug, &req("v1"), Some(&dev), DeploymentKind::Deploy).await.unwrap();
    let d = release::approve(&store, &d.id, &alice, true).await.unwrap();
    assert_eq!(d.approvals_needed, 1);

    // The digests change under the approval: it no longer counts.
    sqlx::query("UPDATE deployments SET image_digests = $2 WHERE id = $1")
        .bind(&d.id)
        .bind(serde_json::to_value(&v2.image_digests).unwrap())
        .execute(store.pool())
        .await
        .unwrap();
    let changed = release::get_deployment(&store, &d.id).await.unwrap();
    assert_eq!(changed.approvals_needed, 2);
    assert!(!changed.approvals[0].valid);
    let after_bob = release::approve(&store, &d.id, &bob, true).await.unwrap();
    assert_eq!((after_bob.status, after_bob.approvals_needed), (DeploymentStatus::AwaitingApproval, 1));
    // alice approves again, this time for the digests it now carries.
    let both = release::approve(&store, &d.id, &alice, true).await.unwrap();
    assert_eq!(both.status, DeploymentStatus::Deploying, "{both:?}");
    // ...and execution refuses digests that are not the release's.
    let failed = release::execute_deployment(&store, &release::LocalDockerTarget::new(Docker::connect_with_local_defaults().unwrap()), &d.id)
        .await
        .unwrap();
    assert_eq!(failed.status, DeploymentStatus::Failed);
    assert!(failed.error_message.unwrap().contains("differ from those of release v1"));

    // A new release requested for the environment supersedes the waiting one; its approvals stay behind.
    let a = pipeline::request_deploy(&store, &project.slug, &req("v1"), Some(&dev), DeploymentKind::Deploy).await.unwrap();
    release::approve(&store, &a.id, &alice, true).await.unwrap();
    let b = pipeline::request_deploy(&store, &project.slug, &req("v2"), Some(&dev), DeploymentKind::Deploy).await.unwrap();
    assert_eq!((b.status, b.approvals_needed, b.approvals.len()), (DeploymentStatus::AwaitingApproval, 2, 0));
    let a = release::get_deployment(&store, &a.id).await.unwrap();
    assert_eq!(a.status, DeploymentStatus::Superseded);
    assert_eq!(a.error_message, Some(format!("superseded by {}", b.id)));
    assert_eq!(app_err(release::approve(&store, &a.id, &bob, true).await).code, ErrorCode::Conflict);
    assert_eq!(b.image_digests, v2.image_digests);
    let _ = v1;

    // Named approvers: only they count, and the board says who is still needed.
    release::update_environment(&store, &project.slug, "production", &gate("production", 1, &["alice"], 0)).await.unwrap();
    let b = release::get_deployment(&store, &b.id).await.unwrap();
    assert_eq!(b.approvers_still_needed, ["alice"]);
    let e = app_err(release::approve(&store, &b.id, &bob, true).await);
    assert_eq!(e.code, ErrorCode::Forbidden);
    assert!(e.message.contains("only alice may approve"), "{}", e.message);
    let board = release::board(&store, &project.slug).await.unwrap();
    assert_eq!(board.environments[0].pending[0].approvers_still_needed, ["alice"]);
    let b = release::approve(&store, &b.id, &alice, true).await.unwrap();
    assert_eq!(b.status, DeploymentStatus::Deploying);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn the_wait_timer_holds_an_approved_deployment_until_it_runs_out(pool: PgPool) {
    let store = Store::from_pool(pool);
    let project = plain_project(&store).await;
    let (dev, alice) = (user(&store, "dev").await, user(&store, "alice").await);
    release::create_environment(&store, &project.slug, &gate("production", 1, &[], 2)).await.unwrap();
    recorded_release(&store, &project, "v1", "one").await;
    let req = DeployRequest { environment: "production".into(), release: Some("v1".into()), direct: true, ..Default::default() };
    let d = pipeline::request_deploy(&store, &project.slug, &req, Some(&dev), DeploymentKind::Deploy).await.unwrap();
    assert_eq!(d.status, DeploymentStatus::AwaitingApproval, "direct bypasses the pipeline, not the gate");
    let d = release::approve(&store, &d.id, &alice, true).await.unwrap();
    assert_eq!((d.status, d.approvals_needed), (DeploymentStatus::AwaitingApproval, 0));
    let starts = d.starts_after.unwrap();
    assert_eq!(starts - d.approved_at.unwrap(), chrono::Duration::seconds(2));
    assert!(release::start_due_deployments(&store).await.unwrap().is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let started = release::start_due_deployments(&store).await.unwrap();
        if started == [d.id.clone()] {
            break;
        }
        assert!(Instant::now() < deadline, "the timer never ran out");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let d = release::get_deployment(&store, &d.id).await.unwrap();
    assert_eq!(d.status, DeploymentStatus::Deploying);
    assert!(d.started_at.unwrap() >= starts);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn deploy_requests_resolve_every_source_and_refuse_the_pipeline_shape(pool: PgPool) {
    let store = Store::from_pool(pool);
    let project = plain_project(&store).await;
    release::create_environment(&store, &project.slug, &gate("staging", 1, &[], 0)).await.unwrap();
    let v1 = recorded_release(&store, &project, "v1", "one").await;
    let v2 = recorded_release(&store, &project, "v2", "two").await;
    let deploy = |req: DeployRequest| {
        let store = store.clone();
        let slug = project.slug.clone();
        async move { pipeline::request_deploy(&store, &slug, &DeployRequest { environment: "staging".into(), ..req }, None, DeploymentKind::Deploy).await }
    };

    let by_tag = deploy(DeployRequest { release: Some("v1".into()), ..Default::default() }).await.unwrap();
    assert_eq!((by_tag.release_id.as_deref(), by_tag.release_tag.as_deref()), (Some(v1.id.as_str()), Some("v1")));
    let by_id = deploy(DeployRequest { release: Some(v2.id.clone()), ..Default::default() }).await.unwrap();
    assert_eq!(by_id.image_digests, v2.image_digests);
    let by_inputs = deploy(DeployRequest { inputs: Some(serde_json::json!({"release_tag": "v1"})), ..Default::default() }).await.unwrap();
    assert_eq!(by_inputs.release_id.as_deref(), Some(v1.id.as_str()));

    let image_tag = format!("sha-{}", &v2.git_sha[..12]);
    let by_image_tag = deploy(DeployRequest { image_tag: Some(image_tag), ..Default::default() }).await.unwrap();
    assert_eq!(by_image_tag.release_id.as_deref(), Some(v2.id.as_str()));

    let by_digests = deploy(DeployRequest { image_digests: Some(v1.image_digests.clone()), ..Default::default() }).await.unwrap();
    assert_eq!(by_digests.release_id.as_deref(), Some(v1.id.as_str()), "digests of a release are linked to it");
    let mut unknown = v1.image_digests.clone();
    unknown.insert("api".into(), digest("never built"));
    let e = app_err(deploy(DeployRequest { image_digests: Some(unknown), ..Default::default() }).await);
    assert_eq!((e.code, e.problems[0].field.as_str()), (ErrorCode::InvalidInput, "image_digests.api"));

    let direct = deploy(DeployRequest { git_sha: Some(v2.git_sha.clone()), direct: true, ..Default::default() }).await.unwrap();
    assert_eq!(direct.release_id.as_deref(), Some(v2.id.as_str()));
    assert!(direct.direct);

    let e = app_err(
        deploy(DeployRequest { git_sha: Some(v2.git_sha.clone()), manifest_hash: Some(v2.manifest_hash.clone()), ..Default::default() })
            .await,
    );
    // The pipeline shape runs the manifest's pipeline; this fixture's manifest
    // cannot run one (it is refused before anything is built or deployed).
    assert_eq!(e.code, ErrorCode::InvalidInput, "{}", e.message);
    let field = e.problems[0].field.as_str();
    assert!(field == "pipeline" || field.starts_with("manifest"), "{field}: {}", e.message);

    let e = app_err(deploy(DeployRequest { release: Some("v1".into()), image_tag: Some("local".into()), ..Default::default() }).await);
    assert_eq!(e.code, ErrorCode::InvalidInput);
    let e = app_err(deploy(DeployRequest { release: Some("v1".into()), git_sha: Some(v2.git_sha.clone()), ..Default::default() }).await);
    assert_eq!(e.problems[0].field, "git_sha");
    let e = app_err(deploy(DeployRequest::default()).await);
    assert_eq!(e.problems[0].field, "release");
    let e = app_err(deploy(DeployRequest { release: Some("v404".into()), ..Default::default() }).await);
    assert_eq!(e.problems[0].field, "release");
    let e = app_err(
        pipeline::request_deploy(&store, &project.slug, &DeployRequest { environment: "qa".into(), ..Default::default() }, None, DeploymentKind::Deploy)
            .await,
    );
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(e.message.contains("it has staging"), "{}", e.message);

    // Each request superseded the one before it; one is waiting.
    let board = release::board(&store, &project.slug).await.unwrap();
    let col = &board.environments[0];
    assert_eq!(col.pending.len(), 1);
    assert_eq!(col.pending[0].id, direct.id);
    assert!(col.history.iter().all(|d| d.status == DeploymentStatus::Superseded));
    assert_eq!(col.history.len(), 5);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn environments_follow_the_manifest_and_the_dashboard(pool: PgPool) {
    let store = Store::from_pool(pool);
    let project = plain_project(&store).await;
    let manifest = slipway_model::manifest::parse(
        "services:\n  api:\n    build: api\nenvironments:\n  - name: test\n  - name: staging\n  - name: production\n    approval:\n      required: 1\n      approvers: [alice, bob]\n      wait_timer_seconds: 30\n    target: { kind: kubernetes, namespace: prod }\n",
    )
    .unwrap();
    let envs = release::sync_environments_from_manifest(&store, &project.id, &manifest).await.unwrap();
    let names = |envs: &[slipway_model::release::Environment]| envs.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&envs), ["test", "staging", "production"]);
    let prod = &envs[2];
    assert_eq!((prod.approval_required, prod.approvers.clone(), prod.wait_timer_seconds), (1, vec!["alice".into(), "bob".into()], 30));
    assert_eq!(prod.deploy_target, serde_json::json!({"kind": "kubernetes", "namespace": "prod"}));

    let qa = release::create_environment(&store, &project.slug, &EnvironmentInput { position: Some(1), ..gate("qa", 0, &[], 0) }).await.unwrap();
    assert_eq!(qa.position, 1);
    assert_eq!(names(&release::list_environments(&store, &project.slug).await.unwrap()), ["test", "qa", "staging", "production"]);
    let e = app_err(release::create_environment(&store, &project.slug, &gate("qa", 0, &[], 0)).await);
    assert_eq!((e.code, e.problems[0].field.as_str()), (ErrorCode::Conflict, "name"));
    let e = app_err(release::create_environment(&store, &project.slug, &gate("Bad Name", 3, &["a"], 0)).await);
    assert_eq!(e.problems.iter().map(|p| p.field.as_str()).collect::<Vec<_>>(), ["name", "approval_required"]);

    // Syncing again (the manifest now swaps the order) keeps the dashboard's qa after the manifest's.
    let swapped = slipway_model::manifest::parse(
        "services:\n  api:\n    build: api\nenvironments:\n  - name: staging\n  - name: test\n  - name: production\n",
    )
    .unwrap();
    // A manifest may not drop production's gate or move its target: refused, nothing changes.
    let e = app_err(release::sync_environments_from_manifest(&store, &project.id, &swapped).await);
    assert_eq!(e.code, ErrorCode::Conflict);
    assert!(e.message.contains("production") && e.message.contains("approval.required 1 → 0"), "{}", e.message);
    assert_eq!(names(&release::list_environments(&store, &project.slug).await.unwrap()), ["test", "qa", "staging", "production"]);
    let swapped = slipway_model::manifest::parse(
        "services:\n  api:\n    build: api\nenvironments:\n  - name: staging\n  - name: test\n  - name: production\n    approval:\n      required: 2\n      approvers: [alice, bob]\n      wait_timer_seconds: 30\n    target: { kind: kubernetes, namespace: prod }\n",
    )
    .unwrap();
    let envs = release::sync_environments_from_manifest(&store, &project.id, &swapped).await.unwrap();
    assert_eq!(names(&envs), ["staging", "test", "production", "qa"]);
    assert_eq!(envs[2].approval_required, 2, "a tighter gate follows the manifest");
    assert_eq!(envs.iter().map(|e| e.position).collect::<Vec<_>>(), [0, 1, 2, 3]);

    let moved = release::update_environment(
        &store,
        &project.slug,
        "qa",
        &EnvironmentInput { position: Some(0), ..gate("qa", 1, &[], 60) },
    )
    .await
    .unwrap();
    assert_eq!((moved.position, moved.approval_required, moved.wait_timer_seconds), (0, 1, 60));
    assert_eq!(names(&release::list_environments(&store, &project.slug).await.unwrap()), ["qa", "staging", "test", "production"]);
    release::delete_environment(&store, &project.slug, "staging").await.unwrap();
    let envs = release::list_environments(&store, &project.slug).await.unwrap();
    assert_eq!(names(&envs), ["qa", "test", "production"]);
    assert_eq!(envs.iter().map(|e| e.position).collect::<Vec<_>>(), [0, 1, 2]);
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn an_image_missing_from_the_engine_is_pulled_by_digest(pool: PgPool) {
    let fx = fixture(pool).await;
    let v1 = fx.release_version("v1", app_files("v1")).await;
    let build = fx.store.get_build(&v1.build_id).await.unwrap();
    // Forget the engine's references to the api image (tag and digest); the registry still has it.
    let api = build.artifacts.iter().find(|a| a.service_name == "api").unwrap();
    let repo = release::target::repository_of(&api.image_ref).to_string();
    for reference in [api.image_ref.clone(), format!("{repo}@{}", api.digest)] {
        // Untagging the last tag of a repository also drops its digest reference.
        let _ = fx.docker.remove_image(&reference, None::<bollard::query_parameters::RemoveImageOptions>, None).await;
    }
    assert!(fx.docker.inspect_image(&format!("{repo}@{}", api.digest)).await.is_err());

    let d = fx.deploy("test", "v1", None).await.unwrap();
    let d = fx.execute(&d).await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error_message);
    assert_eq!(digests_of(&fx.running("test").await), v1.image_digests);
    fx.cleanup().await;
}
