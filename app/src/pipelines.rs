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


fn step_class(status: slipway_model::pipeline::StepStatus) -> &'static str {
    use slipway_model::pipeline::StepStatus as S;
    match status {
        S::Succeeded => "badge ok",
        S::Failed => "badge bad",
        S::Skipped => "badge muted",
        S::Running => "badge live",
        S::Pending => "badge wait",
    }
}

fn run_class(status: slipway_model::status::PipelineRunStatus) -> &'static str {
    use slipway_model::status::PipelineRunStatus as S;
    match status {
        S::Succeeded => "badge ok",
        S::Failed => "badge bad",
        S::Cancelled => "badge muted",
        S::Running => "badge live",
        S::Pending => "badge wait",
    }
}

/// What a step produced, as links and short values.
fn outputs_view(outputs: &serde_json::Value) -> impl IntoView {
    let text = |k: &str| outputs.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let build = text("build_id").map(|b| view! { <span>"build "<a href=format!("/builds/{b}")><code>{b.clone()}</code></a>" "</span> });
    let release = text("release_tag").or_else(|| text("release_id")).map(|r| view! { <span>"release "<code>{r}</code>" "</span> });
    let deployment = text("deployment_id").map(|d| view! { <span>"deployment "<code>{d}</code>" "</span> });
    let digests: Vec<(String, String)> = outputs
        .get("image_digests")
        .and_then(|v| v.as_object())
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    view! {
        {build}{release}{deployment}
        {(!digests.is_empty()).then(|| view! {
            <ul class="digests">
                {digests.into_iter().map(|(s, d)| view! { <li><code>{s}</code>" "<code title=d.clone()>{d.chars().take(19).collect::<String>()}"…"</code></li> }).collect_view()}
            </ul>
        })}
    }
}

/// A pipeline run, step by step.
#[component]
pub fn PipelineRunView(run: PipelineRun) -> impl IntoView {
    let sha = run.git_sha.clone().map(|s| s.chars().take(12).collect::<String>()).unwrap_or_else(|| "—".into());
    view! {
        <section class="panel" id="pipeline-run" data-status=run.status.as_str()>
            <h2>"Pipeline "<code>{run.pipeline.clone()}</code>" "<span class=run_class(run.status)>{run.status.as_str()}</span></h2>
            <p class="muted">"Run "<code>{run.id.clone()}</code>" at "<code>{sha}</code>" · started "
                {run.created_at.to_rfc3339()}</p>
            {run.error_message.clone().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <table class="table" id="pipeline-steps">
                <thead><tr><th>"Step"</th><th>"Action"</th><th>"Status"</th><th>"Now / error"</th><th>"Outputs"</th></tr></thead>
                <tbody>
                    {run.steps.iter().map(|s| {
                        let note = s.error.clone().or_else(|| s.detail.clone()).unwrap_or_default();
                        let action = match &s.environment {
                            Some(env) => format!("{} → {env}", s.action),
                            None => s.action.clone(),
                        };
                        view! {
                            <tr data-step=s.name.clone() data-status=s.status.as_str()>
                                <td><code>{s.name.clone()}</code></td>
                                <td>{action}</td>
                                <td><span class=step_class(s.status)>{s.status.as_str()}</span></td>
                                <td>{note}</td>
                                <td>{outputs_view(&s.outputs)}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

/// `/pipelines/:run`: one run, refreshed every second until it has finished.
#[component]
pub fn PipelineRunPage() -> impl IntoView {
    let params = leptos_router::hooks::use_params_map();
    let id = move || params.read().get("run").unwrap_or_default();
    let tick = crate::components::ticker(1000);
    let live = RwSignal::new(true);
    let run = Resource::new(move || (id(), if live.get() { tick.get() } else { 0 }), |(id, _)| get_pipeline_run(id));
    view! {
        <leptos_meta::Title text="Pipeline run"/>
        <Transition fallback=|| view! { <crate::components::Loading what="pipeline run"/> }>
            <ErrorBoundary fallback=crate::components::error_fallback>
                {move || Suspend::new(async move {
                    let r = run.await?;
                    let active = !r.status.is_terminal();
                    if live.get_untracked() != active {
                        live.set(active);
                    }
                    Ok::<_, AppError>(view! { <PipelineRunView run=r/> })
                })}
            </ErrorBoundary>
        </Transition>
    }
}
