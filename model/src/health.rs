//! The shape of `GET /healthz`.

use serde::{Deserialize, Serialize};

/// State of one component Slipway depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentHealth {
    /// `ok` or `down`.
    pub status: String,
    /// Where it is reached (never with credentials).
    pub endpoint: String,
    /// Version or error text.
    pub detail: String,
}

/// Overall health: `ok` when every component is, else `degraded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
    pub database: ComponentHealth,
    pub docker: ComponentHealth,
    pub registry: ComponentHealth,
}
