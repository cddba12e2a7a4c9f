//! The BuildKit backend: the Docker engine's embedded BuildKit, driven through
//! the `/build` API (the CLI's buildx plugin does not exist here).
//!
//! Every build gets its own session id and runs with `networkmode=none`, so a
//! `RUN` step reaches no network. Progress arrives as BuildKit status
//! messages: vertices (`[2/3] RUN make`) that start, complete (maybe from
//! cache) or fail, and their output bytes. Each is written to the log under
//! phase `build` with the vertex name as the step. Dropping the returned
//! future closes the connection, and the engine stops the running step.
//!
//! Build secrets (`BUILD_AUTH`) are served to `RUN --mount=type=secret` steps
//! by a session of Slipway's own ([`super::session`]), never as build args.
//!
//! The helpers shared with the legacy backend (options, error classification,
//! inspecting the result) live here too.

use std::collections::{HashMap, HashSet};

use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::moby::buildkit::v1::StatusResponse;
use bollard::query_parameters::{BuildImageOptions, BuildImageOptionsBuilder, BuilderVersion};
use bollard::Docker;
use futures::StreamExt;
use slipway_model::status::ErrorClass;

use super::session::SecretSession;
use super::{BoxFuture, BuildBackend, BuildFailure, BuiltImage, ImageBuild, LogSink, Phase, Stream};
use crate::embedded::BASE_IMAGE;

/// Builds images with the engine's embedded BuildKit.
#[derive(Debug, Clone)]
pub struct BuildKitBackend {
    docker: Docker,
}

impl BuildKitBackend {
    /// A backend building on this engine.
    pub fn new(docker: Docker) -> Self {
        BuildKitBackend { docker }
    }
}

impl BuildBackend for BuildKitBackend {
    fn name(&self) -> &'static str {
        "buildkit"
    }

    fn build<'a>(&'a self, job: &'a ImageBuild, log: &'a LogSink) -> BoxFuture<'a, Result<BuiltImage, BuildFailure>> {
        Box::pin(build_with_buildkit(&self.docker, job, log))
    }
}

/// A fresh, unique BuildKit session id (a random v4 UUID).
fn session_id() -> String {
    uuid::Builder::from_random_bytes(rand::random::<[u8; 16]>()).into_uuid().to_string()
}

async fn build_with_buildkit(docker: &Docker, job: &ImageBuild, log: &LogSink) -> Result<BuiltImage, BuildFailure> {
    let session = session_id();
    // Build secrets are served by a session of ours that lives as long as the build.
    let _secrets = match job.secrets.is_empty() {
        true => None,
        false => Some(SecretSession::open(&session, &job.secrets).await?),
    };
    let options = build_options(job, BuilderVersion::BuilderBuildKit, Some(&session), log).await;
    if job.memory.is_some() {
        // Measured on engine 20.10: BuildKit accepts the option but does not
        // apply it to RUN steps (the legacy builder does).
        log.line(
            Phase::Build,
            None,
            Stream::System,
            "note: the engine's BuildKit does not enforce per-build memory limits; RUN steps may use more memory than the limit",
        )
        .await;
    }
    tracing::debug!(service = %job.service, tag = %job.tag, %session, "starting a BuildKit build");
    let started = std::time::Instant::now();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(job.context_tar.clone())));
    let mut progress = Progress::default();
    let mut stream_error: Option<BuildFailure> = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => progress.handle(info, log).await,
            Err(bollard::errors::Error::JsonDataError { message, .. }) => {
                // One undecodable progress message is not a failed build.
                tracing::debug!(%message, "skipping an undecodable build progress message");
            }
            Err(e) => {
                stream_error = Some(classify_docker_error(&e, log));
                break;
            }
        }
    }
    progress.flush(log).await;
    tracing::debug!(service = %job.service, elapsed_ms = started.elapsed().as_millis() as u64, "BuildKit stream ended");
    if let Some(failure) = progress.failure.take() {
        // The failed vertex says more than the summary error that follows it.
        return Err(failure);
    }
    if let Some(failure) = stream_error {
        log.line(Phase::Build, None, Stream::System, &format!("✗ {}", failure.message)).await;
        return Err(failure);
    }
    inspect_built(docker, &job.tag, progress.image_id.as_deref()).await
}

/// Per-build progress state: vertex names by digest, which were announced,
/// partial output lines, and the first failure.
#[derive(Default)]
struct Progress {
    names: HashMap<String, String>,
    announced: HashSet<String>,
    completed: HashSet<String>,
    /// Output bytes not yet ending in a newline, per (vertex, is-stdout).
    partial: HashMap<(String, bool), Vec<u8>>,
    image_id: Option<String>,
    failure: Option<BuildFailure>,
}

impl Progress {
    async fn handle(&mut self, info: BuildInfo, log: &LogSink) {
        match info.aux {
            Some(BuildInfoAux::BuildKit(status)) => self.status(status, log).await,
            Some(BuildInfoAux::Default(image)) => {
                if let Some(id) = image.id {
                    self.image_id = Some(id);
                }
            }
            None => {}
        }
        if let Some(text) = info.stream.as_deref().filter(|s| !s.trim().is_empty()) {
            log.line(Phase::Build, None, Stream::System, text).await;
        }
    }

    fn name_of(&self, digest: &str) -> String {
        self.names.get(digest).cloned().unwrap_or_else(|| short_digest(digest))
    }

    async fn status(&mut self, status: StatusResponse, log: &LogSink) {
        for vertex in status.vertexes {
            if !vertex.name.is_empty() {
                self.names.insert(vertex.digest.clone(), vertex.name.clone());
            }
            let name = self.name_of(&vertex.digest);
            let done = vertex.completed.is_some();
            if vertex.started.is_some() && !(vertex.cached && done) && self.announced.insert(vertex.digest.clone()) {
                log.line(Phase::Build, Some(&name), Stream::System, &format!("▶ {name}")).await;
            }
            if !vertex.error.is_empty() {
                self.flush_vertex(&vertex.digest, &name, log).await;
                log.line(Phase::Build, Some(&name), Stream::System, &format!("✗ {name}: {}", vertex.error)).await;
                if self.failure.is_none() {
                    self.failure = Some(vertex_failure(&name, &vertex.error, log));
                }
                self.completed.insert(vertex.digest.clone());
                continue;
            }
            if done && self.completed.insert(vertex.digest.clone()) {
                self.flush_vertex(&vertex.digest, &name, log).await;
                let line = if vertex.cached {
                    format!("✓ {name} (cached)")
                } else {
                    let secs = match (&vertex.started, &vertex.completed) {
                        (Some(s), Some(c)) => {
                            ((c.seconds - s.seconds) as f64 + f64::from(c.nanos - s.nanos) / 1e9).max(0.0)
                        }
                        _ => 0.0,
                    };
                    format!("✓ {name} ({secs:.2}s)")
                };
                log.line(Phase::Build, Some(&name), Stream::System, &line).await;
            }
        }
        for entry in status.logs {
            let stdout = entry.stream == 1;
            let stream = if stdout { Stream::Stdout } else { Stream::Stderr };
            let key = (entry.vertex.clone(), stdout);
            let buf = self.partial.entry(key).or_default();
            buf.extend_from_slice(&entry.msg);
            if let Some(pos) = buf.iter().rposition(|b| *b == b'\n') {
                let complete: Vec<u8> = buf.drain(..=pos).collect();
                let name = self.name_of(&entry.vertex);
                log.line(Phase::Build, Some(&name), stream, &String::from_utf8_lossy(&complete)).await;
            }
        }
        for warning in status.warnings {
            let name = self.name_of(&warning.vertex);
            let text = String::from_utf8_lossy(&warning.short);
            log.line(Phase::Build, Some(&name), Stream::System, &format!("warning: {text}")).await;
        }
    }

    /// Writes out a vertex's unterminated output (at completion or failure).
    async fn flush_vertex(&mut self, digest: &str, name: &str, log: &LogSink) {
        for (stdout, stream) in [(true, Stream::Stdout), (false, Stream::Stderr)] {
            if let Some(rest) = self.partial.remove(&(digest.to_string(), stdout)) {
                if !rest.is_empty() {
                    log.line(Phase::Build, Some(name), stream, &String::from_utf8_lossy(&rest)).await;
                }
            }
        }
    }

    /// Writes out every unterminated output line (end of the build).
    async fn flush(&mut self, log: &LogSink) {
        let keys: Vec<String> = self.partial.keys().map(|(d, _)| d.clone()).collect();
        for digest in keys {
            let name = self.name_of(&digest);
            self.flush_vertex(&digest, &name, log).await;
        }
    }
}

fn short_digest(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.chars().take(12).collect()
}

/// The failure of one BuildKit vertex (a Dockerfile step or an internal one).
fn vertex_failure(name: &str, error: &str, log: &LogSink) -> BuildFailure {
    let error = log.mask(error);
    let metadata = name.starts_with("[internal] load metadata for");
    let (class, hint) = classify_message(&error, metadata);
    let mut message = format!("step `{name}` failed: {error}");
    if let Some(hint) = hint {
        message.push_str(&format!(" ({hint})"));
    }
    BuildFailure { class, message, failed_step: Some(name.to_string()) }
}

/// The hint for a base image that would have to be pulled.
pub(crate) fn pull_hint() -> String {
    format!("no image can be pulled on this builder: the Dockerfile must use `FROM scratch` or the local base image `{BASE_IMAGE}`")
}

/// Classifies an engine or BuildKit error text; `pulling` says the text came
/// from resolving a base image. Returns the class and an optional hint.
pub(crate) fn classify_message(text: &str, pulling: bool) -> (ErrorClass, Option<String>) {
    let t = text.to_ascii_lowercase();
    if t.contains("no space left on device") || t.contains("disk quota exceeded") {
        return (ErrorClass::ResourceError, Some("the builder's disk is full: free space (docker builder prune)".into()));
    }
    if t.contains("exit code: 137")
        || t.contains("non-zero code: 137")
        || t.contains("oomkilled")
        || t.contains("out of memory")
        || t.contains("cannot allocate memory")
    {
        return (ErrorClass::ResourceError, Some("the step was killed (exit 137): it most likely ran out of memory".into()));
    }
    let pull = t.contains("pull access denied")
        || t.contains("failed to resolve source metadata")
        || t.contains("manifest unknown")
        || t.contains("repository does not exist")
        || t.contains("registry-1.docker.io")
        || (pulling && (t.contains("not found") || t.contains("no such host") || t.contains("dial tcp")));
    if pull {
        return (ErrorClass::BuildError, Some(pull_hint()));
    }
    (ErrorClass::BuildError, None)
}

/// Whether a bollard error means the engine connection itself failed.
pub(crate) fn is_connection_error(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        e,
        E::HyperResponseError { .. }
            | E::HyperLegacyError { .. }
            | E::IOError { .. }
            | E::RequestTimeoutError
            | E::SocketNotFoundError(_)
            | E::HttpClientError { .. }
    )
}

/// The failure for an engine that stopped answering mid-build.
pub(crate) fn engine_gone(e: &dyn std::fmt::Display) -> BuildFailure {
    BuildFailure::new(ErrorClass::Unknown, format!("the Docker engine stopped answering: {e}"))
}

/// Classifies an error ending a build stream (not a failed vertex).
pub(crate) fn classify_docker_error(e: &bollard::errors::Error, log: &LogSink) -> BuildFailure {
    use bollard::errors::Error as E;
    if is_connection_error(e) {
        return engine_gone(e);
    }
    let text = match e {
        E::DockerStreamError { error } => error.clone(),
        E::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let text = log.mask(&text);
    let (class, hint) = classify_message(&text, false);
    let class = match e {
        // A refused request that names no build problem is an engine problem.
        E::DockerResponseServerError { status_code, .. } if *status_code >= 500 && hint.is_none() && !looks_like_build_error(&text) => {
            ErrorClass::Unknown
        }
        E::DockerStreamError { .. } | E::DockerResponseServerError { .. } => class,
        _ => ErrorClass::Unknown,
    };
    let mut message = format!("the build failed: {text}");
    if let Some(hint) = hint {
        message.push_str(&format!(" ({hint})"));
    }
    BuildFailure::new(class, message)
}

/// Texts of engine errors that are the Dockerfile's or the context's fault.
fn looks_like_build_error(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    ["dockerfile", "parse error", "unknown instruction", "failed to solve", "failed to compute cache key", "not found", "target stage", "build context"]
        .iter()
        .any(|p| t.contains(p))
}

/// The `/build` options both backends share: tag, Dockerfile, target, args,
/// labels, memory, `rm`/`forcerm` and `networkmode=none` (never `host`).
pub(crate) async fn build_options(
    job: &ImageBuild,
    version: BuilderVersion,
    session: Option<&str>,
    log: &LogSink,
) -> BuildImageOptions {
    let buildargs: HashMap<&str, &str> = job.build_args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let labels: HashMap<&str, &str> = job.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut builder = BuildImageOptionsBuilder::default()
        .dockerfile(&job.dockerfile)
        .t(&job.tag)
        .rm(true)
        .forcerm(true)
        .networkmode("none")
        .buildargs(&buildargs)
        .labels(&labels)
        .version(version);
    if let Some(target) = job.target.as_deref().filter(|t| !t.is_empty()) {
        builder = builder.target(target);
    }
    if let Some(session) = session {
        builder = builder.session(session);
    }
    if let Some(memory) = job.memory.filter(|m| *m > 0) {
        match i32::try_from(memory) {
            Ok(m) => builder = builder.memory(m),
            Err(_) => {
                tracing::warn!(memory, "memory limits above 2 GiB cannot be sent to the engine; building without one");
                log.line(
                    Phase::Build,
                    None,
                    Stream::System,
                    &format!("memory limit of {memory} bytes is above what the engine API accepts (2 GiB); building without a memory limit"),
                )
                .await;
            }
        }
    }
    builder.build()
}

/// Looks the built tag up on the engine: id, size and platform.
pub(crate) async fn inspect_built(docker: &Docker, tag: &str, reported_id: Option<&str>) -> Result<BuiltImage, BuildFailure> {
    match docker.inspect_image(tag).await {
        Ok(image) => {
            let image_id = image.id.or_else(|| reported_id.map(str::to_string)).ok_or_else(|| {
                BuildFailure::new(ErrorClass::Unknown, format!("the engine reported no id for the built image {tag}"))
            })?;
            if let Some(reported) = reported_id {
                if reported != image_id {
                    tracing::debug!(%reported, %image_id, "build reported another image id than the tag has");
                }
            }
            let platform = match (image.os.as_deref(), image.architecture.as_deref()) {
                (Some(os), Some(arch)) if !os.is_empty() && !arch.is_empty() => Some(match image.variant.as_deref() {
                    Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
                    _ => format!("{os}/{arch}"),
                }),
                _ => None,
            };
            Ok(BuiltImage { image_id, size_bytes: image.size, platform })
        }
        Err(e) if is_connection_error(&e) => Err(engine_gone(&e)),
        Err(e) => Err(BuildFailure::new(
            ErrorClass::Unknown,
            format!("the build ended but the image {tag} cannot be inspected: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_base_images_get_the_local_image_hint() {
        let (class, hint) = classify_message(
            "failed to resolve source metadata for docker.io/library/node:20: failed to do request: dial tcp: lookup registry-1.docker.io: no such host",
            true,
        );
        assert_eq!(class, ErrorClass::BuildError);
        assert!(hint.unwrap_or_default().contains("slipway/busybox:1"));
    }

    #[test]
    fn exit_137_and_full_disks_are_resource_errors() {
        assert_eq!(classify_message("process \"/bin/sh -c x\" did not complete successfully: exit code: 137", false).0, ErrorClass::ResourceError);
        assert_eq!(classify_message("write /x: no space left on device", false).0, ErrorClass::ResourceError);
        assert_eq!(classify_message("process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3", false), (ErrorClass::BuildError, None));
    }

    #[test]
    fn a_lost_engine_connection_is_unknown_and_says_so() {
        let (log, _) = LogSink::memory();
        let e = bollard::errors::Error::IOError { err: std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer") };
        let f = classify_docker_error(&e, &log);
        assert_eq!(f.class, ErrorClass::Unknown);
        assert!(f.message.starts_with("the Docker engine stopped answering: "), "{}", f.message);
        let e = bollard::errors::Error::DockerStreamError { error: "pull access denied for foo, repository does not exist".into() };
        let f = classify_docker_error(&e, &log);
        assert_eq!(f.class, ErrorClass::BuildError);
        assert!(f.message.contains("FROM scratch"), "{}", f.message);
    }

    #[test]
    fn session_ids_are_unique_uuids() {
        let (a, b) = (session_id(), session_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
    }
}
