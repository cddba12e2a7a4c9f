//! Slipway's native core: the Postgres store ([`store`]) and one module per
//! capability, each owning its queries — [`builds`] (specs, the run queue,
//! backends, the runner, diagnosis), [`logs`] (capture, reading, live
//! fan-out), [`release`] (releases, environments, deployments and their
//! executor), [`pipeline`], [`auth`], [`secrets`] — the one background-worker
//! shape the runner, the pipeline driver and the deploy executor run on
//! ([`worker`]), the embedded services a one-command install starts
//! (Postgres, Docker engine, registry, base image) and the demo project.

pub mod auth;
pub mod demo;
pub mod docker;
pub mod embedded;
pub mod error;
pub mod builds;
pub mod clusters;
pub mod health;
pub mod isolation;
pub mod logs;
pub mod metrics;
pub mod pipeline;
pub mod registries;
pub mod registry_auth;
pub mod release;
pub mod secrets;
pub mod store;
pub mod worker;

pub use error::{Error, Result};
pub use store::Store;
