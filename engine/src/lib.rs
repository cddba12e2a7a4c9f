//! Slipway's native core: the Postgres store, the embedded services a
//! one-command install starts (Postgres, Docker engine, registry, base image),
//! the demo project, and (later) builds, logs, releases and deploys.

pub mod auth;
pub mod demo;
pub mod docker;
pub mod embedded;
pub mod error;
pub mod build;
pub mod clusters;
pub mod health;
pub mod isolation;
pub mod logstream;
pub mod metrics;
pub mod pipeline;
pub mod registries;
pub mod registry_auth;
pub mod release;
pub mod secrets;
pub mod store;

pub use error::{Error, Result};
pub use store::Store;
