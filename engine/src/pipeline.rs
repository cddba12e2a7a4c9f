//! Pipelines: running a manifest pipeline (build → release → deploy, in
//! `depends_on` order) at one commit, with each step's outputs flowing to the
//! steps after it.
//!
//! - [`start_pipeline`] records a `pending` run (`pip_…`) after checking the
//!   commit, its manifest and the manifest hash exactly like a build request
//!   (both through [`crate::builds::commit`]). A deploy request with `git_sha`
//!   (+ `manifest_hash`) and without `direct` ([`request_deploy`], the entry
//!   of every deploy request) starts one too, and records the
//!   requested deployment as `pending`, linked to the run
//!   (`Deployment::pipeline_run_id`); the run's deploy step to that
//!   environment fills in the release and starts it.
//! - [`drive_pipeline`] executes a run to its end on a [`DeployTarget`]. A
//!   **build** step creates a build (the step's services; idempotent per run
//!   and step) and waits for its run, which a build worker executes →
//!   `build_id`, `image_digests`. A **release** step releases the nearest
//!   upstream build (else `inputs.build_id`), tagged by the step's `tag`, else
//!   `inputs.release_tag`, else `inputs.version` → `release_id`,
//!   `release_tag`, `image_digests`. A **deploy** step deploys the nearest
//!   upstream release (else `inputs.release_id` / `inputs.release_tag`) to its
//!   environment: behind the environment's gate (the step waits while the
//!   deployment awaits approval, fails when it is rejected), waiting while
//!   another deployment of that environment rolls out, and then runs it →
//!   `deployment_id`. A failed step fails the run; the steps depending on it
//!   are skipped (independent steps still run).
//! - Every change of a step (status, start and end, a live `detail` line,
//!   outputs, error) is written to `pipeline_runs.steps` at once and
//!   announced on [`RUNS_CHANNEL`] (payload `<id>`), so the dashboard shows the
//!   run live.
//! - One driver per run: a driver holds a lease on the run
//!   (`lease_owner`, `lease_expires_at`), renews it while it works, and only
//!   writes while it holds it. [`spawn_driver`] is the server's loop: it claims
//!   runs nobody drives (`FOR UPDATE SKIP LOCKED`, expired leases included),
//!   so several processes never drive one run twice, and a run whose process
//!   stopped is resumed from what it recorded (the build of a build step is
//!   found by its idempotency key, the release of a release step by its note,
//!   the deployment of a deploy step by its run and environment).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use slipway_model::build::{is_git_sha, is_manifest_hash, NewBuild};
use slipway_model::id::{self, PIPELINE_RUN};
use slipway_model::manifest::{self, Manifest, Pipeline, PipelineStep, StepAction};
use slipway_model::pipeline::{PipelineCursor, PipelineListQuery, PipelineRun, PipelineRunPage, StepState, StepStatus};
use slipway_model::project::Project;
use slipway_model::release::{DeployRequest, Deployment, DeploymentKind, ImageDigests, NewRelease, Release};
use slipway_model::status::{BuildRunStatus, DeploymentStatus, PipelineRunStatus};
use slipway_model::{AppError, ErrorCode, FieldProblem};
use sqlx::{Postgres, Transaction};
use tokio_util::sync::CancellationToken;

use crate::builds::commit::{self, ManifestSource, ResolvedCommit};
use crate::builds::create::create_build;
use crate::builds::BoxFuture;
use crate::error::{Error, Result};
use crate::release::deployments as deps;
use crate::release::DeployTarget;
use crate::worker::{Job, Shape};
use crate::Store;

/// How long a driver's claim on a run lasts without being renewed.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How often a step looks at the build or deployment it waits for.
const POLL: Duration = Duration::from_millis(500);
/// Runs one [`spawn_driver`] loop drives at once.
const MAX_IN_FLIGHT: usize = 16;
/// Channel notified when a pipeline run is created or needs driving (payload: its id).
pub const RUNS_CHANNEL: &str = "pipeline_runs";

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    project_id: String,
    pipeline: String,
    git_sha: Option<String>,
    manifest_hash: Option<String>,
    inputs: serde_json::Value,
    status: String,
    steps: serde_json::Value,
    error_message: Option<String>,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
}

const RUN_COLUMNS: &str = "id, project_id, pipeline, git_sha, manifest_hash, inputs, status, steps, error_message, \
     created_by, created_at, started_at, completed_at";

fn decode_steps(run_id: &str, steps: serde_json::Value) -> Result<Vec<StepState>> {
    let map: BTreeMap<String, StepState> = serde_json::from_value(steps)
        .map_err(|e| Error::CorruptRow(format!("pipeline run {run_id} has malformed steps: {e}")))?;
    let mut list: Vec<StepState> = map.into_values().collect();
    list.sort_by_key(|s| s.position);
    Ok(list)
}

impl RunRow {
    fn into_run(self) -> Result<PipelineRun> {
        let status: PipelineRunStatus =
            self.status.parse().map_err(|e| Error::CorruptRow(format!("pipeline run {} has an unknown status: {e}", self.id)))?;
        Ok(PipelineRun {
            steps: decode_steps(&self.id, self.steps)?,
            id: self.id,
            project_id: self.project_id,
            pipeline: self.pipeline,
            git_sha: self.git_sha,
            manifest_hash: self.manifest_hash,
            inputs: self.inputs,
            status,
            error_message: self.error_message,
            created_by: self.created_by,
            created_at: self.created_at,
            started_at: self.started_at,
            completed_at: self.completed_at,
        })
    }
}

/// A pipeline run with its steps in execution order.
#[tracing::instrument(skip_all, fields(pipeline_run = %pipeline_run_id))]
pub async fn get_pipeline_run(store: &Store, pipeline_run_id: &str) -> Result<PipelineRun> {
    let row: Option<RunRow> = sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE id = $1"))
        .bind(pipeline_run_id.trim())
        .fetch_optional(store.pool())
        .await?;
    row.ok_or_else(|| Error::from(AppError::not_found(format!("pipeline run `{}`", pipeline_run_id.trim()))))?
        .into_run()
}

/// A project's pipeline runs, newest first, by keyset pages.
#[tracing::instrument(skip_all, fields(project = %project))]
pub async fn list_pipeline_runs(store: &Store, project: &str, q: &PipelineListQuery) -> Result<PipelineRunPage> {
    let project = store.get_project(project).await?;
    let limit = i64::from(q.limit.unwrap_or(50).clamp(1, 200));
    let rows: Vec<RunRow> = sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM pipeline_runs
         WHERE project_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
         ORDER BY created_at DESC, id DESC LIMIT $4"
    ))
    .bind(&project.id)
    .bind(q.before.as_ref().map(|c| c.created_at))
    .bind(q.before.as_ref().map(|c| c.id.clone()))
    .bind(limit + 1)
    .fetch_all(store.pool())
    .await?;
    let mut items = rows.into_iter().map(RunRow::into_run).collect::<Result<Vec<_>>>()?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|r| PipelineCursor { created_at: r.created_at, id: r.id.clone() })
    } else {
        None
    };
    Ok(PipelineRunPage { items, next })
}

// ---------------------------------------------------------------------------
// Starting
// ---------------------------------------------------------------------------

/// Resolves `git_ref` (a full sha, a branch or a tag; empty: the default
/// branch), reads the manifest at that commit (the one recorded for it, else
/// from the repository, recording it), and checks `manifest_hash` against it,
/// exactly like a build request (but naming the field `git_sha`).
async fn prepare(store: &Store, project: &Project, git_ref: &str, manifest_hash: Option<&str>) -> Result<ResolvedCommit> {
    let git_ref = commit::ref_or_default(Some(git_ref), project);
    let problems: Vec<FieldProblem> =
        commit::manifest_hash_problem(manifest_hash).into_iter().chain(commit::ref_problem(git_ref, "git_sha")).collect();
    if !problems.is_empty() {
        return Err(AppError::invalid_fields(problems).into());
    }
    let resolved = ResolvedCommit::resolve(store, project, git_ref, "git_sha", ManifestSource::RecordedFirst).await?;
    resolved.check_hash(manifest_hash)?;
    resolved.record(store, project).await?;
    Ok(resolved)
}

fn deploys_to(pipeline: &Pipeline, environment: &str) -> bool {
    pipeline.steps.iter().any(|s| matches!(&s.action, StepAction::Deploy { environment: e } if e == environment))
}

/// The pipeline to run: `requested`, else the manifest's only pipeline, else
/// the one called `deploy` or `release`. With `environment`, only pipelines
/// with a deploy step to it are candidates.
fn choose_pipeline<'m>(
    manifest: &'m Manifest,
    sha: &str,
    requested: Option<&str>,
    environment: Option<&str>,
) -> std::result::Result<(&'m str, &'m Pipeline), AppError> {
    let short = &sha[..sha.len().min(12)];
    let names = || manifest.pipelines.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
    if manifest.pipelines.is_empty() {
        return Err(AppError::invalid(
            "pipeline",
            format!("the manifest at {short} defines no pipelines; add one under `pipelines` (e.g. build → release → deploy)"),
        ));
    }
    if let Some(name) = requested.map(str::trim).filter(|n| !n.is_empty()) {
        let Some((key, pipeline)) = manifest.pipelines.get_key_value(name) else {
            return Err(AppError::invalid(
                "pipeline",
                format!("the manifest at {short} has no pipeline `{name}`; it has: {}", names()),
            ));
        };
        if let Some(env) = environment {
            if !deploys_to(pipeline, env) {
                return Err(AppError::invalid("pipeline", format!("pipeline `{name}` has no deploy step for environment `{env}`")));
            }
        }
        return Ok((key.as_str(), pipeline));
    }
    let candidates: Vec<(&String, &Pipeline)> =
        manifest.pipelines.iter().filter(|(_, p)| environment.is_none_or(|env| deploys_to(p, env))).collect();
    match candidates.as_slice() {
        [] => Err(AppError::invalid(
            "environment",
            format!(
                "no pipeline in the manifest at {short} deploys to `{}`; pipelines: {}",
                environment.unwrap_or_default(),
                names()
            ),
        )),
        [(name, p)] => Ok((name.as_str(), p)),
        many => {
            for preferred in ["deploy", "release"] {
                if let Some((name, p)) = many.iter().find(|(n, _)| n.as_str() == preferred) {
                    return Ok((name.as_str(), p));
                }
            }
            let list = many.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
            Err(AppError::invalid(
                "pipeline",
                format!("the manifest at {short} has several pipelines ({list}): name the one to run (`pipeline`, or `inputs.pipeline` in a deploy request)"),
            ))
        }
    }
}

/// Every step `pending`, keyed by name, with its position in execution order.
fn initial_steps(pipeline: &Pipeline) -> Result<serde_json::Value> {
    let mut map = serde_json::Map::new();
    for (i, step) in pipeline.execution_order().into_iter().enumerate() {
        let state = fresh_state(step, i);
        map.insert(step.name.clone(), serde_json::to_value(&state).map_err(internal)?);
    }
    Ok(serde_json::Value::Object(map))
}

fn fresh_state(step: &PipelineStep, position: usize) -> StepState {
    StepState {
        name: step.name.clone(),
        action: step.action.kind().to_string(),
        position: u32::try_from(position).unwrap_or(u32::MAX),
        depends_on: step.depends_on.clone(),
        environment: match &step.action {
            StepAction::Deploy { environment } => Some(environment.clone()),
            _ => None,
        },
        status: StepStatus::Pending,
        started_at: None,
        completed_at: None,
        detail: None,
        error: None,
        outputs: serde_json::json!({}),
    }
}

fn check_inputs(inputs: &serde_json::Value) -> Result<serde_json::Value> {
    match inputs {
        serde_json::Value::Null => Ok(serde_json::json!({})),
        v if v.is_object() => Ok(v.clone()),
        _ => Err(AppError::invalid("inputs", "must be a JSON object").into()),
    }
}

async fn insert_run(
    tx: &mut Transaction<'_, Postgres>,
    project: &Project,
    name: &str,
    pipeline: &Pipeline,
    prepared: &ResolvedCommit,
    inputs: &serde_json::Value,
    requested_by: Option<&str>,
) -> Result<String> {
    let id = id::new_id(PIPELINE_RUN);
    let inserted = sqlx::query(
        "INSERT INTO pipeline_runs (id, project_id, pipeline, git_sha, manifest_hash, inputs, status, steps, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)",
    )
    .bind(&id)
    .bind(&project.id)
    .bind(name)
    .bind(&prepared.sha)
    .bind(&prepared.hash)
    .bind(inputs)
    .bind(initial_steps(pipeline)?)
    .bind(requested_by)
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() && db.constraint() == Some("pipeline_runs_created_by_fkey") => {
            return Err(AppError::invalid("requested_by", "no such user").into())
        }
        Err(e) => return Err(e.into()),
    }
    crate::worker::notify(&mut **tx, RUNS_CHANNEL, &id).await?;
    Ok(id)
}

/// Starts a pipeline of `project` at `git_sha` (a full sha, or a branch or tag
/// to resolve; empty: the default branch): checks the commit's manifest and
/// `manifest_hash` (when given it must match), picks the pipeline
/// (`pipeline_name`, else the only one, else `deploy` / `release`) and
/// records a `pending` run, which a driver ([`spawn_driver`],
/// [`drive_pipeline`]) executes. `inputs` must be a JSON object (or null).
#[tracing::instrument(skip_all, fields(project = %project))]
pub async fn start_pipeline(
    store: &Store,
    project: &str,
    pipeline_name: Option<&str>,
    git_sha: &str,
    manifest_hash: Option<&str>,
    inputs: &serde_json::Value,
    requested_by: Option<&str>,
) -> Result<PipelineRun> {
    if project.trim().is_empty() {
        return Err(AppError::invalid("project", "is required (id, slug or name)").into());
    }
    let project = store.get_project(project).await?;
    let inputs = check_inputs(inputs)?;
    let prepared = prepare(store, &project, git_sha, manifest_hash).await?;
    let (name, pipeline) = choose_pipeline(&prepared.manifest, &prepared.sha, pipeline_name, None)?;
    let mut tx = store.pool().begin().await?;
    let id = insert_run(&mut tx, &project, name, pipeline, &prepared, &inputs, requested_by).await?;
    tx.commit().await?;
    tracing::info!(pipeline_run = %id, pipeline = name, sha = %prepared.sha, "pipeline started");
    get_pipeline_run(store, &id).await
}

/// Records a deploy request for one environment of a project: the entry of
/// every deploy request. `git_sha` (+ `manifest_hash`, checked when given)
/// without `direct` and with nothing else to deploy is the pipeline shape:
/// it starts the manifest's pipeline that deploys to this environment
/// (`inputs.pipeline` names one) and returns the deployment recorded for it:
/// `pending`, without digests yet, with `pipeline_run_id` set; the run's
/// deploy step fills in its release and starts it (through the gate). Any
/// other request names what to deploy and is recorded by
/// [`crate::release::deployments`] (see there: behind the environment's gate,
/// refused while the environment is being deployed). `inputs` must be a JSON
/// object (or null).
#[tracing::instrument(skip_all, fields(project = %project, environment = %req.environment))]
pub async fn request_deploy(
    store: &Store,
    project: &str,
    req: &DeployRequest,
    requested_by: Option<&str>,
    kind: DeploymentKind,
) -> Result<Deployment> {
    let project = store.get_project(project).await?;
    let inputs = check_inputs(req.inputs.as_ref().unwrap_or(&serde_json::Value::Null))?;
    match pipeline_shape(req, &inputs) {
        Some((sha, hash)) => request_pipeline_deploy(store, &project, &req.environment, &sha, hash.as_deref(), &inputs, requested_by).await,
        None => deps::request_release_deploy(store, &project, req, inputs, requested_by, kind).await,
    }
}

/// `Some((git_sha, manifest_hash))` when the request runs the pipeline: a
/// well-formed `git_sha`, no `direct`, and nothing else to deploy (no
/// release, digests or image tag). Malformed fields are left to the
/// release request, which names them.
fn pipeline_shape(req: &DeployRequest, inputs: &serde_json::Value) -> Option<(String, Option<String>)> {
    let nonempty = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    if req.direct || deps::release_reference(req, inputs).is_some() || req.image_digests.is_some() || nonempty(&req.image_tag).is_some() {
        return None;
    }
    let sha = nonempty(&req.git_sha).filter(|s| is_git_sha(s))?;
    let hash = nonempty(&req.manifest_hash);
    if hash.as_deref().is_some_and(|h| !is_manifest_hash(h)) {
        return None;
    }
    Some((sha, hash))
}

/// The pipeline shape of a deploy request: starts the pipeline that deploys
/// to `environment` (`inputs.pipeline`, else the only such pipeline, else
/// `deploy` / `release`) and records the requested deployment as `pending`
/// with no digests yet, linked to the run; it supersedes the environment's
/// older requests that never ran, like any new request. Returns that
/// deployment; its `pipeline_run_id` names the run.
async fn request_pipeline_deploy(
    store: &Store,
    project: &Project,
    environment: &str,
    git_sha: &str,
    manifest_hash: Option<&str>,
    inputs: &serde_json::Value,
    requested_by: Option<&str>,
) -> Result<Deployment> {
    let prepared = prepare(store, project, git_sha, manifest_hash).await?;
    let env = crate::release::environments::find_environment(store, &project.id, &project.slug, environment).await?;
    let requested = inputs.get("pipeline").and_then(|v| v.as_str());
    let (name, pipeline) = choose_pipeline(&prepared.manifest, &prepared.sha, requested, Some(&env.name))?;
    let mut tx = store.pool().begin().await?;
    let run_id = insert_run(&mut tx, project, name, pipeline, &prepared, inputs, requested_by).await?;
    let dep_id = deps::insert_pipeline_placeholder(&mut tx, &env, &run_id, &prepared.sha, requested_by, inputs).await?;
    tx.commit().await?;
    tracing::info!(pipeline_run = %run_id, deployment = %dep_id, environment = %env.name, "pipeline deploy requested");
    deps::get_deployment(store, &dep_id).await
}

// ---------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------

fn lease_secs(lease: Duration) -> f64 {
    lease.as_secs_f64().max(1.0)
}

/// Takes the lease of an unfinished run nobody (else) holds.
async fn claim(store: &Store, id: &str, owner: &str, lease: Duration) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE pipeline_runs SET lease_owner = $2, lease_expires_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND completed_at IS NULL
           AND (lease_owner IS NULL OR lease_expires_at < now() OR lease_owner = $2)",
    )
    .bind(id)
    .bind(owner)
    .bind(lease_secs(lease))
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Claims the oldest pending or running run that nobody drives (or whose
/// driver's lease expired). Returns its id.
pub async fn claim_next(store: &Store, owner: &str, lease: Duration) -> Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "UPDATE pipeline_runs SET lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2)
         WHERE id = (SELECT id FROM pipeline_runs
                     WHERE status IN ('pending', 'running') AND (lease_expires_at IS NULL OR lease_expires_at < now())
                     ORDER BY created_at, id LIMIT 1
                     FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind(owner)
    .bind(lease_secs(lease))
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(|r| r.0))
}

async fn release_lease(store: &Store, id: &str, owner: &str) {
    let r = sqlx::query("UPDATE pipeline_runs SET lease_owner = NULL, lease_expires_at = NULL WHERE id = $1 AND lease_owner = $2")
        .bind(id)
        .bind(owner)
        .execute(store.pool())
        .await;
    if let Err(e) = r {
        tracing::warn!(pipeline_run = %id, error = %e, "releasing the lease of a pipeline run (it expires by itself)");
    }
}

/// Renews the lease until it is lost; returns why.
async fn keep_lease(store: &Store, id: &str, owner: &str, lease: Duration) -> Error {
    let every = (lease / 6).max(Duration::from_millis(200));
    loop {
        tokio::time::sleep(every).await;
        let r = sqlx::query(
            "UPDATE pipeline_runs SET lease_expires_at = now() + make_interval(secs => $3)
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .bind(lease_secs(lease))
        .execute(store.pool())
        .await;
        match r {
            Ok(done) if done.rows_affected() == 1 => {}
            Ok(_) => return lease_lost(id),
            Err(e) => tracing::warn!(pipeline_run = %id, error = %e, "renewing the lease of a pipeline run; retrying"),
        }
    }
}

fn lease_lost(id: &str) -> Error {
    AppError::conflict(format!("pipeline run {id} is no longer driven by this process (its lease was lost)")).into()
}

// ---------------------------------------------------------------------------
// Driving
// ---------------------------------------------------------------------------

/// Executes a pipeline run to its end on `target` and returns it. Refused
/// (conflict) while another driver holds the run; a finished run is returned
/// as it is. Steps already done are not repeated.
#[tracing::instrument(skip_all, fields(pipeline_run = %pipeline_run_id))]
pub async fn drive_pipeline(store: &Store, target: &dyn DeployTarget, pipeline_run_id: &str) -> Result<PipelineRun> {
    let owner = format!("drive:{}", id::new_id("drv"));
    if !claim(store, pipeline_run_id, &owner, DEFAULT_LEASE).await? {
        let run = get_pipeline_run(store, pipeline_run_id).await?;
        if run.status.is_terminal() {
            return Ok(run);
        }
        return Err(AppError::conflict(format!("pipeline run {pipeline_run_id} is being driven by another process")).into());
    }
    drive_claimed(store, target, pipeline_run_id, &owner, DEFAULT_LEASE).await
}

/// Drives a run whose lease `owner` holds, renewing it; releases it at the end.
async fn drive_claimed(store: &Store, target: &dyn DeployTarget, id: &str, owner: &str, lease: Duration) -> Result<PipelineRun> {
    let result = tokio::select! {
        r = execute(store, target, id, owner) => r,
        lost = keep_lease(store, id, owner, lease) => Err(lost),
    };
    release_lease(store, id, owner).await;
    result?;
    get_pipeline_run(store, id).await
}

/// Writes a run's state while holding its lease.
struct Writer<'a> {
    store: &'a Store,
    id: &'a str,
    owner: &'a str,
}

impl Writer<'_> {
    async fn save_step(&self, state: &StepState) -> Result<()> {
        let value = serde_json::to_value(state).map_err(internal)?;
        let done = sqlx::query(
            "UPDATE pipeline_runs SET steps = jsonb_set(steps, ARRAY[$2], $3, true)
             WHERE id = $1 AND lease_owner = $4 AND completed_at IS NULL",
        )
        .bind(self.id)
        .bind(&state.name)
        .bind(&value)
        .bind(self.owner)
        .execute(self.store.pool())
        .await?;
        if done.rows_affected() != 1 {
            return Err(lease_lost(self.id));
        }
        self.notify().await;
        Ok(())
    }

    async fn notify(&self) {
        if let Err(e) = crate::worker::notify(self.store.pool(), RUNS_CHANNEL, self.id).await {
            tracing::debug!(error = %e, "notifying pipeline_runs");
        }
    }

    async fn mark_running(&self) -> Result<()> {
        let done = sqlx::query(
            "UPDATE pipeline_runs SET status = 'running', started_at = coalesce(started_at, now())
             WHERE id = $1 AND lease_owner = $2 AND status IN ('pending', 'running')",
        )
        .bind(self.id)
        .bind(self.owner)
        .execute(self.store.pool())
        .await?;
        if done.rows_affected() != 1 {
            return Err(lease_lost(self.id));
        }
        self.notify().await;
        Ok(())
    }

    async fn finish(&self, status: PipelineRunStatus, error: Option<&str>) -> Result<()> {
        let done = sqlx::query(
            "UPDATE pipeline_runs SET status = $3, error_message = $4, completed_at = now(),
                    started_at = coalesce(started_at, now())
             WHERE id = $1 AND lease_owner = $2 AND completed_at IS NULL",
        )
        .bind(self.id)
        .bind(self.owner)
        .bind(status.as_str())
        .bind(error)
        .execute(self.store.pool())
        .await?;
        if done.rows_affected() != 1 {
            return Err(lease_lost(self.id));
        }
        // Deployments requested through this run that it never reached.
        let message = match error {
            Some(e) => format!("pipeline run {} {}: {e}", self.id, status),
            None => format!("pipeline run {} {} without deploying to this environment", self.id, status),
        };
        deps::fail_pipeline_placeholders(self.store, self.id, &message).await?;
        self.notify().await;
        Ok(())
    }
}

/// Why a step stopped.
enum StepError {
    /// The step failed; the message is for the user.
    Failed(String),
    /// Something outside the step broke (database, lease): stop driving, resume later.
    Abort(Error),
}

type StepResult = std::result::Result<serde_json::Value, StepError>;

fn failed(message: impl Into<String>) -> StepError {
    StepError::Failed(message.into())
}

/// Engine errors a user can act on fail the step; infrastructure errors abort the drive.
fn classify(e: Error) -> StepError {
    match e {
        Error::App(app) if !matches!(app.code, ErrorCode::Internal | ErrorCode::Unavailable) => StepError::Failed(app.message),
        Error::Db(_) | Error::Migrate(_) => StepError::Abort(e),
        Error::App(_) => StepError::Abort(e),
        other => StepError::Failed(AppError::from(other).message),
    }
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        StepError::Abort(e)
    }
}

/// A running step: its state, written on every change.
struct StepCtx<'a> {
    w: &'a Writer<'a>,
    state: StepState,
}

impl StepCtx<'_> {
    async fn detail(&mut self, text: String) -> Result<()> {
        if self.state.detail.as_deref() != Some(text.as_str()) {
            self.state.detail = Some(text);
            self.w.save_step(&self.state).await?;
        }
        Ok(())
    }

    async fn output(&mut self, key: &str, value: serde_json::Value) -> Result<()> {
        if let Some(map) = self.state.outputs.as_object_mut() {
            map.insert(key.to_string(), value);
        } else {
            self.state.outputs = serde_json::json!({ key: value });
        }
        self.w.save_step(&self.state).await
    }
}

/// What every step can read.
struct RunCtx<'a> {
    store: &'a Store,
    target: &'a dyn DeployTarget,
    run: &'a PipelineRun,
    project: &'a Project,
    pipeline: &'a Pipeline,
    manifest: &'a Manifest,
    states: &'a BTreeMap<String, StepState>,
}

impl RunCtx<'_> {
    /// The output `key` of the nearest step `step` depends on (transitively)
    /// that has it: direct dependencies first, in the order written.
    fn upstream(&self, step: &PipelineStep, key: &str) -> Option<&serde_json::Value> {
        let mut queue: VecDeque<&str> = step.depends_on.iter().map(String::as_str).collect();
        let mut seen: HashSet<&str> = HashSet::new();
        while let Some(name) = queue.pop_front() {
            if !seen.insert(name) {
                continue;
            }
            if let Some(v) = self.states.get(name).and_then(|s| s.outputs.get(key)) {
                return Some(v);
            }
            if let Some(s) = self.pipeline.step(name) {
                queue.extend(s.depends_on.iter().map(String::as_str));
            }
        }
        None
    }

    fn input_str(&self, key: &str) -> Option<&str> {
        self.run.inputs.get(key).and_then(|v| v.as_str()).map(str::trim).filter(|s| !s.is_empty())
    }
}

async fn execute(store: &Store, target: &dyn DeployTarget, id: &str, owner: &str) -> Result<()> {
    let run = get_pipeline_run(store, id).await?;
    if run.status.is_terminal() {
        return Ok(());
    }
    let w = Writer { store, id, owner };
    let project = store.get_project(&run.project_id).await?;
    let manifest = match load_manifest(store, &run).await? {
        Ok(m) => m,
        Err(message) => return w.finish(PipelineRunStatus::Failed, Some(&message)).await,
    };
    let Some(pipeline) = manifest.pipelines.get(&run.pipeline) else {
        let message = format!("the manifest at {} has no pipeline `{}`", run.git_sha.as_deref().unwrap_or("?"), run.pipeline);
        return w.finish(PipelineRunStatus::Failed, Some(&message)).await;
    };
    w.mark_running().await?;
    tracing::info!(pipeline = %run.pipeline, "driving pipeline run");
    let mut states: BTreeMap<String, StepState> = run.steps.iter().map(|s| (s.name.clone(), s.clone())).collect();
    for (i, step) in pipeline.execution_order().into_iter().enumerate() {
        let mut state = states.get(&step.name).cloned().unwrap_or_else(|| fresh_state(step, i));
        if state.status.is_terminal() {
            continue;
        }
        if let Some((dep, status)) = step.depends_on.iter().find_map(|d| {
            let s = states.get(d).map(|s| s.status).unwrap_or(StepStatus::Pending);
            (s != StepStatus::Succeeded).then_some((d, s))
        }) {
            state.status = StepStatus::Skipped;
            state.completed_at = Some(Utc::now());
            state.detail = None;
            state.error = Some(format!("skipped: step `{dep}` {status}"));
            w.save_step(&state).await?;
            states.insert(step.name.clone(), state);
            continue;
        }
        state.status = StepStatus::Running;
        state.started_at = state.started_at.or_else(|| Some(Utc::now()));
        state.error = None;
        w.save_step(&state).await?;
        let mut cx = StepCtx { w: &w, state };
        let rc = RunCtx { store, target, run: &run, project: &project, pipeline, manifest: &manifest, states: &states };
        let result = match &step.action {
            StepAction::Build { services } => build_step(&rc, &mut cx, step, services.as_ref()).await,
            StepAction::Release { tag, version } => release_step(&rc, &mut cx, step, tag.as_deref(), version.as_deref()).await,
            StepAction::Deploy { environment } => deploy_step(&rc, &mut cx, step, environment).await,
        };
        let mut state = cx.state;
        state.detail = None;
        state.completed_at = Some(Utc::now());
        match result {
            Ok(outputs) => {
                state.status = StepStatus::Succeeded;
                state.outputs = outputs;
                tracing::info!(step = %step.name, "pipeline step succeeded");
            }
            Err(StepError::Failed(message)) => {
                state.status = StepStatus::Failed;
                tracing::warn!(step = %step.name, error = %message, "pipeline step failed");
                state.error = Some(message);
            }
            Err(StepError::Abort(e)) => return Err(e),
        }
        w.save_step(&state).await?;
        states.insert(step.name.clone(), state);
    }
    let first_failure = pipeline
        .execution_order()
        .into_iter()
        .filter_map(|s| states.get(&s.name))
        .find(|s| s.status == StepStatus::Failed)
        .map(|s| format!("step `{}` failed: {}", s.name, s.error.as_deref().unwrap_or("no reason recorded")));
    match first_failure {
        Some(message) => w.finish(PipelineRunStatus::Failed, Some(&message)).await,
        None => w.finish(PipelineRunStatus::Succeeded, None).await,
    }
}

/// The manifest recorded for the run's commit; `Err` is why the run cannot go on.
async fn load_manifest(store: &Store, run: &PipelineRun) -> Result<std::result::Result<Manifest, String>> {
    let Some(sha) = &run.git_sha else {
        return Ok(Err("the run has no commit".into()));
    };
    let Some((hash, content)) = store.manifest_content(&run.project_id, sha).await? else {
        return Ok(Err(format!("the manifest of commit {sha} was not recorded")));
    };
    if let Some(expected) = &run.manifest_hash {
        if *expected != hash {
            return Ok(Err(format!("the manifest recorded for {sha} has hash {hash}, not {expected}")));
        }
    }
    Ok(manifest::parse(&content).map_err(|e| format!("the manifest at {sha} is invalid: {e}")))
}

fn digests_of(artifacts: &[slipway_model::build::BuildArtifact]) -> ImageDigests {
    artifacts.iter().map(|a| (a.service_name.clone(), a.digest.clone())).collect()
}

fn json<T: serde::Serialize>(v: &T) -> std::result::Result<serde_json::Value, StepError> {
    serde_json::to_value(v).map_err(|e| StepError::Abort(internal(e)))
}

/// Build step: creates the build (once per run and step) and waits for its run.
async fn build_step(rc: &RunCtx<'_>, cx: &mut StepCtx<'_>, step: &PipelineStep, services: Option<&Vec<String>>) -> StepResult {
    let store = rc.store;
    let build_id = match cx.state.output_str("build_id") {
        Some(b) => b.to_string(),
        None => {
            let mut build_inputs = serde_json::json!({ "pipeline_run_id": rc.run.id, "pipeline_step": step.name });
            if let Some(v) = rc.input_str("version") {
                build_inputs["version"] = serde_json::Value::String(v.to_string());
            }
            let force_rebuild = rc.run.inputs.get("force_rebuild").and_then(|v| v.as_bool()).unwrap_or(false);
            let input = NewBuild {
                project: rc.project.id.clone(),
                git_ref: rc.run.git_sha.clone(),
                manifest_hash: rc.run.manifest_hash.clone(),
                services: services.cloned(),
                inputs: Some(build_inputs),
                idempotency_key: Some(format!("pipeline:{}:{}", rc.run.id, step.name)),
                force_rebuild,
                run: true,
                ..Default::default()
            };
            let detail = create_build(store, &input, rc.run.created_by.as_deref()).await.map_err(classify)?;
            if detail.runs.is_empty() {
                store.enqueue_run(&detail.spec.id, None, force_rebuild).await?;
            }
            cx.output("build_id", serde_json::Value::String(detail.spec.id.clone())).await?;
            detail.spec.id
        }
    };
    loop {
        let runs = store.list_runs(&build_id).await?;
        let Some(run) = runs.first() else {
            return Err(failed(format!("build {build_id} has no run")));
        };
        match run.status {
            BuildRunStatus::Completed => {
                let artifacts = store.run_artifacts(&run.id).await?;
                if artifacts.is_empty() {
                    return Err(failed(format!("build {build_id} (run {}) completed without artifacts", run.id)));
                }
                return Ok(serde_json::json!({
                    "build_id": build_id,
                    "run_id": run.id,
                    "image_digests": json(&digests_of(&artifacts))?,
                }));
            }
            BuildRunStatus::Failed => {
                let why = run.error_message.as_deref().unwrap_or("no reason recorded");
                return Err(failed(format!("build {build_id} failed (run {}): {why}", run.id)));
            }
            BuildRunStatus::Cancelled => {
                return Err(failed(format!("build {build_id} was cancelled (run {})", run.id)));
            }
            BuildRunStatus::Pending => {
                cx.detail(format!("build {build_id}: run #{} queued, waiting for a build worker", run.seq)).await?;
            }
            BuildRunStatus::Building => {
                cx.detail(format!("build {build_id}: run #{} building", run.seq)).await?;
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

fn release_outputs(release: &Release) -> std::result::Result<serde_json::Value, StepError> {
    Ok(serde_json::json!({
        "release_id": release.id,
        "release_tag": release.tag,
        "build_id": release.build_id,
        "git_sha": release.git_sha,
        "image_digests": json(&release.image_digests)?,
    }))
}

/// Release step: releases the upstream build (once per run and step).
async fn release_step(
    rc: &RunCtx<'_>,
    cx: &mut StepCtx<'_>,
    step: &PipelineStep,
    tag: Option<&str>,
    version: Option<&str>,
) -> StepResult {
    let store = rc.store;
    if let Some(id) = cx.state.output_str("release_id") {
        let release = crate::release::get_release(store, id).await.map_err(classify)?;
        return release_outputs(&release);
    }
    let build_id = match rc.upstream(step, "build_id").and_then(|v| v.as_str()).or_else(|| rc.input_str("build_id")) {
        Some(b) => b.to_string(),
        None => {
            return Err(failed(
                "no build to release: make the step depend on a build step, or pass `build_id` in the inputs",
            ))
        }
    };
    let note = format!("pipeline run {} step `{}`", rc.run.id, step.name);
    let existing: Option<(String,)> =
        sqlx::query_as("SELECT id FROM releases WHERE project_id = $1 AND build_id = $2 AND notes = $3 LIMIT 1")
            .bind(&rc.project.id)
            .bind(&build_id)
            .bind(&note)
            .fetch_optional(store.pool())
            .await
            .map_err(Error::from)?;
    let release = match existing {
        Some((id,)) => crate::release::get_release(store, &id).await.map_err(classify)?,
        None => {
            cx.detail(format!("releasing build {build_id}")).await?;
            let input = NewRelease {
                project: rc.project.id.clone(),
                build: build_id,
                tag: tag.map(str::to_string).or_else(|| rc.input_str("release_tag").map(str::to_string)),
                version: version.map(str::to_string).or_else(|| rc.input_str("version").map(str::to_string)),
                notes: Some(note),
            };
            crate::release::create_release(store, &input, rc.run.created_by.as_deref()).await.map_err(classify)?
        }
    };
    release_outputs(&release)
}

/// Deploy step: deploys the upstream release to the step's environment and
/// waits for the deployment to end (approval gate included).
async fn deploy_step(rc: &RunCtx<'_>, cx: &mut StepCtx<'_>, step: &PipelineStep, environment: &str) -> StepResult {
    let store = rc.store;
    let dep_id = match cx.state.output_str("deployment_id") {
        Some(d) => d.to_string(),
        None => {
            let release_key = rc
                .upstream(step, "release_id")
                .and_then(|v| v.as_str())
                .or_else(|| rc.input_str("release_id"))
                .or_else(|| rc.input_str("release_tag"))
                .or_else(|| rc.input_str("release"));
            let Some(release_key) = release_key else {
                return Err(failed(
                    "no release to deploy: make the step depend on a release step, or pass `release_id` or `release_tag` in the inputs",
                ));
            };
            let release = crate::release::resolve_release(store, &rc.project.id, release_key).await.map_err(classify)?;
            if !rc.manifest.environments.iter().any(|e| e.name == environment) {
                tracing::debug!(environment, "deploy step to an environment the manifest does not define");
            }
            let dep = loop {
                match deps::deploy_for_pipeline(store, rc.project, environment, &release, &rc.run.id, rc.run.created_by.as_deref()).await {
                    Ok(d) => break d,
                    Err(Error::App(e)) if e.code == ErrorCode::Conflict => {
                        cx.detail(format!("waiting: {}", e.message)).await?;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => return Err(classify(e)),
                }
            };
            cx.output("deployment_id", serde_json::Value::String(dep.id.clone())).await?;
            dep.id
        }
    };
    loop {
        let dep = crate::release::get_deployment(store, &dep_id).await.map_err(classify)?;
        match dep.status {
            DeploymentStatus::Succeeded => {
                return Ok(serde_json::json!({
                    "deployment_id": dep.id,
                    "environment": dep.environment,
                    "release_id": dep.release_id,
                    "release_tag": dep.release_tag,
                    "image_digests": json(&dep.image_digests)?,
                }));
            }
            DeploymentStatus::Failed
            | DeploymentStatus::Rejected
            | DeploymentStatus::Cancelled
            | DeploymentStatus::Superseded => {
                let why = dep.error_message.as_deref().unwrap_or("no reason recorded");
                return Err(failed(format!("deployment {} to {} {}: {why}", dep.id, dep.environment, dep.status)));
            }
            DeploymentStatus::AwaitingApproval => {
                let text = if dep.approvals_needed > 0 || !dep.approvers_still_needed.is_empty() {
                    let who = if dep.approvers_still_needed.is_empty() {
                        String::new()
                    } else {
                        format!(" (from {})", dep.approvers_still_needed.join(", "))
                    };
                    format!("deployment {} to {} awaits approval: {} more needed{who}", dep.id, dep.environment, dep.approvals_needed.max(1))
                } else {
                    format!("deployment {} to {} is approved; its wait timer runs", dep.id, dep.environment)
                };
                cx.detail(text).await?;
                deps::advance_if_due(store, &dep.id, &dep.environment_id).await?;
            }
            DeploymentStatus::Deploying => {
                cx.detail(format!("deploying {} to {} on {}", dep.id, dep.environment, rc.target.name())).await?;
                match crate::release::execute_deployment(store, rc.target, &dep.id).await {
                    Ok(_) => continue,
                    // Another executor is rolling it out: wait for it.
                    Err(Error::App(e)) if e.code == ErrorCode::Conflict => {}
                    Err(e) => return Err(classify(e)),
                }
            }
            DeploymentStatus::Pending => {
                cx.detail(format!("deployment {} to {} is pending", dep.id, dep.environment)).await?;
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------
// The server's driver loop
// ---------------------------------------------------------------------------

/// The server's pipeline driver, in the shape of every worker
/// ([`crate::worker`]): claims runs nobody drives (at most 16 at a time),
/// drives each to its end on `target`, and wakes on [`RUNS_CHANNEL`] or
/// every second. On shutdown it stops its drives and gives their leases
/// back, so another process resumes them at once.
pub fn spawn_driver(store: Store, target: Arc<dyn DeployTarget>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "slipway".into());
    let owner = format!("{host}:{}:{}", std::process::id(), id::new_id("drv"));
    tracing::info!(driver = %owner, "pipeline driver starting");
    let shape = Shape { name: "pipeline driver", channel: RUNS_CHANNEL, slots: MAX_IN_FLIGHT, poll: Duration::from_secs(1), drain: false };
    crate::worker::spawn(store.clone(), shape, Arc::new(Driver { store, target, owner }), shutdown)
}

/// The pipeline driver's [`Job`].
struct Driver {
    store: Store,
    target: Arc<dyn DeployTarget>,
    owner: String,
}

impl Job for Driver {
    type Claim = String;

    fn claim(&self) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(claim_next(&self.store, &self.owner, DEFAULT_LEASE))
    }

    fn run(self: Arc<Self>, id: String) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            match drive_claimed(&self.store, self.target.as_ref(), &id, &self.owner, DEFAULT_LEASE).await {
                Ok(run) => tracing::info!(pipeline_run = %id, status = %run.status, "pipeline run ended"),
                Err(e) => tracing::warn!(pipeline_run = %id, error = %e, "driving a pipeline run stopped; it resumes later"),
            }
        })
    }

    fn stopped(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let r = sqlx::query("UPDATE pipeline_runs SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = $1")
                .bind(&self.owner)
                .execute(self.store.pool())
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "giving back pipeline leases at shutdown");
            }
            tracing::info!(driver = %self.owner, "pipeline driver stopped");
        })
    }
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(yaml: &str) -> Manifest {
        manifest::parse(yaml).expect("valid manifest")
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn the_default_pipeline_is_the_only_one_or_deploy_or_release() {
        let one = manifest("services: {api: {build: .}}\npipelines: {ship: {steps: [{name: b, build: {}}]}}");
        assert_eq!(choose_pipeline(&one, SHA, None, None).map(|p| p.0), Ok("ship"));
        let two = manifest(
            "services: {api: {build: .}}\npipelines:\n  ci: {steps: [{name: b, build: {}}]}\n  release: {steps: [{name: b, build: {}}]}",
        );
        assert_eq!(choose_pipeline(&two, SHA, None, None).map(|p| p.0), Ok("release"));
        assert_eq!(choose_pipeline(&two, SHA, Some("ci"), None).map(|p| p.0), Ok("ci"));
        let err = choose_pipeline(&two, SHA, Some("nope"), None).unwrap_err();
        assert!(err.message.contains("has no pipeline `nope`; it has: ci, release"), "{}", err.message);
        let three = manifest(
            "services: {api: {build: .}}\npipelines:\n  a: {steps: [{name: b, build: {}}]}\n  c: {steps: [{name: b, build: {}}]}",
        );
        let err = choose_pipeline(&three, SHA, None, None).unwrap_err();
        assert!(err.message.contains("several pipelines (a, c)"), "{}", err.message);
        let none = manifest("services: {api: {build: .}}");
        assert!(choose_pipeline(&none, SHA, None, None).unwrap_err().message.contains("defines no pipelines"));
    }

    #[test]
    fn a_deploy_request_picks_the_pipeline_deploying_to_its_environment() {
        let m = manifest(
            "services: {api: {build: .}}\nenvironments: [{name: test}, {name: prod}]\npipelines:
  to-test: {steps: [{name: b, build: {}}, {name: r, release: {}, depends_on: [b]}, {name: d, deploy: {environment: test}, depends_on: [r]}]}
  to-prod: {steps: [{name: b, build: {}}, {name: r, release: {}, depends_on: [b]}, {name: d, deploy: {environment: prod}, depends_on: [r]}]}",
        );
        assert_eq!(choose_pipeline(&m, SHA, None, Some("prod")).map(|p| p.0), Ok("to-prod"));
        assert_eq!(choose_pipeline(&m, SHA, None, Some("test")).map(|p| p.0), Ok("to-test"));
        let err = choose_pipeline(&m, SHA, Some("to-test"), Some("prod")).unwrap_err();
        assert!(err.message.contains("no deploy step for environment `prod`"), "{}", err.message);
    }

    #[test]
    fn initial_steps_are_pending_in_execution_order() {
        let m = manifest(
            "services: {api: {build: .}}\nenvironments: [{name: test}]\npipelines:
  deploy: {steps: [{name: ship, deploy: {environment: test}, depends_on: [rel]}, {name: rel, release: {}, depends_on: [img]}, {name: img, build: {}}]}",
        );
        let steps = initial_steps(&m.pipelines["deploy"]).unwrap();
        let list = decode_steps("pip_x", steps).unwrap();
        let names: Vec<_> = list.iter().map(|s| (s.name.as_str(), s.position, s.status)).collect();
        assert_eq!(
            names,
            [("img", 0, StepStatus::Pending), ("rel", 1, StepStatus::Pending), ("ship", 2, StepStatus::Pending)]
        );
        assert_eq!(list[2].environment.as_deref(), Some("test"));
        assert_eq!(list[2].action, "deploy");
    }
}
