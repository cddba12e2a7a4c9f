//! The one background-worker shape (`slipway_engine::worker`): deploys wake
//! the executor of every process through Postgres NOTIFY, and shutdown
//! awaits every worker and what it runs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use serde_json::json;
use slipway_engine::builds::{ArtifactInsert, BoxFuture, RunOutcome, SpecInsert};
use slipway_engine::release::{DeployTarget, LocalDockerTarget};
use slipway_engine::worker::{self, Job, Shape};
use slipway_engine::{Result, Store};
use slipway_model::project::NewProject;
use slipway_model::release::{DeployRequest, DeploymentKind, EnvironmentInput, NewRelease};
use slipway_model::status::DeploymentStatus;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// A second process on the same database: its own pool, its own store.
async fn other_process(pool: &PgPool) -> Store {
    let options = (*pool.connect_options()).clone();
    Store::from_pool(PgPoolOptions::new().max_connections(4).connect_with(options).await.unwrap())
}

/// Waits until some connection of this database listens on `channel`.
async fn wait_for_listener(store: &Store, channel: &str) {
    let started = Instant::now();
    loop {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%' || $1 || '%'",
        )
        .bind(channel)
        .fetch_one(store.pool())
        .await
        .unwrap();
        if n > 0 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "nobody listens on {channel}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A project with a completed build, its release `v1` and an ungated environment `test`.
async fn project_with_release(store: &Store) -> String {
    let project = store
        .create_project(&NewProject { name: "wake".into(), repo_url: "https://git.example/wake.git".into(), ..Default::default() }, None)
        .await
        .unwrap();
    let (sha, hash) = ("a".repeat(40), "b".repeat(64));
    store.record_manifest(&project.id, &sha, &hash, "services: {}\n", &json!({})).await.unwrap();
    let (spec, _) = store
        .create_build_spec(&SpecInsert {
            project_id: project.id.clone(),
            git_sha: sha,
            manifest_hash: hash,
            services: None,
            inputs: json!({}),
            registry: None,
            cache: None,
            build_args: Default::default(),
            force_rebuild: false,
            idempotency_key: None,
            created_by: None,
        })
        .await
        .unwrap();
    let run = store.enqueue_run(&spec.id, None, false).await.unwrap();
    store.claim_run("workers-test", Duration::from_secs(60), "test").await.unwrap().unwrap();
    store
        .insert_artifact(&run.id, &spec.id, &ArtifactInsert {
            service_name: "api".into(),
            // Nothing is pushed under this name: the rollout fails when it pulls, which ends it just the same.
            image_ref: "127.0.0.1:1/wake/api:sha-aaaaaaaaaaaa".into(),
            digest: format!("sha256:{}", "c".repeat(64)),
            platforms: vec!["linux/amd64".into()],
            size_bytes: Some(1),
        })
        .await
        .unwrap();
    assert!(store.finish_run(&run.id, "workers-test", &RunOutcome::Completed { reused_from: None }).await.unwrap());
    slipway_engine::release::create_release(
        store,
        &NewRelease { project: project.id.clone(), build: spec.id.clone(), tag: Some("v1".into()), version: None, notes: None },
        None,
    )
    .await
    .unwrap();
    slipway_engine::release::create_environment(store, &project.id, &EnvironmentInput { name: "test".into(), ..Default::default() })
        .await
        .unwrap();
    project.id
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_deploy_requested_through_one_store_wakes_the_executor_of_another_store(pool: PgPool) {
    let here = Store::from_pool(pool.clone());
    let project = project_with_release(&here).await;
    // Another process's executor, which would not poll for an hour: only a notification can wake it.
    let there = other_process(&pool).await;
    let docker = Docker::connect_with_local_defaults().expect("a Docker engine (cargo xtask test starts one)");
    let target: Arc<dyn DeployTarget> =
        Arc::new(LocalDockerTarget::new(docker).with_labels([("dev.slipway.test".to_string(), "workers".to_string())].into()));
    let shutdown = CancellationToken::new();
    let executor = slipway_engine::release::spawn_executor(there.clone(), target, Duration::from_secs(3600), shutdown.clone());
    wait_for_listener(&here, slipway_engine::release::DEPLOYS_CHANNEL).await;

    let requested = slipway_engine::pipeline::request_deploy(
        &here,
        &project,
        &DeployRequest { environment: "test".into(), release: Some("v1".into()), ..Default::default() },
        None,
        DeploymentKind::Deploy,
    )
    .await
    .unwrap();
    assert_eq!(requested.status, DeploymentStatus::Deploying);
    let started = Instant::now();
    let ended = loop {
        let d = slipway_engine::release::get_deployment(&here, &requested.id).await.unwrap();
        if d.status != DeploymentStatus::Deploying {
            break d;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the other store's executor was not woken");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The executor rolled it out (the image does not exist, so it failed, with the target's reason).
    assert!(ended.status.is_terminal(), "{:?}", ended.status);
    assert!(ended.completed_at.is_some());
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), executor).await.expect("the executor stops on shutdown").unwrap();
}

/// A job that claims `total` units, each running until `release` (or forever).
struct Counted {
    total: usize,
    claimed: AtomicUsize,
    running: AtomicUsize,
    finished: AtomicUsize,
    dropped: AtomicUsize,
    stopped: AtomicBool,
    run_for: Option<Duration>,
}

impl Counted {
    fn new(total: usize, run_for: Option<Duration>) -> Arc<Counted> {
        Arc::new(Counted {
            total,
            claimed: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            run_for,
        })
    }
}

/// Counts a run that was stopped before it finished.
struct DropCount(Arc<Counted>, bool);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        if !self.1 {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Job for Counted {
    type Claim = usize;

    fn claim(&self) -> BoxFuture<'_, Result<Option<usize>>> {
        Box::pin(async move {
            let n = self.claimed.fetch_add(1, Ordering::SeqCst);
            if n < self.total {
                Ok(Some(n))
            } else {
                self.claimed.fetch_sub(1, Ordering::SeqCst);
                Ok(None)
            }
        })
    }

    fn run(self: Arc<Self>, _n: usize) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.running.fetch_add(1, Ordering::SeqCst);
            let mut guard = DropCount(self.clone(), false);
            match self.run_for {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
            self.finished.fetch_add(1, Ordering::SeqCst);
            guard.1 = true;
        })
    }

    fn stopped(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            assert_eq!(self.running.load(Ordering::SeqCst), 0, "stopped() is called once no run is left");
            self.stopped.store(true, Ordering::SeqCst);
        })
    }
}

async fn wait_running(job: &Counted, n: usize) {
    let started = Instant::now();
    while job.running.load(Ordering::SeqCst) < n {
        assert!(started.elapsed() < Duration::from_secs(10), "runs did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn shutdown_awaits_every_worker_and_what_it_runs(pool: PgPool) {
    let store = Store::from_pool(pool);
    let shape = |drain| Shape { name: "test worker", channel: "workers_test", slots: 2, poll: Duration::from_secs(3600), drain };
    let shutdown = CancellationToken::new();

    // Draining: the running work finishes before the handle resolves; slots cap what runs.
    let drained = Counted::new(3, Some(Duration::from_millis(300)));
    let drained_handle = worker::spawn(store.clone(), shape(true), drained.clone(), shutdown.clone());
    // Stopping: running work is stopped (dropped), then `stopped` gives back what it held.
    let stopped = Counted::new(1, None);
    let stopped_handle = worker::spawn(store.clone(), shape(false), stopped.clone(), shutdown.clone());
    // The three real workers, on the same token (no work for them here).
    let driver = slipway_engine::pipeline::spawn_driver(
        store.clone(),
        Arc::new(LocalDockerTarget::new(Docker::connect_with_local_defaults().unwrap())),
        shutdown.clone(),
    );
    let executor = slipway_engine::release::spawn_executor(
        store.clone(),
        Arc::new(LocalDockerTarget::new(Docker::connect_with_local_defaults().unwrap())),
        Duration::from_secs(3600),
        shutdown.clone(),
    );

    wait_running(&drained, 2).await;
    wait_running(&stopped, 1).await;
    assert_eq!(drained.claimed.load(Ordering::SeqCst), 2, "two slots: the third unit waits");
    shutdown.cancel();
    for handle in [drained_handle, stopped_handle, driver, executor] {
        tokio::time::timeout(Duration::from_secs(30), handle).await.expect("a worker did not stop").unwrap();
    }
    assert_eq!(drained.finished.load(Ordering::SeqCst), 2, "draining lets running work finish");
    assert_eq!(drained.claimed.load(Ordering::SeqCst), 2, "nothing is claimed after shutdown");
    assert!(drained.stopped.load(Ordering::SeqCst));
    assert_eq!(stopped.dropped.load(Ordering::SeqCst), 1, "the running work was stopped");
    assert_eq!(stopped.finished.load(Ordering::SeqCst), 0);
    assert!(stopped.stopped.load(Ordering::SeqCst));
}
