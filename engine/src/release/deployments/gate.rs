//! The approval gate: approving or rejecting a deployment awaiting approval
//! (approvals are bound to its digests), evaluating a gate, and starting a
//! gated deployment once its gate is satisfied, its wait timer has run out
//! and nothing else rolls out in its environment.

use slipway_model::id::{self, APPROVAL};
use slipway_model::release::{digests_hash, ApprovalView, Deployment};
use slipway_model::status::{ApprovalDecision, DeploymentStatus};
use slipway_model::{AppError, ErrorCode};
use sqlx::{Postgres, Transaction};

use super::load::{get_deployment, load_one};
use crate::error::{Error, Result};
use crate::release::environments::{lock_environment, rolling_out};
use crate::Store;

fn forbidden(message: impl Into<String>) -> Error {
    AppError::new(ErrorCode::Forbidden, message).into()
}

/// Where a gate stands.
pub(super) struct GateState {
    pub(super) needed: u32,
    pub(super) still_needed: Vec<String>,
}

/// Evaluates a gate: `required` valid approvals; when approvers are named,
/// they must come from named users (the manifest never requires more
/// approvals than it names approvers).
pub(super) fn evaluate_gate(required: u32, approvers: &[String], approvals: &[ApprovalView]) -> GateState {
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

/// Approves a deployment awaiting approval, as `user_id`. `may_approve` is
/// the caller's answer to "does this user have the approver role (or
/// admin)"; when the environment names approvers, only they may approve.
/// The requester can never approve their own deployment. The approval is
/// bound to the deployment's digests. With enough valid approvals and the
/// wait timer elapsed, the deployment moves to `deploying` (unless another
/// deployment of the environment is rolling out; then it starts from
/// [`start_due_deployments`] later) and the caller runs
/// [`super::execute_deployment`].
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
    // Not this one: it is still awaiting approval (checked above, under the lock).
    if let Some(other) = rolling_out(tx, &dep.environment_id).await? {
        tracing::info!(deployment = %deployment_id, %other, "approved; waiting for the running deployment to finish");
        return Ok(false);
    }
    sqlx::query("UPDATE deployments SET status = 'deploying', started_at = now() WHERE id = $1 AND status = 'awaiting_approval'")
        .bind(deployment_id)
        .execute(&mut **tx)
        .await?;
    crate::release::executor::announce(&mut **tx, deployment_id).await?;
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

/// Starts one approved deployment whose wait timer has run out (what
/// [`start_due_deployments`] does for all). Returns whether it started.
pub(crate) async fn advance_if_due(store: &Store, deployment_id: &str, environment_id: &str) -> Result<bool> {
    let mut tx = store.pool().begin().await?;
    lock_environment(&mut tx, environment_id).await?;
    let started = advance(&mut tx, deployment_id).await?;
    tx.commit().await?;
    Ok(started)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

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
