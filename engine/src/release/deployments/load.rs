//! Reading deployments: one query for the rows (with their environment,
//! release tag, promotion source and requester) and one for their
//! approvals, assembled into [`Deployment`]s with the gate evaluated.

use std::collections::HashMap;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use slipway_model::release::{digests_hash, ApprovalView, ContainerView, Deployment, DeploymentKind};
use slipway_model::status::{ApprovalDecision, DeploymentStatus};
use slipway_model::AppError;
use sqlx::PgConnection;

use super::gate::evaluate_gate;
use crate::error::{Error, Result};
use crate::release::decode_digests;
use crate::Store;

#[derive(sqlx::FromRow)]
pub(super) struct DeploymentRow {
    pub(super) id: String,
    project_id: String,
    environment: String,
    pub(super) environment_id: String,
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

pub(super) const DEPLOYMENT_COLUMNS: &str = "d.id, d.project_id, e.name AS environment, d.environment_id, d.release_id, \
     r.tag AS release_tag, d.image_digests, d.git_sha, d.status, d.kind, pe.name AS promoted_from, d.requested_by, \
     u.username AS requested_by_name, d.direct, d.created_at, d.approved_at, d.started_at, d.completed_at, \
     d.error_message, d.containers, d.pipeline_run_id, e.approval_required, e.approvers, e.wait_timer_seconds";

pub(super) const DEPLOYMENT_JOINS: &str = "JOIN environments e ON e.id = d.environment_id \
     LEFT JOIN releases r ON r.id = d.release_id \
     LEFT JOIN environments pe ON pe.id = d.promoted_from_environment_id \
     LEFT JOIN users u ON u.id = d.requested_by";

#[derive(Clone, sqlx::FromRow)]
pub(super) struct ApprovalRow {
    deployment_id: String,
    user_id: String,
    username: String,
    decision: String,
    digests_hash: String,
    created_at: DateTime<Utc>,
}

/// Approvals of these deployments with their usernames, oldest first.
pub(super) async fn load_approvals(conn: &mut PgConnection, ids: &[String]) -> Result<HashMap<String, Vec<ApprovalRow>>> {
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

pub(super) fn assemble(row: DeploymentRow, approvals: Vec<ApprovalRow>) -> Result<Deployment> {
    let status: DeploymentStatus =
        row.status.parse().map_err(|e| Error::CorruptRow(format!("deployment {} has an unknown status: {e}", row.id)))?;
    let kind: DeploymentKind =
        row.kind.parse().map_err(|e| Error::CorruptRow(format!("deployment {} has an unknown kind: {e}", row.id)))?;
    let image_digests = decode_digests(&row.id, row.image_digests)?;
    let hash = digests_hash(&image_digests);
    let mut views = Vec::with_capacity(approvals.len());
    for a in approvals {
        let decision: ApprovalDecision =
            a.decision.parse().map_err(|e| Error::CorruptRow(format!("an approval of {} has an unknown decision: {e}", row.id)))?;
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

pub(super) async fn load_one(conn: &mut PgConnection, deployment_id: &str) -> Result<Deployment> {
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

/// What runs in an environment now: its newest succeeded deployment.
pub(super) async fn current_deployment(store: &Store, environment_id: &str) -> Result<Option<Deployment>> {
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
