//! Pipelines: server functions (`/api/pipelines/*`) to start a manifest
//! pipeline and to follow its runs step by step. The server's pipeline
//! driver executes started runs in the background.

use leptos::prelude::*;
use server_fn::codec::Json;
use slipway_model::pipeline::{PipelineListQuery, PipelineRun, PipelineRunPage};
use slipway_model::AppError;

/// Starts a pipeline of the manifest at a commit (`git_sha`: a sha, or a
/// branch or tag; `manifest_hash` checked when given). Returns the pending
/// run; its steps then change live (`pipelines/show`).
#[server(prefix = "/api", endpoint = "pipelines/start", input = Json)]
pub async fn start_pipeline(input: slipway_model::pipeline::StartPipeline) -> Result<PipelineRun, AppError> {
    let ctx = crate::server::context()?;
    let not_found = || AppError::not_found(format!("project `{}`", input.project));
    let project = ctx.store.get_project(&input.project).await.map_err(|_| not_found())?;
    let g = crate::auth::require("pipelines/start", Some(&project.id), not_found).await?;
    let run = slipway_engine::pipeline::start_pipeline(
        &ctx.store,
        &project.id,
        input.pipeline.as_deref(),
        input.git_sha.as_deref().unwrap_or_default(),
        input.manifest_hash.as_deref(),
        input.inputs.as_ref().unwrap_or(&serde_json::Value::Null),
        g.user_id(),
    )
    .await?;
    crate::auth::audit(
        &g,
        "pipeline.started",
        Some(&project.id),
        Some(("pipeline_run", &run.id)),
        serde_json::json!({ "pipeline": run.pipeline, "git_sha": run.git_sha, "manifest_hash": run.manifest_hash }),
    )
    .await;
    Ok(run)
}

/// A pipeline run with every step's status, times, outputs and error.
#[server(prefix = "/api", endpoint = "pipelines/show", input = Json)]
pub async fn get_pipeline_run(run: String) -> Result<PipelineRun, AppError> {
    let ctx = crate::server::context()?;
    let id = run.trim().to_string();
    slipway_model::id::parse_expect(slipway_model::id::PIPELINE_RUN, &id).map_err(|e| AppError::invalid("run", e.to_string()))?;
    let not_found = || AppError::not_found(format!("pipeline run `{id}`"));
    let found = slipway_engine::pipeline::get_pipeline_run(&ctx.store, &id).await.map_err(|_| not_found())?;
    crate::auth::require("pipelines/show", Some(&found.project_id), not_found).await?;
    Ok(found)
}

/// A project's pipeline runs, newest first.
#[server(prefix = "/api", endpoint = "pipelines/list", input = Json)]
pub async fn list_pipeline_runs(project: String, #[server(default)] query: PipelineListQuery) -> Result<PipelineRunPage, AppError> {
    let ctx = crate::server::context()?;
    let not_found = || AppError::not_found(format!("project `{project}`"));
    let found = ctx.store.get_project(&project).await.map_err(|_| not_found())?;
    crate::auth::require("pipelines/list", Some(&found.id), not_found).await?;
    Ok(slipway_engine::pipeline::list_pipeline_runs(&ctx.store, &found.id, &query).await?)
}
