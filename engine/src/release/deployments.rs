//! Deployments: requests in every shape of the deploy model, approval gates
//! bound to digests, promotion, rollback, the pre-promotion diff, the board,
//! and the executor that applies a deployment on a [`DeployTarget`].
//!
//! One deployment per environment rolls out at a time: every change of an
//! environment's deployments runs in a transaction holding
//! `pg_advisory_xact_lock` on that environment, and the partial unique index
//! `deployments_one_deploying_idx` backs it up. A new request supersedes the
//! environment's older requests that never ran.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use slipway_model::build::{is_git_sha, is_manifest_hash, BuildArgs};
use slipway_model::id::{self, APPROVAL, DEPLOYMENT};
use slipway_model::manifest;
use slipway_model::project::Project;
use slipway_model::release::{
    digests_hash, is_image_digest, ApprovalView, Board, BoardColumn, ContainerView, DeployRequest, Deployment,
    DeploymentKind, Environment, ImageDigests, PromotionDiff, Release, ServiceDiff,
};
use slipway_model::status::{ApprovalDecision, DeploymentStatus};
use slipway_model::{AppError, ErrorCode, FieldProblem};
use sqlx::{PgConnection, Postgres, Transaction};

use super::environments::{find_environment, list_by_project_id};
use super::releases::{ReleaseRow, RELEASE_COLUMNS};
use super::target::{repository_of, DeployPlan, DeployTarget, ServicePlan};
use super::{decode_digests, internal};
use crate::error::{Error, Result};
use crate::Store;

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

#[derive(sqlx::FromRow)]
struct DeploymentRow {
    id: String,
    project_id: String,
    environment: String,
    environment_id: String,
    release_id: Option<String>,
    release_tag: Option<String>,
    image_digests: serde_json::Value,
    git_sha: Option<String>,
    status: String,
    kind: String,
    promoted_from: Option<String>,
    requested_by: Option<String>,
    requested_by_name: Option<String>,
    direct: bool,
    created_at: DateTime<Utc>,
    approved_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    error_message: Option<String>,
    containers: serde_json::Value,
    pipeline_run_id: Option<String>,
    approval_required: i32,
    approvers: Vec<String>,
    wait_timer_seconds: i32,
}

const DEPLOYMENT_COLUMNS: &str = "d.id, d.project_id, e.name AS environment, d.environment_id, d.release_id, \
     r.tag AS release_tag, d.image_digests, d.git_sha, d.status, d.kind, pe.name AS promoted_from, d.requested_by, \
     u.username AS requested_by_name, d.direct, d.created_at, d.approved_at, d.started_at, d.completed_at, \
     d.error_message, d.containers, d.pipeline_run_id, e.approval_required, e.approvers, e.wait_timer_seconds";

const DEPLOYMENT_JOINS: &str = "JOIN environments e ON e.id = d.environment_id \
     LEFT JOIN releases r ON r.id = d.release_id \
     LEFT JOIN environments pe ON pe.id = d.promoted_from_environment_id \
     LEFT JOIN users u ON u.id = d.requested_by";

#[derive(Clone, sqlx::FromRow)]
struct ApprovalRow {
    deployment_id: String,
    user_id: String,
    username: String,
    decision: String,
    digests_hash: String,
    created_at: DateTime<Utc>,
}

/// Approvals of these deployments with their usernames, oldest first.
async fn load_approvals(conn: &mut PgConnection, ids: &[String]) -> Result<HashMap<String, Vec<ApprovalRow>>> {
    let rows: Vec<ApprovalRow> = sqlx::query_as(
        "SELECT a.deployment_id, a.user_id, u.username, a.decision, a.digests_hash, a.created_at
         FROM approvals a JOIN users u ON u.id = a.user_id
         WHERE a.deployment_id = ANY($1) ORDER BY a.created_at, a.id",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut map: HashMap<String, Vec<ApprovalRow>> = HashMap::new();
    for r in rows {
        map.entry(r.deployment_id.clone()).or_default().push(r);
    }
    Ok(map)
}

/// Where a gate stands.
struct GateState {
    needed: u32,
    still_needed: Vec<String>,
}

/// Evaluates a gate: `required` valid approvals; when approvers are named,
/// they must come from named users (the manifest never requires more
/// approvals than it names approvers).
fn evaluate_gate(required: u32, approvers: &[String], approvals: &[ApprovalView]) -> GateState {
    if required == 0 {
        return GateState { needed: 0, still_needed: Vec::new() };
    }
    let valid: Vec<&ApprovalView> =
        approvals.iter().filter(|a| a.valid && a.decision == ApprovalDecision::Approved).collect();
    let count = u32::try_from(valid.len()).unwrap_or(u32::MAX);
    let is_named = |name: &str| approvers.iter().any(|n| n.eq_ignore_ascii_case(name));
    let (needed, still_needed) = if approvers.is_empty() {
        (required.saturating_sub(count), Vec::new())
    } else {
        let named_required = required.min(u32::try_from(approvers.len()).unwrap_or(u32::MAX));
        let named_count = u32::try_from(valid.iter().filter(|a| is_named(&a.username)).count()).unwrap_or(u32::MAX);
        let needed = required.saturating_sub(count).max(named_required.saturating_sub(named_count));
        let still: Vec<String> = if named_count < named_required {
            approvers
                .iter()
                .filter(|n| !valid.iter().any(|a| a.username.eq_ignore_ascii_case(n)))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        (needed, still)
    };
    GateState { needed, still_needed }
}

fn assemble(row: DeploymentRow, approvals: Vec<ApprovalRow>) -> Result<Deployment> {
    let status: DeploymentStatus =
        row.status.parse().map_err(|e| Error::Io(format!("deployment {} has an unknown status: {e}", row.id)))?;
    let kind: DeploymentKind =
        row.kind.parse().map_err(|e| Error::Io(format!("deployment {} has an unknown kind: {e}", row.id)))?;
    let image_digests = decode_digests(&row.id, row.image_digests)?;
    let hash = digests_hash(&image_digests);
    let mut views = Vec::with_capacity(approvals.len());
    for a in approvals {
        let decision: ApprovalDecision =
            a.decision.parse().map_err(|e| Error::Io(format!("an approval of {} has an unknown decision: {e}", row.id)))?;
        views.push(ApprovalView { valid: a.digests_hash == hash, user_id: a.user_id, username: a.username, decision, at: a.created_at });
    }
    let required = u32::try_from(row.approval_required).unwrap_or(0);
    let gate = evaluate_gate(required, &row.approvers, &views);
    let containers: Vec<ContainerView> = serde_json::from_value(row.containers).unwrap_or_default();
    let wait = ChronoDuration::seconds(i64::from(row.wait_timer_seconds.max(0)));
    let waiting = status == DeploymentStatus::AwaitingApproval;
    Ok(Deployment {
        id: row.id,
        project_id: row.project_id,
        environment: row.environment,
        environment_id: row.environment_id,
        release_id: row.release_id,
        release_tag: row.release_tag,
        image_digests,
        git_sha: row.git_sha,
        status,
        kind,
        promoted_from: row.promoted_from,
        requested_by: row.requested_by,
        requested_by_name: row.requested_by_name,
        direct: row.direct,
        created_at: row.created_at,
        approved_at: row.approved_at,
        starts_after: row.approved_at.map(|a| a + wait),
        started_at: row.started_at,
        completed_at: row.completed_at,
        error_message: row.error_message,
        approvals: views,
        approvals_required: required,
        approvals_needed: if waiting { gate.needed } else { 0 },
        approvers_still_needed: if waiting { gate.still_needed } else { Vec::new() },
        containers,
        pipeline_run_id: row.pipeline_run_id,
    })
}

/// The deployments with these ids, in the order of `ids` (missing ones left out).
async fn load_deployments(conn: &mut PgConnection, ids: &[String]) -> Result<Vec<Deployment>> {
    let rows: Vec<DeploymentRow> =
        sqlx::query_as(&format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments d {DEPLOYMENT_JOINS} WHERE d.id = ANY($1)"))
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
    let mut approvals = load_approvals(conn, ids).await?;
    let mut by_id: HashMap<String, Deployment> = HashMap::with_capacity(rows.len());
    for row in rows {
        let a = approvals.remove(&row.id).unwrap_or_default();
        let d = assemble(row, a)?;
        by_id.insert(d.id.clone(), d);
    }
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

async fn load_one(conn: &mut PgConnection, deployment_id: &str) -> Result<Deployment> {
    load_deployments(conn, &[deployment_id.to_string()])
        .await?
        .pop()
        .ok_or_else(|| AppError::not_found(format!("deployment `{deployment_id}`")).into())
}

/// A deployment with its approvals and gate.
#[tracing::instrument(skip_all, fields(deployment = %deployment_id))]
pub async fn get_deployment(store: &Store, deployment_id: &str) -> Result<Deployment> {
    let mut conn = store.pool().acquire().await?;
    load_one(&mut conn, deployment_id).await
}

/// What runs in an environment now: its newest succeeded deployment.
async fn current_deployment(store: &Store, environment_id: &str) -> Result<Option<Deployment>> {
    let id: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM deployments WHERE environment_id = $1 AND status = 'succeeded'
         ORDER BY completed_at DESC, id DESC LIMIT 1",
    )
    .bind(environment_id)
    .fetch_optional(store.pool())
    .await?;
    match id {
        Some((id,)) => Ok(Some(get_deployment(store, &id).await?)),
        None => Ok(None),
    }
}

/// What ran in `deployment`'s environment when it was requested: the newest
/// other deployment there that had succeeded by then (`None`: nothing). The
/// "before" of the audit trail's before → after for deploys, promotions and
/// rollbacks.
#[tracing::instrument(skip_all, fields(deployment = %deployment.id))]
pub async fn running_before(store: &Store, deployment: &Deployment) -> Result<Option<Deployment>> {
    let id: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM deployments
         WHERE environment_id = $1 AND id <> $2 AND status = 'succeeded' AND completed_at <= $3
         ORDER BY completed_at DESC, id DESC LIMIT 1",
    )
    .bind(&deployment.environment_id)
    .bind(&deployment.id)
    .bind(deployment.created_at)
    .fetch_optional(store.pool())
    .await?;
    match id {
        Some((id,)) => Ok(Some(get_deployment(store, &id).await?)),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// Serialises every change to one environment's deployments (released at commit).
pub(super) async fn lock_environment(tx: &mut Transaction<'_, Postgres>, environment_id: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('slipway.environment:' || $1, 0))")
        .bind(environment_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn busy(environment: &str, deployment: &str) -> Error {
    AppError::conflict(format!("environment {environment} is being deployed by {deployment}; try again when it finishes")).into()
}

fn forbidden(message: impl Into<String>) -> Error {
    AppError::new(ErrorCode::Forbidden, message).into()
}

/// What a request resolved to.
struct Source {
    release_id: Option<String>,
    digests: ImageDigests,
    git_sha: Option<String>,
}

impl Source {
    fn of_release(r: Release) -> Source {
        Source { release_id: Some(r.id), digests: r.image_digests, git_sha: Some(r.git_sha) }
    }
}

/// A deployment about to be recorded.
struct NewDeployment<'a> {
    source: Source,
    kind: DeploymentKind,
    promoted_from: Option<String>,
    requested_by: Option<&'a str>,
    inputs: serde_json::Value,
    direct: bool,
    /// The pipeline run whose deploy step made it.
    pipeline_run_id: Option<String>,
}

/// Records a deploy request for one environment of a project.
///
/// The source is a release (tag or id, also read from `inputs.release_tag` /
/// `inputs.release_id`), raw `image_digests` (each must be an image this
/// project built), an `image_tag` (the newest release whose images carry
/// it), or a `git_sha` with `direct` (the newest release of that commit).
/// `git_sha` (+ `manifest_hash`, checked when given) without `direct` is the
/// pipeline shape: it starts the manifest's pipeline that deploys to this
/// environment ([`crate::pipeline`]; `inputs.pipeline` names one) and returns
/// the deployment recorded for it: `pending`, without digests yet, with
/// `pipeline_run_id` set; the run's deploy step fills in its release and
/// starts it (through the gate). A gated environment (`approval_required > 0`) puts the
/// deployment in `awaiting_approval` — `direct` does not bypass the gate —
/// otherwise it is `deploying` at once and the caller runs
/// [`execute_deployment`]. Refused while the environment is being deployed.
#[tracing::instrument(skip_all, fields(project = %project, environment = %req.environment))]
pub async fn request_deploy(
    store: &Store,
    project: &str,
    req: &DeployRequest,
    requested_by: Option<&str>,
    kind: DeploymentKind,
) -> Result<Deployment> {
    let project = store.get_project(project).await?;
    let inputs = match &req.inputs {
        None | Some(serde_json::Value::Null) => serde_json::json!({}),
        Some(v) if v.is_object() => v.clone(),
        Some(_) => return Err(AppError::invalid("inputs", "must be a JSON object").into()),
    };
    if let Some((sha, hash)) = pipeline_shape(req, &inputs) {
        return crate::pipeline::request_pipeline_deploy(store, &project, &req.environment, &sha, hash.as_deref(), &inputs, requested_by)
            .await;
    }
    let env = find_environment(store, &project.id, &project.slug, &req.environment).await?;
    let source = resolve_source(store, &project, req, &inputs).await?;
    insert_deployment(
        store,
        &env,
        NewDeployment { source, kind, promoted_from: None, requested_by, inputs, direct: req.direct, pipeline_run_id: None },
    )
    .await
}

/// The release named by a request: `release`, else `inputs.release_id` /
/// `release_tag` / `release`.
fn release_reference(req: &DeployRequest, inputs: &serde_json::Value) -> Option<String> {
    let from_inputs = ["release_id", "release_tag", "release"]
        .iter()
        .find_map(|k| inputs.get(*k).and_then(|v| v.as_str()))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    req.release.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).or(from_inputs)
}

/// `Some((git_sha, manifest_hash))` when the request runs the pipeline: a
/// well-formed `git_sha`, no `direct`, and nothing else to deploy (no
/// release, digests or image tag). Malformed fields are left to
/// [`resolve_source`], which names them.
fn pipeline_shape(req: &DeployRequest, inputs: &serde_json::Value) -> Option<(String, Option<String>)> {
    let nonempty = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    if req.direct || release_reference(req, inputs).is_some() || req.image_digests.is_some() || nonempty(&req.image_tag).is_some() {
        return None;
    }
    let sha = nonempty(&req.git_sha).filter(|s| is_git_sha(s))?;
    let hash = nonempty(&req.manifest_hash);
    if hash.as_deref().is_some_and(|h| !is_manifest_hash(h)) {
        return None;
    }
    Some((sha, hash))
}

async fn resolve_source(store: &Store, project: &Project, req: &DeployRequest, inputs: &serde_json::Value) -> Result<Source> {
    let nonempty = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let release_ref = release_reference(req, inputs);
    let image_tag = nonempty(&req.image_tag);
    let git_sha = nonempty(&req.git_sha);
    let manifest_hash = nonempty(&req.manifest_hash);
    let mut problems = Vec::new();
    if let Some(s) = &git_sha {
        if !is_git_sha(s) {
            problems.push(FieldProblem { field: "git_sha".into(), message: format!("`{s}` is not a full 40-hex commit sha") });
        }
    }
    if let Some(h) = &manifest_hash {
        if !is_manifest_hash(h) {
            problems.push(FieldProblem { field: "manifest_hash".into(), message: format!("`{h}` is not a 64-hex manifest hash") });
        }
    }
    let sources = [release_ref.is_some(), req.image_digests.is_some(), image_tag.is_some()];
    if sources.iter().filter(|s| **s).count() > 1 {
        problems.push(FieldProblem {
            field: "release".into(),
            message: "give only one of release, image_digests and image_tag".into(),
        });
    }
    if !problems.is_empty() {
        return Err(AppError::invalid_fields(problems).into());
    }
    let source = if let Some(r) = release_ref {
        let release = match super::resolve_release(store, &project.id, &r).await {
            Ok(rel) => rel,
            Err(Error::App(e)) if e.code == ErrorCode::NotFound => {
                return Err(AppError::invalid("release", format!("project {} has no release `{r}`", project.slug)).into())
            }
            Err(e) => return Err(e),
        };
        Source::of_release(release)
    } else if let Some(digests) = &req.image_digests {
        digests_source(store, project, digests, git_sha.clone()).await?
    } else if let Some(tag) = image_tag {
        match release_with_image_tag(store, &project.id, &tag).await? {
            Some(rel) => Source::of_release(rel),
            None => {
                return Err(AppError::invalid(
                    "image_tag",
                    format!("no release of project {} has images tagged `{tag}`; create a release of that build first", project.slug),
                )
                .into())
            }
        }
    } else if let Some(sha) = git_sha.clone() {
        if !req.direct {
            // request_deploy sends this shape to the pipeline before resolving a source.
            return Err(AppError::invalid("git_sha", "runs the pipeline; it cannot be resolved to a release here").into());
        }
        match newest_release_of_commit(store, &project.id, &sha, manifest_hash.as_deref()).await? {
            Some(rel) => Source::of_release(rel),
            None => {
                return Err(AppError::invalid(
                    "git_sha",
                    format!("project {} has no release of commit {sha}; build and release it first, or deploy without direct to run the pipeline", project.slug),
                )
                .into())
            }
        }
    } else {
        return Err(AppError::invalid(
            "release",
            "say what to deploy: a release (tag or id), image_digests, image_tag, or git_sha with manifest_hash",
        )
        .into());
    };
    if let (Some(asked), Some(found)) = (&git_sha, &source.git_sha) {
        if asked != found {
            return Err(AppError::invalid(
                "git_sha",
                format!("{asked} is not the commit of the release being deployed ({found})"),
            )
            .into());
        }
    }
    Ok(source)
}

/// Raw digests: each must be an image this project built for that service.
/// Linked to the newest release with exactly these digests, if there is one.
async fn digests_source(store: &Store, project: &Project, digests: &ImageDigests, git_sha: Option<String>) -> Result<Source> {
    if digests.is_empty() {
        return Err(AppError::invalid("image_digests", "must name at least one service").into());
    }
    let mut problems = Vec::new();
    for (service, digest) in digests {
        if !is_image_digest(digest) {
            problems.push(FieldProblem {
                field: format!("image_digests.{service}"),
                message: format!("`{digest}` is not a sha256:<64 hex> digest"),
            });
        }
    }
    if !problems.is_empty() {
        return Err(AppError::invalid_fields(problems).into());
    }
    let wanted: Vec<String> = digests.values().cloned().collect();
    let known: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT a.service_name, a.digest FROM build_artifacts a JOIN build_specs b ON b.id = a.build_id
         WHERE a.digest = ANY($1) AND b.project_id = $2",
    )
    .bind(&wanted)
    .bind(&project.id)
    .fetch_all(store.pool())
    .await?;
    for (service, digest) in digests {
        if !known.iter().any(|(s, d)| s == service && d == digest) {
            problems.push(FieldProblem {
                field: format!("image_digests.{service}"),
                message: format!("{digest} is not an image project {} built for service {service}", project.slug),
            });
        }
    }
    if !problems.is_empty() {
        return Err(AppError::invalid_fields(problems).into());
    }
    let json = serde_json::to_value(digests).map_err(internal)?;
    let release: Option<(String, String)> = sqlx::query_as(
        "SELECT id, git_sha FROM releases WHERE project_id = $1 AND image_digests = $2 ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(&project.id)
    .bind(&json)
    .fetch_optional(store.pool())
    .await?;
    Ok(match release {
        Some((id, sha)) if git_sha.as_ref().is_none_or(|g| *g == sha) => {
            Source { release_id: Some(id), digests: digests.clone(), git_sha: Some(sha) }
        }
        _ => Source { release_id: None, digests: digests.clone(), git_sha },
    })
}

/// The newest release whose artifacts (those it took its digests from) carry `tag`.
async fn release_with_image_tag(store: &Store, project_id: &str, tag: &str) -> Result<Option<Release>> {
    let row: Option<ReleaseRow> = sqlx::query_as(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases r
         WHERE r.project_id = $1 AND EXISTS (
             SELECT 1 FROM build_artifacts a
             WHERE a.build_id = r.build_id AND a.digest = r.image_digests ->> a.service_name
               AND right(a.image_ref, length($2) + 1) = ':' || $2)
         ORDER BY r.created_at DESC, r.id DESC LIMIT 1"
    ))
    .bind(project_id)
    .bind(tag)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| r.into_release(Vec::new())).transpose()
}

async fn newest_release_of_commit(store: &Store, project_id: &str, sha: &str, manifest_hash: Option<&str>) -> Result<Option<Release>> {
    let row: Option<ReleaseRow> = sqlx::query_as(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases r
         WHERE r.project_id = $1 AND r.git_sha = $2 AND ($3::text IS NULL OR r.manifest_hash = $3)
         ORDER BY r.created_at DESC, r.id DESC LIMIT 1"
    ))
    .bind(project_id)
    .bind(sha)
    .bind(manifest_hash)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| r.into_release(Vec::new())).transpose()
}

/// Records a deployment under the environment's lock: refused while another
/// is deploying (unless gated: it then waits for approval), supersedes older
/// requests that never ran, and starts at once when there is no gate.
async fn insert_deployment(store: &Store, env: &Environment, new: NewDeployment<'_>) -> Result<Deployment> {
    let gated = env.approval_required > 0;
    let id = id::new_id(DEPLOYMENT);
    let digests = serde_json::to_value(&new.source.digests).map_err(internal)?;
    let mut tx = store.pool().begin().await?;
    lock_environment(&mut tx, &env.id).await?;
    let deploying: Option<(String,)> =
        sqlx::query_as("SELECT id FROM deployments WHERE environment_id = $1 AND status = 'deploying'")
            .bind(&env.id)
            .fetch_optional(&mut *tx)
            .await?;
    if let (false, Some((other,))) = (gated, &deploying) {
        return Err(busy(&env.name, other));
    }
    sqlx::query(
        "UPDATE deployments SET status = 'superseded', completed_at = now(), error_message = 'superseded by ' || $2
         WHERE environment_id = $1 AND status IN ('pending', 'awaiting_approval')",
    )
    .bind(&env.id)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    let status = if gated { DeploymentStatus::AwaitingApproval } else { DeploymentStatus::Deploying };
    let inserted = sqlx::query(
        "INSERT INTO deployments (id, project_id, environment_id, release_id, image_digests, git_sha, status, kind,
                                  promoted_from_environment_id, requested_by, inputs, direct, started_at, pipeline_run_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, CASE WHEN $7 = 'deploying' THEN now() END, $13)",
    )
    .bind(&id)
    .bind(&env.project_id)
    .bind(&env.id)
    .bind(&new.source.release_id)
    .bind(&digests)
    .bind(&new.source.git_sha)
    .bind(status.as_str())
    .bind(new.kind.as_str())
    .bind(&new.promoted_from)
    .bind(new.requested_by)
    .bind(&new.inputs)
    .bind(new.direct)
    .bind(&new.pipeline_run_id)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(sqlx::Error::Database(db)) if db.constraint() == Some("deployments_one_deploying_idx") => {
            let other = deploying.map(|d| d.0).unwrap_or_else(|| "another deployment".into());
            return Err(busy(&env.name, &other));
        }
        Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() && db.constraint() == Some("deployments_requested_by_fkey") => {
            return Err(AppError::invalid("requested_by", "no such user").into())
        }
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    tracing::info!(deployment = %id, environment = %env.name, status = %status, kind = %new.kind, "deployment requested");
    get_deployment(store, &id).await
}

// ---------------------------------------------------------------------------
// Pipeline deployments
// ---------------------------------------------------------------------------

/// Records, in `tx` (which also records the pipeline run), the deployment a
/// pipeline deploy request asked for: `pending`, no digests yet, linked to
/// the run. Like any new request it supersedes the environment's older
/// requests that never ran. Returns its id.
pub(crate) async fn insert_pipeline_placeholder(
    tx: &mut Transaction<'_, Postgres>,
    env: &Environment,
    pipeline_run_id: &str,
    git_sha: &str,
    requested_by: Option<&str>,
    inputs: &serde_json::Value,
) -> Result<String> {
    let id = id::new_id(DEPLOYMENT);
    lock_environment(tx, &env.id).await?;
    sqlx::query(
        "UPDATE deployments SET status = 'superseded', completed_at = now(), error_message = 'superseded by ' || $2
         WHERE environment_id = $1 AND status IN ('pending', 'awaiting_approval')",
    )
    .bind(&env.id)
    .bind(&id)
    .execute(&mut **tx)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO deployments (id, project_id, environment_id, image_digests, git_sha, status, kind, requested_by,
                                  inputs, direct, pipeline_run_id)
         VALUES ($1, $2, $3, '{}', $4, 'pending', 'deploy', $5, $6, false, $7)",
    )
    .bind(&id)
    .bind(&env.project_id)
    .bind(&env.id)
    .bind(git_sha)
    .bind(requested_by)
    .bind(inputs)
    .bind(pipeline_run_id)
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => Ok(id),
        Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() && db.constraint() == Some("deployments_requested_by_fkey") => {
            Err(AppError::invalid("requested_by", "no such user").into())
        }
        Err(e) => Err(e.into()),
    }
}

/// A pipeline's deploy step: deploys `release` to `environment` for run
/// `pipeline_run_id`. The run's `pending` deployment to that environment (a
/// pipeline deploy request) gets the release's digests and starts — through
/// the gate, and refused (conflict) while another deployment of the
/// environment rolls out; without one, a new deployment linked to the run is
/// requested. A deployment the run already made there is returned as it is
/// (resuming a step), whatever its status (it may have been superseded).
pub(crate) async fn deploy_for_pipeline(
    store: &Store,
    project: &Project,
    environment: &str,
    release: &Release,
    pipeline_run_id: &str,
    requested_by: Option<&str>,
) -> Result<Deployment> {
    let env = find_environment(store, &project.id, &project.slug, environment).await?;
    let mut tx = store.pool().begin().await?;
    lock_environment(&mut tx, &env.id).await?;
    let existing: Option<(String, String)> = sqlx::query_as(
        "SELECT id, status FROM deployments WHERE pipeline_run_id = $1 AND environment_id = $2
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(pipeline_run_id)
    .bind(&env.id)
    .fetch_optional(&mut *tx)
    .await?;
    match existing {
        Some((id, status)) if status == DeploymentStatus::Pending.as_str() => {
            let gated = env.approval_required > 0;
            let deploying: Option<(String,)> =
                sqlx::query_as("SELECT id FROM deployments WHERE environment_id = $1 AND status = 'deploying'")
                    .bind(&env.id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let (false, Some((other,))) = (gated, &deploying) {
                return Err(busy(&env.name, other));
            }
            sqlx::query(
                "UPDATE deployments SET status = 'superseded', completed_at = now(), error_message = 'superseded by ' || $2
                 WHERE environment_id = $1 AND status IN ('pending', 'awaiting_approval') AND id <> $2",
            )
            .bind(&env.id)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            let status = if gated { DeploymentStatus::AwaitingApproval } else { DeploymentStatus::Deploying };
            let digests = serde_json::to_value(&release.image_digests).map_err(internal)?;
            let updated = sqlx::query(
                "UPDATE deployments SET release_id = $2, image_digests = $3, git_sha = $4, status = $5,
                        started_at = CASE WHEN $5 = 'deploying' THEN now() END
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(&id)
            .bind(&release.id)
            .bind(&digests)
            .bind(&release.git_sha)
            .bind(status.as_str())
            .execute(&mut *tx)
            .await;
            match updated {
                Ok(_) => {}
                Err(sqlx::Error::Database(db)) if db.constraint() == Some("deployments_one_deploying_idx") => {
                    return Err(busy(&env.name, &deploying.map(|d| d.0).unwrap_or_else(|| "another deployment".into())));
                }
                Err(e) => return Err(e.into()),
            }
            tx.commit().await?;
            tracing::info!(deployment = %id, environment = %env.name, status = %status, "pipeline deployment started");
            get_deployment(store, &id).await
        }
        Some((id, _)) => {
            drop(tx);
            get_deployment(store, &id).await
        }
        None => {
            drop(tx);
            insert_deployment(
                store,
                &env,
                NewDeployment {
                    source: Source::of_release(release.clone()),
                    kind: DeploymentKind::Deploy,
                    promoted_from: None,
                    requested_by,
                    inputs: serde_json::json!({ "pipeline_run_id": pipeline_run_id }),
                    direct: false,
                    pipeline_run_id: Some(pipeline_run_id.to_string()),
                },
            )
            .await
        }
    }
}

/// Starts one approved deployment whose wait timer has run out (what
/// [`start_due_deployments`] does for all). Returns whether it started.
pub(crate) async fn advance_if_due(store: &Store, deployment_id: &str, environment_id: &str) -> Result<bool> {
    let mut tx = store.pool().begin().await?;
    lock_environment(&mut tx, environment_id).await?;
    let started = advance(&mut tx, deployment_id).await?;
    tx.commit().await?;
    Ok(started)
}

/// Fails the deployments a pipeline run was asked for but never started
/// (its deploy step did not run), with `message`.
pub(crate) async fn fail_pipeline_placeholders(store: &Store, pipeline_run_id: &str, message: &str) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE deployments SET status = 'failed', completed_at = now(), error_message = $2
         WHERE pipeline_run_id = $1 AND status = 'pending'",
    )
    .bind(pipeline_run_id)
    .bind(message)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected())
}

/// Deploys the release now running in `from_env` to `to_env` (kind
/// `promote`): the very same digests, behind `to_env`'s gate.
#[tracing::instrument(skip_all, fields(project = %project, from = %from_env, to = %to_env))]
pub async fn promote(store: &Store, project: &str, from_env: &str, to_env: &str, requested_by: Option<&str>) -> Result<Deployment> {
    let project = store.get_project(project).await?;
    let from = find_environment(store, &project.id, &project.slug, from_env).await?;
    let to = find_environment(store, &project.id, &project.slug, to_env).await?;
    if from.id == to.id {
        return Err(AppError::invalid("to_env", format!("promote {} to a different environment", from.name)).into());
    }
    let Some(current) = current_deployment(store, &from.id).await? else {
        return Err(AppError::conflict(format!("nothing runs in {} yet: deploy a release there before promoting it", from.name)).into());
    };
    let source = Source { release_id: current.release_id, digests: current.image_digests, git_sha: current.git_sha };
    insert_deployment(
        store,
        &to,
        NewDeployment {
            source,
            kind: DeploymentKind::Promote,
            promoted_from: Some(from.id),
            requested_by,
            inputs: serde_json::json!({}),
            direct: false,
            pipeline_run_id: None,
        },
    )
    .await
}

/// Deploys the environment's previous successful release (the newest
/// succeeded deployment with other digests than the current one), kind
/// `rollback`, behind the environment's gate like any deployment.
#[tracing::instrument(skip_all, fields(project = %project, environment = %environment))]
pub async fn rollback(store: &Store, project: &str, environment: &str, requested_by: Option<&str>) -> Result<Deployment> {
    let project = store.get_project(project).await?;
    let env = find_environment(store, &project.id, &project.slug, environment).await?;
    let Some(current) = current_deployment(store, &env.id).await? else {
        return Err(AppError::conflict(format!("nothing has been deployed to {} yet; there is nothing to roll back", env.name)).into());
    };
    let current_json = serde_json::to_value(&current.image_digests).map_err(internal)?;
    let previous: Option<(Option<String>, serde_json::Value, Option<String>, String)> = sqlx::query_as(
        "SELECT release_id, image_digests, git_sha, id FROM deployments
         WHERE environment_id = $1 AND status = 'succeeded' AND image_digests <> $2
         ORDER BY completed_at DESC, id DESC LIMIT 1",
    )
    .bind(&env.id)
    .bind(&current_json)
    .fetch_optional(store.pool())
    .await?;
    let Some((release_id, digests, git_sha, from_dep)) = previous else {
        return Err(AppError::conflict(format!("{} has no earlier successful release to roll back to", env.name)).into());
    };
    let source = Source { release_id, digests: decode_digests(&from_dep, digests)?, git_sha };
    insert_deployment(
        store,
        &env,
        NewDeployment {
            source,
            kind: DeploymentKind::Rollback,
            promoted_from: None,
            requested_by,
            inputs: serde_json::json!({ "rollback_to_deployment": from_dep, "rollback_from_deployment": current.id }),
            direct: false,
            pipeline_run_id: None,
        },
    )
    .await
}

// ---------------------------------------------------------------------------
// Approval gate
// ---------------------------------------------------------------------------

/// Approves a deployment awaiting approval, as `user_id`. `may_approve` is
/// the caller's answer to "does this user have the approver role (or
/// admin)"; when the environment names approvers, only they may approve.
/// The requester can never approve their own deployment. The approval is
/// bound to the deployment's digests. With enough valid approvals and the
/// wait timer elapsed, the deployment moves to `deploying` (unless another
/// deployment of the environment is rolling out; then it starts from
/// [`start_due_deployments`] later) and the caller runs [`execute_deployment`].
#[tracing::instrument(skip_all, fields(deployment = %deployment_id, user = %user_id))]
pub async fn approve(store: &Store, deployment_id: &str, user_id: &str, may_approve: bool) -> Result<Deployment> {
    decide(store, deployment_id, user_id, may_approve, ApprovalDecision::Approved).await
}

/// Rejects a deployment awaiting approval (same rights as approving): it
/// becomes `rejected` and never runs; the environment is untouched.
#[tracing::instrument(skip_all, fields(deployment = %deployment_id, user = %user_id))]
pub async fn reject(store: &Store, deployment_id: &str, user_id: &str, may_approve: bool) -> Result<Deployment> {
    decide(store, deployment_id, user_id, may_approve, ApprovalDecision::Rejected).await
}

async fn decide(store: &Store, deployment_id: &str, user_id: &str, may_approve: bool, decision: ApprovalDecision) -> Result<Deployment> {
    let env_id: Option<(String,)> = sqlx::query_as("SELECT environment_id FROM deployments WHERE id = $1")
        .bind(deployment_id)
        .fetch_optional(store.pool())
        .await?;
    let Some((env_id,)) = env_id else {
        return Err(AppError::not_found(format!("deployment `{deployment_id}`")).into());
    };
    let verb = if decision == ApprovalDecision::Approved { "approve" } else { "reject" };
    let mut tx = store.pool().begin().await?;
    lock_environment(&mut tx, &env_id).await?;
    let dep = load_one(&mut tx, deployment_id).await?;
    if dep.status != DeploymentStatus::AwaitingApproval {
        return Err(AppError::conflict(format!(
            "deployment {deployment_id} is {}; only a deployment awaiting approval can be {verb}d",
            dep.status
        ))
        .into());
    }
    let user: Option<(String, bool)> =
        sqlx::query_as("SELECT username, disabled_at IS NOT NULL FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((username, disabled)) = user else {
        return Err(AppError::not_found(format!("user `{user_id}`")).into());
    };
    if disabled {
        return Err(forbidden(format!("user {username} is disabled")));
    }
    if decision == ApprovalDecision::Approved && dep.requested_by.as_deref() == Some(user_id) {
        return Err(forbidden(format!(
            "{username} requested deployment {deployment_id} and cannot approve it; someone else must (no self-approval)"
        )));
    }
    let approvers: Vec<String> =
        sqlx::query_as::<_, (Vec<String>,)>("SELECT approvers FROM environments WHERE id = $1")
            .bind(&env_id)
            .fetch_one(&mut *tx)
            .await?
            .0;
    let allowed = if approvers.is_empty() { may_approve } else { approvers.iter().any(|a| a.eq_ignore_ascii_case(&username)) };
    if !allowed {
        return Err(forbidden(if approvers.is_empty() {
            format!("{username} may not {verb} deployments to {}: that needs the approver role on the project", dep.environment)
        } else {
            format!("only {} may {verb} deployments to {}", approvers.join(", "), dep.environment)
        }));
    }
    let hash = digests_hash(&dep.image_digests);
    if let Some(previous) = dep.approvals.iter().find(|a| a.user_id == user_id) {
        if previous.valid {
            return Err(AppError::conflict(format!(
                "{username} already {} deployment {deployment_id}",
                previous.decision
            ))
            .into());
        }
        // Given for other digests: it no longer counts; this decision replaces it.
        sqlx::query(
            "UPDATE approvals SET decision = $3, digests_hash = $4, created_at = now() WHERE deployment_id = $1 AND user_id = $2",
        )
        .bind(deployment_id)
        .bind(user_id)
        .bind(decision.as_str())
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(
            "INSERT INTO approvals (id, deployment_id, user_id, decision, digests_hash) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id::new_id(APPROVAL))
        .bind(deployment_id)
        .bind(user_id)
        .bind(decision.as_str())
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    }
    match decision {
        ApprovalDecision::Rejected => {
            sqlx::query(
                "UPDATE deployments SET status = 'rejected', completed_at = now(), error_message = $2
                 WHERE id = $1 AND status = 'awaiting_approval'",
            )
            .bind(deployment_id)
            .bind(format!("rejected by {username}"))
            .execute(&mut *tx)
            .await?;
        }
        ApprovalDecision::Approved => {
            advance(&mut tx, deployment_id).await?;
        }
    }
    tx.commit().await?;
    tracing::info!(deployment = %deployment_id, %username, decision = %decision, "approval recorded");
    crate::metrics::gate_decided(if decision == ApprovalDecision::Approved { "approved" } else { "rejected" });
    let after = get_deployment(store, deployment_id).await?;
    if dep.approved_at.is_none() {
        if let Some(approved_at) = after.approved_at {
            // This decision satisfied the gate: how long the deployment waited for it.
            crate::metrics::approval_waited(&after.environment, (approved_at - after.created_at).to_std().unwrap_or_default());
        }
    }
    Ok(after)
}

/// Under the environment's lock: when the gate of a waiting deployment is
/// satisfied, records when (the wait timer starts then) and, once the timer
/// has run out and nothing else is deploying there, moves it to `deploying`.
/// Returns whether it started.
async fn advance(tx: &mut Transaction<'_, Postgres>, deployment_id: &str) -> Result<bool> {
    let dep = load_one(tx, deployment_id).await?;
    if dep.status != DeploymentStatus::AwaitingApproval {
        return Ok(false);
    }
    let satisfied = dep.approvals_needed == 0 && dep.approvers_still_needed.is_empty();
    if !satisfied {
        if dep.approved_at.is_some() {
            // Approvals stopped counting (digests changed): the timer starts over later.
            sqlx::query("UPDATE deployments SET approved_at = NULL WHERE id = $1").bind(deployment_id).execute(&mut **tx).await?;
        }
        return Ok(false);
    }
    let (due,): (bool,) = sqlx::query_as(
        "UPDATE deployments d SET approved_at = coalesce(d.approved_at, now())
         FROM environments e WHERE d.id = $1 AND e.id = d.environment_id
         RETURNING coalesce(d.approved_at, now()) + make_interval(secs => e.wait_timer_seconds) <= now()",
    )
    .bind(deployment_id)
    .fetch_one(&mut **tx)
    .await?;
    if !due {
        return Ok(false);
    }
    let other: Option<(String,)> =
        sqlx::query_as("SELECT id FROM deployments WHERE environment_id = $1 AND status = 'deploying' AND id <> $2")
            .bind(&dep.environment_id)
            .bind(deployment_id)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some((other,)) = other {
        tracing::info!(deployment = %deployment_id, %other, "approved; waiting for the running deployment to finish");
        return Ok(false);
    }
    sqlx::query("UPDATE deployments SET status = 'deploying', started_at = now() WHERE id = $1 AND status = 'awaiting_approval'")
        .bind(deployment_id)
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

/// Starts gated deployments whose gate is satisfied and whose wait timer has
/// run out (call it every few seconds). Returns the ids now `deploying`.
#[tracing::instrument(skip_all)]
pub async fn start_due_deployments(store: &Store) -> Result<Vec<String>> {
    let due: Vec<(String, String)> = sqlx::query_as(
        "SELECT d.id, d.environment_id FROM deployments d JOIN environments e ON e.id = d.environment_id
         WHERE d.status = 'awaiting_approval' AND d.approved_at IS NOT NULL
           AND d.approved_at + make_interval(secs => e.wait_timer_seconds) <= now()
         ORDER BY d.approved_at LIMIT 100",
    )
    .fetch_all(store.pool())
    .await?;
    let mut started = Vec::new();
    for (id, env_id) in due {
        let mut tx = store.pool().begin().await?;
        lock_environment(&mut tx, &env_id).await?;
        let now_deploying = advance(&mut tx, &id).await?;
        tx.commit().await?;
        if now_deploying {
            started.push(id);
        }
    }
    Ok(started)
}

// ---------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------

/// Applies a `deploying` deployment on `target` and records the outcome:
/// `succeeded` with the containers, or `failed` with the reason. The digests
/// applied are the deployment's, which must equal its release's byte for
/// byte. One executor per deployment (a second call gets a conflict).
#[tracing::instrument(skip_all, fields(deployment = %deployment_id, target = target.name()))]
pub async fn execute_deployment(store: &Store, target: &dyn DeployTarget, deployment_id: &str) -> Result<Deployment> {
    let mut guard = store.pool().begin().await?;
    let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock(hashtextextended('slipway.deployment:' || $1, 0))")
        .bind(deployment_id)
        .fetch_one(&mut *guard)
        .await?;
    if !locked {
        return Err(AppError::conflict(format!("deployment {deployment_id} is already being rolled out")).into());
    }
    let dep = get_deployment(store, deployment_id).await?;
    if dep.status != DeploymentStatus::Deploying {
        return Err(AppError::conflict(format!(
            "deployment {deployment_id} is {}; only a deploying deployment can be executed",
            dep.status
        ))
        .into());
    }
    let project = store.get_project(&dep.project_id).await?;
    let outcome = match plan_for(store, &project, &dep).await {
        Err(message) => Err(message),
        Ok(plan) => {
            tracing::info!(services = plan.services.len(), environment = %dep.environment, "rolling out");
            match target.deploy(&plan).await {
                Ok(containers) => check_containers(&dep.image_digests, containers),
                Err(e) => Err(e.message),
            }
        }
    };
    let (status, error, containers) = match outcome {
        Ok(containers) => (DeploymentStatus::Succeeded, None, containers),
        Err(message) => (DeploymentStatus::Failed, Some(message), Vec::new()),
    };
    let containers_json = serde_json::to_value(&containers).map_err(internal)?;
    sqlx::query(
        "UPDATE deployments SET status = $2, error_message = $3, containers = $4, completed_at = now()
         WHERE id = $1 AND status = 'deploying'",
    )
    .bind(deployment_id)
    .bind(status.as_str())
    .bind(&error)
    .bind(&containers_json)
    .execute(store.pool())
    .await?;
    guard.commit().await?;
    crate::metrics::deployment_ended(&dep.environment, status.as_str());
    match &error {
        None => tracing::info!(environment = %dep.environment, "deployment succeeded"),
        Some(e) => tracing::warn!(environment = %dep.environment, error = %e, "deployment failed"),
    }
    get_deployment(store, deployment_id).await
}

/// The target must report exactly the deployment's digests, one container per service.
fn check_containers(digests: &ImageDigests, containers: Vec<ContainerView>) -> Result<Vec<ContainerView>, String> {
    let reported: BTreeMap<String, String> = containers.iter().map(|c| (c.service.clone(), c.digest.clone())).collect();
    if &reported != digests || containers.len() != digests.len() {
        return Err(format!(
            "the target reported other digests than the deployment's: {}",
            serde_json::to_string(&reported).unwrap_or_default()
        ));
    }
    Ok(containers)
}

/// What to run: per service its repository (from the project's artifacts
/// with that digest, the release's build first) and the manifest's command
/// and environment at the deployment's commit. `Err` is the failure reason.
async fn plan_for(store: &Store, project: &Project, dep: &Deployment) -> std::result::Result<DeployPlan, String> {
    let fail = |e: Error| {
        let app: AppError = e.into();
        app.message
    };
    let release_build: Option<String> = match &dep.release_id {
        Some(rel) => {
            let release = super::get_release(store, rel).await.map_err(fail)?;
            if release.image_digests != dep.image_digests {
                return Err(format!(
                    "the deployment's digests differ from those of release {}; refusing to deploy them",
                    release.tag.unwrap_or(release.id)
                ));
            }
            Some(release.build_id)
        }
        None => None,
    };
    let wanted: Vec<String> = dep.image_digests.values().cloned().collect();
    let repos: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT DISTINCT ON (a.service_name, a.digest) a.service_name, a.digest, a.image_ref
         FROM build_artifacts a JOIN build_specs b ON b.id = a.build_id
         WHERE a.digest = ANY($1) AND b.project_id = $2
         ORDER BY a.service_name, a.digest, (a.build_id IS NOT DISTINCT FROM $3) DESC, a.created_at DESC",
    )
    .bind(&wanted)
    .bind(&project.id)
    .bind(&release_build)
    .fetch_all(store.pool())
    .await
    .map_err(|e| fail(e.into()))?;
    let manifest = match &dep.git_sha {
        Some(sha) => match store.manifest_content(&project.id, sha).await {
            Ok(Some((_, content))) => manifest::parse(&content).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "reading the manifest for the deployment's commands");
                None
            }
        },
        None => None,
    };
    let mut services = Vec::with_capacity(dep.image_digests.len());
    for (service, digest) in &dep.image_digests {
        let Some((_, _, image_ref)) = repos.iter().find(|(s, d, _)| s == service && d == digest) else {
            return Err(format!("service {service}: no image of project {} has digest {digest}", project.slug));
        };
        let svc = manifest.as_ref().and_then(|m| m.services.get(service));
        services.push(ServicePlan {
            service: service.clone(),
            repository: repository_of(image_ref).to_string(),
            digest: digest.clone(),
            command: svc.and_then(|s| s.command.as_ref()).map(|c| c.split_whitespace().map(str::to_string).collect()),
            env: svc
                .map(|s| s.environment.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone()))).collect())
                .unwrap_or_default(),
        });
    }
    Ok(DeployPlan {
        deployment_id: dep.id.clone(),
        project_id: project.id.clone(),
        project_slug: project.slug.clone(),
        environment: dep.environment.clone(),
        release_id: dep.release_id.clone(),
        services,
    })
}

/// Starts due gated deployments, then executes every `deploying` one no other
/// executor holds (also resumes rollouts a stopped process left behind).
pub async fn run_pending(store: &Store, target: &dyn DeployTarget) -> Result<Vec<Deployment>> {
    start_due_deployments(store).await?;
    let ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM deployments WHERE status = 'deploying' ORDER BY started_at, id")
        .fetch_all(store.pool())
        .await?;
    let mut done = Vec::new();
    for (id,) in ids {
        match execute_deployment(store, target, &id).await {
            Ok(d) => done.push(d),
            Err(Error::App(e)) if e.code == ErrorCode::Conflict => {}
            Err(e) => tracing::warn!(deployment = %id, error = %e, "executing a deployment"),
        }
    }
    Ok(done)
}

// ---------------------------------------------------------------------------
// Board and diff
// ---------------------------------------------------------------------------

/// What promoting `from_env` to `to_env` would change: per service the
/// digests on each side, the commits, and the build args of both releases.
#[tracing::instrument(skip_all, fields(project = %project, from = %from_env, to = %to_env))]
pub async fn diff(store: &Store, project: &str, from_env: &str, to_env: &str) -> Result<PromotionDiff> {
    let project = store.get_project(project).await?;
    let from = find_environment(store, &project.id, &project.slug, from_env).await?;
    let to = find_environment(store, &project.id, &project.slug, to_env).await?;
    let cur_from = current_deployment(store, &from.id).await?;
    let cur_to = current_deployment(store, &to.id).await?;
    let empty = ImageDigests::new();
    let digests_from = cur_from.as_ref().map(|d| &d.image_digests).unwrap_or(&empty);
    let digests_to = cur_to.as_ref().map(|d| &d.image_digests).unwrap_or(&empty);
    let names: BTreeSet<&String> = digests_from.keys().chain(digests_to.keys()).collect();
    let services = names
        .into_iter()
        .map(|s| {
            let (f, t) = (digests_from.get(s).cloned(), digests_to.get(s).cloned());
            ServiceDiff { service: s.clone(), changed: f != t, from_digest: f, to_digest: t }
        })
        .collect();
    Ok(PromotionDiff {
        from_env: from.name,
        to_env: to.name,
        from_release: cur_from.as_ref().and_then(|d| d.release_tag.clone().or_else(|| d.release_id.clone())),
        to_release: cur_to.as_ref().and_then(|d| d.release_tag.clone().or_else(|| d.release_id.clone())),
        from_sha: cur_from.as_ref().and_then(|d| d.git_sha.clone()),
        to_sha: cur_to.as_ref().and_then(|d| d.git_sha.clone()),
        build_args_from: build_args_of(store, cur_from.as_ref()).await?,
        build_args_to: build_args_of(store, cur_to.as_ref()).await?,
        services,
    })
}

async fn build_args_of(store: &Store, dep: Option<&Deployment>) -> Result<Option<BuildArgs>> {
    let Some(release) = dep.and_then(|d| d.release_id.as_ref()) else { return Ok(None) };
    let row: Option<(serde_json::Value,)> =
        sqlx::query_as("SELECT b.build_args FROM releases r JOIN build_specs b ON b.id = r.build_id WHERE r.id = $1")
            .bind(release)
            .fetch_optional(store.pool())
            .await?;
    Ok(row.map(|(v,)| serde_json::from_value(v).unwrap_or_default()))
}

#[derive(sqlx::FromRow)]
struct BoardRow {
    slot: String,
    #[sqlx(flatten)]
    deployment: DeploymentRow,
}

/// The Environments board: per environment in promotion order, what runs
/// now, what is waiting or rolling out, and the last 10 finished
/// deployments. Three queries whatever the history size: each lane is an
/// index range scan per environment.
#[tracing::instrument(skip_all, fields(project = %project))]
pub async fn board(store: &Store, project: &str) -> Result<Board> {
    let project = store.get_project(project).await?;
    let environments = list_by_project_id(store, &project.id).await?;
    let mut conn = store.pool().acquire().await?;
    let rows: Vec<BoardRow> = sqlx::query_as(&format!(
        "WITH picked AS (
             SELECT x.id, x.slot FROM environments e CROSS JOIN LATERAL (
                 (SELECT d.id, 'current'::text AS slot FROM deployments d
                  WHERE d.environment_id = e.id AND d.status = 'succeeded'
                  ORDER BY d.completed_at DESC, d.id DESC LIMIT 1)
                 UNION ALL
                 (SELECT d.id, 'pending'::text FROM deployments d
                  WHERE d.environment_id = e.id AND d.status IN ('pending', 'awaiting_approval', 'deploying')
                  ORDER BY d.created_at DESC, d.id DESC LIMIT 20)
                 UNION ALL
                 (SELECT d.id, 'history'::text FROM deployments d
                  WHERE d.environment_id = e.id AND d.status IN ('succeeded', 'failed', 'rejected', 'cancelled', 'superseded')
                  ORDER BY d.created_at DESC, d.id DESC LIMIT 10)
             ) x WHERE e.project_id = $1)
         SELECT picked.slot, {DEPLOYMENT_COLUMNS}
         FROM picked JOIN deployments d ON d.id = picked.id {DEPLOYMENT_JOINS}
         ORDER BY d.created_at DESC, d.id DESC"
    ))
    .bind(&project.id)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.deployment.id.clone()).collect();
    let approvals = load_approvals(&mut conn, &ids).await?;
    let mut columns: Vec<BoardColumn> = environments
        .into_iter()
        .map(|environment| BoardColumn { environment, current: None, pending: Vec::new(), history: Vec::new() })
        .collect();
    let index: HashMap<String, usize> = columns.iter().enumerate().map(|(i, c)| (c.environment.id.clone(), i)).collect();
    for row in rows {
        let Some(&i) = index.get(&row.deployment.environment_id) else { continue };
        // A deployment can be in two lanes (current and history): both get its approvals.
        let a = approvals.get(&row.deployment.id).cloned().unwrap_or_default();
        let slot = row.slot;
        let d = assemble(row.deployment, a)?;
        match slot.as_str() {
            "current" => columns[i].current = Some(d),
            "pending" => columns[i].pending.push(d),
            _ => columns[i].history.push(d),
        }
    }
    Ok(Board { project, environments: columns })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(user: &str, valid: bool) -> ApprovalView {
        ApprovalView { user_id: format!("id-{user}"), username: user.into(), decision: ApprovalDecision::Approved, at: Utc::now(), valid }
    }

    #[test]
    fn a_role_gate_counts_valid_approvals_only() {
        let g = evaluate_gate(2, &[], &[approval("a", true), approval("b", false)]);
        assert_eq!(g.needed, 1);
        assert!(g.still_needed.is_empty());
        let g = evaluate_gate(2, &[], &[approval("a", true), approval("b", true)]);
        assert_eq!(g.needed, 0);
    }

    #[test]
    fn a_named_gate_lists_who_is_still_needed() {
        let named = vec!["alice".to_string(), "bob".to_string()];
        let g = evaluate_gate(1, &named, &[]);
        assert_eq!(g.needed, 1);
        assert_eq!(g.still_needed, ["alice", "bob"]);
        let g = evaluate_gate(2, &named, &[approval("Alice", true)]);
        assert_eq!((g.needed, g.still_needed.clone()), (1, vec!["bob".to_string()]));
        let g = evaluate_gate(2, &named, &[approval("alice", true), approval("bob", true)]);
        assert!(g.needed == 0 && g.still_needed.is_empty());
    }

    #[test]
    fn no_gate_is_always_satisfied() {
        assert_eq!(evaluate_gate(0, &[], &[]).needed, 0);
    }
}
