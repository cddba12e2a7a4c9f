//! Build diagnosis: one consolidated view of a build — its spec, every run,
//! its artifacts, the newest run's last log lines — and, when the newest run
//! failed, an explanation: the error class, its cause, an actionable hint, the
//! failed Dockerfile step and stage, the last lines of that stage's output and
//! the facts the class was decided from.
//!
//! The engine computes it (`slipway_engine::build::diagnose`); the server, the
//! dashboard and the CLI (`slipway build diagnose <build_id>`) only show it.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::build::{BuildArtifact, BuildSpec};
use crate::logs::{text_line, LogLine};
use crate::status::{BuildRunStatus, ErrorClass};

/// How many log lines a diagnosis carries: the newest run's last lines, and
/// the last lines of the failed stage.
pub const DIAGNOSIS_LINES: usize = 30;

/// Everything known about a build, and why its newest run failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// The build's inputs: sha, manifest hash, services, registry override…
    pub spec: BuildSpec,
    /// Every run, newest first.
    pub runs: Vec<RunDiagnosis>,
    /// The artifacts of the newest completed run (images and digests).
    pub artifacts: Vec<BuildArtifact>,
    /// The run `last_lines` belong to: the newest run, if there is one.
    pub last_lines_run_id: Option<String>,
    /// The last [`DIAGNOSIS_LINES`] log lines of the newest run, oldest first.
    pub last_lines: Vec<LogLine>,
    /// Why the newest run failed; `None` unless its status is `failed`.
    pub failure: Option<FailureDiagnosis>,
}

/// One run of the build, as the diagnosis lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDiagnosis {
    pub id: String,
    /// Run number within the build, from 1.
    pub seq: i32,
    pub status: BuildRunStatus,
    /// `buildkit` or `legacy`; `None` until a worker claimed the run.
    pub backend: Option<String>,
    /// The worker that ran it (`host:pid:n`).
    pub runner_ref: Option<String>,
    /// How many times a worker claimed the run.
    pub attempt: i32,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// `completed_at - started_at`, once both are known.
    pub duration_ms: Option<i64>,
    /// Set when the run reused the artifacts of an earlier run.
    pub reused_from_run_id: Option<String>,
    /// The error class the runner recorded, for a failed run.
    pub error_class: Option<ErrorClass>,
    /// The Dockerfile step the runner recorded as failed, if any.
    pub failed_step: Option<String>,
}

/// The explanation of a failed run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureDiagnosis {
    /// The failed run (the build's newest run).
    pub run_id: String,
    pub class: ErrorClass,
    /// What went wrong, in one sentence, specific to this run.
    pub cause: String,
    /// What to do about it, naming the service, step, registry host or secrets involved.
    pub hint: String,
    /// The error message the runner recorded, unchanged (secrets masked).
    pub raw_error: String,
    /// The phase the run was in when it failed (`clone`, `build`, `push`…), from the log.
    pub failed_phase: Option<String>,
    /// The service being built or pushed when the run failed, from the log.
    pub service: Option<String>,
    /// The Dockerfile step that failed (or, after a timeout, the one that was running).
    pub failed_step: Option<String>,
    /// The Dockerfile stage of that step, e.g. `build` for `[build 3/5] RUN …`.
    pub failed_stage: Option<String>,
    /// The last [`DIAGNOSIS_LINES`] lines logged under the failed stage (or the
    /// failed step when it has no named stage, or the failing phase when no step failed).
    pub stage_lines: Vec<LogLine>,
    /// The facts the class was decided from, most decisive first.
    pub evidence: Vec<String>,
}

/// The Dockerfile stage named in a BuildKit vertex name: `build` for
/// `[build 3/5] RUN pnpm install`, `stage-1` for `[stage-1 2/3] COPY …`.
/// `None` for a single unnamed stage (`[2/3] RUN …`), internal vertices and
/// names that are not vertex names (the legacy builder's `Step 3/5 : RUN …`
/// carries no stage; the engine finds it from the preceding `FROM … AS`).
pub fn dockerfile_stage(step: &str) -> Option<String> {
    let inner = step.trim_start().strip_prefix('[')?;
    let (bracket, _) = inner.split_once(']')?;
    let mut words = bracket.split_whitespace();
    let first = words.next()?;
    let second = words.next()?;
    let is_count = |w: &str| w.split_once('/').is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit()));
    if words.next().is_none() && is_count(second) && !is_count(first) && first != "internal" {
        Some(first.to_string())
    } else {
        None
    }
}

/// The stage a legacy-builder `FROM` step names: `build` for
/// `Step 1/5 : FROM slipway/busybox:1 AS build` (`as` in any case).
pub fn legacy_from_stage(step: &str) -> Option<String> {
    let (_, instruction) = step.split_once(" : ")?;
    let mut words = instruction.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("FROM") {
        return None;
    }
    let words: Vec<&str> = words.collect();
    let at = words.iter().position(|w| w.eq_ignore_ascii_case("AS"))?;
    words.get(at + 1).map(|s| s.to_string())
}

impl Diagnosis {
    /// A plain-text rendering for terminals: spec, runs, artifacts, the
    /// failure with its stage output, and the last lines, each line prefixed
    /// with `[HH:MM:SS]`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let s = &self.spec;
        let services = s.services.as_ref().map_or_else(|| "all".to_string(), |v| v.join(", "));
        let _ = writeln!(out, "Build {} of {}", s.id, s.project_slug);
        let _ = writeln!(out, "  git sha        {}", s.git_sha);
        let _ = writeln!(out, "  manifest hash  {}", s.manifest_hash);
        let _ = writeln!(out, "  services       {services}");
        let _ = writeln!(out, "\nRuns ({}):", self.runs.len());
        for r in &self.runs {
            let duration = r.duration_ms.map_or_else(String::new, |ms| format!(" in {:.1}s", ms as f64 / 1000.0));
            let started = r.started_at.map_or_else(|| "not started".to_string(), |t| format!("started {}", t.format("%Y-%m-%d %H:%M:%S UTC")));
            let _ = write!(out, "  #{} {} {} on {}, {started}{duration}", r.seq, r.id, r.status, r.backend.as_deref().unwrap_or("-"));
            if let Some(from) = &r.reused_from_run_id {
                let _ = write!(out, " (reused {from})");
            }
            if let Some(class) = r.error_class {
                let _ = write!(out, " [{class}]");
            }
            out.push('\n');
        }
        if !self.artifacts.is_empty() {
            let _ = writeln!(out, "\nArtifacts:");
            for a in &self.artifacts {
                let _ = writeln!(out, "  {}  {}@{}", a.service_name, a.image_ref, a.digest);
            }
        }
        if let Some(f) = &self.failure {
            let _ = writeln!(out, "\nError: {} — {}", f.class, f.cause);
            let _ = writeln!(out, "  hint: {}", f.hint);
            if let Some(step) = &f.failed_step {
                let _ = writeln!(out, "  failed step: {step}");
            }
            if let Some(stage) = &f.failed_stage {
                let _ = writeln!(out, "  failed stage: {stage}");
            }
            let _ = writeln!(out, "  raw error: {}", f.raw_error);
            for e in &f.evidence {
                let _ = writeln!(out, "  evidence: {e}");
            }
            if !f.stage_lines.is_empty() {
                let _ = writeln!(out, "--- Last {} lines of the failed stage ---", f.stage_lines.len());
                for l in &f.stage_lines {
                    let _ = writeln!(out, "{}", text_line(l));
                }
            }
        }
        if !self.last_lines.is_empty() {
            let _ = writeln!(out, "\n--- Last {} log lines ---", self.last_lines.len());
            for l in &self.last_lines {
                let _ = writeln!(out, "{}", text_line(l));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_read_from_buildkit_vertex_names() {
        assert_eq!(dockerfile_stage("[build 3/5] RUN pnpm install --frozen-lockfile").as_deref(), Some("build"));
        assert_eq!(dockerfile_stage("[stage-1 2/3] COPY --from=build /a /b").as_deref(), Some("stage-1"));
        assert_eq!(dockerfile_stage("[2/3] RUN make"), None);
        assert_eq!(dockerfile_stage("[internal] load metadata for docker.io/library/node:20"), None);
        assert_eq!(dockerfile_stage("[internal 1/2] x"), None);
        assert_eq!(dockerfile_stage("Step 3/5 : RUN exit 3"), None);
        assert_eq!(dockerfile_stage("127.0.0.1:5000/demo/api:sha-0123"), None);
    }

    #[test]
    fn legacy_from_steps_name_their_stage() {
        assert_eq!(legacy_from_stage("Step 1/5 : FROM slipway/busybox:1 AS build").as_deref(), Some("build"));
        assert_eq!(legacy_from_stage("Step 4/5 : from scratch as final").as_deref(), Some("final"));
        assert_eq!(legacy_from_stage("Step 1/2 : FROM slipway/busybox:1"), None);
        assert_eq!(legacy_from_stage("Step 2/2 : RUN echo AS x"), None);
    }
}
