//! Builds: a spec (`bld_…`) is run (`run_…`) by a worker that claims it from
//! the Postgres queue, clones and checks out the commit, tars each service's
//! context, builds it on a [`BuildBackend`], pushes it and records the
//! artifacts with their registry digests.
//!
//! Everything builds keep in Postgres (specs, runs and their queue,
//! artifacts) is read and written through [`store`]; the NOTIFY channels of
//! the queue are named below.

pub mod buildkit;
pub mod commit;
pub mod create;
pub mod diagnose;
pub mod dockerignore;
pub mod git_access;
pub mod image_archive;
pub mod legacy;
mod realm;
pub mod registry;
pub mod runner;
mod session;
pub mod store;
pub mod transfer;
pub mod workspace;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use slipway_model::status::ErrorClass;

pub use crate::logs::{LogSink, Phase, Stream};
pub use store::{ArtifactInsert, ClaimedRun, Heartbeat, RunOutcome, SpecInsert};

/// Channel notified when a run is queued or requeued (payload: the build id,
/// or `requeued`); build workers wake on it.
pub const QUEUE_CHANNEL: &str = "build_queue";
/// Channel notified when cancelling a run that is building (payload: the run id).
pub const CANCEL_CHANNEL: &str = "build_cancel";

/// What a backend needs to build one service's image.
#[derive(Debug, Clone)]
pub struct ImageBuild {
    /// Service key from the manifest (used in log step names).
    pub service: String,
    /// The build context as an uncompressed tar stream (`.dockerignore` applied).
    pub context_tar: bytes::Bytes,
    /// Dockerfile path inside the context.
    pub dockerfile: String,
    /// Multi-stage target, if any.
    pub target: Option<String>,
    /// Build args, managed and custom. Never credentials: build args used by a
    /// `RUN` step are recorded in the image's history.
    pub build_args: BTreeMap<String, String>,
    /// Build secrets by id, readable only by `RUN --mount=type=secret,id=<id>`
    /// steps and recorded nowhere in the image. Never log the values.
    pub secrets: BTreeMap<String, String>,
    /// Local tag to give the result, e.g. `127.0.0.1:5000/demo/api:sha-0123456789ab`.
    pub tag: String,
    /// Labels to set on the image.
    pub labels: BTreeMap<String, String>,
    /// Memory limit in bytes, if any.
    pub memory: Option<i64>,
}

/// What a backend produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// Local image id (`sha256:…`, the config digest; not the registry digest).
    pub image_id: String,
    /// Size of the image in bytes, as the engine reports it.
    pub size_bytes: Option<i64>,
    /// `os/arch`, e.g. `linux/amd64`.
    pub platform: Option<String>,
}

/// A classified failure, with the step that failed when one did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BuildFailure {
    pub class: ErrorClass,
    pub message: String,
    /// The Dockerfile step that failed, e.g. `[build 3/5] RUN pnpm install`.
    pub failed_step: Option<String>,
}

impl BuildFailure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        BuildFailure { class, message: message.into(), failed_step: None }
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A way to turn a context and a Dockerfile into a local image. Dropping the
/// returned future must cancel the build (the engine stops the RUN step).
pub trait BuildBackend: Send + Sync {
    /// Recorded on the run, e.g. `buildkit`.
    fn name(&self) -> &'static str;
    /// Builds one image, streaming every line of progress to `log`.
    fn build<'a>(&'a self, job: &'a ImageBuild, log: &'a LogSink) -> BoxFuture<'a, Result<BuiltImage, BuildFailure>>;
}
