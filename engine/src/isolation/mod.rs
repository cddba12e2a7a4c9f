//! Keeping projects apart on the shared Docker engine and registry.
//!
//! - [`reference`]: image references and allowed-image patterns, and the one
//!   place that decides whether an image is in a project's own namespace.
//! - [`dockerfile`]: every image a Dockerfile makes BuildKit read, resolved.
//! - [`base_check`]: the check each run passes before BuildKit starts.
//! - [`allowed`]: the admin-managed list of allowed images in the store.

pub mod allowed;
pub mod base_check;
pub mod dockerfile;
pub mod reference;

pub use base_check::{refusal, BaseImagePolicy, Violation};
pub use reference::{ImagePattern, ImageRef};
