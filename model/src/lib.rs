//! Slipway's domain model: ids, statuses, manifest schema and validation. No I/O.

pub mod id;
pub mod manifest;
pub mod status;
