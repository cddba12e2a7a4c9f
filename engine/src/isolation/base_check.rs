//! The base-image check a run passes before BuildKit starts: every image
//! a service's Dockerfile refers to must be an image of the project itself
//! (its namespace of Slipway's registry or its local namespace, as
//! [`slipway_model::image_name`] defines them), a stage of the same Dockerfile, or
//! on the allowed-images list for the project. A refusal names the file,
//! the line, the reference and the rule.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path};

use slipway_model::image_name::{is_project_image, SlipwayRegistry};
use slipway_model::manifest::Registry;
use slipway_model::status::ErrorClass;

use super::dockerfile::{image_uses, Resolved};
use super::reference::{ImagePattern, ImageRef};
use crate::builds::BuildFailure;

/// What a project's builds may use.
#[derive(Debug, Clone)]
pub struct BaseImagePolicy {
    pub project_slug: String,
    /// Slipway's registry (`host:port`), whose `<slug>/…` repositories are the project's own.
    pub registry_host: Option<String>,
    /// Entries of the allowed-images list that apply to the project.
    pub allowed: Vec<ImagePattern>,
}

/// One reference the check refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `<context>/<Dockerfile>` as the manifest names it, e.g. `api/Dockerfile`.
    pub dockerfile: String,
    /// 1-based; 0 for a build arg.
    pub line: usize,
    pub instruction: String,
    /// The reference as written.
    pub written: String,
    /// Why it is refused.
    pub reason: String,
}

impl Violation {
    /// `api/Dockerfile:3`, the place to fix.
    pub fn location(&self) -> String {
        if self.line == 0 {
            format!("{} (build args)", self.dockerfile)
        } else {
            format!("{}:{}", self.dockerfile, self.line)
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} {}: {}", self.location(), self.instruction, self.written, self.reason)
    }
}

impl BaseImagePolicy {
    /// The rule, as refusals state it.
    fn rule(&self) -> String {
        let local = format!("{}/{}/…", slipway_model::image_name::LOCAL_ROOT, self.project_slug);
        let own = match &self.registry_host {
            Some(host) => format!("an image of project {} ({host}/{}/…) or its local images ({local})", self.project_slug, self.project_slug),
            None => format!("an image of project {} ({local})", self.project_slug),
        };
        format!(
            "a build may only use {own}, a stage of the same Dockerfile, or an allowed base image (`slipway base-images list`; an administrator adds one with `slipway base-images add <pattern> [--project {}]`)",
            self.project_slug
        )
    }

    /// Checks one Dockerfile; returns what it refuses (empty: all allowed).
    pub fn check(&self, dockerfile: &str, text: &str, build_args: &BTreeMap<String, String>) -> Vec<Violation> {
        let mut out = Vec::new();
        for u in image_uses(text, build_args) {
            let reason = match &u.resolved {
                Resolved::Scratch | Resolved::Stage(_) => continue,
                Resolved::Unknown(why) => format!("the reference cannot be resolved before the build ({why}); {}", self.rule()),
                Resolved::Image(reference) => match ImageRef::parse(reference) {
                    None => format!("`{reference}` is not a valid image reference"),
                    Some(image) => {
                        // The project's own: its path in Slipway's registry or its local namespace
                        // (not a registry path its manifest declares, which another project may declare too).
                        let slipway = SlipwayRegistry::from_config(self.registry_host.as_deref());
                        let own = is_project_image(reference, &self.project_slug, &Registry::Native, &slipway);
                        if own || self.allowed.iter().any(|p| p.allows(&image)) {
                            continue;
                        }
                        let shown = if reference == &u.written { String::new() } else { format!(" (resolves to {reference})") };
                        format!("not allowed{shown}: {}", self.rule())
                    }
                },
            };
            out.push(Violation { dockerfile: dockerfile.to_string(), line: u.line, instruction: u.instruction, written: u.written, reason });
        }
        out
    }
}

impl BaseImagePolicy {
    /// Checks the Dockerfile `dockerfile` inside a build context tar;
    /// `label` names it in refusals (e.g. `api/Dockerfile`).
    pub fn check_context(&self, label: &str, context_tar: &[u8], dockerfile: &str, build_args: &BTreeMap<String, String>) -> Vec<Violation> {
        match dockerfile_in_context(context_tar, dockerfile) {
            Ok(text) => self.check(label, &text, build_args),
            Err(reason) => vec![Violation { dockerfile: label.to_string(), line: 0, instruction: "Dockerfile".into(), written: dockerfile.to_string(), reason }],
        }
    }
}

/// The Dockerfile's text as it is in the build context sent to BuildKit.
pub fn dockerfile_in_context(context_tar: &[u8], dockerfile: &str) -> Result<String, String> {
    let wanted = normalized(dockerfile);
    let mut archive = tar::Archive::new(context_tar);
    let entries = archive.entries().map_err(|e| format!("reading the build context: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("reading the build context: {e}"))?;
        let path = entry.path().map_err(|e| format!("reading the build context: {e}"))?.to_string_lossy().into_owned();
        if normalized(&path) != wanted {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            return Err(format!("{dockerfile} is not a regular file in the build context (a link cannot be checked)"));
        }
        let mut text = String::new();
        entry.read_to_string(&mut text).map_err(|e| format!("{dockerfile} is not readable text: {e}"))?;
        return Ok(text);
    }
    Err(format!("{dockerfile} is not in the build context"))
}

fn normalized(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

/// How a refusal's message starts (diagnosis recognises it by this).
pub const REFUSAL_PREFIX: &str = "base image check:";

/// A failed check as the run's failure: a `build_error` listing every
/// refused reference; the first one's location is the failed step.
pub fn refusal(violations: &[Violation]) -> BuildFailure {
    let list = violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    let mut f = BuildFailure::new(ErrorClass::BuildError, format!("{REFUSAL_PREFIX} {list}"));
    f.failed_step = violations.first().map(|v| format!("{} {} {}", v.location(), v.instruction, v.written));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> BaseImagePolicy {
        BaseImagePolicy {
            project_slug: "alpha".into(),
            registry_host: Some("127.0.0.1:5000".into()),
            allowed: allowed.iter().map(|p| ImagePattern::parse(p).unwrap()).collect(),
        }
    }

    #[test]
    fn own_images_stages_scratch_and_allowed_images_pass() {
        let df = "FROM slipway/busybox:1 AS base\nFROM 127.0.0.1:5000/alpha/api:sha-1\nCOPY --from=base / /\nFROM scratch\n";
        assert_eq!(policy(&["slipway/busybox:1"]).check("api/Dockerfile", df, &BTreeMap::new()), vec![]);
        let local = "FROM slipway.local/alpha/base:1\nCOPY --from=slipway.local/alpha/tools:sha-1 / /\n";
        assert_eq!(policy(&[]).check("api/Dockerfile", local, &BTreeMap::new()), vec![]);
    }

    #[test]
    fn another_projects_local_image_is_refused() {
        let df = "FROM slipway.local/beta/api:1\n";
        assert_eq!(policy(&[]).check("api/Dockerfile", df, &BTreeMap::new()).len(), 1);
    }

    #[test]
    fn another_projects_image_is_refused_with_line_and_rule() {
        let df = "FROM scratch\n\nFROM 127.0.0.1:5000/beta/api:sha-1\n";
        let v = policy(&[]).check("api/Dockerfile", df, &BTreeMap::new());
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].location(), "api/Dockerfile:3");
        let text = v[0].to_string();
        assert!(text.contains("FROM 127.0.0.1:5000/beta/api:sha-1"), "{text}");
        assert!(text.contains("a build may only use an image of project alpha (127.0.0.1:5000/alpha/…)"), "{text}");
        let f = refusal(&v);
        assert_eq!(f.class, ErrorClass::BuildError);
        assert_eq!(f.failed_step.as_deref(), Some("api/Dockerfile:3 FROM 127.0.0.1:5000/beta/api:sha-1"));
    }

    #[test]
    fn a_build_arg_pointing_elsewhere_is_refused_showing_what_it_resolves_to() {
        let df = "ARG BASE=slipway/busybox:1\nFROM $BASE\n";
        let args = BTreeMap::from([("BASE".to_string(), "127.0.0.1:5000/beta/api:sha-1".to_string())]);
        let v = policy(&["slipway/busybox:1"]).check("Dockerfile", df, &args);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].reason.contains("resolves to 127.0.0.1:5000/beta/api:sha-1"), "{v:?}");
        assert!(policy(&["slipway/busybox:1"]).check("Dockerfile", df, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn the_dockerfile_is_read_from_the_context_tar() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        let body = b"FROM scratch\n";
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "docker/Dockerfile", &body[..]).unwrap();
        let tar = b.into_inner().unwrap();
        assert_eq!(dockerfile_in_context(&tar, "./docker/Dockerfile").unwrap(), "FROM scratch\n");
        assert!(dockerfile_in_context(&tar, "Dockerfile").is_err());
    }
}
