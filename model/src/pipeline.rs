//! Pipeline runs (`pip_…`): one execution of a manifest pipeline at a commit,
//! step by step, as the API exchanges them.
//!
//! A run records, per step, its status (`pending → running → succeeded |
//! failed`, or `skipped` when a step it depends on did not succeed), when it
//! started and finished, a live `detail` line ("waiting for approval: 1 more
//! needed"), its error, and its outputs, which later steps read:
//!
//! | action    | outputs                                          |
//! |-----------|--------------------------------------------------|
//! | `build`   | `build_id`, `image_digests`                      |
//! | `release` | `release_id`, `release_tag`, `image_digests`     |
//! | `deploy`  | `deployment_id`, `environment`, `image_digests`  |
//!
//! The database keeps the steps as one JSON object keyed by step name
//! (`pipeline_runs.steps`); [`PipelineRun::steps`] lists them in execution
//! order.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::status::{PipelineRunStatus, UnknownVariant};

/// Where one step of a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started yet.
    Pending,
    /// Started: building, releasing, waiting for approval or deploying.
    Running,
    /// Done; its outputs are set.
    Succeeded,
    /// Failed; `error` says why. The run fails.
    Failed,
    /// Not run because a step it depends on did not succeed.
    Skipped,
}

impl StepStatus {
    /// Every status, in lifecycle order.
    pub const ALL: &'static [StepStatus] =
        &[StepStatus::Pending, StepStatus::Running, StepStatus::Succeeded, StepStatus::Failed, StepStatus::Skipped];

    /// The name stored and sent.
    pub const fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }

    /// Whether the step is over.
    pub const fn is_terminal(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped)
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StepStatus {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StepStatus::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| UnknownVariant {
            kind: "pipeline step status",
            found: s.to_string(),
            allowed: &["pending", "running", "succeeded", "failed", "skipped"],
        })
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepState {
    /// Step name, unique in its pipeline.
    pub name: String,
    /// `build`, `release` or `deploy`.
    pub action: String,
    /// Position in execution order, from 0.
    pub position: u32,
    /// Steps that must succeed first.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The environment of a deploy step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub status: StepStatus,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// What the step is doing or waiting for right now (running steps).
    #[serde(default)]
    pub detail: Option<String>,
    /// Why it failed or was skipped.
    #[serde(default)]
    pub error: Option<String>,
    /// A JSON object: `build_id`, `image_digests`, `release_id`, … (see the module docs).
    /// A running step may already carry the ids it created.
    #[serde(default = "empty_object")]
    pub outputs: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl StepState {
    /// A string output, e.g. `build_id`.
    pub fn output_str(&self, key: &str) -> Option<&str> {
        self.outputs.get(key).and_then(|v| v.as_str())
    }
}

/// One run of a manifest pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineRun {
    pub id: String,
    pub project_id: String,
    /// Pipeline name in the manifest.
    pub pipeline: String,
    pub git_sha: Option<String>,
    pub manifest_hash: Option<String>,
    /// Inputs given when it was started (`version`, `release_tag`, `force_rebuild`, …).
    pub inputs: serde_json::Value,
    pub status: PipelineRunStatus,
    /// In execution order.
    pub steps: Vec<StepState>,
    /// Why the run failed: the first failed step and its error.
    pub error_message: Option<String>,
    /// User id of whoever started it; `None` for the system.
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl PipelineRun {
    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&StepState> {
        self.steps.iter().find(|s| s.name == name)
    }
}

/// A request to start a pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartPipeline {
    /// Project id, slug or name.
    pub project: String,
    /// Pipeline name; by default the manifest's only pipeline, else the one
    /// called `deploy` or `release`.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// A full 40-hex commit sha, or a branch or tag to resolve (default: the
    /// project's default branch).
    #[serde(default, alias = "ref")]
    pub git_sha: Option<String>,
    /// Hash of the manifest at that commit; when given it must match.
    #[serde(default)]
    pub manifest_hash: Option<String>,
    /// A JSON object handed to the steps: `version` (image and release tag),
    /// `release_tag`, `force_rebuild`, `build_id` / `release_id` for pipelines
    /// that start after a build or release.
    #[serde(default)]
    pub inputs: Option<serde_json::Value>,
}

/// A page of pipeline runs, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineRunPage {
    pub items: Vec<PipelineRun>,
    /// `created_at` and id of the last item, to ask for the next page; `None` at the end.
    pub next: Option<PipelineCursor>,
}

/// Keyset cursor of the pipeline runs list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineCursor {
    pub created_at: DateTime<Utc>,
    pub id: String,
}

/// Filters and paging of the pipeline runs list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineListQuery {
    #[serde(default)]
    pub before: Option<PipelineCursor>,
    /// Page size, 1–200 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_statuses_round_trip() {
        for s in StepStatus::ALL {
            assert_eq!(s.as_str().parse::<StepStatus>(), Ok(*s));
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        assert!("done".parse::<StepStatus>().is_err());
        assert!(StepStatus::Skipped.is_terminal() && !StepStatus::Running.is_terminal());
    }

    #[test]
    fn a_stored_step_without_optional_fields_decodes() {
        let s: StepState = serde_json::from_value(serde_json::json!({
            "name": "build", "action": "build", "position": 0, "status": "pending"
        }))
        .unwrap();
        assert_eq!(s.outputs, serde_json::json!({}));
        assert_eq!(s.output_str("build_id"), None);
    }
}
