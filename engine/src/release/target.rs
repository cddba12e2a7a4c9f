//! Deploy targets: where a deployment's digests are applied.
//!
//! [`DeployTarget`] is the narrow interface the deployment executor uses;
//! [`LocalDockerTarget`] (the embedded default) runs each service of a
//! release as one container on the local Docker engine, pinned by digest and
//! without any network (`network_mode: none`).
//!
//! A rollout replaces nothing until everything new runs: each service's new
//! container starts under a temporary name (`<stable name>-<short id>`); once
//! all of them are running, and still running after a settle period, the
//! previous containers are stopped and removed and the new ones renamed to
//! their stable names. When any new container fails, every new container is
//! removed and the previous ones keep running; the error says why (exit
//! code, last log lines, or the engine's refusal). Containers run with an
//! init process (so a stop is prompt) and, once they replaced the previous
//! ones, the restart policy `unless-stopped`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerUpdateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    RenameContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use slipway_model::release::ContainerView;

use crate::builds::BoxFuture;

/// Prefix of every label Slipway puts on the containers it runs.
pub const LABEL_PREFIX: &str = "dev.slipway.";

/// What to deploy: one entry per service, each pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployPlan {
    pub deployment_id: String,
    pub project_id: String,
    pub project_slug: String,
    pub environment: String,
    pub release_id: Option<String>,
    /// Sorted by service name.
    pub services: Vec<ServicePlan>,
}

/// One service of a [`DeployPlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    pub service: String,
    /// Image repository without tag or digest, e.g. `127.0.0.1:5000/demo/api`.
    pub repository: String,
    /// `sha256:…`: the registry's manifest digest (or, for images that were
    /// never pushed, the local image id).
    pub digest: String,
    /// Command overriding the image's default (the manifest's `command`, split on whitespace).
    pub command: Option<Vec<String>>,
    /// Runtime environment with the values the manifest defines.
    pub env: BTreeMap<String, String>,
}

impl ServicePlan {
    /// `<repository>@<digest>`: the only way a deployment refers to an image.
    pub fn pinned_ref(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

/// Why a rollout failed; the previous containers are still running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeployError {
    /// The service that failed, when one did.
    pub service: Option<String>,
    /// What happened, for the deployment's error message.
    pub message: String,
}

impl DeployError {
    fn service(service: &str, message: impl Into<String>) -> Self {
        DeployError { service: Some(service.to_string()), message: format!("service {service}: {}", message.into()) }
    }

    fn general(message: impl Into<String>) -> Self {
        DeployError { service: None, message: message.into() }
    }
}

/// Something that can apply a deployment plan.
pub trait DeployTarget: Send + Sync {
    /// Recorded in logs, e.g. `docker`.
    fn name(&self) -> &'static str;
    /// Applies `plan`; on success returns the containers now running it.
    fn deploy<'a>(&'a self, plan: &'a DeployPlan) -> BoxFuture<'a, Result<Vec<ContainerView>, DeployError>>;
}

/// The repository of an image reference: without its `@digest` or `:tag`.
pub fn repository_of(image_ref: &str) -> &str {
    let no_digest = image_ref.split('@').next().unwrap_or(image_ref);
    let last_slash = no_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match no_digest[last_slash..].rfind(':') {
        Some(colon) => &no_digest[..last_slash + colon],
        None => no_digest,
    }
}

/// `slipway-<project>-<environment>-<service>`, reduced to what Docker
/// accepts in a container name.
pub fn container_name(project_slug: &str, environment: &str, service: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '-' }).collect()
    };
    format!("slipway-{}-{}-{}", clean(project_slug), clean(environment), clean(service))
}

/// Runs each service as a container on the local Docker engine.
#[derive(Clone)]
pub struct LocalDockerTarget {
    docker: Docker,
    /// Credentials for pulls from Slipway's registry (`None`: pull anonymously).
    registry_tokens: Option<crate::registry_auth::TokenIssuer>,
    extra_labels: BTreeMap<String, String>,
    start_timeout: Duration,
    settle: Duration,
    stop_timeout: i32,
}

impl std::fmt::Debug for LocalDockerTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDockerTarget").field("extra_labels", &self.extra_labels).finish()
    }
}

/// A new container started under its temporary name.
struct Started {
    service: String,
    temp_name: String,
    stable_name: String,
    image: String,
    digest: String,
    id: String,
}

impl LocalDockerTarget {
    /// A target on `docker` with the default timings: up to 15 s to reach
    /// `running`, then 1 s during which it must keep running.
    pub fn new(docker: Docker) -> Self {
        LocalDockerTarget {
            docker,
            registry_tokens: None,
            extra_labels: BTreeMap::new(),
            start_timeout: Duration::from_secs(15),
            settle: Duration::from_secs(1),
            stop_timeout: 10,
        }
    }

    /// Pulls from the issuer's registry with a pull-only credential for the
    /// deployment's project.
    pub fn with_registry_tokens(mut self, issuer: Option<crate::registry_auth::TokenIssuer>) -> Self {
        self.registry_tokens = issuer;
        self
    }

    /// Adds labels to every container (tests label what they create).
    pub fn with_labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.extra_labels.extend(labels);
        self
    }

    /// How long a new container must keep running before it replaces the old one.
    pub fn with_settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    async fn rollout(&self, plan: &DeployPlan) -> Result<Vec<ContainerView>, DeployError> {
        if plan.services.is_empty() {
            return Err(DeployError::general("the deployment has no services to run"));
        }
        let short: String = plan.deployment_id.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
        let mut started: Vec<Started> = Vec::with_capacity(plan.services.len());
        for svc in &plan.services {
            match self.start_new(plan, svc, &short).await {
                Ok(s) => started.push(s),
                Err(e) => {
                    self.remove_all(&started).await;
                    return Err(e);
                }
            }
        }
        // Every new container must still be running after the settle period.
        let deadline = Instant::now() + self.settle;
        loop {
            for s in &started {
                if let Err(e) = self.check_running(s).await {
                    self.remove_all(&started).await;
                    return Err(e);
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200).min(self.settle)).await;
        }
        for s in &started {
            if let Err(e) = self.check_name_free(plan, s).await {
                self.remove_all(&started).await;
                return Err(e);
            }
        }
        // Everything new runs: replace the previous containers.
        let mut views = Vec::with_capacity(started.len());
        for s in &started {
            self.replace(plan, s).await?;
            views.push(ContainerView {
                service: s.service.clone(),
                name: s.stable_name.clone(),
                image: s.image.clone(),
                digest: s.digest.clone(),
                container_id: s.id.clone(),
            });
        }
        Ok(views)
    }

    /// Makes sure the engine has the image and returns the reference to create
    /// the container from (always a digest, never a tag).
    async fn ensure_image(&self, plan: &DeployPlan, svc: &ServicePlan) -> Result<String, DeployError> {
        let pinned = svc.pinned_ref();
        if self.docker.inspect_image(&pinned).await.is_ok() {
            return Ok(pinned);
        }
        // An image that was never pushed (registry `none`) is recorded by its image id.
        if let Ok(image) = self.docker.inspect_image(&svc.digest).await {
            if image.id.as_deref() == Some(svc.digest.as_str()) {
                return Ok(svc.digest.clone());
            }
        }
        tracing::info!(image = %pinned, "pulling the image by digest");
        let options = CreateImageOptions {
            from_image: Some(svc.repository.clone()),
            tag: Some(svc.digest.clone()),
            ..Default::default()
        };
        let credentials = self.pull_credentials(plan, svc)?;
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        let mut failure: Option<String> = None;
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                failure = Some(engine_message(&e));
            }
        }
        match self.docker.inspect_image(&pinned).await {
            Ok(_) => Ok(pinned),
            Err(e) => Err(DeployError::service(
                &svc.service,
                format!("the image {pinned} is not on the engine and could not be pulled: {}", failure.unwrap_or_else(|| engine_message(&e))),
            )),
        }
    }

    /// A pull-only credential for the project's own repositories, when the
    /// image is on Slipway's registry.
    fn pull_credentials(&self, plan: &DeployPlan, svc: &ServicePlan) -> Result<Option<bollard::auth::DockerCredentials>, DeployError> {
        let Some(issuer) = &self.registry_tokens else { return Ok(None) };
        issuer
            .pull_credentials(&plan.project_slug, &svc.repository)
            .map_err(|e| DeployError::service(&svc.service, format!("minting a registry credential: {e}")))
    }

    /// Creates and starts the new container of one service under its
    /// temporary name and waits until it runs.
    async fn start_new(&self, plan: &DeployPlan, svc: &ServicePlan, short: &str) -> Result<Started, DeployError> {
        let image = self.ensure_image(plan, svc).await?;
        let stable_name = container_name(&plan.project_slug, &plan.environment, &svc.service);
        let temp_name = format!("{stable_name}-{short}");
        // A leftover from an interrupted attempt of this same deployment.
        let _ = self.docker.remove_container(&temp_name, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
        let mut labels: HashMap<String, String> =
            self.extra_labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut label = |k: &str, v: &str| {
            labels.insert(format!("{LABEL_PREFIX}{k}"), v.to_string());
        };
        label("managed", "true");
        label("project", &plan.project_id);
        label("project-slug", &plan.project_slug);
        label("environment", &plan.environment);
        label("service", &svc.service);
        label("deployment", &plan.deployment_id);
        label("digest", &svc.digest);
        if let Some(r) = &plan.release_id {
            label("release", r);
        }
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            cmd: svc.command.clone(),
            env: (!svc.env.is_empty()).then(|| svc.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            // An init process forwards stop signals (a server running as PID 1
            // usually ignores SIGTERM) and reaps zombies. Never any network.
            host_config: Some(HostConfig { network_mode: Some("none".into()), init: Some(true), ..Default::default() }),
            ..Default::default()
        };
        let options = CreateContainerOptions { name: Some(temp_name.clone()), ..Default::default() };
        let created = match self.docker.create_container(Some(options.clone()), body.clone()).await {
            Err(e) if engine_message(&e).contains("docker-init") => {
                tracing::warn!("this engine has no docker-init; running the container without an init process");
                let mut body = body;
                if let Some(h) = body.host_config.as_mut() {
                    h.init = None;
                }
                self.docker.create_container(Some(options), body).await
            }
            other => other,
        }
        .map_err(|e| DeployError::service(&svc.service, format!("the engine refused to create the container: {}", engine_message(&e))))?;
        let started = Started {
            service: svc.service.clone(),
            temp_name,
            stable_name,
            image,
            digest: svc.digest.clone(),
            id: created.id,
        };
        if let Err(e) = self.docker.start_container(&started.id, None).await {
            let message = format!("the container could not start: {}", engine_message(&e));
            self.remove(&started.id).await;
            return Err(DeployError::service(&svc.service, message));
        }
        let deadline = Instant::now() + self.start_timeout;
        loop {
            let state = self.docker.inspect_container(&started.id, None).await.ok().and_then(|c| c.state);
            match state.as_ref().and_then(|s| s.status) {
                Some(ContainerStateStatusEnum::RUNNING) => return Ok(started),
                Some(ContainerStateStatusEnum::CREATED) | Some(ContainerStateStatusEnum::EMPTY) | None
                    if Instant::now() < deadline => {}
                _ => {
                    let err = self.exit_reason(&started).await;
                    self.remove(&started.id).await;
                    return Err(err);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fails (with the reason) when the container is no longer running.
    async fn check_running(&self, s: &Started) -> Result<(), DeployError> {
        let running = self
            .docker
            .inspect_container(&s.id, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .is_some_and(|st| st.status == Some(ContainerStateStatusEnum::RUNNING));
        if running {
            Ok(())
        } else {
            Err(self.exit_reason(s).await)
        }
    }

    /// Why a container is not running: its state, exit code and last log lines.
    async fn exit_reason(&self, s: &Started) -> DeployError {
        let state = match self.docker.inspect_container(&s.id, None).await {
            Ok(c) => c.state,
            Err(e) => return DeployError::service(&s.service, format!("the container disappeared: {}", engine_message(&e))),
        };
        let mut message = match &state {
            Some(st) if st.status == Some(ContainerStateStatusEnum::EXITED) || st.status == Some(ContainerStateStatusEnum::DEAD) => {
                let mut m = format!("the container exited with code {}", st.exit_code.unwrap_or(-1));
                if st.oom_killed == Some(true) {
                    m.push_str(" (killed: out of memory)");
                }
                if let Some(err) = st.error.as_deref().filter(|e| !e.is_empty()) {
                    m.push_str(&format!(": {err}"));
                }
                m
            }
            Some(st) => format!(
                "the container did not reach `running` within {}s (state: {})",
                self.start_timeout.as_secs(),
                st.status.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into())
            ),
            None => "the engine reports no state for the container".to_string(),
        };
        let logs = self.last_log_lines(&s.id, 20).await;
        if !logs.is_empty() {
            message.push_str("; last log lines:\n");
            message.push_str(&logs);
        }
        DeployError::service(&s.service, message)
    }

    async fn last_log_lines(&self, id: &str, n: usize) -> String {
        let options = LogsOptions { stdout: true, stderr: true, tail: n.to_string(), ..Default::default() };
        let mut stream = self.docker.logs(id, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Refuses to touch a container with a stable name that Slipway did not
    /// create for this project (checked before anything is replaced).
    async fn check_name_free(&self, plan: &DeployPlan, s: &Started) -> Result<(), DeployError> {
        if let Ok(existing) = self.docker.inspect_container(&s.stable_name, None).await {
            let labels = existing.config.and_then(|c| c.labels).unwrap_or_default();
            if labels.get(&format!("{LABEL_PREFIX}project")) != Some(&plan.project_id) {
                return Err(DeployError::service(
                    &s.service,
                    format!("a container named {} exists that this project's deployments did not create; remove or rename it", s.stable_name),
                ));
            }
        }
        Ok(())
    }

    /// Stops and removes every previous container of the service in this
    /// environment (the one with the stable name, and any left under a
    /// temporary name by an interrupted rollout), gives the new one the
    /// stable name, and lets the engine restart it from now on.
    async fn replace(&self, plan: &DeployPlan, s: &Started) -> Result<(), DeployError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{LABEL_PREFIX}project={}", plan.project_id),
                format!("{LABEL_PREFIX}environment={}", plan.environment),
                format!("{LABEL_PREFIX}service={}", s.service),
            ],
        )]);
        let previous = self
            .docker
            .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
            .await
            .map_err(|e| DeployError::service(&s.service, format!("listing the previous containers failed: {}", engine_message(&e))))?;
        for old_id in previous.into_iter().filter_map(|c| c.id).filter(|id| *id != s.id) {
            let stop = StopContainerOptions { t: Some(self.stop_timeout), ..Default::default() };
            if let Err(e) = self.docker.stop_container(&old_id, Some(stop)).await {
                tracing::debug!(container = %old_id, error = %e, "stopping a previous container");
            }
            self.docker
                .remove_container(&old_id, Some(RemoveContainerOptions { force: true, ..Default::default() }))
                .await
                .map_err(|e| {
                    DeployError::service(&s.service, format!("the previous container could not be removed: {}", engine_message(&e)))
                })?;
        }
        self.docker
            .rename_container(&s.id, RenameContainerOptions { name: s.stable_name.clone() })
            .await
            .map_err(|e| {
                DeployError::service(
                    &s.service,
                    format!("the new container {} could not be renamed to {}: {}", s.temp_name, s.stable_name, engine_message(&e)),
                )
            })?;
        // Restarted by the engine only now: during the rollout an exit must be seen as a failure.
        let restart = ContainerUpdateBody {
            restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::UNLESS_STOPPED), maximum_retry_count: None }),
            ..Default::default()
        };
        if let Err(e) = self.docker.update_container(&s.id, restart).await {
            tracing::warn!(container = %s.stable_name, error = %e, "setting the restart policy");
        }
        Ok(())
    }

    async fn remove(&self, id: &str) {
        let options = RemoveContainerOptions { force: true, ..Default::default() };
        if let Err(e) = self.docker.remove_container(id, Some(options)).await {
            tracing::warn!(container = %id, error = %e, "removing a new container after a failed rollout");
        }
    }

    async fn remove_all(&self, started: &[Started]) {
        for s in started {
            self.remove(&s.id).await;
        }
    }
}

impl DeployTarget for LocalDockerTarget {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn deploy<'a>(&'a self, plan: &'a DeployPlan) -> BoxFuture<'a, Result<Vec<ContainerView>, DeployError>> {
        Box::pin(self.rollout(plan))
    }
}

/// The engine's own words for an error, without bollard's wrapping.
fn engine_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_lose_their_tag_or_digest_but_keep_the_port() {
        assert_eq!(repository_of("127.0.0.1:5000/demo/api:sha-0123456789ab"), "127.0.0.1:5000/demo/api");
        assert_eq!(repository_of("127.0.0.1:5000/demo/api"), "127.0.0.1:5000/demo/api");
        assert_eq!(repository_of("demo/web:local"), "demo/web");
        assert_eq!(repository_of(&format!("r.io/a/b@sha256:{}", "0".repeat(64))), "r.io/a/b");
        assert_eq!(repository_of("busybox"), "busybox");
    }

    #[test]
    fn container_names_are_stable_and_valid() {
        assert_eq!(container_name("demo", "staging", "api"), "slipway-demo-staging-api");
        assert_eq!(container_name("demo", "prod", "a b"), "slipway-demo-prod-a-b");
    }
}
