//! Pushing built images and reading registry digests.
//!
//! The engine's BuildKit can only export to the engine's image store, so an
//! image is tagged by the build and pushed with `push_image`; the manifest
//! digest is parsed from the push's last status line
//! (`<tag>: digest: sha256:… size: N`) and then confirmed with a
//! `HEAD /v2/<name>/manifests/<digest>` against the registry itself. A run
//! pushes under its own tag first and then points the human tag at its
//! digest ([`point_tag`]), so concurrent runs never record each other's image.
//!
//! Registry passwords never appear in a log line or an error message.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::PushImageOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;
use slipway_model::status::ErrorClass;

use super::buildkit::{engine_gone, is_connection_error};
use crate::logs::MASK;
use super::{BuildFailure, LogSink, Phase, Stream};

/// Manifest media types asked for when reading a digest: Docker v2 and OCI
/// manifests and their lists/indexes.
const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.index.v1+json";

/// Where images are pushed, and how.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryTarget {
    /// `host[:port]`, e.g. `127.0.0.1:5000` or `ghcr.io`.
    pub host: String,
    /// Path prefix under the host (defaults to the project slug).
    pub namespace: Option<String>,
    /// `(username, password or token)`; the password is never printed.
    pub credentials: Option<(String, String)>,
    /// Talk plain HTTP to this registry (loopback hosts always are).
    /// Callers should only set it when [`insecure_allowed`] says so.
    pub insecure: bool,
    /// Hosts besides the registry's own that its token service (the `realm`
    /// of a `WWW-Authenticate` challenge) may be on: the project admin's list.
    pub auth_hosts: Vec<String>,
    /// Slipway's own registry (embedded or `SLIPWAY_REGISTRY`): its token
    /// service may be on loopback and plain HTTP.
    pub embedded: bool,
}

impl std::fmt::Debug for RegistryTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryTarget")
            .field("host", &self.host)
            .field("namespace", &self.namespace)
            .field("credentials", &self.credentials.as_ref().map(|(user, _)| (user.as_str(), MASK)))
            .field("insecure", &self.insecure)
            .field("auth_hosts", &self.auth_hosts)
            .field("embedded", &self.embedded)
            .finish()
    }
}

impl RegistryTarget {
    /// A target without credentials, plain HTTP only for loopback hosts.
    pub fn new(host: impl Into<String>) -> Self {
        RegistryTarget { host: host.into(), namespace: None, credentials: None, insecure: false, auth_hosts: Vec::new(), embedded: false }
    }

    /// The scheme the registry API is reached with: `http` for loopback
    /// hosts and insecure targets, else `https`.
    pub fn scheme(&self) -> &'static str {
        if self.insecure || is_loopback(&self.host) {
            "http"
        } else {
            "https"
        }
    }

    /// Replaces the password (if any) in a text with the mask.
    fn scrub(&self, text: &str) -> String {
        match &self.credentials {
            Some((_, password)) if !password.is_empty() => text.replace(password.as_str(), MASK),
            _ => text.to_string(),
        }
    }
}

pub use slipway_model::image_name::image_name;
use slipway_model::image_name::{host_without_port, is_loopback, normalize_host};

/// The tag for a commit: `sha-` and its first 12 hex digits.
pub fn sha_tag(sha: &str) -> String {
    let hex: String = sha.chars().filter(char::is_ascii_hexdigit).take(12).collect();
    format!("sha-{}", hex.to_ascii_lowercase())
}

/// Whether plain HTTP may be used for `host`: loopback hosts always; others
/// when listed in `SLIPWAY_BUILDKIT_INSECURE_REGISTRIES` (comma-separated,
/// `host` or `host:port`) or when `SLIPWAY_BUILDKIT_INSECURE_ALL=true`.
pub fn insecure_allowed(host: &str) -> bool {
    insecure_allowed_by(
        host,
        std::env::var("SLIPWAY_BUILDKIT_INSECURE_REGISTRIES").ok().as_deref(),
        std::env::var("SLIPWAY_BUILDKIT_INSECURE_ALL").ok().as_deref(),
    )
}

fn insecure_allowed_by(host: &str, list: Option<&str>, all: Option<&str>) -> bool {
    if is_loopback(host) {
        return true;
    }
    if all.is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1") {
        return true;
    }
    let host = normalize_host(host);
    let bare = host_without_port(&host).to_string();
    list.unwrap_or_default()
        .split(',')
        .map(normalize_host)
        .filter(|e| !e.is_empty())
        .any(|e| e == host || e == bare)
}

/// Parses the digest from a push status such as
/// `sha-0123: digest: sha256:<64 hex> size: 528`.
fn parse_push_digest(status: &str) -> Option<String> {
    let start = status.find("digest: sha256:")? + "digest: ".len();
    let digest: String = status[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(digest)
}

/// Whether `text` contains `word` as a whole token (e.g. a status code).
fn has_token(text: &str, word: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric()).any(|t| t == word)
}

fn auth_failure(target: &RegistryTarget, detail: &str) -> BuildFailure {
    let detail = target.scrub(detail);
    let slipway_token = target.credentials.as_ref().and_then(|(user, _)| user.strip_prefix(crate::registry_auth::issuer::PROJECT_SUBJECT_PREFIX));
    let message = if let Some(slug) = slipway_token {
        format!(
            "Slipway's registry {} refused project {slug}'s token ({detail}): a project may push only to {}/{slug}/… and pull only its own images and those an administrator shared with it",
            target.host, target.host
        )
    } else if target.credentials.is_some() {
        format!(
            "registry {} refused the credentials ({detail}): check the secrets named in auth.username_secret/auth.token_secret",
            target.host
        )
    } else {
        format!(
            "registry {} requires credentials and none are configured ({detail}): name them in auth.username_secret/auth.token_secret",
            target.host
        )
    };
    BuildFailure::new(ErrorClass::AuthError, message)
}

fn unreachable(target: &RegistryTarget, detail: &str) -> BuildFailure {
    BuildFailure::new(ErrorClass::RegistryError, format!("registry {} is not reachable: {}", target.host, target.scrub(detail)))
}

/// Classifies the engine's push error text.
fn classify_push_error(target: &RegistryTarget, reference: &str, text: &str) -> BuildFailure {
    let t = text.to_ascii_lowercase();
    let auth = ["unauthorized", "denied", "authentication required", "forbidden", "no basic auth credentials", "incorrect username or password"]
        .iter()
        .any(|p| t.contains(p))
        || has_token(&t, "401")
        || has_token(&t, "403");
    if auth {
        return auth_failure(target, text);
    }
    let network = [
        "connection refused",
        "no such host",
        "timeout",
        "timed out",
        "connection reset",
        "eof",
        "dial tcp",
        "server gave http response to https client",
        "x509",
        "tls",
        "service unavailable",
        "bad gateway",
        "internal server error",
        "network is unreachable",
    ]
    .iter()
    .any(|p| t.contains(p))
        || ["500", "502", "503", "504"].iter().any(|c| has_token(&t, c));
    if network {
        return unreachable(target, text);
    }
    BuildFailure::new(ErrorClass::RegistryError, format!("pushing {reference} failed: {}", target.scrub(text)))
}

/// Pushes `image:tag` (image = repository including the host) and returns the
/// manifest digest (`sha256:…`) after the registry confirmed it with a
/// manifest HEAD. Progress goes to `log` under phase `push`, step `image:tag`.
pub async fn push(docker: &Docker, image: &str, tag: &str, target: &RegistryTarget, log: &LogSink) -> Result<String, BuildFailure> {
    let result = push_and_confirm(docker, image, tag, target, log).await;
    if let Err(failure) = &result {
        let reference = format!("{image}:{tag}");
        log.line(Phase::Push, Some(&reference), Stream::System, &format!("✗ {}", failure.message)).await;
    }
    result
}

async fn push_and_confirm(docker: &Docker, image: &str, tag: &str, target: &RegistryTarget, log: &LogSink) -> Result<String, BuildFailure> {
    let reference = format!("{image}:{tag}");
    let step = Some(reference.as_str());
    let started = std::time::Instant::now();
    log.line(Phase::Push, step, Stream::System, &format!("pushing {reference} to {}", target.host)).await;
    let credentials = target.credentials.as_ref().map(|(user, password)| DockerCredentials {
        username: Some(user.clone()),
        password: Some(password.clone()),
        serveraddress: Some(target.host.clone()),
        ..Default::default()
    });
    let options = PushImageOptionsBuilder::default().tag(tag).build();
    let mut stream = docker.push_image(image, Some(options), credentials);
    let mut seen: HashSet<String> = HashSet::new();
    let (mut pushed, mut existing) = (0u32, 0u32);
    let mut digest: Option<String> = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                let Some(status) = info.status.filter(|s| !s.trim().is_empty()) else { continue };
                if let Some(d) = parse_push_digest(&status) {
                    digest = Some(d);
                }
                match status.as_str() {
                    "Pushed" => pushed += 1,
                    "Layer already exists" => existing += 1,
                    _ => {}
                }
                // Per-layer progress repeats the same few words; each once is enough.
                if seen.insert(status.clone()) {
                    log.line(Phase::Push, step, Stream::System, &target.scrub(&status)).await;
                }
            }
            Err(bollard::errors::Error::JsonDataError { message, .. }) => {
                tracing::debug!(%message, "skipping an undecodable push progress message");
            }
            Err(e) if is_connection_error(&e) => return Err(engine_gone(&e)),
            Err(e) => {
                let text = match &e {
                    bollard::errors::Error::DockerStreamError { error } => error.clone(),
                    bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                return Err(classify_push_error(target, &reference, &log.mask(&text)));
            }
        }
    }
    let Some(digest) = digest else {
        return Err(BuildFailure::new(
            ErrorClass::RegistryError,
            format!("the push of {reference} to {} ended without reporting a digest", target.host),
        ));
    };
    let name = repository_path(image, &target.host);
    // Confirmed by digest, not by tag: a tag can move between the push and
    // the check, a digest names exactly what this push uploaded.
    let confirmed = match head_digest(target.host.clone(), name.clone(), digest.clone(), target.clone()).await {
        Ok(found) => found,
        Err(HeadError::NoTls) => {
            // This build's HTTP client cannot speak TLS; ask the registry
            // through the engine instead (it has its own TLS stack).
            tracing::debug!(registry = %target.host, "no TLS in the HTTP client; confirming the digest through the engine");
            engine_digest(docker, &reference, target).await?
        }
        Err(HeadError::Failed(f)) => return Err(f),
    };
    match confirmed {
        Some(found) if found == digest => {}
        Some(found) => {
            return Err(BuildFailure::new(
                ErrorClass::RegistryError,
                format!("registry {} reports {found} for {name}@{digest}, but the push reported {digest}", target.host),
            ))
        }
        None => {
            return Err(BuildFailure::new(
                ErrorClass::RegistryError,
                format!("registry {} has no manifest {name}@{digest} right after the push of {name}:{tag}", target.host),
            ))
        }
    }
    log.line(
        Phase::Push,
        step,
        Stream::System,
        &format!(
            "✓ pushed {reference} ({digest}; {pushed} layer(s) uploaded, {existing} already there; {:.2}s)",
            started.elapsed().as_secs_f64()
        ),
    )
    .await;
    Ok(digest)
}

/// Points the human `tag` of `image` at the image this run built and pushed
/// as `digest`: tags the run's own image id locally and pushes that tag (the
/// layers are already there, so only the manifest moves). Another run with
/// the same inputs may move the tag again later; the artifact records the
/// digest, never the tag, so that is harmless.
pub async fn point_tag(
    docker: &Docker,
    image: &str,
    image_id: &str,
    tag: &str,
    digest: &str,
    target: &RegistryTarget,
    log: &LogSink,
) -> Result<(), BuildFailure> {
    tag_local(docker, image_id, image, tag).await?;
    let tagged = push_and_confirm(docker, image, tag, target, log).await?;
    let reference = format!("{image}:{tag}");
    if tagged == digest {
        log.line(Phase::Push, Some(&reference), Stream::System, &format!("{reference} now points at {digest}")).await;
    } else {
        // Only a run with the same inputs uses the same tag, and it moved the
        // local tag between our tag and push: the tag names its image now.
        log.line(
            Phase::Push,
            Some(&reference),
            Stream::System,
            &format!("{reference} points at {tagged}, built by another run with the same inputs; this run's image is {digest}"),
        )
        .await;
    }
    Ok(())
}

/// Tags the local image `image_id` as `repository:tag` in the engine.
pub async fn tag_local(docker: &Docker, image_id: &str, repository: &str, tag: &str) -> Result<(), BuildFailure> {
    let options = bollard::query_parameters::TagImageOptionsBuilder::default().repo(repository).tag(tag).build();
    match docker.tag_image(image_id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(e) if is_connection_error(&e) => Err(engine_gone(&e)),
        Err(e) => Err(BuildFailure::new(ErrorClass::Unknown, format!("tagging {image_id} as {repository}:{tag}: {e}"))),
    }
}

/// Removes a local tag (never the image: other tags keep it). Best effort: a
/// tag left behind only costs a name.
pub async fn untag_local(docker: &Docker, reference: &str) {
    let options = bollard::query_parameters::RemoveImageOptionsBuilder::default().noprune(true).build();
    if let Err(e) = docker.remove_image(reference, Some(options), None).await {
        tracing::debug!(%reference, error = %e, "could not remove a run's own local tag");
    }
}

/// The repository path inside the registry: `image` without `host/`.
fn repository_path(image: &str, host: &str) -> String {
    let host_norm = normalize_host(host);
    match image.split_once('/') {
        Some((first, rest)) if first.eq_ignore_ascii_case(&host_norm) || first.eq_ignore_ascii_case(host) => rest.to_string(),
        _ => image.to_string(),
    }
}

/// The digest of `name:tag` as the registry reports it (`Docker-Content-Digest`
/// of a manifest HEAD), or `None` when the registry has no such manifest.
/// `name` is the repository path without the host, e.g. `demo/api`.
pub async fn remote_digest(host: &str, name: &str, tag: &str, target: &RegistryTarget) -> Result<Option<String>, BuildFailure> {
    match head_digest(host.to_string(), name.to_string(), tag.to_string(), target.clone()).await {
        Ok(found) => Ok(found),
        Err(HeadError::Failed(f)) => Err(f),
        Err(HeadError::NoTls) => Err(BuildFailure::new(
            ErrorClass::RegistryError,
            format!(
                "cannot read the digest from https://{host}: this build's HTTP client has no TLS support (plain HTTP is used only for loopback or insecure registries)"
            ),
        )),
    }
}

/// Why a manifest HEAD did not give an answer.
enum HeadError {
    /// The HTTP client was built without TLS and the registry needs https.
    NoTls,
    Failed(BuildFailure),
}

async fn head_digest(host: String, name: String, tag: String, target: RegistryTarget) -> Result<Option<String>, HeadError> {
    let joined = tokio::task::spawn_blocking(move || head_manifest(&host, &name, &tag, &target)).await;
    match joined {
        Ok(result) => result,
        Err(e) => Err(HeadError::Failed(BuildFailure::new(ErrorClass::Unknown, format!("the registry check stopped: {e}")))),
    }
}

fn basic_auth(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// Parses a `WWW-Authenticate` challenge: the scheme and its `key="value"` parameters.
fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect::<String>().trim().to_string();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        params.push((key.to_ascii_lowercase(), value));
    }
    (scheme.to_ascii_lowercase(), params)
}

/// The manifest HEAD with basic auth, and the Bearer token dance when the
/// registry asks for it. Blocking: run it on a blocking thread.
#[allow(clippy::result_large_err)] // ureq's error type, only inside this function
fn head_manifest(host: &str, name: &str, tag: &str, target: &RegistryTarget) -> Result<Option<String>, HeadError> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .user_agent("slipway")
        .build();
    let scheme = if target.insecure || is_loopback(host) { "http" } else { "https" };
    let host = normalize_host(host);
    let url = format!("{scheme}://{host}/v2/{name}/manifests/{tag}");
    let fail = |f: BuildFailure| HeadError::Failed(f);
    let basic = target.credentials.as_ref().map(|(u, p)| basic_auth(u, p));
    let head = |authorization: Option<&str>| {
        let mut req = agent.head(&url).set("Accept", MANIFEST_ACCEPT);
        if let Some(a) = authorization {
            req = req.set("Authorization", a);
        }
        req.call()
    };
    let first = head(basic.as_deref());
    let response = match first {
        Err(ureq::Error::Status(401, resp)) => {
            let challenge = resp.header("WWW-Authenticate").unwrap_or_default().to_string();
            let (auth_scheme, params) = parse_challenge(&challenge);
            if auth_scheme != "bearer" {
                return Err(fail(auth_failure(target, &format!("HEAD {url} answered 401"))));
            }
            let param = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
            let realm = param("realm").ok_or_else(|| fail(auth_failure(target, "401 with a Bearer challenge that names no realm")))?;
            // The registry chose this URL: send credentials only where they may go.
            let vetted = super::realm::vet(&realm, target).map_err(|why| {
                fail(BuildFailure::new(
                    ErrorClass::AuthError,
                    format!("registry {} asked for its credentials to be sent elsewhere, which Slipway refused: {why}", target.host),
                ))
            })?;
            let token_agent = ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(30))
                .user_agent("slipway")
                .redirects(0)
                .resolver(vetted.resolver())
                .build();
            let scope = param("scope").unwrap_or_else(|| format!("repository:{name}:pull"));
            let mut token_req = token_agent.get(&vetted.url).query("scope", &scope);
            if let Some(service) = param("service") {
                token_req = token_req.query("service", &service);
            }
            if let Some(b) = &basic {
                token_req = token_req.set("Authorization", b);
            }
            let token = match token_req.call() {
                Ok(resp) => {
                    let body: serde_json::Value = resp
                        .into_json()
                        .map_err(|e| fail(unreachable(target, &format!("the token service {realm} sent no JSON: {e}"))))?;
                    body.get("token")
                        .or_else(|| body.get("access_token"))
                        .and_then(|t| t.as_str())
                        .map(str::to_string)
                        .ok_or_else(|| fail(auth_failure(target, &format!("the token service {realm} sent no token"))))?
                }
                Err(ureq::Error::Status(code @ (401 | 403), _)) => {
                    return Err(fail(auth_failure(target, &format!("the token service {realm} answered {code}"))))
                }
                Err(ureq::Error::Status(code, _)) => {
                    return Err(fail(unreachable(target, &format!("the token service {realm} answered {code}"))))
                }
                Err(ureq::Error::Transport(t)) if t.kind() == ureq::ErrorKind::UnknownScheme => return Err(HeadError::NoTls),
                Err(ureq::Error::Transport(t)) => return Err(fail(unreachable(target, &format!("token service {realm}: {t}")))),
            };
            head(Some(&format!("Bearer {token}")))
        }
        other => other,
    };
    match response {
        Ok(resp) => match resp.header("Docker-Content-Digest") {
            Some(d) if d.starts_with("sha256:") => Ok(Some(d.trim().to_string())),
            _ => Err(fail(BuildFailure::new(
                ErrorClass::RegistryError,
                format!("registry {host} answered HEAD {url} without a Docker-Content-Digest header"),
            ))),
        },
        Err(ureq::Error::Status(404, _)) => Ok(None),
        Err(ureq::Error::Status(code @ (401 | 403), _)) => Err(fail(auth_failure(target, &format!("HEAD {url} answered {code}")))),
        Err(ureq::Error::Status(code, _)) if code >= 500 => Err(fail(unreachable(target, &format!("HEAD {url} answered {code}")))),
        Err(ureq::Error::Status(code, _)) => Err(fail(BuildFailure::new(
            ErrorClass::RegistryError,
            format!("registry {host} answered {code} to HEAD {url}"),
        ))),
        Err(ureq::Error::Transport(t)) if t.kind() == ureq::ErrorKind::UnknownScheme => Err(HeadError::NoTls),
        Err(ureq::Error::Transport(t)) => Err(fail(unreachable(target, &t.to_string()))),
    }
}

/// The manifest digest as the engine reads it from the registry
/// (`/distribution/<ref>/json`); used when the HTTP client cannot do TLS.
async fn engine_digest(docker: &Docker, reference: &str, target: &RegistryTarget) -> Result<Option<String>, BuildFailure> {
    let credentials = target.credentials.as_ref().map(|(user, password)| DockerCredentials {
        username: Some(user.clone()),
        password: Some(password.clone()),
        serveraddress: Some(target.host.clone()),
        ..Default::default()
    });
    match docker.inspect_registry_image(reference, credentials).await {
        Ok(inspect) => Ok(inspect.descriptor.digest),
        Err(e) if is_connection_error(&e) => Err(engine_gone(&e)),
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
        Err(e) => Err(classify_push_error(target, reference, &e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_are_lowercase_valid_references() {
        assert_eq!(image_name("127.0.0.1:5000", None, "demo", "api"), "127.0.0.1:5000/demo/api");
        assert_eq!(image_name("https://Ghcr.io/", Some("Acme/Team"), "demo", "Web App"), "ghcr.io/acme/team/web-app");
        assert_eq!(image_name("r.local", Some(""), "My_Project", "--svc--"), "r.local/my_project/svc");
        assert_eq!(image_name("r.local", None, "a..b", "x"), "r.local/a-b/x");
    }

    #[test]
    fn sha_tags_take_twelve_hex_digits() {
        assert_eq!(sha_tag("0123456789ABCDEF0123"), "sha-0123456789ab");
    }

    #[test]
    fn loopback_hosts_are_always_insecure_and_lists_are_honoured() {
        assert!(insecure_allowed_by("127.0.0.1:5000", None, None));
        assert!(insecure_allowed_by("localhost:5000", None, None));
        assert!(insecure_allowed_by("[::1]:5000", None, None));
        assert!(!insecure_allowed_by("reg.internal:5000", None, None));
        assert!(insecure_allowed_by("reg.internal:5000", Some("other, reg.internal"), None));
        assert!(insecure_allowed_by("reg.internal:5000", Some("reg.internal:5000"), None));
        assert!(!insecure_allowed_by("reg.internal:5000", Some("reg.internal:6000"), None));
        assert!(insecure_allowed_by("anything", None, Some("true")));
    }

    #[test]
    fn push_digests_are_parsed_from_the_status_text() {
        let d = "sha256:".to_string() + &"ab".repeat(32);
        assert_eq!(parse_push_digest(&format!("sha-0123: digest: {d} size: 528")), Some(d));
        assert_eq!(parse_push_digest("Pushed"), None);
    }

    #[test]
    fn bearer_challenges_are_parsed() {
        let (scheme, params) =
            parse_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#);
        assert_eq!(scheme, "bearer");
        assert_eq!(params[0], ("realm".to_string(), "https://auth.example/token".to_string()));
        assert_eq!(params[2], ("scope".to_string(), "repository:a/b:pull,push".to_string()));
    }

    #[test]
    fn the_password_is_not_in_debug_output_or_messages() {
        let target = RegistryTarget {
            credentials: Some(("bot".into(), "s3cr3t-pw".into())),
            ..RegistryTarget::new("reg.example")
        };
        assert!(!format!("{target:?}").contains("s3cr3t-pw"));
        let f = classify_push_error(&target, "reg.example/a:b", "unauthorized: s3cr3t-pw rejected");
        assert_eq!(f.class, ErrorClass::AuthError);
        assert!(!f.message.contains("s3cr3t-pw"));
        assert!(f.message.contains("auth.username_secret"));
    }
}
