//! Build diagnosis: gathers a build's spec, runs, artifacts and last log
//! lines, and explains why its newest run failed. It reads the log through
//! [`crate::logs::read`].
//!
//! The class of a failure is decided from structured facts first:
//!
//! 1. the `error_code` the runner recorded, which the component that failed
//!    chose where it failed (git's exit and stderr in the clone phase →
//!    `clone_error`/`auth_error`; a failing BuildKit vertex or legacy step →
//!    `build_error`; the registry's status codes and transport errors →
//!    `auth_error`/`registry_error`; the run's timeout timer →
//!    `timeout_error`; exit 137 or a full disk → `resource_error`);
//! 2. when that is `unknown` or missing: the exit code of the failed step, the
//!    phase of the last log lines before the failure and the failed step;
//! 3. only then patterns in the error text.
//!
//! Nothing matched means [`ErrorClass::Unknown`], said plainly, with the raw
//! error. The hint names what to fix: the service, the step and its stage, the
//! registry host, the secret names, the repository.

use slipway_model::build::{BuildRun, BuildSpec};
use slipway_model::diagnose::{dockerfile_stage, legacy_from_stage, Diagnosis, FailureDiagnosis, RunDiagnosis, DIAGNOSIS_LINES};
use slipway_model::manifest::{self, Manifest, Registry, RegistryAuth, MANIFEST_PATH};
use slipway_model::status::{BuildRunStatus, ErrorClass};

use super::runner::parse_registry_override;
use super::workspace::redact_url;
use crate::embedded::BASE_IMAGE;
use crate::logs::read::LogTail;
use crate::{Result, Store};

/// The facts a failure is classified from; gathered from the run's record and
/// its stored log by [`diagnose`], or built by hand in tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureFacts {
    /// The `error_code` the runner recorded (as stored; may be missing or unknown).
    pub error_code: Option<String>,
    /// The error message the runner recorded.
    pub error_message: String,
    /// The Dockerfile step the runner recorded as failed.
    pub failed_step: Option<String>,
    /// The phase of the last log line before the failure that is not a
    /// `system` line: where the run was when it failed.
    pub phase: Option<String>,
    /// The failed step's exit code, as the engine reports it
    /// (`exit code: N` from BuildKit, `returned a non-zero code: N` from the legacy builder).
    pub exit_code: Option<i32>,
}

/// Where a failure class is normally produced, for the evidence.
fn origin(class: ErrorClass, phase: Option<&str>) -> &'static str {
    match (class, phase) {
        (ErrorClass::CloneError, _) => "chosen by the git workspace from git's exit status and error output",
        (ErrorClass::AuthError, Some("clone" | "checkout")) => "chosen by the git workspace: git reported an authentication failure",
        (ErrorClass::AuthError, _) => "chosen from the registry's answer (401/403, denied) or a missing registry credential",
        (ErrorClass::BuildError, Some("workspace")) => "chosen by the workspace checks: a path the manifest names is missing, or a Dockerfile names an image the project may not use",
        (ErrorClass::BuildError, _) => "chosen from the failing BuildKit vertex or legacy build step",
        (ErrorClass::TimeoutError, _) => "chosen by the run's timeout timer",
        (ErrorClass::ResourceError, _) => "chosen by the build backend from the step's exit (137) or the engine's out-of-space error",
        (ErrorClass::RegistryError, _) => "chosen by the push from the registry's transport error or status code",
        (ErrorClass::Unknown, _) => "the failing component could not classify it",
    }
}

/// The phases a class is expected to come from; another phase is noted in the evidence.
fn expected_phases(class: ErrorClass) -> &'static [&'static str] {
    match class {
        ErrorClass::CloneError => &["clone", "checkout"],
        ErrorClass::AuthError => &["clone", "checkout", "push"],
        ErrorClass::BuildError => &["workspace", "build"],
        ErrorClass::ResourceError => &["build", "push", "workspace"],
        ErrorClass::RegistryError => &["push"],
        ErrorClass::TimeoutError | ErrorClass::Unknown => &[],
    }
}

/// Decides the class of a failure and lists the facts it was decided from,
/// most decisive first. See the module documentation for the order.
pub fn classify(facts: &FailureFacts) -> (ErrorClass, Vec<String>) {
    let mut evidence = Vec::new();
    let phase = facts.phase.as_deref();
    let recorded = facts.error_code.as_deref().map(|c| (c, c.parse::<ErrorClass>()));
    match recorded {
        Some((_, Ok(class))) if class != ErrorClass::Unknown => {
            evidence.push(format!("recorded error_code `{class}` ({})", origin(class, phase)));
            let mut class = class;
            if class == ErrorClass::BuildError && facts.exit_code == Some(137) {
                evidence.push(
                    "the step exited with code 137 (killed by SIGKILL, which the kernel's out-of-memory killer sends): reclassified as resource_error"
                        .into(),
                );
                class = ErrorClass::ResourceError;
            } else if let Some(code) = facts.exit_code {
                evidence.push(format!("the step exited with code {code}"));
            }
            if let Some(p) = phase {
                let expected = expected_phases(class);
                if expected.is_empty() || expected.contains(&p) {
                    evidence.push(format!("the run failed in the `{p}` phase (the last log lines before the failure)"));
                } else {
                    evidence.push(format!(
                        "note: the last log lines before the failure are from the `{p}` phase, where {class} is unusual"
                    ));
                }
            } else {
                evidence.push("no log line was stored before the failure: the run failed while it was being prepared".into());
            }
            if let Some(step) = &facts.failed_step {
                evidence.push(format!("failed step `{step}`"));
            }
            return (class, evidence);
        }
        Some((_, Ok(_))) => evidence.push("recorded error_code `unknown`: the failing component could not classify the failure".into()),
        Some((code, Err(_))) => evidence.push(format!("recorded error_code `{code}` is not a known class")),
        None => evidence.push("no error_code was recorded for this run".into()),
    }

    // Structured facts other than the recorded class.
    if facts.exit_code == Some(137) {
        evidence.push("the step exited with code 137 (killed by SIGKILL, which the kernel's out-of-memory killer sends)".into());
        return (ErrorClass::ResourceError, evidence);
    }
    let lower = facts.error_message.to_ascii_lowercase();
    match phase {
        Some(p @ ("clone" | "checkout")) => {
            evidence.push(format!("the run failed in the `{p}` phase (the last log lines before the failure)"));
            if let Some(pattern) = AUTH_TEXT.iter().find(|t| lower.contains(*t)) {
                evidence.push(format!("git's error contains `{pattern}`"));
                return (ErrorClass::AuthError, evidence);
            }
            return (ErrorClass::CloneError, evidence);
        }
        Some("push") => {
            evidence.push("the run failed in the `push` phase (the last log lines before the failure)".into());
            if let Some(pattern) = AUTH_TEXT.iter().find(|t| lower.contains(*t)) {
                evidence.push(format!("the registry's error contains `{pattern}`"));
                return (ErrorClass::AuthError, evidence);
            }
            return (ErrorClass::RegistryError, evidence);
        }
        Some("build") if facts.failed_step.is_some() => {
            evidence.push(format!(
                "the run failed in the `build` phase at step `{}`",
                facts.failed_step.as_deref().unwrap_or_default()
            ));
            if let Some(pattern) = RESOURCE_TEXT.iter().find(|t| lower.contains(*t)) {
                evidence.push(format!("the step's error contains `{pattern}`"));
                return (ErrorClass::ResourceError, evidence);
            }
            return (ErrorClass::BuildError, evidence);
        }
        Some(p) => evidence.push(format!("the run was in the `{p}` phase, which does not decide the class by itself")),
        None => {}
    }

    // Text patterns, only as a fallback.
    for (class, patterns) in TEXT_FALLBACK {
        if let Some(pattern) = patterns.iter().find(|t| lower.contains(*t)) {
            evidence.push(format!("no structured fact decided it; the error text contains `{pattern}`"));
            return (*class, evidence);
        }
    }
    evidence.push("neither the recorded facts nor the error text match a known kind of failure".into());
    (ErrorClass::Unknown, evidence)
}

const AUTH_TEXT: &[&str] = &[
    "authentication failed",
    "authentication required",
    "unauthorized",
    "denied",
    "forbidden",
    "refused the credentials",
    "incorrect username or password",
    "could not read username",
    "permission denied (publickey",
];

const RESOURCE_TEXT: &[&str] =
    &["no space left on device", "disk quota exceeded", "out of memory", "oomkilled", "cannot allocate memory"];

const TEXT_FALLBACK: &[(ErrorClass, &[&str])] = &[
    (ErrorClass::TimeoutError, &["did not finish within its timeout", "deadline exceeded"]),
    (ErrorClass::ResourceError, RESOURCE_TEXT),
    (ErrorClass::AuthError, AUTH_TEXT),
    (ErrorClass::CloneError, &["could not clone", "could not check out", "could not fetch commit", "repository not found"]),
    (ErrorClass::RegistryError, &["is not reachable", "pushing ", "the push of "]),
    (ErrorClass::BuildError, &["did not complete successfully", "returned a non-zero code", "dockerfile"]),
];

/// The exit code in an engine error: BuildKit's `… did not complete
/// successfully: exit code: 3` or the legacy builder's
/// `The command '…' returned a non-zero code: 3`.
pub fn exit_code_of(message: &str) -> Option<i32> {
    ["exit code: ", "returned a non-zero code: "].iter().find_map(|marker| {
        let at = message.rfind(marker)? + marker.len();
        let digits: String = message[at..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// Lines of a run's log a diagnosis shows.
const TAIL: i64 = DIAGNOSIS_LINES as i64;

/// A build's spec, runs, artifacts, the newest run's last lines and, when
/// that run failed, why. `NotFound` when the build does not exist.
#[tracing::instrument(skip(store))]
pub async fn diagnose(store: &Store, build_id: &str) -> Result<Diagnosis> {
    let spec = store.get_build_spec(build_id).await?;
    let runs = store.list_runs(build_id).await?;
    let artifacts = store.build_artifacts(build_id).await?;
    let newest = runs.first();
    let last_lines = match newest {
        Some(run) => store.log_tail(&run.id, LogTail::All, TAIL).await?,
        None => Vec::new(),
    };
    let failure = match newest {
        Some(run) if run.status == BuildRunStatus::Failed => Some(explain(store, &spec, run).await?),
        _ => None,
    };
    Ok(Diagnosis {
        last_lines_run_id: newest.map(|r| r.id.clone()),
        runs: runs.iter().map(run_diagnosis).collect(),
        spec,
        artifacts,
        last_lines,
        failure,
    })
}

fn run_diagnosis(r: &BuildRun) -> RunDiagnosis {
    RunDiagnosis {
        id: r.id.clone(),
        seq: r.seq,
        status: r.status,
        backend: r.backend.clone(),
        runner_ref: r.runner_ref.clone(),
        attempt: r.attempt,
        queued_at: r.queued_at,
        started_at: r.started_at,
        completed_at: r.completed_at,
        duration_ms: match (r.started_at, r.completed_at) {
            (Some(s), Some(c)) => Some((c - s).num_milliseconds().max(0)),
            _ => None,
        },
        reused_from_run_id: r.reused_from_run_id.clone(),
        error_class: r.error_code.as_deref().and_then(|c| c.parse().ok()),
        failed_step: r.failed_step.clone(),
    }
}

/// The registry a run pushed to, as its spec and manifest configure it.
#[derive(Debug, Default)]
struct RegistryInfo {
    /// Where the configuration came from, for hints.
    source: &'static str,
    host: Option<String>,
    namespace: Option<String>,
    auth: Option<RegistryAuth>,
}

fn registry_info(spec: &BuildSpec, manifest: Option<&Manifest>) -> RegistryInfo {
    let (registry, source) = match &spec.registry {
        Some(v) => match parse_registry_override(v) {
            Ok(r) => (Some(r), "the build's registry override"),
            Err(_) => (None, "the build's registry override (which does not parse)"),
        },
        None => (manifest.map(|m| m.registry.clone()), "the `registry` section of .slipway/manifest.yaml"),
    };
    match registry {
        Some(Registry::Byo { host, namespace, auth }) => RegistryInfo { source, host: Some(host), namespace, auth },
        Some(Registry::Native) => RegistryInfo {
            source: "the server's default registry (`--registry` / SLIPWAY_REGISTRY, else the embedded one at `--registry-addr`)",
            ..Default::default()
        },
        Some(Registry::None) => RegistryInfo { source: "`registry: none` (no push)", ..Default::default() },
        None => RegistryInfo { source, ..Default::default() },
    }
}

/// What the log says about where the run was when it failed.
#[derive(Debug, Default)]
struct LogFacts {
    /// Phase of the last non-system line, and the first line of that phase.
    phase: Option<(String, i64)>,
    /// `(service, image reference)` of each `building <service> → <ref>` line, in order.
    builds: Vec<(String, String)>,
    /// The step of the last build-phase line that has one.
    last_build_step: Option<String>,
    /// The image reference of the last push-phase line that has one.
    push_ref: Option<String>,
}

async fn log_facts(store: &Store, run_id: &str) -> Result<LogFacts> {
    let builds = store
        .build_start_lines(run_id)
        .await?
        .into_iter()
        .filter_map(|line| {
            let (service, reference) = line.strip_prefix("building ")?.split_once(" → ")?;
            Some((service.to_string(), reference.to_string()))
        })
        .collect();
    Ok(LogFacts {
        phase: store.last_work_phase(run_id).await?,
        builds,
        last_build_step: store.last_step_in_phase(run_id, "build").await?,
        push_ref: store.last_step_in_phase(run_id, "push").await?,
    })
}

/// The stage of a legacy-builder step, from the `FROM … AS <stage>` step that
/// started it, and the sequence number of that `FROM` line.
async fn legacy_stage(store: &Store, run_id: &str, step: &str) -> Result<Option<(Option<String>, i64)>> {
    let starts = store.legacy_step_starts(run_id).await?;
    let Some(at) = starts.iter().rposition(|(_, s)| s == step) else { return Ok(None) };
    let from = starts[..=at].iter().rev().find(|(_, s)| s.split_once(" : ").is_some_and(|(_, i)| {
        i.split_whitespace().next().is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
    }));
    Ok(from.map(|(seq, s)| (legacy_from_stage(s), *seq)))
}

/// Names of `names` that are not set project-wide in the project.
async fn missing_secrets(store: &Store, project_id: &str, names: &[&str]) -> Result<Vec<String>> {
    let present = store.project_wide_secret_names(project_id, names).await?;
    Ok(names.iter().filter(|n| !present.iter().any(|p| p == *n)).map(|n| n.to_string()).collect())
}

/// Everything the cause and hint of a failure are written from.
struct Context<'a> {
    spec: &'a BuildSpec,
    run: &'a BuildRun,
    repo: String,
    phase: Option<String>,
    service: Option<String>,
    step: Option<String>,
    stage: Option<String>,
    exit_code: Option<i32>,
    dockerfile: Option<String>,
    registry: RegistryInfo,
    push_ref: Option<String>,
    push_host: Option<String>,
    missing_secrets: Vec<String>,
    message: &'a str,
}

async fn explain(store: &Store, spec: &BuildSpec, run: &BuildRun) -> Result<FailureDiagnosis> {
    let message = run.error_message.clone().unwrap_or_default();
    let project = store.get_project(&spec.project_id).await?;
    let manifest = store
        .manifest_content(&spec.project_id, &spec.git_sha)
        .await?
        .and_then(|(_, content)| manifest::parse(&content).ok());
    let logs = log_facts(store, &run.id).await?;
    let phase = logs.phase.as_ref().map(|(p, _)| p.clone());
    let facts = FailureFacts {
        error_code: run.error_code.clone(),
        error_message: message.clone(),
        failed_step: run.failed_step.clone(),
        phase: phase.clone(),
        exit_code: exit_code_of(&message),
    };
    let (class, mut evidence) = classify(&facts);

    // The step: recorded, or (after a timeout) the one that was running.
    let (step, step_inferred) = match (&run.failed_step, class) {
        (Some(s), _) => (Some(s.clone()), false),
        (None, ErrorClass::TimeoutError | ErrorClass::Unknown) if phase.as_deref() == Some("build") => {
            (logs.last_build_step.clone(), logs.last_build_step.is_some())
        }
        _ => (None, false),
    };
    if step_inferred {
        if let Some(s) = &step {
            evidence.push(format!("`{s}` was the step running when the run stopped (its last build line)"));
        }
    }

    // The stage and its last lines.
    let legacy = match &step {
        Some(s) if s.starts_with("Step ") => legacy_stage(store, &run.id, s).await?,
        _ => None,
    };
    let stage = match (&step, &legacy) {
        (_, Some((stage, _))) => stage.clone(),
        (Some(s), None) => dockerfile_stage(s),
        (None, _) => None,
    };
    if let Some(stage) = &stage {
        evidence.push(format!("Dockerfile stage `{stage}`"));
    }
    let stage_lines = match (&step, &stage, &legacy) {
        (Some(_), Some(_), Some((_, from_seq))) => {
            store.log_tail(&run.id, LogTail::StepsFrom(*from_seq), TAIL).await?
        }
        (Some(_), Some(stage), None) => store.log_tail(&run.id, LogTail::StepPrefix(&format!("[{stage} ")), TAIL).await?,
        (Some(step), None, _) => store.log_tail(&run.id, LogTail::Step(step), TAIL).await?,
        (None, _, _) => match &logs.phase {
            Some((_, first)) => store.log_tail(&run.id, LogTail::From(*first), TAIL).await?,
            None => store.log_tail(&run.id, LogTail::All, TAIL).await?,
        },
    };

    // The service: the one being pushed, else the last one being built.
    let service = match (&phase, &logs.push_ref) {
        (Some(p), Some(reference)) if p == "push" => {
            logs.builds.iter().find(|(_, r)| r == reference).map(|(s, _)| s.clone())
        }
        _ => logs.builds.last().map(|(s, _)| s.clone()),
    };
    let dockerfile = service.as_ref().and_then(|s| {
        manifest.as_ref()?.services.get(s)?.build.as_ref().map(|b| b.dockerfile_path())
    });
    let registry = registry_info(spec, manifest.as_ref());
    let push_host = logs
        .push_ref
        .as_deref()
        .filter(|_| phase.as_deref() == Some("push"))
        .and_then(|r| r.split('/').next())
        .map(str::to_string)
        .or_else(|| registry.host.clone());
    let missing = match (&registry.auth, class) {
        (Some(auth), ErrorClass::AuthError) => {
            missing_secrets(store, &spec.project_id, &[&auth.username_secret, &auth.token_secret]).await?
        }
        _ => Vec::new(),
    };
    if let Some(host) = &push_host {
        if matches!(class, ErrorClass::AuthError | ErrorClass::RegistryError) {
            evidence.push(format!("registry host `{host}` (configured by {})", registry.source));
        }
    }
    let ctx = Context {
        spec,
        run,
        repo: redact_url(&project.repo_url),
        phase,
        service,
        step,
        stage,
        exit_code: facts.exit_code,
        dockerfile,
        registry,
        push_ref: logs.push_ref.clone(),
        push_host,
        missing_secrets: missing,
        message: &message,
    };
    let (cause, hint) = explain_class(class, &ctx, &project.slug);
    Ok(FailureDiagnosis {
        run_id: run.id.clone(),
        class,
        cause,
        hint,
        raw_error: message.clone(),
        failed_phase: ctx.phase.clone(),
        service: ctx.service.clone(),
        failed_step: ctx.step.clone(),
        failed_stage: ctx.stage.clone(),
        stage_lines,
        evidence,
    })
}

fn quoted(v: &Option<String>) -> String {
    v.as_deref().map_or_else(String::new, |s| format!(" `{s}`"))
}

/// The cause and hint of a class, written for this run.
fn explain_class(class: ErrorClass, c: &Context<'_>, slug: &str) -> (String, String) {
    let sha12 = &c.spec.git_sha[..c.spec.git_sha.len().min(12)];
    let build_id = &c.spec.id;
    let rerun = format!("then run the build again (`slipway build run {build_id}`)");
    let service = quoted(&c.service);
    let lower = c.message.to_ascii_lowercase();
    match class {
        ErrorClass::CloneError => {
            // The workspace's messages read "could not clone <repo>: <reason> (<advice>)".
            let head = c.message.split(" (").next().unwrap_or(c.message).trim();
            let cause = if head.starts_with("could not") || head.starts_with("commit ") || head.starts_with("cannot") {
                format!("git {head}")
            } else {
                format!("{}: git could not get commit {sha12} from `{}`", ErrorClass::CloneError.cause(), c.repo)
            };
            let hint = if lower.contains("not found in") && lower.contains("commit") {
                format!("commit {} is not in `{}`: push it there, or build a commit that exists", c.spec.git_sha, c.repo)
            } else {
                format!(
                    "check that `{}`, the repository of project `{slug}`, exists and is reachable from the Slipway host, that the access token in its URL (or the host's SSH key) can read it, and that commit {sha12} is pushed; {rerun}",
                    c.repo
                )
            };
            (cause, hint)
        }
        ErrorClass::AuthError if matches!(c.phase.as_deref(), Some("clone" | "checkout")) => (
            format!("git could not authenticate to `{}`", c.repo),
            format!(
                "give project `{slug}` a repository URL with a valid access token (https://user:TOKEN@host/…) or an SSH key the Slipway user can use, and check that the token can read `{}`; {rerun}",
                c.repo
            ),
        ),
        ErrorClass::AuthError if c.message.starts_with("Slipway's registry") => (
            c.message.split(" (").next().unwrap_or(c.message).to_string(),
            format!(
                "push only to {}/{slug}/… (remove an `image:` in {MANIFEST_PATH} that names another project's repository); to pull another project's image, ask an administrator to share it with `slipway base-images add <repository> --project {slug}`; {rerun}",
                c.push_host.clone().unwrap_or_else(|| "the registry".into())
            ),
        ),
        ErrorClass::AuthError if c.message.contains("registries list") || c.message.contains("may receive only the secrets") => {
            let host = c.push_host.clone().unwrap_or_else(|| "the registry".into());
            (
                format!("registry `{host}` may not receive this build's images or credentials: {}", c.message),
                format!(
                    "a project admin lists it with the secrets it may receive (`slipway registries add {host} --project {slug} --username-secret NAME --token-secret NAME`), or point the manifest at a listed registry; {rerun}"
                ),
            )
        }
        ErrorClass::AuthError if c.message.contains("asked for its credentials to be sent elsewhere") => {
            let host = c.push_host.clone().unwrap_or_else(|| "the registry".into());
            (
                format!("registry `{host}` named a token service Slipway will not send credentials to: {}", c.message),
                format!(
                    "if its token service really is on another public https host, a project admin lists that host (`slipway registries add {host} --project {slug} --auth-host HOST …`); {rerun}"
                ),
            )
        }
        ErrorClass::AuthError => {
            let host = c.push_host.clone().unwrap_or_else(|| "the registry".into());
            match &c.registry.auth {
                Some(auth) if !c.missing_secrets.is_empty() => (
                    format!("registry `{host}` needs credentials from secrets that project `{slug}` does not have"),
                    format!(
                        "set {} in project `{slug}` ({}) — the registry section of .slipway/manifest.yaml names `{}` (auth.username_secret) and `{}` (auth.token_secret); {rerun}",
                        c.missing_secrets.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(" and "),
                        c.missing_secrets.iter().map(|s| format!("`slipway secrets set {s}`")).collect::<Vec<_>>().join(", "),
                        auth.username_secret,
                        auth.token_secret
                    ),
                ),
                Some(auth) => (
                    format!(
                        "registry `{host}` refused the user name and token in secrets `{}` and `{}` of project `{slug}`",
                        auth.username_secret, auth.token_secret
                    ),
                    format!(
                        "store a user and token that can push to `{host}{}` with `slipway secrets set {}` and `slipway secrets set {}` (the names come from auth.username_secret/auth.token_secret in {}); {rerun}",
                        c.registry.namespace.as_deref().map_or_else(String::new, |n| format!("/{n}")),
                        auth.username_secret,
                        auth.token_secret,
                        c.registry.source
                    ),
                ),
                None => (
                    format!("registry `{host}` requires credentials and the build has none"),
                    format!(
                        "add `auth: {{username_secret: REGISTRY_USERNAME, token_secret: REGISTRY_PASSWORD}}` under `registry:` in {} (configured by {}) and set both secrets in project `{slug}` (`slipway secrets set REGISTRY_USERNAME`, `slipway secrets set REGISTRY_PASSWORD`); {rerun}",
                        MANIFEST_PATH, c.registry.source
                    ),
                ),
            }
        }
        ErrorClass::BuildError => build_error(c, &service, sha12, &rerun),
        ErrorClass::TimeoutError => {
            let seconds = c.run.timeout_seconds.map(i64::from).or_else(|| timeout_in_message(c.message));
            let limit = seconds.map_or_else(|| "its time limit".to_string(), |s| format!("its {s} s time limit"));
            let running = match (&c.step, &c.phase) {
                (Some(step), _) => format!("while step `{step}`{} was running", if service.is_empty() { String::new() } else { format!(" of service{service}") }),
                (None, Some(p)) => format!("during the `{p}` phase"),
                (None, None) => "before any output".to_string(),
            };
            let suggestion = seconds.map_or_else(|| "<seconds>".to_string(), |s| (s * 4).max(60).to_string());
            let speed = match &c.step {
                Some(step) => format!("make `{step}` faster (cache its dependencies in an earlier layer, shrink the context with .dockerignore)"),
                None => "make that phase faster".into(),
            };
            (
                format!("the run was stopped at {limit} {running}"),
                format!("create the build again with a longer timeout (`slipway build create --timeout-seconds {suggestion}`), or {speed}"),
            )
        }
        ErrorClass::ResourceError => {
            let disk = lower.contains("no space left") || lower.contains("disk quota");
            let step = c.step.as_deref().map_or_else(|| "a step".to_string(), |s| format!("step `{s}`"));
            if disk {
                (
                    format!("the builder's disk filled up while {step}{} ran", if service.is_empty() { String::new() } else { format!(" of service{service}") }),
                    format!("free disk space on the Slipway host (`docker builder prune`, `docker image prune`), or make {step} write less; {rerun}"),
                )
            } else {
                let exit = c.exit_code.map_or_else(String::new, |e| format!(" with exit code {e}"));
                (
                    format!("{step}{} was killed{exit}: it ran out of memory", if service.is_empty() { String::new() } else { format!(" of service{service}") }),
                    format!(
                        "{step} needs more memory than the builder's limit allows: lower its memory use (fewer parallel jobs, smaller heap) or raise the build memory limit of the Slipway worker; {rerun}"
                    ),
                )
            }
        }
        ErrorClass::RegistryError => {
            let host = c.push_host.clone().unwrap_or_else(|| "the registry".into());
            let what = c.push_ref.as_deref().map_or_else(|| format!("the images{service}"), |r| format!("`{r}`"));
            if lower.contains("not reachable") {
                (
                    format!("registry `{host}` could not be reached to push {what}"),
                    format!(
                        "check that the registry is running and listening at `{host}` (from the Slipway host: `curl http://{host}/v2/`) and that the host is right in {}; {rerun}",
                        c.registry.source
                    ),
                )
            } else {
                (
                    format!("pushing {what} to registry `{host}` failed"),
                    format!(
                        "check the registry host and namespace{} in {} and that the registry accepts pushes of that repository; {rerun}",
                        c.registry.namespace.as_deref().map_or_else(String::new, |n| format!(" (`{n}`)")),
                        c.registry.source
                    ),
                )
            }
        }
        ErrorClass::Unknown => {
            let hint = if lower.contains("lease") {
                format!("the worker running the build stopped renewing its lease (the Slipway process stopped or stalled): {rerun}")
            } else if lower.contains("docker engine stopped answering") {
                format!("check that the Docker engine on the Slipway host is running and healthy; {rerun}")
            } else {
                "Slipway could not classify this failure: read the raw error and the last log lines; if it looks like a Slipway bug, report it with this diagnosis".into()
            };
            (format!("{}: {}", ErrorClass::Unknown.cause(), c.message), hint)
        }
    }
}

fn build_error(c: &Context<'_>, service: &str, sha12: &str, rerun: &str) -> (String, String) {
    let lower = c.message.to_ascii_lowercase();
    let of_service = if service.is_empty() { String::new() } else { format!(" of service{service}") };
    let dockerfile = c.dockerfile.as_deref().map_or_else(|| "the Dockerfile".to_string(), |d| format!("`{d}`"));
    if let Some(refused) = c.message.strip_prefix(crate::isolation::base_check::REFUSAL_PREFIX) {
        let slug = c.spec.project_slug.as_str();
        return (
            format!("a Dockerfile names an image project `{slug}` may not use: {}", refused.trim()),
            format!(
                "use an image of project `{slug}`, a stage of the same Dockerfile or an allowed base image (`slipway base-images list`) at the line named, commit, and build the new commit; an administrator can allow an image with `slipway base-images add <pattern> --project {slug}`"
            ),
        );
    }
    if c.phase.as_deref() == Some("workspace") || lower.contains("no artifact can be built") {
        return (
            format!("commit {sha12} lacks a build context or Dockerfile that .slipway/manifest.yaml names"),
            format!("add the missing path in a new commit, or fix the service's `build` section in {MANIFEST_PATH}, and build the new commit"),
        );
    }
    let pull = lower.contains("no image can be pulled")
        || c.step.as_deref().is_some_and(|s| s.starts_with("[internal] load metadata for"));
    if pull {
        return (
            format!("the base image of{} cannot be pulled on this builder", if service.is_empty() { " the Dockerfile".to_string() } else { format!(" service{service}") }),
            format!("use `FROM {BASE_IMAGE}` or `FROM scratch` in {dockerfile} (this builder has no network to pull images)"),
        );
    }
    match &c.step {
        Some(step) => {
            let stage = c.stage.as_deref().map_or_else(String::new, |s| format!(" in stage `{s}`"));
            let exit = c.exit_code.map_or_else(String::new, |e| format!(" with exit code {e}"));
            (
                format!("step `{step}`{stage}{of_service} failed{exit}"),
                format!(
                    "read the output of the failed stage (its last lines are in this diagnosis), fix `{step}`{stage} in {dockerfile} or what it runs, commit, and build the new commit"
                ),
            )
        }
        None if c.message.starts_with("manifest:") || c.message.starts_with("registry override:") => (
            format!("{}: {}", ErrorClass::BuildError.cause(), c.message),
            format!("fix {MANIFEST_PATH} (or the build's registry override) as the error says; {rerun}"),
        ),
        None => (
            format!("{}{of_service}: {}", ErrorClass::BuildError.cause(), c.message),
            format!("read the build log of{} at the failing Dockerfile stage and fix {dockerfile}", if service.is_empty() { " the build".to_string() } else { format!(" service{service}") }),
        ),
    }
}

/// `N` from the runner's "…within its timeout of Ns…".
fn timeout_in_message(message: &str) -> Option<i64> {
    let at = message.find("timeout of ")? + "timeout of ".len();
    message[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(code: Option<&str>, message: &str, phase: Option<&str>, step: Option<&str>) -> FailureFacts {
        FailureFacts {
            error_code: code.map(str::to_string),
            error_message: message.into(),
            failed_step: step.map(str::to_string),
            phase: phase.map(str::to_string),
            exit_code: exit_code_of(message),
        }
    }

    #[test]
    fn exit_codes_are_read_from_both_builders_errors() {
        assert_eq!(exit_code_of("process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3"), Some(3));
        assert_eq!(exit_code_of("The command '/bin/sh -c dd' returned a non-zero code: 137 (hint)"), Some(137));
        assert_eq!(exit_code_of("registry is not reachable"), None);
    }

    #[test]
    fn the_recorded_class_decides_and_the_phase_corroborates_it() {
        let (class, ev) = classify(&facts(Some("registry_error"), "registry x is not reachable: dial tcp", Some("push"), None));
        assert_eq!(class, ErrorClass::RegistryError);
        assert!(ev[0].starts_with("recorded error_code `registry_error`"), "{ev:?}");
        assert!(ev.iter().any(|e| e.contains("`push` phase")), "{ev:?}");
        // A recorded class wins over misleading text.
        let (class, _) = classify(&facts(Some("build_error"), "step failed: unauthorized access to /x", Some("build"), Some("[2/2] RUN x")));
        assert_eq!(class, ErrorClass::BuildError);
    }

    #[test]
    fn exit_137_of_a_build_step_is_a_resource_error() {
        let (class, ev) =
            classify(&facts(Some("build_error"), "did not complete successfully: exit code: 137", Some("build"), Some("[2/2] RUN x")));
        assert_eq!(class, ErrorClass::ResourceError);
        assert!(ev.iter().any(|e| e.contains("137")), "{ev:?}");
    }

    #[test]
    fn unknown_codes_fall_back_to_the_phase_then_the_text_then_say_unknown() {
        assert_eq!(classify(&facts(Some("unknown"), "something odd", Some("clone"), None)).0, ErrorClass::CloneError);
        assert_eq!(classify(&facts(None, "unauthorized: authentication required", Some("push"), None)).0, ErrorClass::AuthError);
        assert_eq!(classify(&facts(None, "EOF", Some("push"), None)).0, ErrorClass::RegistryError);
        let (class, ev) = classify(&facts(None, "write /x: no space left on device", Some("system"), None));
        assert_eq!(class, ErrorClass::ResourceError);
        assert!(ev.iter().any(|e| e.contains("no structured fact decided it")), "{ev:?}");
        let (class, ev) = classify(&facts(Some("unknown"), "the worker lost its lease on this run", None, None));
        assert_eq!(class, ErrorClass::Unknown);
        assert!(ev.last().is_some_and(|e| e.contains("neither")), "{ev:?}");
    }

    #[test]
    fn timeouts_are_read_from_the_runner_message() {
        assert_eq!(timeout_in_message("the build did not finish within its timeout of 2s and was stopped"), Some(2));
    }
}
