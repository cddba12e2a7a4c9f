//! The Slipway server: the router (`app`), the start-up of embedded services,
//! and the shutdown that stops what it started.

mod authn;
pub mod config;
mod http;
mod startup;
mod transfer;
mod ws;

pub use http::{app, AppState};
pub use startup::{run, run_admin_create, run_services};
