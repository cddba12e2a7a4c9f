//! Builds: the spec (`bld_…`), its runs (`run_…`) and their artifacts, as the
//! API exchanges them, and the validation of build requests.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, FieldProblem};
use crate::status::BuildRunStatus;

/// Build arguments Slipway computes for a build when they are requested by name.
pub const MANAGED_BUILD_ARGS: &[&str] = &[
    "BUILD_APP",
    "BUILD_AUTH",
    "BUILD_DEVELOPMENT",
    "BUILD_GENERATION",
    "BUILD_ID",
    "BUILD_MANIFEST",
    "BUILD_RACK",
    "BUILD_GIT_SHA",
];

/// A request to create a build spec (and, by default, to run it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewBuild {
    /// Project id, slug or name.
    pub project: String,
    /// A branch, tag, short sha or full 40-hex sha; resolved to a full sha.
    /// Defaults to the project's default branch.
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    /// Hash of the manifest at that sha; when given it must match.
    #[serde(default)]
    pub manifest_hash: Option<String>,
    /// Services to build; absent or null means all services with a build section.
    #[serde(default)]
    pub services: Option<Vec<String>>,
    #[serde(default)]
    pub inputs: Option<serde_json::Value>,
    /// Registry override: `"none"`, `"local"`, or `{host, namespace?, auth?}`.
    #[serde(default)]
    pub registry: Option<serde_json::Value>,
    #[serde(default)]
    pub cache: Option<serde_json::Value>,
    /// Managed args by name (`BUILD_APP`) and custom ones as `KEY=VALUE`.
    #[serde(default)]
    pub build_args: Vec<String>,
    /// Build even when a matching successful run exists.
    #[serde(default)]
    pub force_rebuild: bool,
    /// Same key, same project: the same spec is returned instead of a new one.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Tag artifacts `:local` (development builds) instead of `:sha-<12 hex>`.
    #[serde(default)]
    pub development: bool,
    /// Queue a run right away (default true).
    #[serde(default = "yes")]
    pub run: bool,
    /// Per-build timeout in seconds (default from the server's settings).
    #[serde(default)]
    pub timeout_seconds: Option<u32>,
}

fn yes() -> bool {
    true
}

/// Build args split into the managed names requested and the custom values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildArgs {
    #[serde(default)]
    pub managed: Vec<String>,
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
}

fn valid_arg_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

/// Parses `BUILD_APP` / `KEY=VALUE` items, naming each bad one by its index.
pub fn parse_build_args(items: &[String]) -> Result<BuildArgs, AppError> {
    let mut args = BuildArgs::default();
    let mut problems = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("build_args[{i}]");
        match item.split_once('=') {
            Some((key, value)) => {
                let key = key.trim();
                if !valid_arg_name(key) {
                    problems.push(FieldProblem { field, message: format!("`{key}` is not a valid build argument name") });
                } else if MANAGED_BUILD_ARGS.contains(&key) {
                    problems.push(FieldProblem {
                        field,
                        message: format!("`{key}` is managed by Slipway: request it by name, without a value"),
                    });
                } else {
                    args.custom.insert(key.to_string(), value.to_string());
                }
            }
            None => {
                let name = item.trim();
                if MANAGED_BUILD_ARGS.contains(&name) {
                    if !args.managed.iter().any(|m| m == name) {
                        args.managed.push(name.to_string());
                    }
                } else {
                    problems.push(FieldProblem {
                        field,
                        message: format!(
                            "`{name}` is not a managed build argument ({}); custom arguments are KEY=VALUE",
                            MANAGED_BUILD_ARGS.join(", ")
                        ),
                    });
                }
            }
        }
    }
    args.managed.sort();
    if problems.is_empty() {
        Ok(args)
    } else {
        Err(AppError::invalid_fields(problems))
    }
}

/// Whether `s` is a full lowercase 40-hex git sha.
pub fn is_git_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `s` is a 64-hex manifest hash.
pub fn is_manifest_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// An immutable record of build inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildSpec {
    pub id: String,
    pub project_id: String,
    pub project_slug: String,
    pub git_sha: String,
    pub manifest_hash: String,
    pub services: Option<Vec<String>>,
    pub inputs: serde_json::Value,
    pub registry: Option<serde_json::Value>,
    pub cache: Option<serde_json::Value>,
    pub build_args: BuildArgs,
    pub force_rebuild: bool,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One execution of a spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRun {
    pub id: String,
    pub build_id: String,
    pub seq: i32,
    pub status: BuildRunStatus,
    pub backend: Option<String>,
    pub runner_ref: Option<String>,
    pub error_message: Option<String>,
    pub error_code: Option<String>,
    pub failed_step: Option<String>,
    /// Set when this run reused the artifacts of an earlier successful run.
    pub reused_from_run_id: Option<String>,
    pub cancel_requested: bool,
    /// This run builds even when matching artifacts exist.
    pub force_rebuild: bool,
    pub attempt: i32,
    pub timeout_seconds: Option<i32>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// An image a run produced (or reused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildArtifact {
    pub id: String,
    pub run_id: String,
    pub service_name: String,
    pub image_ref: String,
    /// `sha256:…`: the registry's manifest digest (the local image id when pushing is disabled).
    pub digest: String,
    pub platforms: Vec<String>,
    pub size_bytes: Option<i64>,
}

/// A spec with everything known about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildDetail {
    pub spec: BuildSpec,
    /// Newest first.
    pub runs: Vec<BuildRun>,
    /// Of the newest completed run.
    pub artifacts: Vec<BuildArtifact>,
}

/// A line of the Builds list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildSummary {
    pub id: String,
    pub project_slug: String,
    pub git_sha: String,
    pub services: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    /// The newest run's status, if any run exists.
    pub status: Option<BuildRunStatus>,
    pub run_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub reused_from_run_id: Option<String>,
    /// Tag of a release made from this build, if any.
    pub release_tag: Option<String>,
}

/// Filters and keyset cursor of the Builds list (newest first).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildListQuery {
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub status: Option<BuildRunStatus>,
    /// `created_at` and `id` of the last item of the previous page.
    #[serde(default)]
    pub before: Option<BuildCursor>,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildCursor {
    pub created_at: DateTime<Utc>,
    pub id: String,
}

/// A page of builds and the cursor for the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildPage {
    pub items: Vec<BuildSummary>,
    pub next: Option<BuildCursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_split_managed_and_custom_and_name_bad_items() {
        let ok = parse_build_args(&["BUILD_APP".into(), "FOO=BAR".into(), "VERSION=1.2=3".into(), "BUILD_APP".into()]).unwrap();
        assert_eq!(ok.managed, ["BUILD_APP"]);
        assert_eq!(ok.custom["VERSION"], "1.2=3");
        let err = parse_build_args(&["NOPE".into(), "BUILD_ID=x".into(), "1X=2".into()]).unwrap_err();
        let fields: Vec<_> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["build_args[0]", "build_args[1]", "build_args[2]"]);
    }

    #[test]
    fn shas_and_hashes_are_lowercase_hex_of_the_right_length() {
        assert!(is_git_sha(&"a".repeat(40)));
        assert!(!is_git_sha(&"A".repeat(40)));
        assert!(!is_git_sha("abc"));
        assert!(is_manifest_hash(&"0".repeat(64)));
    }

    #[test]
    fn new_build_runs_by_default() {
        let b: NewBuild = serde_json::from_str(r#"{"project":"demo"}"#).unwrap();
        assert!(b.run);
        assert!(!b.force_rebuild);
    }
}

/// What importing an exported build created in the target project: the build
/// (spec, its completed run, the artifacts with the digests pushed to the
/// target's registry) and the release referencing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedBuild {
    pub build: BuildDetail,
    pub release: crate::release::Release,
}
