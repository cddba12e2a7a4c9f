//! The one shape of Slipway's background workers: LISTEN + poll + claim +
//! slots + shutdown. The build runner ([`crate::builds::runner::Runner::start`]),
//! the pipeline driver ([`crate::pipeline::spawn_driver`]) and the deploy
//! executor ([`crate::release::executor::spawn_executor`]) are each a [`Job`]
//! run by [`spawn`].
//!
//! A worker listens on its Postgres NOTIFY channel (so work queued by any
//! process on the database wakes it at once) and also polls every
//! [`Shape::poll`], for work nobody announced (expired leases, timers) and
//! while the listener is down (it reconnects at the next poll). Each time it
//! wakes it calls [`Job::tick`], then claims work while it has a free slot
//! (at most [`Shape::slots`] runs at once), each run in its own task. A run
//! that ends frees its slot and the worker claims again (without a tick).
//!
//! On shutdown the worker stops claiming, then either lets its runs finish
//! ([`Shape::drain`]) or stops them (drops their futures), calls
//! [`Job::stopped`], and only then does its [`JoinHandle`] resolve: a caller
//! that awaits the handle knows nothing of the worker is still running.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::builds::BoxFuture;
use crate::error::Result;
use crate::store::Store;

/// How a worker waits and how much it runs at once.
#[derive(Debug, Clone)]
pub struct Shape {
    /// For logs, e.g. `build worker`.
    pub name: &'static str,
    /// The NOTIFY channel that announces work.
    pub channel: &'static str,
    /// Runs at once (at least one).
    pub slots: usize,
    /// How often the worker wakes without a notification.
    pub poll: Duration,
    /// On shutdown, let running runs finish (`true`) or stop them (`false`).
    pub drain: bool,
}

/// What a worker does; see the module documentation for when each is called.
pub trait Job: Send + Sync + 'static {
    /// One unit of claimed work.
    type Claim: Send + 'static;

    /// Housekeeping on every wake-up (start, poll, notification), before
    /// claiming: reaping expired leases, starting timers that ran out.
    fn tick(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Claims the next unit of work, if there is one. Called only while a
    /// slot is free.
    fn claim(&self) -> BoxFuture<'_, Result<Option<Self::Claim>>>;

    /// Does the claimed work (in its own task) and records how it ended.
    fn run(self: Arc<Self>, claim: Self::Claim) -> BoxFuture<'static, ()>;

    /// After shutdown, once no run is left: give back what this worker holds.
    fn stopped(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Starts `job` on `store` in the background until `shutdown` fires; the
/// handle resolves once every run has ended and [`Job::stopped`] returned.
pub fn spawn<J: Job>(store: Store, shape: Shape, job: Arc<J>, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let slots = shape.slots.max(1);
        let mut listener = listen(&store, &shape).await;
        let mut runs: JoinSet<()> = JoinSet::new();
        let mut woken = true;
        let mut next_poll = tokio::time::Instant::now() + shape.poll;
        tracing::info!(worker = shape.name, channel = shape.channel, slots, "worker started");
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if woken {
                job.tick().await;
            }
            while runs.len() < slots && !shutdown.is_cancelled() {
                match job.claim().await {
                    Ok(Some(claim)) => {
                        runs.spawn(job.clone().run(claim));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(worker = shape.name, error = %e, "claiming work");
                        break;
                    }
                }
            }
            woken = true;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(next_poll) => {
                    next_poll = tokio::time::Instant::now() + shape.poll;
                    if listener.is_none() {
                        listener = listen(&store, &shape).await;
                    }
                }
                Some(ended) = runs.join_next(), if !runs.is_empty() => {
                    if let Err(e) = ended {
                        if e.is_panic() {
                            tracing::error!(worker = shape.name, error = %e, "a run panicked");
                        }
                    }
                    woken = false;
                }
                n = async {
                    match listener.as_mut() {
                        Some(l) => l.recv().await.map(|_| ()),
                        None => std::future::pending().await,
                    }
                } => {
                    if let Err(e) = n {
                        tracing::warn!(worker = shape.name, error = %e, "lost the listener connection; polling until it is back");
                        listener = None;
                    }
                }
            }
        }
        drop(listener);
        if shape.drain {
            tracing::info!(worker = shape.name, running = runs.len(), "worker stopping: letting running work finish");
            while runs.join_next().await.is_some() {}
        } else {
            runs.shutdown().await;
        }
        job.stopped().await;
        tracing::info!(worker = shape.name, "worker stopped");
    })
}

/// A listener on the shape's channel, or `None` (the worker polls) when
/// Postgres cannot be listened to.
async fn listen(store: &Store, shape: &Shape) -> Option<PgListener> {
    let mut listener = match PgListener::connect_with(store.pool()).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(worker = shape.name, error = %e, "no listener connection; polling instead");
            return None;
        }
    };
    match listener.listen(shape.channel).await {
        Ok(()) => Some(listener),
        Err(e) => {
            tracing::warn!(worker = shape.name, channel = shape.channel, error = %e, "LISTEN failed; polling instead");
            None
        }
    }
}

/// Sends `payload` on `channel` to every process listening on the database:
/// at once on a pool, when the transaction commits on a transaction's
/// connection. Every NOTIFY of Slipway goes through here.
pub async fn notify<'e>(conn: impl sqlx::PgExecutor<'e>, channel: &str, payload: &str) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(conn).await?;
    Ok(())
}
