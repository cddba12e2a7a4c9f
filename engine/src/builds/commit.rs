//! One commit and its manifest, resolved for a request: the ref checked and
//! resolved (empty: the project's default branch), the manifest at that
//! commit read and parsed, its hash checked against the one a request gives,
//! and, once the caller's own checks pass, the manifest's environments synced
//! and the manifest recorded. A build request ([`super::create`]) and a
//! pipeline start ([`crate::pipeline`]) both go through here, so a commit is
//! accepted or refused in the same words whichever asks.

use slipway_model::build::{is_git_sha, is_manifest_hash};
use slipway_model::manifest::{self, Manifest, MANIFEST_PATH};
use slipway_model::project::Project;
use slipway_model::{AppError, FieldProblem};

use super::workspace;
use crate::error::Result;
use crate::store::Store;

/// Where the manifest of a commit is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestSource {
    /// Always through git: the ref is resolved (a full sha is checked to be in
    /// the repository) and the manifest read at it. A build checks the commit
    /// out anyway, so it asks the repository.
    Repository,
    /// A full sha whose manifest is recorded needs no git: a pipeline may
    /// deploy an imported build whose commit is not in this repository.
    /// Anything else is read through git and then recorded.
    RecordedFirst,
}

/// A commit and its manifest, read but not yet recorded.
#[derive(Debug, Clone)]
pub struct ResolvedCommit {
    /// The commit (40 lowercase hex digits).
    pub sha: String,
    /// The manifest's canonical hash.
    pub hash: String,
    /// The manifest, parsed.
    pub manifest: Manifest,
    /// The manifest's text when it is not recorded yet (read from the repository).
    unrecorded: Option<String>,
}

/// `git_ref` trimmed, or the project's default branch when it is empty.
pub fn ref_or_default<'a>(git_ref: Option<&'a str>, project: &'a Project) -> &'a str {
    git_ref.map(str::trim).filter(|r| !r.is_empty()).unwrap_or(&project.default_branch)
}

/// The problem with a given manifest hash, if it is not 64 lowercase hex characters.
pub fn manifest_hash_problem(hash: Option<&str>) -> Option<FieldProblem> {
    hash.filter(|h| !is_manifest_hash(h))
        .map(|_| FieldProblem { field: "manifest_hash".into(), message: "must be 64 lowercase hex characters".into() })
}

/// The problem with `git_ref` (reported as `field`), if it looks like a full
/// sha but is not lowercase hex.
pub fn ref_problem(git_ref: &str, field: &str) -> Option<FieldProblem> {
    (git_ref.len() == 40 && git_ref.chars().all(|c| c.is_ascii_hexdigit()) && !is_git_sha(git_ref))
        .then(|| FieldProblem { field: field.into(), message: "a full git sha must be lowercase hex".into() })
}

impl ResolvedCommit {
    /// Resolves `git_ref` (already checked with [`ref_problem`]) of `project`
    /// and reads and parses the manifest at that commit from `source`. A ref
    /// that does not resolve, a commit without a manifest or one that does
    /// not parse is a 422 naming `field` (the manifest's own problems name
    /// their paths).
    pub async fn resolve(store: &Store, project: &Project, git_ref: &str, field: &str, source: ManifestSource) -> Result<Self> {
        let git = workspace::Git::for_project(store, project).await.map_err(|e| AppError::invalid(field, e.message))?;
        let sha = if source == ManifestSource::RecordedFirst && is_git_sha(git_ref) {
            git_ref.to_string()
        } else {
            git.resolve_ref(&project.repo_url, git_ref).await.map_err(|e| AppError::invalid(field, e.message))?
        };
        if source == ManifestSource::RecordedFirst {
            if let Some((hash, content)) = store.manifest_content(&project.id, &sha).await? {
                let manifest = manifest::parse(&content).map_err(AppError::from)?;
                return Ok(ResolvedCommit { sha, hash, manifest, unrecorded: None });
            }
        }
        let content = git
            .read_file_at(&project.repo_url, &sha, MANIFEST_PATH)
            .await
            .map_err(|e| AppError::invalid(field, e.message))?
            .ok_or_else(|| AppError::invalid(field, format!("commit {sha} has no {MANIFEST_PATH}")))?;
        let manifest = manifest::parse(&content).map_err(AppError::from)?;
        Ok(ResolvedCommit { sha, hash: manifest.canonical_hash(), manifest, unrecorded: Some(content) })
    }

    /// A 422 on `manifest_hash` when a hash is given and is not this manifest's.
    pub fn check_hash(&self, given: Option<&str>) -> Result<()> {
        match given {
            Some(given) if given != self.hash => Err(AppError::invalid(
                "manifest_hash",
                format!("does not match the manifest at {}: given {given}, manifest has {}", self.sha, self.hash),
            )
            .into()),
            _ => Ok(()),
        }
    }

    /// Joins the manifest's environments to the project's promotion path
    /// (refusing, before anything is recorded, a manifest that would loosen
    /// an existing gate or target) and records the manifest when it is new.
    pub async fn record(&self, store: &Store, project: &Project) -> Result<()> {
        if !self.manifest.environments.is_empty() {
            crate::release::sync_environments_from_manifest(store, &project.id, &self.manifest).await?;
        }
        if let Some(content) = &self.unrecorded {
            let parsed_json = serde_json::from_str::<serde_json::Value>(&self.manifest.canonical_json())
                .unwrap_or_else(|_| serde_json::json!({}));
            store.record_manifest(&project.id, &self.sha, &self.hash, content, &parsed_json).await?;
        }
        Ok(())
    }
}
