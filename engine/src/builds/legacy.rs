//! The legacy builder (`BuilderV1`): an explicit fallback for engines whose
//! BuildKit cannot be used. Same options as BuildKit (`networkmode=none`).
//!
//! Its output is a stream of text chunks that do not follow line boundaries;
//! they are buffered to newlines. The step is the last `Step N/M : …` line
//! seen, and a failure arrives only as
//! `The command '…' returned a non-zero code: N`, so that step is the one
//! that failed.

use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::query_parameters::BuilderVersion;
use bollard::Docker;
use futures::StreamExt;
use slipway_model::status::ErrorClass;

use super::buildkit::{build_options, classify_docker_error, classify_message, inspect_built};
use super::{BoxFuture, BuildBackend, BuildFailure, BuiltImage, ImageBuild, LogSink, Phase, Stream};

/// Builds images with the engine's classic builder.
#[derive(Debug, Clone)]
pub struct LegacyBackend {
    docker: Docker,
}

impl LegacyBackend {
    /// A backend building on this engine.
    pub fn new(docker: Docker) -> Self {
        LegacyBackend { docker }
    }
}

impl BuildBackend for LegacyBackend {
    fn name(&self) -> &'static str {
        "legacy"
    }

    fn build<'a>(&'a self, job: &'a ImageBuild, log: &'a LogSink) -> BoxFuture<'a, Result<BuiltImage, BuildFailure>> {
        Box::pin(build_with_legacy(&self.docker, job, log))
    }
}

async fn build_with_legacy(docker: &Docker, job: &ImageBuild, log: &LogSink) -> Result<BuiltImage, BuildFailure> {
    if !job.secrets.is_empty() {
        // The legacy builder can only pass build args, which the image records.
        let names: Vec<&str> = job.secrets.keys().map(String::as_str).collect();
        return Err(BuildFailure::new(
            ErrorClass::BuildError,
            format!("{} can only be given as a BuildKit secret mount: use the BuildKit backend (not --build-backend legacy)", names.join(", ")),
        ));
    }
    let options = build_options(job, BuilderVersion::BuilderV1, None, log).await;
    tracing::debug!(service = %job.service, tag = %job.tag, "starting a legacy build");
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(job.context_tar.clone())));
    let mut out = LegacyOutput::default();
    let mut failure: Option<BuildFailure> = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => out.handle(info, log).await,
            Err(bollard::errors::Error::JsonDataError { message, .. }) => {
                tracing::debug!(%message, "skipping an undecodable build output message");
            }
            Err(e) => {
                out.finish(log).await;
                failure = Some(out.failure(&e, log));
                break;
            }
        }
    }
    out.finish(log).await;
    if let Some(failure) = failure {
        log.line(Phase::Build, failure.failed_step.as_deref(), Stream::System, &format!("✗ {}", failure.message)).await;
        return Err(failure);
    }
    inspect_built(docker, &job.tag, out.image_id.as_deref()).await
}

/// Line buffering, the current step and colour state of the legacy output.
#[derive(Default)]
struct LegacyOutput {
    buffer: String,
    step: Option<String>,
    /// Inside an ANSI colour run the builder uses for a step's stderr.
    in_stderr: bool,
    image_id: Option<String>,
}

impl LegacyOutput {
    async fn handle(&mut self, info: BuildInfo, log: &LogSink) {
        if let Some(BuildInfoAux::Default(image)) = info.aux {
            if let Some(id) = image.id {
                self.image_id = Some(id);
            }
        }
        if let Some(text) = info.stream {
            self.buffer.push_str(&text);
            while let Some(pos) = self.buffer.find('\n') {
                let line: String = self.buffer.drain(..=pos).collect();
                self.line(line.trim_end_matches(['\n', '\r']), log).await;
            }
        }
        if let Some(status) = info.status.filter(|s| !s.trim().is_empty()) {
            log.line(Phase::Build, self.step.as_deref(), Stream::System, &status).await;
        }
    }

    /// Writes a trailing partial line.
    async fn finish(&mut self, log: &LogSink) {
        if !self.buffer.is_empty() {
            let rest = std::mem::take(&mut self.buffer);
            self.line(rest.trim_end_matches(['\n', '\r']), log).await;
        }
    }

    async fn line(&mut self, raw: &str, log: &LogSink) {
        let (text, stderr) = strip_ansi(raw, &mut self.in_stderr);
        if let Some(rest) = text.strip_prefix("Step ") {
            if rest.contains(" : ") && rest.split(' ').next().is_some_and(|n| n.contains('/')) {
                self.step = Some(text.clone());
                log.line(Phase::Build, Some(&text), Stream::System, &format!("▶ {text}")).await;
                return;
            }
        }
        if let Some(id) = text.strip_prefix("Successfully built ") {
            if self.image_id.is_none() {
                self.image_id = Some(id.trim().to_string());
            }
        }
        let stream = if stderr {
            Stream::Stderr
        } else if is_builder_chatter(&text) {
            Stream::System
        } else {
            Stream::Stdout
        };
        log.line(Phase::Build, self.step.as_deref(), stream, &text).await;
    }

    fn failure(&self, e: &bollard::errors::Error, log: &LogSink) -> BuildFailure {
        let text = match e {
            bollard::errors::Error::DockerStreamError { error } => Some(log.mask(error)),
            _ => None,
        };
        match text {
            Some(text) if text.contains("returned a non-zero code:") => {
                let (class, hint) = classify_message(&text, false);
                let class = if class == ErrorClass::ResourceError { class } else { ErrorClass::BuildError };
                let mut message = match &self.step {
                    Some(step) => format!("step `{step}` failed: {text}"),
                    None => format!("the build failed: {text}"),
                };
                if let Some(hint) = hint {
                    message.push_str(&format!(" ({hint})"));
                }
                BuildFailure { class, message, failed_step: self.step.clone() }
            }
            Some(text) => {
                // Errors such as a missing COPY source or an unpullable FROM
                // stop the build at the current step too.
                let pulling = self.step.as_deref().is_some_and(|s| s.contains(": FROM "));
                let (class, hint) = classify_message(&text, pulling);
                let mut message = match &self.step {
                    Some(step) => format!("step `{step}` failed: {text}"),
                    None => format!("the build failed: {text}"),
                };
                if let Some(hint) = hint {
                    message.push_str(&format!(" ({hint})"));
                }
                BuildFailure { class, message, failed_step: self.step.clone() }
            }
            None => classify_docker_error(e, log),
        }
    }
}

/// The legacy builder's own lines (not a step's output).
fn is_builder_chatter(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("---> ")
        || t.starts_with("Removing intermediate container ")
        || t.starts_with("Successfully built ")
        || t.starts_with("Successfully tagged ")
        || t.starts_with("Sending build context to Docker daemon")
}

/// Removes ANSI escape sequences; reports whether any of the line was in the
/// red (`ESC[91m`) run the legacy builder wraps stderr in. `in_stderr` carries
/// the colour state across lines.
fn strip_ansi(raw: &str, in_stderr: &mut bool) -> (String, bool) {
    let mut out = String::with_capacity(raw.len());
    let mut any_stderr = false;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            let mut code = String::new();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    if c == 'm' {
                        if code == "91" || code == "31" {
                            *in_stderr = true;
                        } else if code.is_empty() || code == "0" || code == "39" {
                            *in_stderr = false;
                        }
                    }
                    break;
                }
                code.push(c);
            }
            continue;
        }
        if *in_stderr && !c.is_whitespace() {
            any_stderr = true;
        }
        out.push(c);
    }
    (out, any_stderr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_colour_marks_stderr_and_is_removed() {
        let mut state = false;
        assert_eq!(strip_ansi("\u{1b}[91moops", &mut state), ("oops".to_string(), true));
        assert!(state);
        assert_eq!(strip_ansi("still red\u{1b}[0m", &mut state), ("still red".to_string(), true));
        assert!(!state);
        assert_eq!(strip_ansi("plain", &mut state), ("plain".to_string(), false));
    }
}
