//! Slipway's domain model: ids, statuses, the manifest schema and its
//! validation, the DTOs the API exchanges, and the error type they share.
//! No I/O: this crate compiles to wasm for the dashboard.

pub mod ansi;
pub mod auth;
pub mod base_image;
pub mod build;
pub mod cluster;
pub mod diagnose;
pub mod error;
pub mod health;
pub mod id;
pub mod image_name;
pub mod limits;
pub mod logs;
pub mod manifest;
pub mod pipeline;
pub mod project;
pub mod registry;
pub mod release;
pub mod secret;
pub mod status;
mod yaml_budget;

pub use error::{AppError, AppResult, ErrorCode, FieldProblem};

impl From<manifest::ManifestErrors> for AppError {
    fn from(errors: manifest::ManifestErrors) -> Self {
        AppError::invalid_fields(
            errors
                .problems()
                .iter()
                .map(|p| FieldProblem { field: format!("manifest.{}", p.path), message: p.message.clone() })
                .collect(),
        )
    }
}
