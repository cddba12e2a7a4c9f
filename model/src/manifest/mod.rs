//! The project manifest: what to build, where to push it, and how releases are promoted.
//!
//! The manifest lives at [`MANIFEST_PATH`] (`.slipway/manifest.yaml`) in the repository.
//! Two spellings are accepted and normalised into one [`Manifest`]:
//!
//! ```yaml
//! # Eve shape
//! registry: slipway                # or "eve" / "local" / "native", "none", or {host, namespace, auth}
//! services:
//!   api:
//!     build:
//!       context: ./apps/api
//!       dockerfile: Dockerfile      # relative to the context (a path from the repo root
//!       args: { VERSION: "1.2" }    # that lies inside the context is accepted too)
//!       target: release
//! environments:
//!   - name: staging
//!   - name: production
//!     approval: { required: 1, approvers: [alice, bob] }
//!     target: { kind: kubernetes, namespace: prod }
//! pipelines:
//!   deploy:
//!     steps:
//!       - name: build
//!         build: {}
//!       - name: release
//!         depends_on: [build]
//!         release: { tag: v1.0.0 }
//!       - name: ship
//!         depends_on: [release]
//!         deploy: { environment: staging }    # or Eve's `action: {type: deploy, env_name: staging}`
//! ```
//!
//! ```yaml
//! # Convox shorthand
//! services:
//!   api:
//!     build: ./apps/api
//!     manifest: Dockerfile.production
//! ```
//!
//! [`parse`] walks the YAML tree by hand so that every problem is reported with its path
//! (`services.api.build.context: ...`) and all problems are collected in one pass.
//! [`check_paths`] checks build contexts and Dockerfiles against a [`RepoView`], and
//! [`validate`] does both. [`Manifest::canonical_hash`] identifies the *meaning* of a
//! manifest: formatting, comments, key order and the choice of spelling do not change it.
//!
//! Keys starting with `x-` (at the top level, in services, environments and steps) are
//! ignored, as in Compose files, and do not affect the hash.
//!
//! One file a job: `types` (the normalised manifest), `problems` (what is wrong and
//! where), `parse` (the hand parser, one file per section of the document), `rules`
//! (names, ports, image references), `paths` (build contexts and Dockerfiles inside the
//! repository), `suggest` ("did you mean"), and `canonical` (the canonical JSON and
//! hash). Everything public is re-exported here.

mod canonical;
mod parse;
mod paths;
mod problems;
mod rules;
mod suggest;
#[cfg(test)]
mod tests;
mod types;

pub use problems::{ManifestErrors, Problem};
pub use types::*;

use parse::parse_partial;
use problems::join_key;


/// Where the manifest lives, relative to the repository root.
pub const MANIFEST_PATH: &str = ".slipway/manifest.yaml";

/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

/// Most YAML nodes a manifest may have, counting each use of an alias as its whole
/// anchored node again (so an alias bomb stops here, before anything is expanded).
pub const MAX_MANIFEST_NODES: usize = 10_000;

/// Deepest nesting of mappings and lists a manifest may have.
pub const MAX_MANIFEST_DEPTH: usize = 32;

/// Dockerfile name used when a service does not name one.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";

/// Secret holding the registry user name when `registry.auth.username_secret` is not given.
pub const DEFAULT_USERNAME_SECRET: &str = "REGISTRY_USERNAME";

/// Secret holding the registry token when `registry.auth.token_secret` is not given.
pub const DEFAULT_TOKEN_SECRET: &str = "REGISTRY_PASSWORD";

/// Longest approval wait timer accepted (30 days), in seconds.
pub const MAX_WAIT_TIMER_SECONDS: u64 = 30 * 24 * 60 * 60;

/// Parses and checks a manifest, reporting every problem found (not just the first).
pub fn parse(yaml: &str) -> Result<Manifest, ManifestErrors> {
    let (manifest, problems) = parse_partial(yaml);
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(ManifestErrors(problems))
    }
}

/// The canonical hash of a manifest's text: [`parse`] then [`Manifest::canonical_hash`].
pub fn hash_yaml(yaml: &str) -> Result<String, ManifestErrors> {
    parse(yaml).map(|m| m.canonical_hash())
}

/// Read-only view of a repository checkout, for [`check_paths`].
///
/// Paths are relative to the repository root, normalised (no leading `./`, no `..`),
/// with `/` separators; `.` is the root itself.
pub trait RepoView {
    /// Whether `rel` is a directory.
    fn is_dir(&self, rel: &str) -> bool;
    /// Whether `rel` is a regular file.
    fn is_file(&self, rel: &str) -> bool;
}

/// Checks that every build context is a directory and every Dockerfile a file.
pub fn check_paths(manifest: &Manifest, repo: &dyn RepoView) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, service) in &manifest.services {
        let Some(build) = &service.build else {
            continue;
        };
        let base = join_key(&join_key("services", name), "build");
        let context_ok = repo.is_dir(&build.context);
        if !context_ok {
            problems.push(Problem::new(
                join_key(&base, "context"),
                "directory not found",
            ));
        }
        // Inside a missing context the Dockerfile is missing too; say it once.
        if context_ok || build.dockerfile.starts_with("../") {
            let path = build.dockerfile_path();
            if !repo.is_file(&path) {
                problems.push(Problem::new(
                    join_key(&base, "dockerfile"),
                    format!("file not found (looked for {path})"),
                ));
            }
        }
    }
    problems
}

/// [`parse`] and [`check_paths`] together, reporting every problem of both in one list.
/// Path checks also run on the services that parsed cleanly when others did not.
pub fn validate(yaml: &str, repo: &dyn RepoView) -> Result<Manifest, ManifestErrors> {
    let (manifest, mut problems) = parse_partial(yaml);
    problems.extend(check_paths(&manifest, repo));
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(ManifestErrors(problems))
    }
}
