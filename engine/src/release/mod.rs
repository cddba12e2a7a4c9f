//! Releases, environments and deployments: build once, then promote exactly
//! the same image digests from environment to environment behind approval
//! gates.
//!
//! - [`releases`]: `rel_…` snapshots of a completed build (git sha, manifest
//!   hash, service → digest), immutable, tags unique per project; the
//!   project setting `auto_release` makes every completed build one.
//! - [`environments`]: the ordered promotion path with approval gates and
//!   deploy targets, synced from the manifest or edited on the dashboard.
//! - [`deployments`]: deploy requests, approvals bound to digests,
//!   promotion, rollback, the pre-promotion diff, the board and the rollout
//!   of one deployment.
//! - [`executor`]: the background worker that rolls out deployments as they
//!   become `deploying`, woken by Postgres NOTIFY in every process.
//! - [`target`]: [`DeployTarget`] and the local Docker engine target.
//! - [`kubernetes`]: the Kubernetes target (server-side apply, rollout watch).
//! - [`select`]: [`Targets`], the target chosen per environment from its
//!   stored `deploy_target` (never a fallback to another kind).
//!
//! Nothing here writes audit events or knows about roles: callers pass user
//! ids and whether a user may approve, and record the audit trail.

pub mod deployments;
pub mod environments;
pub mod executor;
pub mod kubernetes;
pub mod releases;
pub mod select;
pub mod target;

pub use deployments::{
    approve, board, diff, execute_deployment, get_deployment, promote, reject, rollback, run_pending, running_before,
    start_due_deployments,
};
pub use executor::{spawn_executor, DEPLOYS_CHANNEL};
pub use environments::{
    create_environment, delete_environment, list_environments, sync_environments_from_manifest, update_environment,
};
pub use releases::{create_release, get_release, list_releases, maybe_auto_release, resolve_release};
pub use select::{targets_for_process, ClusterDeployer, TargetChoice, Targets};
pub use target::{DeployError, DeployPlan, DeployTarget, LocalDockerTarget, ServicePlan};

use slipway_model::release::{is_image_digest, ImageDigests};

use crate::error::{Error, Result};

/// Decodes a stored `image_digests` object, refusing anything but `sha256:` digests.
fn decode_digests(owner: &str, value: serde_json::Value) -> Result<ImageDigests> {
    let map: ImageDigests =
        serde_json::from_value(value).map_err(|e| Error::CorruptRow(format!("{owner} has malformed image_digests: {e}")))?;
    if let Some((service, digest)) = map.iter().find(|(_, d)| !is_image_digest(d)) {
        return Err(Error::CorruptRow(format!("{owner} has a malformed digest for {service}: {digest}")));
    }
    Ok(map)
}

/// An internal failure (serialisation) as an engine error.
fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}
