//! The executor's part: rolling a `deploying` deployment out on a
//! [`DeployTarget`] (per service the repository of the image with its digest
//! and the manifest's command and environment at its commit) and recording
//! the outcome; and the pass that starts due gated deployments and executes
//! every `deploying` one no other executor holds.

use std::collections::BTreeMap;

use slipway_model::manifest;
use slipway_model::project::Project;
use slipway_model::release::{ContainerView, Deployment, ImageDigests};
use slipway_model::status::DeploymentStatus;
use slipway_model::{AppError, ErrorCode};

use super::gate::start_due_deployments;
use super::load::get_deployment;
use crate::error::{Error, Result};
use crate::release::internal;
use crate::release::target::{repository_of, DeployPlan, DeployTarget, ServicePlan};
use crate::Store;

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
            let release = crate::release::get_release(store, rel).await.map_err(fail)?;
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
