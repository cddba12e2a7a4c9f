//! The Slipway server: the router (`app`), the start-up of embedded services,
//! and the shutdown that stops what it started.

mod authn;
mod authz;
pub mod config;
pub mod edge;
mod http;
pub mod metrics;
mod problem;
pub mod realm;
mod startup;
mod transfer;
mod ws;

pub use edge::{Edge, Limits};
pub use http::{app, AppState};
pub use metrics::Metrics;
pub use startup::{run, run_admin_create, run_services};
