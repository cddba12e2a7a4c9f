//! Deployments: requests in every shape of the deploy model, approval gates
//! bound to digests, promotion, rollback, the pre-promotion diff, the board,
//! and the executor that applies a deployment on a [`DeployTarget`]. One
//! file a job:
//!
//! - [`load`]: reading deployments with their approvals and gate.
//! - [`source`]: what a request names to deploy (a release, digests, an
//!   image tag, a commit), checked against what the project built.
//! - [`request`]: recording a deployment (a request, a promotion, a
//!   rollback, a pipeline's deploy step) under the environment's lock.
//! - [`gate`]: approvals, rejections, and starting a gated deployment once
//!   its gate and wait timer allow.
//! - [`execute`]: rolling a `deploying` deployment out on a target.
//! - [`board`]: the Environments board and the pre-promotion diff.
//!
//! A deploy request in the pipeline shape (a commit without `direct`) starts
//! a pipeline: that dispatch is [`crate::pipeline::request_deploy`], which
//! calls down into this module, never the other way round.
//!
//! One deployment per environment rolls out at a time: every change of an
//! environment's deployments runs in a transaction holding
//! `pg_advisory_xact_lock` on that environment
//! ([`super::environments::lock_environment`]), and the partial unique index
//! `deployments_one_deploying_idx` backs it up. A new request supersedes the
//! environment's older requests that never ran.
//!
//! [`DeployTarget`]: super::target::DeployTarget

mod board;
mod execute;
mod gate;
mod load;
mod request;
mod source;

pub use board::{board, diff};
pub use execute::{execute_deployment, run_pending};
pub use gate::{approve, reject, start_due_deployments};
pub(crate) use gate::advance_if_due;
pub use load::{get_deployment, running_before};
pub use request::{promote, rollback};
pub(crate) use request::{deploy_for_pipeline, fail_pipeline_placeholders, insert_pipeline_placeholder, request_release_deploy};
pub(crate) use source::release_reference;
