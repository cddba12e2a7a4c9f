//! Releases (`rel_…`), environments (`env_…`), deployments (`dep_…`) and their
//! approvals, the promotion board and the pre-promotion diff, as the API
//! exchanges them.
//!
//! A release is an immutable snapshot: a commit, a manifest hash and one
//! `sha256:` digest per service, taken from a completed build's artifacts.
//! A deployment applies exactly those digests to one environment; approvals of
//! a gated environment are bound to the digests they were given for (see
//! [`digests_hash`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::build::BuildArgs;
use crate::error::{AppError, FieldProblem};
use crate::manifest::MAX_WAIT_TIMER_SECONDS;
use crate::project::Project;
use crate::status::{ApprovalDecision, DeploymentStatus, UnknownVariant};

/// Service name → `sha256:…` image digest.
pub type ImageDigests = BTreeMap<String, String>;

// ---------------------------------------------------------------------------
// Releases
// ---------------------------------------------------------------------------

/// An immutable deployable snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub id: String,
    pub project_id: String,
    pub build_id: String,
    pub git_sha: String,
    pub manifest_hash: String,
    /// Service → `sha256:…` digest, from the build's artifacts.
    pub image_digests: ImageDigests,
    pub version: Option<String>,
    /// Unique in the project and never changed; `r<N>` when none was given.
    pub tag: Option<String>,
    pub notes: Option<String>,
    /// User id; `None` for the system (e.g. an automatic release).
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Names of the environments currently running this release, in promotion order.
    #[serde(default)]
    pub deployed_to: Vec<String>,
}

/// A request to create a release from a completed build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRelease {
    /// Project id, slug or name.
    pub project: String,
    /// The build (`bld_…`) whose newest completed run's artifacts are released.
    pub build: String,
    /// Release tag; defaults to the version, else `r<N>`.
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// Whether `tag` is an acceptable release tag: `[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'+' | b'-'))
}

impl NewRelease {
    /// Trims the optional fields and checks them, reporting every problem at once.
    pub fn normalized(&self) -> Result<NewRelease, AppError> {
        let clean = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let (tag, version, notes) = (clean(&self.tag), clean(&self.version), clean(&self.notes));
        let mut problems = Vec::new();
        if self.build.trim().is_empty() {
            problems.push(problem("build", "is required: the id of a completed build (bld_…)"));
        }
        if let Some(t) = &tag {
            if !is_valid_tag(t) {
                problems.push(problem(
                    "tag",
                    &format!("`{t}` is not a valid tag: 1-128 characters of letters, digits, `_ . + -`, not starting with `.`, `+` or `-`"),
                ));
            }
        }
        if let Some(v) = &version {
            if v.chars().count() > 128 {
                problems.push(problem("version", "must be at most 128 characters"));
            } else if tag.is_none() && !is_valid_tag(v) {
                problems.push(problem("version", &format!("`{v}` cannot be used as the tag; give a tag explicitly")));
            }
        }
        if notes.as_ref().is_some_and(|n| n.chars().count() > 10_000) {
            problems.push(problem("notes", "must be at most 10000 characters"));
        }
        if !problems.is_empty() {
            return Err(AppError::invalid_fields(problems));
        }
        Ok(NewRelease { project: self.project.trim().to_string(), build: self.build.trim().to_string(), tag, version, notes })
    }
}

/// Keyset cursor of the releases list (newest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseCursor {
    pub created_at: DateTime<Utc>,
    pub id: String,
}

/// Paging of the releases list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseListQuery {
    /// `created_at` and `id` of the last item of the previous page.
    #[serde(default)]
    pub before: Option<ReleaseCursor>,
    /// Page size, 1–200 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A page of releases and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePage {
    pub items: Vec<Release>,
    pub next: Option<ReleaseCursor>,
}

/// SHA-256 (64 lowercase hex) of the canonical JSON of a digest map: keys
/// sorted, no whitespace. Approvals store it, and only count while it equals
/// the hash of the deployment's digests.
pub fn digests_hash(digests: &ImageDigests) -> String {
    // A BTreeMap serialises with sorted keys and serde_json writes no whitespace.
    let mut canonical = String::from("{");
    for (i, (k, v)) in digests.iter().enumerate() {
        if i > 0 {
            canonical.push(',');
        }
        canonical.push_str(&serde_json::Value::String(k.clone()).to_string());
        canonical.push(':');
        canonical.push_str(&serde_json::Value::String(v.clone()).to_string());
    }
    canonical.push('}');
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Whether `s` is `sha256:` followed by 64 lowercase hex digits.
pub fn is_image_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

// ---------------------------------------------------------------------------
// Environments
// ---------------------------------------------------------------------------

/// One stop on a project's promotion path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    pub id: String,
    pub project_id: String,
    pub name: String,
    /// Order on the promotion path, from 0.
    pub position: u32,
    /// Approvals needed before a deployment runs; 0 means no gate.
    pub approval_required: u32,
    /// Usernames who may approve (and then the only ones); empty means any
    /// user the caller says may approve (project approvers, admins).
    pub approvers: Vec<String>,
    /// Delay after the gate is satisfied before the deployment starts.
    pub wait_timer_seconds: u64,
    /// `{"kind": "docker"}` or `{"kind": "kubernetes", "namespace": …}`.
    pub deploy_target: serde_json::Value,
}

/// Create or update an environment from the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentInput {
    /// `[a-z][a-z0-9-]{0,62}`.
    pub name: String,
    /// Where on the promotion path; `None` appends (create) or keeps (update).
    #[serde(default)]
    pub position: Option<u32>,
    #[serde(default)]
    pub approval_required: u32,
    #[serde(default)]
    pub approvers: Vec<String>,
    #[serde(default)]
    pub wait_timer_seconds: u64,
    /// Default `{"kind": "docker"}`.
    #[serde(default)]
    pub deploy_target: Option<serde_json::Value>,
}

/// Whether `name` is an acceptable environment name.
pub fn is_valid_environment_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn is_valid_username(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'@' | b'-'))
}

impl EnvironmentInput {
    /// Checks every field and normalises the approvers (trimmed, sorted,
    /// de-duplicated case-insensitively) and the target.
    pub fn normalized(&self) -> Result<EnvironmentInput, AppError> {
        AppError::check_list_len("approvers", self.approvers.len(), crate::limits::MAX_LIST_ITEMS)?;
        let mut problems = Vec::new();
        let name = self.name.trim().to_string();
        if !is_valid_environment_name(&name) {
            problems.push(problem("name", "must be 1-63 characters of a-z, 0-9 and `-`, starting with a letter"));
        }
        let mut approvers: Vec<String> = Vec::new();
        for (i, a) in self.approvers.iter().enumerate() {
            let a = a.trim();
            if !is_valid_username(a) {
                problems.push(problem(&format!("approvers[{i}]"), &format!("`{a}` is not a valid username")));
            } else if !approvers.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                approvers.push(a.to_string());
            }
        }
        approvers.sort_by_key(|a| a.to_lowercase());
        if self.approval_required > 100 {
            problems.push(problem("approval_required", "must be at most 100"));
        }
        if !approvers.is_empty() && self.approval_required == 0 {
            problems.push(problem("approval_required", "must be at least 1 when approvers are named"));
        } else if !approvers.is_empty() && self.approval_required as usize > approvers.len() {
            problems.push(problem(
                "approval_required",
                &format!("{} approvals are required but only {} approvers are named", self.approval_required, approvers.len()),
            ));
        }
        if self.wait_timer_seconds > MAX_WAIT_TIMER_SECONDS {
            problems.push(problem("wait_timer_seconds", &format!("must be at most {MAX_WAIT_TIMER_SECONDS} (30 days)")));
        }
        let deploy_target = match &self.deploy_target {
            None => serde_json::json!({"kind": "docker"}),
            Some(t) => match t.get("kind").and_then(|k| k.as_str()) {
                Some("docker") | Some("kubernetes") if t.is_object() => t.clone(),
                _ => {
                    problems.push(problem("deploy_target", "must be an object with kind `docker` or `kubernetes`"));
                    t.clone()
                }
            },
        };
        if self.position.is_some_and(|p| p > 1000) {
            problems.push(problem("position", "must be at most 1000"));
        }
        if !problems.is_empty() {
            return Err(AppError::invalid_fields(problems));
        }
        Ok(EnvironmentInput {
            name,
            position: self.position,
            approval_required: self.approval_required,
            approvers,
            wait_timer_seconds: self.wait_timer_seconds,
            deploy_target: Some(deploy_target),
        })
    }
}

// ---------------------------------------------------------------------------
// Deployments
// ---------------------------------------------------------------------------

/// Why a deployment was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentKind {
    /// A release, digests or image tag sent to an environment.
    Deploy,
    /// The release running in one environment sent to another.
    Promote,
    /// The environment's previous successful release sent back.
    Rollback,
}

impl DeploymentKind {
    /// The name stored and sent: `deploy`, `promote` or `rollback`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Promote => "promote",
            Self::Rollback => "rollback",
        }
    }
}

impl fmt::Display for DeploymentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeploymentKind {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deploy" => Ok(Self::Deploy),
            "promote" => Ok(Self::Promote),
            "rollback" => Ok(Self::Rollback),
            _ => Err(UnknownVariant { kind: "deployment kind", found: s.to_string(), allowed: &["deploy", "promote", "rollback"] }),
        }
    }
}

/// One approval or rejection of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalView {
    pub user_id: String,
    pub username: String,
    pub decision: ApprovalDecision,
    pub at: DateTime<Utc>,
    /// Whether it was given for the deployment's current digests (only then does it count).
    pub valid: bool,
}

/// A container a deployment runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerView {
    pub service: String,
    /// Stable name, `slipway-<project>-<environment>-<service>`.
    pub name: String,
    /// The reference it was created from, pinned by digest (`repo@sha256:…`).
    pub image: String,
    pub digest: String,
    pub container_id: String,
}

/// A deployment of a release (or of digests) to one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    pub project_id: String,
    /// Environment name.
    pub environment: String,
    pub environment_id: String,
    pub release_id: Option<String>,
    pub release_tag: Option<String>,
    /// Exactly what is (to be) applied: service → digest.
    pub image_digests: ImageDigests,
    pub git_sha: Option<String>,
    pub status: DeploymentStatus,
    pub kind: DeploymentKind,
    /// Name of the environment a promotion came from.
    pub promoted_from: Option<String>,
    /// User id of the requester; `None` for the system.
    pub requested_by: Option<String>,
    /// Username of the requester.
    pub requested_by_name: Option<String>,
    pub direct: bool,
    pub created_at: DateTime<Utc>,
    /// When the gate was satisfied (the wait timer runs from here).
    pub approved_at: Option<DateTime<Utc>>,
    /// When a satisfied gate lets it start (approved_at + wait timer).
    pub starts_after: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    /// Decisions so far, oldest first.
    pub approvals: Vec<ApprovalView>,
    /// The environment's gate: approvals required in total (0: no gate).
    pub approvals_required: u32,
    /// How many more valid approvals are needed (0 once the count is reached).
    pub approvals_needed: u32,
    /// Named approvers who have not approved yet while the gate still needs
    /// named approvals; empty when any user with the approver role will do.
    pub approvers_still_needed: Vec<String>,
    /// Containers it started (set when it succeeded).
    pub containers: Vec<ContainerView>,
    /// The pipeline run (`pip_…`) this deployment belongs to: a `git_sha` +
    /// `manifest_hash` request records the deployment as `pending` (no digests
    /// yet) and starts this run; its deploy step fills in the release.
    #[serde(default)]
    pub pipeline_run_id: Option<String>,
}

/// One column of the promotion board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardColumn {
    pub environment: Environment,
    /// Newest succeeded deployment: what runs there now.
    pub current: Option<Deployment>,
    /// Requested, awaiting approval or deploying, newest first.
    pub pending: Vec<Deployment>,
    /// The last 10 finished deployments, newest first.
    pub history: Vec<Deployment>,
}

/// The Environments page: one column per environment in promotion order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    pub project: Project,
    pub environments: Vec<BoardColumn>,
}

/// A deploy request, in every shape of the deploy model.
///
/// Exactly one source: `release` (tag or `rel_…` id; also read from
/// `inputs.release_tag` / `inputs.release_id`), `image_digests`, `image_tag`,
/// or `git_sha` (+ `manifest_hash`), which runs the manifest's pipeline unless
/// `direct` is set (then the newest release of that commit is deployed).
/// `direct` bypasses the pipeline, never the approval gate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRequest {
    pub environment: String,
    #[serde(default)]
    pub release: Option<String>,
    #[serde(default)]
    pub image_digests: Option<ImageDigests>,
    #[serde(default)]
    pub image_tag: Option<String>,
    #[serde(default)]
    pub git_sha: Option<String>,
    #[serde(default)]
    pub manifest_hash: Option<String>,
    #[serde(default)]
    pub direct: bool,
    #[serde(default)]
    pub inputs: Option<serde_json::Value>,
}

/// One service in a pre-promotion diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDiff {
    pub service: String,
    pub from_digest: Option<String>,
    pub to_digest: Option<String>,
    pub changed: bool,
}

/// What promoting `from_env` to `to_env` would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionDiff {
    pub from_env: String,
    pub to_env: String,
    pub from_release: Option<String>,
    pub to_release: Option<String>,
    pub services: Vec<ServiceDiff>,
    pub from_sha: Option<String>,
    pub to_sha: Option<String>,
    pub build_args_from: Option<BuildArgs>,
    pub build_args_to: Option<BuildArgs>,
}

impl PromotionDiff {
    /// Whether anything differs (digests or commit).
    pub fn has_changes(&self) -> bool {
        self.services.iter().any(|s| s.changed) || self.from_sha != self.to_sha
    }
}

fn problem(field: &str, message: &str) -> FieldProblem {
    FieldProblem { field: field.to_string(), message: message.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    /// Approvals store this hash in the database: changing how it is computed
    /// would silently invalidate every recorded approval, so it is pinned to a
    /// value computed outside Rust (`printf '{"api":"sha256:a…","web":"sha256:b…"}' | sha256sum`).
    #[test]
    fn the_digests_hash_is_the_sha256_of_the_compact_sorted_json() {
        let mut digests = ImageDigests::new();
        digests.insert("web".into(), d('b'));
        digests.insert("api".into(), d('a'));
        assert_eq!(digests_hash(&digests), "33a820ef0262d488da502c7f2ea7333bbef92af77c514802743bd6e7d13f5a04");
        let mut changed = digests.clone();
        changed.insert("web".into(), d('c'));
        assert_ne!(digests_hash(&changed), digests_hash(&digests));
        let mut more = digests.clone();
        more.insert("worker".into(), d('b'));
        assert_ne!(digests_hash(&more), digests_hash(&digests));
    }

    /// Keys and values are JSON-escaped: a value that smuggles in a quote
    /// cannot make one map hash like another.
    #[test]
    fn the_digests_hash_cannot_be_forged_with_quotes_in_names_or_values() {
        let plain: ImageDigests = [("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())].into();
        assert_eq!(digests_hash(&plain), "21f76dfbfe6dfe21f762080ef484112cf2952974cef30741fd1931e1c6d92112");
        let forged: ImageDigests = [("a".to_string(), "1\",\"b\":\"2".to_string())].into();
        assert_ne!(digests_hash(&forged), digests_hash(&plain));
        let forged_key: ImageDigests = [("a\":\"1\",\"b".to_string(), "2".to_string())].into();
        assert_ne!(digests_hash(&forged_key), digests_hash(&plain));
    }

    #[test]
    fn tags_follow_the_database_pattern() {
        for ok in ["v1.0.0", "r12", "_x", "1.2.3+build.4", "release-2026"] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in ["", "-x", ".x", "a b", "v1/2", &"a".repeat(129)] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn a_new_release_reports_every_bad_field() {
        let err = NewRelease { project: "p".into(), build: " ".into(), tag: Some("-bad".into()), ..Default::default() }
            .normalized()
            .unwrap_err();
        let fields: Vec<_> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["build", "tag"]);
    }

    #[test]
    fn environment_input_is_normalised() {
        let ok = EnvironmentInput {
            name: "production".into(),
            position: None,
            approval_required: 2,
            approvers: vec!["Bob".into(), "alice".into(), "bob".into()],
            wait_timer_seconds: 0,
            deploy_target: None,
        }
        .normalized()
        .unwrap();
        assert_eq!(ok.approvers, ["alice", "Bob"]);
        assert_eq!(ok.deploy_target, Some(serde_json::json!({"kind": "docker"})));
        let err = EnvironmentInput { name: "Prod".into(), deploy_target: Some(serde_json::json!({"kind": "ftp"})), ..ok }
            .normalized()
            .unwrap_err();
        let fields: Vec<_> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["name", "deploy_target"]);
    }

    #[test]
    fn deployment_kinds_round_trip() {
        for k in [DeploymentKind::Deploy, DeploymentKind::Promote, DeploymentKind::Rollback] {
            assert_eq!(k.as_str().parse::<DeploymentKind>(), Ok(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert!("redeploy".parse::<DeploymentKind>().is_err());
    }
}
