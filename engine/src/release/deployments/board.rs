//! What the Environments page shows: the board (per environment what runs
//! now, what waits or rolls out, and recent history) and the diff a
//! promotion would make.

use std::collections::{BTreeSet, HashMap};

use slipway_model::build::BuildArgs;
use slipway_model::release::{Board, BoardColumn, Deployment, ImageDigests, PromotionDiff, ServiceDiff};

use super::load::{assemble, current_deployment, load_approvals, DeploymentRow, DEPLOYMENT_COLUMNS, DEPLOYMENT_JOINS};
use crate::error::Result;
use crate::release::environments::{find_environment, list_by_project_id};
use crate::Store;

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
