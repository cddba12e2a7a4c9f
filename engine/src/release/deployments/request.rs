//! Recording deployments: a deploy request naming what to deploy, a
//! promotion, a rollback, and the deployments a pipeline makes (the
//! placeholder of a pipeline deploy request, and its deploy step). Each
//! enters its environment through one busy check and supersede
//! ([`make_way`]) under the environment's lock.

use slipway_model::id::{self, DEPLOYMENT};
use slipway_model::project::Project;
use slipway_model::release::{DeployRequest, Deployment, DeploymentKind, Environment, Release};
use slipway_model::status::DeploymentStatus;
use slipway_model::AppError;
use sqlx::{Postgres, Transaction};

use super::load::{current_deployment, get_deployment};
use super::source::{resolve_source, Source};
use crate::error::{Error, Result};
use crate::release::environments::{find_environment, lock_environment, rolling_out};
use crate::release::{decode_digests, internal};
use crate::Store;

fn busy(environment: &str, deployment: &str) -> Error {
    AppError::conflict(format!("environment {environment} is being deployed by {deployment}; try again when it finishes")).into()
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

/// Records a deploy request for one environment of a project, naming what
/// to deploy ([`super::source`]): a release (tag or id, also read from
/// `inputs.release_tag` / `inputs.release_id`), raw `image_digests` (each
/// must be an image this project built), an `image_tag` (the newest release
/// whose images carry it), or a `git_sha` with `direct` (the newest release
/// of that commit). `inputs` is already checked to be an object. A gated
/// environment (`approval_required > 0`) puts the deployment in
/// `awaiting_approval` — `direct` does not bypass the gate — otherwise it is
/// `deploying` at once and the caller runs [`super::execute_deployment`].
/// Refused while the environment is being deployed.
///
/// The API's entry is [`crate::pipeline::request_deploy`], which sends a
/// request in the pipeline shape (`git_sha` without `direct`) to the
/// pipeline and any other here.
pub(crate) async fn request_release_deploy(
    store: &Store,
    project: &Project,
    req: &DeployRequest,
    inputs: serde_json::Value,
    requested_by: Option<&str>,
    kind: DeploymentKind,
) -> Result<Deployment> {
    let env = find_environment(store, &project.id, &project.slug, &req.environment).await?;
    let source = resolve_source(store, project, req, &inputs).await?;
    insert_deployment(
        store,
        &env,
        NewDeployment { source, kind, promoted_from: None, requested_by, inputs, direct: req.direct, pipeline_run_id: None },
    )
    .await
}

/// The busy check and supersede every deployment entering an environment
/// goes through, in a transaction holding the environment's lock
/// ([`lock_environment`]): when it `starts` (it will be `deploying` at once)
/// and another deployment of the environment is rolling out, a conflict
/// naming that one; then the environment's requests that never ran (other
/// than `deployment_id`) are superseded by `deployment_id`. Returns the
/// deployment rolling out there when it `starts`, for [`write_error`].
async fn make_way(tx: &mut Transaction<'_, Postgres>, env: &Environment, deployment_id: &str, starts: bool) -> Result<Option<String>> {
    let deploying = if starts { rolling_out(tx, &env.id).await? } else { None };
    if let Some(other) = &deploying {
        return Err(busy(&env.name, other));
    }
    sqlx::query(
        "UPDATE deployments SET status = 'superseded', completed_at = now(), error_message = 'superseded by ' || $2
         WHERE environment_id = $1 AND status IN ('pending', 'awaiting_approval') AND id <> $2",
    )
    .bind(&env.id)
    .bind(deployment_id)
    .execute(&mut **tx)
    .await?;
    Ok(deploying)
}

/// A failed write of a deployment of `env`: another one started first (the
/// one-deploying index caught the race; `deploying` names it when known), or
/// the requester is no user.
fn write_error(e: sqlx::Error, env: &Environment, deploying: Option<String>) -> Error {
    match e {
        sqlx::Error::Database(db) if db.constraint() == Some("deployments_one_deploying_idx") => {
            busy(&env.name, &deploying.unwrap_or_else(|| "another deployment".into()))
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() && db.constraint() == Some("deployments_requested_by_fkey") => {
            AppError::invalid("requested_by", "no such user").into()
        }
        e => e.into(),
    }
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
    let deploying = make_way(&mut tx, env, &id, !gated).await?;
    let status = if gated { DeploymentStatus::AwaitingApproval } else { DeploymentStatus::Deploying };
    sqlx::query(
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
    .await
    .map_err(|e| write_error(e, env, deploying))?;
    if status == DeploymentStatus::Deploying {
        crate::release::executor::announce(&mut *tx, &id).await?;
    }
    tx.commit().await?;
    tracing::info!(deployment = %id, environment = %env.name, status = %status, kind = %new.kind, "deployment requested");
    get_deployment(store, &id).await
}

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
    make_way(tx, env, &id, false).await?;
    sqlx::query(
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
    .await
    .map_err(|e| write_error(e, env, None))?;
    Ok(id)
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
            let deploying = make_way(&mut tx, &env, &id, !gated).await?;
            let status = if gated { DeploymentStatus::AwaitingApproval } else { DeploymentStatus::Deploying };
            let digests = serde_json::to_value(&release.image_digests).map_err(internal)?;
            sqlx::query(
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
            .await
            .map_err(|e| write_error(e, &env, deploying))?;
            if status == DeploymentStatus::Deploying {
                crate::release::executor::announce(&mut *tx, &id).await?;
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
