//! Builds: server functions (`/api/builds/*`) and the Builds list and Build pages.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use server_fn::codec::Json;
use slipway_model::build::{BuildArtifact, BuildDetail, BuildListQuery, BuildPage, BuildRun, BuildSummary, NewBuild};
use slipway_model::status::BuildRunStatus;
use slipway_model::AppError;

use crate::components::{error_fallback, format_time, ErrorNotice, Loading};

/// Creates a build spec (project, ref, services, build args, …) and, unless
/// `run` is false, queues its first run.
#[server(prefix = "/api", endpoint = "builds/create", input = Json)]
pub async fn create_build(input: NewBuild) -> Result<BuildDetail, AppError> {
    let ctx = crate::server::context()?;
    crate::auth::require_login()?;
    let not_found = || AppError::not_found(format!("project `{}`", input.project));
    let project = ctx.store.get_project(&input.project).await.map_err(|_| not_found())?;
    let g = crate::auth::require("builds/create", Some(&project.id), not_found).await?;
    // Where images (and registry credentials) go is the project admins' call.
    if input.registry.is_some() {
        let admin = slipway_engine::auth::check(g.user()?, &project.id, g.role, slipway_model::auth::Permission::Admin);
        if admin != slipway_engine::auth::Access::Allowed {
            return Err(AppError::new(
                slipway_model::ErrorCode::Forbidden,
                "registry: only project admins may override the registry of a build (the manifest's registry is used otherwise)",
            ));
        }
    }
    let input = NewBuild { project: project.id.clone(), ..input };
    let registry = slipway_model::image_name::SlipwayRegistry::from_config(ctx.registry.as_deref());
    let detail = slipway_engine::builds::create::create_build_for(&ctx.store, &input, g.user_id(), &registry).await?;
    crate::auth::audit(&g, "build.created", Some(&project.id), Some(("build", &detail.spec.id)), serde_json::json!({ "git_sha": detail.spec.git_sha, "services": detail.spec.services })).await;
    tracing::info!(build = %detail.spec.id, "build created");
    Ok(detail)
}

/// Queues a new run of an existing build.
#[server(prefix = "/api", endpoint = "builds/run", input = Json)]
pub async fn run_build(build: String, #[server(default)] force_rebuild: bool) -> Result<BuildRun, AppError> {
    let ctx = crate::server::context()?;
    let (build, project_id, g) = authorize_build("builds/run", &build).await?;
    let run = ctx.store.enqueue_run(&build, None, force_rebuild).await?;
    crate::auth::audit(&g, "build.run", Some(&project_id), Some(("run", &run.id)), serde_json::json!({ "build": build, "force_rebuild": force_rebuild })).await;
    Ok(run)
}

/// Builds, newest first, with filters and a keyset cursor.
#[server(prefix = "/api", endpoint = "builds/list", input = Json)]
pub async fn list_builds(#[server(default)] query: BuildListQuery) -> Result<BuildPage, AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("builds/list", None, || AppError::not_found("build")).await?;
    let mut query = query;
    match &query.project {
        Some(p) if !p.trim().is_empty() => {
            let not_found = || AppError::not_found(format!("project `{p}`"));
            let project = ctx.store.get_project(p).await.map_err(|_| not_found())?;
            crate::auth::require("projects/show", Some(&project.id), not_found).await?;
            query.project = Some(project.id);
            Ok(ctx.store.list_builds(&query, None).await?)
        }
        _ => {
            let visible = ctx.store.visible_project_ids(g.user()?).await?;
            Ok(ctx.store.list_builds(&query, visible.as_deref()).await?)
        }
    }
}

/// A build's spec, runs (newest first) and artifacts.
#[server(prefix = "/api", endpoint = "builds/show", input = Json)]
pub async fn get_build(build: String) -> Result<BuildDetail, AppError> {
    let ctx = crate::server::context()?;
    let (build, _, _) = authorize_build("builds/show", &build).await?;
    Ok(ctx.store.get_build(&build).await?)
}

/// A build's runs, newest first.
#[server(prefix = "/api", endpoint = "builds/runs", input = Json)]
pub async fn list_runs(build: String) -> Result<Vec<BuildRun>, AppError> {
    let ctx = crate::server::context()?;
    let (build, _, _) = authorize_build("builds/runs", &build).await?;
    Ok(ctx.store.list_runs(&build).await?)
}

/// The artifacts of a build's newest completed run.
#[server(prefix = "/api", endpoint = "builds/artifacts", input = Json)]
pub async fn list_artifacts(build: String) -> Result<Vec<BuildArtifact>, AppError> {
    let ctx = crate::server::context()?;
    let (build, _, _) = authorize_build("builds/artifacts", &build).await?;
    Ok(ctx.store.build_artifacts(&build).await?)
}

/// Everything about a build in one answer: spec, runs, artifacts, the last
/// 30 log lines and, for a failure, its class, cause, hint and failed stage.
#[server(prefix = "/api", endpoint = "builds/diagnose", input = Json)]
pub async fn diagnose_build(build: String) -> Result<slipway_model::diagnose::Diagnosis, AppError> {
    let ctx = crate::server::context()?;
    let (build, _, _) = authorize_build("builds/diagnose", &build).await?;
    Ok(slipway_engine::builds::diagnose::diagnose(&ctx.store, &build).await?)
}

/// Cancels a build's pending or building run.
#[server(prefix = "/api", endpoint = "builds/cancel", input = Json)]
pub async fn cancel_build(build: String) -> Result<BuildRun, AppError> {
    let ctx = crate::server::context()?;
    let (build, project_id, g) = authorize_build("builds/cancel", &build).await?;
    let run = ctx.store.request_cancel(&build).await?;
    crate::auth::audit(&g, "build.cancelled", Some(&project_id), Some(("run", &run.id)), serde_json::json!({ "build": build })).await;
    Ok(run)
}

/// Checks the id, finds the build's project and authorises `endpoint` on it;
/// a build of a project the caller is not a member of is "not found".
#[cfg(feature = "ssr")]
async fn authorize_build(endpoint: &str, build: &str) -> Result<(String, String, crate::auth::Guard), AppError> {
    let ctx = crate::server::context()?;
    crate::auth::require_login()?;
    let build = require_build_id(build)?;
    let not_found = || AppError::not_found(format!("build `{build}`"));
    let spec = ctx.store.get_build_spec(&build).await.map_err(|_| not_found())?;
    let g = crate::auth::require(endpoint, Some(&spec.project_id), not_found).await?;
    Ok((build, spec.project_id, g))
}

#[cfg(feature = "ssr")]
fn require_build_id(build: &str) -> Result<String, AppError> {
    let build = build.trim();
    slipway_model::id::parse_expect(slipway_model::id::BUILD, build).map_err(|e| AppError::invalid("build", e.to_string()))?;
    Ok(build.to_string())
}

fn status_class(status: Option<BuildRunStatus>) -> &'static str {
    match status {
        Some(BuildRunStatus::Completed) => "badge ok",
        Some(BuildRunStatus::Failed) => "badge bad",
        Some(BuildRunStatus::Cancelled) => "badge muted",
        Some(BuildRunStatus::Building) => "badge live",
        Some(BuildRunStatus::Pending) => "badge wait",
        None => "badge muted",
    }
}

fn status_text(status: Option<BuildRunStatus>) -> String {
    status.map(|s| s.as_str().to_string()).unwrap_or_else(|| "not run".into())
}

fn elapsed(started: Option<chrono::DateTime<chrono::Utc>>, done: Option<chrono::DateTime<chrono::Utc>>) -> String {
    let Some(started) = started else { return "—".into() };
    let end = done.unwrap_or_else(chrono::Utc::now);
    let secs = (end - started).num_milliseconds().max(0) as f64 / 1000.0;
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", (secs / 60.0) as u64, (secs as u64) % 60)
    }
}


/// The Builds page: a New build form and the list, newest first.
#[component]
pub fn BuildsPage() -> impl IntoView {
    let create = ServerAction::<CreateBuild>::new();
    let (status_filter, set_status_filter) = signal(String::new());
    let (project_filter, set_project_filter) = signal(String::new());
    let (cursor_stack, set_cursor_stack) = signal(Vec::<slipway_model::build::BuildCursor>::new());
    let tick = crate::components::ticker(2000);
    let live = RwSignal::new(true);
    let builds = Resource::new(
        move || (create.version().get(), status_filter.get(), project_filter.get(), cursor_stack.get(), if live.get() { tick.get() } else { 0 }),
        |(_, status, project, cursors, _)| async move {
            list_builds(BuildListQuery {
                project: (!project.is_empty()).then_some(project),
                status: status.parse().ok(),
                before: cursors.last().cloned(),
                limit: Some(25),
            })
            .await
        },
    );
    view! {
        <Title text="Builds"/>
        <header class="page-header"><h1>"Builds"</h1></header>
        <NewBuildForm create project=String::new()/>
        <section class="panel">
            <div class="filters">
                <label>"Project "
                    <input name="project-filter" placeholder="any" on:change=move |ev| { set_cursor_stack.set(vec![]); set_project_filter.set(event_target_value(&ev)); }/>
                </label>
                <label>"Status "
                    <select name="status-filter" on:change=move |ev| { set_cursor_stack.set(vec![]); set_status_filter.set(event_target_value(&ev)); }>
                        <option value="">"any"</option>
                        {BuildRunStatus::ALL.iter().map(|s| view! { <option value=s.as_str()>{s.as_str()}</option> }).collect_view()}
                    </select>
                </label>
            </div>
            <Transition fallback=|| view! { <Loading what="builds"/> }>
                <ErrorBoundary fallback=error_fallback>
                    {move || Suspend::new(async move {
                        let page = builds.await?;
                        let active = page.items.iter().any(|b| b.status.is_some_and(|s| !s.is_terminal()));
                        if live.get_untracked() != active {
                            live.set(active);
                        }
                        let next = page.next.clone();
                        let has_prev = !cursor_stack.get_untracked().is_empty();
                        Ok::<_, AppError>(view! {
                            <BuildTable builds=page.items/>
                            <div class="pager">
                                {has_prev.then(|| view! { <button class="secondary" on:click=move |_| set_cursor_stack.update(|c| { c.pop(); })>"← Newer"</button> })}
                                {next.map(|n| view! { <button class="secondary" on:click=move |_| set_cursor_stack.update(|c| c.push(n.clone()))>"Older →"</button> })}
                            </div>
                        })
                    })}
                </ErrorBoundary>
            </Transition>
        </section>
    }
}

#[component]
pub fn BuildTable(builds: Vec<BuildSummary>) -> impl IntoView {
    if builds.is_empty() {
        return view! { <p class="empty">"No builds match."</p> }.into_any();
    }
    view! {
        <table id="builds" class="table">
            <thead><tr><th>"ID"</th><th>"Project"</th><th>"Status"</th><th>"Commit"</th><th>"Release"</th><th>"Started"</th><th>"Elapsed"</th></tr></thead>
            <tbody>
                {builds.into_iter().map(|b| {
                    let href = format!("/builds/{}", b.id);
                    view! {
                        <tr data-build=b.id.clone()>
                            <td><a href=href><code>{b.id.clone()}</code></a></td>
                            <td>{b.project_slug.clone()}</td>
                            <td>
                                <span class=status_class(b.status)>{status_text(b.status)}</span>
                                {b.reused_from_run_id.clone().map(|r| view! { <span class="muted small" title=format!("reused the artifacts of {r}")>" reused"</span> })}
                            </td>
                            <td><code>{b.git_sha[..12].to_string()}</code></td>
                            <td>{b.release_tag.clone().unwrap_or_else(|| "—".into())}</td>
                            <td>{b.started_at.as_ref().map(format_time).unwrap_or_else(|| "—".into())}</td>
                            <td>{elapsed(b.started_at, b.completed_at)}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// Form for a new build: ref, services, force rebuild.
#[component]
pub fn NewBuildForm(create: ServerAction<CreateBuild>, #[prop(into)] project: String) -> impl IntoView {
    let fixed_project = !project.is_empty();
    let project = RwSignal::new(project);
    let git_ref = RwSignal::new(String::new());
    let services = RwSignal::new(String::new());
    let force = RwSignal::new(false);
    let pending = create.pending();
    let result = create.value();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let services: Vec<String> =
            services.get_untracked().split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        let git_ref = git_ref.get_untracked();
        create.dispatch(CreateBuild {
            input: NewBuild {
                project: project.get_untracked(),
                git_ref: (!git_ref.trim().is_empty()).then_some(git_ref),
                services: (!services.is_empty()).then_some(services),
                force_rebuild: force.get_untracked(),
                run: true,
                ..Default::default()
            },
        });
    };
    view! {
        <section class="panel">
            <h2>"New build"</h2>
            <form id="new-build" class="form" on:submit=on_submit>
                {(!fixed_project).then(|| view! {
                    <label>"Project"<input name="project" required placeholder="demo" bind:value=project/></label>
                })}
                <label>"Ref"<input name="ref" placeholder="default branch, a tag or a sha" bind:value=git_ref/></label>
                <label>"Services"<input name="services" placeholder="all (or api, web)" bind:value=services/></label>
                <label class="check"><input type="checkbox" name="force_rebuild" bind:checked=force/>"Force rebuild"</label>
                <button type="submit" disabled=move || pending.get()>{move || if pending.get() { "Starting…" } else { "Start build" }}</button>
            </form>
            {move || match result.get() {
                Some(Err(e)) => view! { <ErrorNotice error=e/> }.into_any(),
                Some(Ok(b)) => view! {
                    <p class="notice" role="status">"Started build "<a href=format!("/builds/{}", b.spec.id)><code>{b.spec.id.clone()}</code></a></p>
                }.into_any(),
                None => ().into_any(),
            }}
        </section>
    }
}

/// One build: spec, runs, artifacts, with Cancel and Rebuild.
#[component]
pub fn BuildPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("build").unwrap_or_default();
    let cancel = ServerAction::<CancelBuild>::new();
    let rerun = ServerAction::<RunBuild>::new();
    let tick = crate::components::ticker(1000);
    // Refresh every second only while a run is pending or building.
    let live = RwSignal::new(true);
    let detail = Resource::new(
        move || (id(), cancel.version().get(), rerun.version().get(), if live.get() { tick.get() } else { 0 }),
        |(id, _, _, _)| get_build(id),
    );
    view! {
        <Transition fallback=|| view! { <Loading what="build"/> }>
            <ErrorBoundary fallback=error_fallback>
                {move || Suspend::new(async move {
                    let d = detail.await?;
                    let active = d.runs.first().is_some_and(|r| !r.status.is_terminal());
                    if live.get_untracked() != active {
                        live.set(active);
                    }
                    Ok::<_, AppError>(view! { <BuildView d cancel rerun/> })
                })}
            </ErrorBoundary>
        </Transition>
        {move || cancel.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorNotice error=e/> })}
        {move || rerun.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorNotice error=e/> })}
        // Outside the refreshing part, so the log keeps its lines and its socket.
        {move || {
            let build = id();
            let run = Memo::new(move |_| detail.get().and_then(|r| r.ok()).and_then(|d| d.runs.first().map(|r| r.id.clone())));
            view! { <crate::logview::LogViewer build_id=build run=run/> }
        }}
    }
}

#[component]
fn BuildView(d: BuildDetail, cancel: ServerAction<CancelBuild>, rerun: ServerAction<RunBuild>) -> impl IntoView {
    let latest = d.runs.first().cloned();
    let status = latest.as_ref().map(|r| r.status);
    let active = matches!(status, Some(BuildRunStatus::Pending) | Some(BuildRunStatus::Building));
    let build_id = d.spec.id.clone();
    let build_id2 = d.spec.id.clone();
    let build_id3 = d.spec.id.clone();
    let spec = d.spec.clone();
    view! {
        <Title text=format!("Build {}", spec.id)/>
        <header class="page-header">
            <h1>"Build "<code>{spec.id.clone()}</code></h1>
            <span id="build-status" class=status_class(status)>{status_text(status)}</span>
            {active.then(|| view! {
                <button class="danger" on:click=move |_| { cancel.dispatch(CancelBuild { build: build_id.clone() }); }>"Cancel"</button>
            })}
            {(!active).then(|| view! {
                <button class="secondary" on:click=move |_| { rerun.dispatch(RunBuild { build: build_id2.clone(), force_rebuild: false }); }>"Run again"</button>
                <button class="secondary" on:click=move |_| { rerun.dispatch(RunBuild { build: build_id3.clone(), force_rebuild: true }); }>"Rebuild"</button>
            })}
        </header>
        <section class="panel">
            <dl class="facts">
                <dt>"Project"</dt><dd><a href=format!("/projects/{}", spec.project_slug)>{spec.project_slug.clone()}</a></dd>
                <dt>"Commit"</dt><dd><code>{spec.git_sha.clone()}</code></dd>
                <dt>"Manifest hash"</dt><dd><code>{spec.manifest_hash.clone()}</code></dd>
                <dt>"Services"</dt><dd>{spec.services.clone().map(|s| s.join(", ")).unwrap_or_else(|| "all".into())}</dd>
                <dt>"Build args"</dt><dd>{
                    let mut parts: Vec<String> = spec.build_args.managed.clone();
                    parts.extend(spec.build_args.custom.iter().map(|(k, v)| format!("{k}={v}")));
                    if parts.is_empty() { "—".to_string() } else { parts.join(" ") }
                }</dd>
                <dt>"Force rebuild"</dt><dd>{if spec.force_rebuild { "yes" } else { "no" }}</dd>
                <dt>"Created"</dt><dd>{format_time(&spec.created_at)}</dd>
            </dl>
        </section>
        {latest.clone().and_then(|r| r.reused_from_run_id.clone()).map(|from| view! {
            <p class="notice reuse" id="reused-from">"This run reused the artifacts of run "<code>{from}</code>" (same project, sha, manifest, services and build args)."</p>
        })}
        {latest.clone().filter(|r| r.status == BuildRunStatus::Failed).map(|r| view! {
            <div class="error" role="alert" id="run-error">
                <strong>{format!("Failed: {}", r.error_code.clone().unwrap_or_else(|| "unknown".into()))}</strong>
                {r.failed_step.clone().map(|s| view! { <p>"Step: "<code>{s}</code></p> })}
                <p>{r.error_message.clone().unwrap_or_default()}</p>
            </div>
        })}
        {(status == Some(BuildRunStatus::Completed)).then(|| view! {
            <section class="panel"><crate::releases::CreateReleaseButton project=spec.project_slug.clone() build_id=spec.id.clone()/></section>
        })}
        <DiagnosisPanel build_id=d.spec.id.clone() failed=latest.as_ref().map(|r| r.status == BuildRunStatus::Failed).unwrap_or(false)/>
        <section class="panel">
            <h2>"Artifacts"</h2>
            <ArtifactTable artifacts=d.artifacts.clone()/>
        </section>
        <section class="panel">
            <h2>"Runs"</h2>
            <table id="runs" class="table">
                <thead><tr><th>"#"</th><th>"Run"</th><th>"Status"</th><th>"Backend"</th><th>"Started"</th><th>"Elapsed"</th><th>"Note"</th></tr></thead>
                <tbody>
                    {d.runs.iter().map(|r| view! {
                        <tr data-run=r.id.clone()>
                            <td>{r.seq}</td>
                            <td><code>{r.id.clone()}</code></td>
                            <td><span class=status_class(Some(r.status))>{r.status.as_str()}</span></td>
                            <td>{r.backend.clone().unwrap_or_else(|| "—".into())}</td>
                            <td>{r.started_at.as_ref().map(format_time).unwrap_or_else(|| "—".into())}</td>
                            <td>{elapsed(r.started_at, r.completed_at)}</td>
                            <td>{r.reused_from_run_id.clone().map(|f| format!("reused {f}"))
                                .or_else(|| r.error_message.clone())
                                .unwrap_or_default()}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

#[component]
fn ArtifactTable(artifacts: Vec<BuildArtifact>) -> impl IntoView {
    if artifacts.is_empty() {
        return view! { <p class="empty">"No artifacts yet."</p> }.into_any();
    }
    view! {
        <table id="artifacts" class="table">
            <thead><tr><th>"Service"</th><th>"Image"</th><th>"Digest"</th><th>"Platforms"</th><th class="num">"Size"</th></tr></thead>
            <tbody>
                {artifacts.into_iter().map(|a| {
                    let digest = a.digest.clone();
                    view! {
                        <tr data-service=a.service_name.clone()>
                            <td>{a.service_name.clone()}</td>
                            <td><code>{a.image_ref.clone()}</code></td>
                            <td class="digest">
                                <code>{a.digest.clone()}</code>
                                <button class="copy" title="Copy digest" on:click=move |_| copy_text(digest.clone())>"Copy"</button>
                            </td>
                            <td>{a.platforms.join(", ")}</td>
                            <td class="num">{a.size_bytes.map(human_size).unwrap_or_else(|| "—".into())}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

fn human_size(b: i64) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.1} KB", b / 1024.0)
    } else {
        format!("{b} B")
    }
}

fn copy_text(_text: String) {
    #[cfg(feature = "hydrate")]
    if let Some(w) = web_sys::window() {
        let _ = w.navigator().clipboard().write_text(&_text);
    }
}

/// The diagnosis of a failed build: class, cause, hint, failed stage and its output.
#[component]
fn DiagnosisPanel(build_id: String, failed: bool) -> impl IntoView {
    if !failed {
        return ().into_any();
    }
    let diagnosis = Resource::new(move || build_id.clone(), diagnose_build);
    view! {
        <Suspense fallback=|| view! { <Loading what="diagnosis"/> }>
            {move || Suspend::new(async move {
                match diagnosis.await {
                    Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    Ok(d) => match d.failure {
                        None => ().into_any(),
                        Some(f) => view! {
                            <section class="panel diagnosis" id="diagnosis">
                                <h2>"Diagnosis: "<code>{f.class.as_str()}</code></h2>
                                <dl class="facts">
                                    <dt>"Cause"</dt><dd>{f.cause.clone()}</dd>
                                    <dt>"What to do"</dt><dd class="hint">{f.hint.clone()}</dd>
                                    {f.failed_step.clone().map(|s| view! { <dt>"Failed step"</dt><dd><code>{s}</code></dd> })}
                                    {f.failed_stage.clone().map(|s| view! { <dt>"Dockerfile stage"</dt><dd><code>{s}</code></dd> })}
                                    <dt>"Error"</dt><dd><code>{f.raw_error.clone()}</code></dd>
                                    <dt>"Decided from"</dt><dd><ul class="evidence">{f.evidence.iter().map(|e| view! { <li>{e.clone()}</li> }).collect_view()}</ul></dd>
                                </dl>
                                {(!f.stage_lines.is_empty()).then(|| view! {
                                    <h3>"Last lines of the failed stage"</h3>
                                    <pre class="stage-lines">{f.stage_lines.iter().map(slipway_model::logs::text_line).collect::<Vec<_>>().join("\n")}</pre>
                                })}
                            </section>
                        }.into_any(),
                    },
                }
            })}
        </Suspense>
    }
    .into_any()
}
