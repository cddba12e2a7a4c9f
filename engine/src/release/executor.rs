//! The deploy executor: rolls out `deploying` deployments on a
//! [`DeployTarget`], in the shape of every worker ([`crate::worker`]).
//!
//! A deployment becomes `deploying` when an ungated request is recorded or
//! when its gate opens; that transaction announces it on [`DEPLOYS_CHANNEL`]
//! ([`announce`]), so the executor of every process on the database wakes at
//! once. It also polls (every 2 s in the server) for approved deployments
//! whose wait timer ran out, and on start resumes rollouts a stopped process
//! left behind. One rollout at a time per process; a deployment another
//! executor is rolling out is left alone until the next wake-up. On shutdown
//! the running rollout finishes before the worker's handle resolves.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use slipway_model::ErrorCode;
use sqlx::PgConnection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{execute_deployment, start_due_deployments, DeployTarget};
use crate::builds::BoxFuture;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::worker::{self, Job, Shape};

/// Channel announcing a deployment that became `deploying` (payload: its id).
pub const DEPLOYS_CHANNEL: &str = "deployments";

/// How often the server's executor wakes without a notification.
pub const POLL: Duration = Duration::from_secs(2);

/// Announces, from inside the transaction that made it `deploying`, that
/// `deployment_id` can be rolled out (delivered when the transaction commits).
pub async fn announce(conn: &mut PgConnection, deployment_id: &str) -> Result<()> {
    worker::notify(conn, DEPLOYS_CHANNEL, deployment_id).await
}

/// Starts the deploy executor on `target` until `shutdown` fires, waking on
/// [`DEPLOYS_CHANNEL`] and every `poll`.
pub fn spawn_executor(store: Store, target: Arc<dyn DeployTarget>, poll: Duration, shutdown: CancellationToken) -> JoinHandle<()> {
    let shape = Shape { name: "deploy executor", channel: DEPLOYS_CHANNEL, slots: 1, poll, drain: true };
    let job = Arc::new(Executor { store: store.clone(), target, skip: Mutex::new(Skip::default()) });
    worker::spawn(store, shape, job, shutdown)
}

/// Deployments not to claim now.
#[derive(Default)]
struct Skip {
    /// Being rolled out by this executor.
    running: HashSet<String>,
    /// Held by another executor when last tried; tried again after the next wake-up.
    elsewhere: HashSet<String>,
}

struct Executor {
    store: Store,
    target: Arc<dyn DeployTarget>,
    skip: Mutex<Skip>,
}

impl Executor {
    fn skip(&self) -> MutexGuard<'_, Skip> {
        match self.skip.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        }
    }
}

impl Job for Executor {
    type Claim = String;

    fn tick(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.skip().elsewhere.clear();
            if let Err(e) = start_due_deployments(&self.store).await {
                tracing::warn!(error = %e, "starting deployments whose wait timer ran out");
            }
        })
    }

    fn claim(&self) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async move {
            let skip: Vec<String> = {
                let s = self.skip();
                s.running.iter().chain(s.elsewhere.iter()).cloned().collect()
            };
            let next: Option<(String,)> = sqlx::query_as(
                "SELECT id FROM deployments WHERE status = 'deploying' AND NOT (id = ANY($1))
                 ORDER BY started_at, id LIMIT 1",
            )
            .bind(&skip)
            .fetch_optional(self.store.pool())
            .await?;
            if let Some((id,)) = &next {
                self.skip().running.insert(id.clone());
            }
            Ok(next.map(|(id,)| id))
        })
    }

    fn run(self: Arc<Self>, id: String) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let outcome = execute_deployment(&self.store, self.target.as_ref(), &id).await;
            let mut skip = self.skip();
            skip.running.remove(&id);
            match outcome {
                Ok(d) => {
                    tracing::info!(deployment = %d.id, environment = %d.environment, status = %d.status.as_str(), "deployment finished")
                }
                Err(Error::App(e)) if e.code == ErrorCode::Conflict => {
                    skip.elsewhere.insert(id);
                }
                Err(e) => {
                    tracing::warn!(deployment = %id, error = %e, "executing a deployment");
                    skip.elsewhere.insert(id);
                }
            }
        })
    }
}
