//! The admin-managed list of allowed images: base images a build may name
//! in `FROM` (and `COPY --from`, `RUN --mount=from=`), and repositories of
//! Slipway's registry another project may pull. Each entry applies to every
//! project or to one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedImage {
    pub id: i64,
    /// Canonical pattern, e.g. `docker.io/library/*` or `docker.io/slipway/busybox:1`.
    pub pattern: String,
    /// The project it applies to (slug); `None`: every project.
    pub project: Option<String>,
    pub project_id: Option<String>,
    /// Who added it (username), when known.
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Input for adding an entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAllowedImage {
    /// An image reference, optionally with `*` wildcards.
    pub pattern: String,
    /// Project id, slug or name; omitted for every project.
    #[serde(default)]
    pub project: Option<String>,
}
