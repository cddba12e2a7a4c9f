//! Environments: a project's ordered promotion path, defined by the manifest
//! or the dashboard, each with an optional approval gate and a deploy target.

use slipway_model::id::{self, ENVIRONMENT};
use slipway_model::manifest::Manifest;
use slipway_model::release::{Environment, EnvironmentInput};
use slipway_model::{AppError, ErrorCode, FieldProblem};
use sqlx::{Postgres, Transaction};

use super::internal;
use crate::error::Result;
use crate::Store;

#[derive(sqlx::FromRow)]
pub(super) struct EnvironmentRow {
    id: String,
    project_id: String,
    name: String,
    position: i32,
    approval_required: i32,
    approvers: Vec<String>,
    wait_timer_seconds: i32,
    deploy_target: serde_json::Value,
}

pub(super) const ENVIRONMENT_COLUMNS: &str =
    "e.id, e.project_id, e.name, e.position, e.approval_required, e.approvers, e.wait_timer_seconds, e.deploy_target";

impl From<EnvironmentRow> for Environment {
    fn from(r: EnvironmentRow) -> Self {
        Environment {
            id: r.id,
            project_id: r.project_id,
            name: r.name,
            position: u32::try_from(r.position).unwrap_or(0),
            approval_required: u32::try_from(r.approval_required).unwrap_or(0),
            approvers: r.approvers,
            wait_timer_seconds: u64::try_from(r.wait_timer_seconds).unwrap_or(0),
            deploy_target: r.deploy_target,
        }
    }
}

/// The stored `deploy_target` of a project's environment `name`, read at
/// rollout time by target selection (`None`: no such environment).
pub(crate) async fn stored_target(store: &Store, project_id: &str, name: &str) -> Result<Option<serde_json::Value>> {
    let row: Option<(serde_json::Value,)> =
        sqlx::query_as("SELECT deploy_target FROM environments WHERE project_id = $1 AND name = $2")
            .bind(project_id)
            .bind(name)
            .fetch_optional(store.pool())
            .await?;
    Ok(row.map(|(t,)| t))
}

/// The environment `name_or_id` of a project.
pub(crate) async fn find_environment(store: &Store, project_id: &str, project_slug: &str, name_or_id: &str) -> Result<Environment> {
    let key = name_or_id.trim();
    let row: Option<EnvironmentRow> = sqlx::query_as(&format!(
        "SELECT {ENVIRONMENT_COLUMNS} FROM environments e WHERE e.project_id = $1 AND (e.name = $2 OR e.id = $2)"
    ))
    .bind(project_id)
    .bind(key)
    .fetch_optional(store.pool())
    .await?;
    match row {
        Some(r) => Ok(r.into()),
        None => {
            let names: Vec<(String,)> =
                sqlx::query_as("SELECT name FROM environments WHERE project_id = $1 ORDER BY position")
                    .bind(project_id)
                    .fetch_all(store.pool())
                    .await?;
            let known = if names.is_empty() {
                "it has none yet: define them in the manifest or on the Environments page".to_string()
            } else {
                format!("it has {}", names.into_iter().map(|n| n.0).collect::<Vec<_>>().join(", "))
            };
            Err(AppError::not_found(format!("environment `{key}` in project {project_slug} ({known})")).into())
        }
    }
}

/// The environments of a project in promotion order.
#[tracing::instrument(skip_all, fields(project = %project))]
pub async fn list_environments(store: &Store, project: &str) -> Result<Vec<Environment>> {
    let project = store.get_project(project).await?;
    list_by_project_id(store, &project.id).await
}

pub(super) async fn list_by_project_id(store: &Store, project_id: &str) -> Result<Vec<Environment>> {
    let rows: Vec<EnvironmentRow> = sqlx::query_as(&format!(
        "SELECT {ENVIRONMENT_COLUMNS} FROM environments e WHERE e.project_id = $1 ORDER BY e.position, e.name"
    ))
    .bind(project_id)
    .fetch_all(store.pool())
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

fn to_i32(v: u64, field: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| AppError::invalid(field, "is too large").into())
}

/// The gate and target a manifest asks an environment to have.
struct Wanted {
    required: u32,
    approvers: Vec<String>,
    wait: u64,
    target: serde_json::Value,
}

impl Wanted {
    fn of(env: &slipway_model::manifest::Environment) -> Result<Wanted> {
        let (required, approvers, wait) = match &env.approval {
            Some(a) => (a.required, a.approvers.clone(), a.wait_timer_seconds.unwrap_or(0)),
            None => (0, Vec::new(), 0),
        };
        Ok(Wanted { required, approvers, wait, target: serde_json::to_value(&env.target).map_err(internal)? })
    }
}

/// A target with its `null` fields dropped, so equal targets compare equal
/// however they were written.
fn comparable_target(target: &serde_json::Value) -> serde_json::Value {
    match target {
        serde_json::Value::Object(map) => {
            serde_json::Value::Object(map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        other => other.clone(),
    }
}

/// What would get weaker if `current` took the manifest's settings, one
/// sentence each; empty when nothing would (equal, or only tighter).
/// Weaker: fewer approvals, a shorter wait, approvers added (or the list
/// dropped, letting anyone with approve access approve), another target.
fn loosenings(current: &Environment, wanted: &Wanted) -> Vec<String> {
    let mut out = Vec::new();
    if wanted.required < current.approval_required {
        out.push(if wanted.required == 0 {
            format!("the approval gate would be removed (approval.required {} → 0)", current.approval_required)
        } else {
            format!("fewer approvals would be needed (approval.required {} → {})", current.approval_required, wanted.required)
        });
    }
    if !current.approvers.is_empty() && wanted.required > 0 {
        let named = |list: &[String], who: &str| list.iter().any(|a| a.eq_ignore_ascii_case(who));
        if wanted.approvers.is_empty() {
            out.push(format!(
                "anyone with approve access could approve, not only {} (approval.approvers emptied)",
                current.approvers.join(", ")
            ));
        } else {
            let added: Vec<&str> = wanted.approvers.iter().filter(|a| !named(&current.approvers, a)).map(String::as_str).collect();
            if !added.is_empty() {
                out.push(format!("approvers would be added: {} (approval.approvers)", added.join(", ")));
            }
        }
    }
    if wanted.wait < current.wait_timer_seconds {
        out.push(format!(
            "the wait after approval would be shorter (approval.wait_timer_seconds {} → {})",
            current.wait_timer_seconds, wanted.wait
        ));
    }
    if comparable_target(&wanted.target) != comparable_target(&current.deploy_target) {
        out.push(format!("deployments would go to another target ({} → {})", comparable_target(&current.deploy_target), comparable_target(&wanted.target)));
    }
    out
}

/// Brings the manifest's environments into the project — the one sync,
/// used whenever a commit's manifest is built or run (`create_build`, the
/// pipeline). A manifest may create environments that do not exist yet and
/// tighten existing ones (more approvals, fewer named approvers, a longer
/// wait), and it sets the order; it may never loosen an existing gate,
/// approver list or target: then nothing changes and the answer is a 409
/// naming each environment and what would loosen. Loosening is a project
/// admin's action (`environments/save`, audited with before and after).
/// Environments only the dashboard defined are kept, after the manifest's,
/// in their previous order.
#[tracing::instrument(skip_all, fields(project = %project_id))]
pub async fn sync_environments_from_manifest(store: &Store, project_id: &str, manifest: &Manifest) -> Result<Vec<Environment>> {
    let mut tx = store.pool().begin().await?;
    lock_project_environments(&mut tx, project_id).await?;
    let rows: Vec<EnvironmentRow> =
        sqlx::query_as(&format!("SELECT {ENVIRONMENT_COLUMNS} FROM environments e WHERE e.project_id = $1"))
            .bind(project_id)
            .fetch_all(&mut *tx)
            .await?;
    let current: Vec<Environment> = rows.into_iter().map(Into::into).collect();
    let mut wanted = Vec::with_capacity(manifest.environments.len());
    let mut problems = Vec::new();
    for env in &manifest.environments {
        let w = Wanted::of(env)?;
        if let Some(existing) = current.iter().find(|c| c.name == env.name) {
            for what in loosenings(existing, &w) {
                problems.push(FieldProblem { field: format!("environments.{}", env.name), message: what });
            }
        }
        wanted.push((env, w));
    }
    if !problems.is_empty() {
        let mut names: Vec<&str> = problems.iter().map(|p| p.field.trim_start_matches("environments.")).collect();
        names.dedup();
        let details = problems.iter().map(|p| format!("{}: {}", p.field.trim_start_matches("environments."), p.message)).collect::<Vec<_>>();
        return Err(AppError {
            code: ErrorCode::Conflict,
            message: format!(
                "this commit's manifest would loosen environment {}: {}. A manifest may add environments and tighten gates, never loosen them; a project admin can loosen a gate on the Environments page (environments/save), audited",
                names.join(", "),
                details.join("; ")
            ),
            problems,
        }
        .into());
    }
    let names: Vec<String> = manifest.environments.iter().map(|e| e.name.clone()).collect();
    for (i, (env, w)) in wanted.iter().enumerate() {
        sqlx::query(
            "INSERT INTO environments (id, project_id, name, position, approval_required, approvers, wait_timer_seconds, deploy_target)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (project_id, name) DO UPDATE SET
                 position = EXCLUDED.position, approval_required = EXCLUDED.approval_required,
                 approvers = EXCLUDED.approvers, wait_timer_seconds = EXCLUDED.wait_timer_seconds,
                 deploy_target = EXCLUDED.deploy_target",
        )
        .bind(id::new_id(ENVIRONMENT))
        .bind(project_id)
        .bind(&env.name)
        .bind(i as i32)
        .bind(to_i32(u64::from(w.required), "approval.required")?)
        .bind(&w.approvers)
        .bind(to_i32(w.wait, "approval.wait_timer_seconds")?)
        .bind(&w.target)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_environment_error(e, &env.name))?;
    }
    // Dashboard-only environments go after the manifest's, keeping their order.
    sqlx::query(
        "UPDATE environments e SET position = $3 + o.rank - 1
         FROM (SELECT id, row_number() OVER (ORDER BY position, name) AS rank
               FROM environments WHERE project_id = $1 AND NOT (name = ANY($2))) o
         WHERE e.id = o.id",
    )
    .bind(project_id)
    .bind(&names)
    .bind(names.len() as i32)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    list_by_project_id(store, project_id).await
}

/// Serialises changes to one project's environment list.
async fn lock_project_environments(tx: &mut Transaction<'_, Postgres>, project_id: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('slipway.environments:' || $1, 0))")
        .bind(project_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn map_environment_error(e: sqlx::Error, name: &str) -> crate::Error {
    match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("environments_project_name_key") => {
            let message = format!("an environment called `{name}` already exists in this project");
            AppError { code: ErrorCode::Conflict, message: format!("name: {message}"), problems: vec![FieldProblem { field: "name".into(), message }] }
                .into()
        }
        sqlx::Error::Database(db) if db.is_check_violation() => {
            AppError::invalid("name", format!("`{name}` is not a valid environment name ({})", db.message())).into()
        }
        _ => e.into(),
    }
}

/// Adds an environment at `position` (default: the end of the path),
/// shifting the ones at or after it.
#[tracing::instrument(skip_all, fields(project = %project))]
pub async fn create_environment(store: &Store, project: &str, input: &EnvironmentInput) -> Result<Environment> {
    let input = input.normalized()?;
    let project = store.get_project(project).await?;
    let mut tx = store.pool().begin().await?;
    lock_project_environments(&mut tx, &project.id).await?;
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM environments WHERE project_id = $1")
        .bind(&project.id)
        .fetch_one(&mut *tx)
        .await?;
    let position = input.position.map(i64::from).unwrap_or(count).min(count);
    sqlx::query("UPDATE environments SET position = position + 1 WHERE project_id = $1 AND position >= $2")
        .bind(&project.id)
        .bind(position as i32)
        .execute(&mut *tx)
        .await?;
    let id = id::new_id(ENVIRONMENT);
    sqlx::query(
        "INSERT INTO environments (id, project_id, name, position, approval_required, approvers, wait_timer_seconds, deploy_target)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(&project.id)
    .bind(&input.name)
    .bind(position as i32)
    .bind(to_i32(u64::from(input.approval_required), "approval_required")?)
    .bind(&input.approvers)
    .bind(to_i32(input.wait_timer_seconds, "wait_timer_seconds")?)
    .bind(&input.deploy_target)
    .execute(&mut *tx)
    .await
    .map_err(|e| map_environment_error(e, &input.name))?;
    compact_positions(&mut tx, &project.id).await?;
    tx.commit().await?;
    find_environment(store, &project.id, &project.slug, &id).await
}

/// Changes an environment (name, gate, wait timer, target; `position` moves it).
#[tracing::instrument(skip_all, fields(project = %project, environment = %environment))]
pub async fn update_environment(store: &Store, project: &str, environment: &str, input: &EnvironmentInput) -> Result<Environment> {
    let input = input.normalized()?;
    let project = store.get_project(project).await?;
    let existing = find_environment(store, &project.id, &project.slug, environment).await?;
    let mut tx = store.pool().begin().await?;
    lock_project_environments(&mut tx, &project.id).await?;
    if let Some(target) = input.position {
        let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM environments WHERE project_id = $1")
            .bind(&project.id)
            .fetch_one(&mut *tx)
            .await?;
        let target = i64::from(target).min(count - 1).max(0) as i32;
        let current = existing.position as i32;
        if target != current {
            // Close the gap at the old place, open one at the new place.
            sqlx::query(
                "UPDATE environments SET position = CASE
                     WHEN id = $2 THEN $4
                     WHEN $4 < $3 AND position >= $4 AND position < $3 THEN position + 1
                     WHEN $4 > $3 AND position > $3 AND position <= $4 THEN position - 1
                     ELSE position END
                 WHERE project_id = $1",
            )
            .bind(&project.id)
            .bind(&existing.id)
            .bind(current)
            .bind(target)
            .execute(&mut *tx)
            .await?;
        }
    }
    sqlx::query(
        "UPDATE environments SET name = $2, approval_required = $3, approvers = $4, wait_timer_seconds = $5, deploy_target = $6
         WHERE id = $1",
    )
    .bind(&existing.id)
    .bind(&input.name)
    .bind(to_i32(u64::from(input.approval_required), "approval_required")?)
    .bind(&input.approvers)
    .bind(to_i32(input.wait_timer_seconds, "wait_timer_seconds")?)
    .bind(&input.deploy_target)
    .execute(&mut *tx)
    .await
    .map_err(|e| map_environment_error(e, &input.name))?;
    compact_positions(&mut tx, &project.id).await?;
    tx.commit().await?;
    find_environment(store, &project.id, &project.slug, &existing.id).await
}

/// Deletes an environment and its deployment history. Refused while one of
/// its deployments is being rolled out.
#[tracing::instrument(skip_all, fields(project = %project, environment = %environment))]
pub async fn delete_environment(store: &Store, project: &str, environment: &str) -> Result<()> {
    let project = store.get_project(project).await?;
    let env = find_environment(store, &project.id, &project.slug, environment).await?;
    let mut tx = store.pool().begin().await?;
    lock_project_environments(&mut tx, &project.id).await?;
    lock_environment(&mut tx, &env.id).await?;
    if let Some(dep) = rolling_out(&mut tx, &env.id).await? {
        return Err(AppError::conflict(format!(
            "environment {} is being deployed by {dep}; delete it when that finishes",
            env.name
        ))
        .into());
    }
    sqlx::query("DELETE FROM environments WHERE id = $1").bind(&env.id).execute(&mut *tx).await?;
    compact_positions(&mut tx, &project.id).await?;
    tx.commit().await?;
    Ok(())
}

/// Serialises every change to one environment's deployments (released at
/// commit). Whoever changes them (a request, a gate decision, deleting the
/// environment) takes this lock first.
pub(crate) async fn lock_environment(tx: &mut Transaction<'_, Postgres>, environment_id: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('slipway.environment:' || $1, 0))")
        .bind(environment_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The deployment rolling out in an environment now, if any (at most one:
/// `deployments_one_deploying_idx`). Read under [`lock_environment`].
pub(crate) async fn rolling_out(tx: &mut Transaction<'_, Postgres>, environment_id: &str) -> Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM deployments WHERE environment_id = $1 AND status = 'deploying'")
        .bind(environment_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map(|(id,)| id))
}

/// Renumbers positions 0..n in their current order.
async fn compact_positions(tx: &mut Transaction<'_, Postgres>, project_id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE environments e SET position = o.rank - 1
         FROM (SELECT id, row_number() OVER (ORDER BY position, name) AS rank FROM environments WHERE project_id = $1) o
         WHERE e.id = o.id AND e.position <> o.rank - 1",
    )
    .bind(project_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
