//! The build worker: claims runs from the Postgres queue (several workers on
//! one database never run the same build), renews its lease while it works,
//! and runs the phases — clone, checkout, workspace, build, push, record —
//! logging each. A cancel request, a timeout or a lost lease stops the build
//! by dropping it (the engine kills the RUN step at once).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use slipway_model::build::BuildSpec;
use slipway_model::image_name::{NamingProblem, ProjectImages, SlipwayRegistry};
use slipway_model::manifest::{self, Manifest, Registry};
use slipway_model::project::Project;
use slipway_model::status::ErrorClass;
use tokio_util::sync::CancellationToken;

use super::registry::{self as reg, RegistryTarget};
use super::workspace::{self, FsRepoView};
use super::{BuildBackend, BuildFailure, ImageBuild};
use crate::logs::{start_writer, LogSink, Masker, Phase};
use crate::secrets::SecretBox;
use crate::worker::{self, Job, Shape};
use super::{ArtifactInsert, ClaimedRun, Heartbeat, RunOutcome};
use crate::store::Store;

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Unique per process, e.g. `hostname:pid:n`; recorded as the run's runner_ref.
    pub worker_id: String,
    /// Builds run at once by this process.
    pub concurrency: usize,
    /// How long a claim stays valid without a heartbeat.
    pub lease: Duration,
    /// How often the lease is renewed (and a cancel request noticed).
    pub heartbeat: Duration,
    /// Timeout of a run that does not set its own.
    pub default_timeout: Duration,
    /// `SLIPWAY_BUILD_REUSE`: reuse matching successful artifacts.
    pub reuse: bool,
    /// Claims of one run before it is failed as lost.
    pub max_attempts: i32,
    /// Scratch space for checkouts (`<dir>/<run id>`), removed after each run.
    pub work_dir: PathBuf,
    /// The registry Slipway pushes to by default (`host:port`), if any.
    pub default_registry: Option<String>,
    /// Name of this installation, given to builds as BUILD_RACK.
    pub instance_name: String,
    /// Issues the credentials pushes to `default_registry` use, when that
    /// registry authenticates with Slipway's tokens. [`RunnerConfig::new`]
    /// takes it from `SLIPWAY_REGISTRY_TOKEN_KEY` when that is set.
    pub registry_tokens: Option<crate::registry_auth::TokenIssuer>,
    /// Memory limit in bytes of each image build (`ImageBuild.memory`); `None` for none.
    /// Only the legacy backend enforces it on this engine.
    pub build_memory: Option<i64>,
}

impl RunnerConfig {
    /// Sensible defaults for one process.
    pub fn new(work_dir: PathBuf, default_registry: Option<String>) -> RunnerConfig {
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "slipway".into());
        RunnerConfig {
            worker_id: format!("{host}:{}:{}", std::process::id(), &uuid_suffix()),
            concurrency: 2,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(1),
            default_timeout: Duration::from_secs(3600),
            reuse: true,
            max_attempts: 3,
            work_dir,
            registry_tokens: default_registry.as_deref().and_then(|h| match crate::registry_auth::TokenIssuer::from_env(h) {
                Ok(issuer) => issuer,
                Err(e) => {
                    tracing::warn!(error = %e, "SLIPWAY_REGISTRY_TOKEN_KEY is set but unusable; pushing without registry credentials");
                    None
                }
            }),
            default_registry,
            instance_name: host,
            build_memory: None,
        }
    }
}

fn uuid_suffix() -> String {
    slipway_model::id::new_id("w").trim_start_matches("w_").chars().rev().take(6).collect()
}

/// A build worker bound to a store, an engine and a backend.
pub struct Runner {
    store: Store,
    docker: Docker,
    backend: Arc<dyn BuildBackend>,
    secrets: Option<Arc<SecretBox>>,
    config: RunnerConfig,
}

/// Why the phases stopped early.
enum Stop {
    Failed(BuildFailure),
    Cancelled,
    TimedOut(Duration),
    LeaseLost,
}

impl From<BuildFailure> for Stop {
    fn from(f: BuildFailure) -> Self {
        Stop::Failed(f)
    }
}

fn internal(e: impl std::fmt::Display) -> BuildFailure {
    BuildFailure::new(ErrorClass::Unknown, format!("internal error: {e}"))
}

impl Runner {
    pub fn new(store: Store, docker: Docker, backend: Arc<dyn BuildBackend>, secrets: Option<Arc<SecretBox>>, config: RunnerConfig) -> Runner {
        // The store opens the project's git credential with the same key.
        let store = match (&secrets, store.secret_box()) {
            (Some(sb), None) => store.with_secrets(sb.clone()),
            _ => store,
        };
        Runner { store, docker, backend, secrets, config }
    }

    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// Claims and executes runs until `shutdown` fires, `concurrency` at a
    /// time, in the shape of every worker ([`crate::worker`]): woken by
    /// [`super::QUEUE_CHANNEL`] or every second, reaping expired leases every
    /// 5 s. On shutdown its running builds stop (their leases run out and
    /// another worker takes them over); the handle resolves after that.
    pub fn start(self: Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tracing::info!(worker = %self.config.worker_id, concurrency = self.config.concurrency, backend = self.backend.name(), "build worker starting");
        let shape = Shape {
            name: "build worker",
            channel: super::QUEUE_CHANNEL,
            slots: self.config.concurrency.max(1),
            poll: Duration::from_secs(1),
            drain: false,
        };
        let store = self.store.clone();
        let job = Arc::new(BuildJob { runner: self, last_reap: std::sync::Mutex::new(None) });
        worker::spawn(store, shape, job, shutdown)
    }

    /// Claims one pending run, if any, and executes it to the end. Returns its id.
    pub async fn run_once(&self) -> crate::Result<Option<String>> {
        match self.store.claim_run(&self.config.worker_id, self.config.lease, self.backend.name()).await? {
            Some(claimed) => {
                let id = claimed.run.id.clone();
                self.execute(claimed).await;
                Ok(Some(id))
            }
            None => Ok(None),
        }
    }

    /// Executes a claimed run and records how it ended.
    #[tracing::instrument(skip_all, fields(run = %claimed.run.id, build = %claimed.run.build_id))]
    pub async fn execute(&self, claimed: ClaimedRun) {
        let run = &claimed.run;
        let backend = self.backend.name();
        crate::metrics::build_run_claimed(backend, crate::metrics::since(run.queued_at));
        let started = std::time::Instant::now();
        let outcome = match self.prepare_and_run(&claimed).await {
            Ok(outcome) => outcome,
            Err(e) => RunOutcome::Failed { code: e.class.as_str().into(), message: e.message, failed_step: e.failed_step },
        };
        let (status, class) = match &outcome {
            RunOutcome::Completed { .. } => ("completed", None),
            RunOutcome::Failed { code, .. } => ("failed", Some(code.as_str())),
            RunOutcome::Cancelled { .. } => ("cancelled", None),
        };
        crate::metrics::build_run_ended(backend, status, class, started.elapsed());
        match self.store.finish_run(&run.id, &claimed.worker, &outcome).await {
            Ok(true) => {
                tracing::info!(outcome = ?outcome_name(&outcome), "run finished");
                if matches!(outcome, RunOutcome::Completed { .. }) {
                    if let Err(e) = crate::release::maybe_auto_release(&self.store, &run.build_id).await {
                        tracing::warn!(error = %e, "automatic release of the completed build");
                    }
                }
            }
            Ok(false) => tracing::warn!("run finished after its lease was lost; another worker owns it now"),
            Err(e) => tracing::error!(error = %e, "recording the end of a run"),
        }
        let _ = tokio::fs::remove_dir_all(self.config.work_dir.join(&run.id)).await;
    }

    async fn prepare_and_run(&self, claimed: &ClaimedRun) -> Result<RunOutcome, BuildFailure> {
        let run = &claimed.run;
        let spec = self.store.get_build_spec(&run.build_id).await.map_err(internal)?;
        let project = self.store.get_project(&spec.project_id).await.map_err(internal)?;
        let (_, content) = self
            .store
            .manifest_content(&spec.project_id, &spec.git_sha)
            .await
            .map_err(internal)?
            .ok_or_else(|| internal("the manifest of this build was not recorded"))?;
        let manifest = manifest::parse(&content).map_err(|e| BuildFailure::new(ErrorClass::BuildError, format!("manifest: {e}")))?;
        let (plan, images) = self.registry_plan(&spec, &project, &manifest).await?;
        let mut secrets = match &self.secrets {
            Some(sb) => self.store.all_secret_values(sb, &project.id).await.map_err(internal)?,
            None => Vec::new(),
        };
        let build_auth = plan.build_auth();
        if let Some((_, password)) = plan.credentials() {
            secrets.push(password.to_string());
        }
        secrets.push(build_auth.clone());
        let first_seq = self.store.next_log_seq(&run.id).await.map_err(internal)?;
        let (log, writer) = start_writer(self.store.clone(), run.id.clone(), first_seq, Masker::new(secrets));
        log.system(
            Phase::System,
            &format!(
                "run {} (#{}, attempt {}) of build {} on {} by {}",
                run.id, run.seq, run.attempt, spec.id, self.backend.name(), self.config.worker_id
            ),
        )
        .await;
        let timeout = run
            .timeout_seconds
            .map(|s| Duration::from_secs(s.max(1) as u64))
            .unwrap_or(self.config.default_timeout);
        let ctx = RunCtx {
            spec: &spec,
            project: &project,
            manifest: &manifest,
            plan: &plan,
            images: &images,
            build_auth,
            log: &log,
            run_id: &run.id,
            run_seq: run.seq,
            force_rebuild: spec.force_rebuild || run.force_rebuild,
        };
        let result = tokio::select! {
            r = self.phases(ctx) => r,
            stop = self.watch(&run.id, &claimed.worker) => Err(stop),
            _ = tokio::time::sleep(timeout) => Err(Stop::TimedOut(timeout)),
        };
        let outcome = match result {
            Ok(reused_from) => {
                log.system(Phase::Record, "run completed").await;
                RunOutcome::Completed { reused_from }
            }
            Err(Stop::Failed(f)) => {
                let message = log.mask(&f.message);
                log.line(Phase::System, f.failed_step.as_deref(), super::Stream::System, &format!("✗ {message}")).await;
                RunOutcome::Failed { code: f.class.as_str().into(), message, failed_step: f.failed_step.map(|s| log.mask(&s)) }
            }
            Err(Stop::Cancelled) => {
                log.system(Phase::System, "✗ cancelled on request; the build was stopped").await;
                RunOutcome::Cancelled { message: "cancelled on request".into() }
            }
            Err(Stop::TimedOut(t)) => {
                let message = format!("the build did not finish within its timeout of {}s and was stopped", t.as_secs());
                log.system(Phase::System, &format!("✗ {message}")).await;
                RunOutcome::Failed { code: ErrorClass::TimeoutError.as_str().into(), message, failed_step: None }
            }
            Err(Stop::LeaseLost) => {
                log.system(Phase::System, "✗ this worker lost its lease; stopping (another worker may take the run over)").await;
                RunOutcome::Failed {
                    code: ErrorClass::Unknown.as_str().into(),
                    message: "the worker lost its lease on this run".into(),
                    failed_step: None,
                }
            }
        };
        drop(log);
        if let Err(e) = writer.finish().await {
            tracing::error!(error = %e, "storing build logs");
        }
        Ok(outcome)
    }

    /// Renews the lease every heartbeat; returns when the run must stop.
    async fn watch(&self, run_id: &str, worker: &str) -> Stop {
        loop {
            tokio::time::sleep(self.config.heartbeat).await;
            match self.store.heartbeat(run_id, worker, self.config.lease).await {
                Ok(Heartbeat::Renewed) => {}
                Ok(Heartbeat::CancelRequested) => return Stop::Cancelled,
                Ok(Heartbeat::Lost) => return Stop::LeaseLost,
                Err(e) => tracing::warn!(error = %e, "heartbeat failed; retrying"),
            }
        }
    }

    /// Where the run's images go, and the project's image namespaces (a
    /// registry that points into another project's namespace is refused).
    async fn registry_plan(&self, spec: &BuildSpec, project: &Project, manifest: &Manifest) -> Result<(RegistryPlan, ProjectImages), BuildFailure> {
        let registry = match &spec.registry {
            Some(v) => parse_registry_override(v)?,
            None => manifest.registry.clone(),
        };
        let images = ProjectImages::new(&project.slug, &registry, SlipwayRegistry::from_config(self.config.default_registry.as_deref()));
        images.build_namespace().map_err(naming_failure)?;
        let plan = match registry {
            Registry::None => RegistryPlan::NoPush,
            Registry::Native => match &self.config.default_registry {
                Some(host) => RegistryPlan::Push(RegistryTarget {
                    embedded: true,
                    namespace: Some(project.slug.clone()),
                    insecure: reg::insecure_allowed(host),
                    ..RegistryTarget::new(host.clone())
                }),
                None => RegistryPlan::NoPush,
            },
            byo @ Registry::Byo { .. } => {
                // Only a registry on the project's list, with its listed secrets.
                let listing = self
                    .store
                    .allowed_registry_for(&project.id, &project.slug, &byo, "registry")
                    .await
                    .map_err(|e| match e {
                        crate::Error::App(app) => {
                            BuildFailure::new(ErrorClass::AuthError, app.problems.first().map(|p| p.message.clone()).unwrap_or(app.message))
                        }
                        other => internal(other),
                    })?;
                let Registry::Byo { host, namespace, auth } = byo else { return Err(internal("registry kind changed")) };
                let credentials = match auth {
                    None => None,
                    Some(auth) => {
                        let sb = self.secrets.as_ref().ok_or_else(|| {
                            BuildFailure::new(ErrorClass::AuthError, "registry credentials are configured but this server has no secret store")
                        })?;
                        let mut values = Vec::new();
                        for name in [&auth.username_secret, &auth.token_secret] {
                            let value = self.store.secret_value(sb, &project.id, None, name).await.map_err(internal)?;
                            values.push(value.ok_or_else(|| {
                                BuildFailure::new(
                                    ErrorClass::AuthError,
                                    format!("registry {host} needs the secret `{name}`, which is not set in project {}: set it with `slipway secrets set {name}`", project.slug),
                                )
                            })?);
                        }
                        let token = values.pop().unwrap_or_default();
                        let user = values.pop().unwrap_or_default();
                        Some((user, token))
                    }
                };
                RegistryPlan::Push(RegistryTarget {
                    insecure: reg::insecure_allowed(&host),
                    namespace: namespace.or_else(|| Some(project.slug.clone())),
                    credentials,
                    auth_hosts: listing.map(|l| l.auth_hosts).unwrap_or_default(),
                    ..RegistryTarget::new(host)
                })
            }
        };
        Ok((plan, images))
    }

    /// A push of `repo` to Slipway's registry carries a fresh credential for
    /// this project (push and pull on its own repositories only); other
    /// targets keep their own credentials, and an image named on another
    /// host never gets Slipway's.
    async fn registry_credentials(&self, target: &RegistryTarget, repo: &str, project: &Project) -> Result<RegistryTarget, BuildFailure> {
        let repo_host = repo.split('/').next().unwrap_or_default();
        match &self.config.registry_tokens {
            Some(issuer) if target.credentials.is_none() && issuer.covers(&target.host) && issuer.covers(repo_host) => {
                let credentials = issuer.project_credential(&self.store, &project.id, &project.slug).await.map_err(internal)?;
                Ok(RegistryTarget { credentials: Some(credentials), ..target.clone() })
            }
            _ => Ok(target.clone()),
        }
    }

    async fn phases(&self, ctx: RunCtx<'_>) -> Result<Option<String>, Stop> {
        let RunCtx { spec, project, manifest, plan, images, log, run_id, .. } = &ctx;
        let (spec, project, manifest, plan, images, log, run_id) = (*spec, *project, *manifest, *plan, *images, *log, *run_id);
        // Reuse.
        if self.config.reuse && !ctx.force_rebuild {
            if let Some(from) = self.store.find_reusable_run(spec).await.map_err(internal)? {
                let copied = self.store.copy_artifacts(&from, run_id, &spec.id).await.map_err(internal)?;
                log.system(
                    Phase::Record,
                    &format!("reusing {copied} artifact(s) of run {from}: same project, sha, manifest, services, build args and registry (force_rebuild to build again)"),
                )
                .await;
                return Ok(Some(from));
            }
        } else if ctx.force_rebuild {
            log.system(Phase::System, "force_rebuild: not reusing earlier artifacts").await;
        }

        // Clone and check out.
        let dir = self.config.work_dir.join(run_id);
        let _ = tokio::fs::remove_dir_all(&dir).await;
        tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
        log.system(Phase::Clone, &format!("cloning {}", workspace::redact_url(&project.repo_url))).await;
        let started = Instant::now();
        let src = dir.join("src");
        let git = workspace::Git::for_project(&self.store, project).await?;
        let checkout = git.checkout(&project.repo_url, &spec.git_sha, &src).await?;
        log.system(Phase::Checkout, &format!("checked out {} in {:.2}s", checkout.sha, started.elapsed().as_secs_f64())).await;

        // Workspace: every service to build must have its context and Dockerfile.
        let services: Vec<String> = match &spec.services {
            Some(s) => s.clone(),
            None => manifest.buildable_service_names().into_iter().map(str::to_string).collect(),
        };
        let view = FsRepoView(src.clone());
        let problems: Vec<String> = manifest::check_paths(manifest, &view)
            .into_iter()
            .filter(|p| services.iter().any(|s| p.path.starts_with(&format!("services.{s}."))))
            .map(|p| p.to_string())
            .collect();
        if !problems.is_empty() {
            for p in &problems {
                log.system(Phase::Workspace, &format!("✗ {p}")).await;
            }
            return Err(Stop::Failed(BuildFailure::new(
                ErrorClass::BuildError,
                format!(
                    "no artifact can be built: {} — add the missing path in commit {} or fix the manifest",
                    problems.join("; "),
                    &spec.git_sha[..12]
                ),
            )));
        }
        // Two names per image: the run's own tag, which no other run uses, is
        // what is built, pushed and recorded (so concurrent runs never see each
        // other's images); the human tag is then pointed at that digest, and
        // differs whenever the build's inputs differ.
        let tag = image_tag(spec, &input_args(&ctx, &self.config));
        let own_tag = run_image_tag(run_id);
        let base_images = crate::isolation::BaseImagePolicy {
            project_slug: project.slug.clone(),
            registry_host: self.config.default_registry.clone(),
            allowed: self.store.allowed_image_patterns(&project.id).await.map_err(internal)?,
        };
        let mut refused = Vec::new();
        let mut jobs = Vec::new();
        for name in &services {
            let service = manifest.services.get(name).ok_or_else(|| internal(format!("service {name} vanished")))?;
            let Some(build) = &service.build else { continue };
            let context_dir = src.join(&build.context);
            let dockerfile = build.dockerfile.clone();
            let (tar, stats) = tokio::task::spawn_blocking(move || workspace::context_tar_with_dockerfile(&context_dir, &dockerfile))
                .await
                .map_err(internal)?
                .map_err(|e| BuildFailure::new(ErrorClass::BuildError, format!("service `{name}`: reading the build context `{}` failed: {e}", build.context)))?;
            log.system(
                Phase::Workspace,
                &format!("{name}: context `{}` — {} files, {} bytes, {} ignored by .dockerignore", build.context, stats.files, stats.bytes, stats.ignored),
            )
            .await;
            let repo = images.repository(name, service.image.as_deref()).map_err(naming_failure)?;
            let mut labels = BTreeMap::new();
            labels.insert("dev.slipway.project".to_string(), project.slug.clone());
            labels.insert("dev.slipway.build".to_string(), spec.id.clone());
            labels.insert("dev.slipway.service".to_string(), name.clone());
            labels.insert("dev.slipway.git-sha".to_string(), spec.git_sha.clone());
            let mut build_args = build.args.clone();
            build_args.extend(spec.build_args.custom.clone());
            let mut secrets = BTreeMap::new();
            for m in &spec.build_args.managed {
                // Credentials never become build args (those are recorded in the
                // image's history): BUILD_AUTH is a BuildKit secret mount.
                if m == BUILD_AUTH {
                    build_args.remove(m);
                    secrets.insert(m.clone(), ctx.build_auth.clone());
                } else {
                    build_args.insert(m.clone(), managed_value(m, &ctx, &self.config));
                }
            }
            let label = std::path::Path::new(&build.context).join(&build.dockerfile).display().to_string();
            refused.extend(base_images.check_context(label.trim_start_matches("./"), &tar, &build.dockerfile, &build_args));
            jobs.push((
                name.clone(),
                repo.clone(),
                ImageBuild {
                    service: name.clone(),
                    context_tar: tar,
                    dockerfile: build.dockerfile.clone(),
                    target: build.target.clone(),
                    build_args,
                    secrets,
                    tag: format!("{repo}:{own_tag}"),
                    labels,
                    memory: self.config.build_memory,
                },
            ));
        }
        if !refused.is_empty() {
            for v in &refused {
                log.system(Phase::Workspace, &format!("✗ {v}")).await;
            }
            return Err(Stop::Failed(crate::isolation::refusal(&refused)));
        }
        if jobs.is_empty() {
            return Err(Stop::Failed(BuildFailure::new(
                ErrorClass::BuildError,
                "no service to build: none of the requested services has a build section",
            )));
        }

        // Build.
        let mut built = Vec::new();
        for (name, repo, job) in &jobs {
            log.system(Phase::Build, &format!("building {name} → {}", job.tag)).await;
            let started = Instant::now();
            let image = self.backend.build(job, log).await?;
            log.system(Phase::Build, &format!("built {name} in {:.2}s ({})", started.elapsed().as_secs_f64(), short(&image.image_id))).await;
            built.push((name.clone(), repo.clone(), image));
        }

        // Push, then record.
        let mut artifacts = Vec::new();
        for (name, repo, image) in &built {
            let digest = match plan {
                RegistryPlan::Push(target) => {
                    let target = &self.registry_credentials(target, repo, project).await?;
                    log.system(Phase::Push, &format!("pushing {repo}:{own_tag}")).await;
                    let started = Instant::now();
                    let digest = reg::push(&self.docker, repo, &own_tag, target, log).await?;
                    log.system(Phase::Push, &format!("pushed {repo}:{own_tag} as {digest} in {:.2}s", started.elapsed().as_secs_f64())).await;
                    reg::point_tag(&self.docker, repo, &image.image_id, &tag, &digest, target, log).await?;
                    digest
                }
                RegistryPlan::NoPush => {
                    log.system(Phase::Push, &format!("{name}: registry is \"none\": not pushed; recording the local image id")).await;
                    reg::tag_local(&self.docker, &image.image_id, repo, &tag).await?;
                    image.image_id.clone()
                }
            };
            reg::untag_local(&self.docker, &format!("{repo}:{own_tag}")).await;
            artifacts.push(ArtifactInsert {
                service_name: name.clone(),
                image_ref: format!("{repo}:{tag}"),
                digest,
                platforms: image.platform.clone().into_iter().collect(),
                size_bytes: image.size_bytes,
            });
        }
        for a in &artifacts {
            self.store.insert_artifact(run_id, &spec.id, a).await.map_err(internal)?;
            log.system(Phase::Record, &format!("artifact {}: {}@{}", a.service_name, a.image_ref, a.digest)).await;
        }
        Ok(None)
    }
}

/// The build worker's [`Job`]: claims pending runs and executes them.
struct BuildJob {
    runner: Arc<Runner>,
    /// When expired leases were last reaped.
    last_reap: std::sync::Mutex<Option<Instant>>,
}

impl Job for BuildJob {
    type Claim = ClaimedRun;

    fn tick(&self) -> super::BoxFuture<'_, ()> {
        Box::pin(async move {
            let due = {
                let mut last = match self.last_reap.lock() {
                    Ok(l) => l,
                    Err(p) => p.into_inner(),
                };
                let due = last.is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
                if due {
                    *last = Some(Instant::now());
                }
                due
            };
            if due {
                match self.runner.store.reap_expired_runs(self.runner.config.max_attempts).await {
                    Ok((0, 0)) => {}
                    Ok((requeued, failed)) => tracing::warn!(requeued, failed, "recovered runs whose worker stopped"),
                    Err(e) => tracing::warn!(error = %e, "reaping expired runs"),
                }
            }
        })
    }

    fn claim(&self) -> super::BoxFuture<'_, crate::Result<Option<ClaimedRun>>> {
        let r = &self.runner;
        Box::pin(r.store.claim_run(&r.config.worker_id, r.config.lease, r.backend.name()))
    }

    fn run(self: Arc<Self>, claimed: ClaimedRun) -> super::BoxFuture<'static, ()> {
        Box::pin(async move { self.runner.execute(claimed).await })
    }
}

fn outcome_name(o: &RunOutcome) -> &'static str {
    match o {
        RunOutcome::Completed { reused_from: Some(_) } => "completed (reused)",
        RunOutcome::Completed { .. } => "completed",
        RunOutcome::Failed { .. } => "failed",
        RunOutcome::Cancelled { .. } => "cancelled",
    }
}

fn short(id: &str) -> &str {
    let s = id.strip_prefix("sha256:").unwrap_or(id);
    &s[..s.len().min(12)]
}

/// The human tag: `:local` for development builds, the version for versioned
/// (pipeline) builds, else `:sha-<12 hex>`; followed by `-a<10 hex>` of the
/// build args when there are any, so builds whose inputs differ never share
/// a tag. `args` are the build's own args with their values (never
/// `BUILD_AUTH`, see [`input_args`]).
pub fn image_tag(spec: &BuildSpec, args: &BTreeMap<String, String>) -> String {
    let base = base_tag(spec);
    if args.is_empty() {
        return base;
    }
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (k, v) in args {
        // Length-prefixed, so `A=1,B=2` and `A=1\0B=2` cannot collide.
        for part in [k, v] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
    }
    let hash = hex::encode(hasher.finalize());
    // A tag is at most 128 characters; keep room for the suffix.
    let base: String = base.chars().take(128 - 12).collect();
    format!("{base}-a{}", &hash[..10])
}

fn base_tag(spec: &BuildSpec) -> String {
    if spec.inputs.get("development").and_then(|v| v.as_bool()) == Some(true) {
        return "local".into();
    }
    if let Some(version) = spec.inputs.get("version").and_then(|v| v.as_str()) {
        let clean: String = version
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' { c } else { '-' })
            .take(128)
            .collect();
        if !clean.is_empty() && !clean.starts_with(['.', '-']) {
            return clean;
        }
    }
    reg::sha_tag(&spec.git_sha)
}

/// The tag only this run builds and pushes under: its run id.
pub fn run_image_tag(run_id: &str) -> String {
    run_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// The build's inputs that shape its images beyond the commit: custom args
/// and managed args with their values, except `BUILD_AUTH` (a credential,
/// which is not an input of the image and must not be hashed into a name).
fn input_args(ctx: &RunCtx<'_>, config: &RunnerConfig) -> BTreeMap<String, String> {
    let mut args: BTreeMap<String, String> = ctx.spec.build_args.custom.clone().into_iter().collect();
    for m in &ctx.spec.build_args.managed {
        if m != "BUILD_AUTH" {
            args.insert(m.clone(), managed_value(m, ctx, config));
        }
    }
    args
}

/// Parses a spec's registry override: `"none"`, `"local"`/`"native"`, or `{host, namespace?, auth?}`.
pub fn parse_registry_override(v: &serde_json::Value) -> Result<Registry, BuildFailure> {
    // A manifest needs a service; a placeholder one lets the registry section be checked alone.
    let yaml = serde_json::to_string(&serde_json::json!({ "registry": v, "services": { "override": { "image": "override" } } }))
        .map_err(internal)?;
    manifest::parse(&yaml)
        .map(|m| m.registry)
        .map_err(|e| BuildFailure::new(ErrorClass::BuildError, format!("registry override: {e}")))
}

/// The managed value holding the registry credentials; a build secret, never a build arg.
pub const BUILD_AUTH: &str = "BUILD_AUTH";

struct RunCtx<'a> {
    spec: &'a BuildSpec,
    project: &'a Project,
    manifest: &'a Manifest,
    plan: &'a RegistryPlan,
    images: &'a ProjectImages,
    build_auth: String,
    log: &'a LogSink,
    run_id: &'a str,
    run_seq: i32,
    force_rebuild: bool,
}

fn managed_value(name: &str, ctx: &RunCtx<'_>, config: &RunnerConfig) -> String {
    match name {
        "BUILD_APP" => ctx.project.slug.clone(),
        "BUILD_ID" => ctx.spec.id.clone(),
        "BUILD_GIT_SHA" => ctx.spec.git_sha.clone(),
        "BUILD_MANIFEST" => manifest::MANIFEST_PATH.to_string(),
        "BUILD_GENERATION" => ctx.run_seq.to_string(),
        "BUILD_DEVELOPMENT" => (ctx.spec.inputs.get("development").and_then(|v| v.as_bool()) == Some(true)).to_string(),
        "BUILD_RACK" => config.instance_name.clone(),
        _ => String::new(),
    }
}

/// Where a run's images go.
enum RegistryPlan {
    Push(RegistryTarget),
    /// Registry `"none"`: images stay local, named `slipway.local/<project>/<service>`.
    NoPush,
}

/// A refused image name or registry fails the run as a manifest problem.
fn naming_failure(p: NamingProblem) -> BuildFailure {
    BuildFailure::new(ErrorClass::BuildError, format!("manifest: {p}"))
}

impl RegistryPlan {

    fn credentials(&self) -> Option<(&str, &str)> {
        match self {
            RegistryPlan::Push(RegistryTarget { credentials: Some((u, p)), .. }) => Some((u.as_str(), p.as_str())),
            _ => None,
        }
    }

    /// BUILD_AUTH: the registry credentials as JSON, `{}` when there are none.
    fn build_auth(&self) -> String {
        match self {
            RegistryPlan::Push(RegistryTarget { host, credentials: Some((u, p)), .. }) => {
                serde_json::json!({ host: { "username": u, "password": p } }).to_string()
            }
            _ => "{}".to_string(),
        }
    }
}
