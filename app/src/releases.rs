//! Releases, environments and deployments: server functions and the
//! Releases page and the Environments board (promote, approve, reject,
//! roll back, diff), which refreshes itself while anything is in flight.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};
use server_fn::codec::Json;
use slipway_model::release::{
    Board, BoardColumn, DeployRequest, Deployment, Environment, EnvironmentInput, NewRelease, PromotionDiff, Release,
    ReleaseListQuery, ReleasePage,
};
use slipway_model::status::DeploymentStatus;
use slipway_model::AppError;

use crate::components::{error_fallback, format_time, ErrorNotice, Loading};

#[cfg(feature = "ssr")]
async fn project_guard(endpoint: &str, project: &str) -> Result<(String, crate::auth::Guard), AppError> {
    let ctx = crate::server::context()?;
    crate::auth::require_login()?;
    let not_found = || AppError::not_found(format!("project `{project}`"));
    let p = ctx.store.get_project(project).await.map_err(|_| not_found())?;
    let g = crate::auth::require(endpoint, Some(&p.id), not_found).await?;
    Ok((p.id, g))
}

/// Creates a release from a completed build (tags are unique and immutable).
#[server(prefix = "/api", endpoint = "releases/create", input = Json)]
pub async fn create_release(input: NewRelease) -> Result<Release, AppError> {
    let ctx = crate::server::context()?;
    let (pid, g) = project_guard("releases/create", &input.project).await?;
    let input = NewRelease { project: pid.clone(), ..input };
    let release = slipway_engine::release::create_release(&ctx.store, &input, g.user_id()).await?;
    crate::auth::audit(&g, "release.created", Some(&pid), Some(("release", &release.id)), serde_json::json!({ "tag": release.tag, "build": release.build_id, "image_digests": release.image_digests })).await;
    Ok(release)
}

/// A project's releases, newest first, with where each is deployed.
#[server(prefix = "/api", endpoint = "releases/list", input = Json)]
pub async fn list_releases(project: String, #[server(default)] query: ReleaseListQuery) -> Result<ReleasePage, AppError> {
    let ctx = crate::server::context()?;
    let (pid, _) = project_guard("releases/list", &project).await?;
    Ok(slipway_engine::release::list_releases(&ctx.store, &pid, &query).await?)
}

/// One release by tag or id.
#[server(prefix = "/api", endpoint = "releases/show", input = Json)]
pub async fn show_release(project: String, release: String) -> Result<Release, AppError> {
    let ctx = crate::server::context()?;
    let (pid, _) = project_guard("releases/show", &project).await?;
    Ok(slipway_engine::release::resolve_release(&ctx.store, &pid, &release).await?)
}

/// The ordered environments of a project.
#[server(prefix = "/api", endpoint = "environments/list", input = Json)]
pub async fn list_environments(project: String) -> Result<Vec<Environment>, AppError> {
    let ctx = crate::server::context()?;
    let (pid, _) = project_guard("environments/list", &project).await?;
    Ok(slipway_engine::release::list_environments(&ctx.store, &pid).await?)
}

/// The environment called (or with the id) `name`, if there is one.
#[cfg(feature = "ssr")]
async fn environment_named(project_id: &str, name: &str) -> Result<Option<Environment>, AppError> {
    let ctx = crate::server::context()?;
    let key = name.trim();
    let all = slipway_engine::release::list_environments(&ctx.store, project_id).await?;
    Ok(all.into_iter().find(|e| e.name == key || e.id == key))
}

/// What the audit trail keeps of an environment's gate and target.
#[cfg(feature = "ssr")]
fn gate_facts(env: &Environment) -> serde_json::Value {
    serde_json::json!({
        "name": env.name,
        "position": env.position,
        "approval_required": env.approval_required,
        "approvers": env.approvers,
        "wait_timer_seconds": env.wait_timer_seconds,
        "deploy_target": env.deploy_target,
    })
}

/// Creates an environment, or updates the one named `environment`.
#[server(prefix = "/api", endpoint = "environments/save", input = Json)]
pub async fn save_environment(project: String, #[server(default)] environment: Option<String>, input: EnvironmentInput) -> Result<Environment, AppError> {
    let ctx = crate::server::context()?;
    let (pid, g) = project_guard("environments/save", &project).await?;
    // Loosening a gate happens only here (a manifest may not): the audit
    // event keeps the gate and target before and after.
    let before = match &environment {
        Some(name) => environment_named(&pid, name).await?,
        None => None,
    };
    let env = match &environment {
        Some(name) => slipway_engine::release::update_environment(&ctx.store, &pid, name, &input).await?,
        None => slipway_engine::release::create_environment(&ctx.store, &pid, &input).await?,
    };
    let detail = serde_json::json!({ "name": env.name, "before": before.as_ref().map(gate_facts), "after": gate_facts(&env) });
    crate::auth::audit(&g, "environment.saved", Some(&pid), Some(("environment", &env.id)), detail).await;
    Ok(env)
}

/// Deletes an environment (refused while it is deploying).
#[server(prefix = "/api", endpoint = "environments/delete", input = Json)]
pub async fn delete_environment(project: String, environment: String) -> Result<(), AppError> {
    let ctx = crate::server::context()?;
    let (pid, g) = project_guard("environments/delete", &project).await?;
    let before = environment_named(&pid, &environment).await?;
    slipway_engine::release::delete_environment(&ctx.store, &pid, &environment).await?;
    let detail = serde_json::json!({ "before": before.as_ref().map(gate_facts) });
    crate::auth::audit(&g, "environment.deleted", Some(&pid), Some(("environment", &environment)), detail).await;
    Ok(())
}

/// What the audit trail keeps of what runs (or is to run) in an environment.
#[cfg(feature = "ssr")]
fn running_facts(d: &Deployment) -> serde_json::Value {
    serde_json::json!({ "deployment": d.id, "release": d.release_tag, "git_sha": d.git_sha, "image_digests": d.image_digests })
}

/// Adds `before` (what ran in the environment when `d` was requested; `null`:
/// nothing) and `after` (what `d` runs) to a deploy's audit detail.
#[cfg(feature = "ssr")]
async fn before_after(d: &Deployment, detail: &mut serde_json::Value) {
    let Ok(ctx) = crate::server::context() else { return };
    match slipway_engine::release::running_before(&ctx.store, d).await {
        Ok(before) => detail["before"] = before.as_ref().map(running_facts).unwrap_or_default(),
        // The deployment is recorded: keep its event, without a "before" that could be wrong.
        Err(e) => tracing::error!(error = %e, deployment = %d.id, "reading what ran before a deployment failed"),
    }
    detail["after"] = running_facts(d);
}

/// Requests a deployment: a release (tag or id), image digests, an image tag,
/// or a git sha + manifest hash (runs the pipeline); gated environments wait for approvals.
#[server(prefix = "/api", endpoint = "deployments/request", input = Json)]
pub async fn request_deploy(project: String, request: DeployRequest) -> Result<Deployment, AppError> {
    let ctx = crate::server::context()?;
    let (pid, g) = project_guard("deployments/request", &project).await?;
    let d = slipway_engine::pipeline::request_deploy(&ctx.store, &pid, &request, g.user_id(), slipway_model::release::DeploymentKind::Deploy).await?;
    let mut detail = serde_json::json!({ "environment": d.environment, "release": d.release_tag, "image_digests": d.image_digests, "status": d.status });
    before_after(&d, &mut detail).await;
    crate::auth::audit(&g, "deploy.requested", Some(&pid), Some(("deployment", &d.id)), detail).await;
    Ok(d)
}

/// Promotes the release running in `from` to `to` (the same digests, byte for byte).
#[server(prefix = "/api", endpoint = "deployments/promote", input = Json)]
pub async fn promote(project: String, from: String, to: String) -> Result<Deployment, AppError> {
    let ctx = crate::server::context()?;
    let (pid, g) = project_guard("deployments/promote", &project).await?;
    let d = slipway_engine::release::promote(&ctx.store, &pid, &from, &to, g.user_id()).await?;
    let mut detail = serde_json::json!({ "from": from, "to": to, "release": d.release_tag, "image_digests": d.image_digests, "status": d.status });
    before_after(&d, &mut detail).await;
    crate::auth::audit(&g, "deploy.promoted", Some(&pid), Some(("deployment", &d.id)), detail).await;
    Ok(d)
}

/// Rolls an environment back to its previous release (gated like any deploy).
#[server(prefix = "/api", endpoint = "deployments/rollback", input = Json)]
pub async fn rollback(project: String, environment: String) -> Result<Deployment, AppError> {
    let ctx = crate::server::context()?;
    let (pid, g) = project_guard("deployments/rollback", &project).await?;
    let d = slipway_engine::release::rollback(&ctx.store, &pid, &environment, g.user_id()).await?;
    let mut detail = serde_json::json!({ "environment": environment, "release": d.release_tag, "status": d.status });
    before_after(&d, &mut detail).await;
    crate::auth::audit(&g, "deploy.rollback", Some(&pid), Some(("deployment", &d.id)), detail).await;
    Ok(d)
}

#[cfg(feature = "ssr")]
async fn deployment_guard(endpoint: &str, deployment: &str) -> Result<(Deployment, crate::auth::Guard), AppError> {
    let ctx = crate::server::context()?;
    crate::auth::require_login()?;
    let not_found = || AppError::not_found(format!("deployment `{deployment}`"));
    let d = slipway_engine::release::get_deployment(&ctx.store, deployment.trim()).await.map_err(|_| not_found())?;
    let g = crate::auth::require(endpoint, Some(&d.project_id), not_found).await?;
    Ok((d, g))
}

/// Approves a gated deployment (not your own request; bound to its digests).
#[server(prefix = "/api", endpoint = "deployments/approve", input = Json)]
pub async fn approve(deployment: String) -> Result<Deployment, AppError> {
    let ctx = crate::server::context()?;
    let (d, g) = deployment_guard("deployments/approve", &deployment).await?;
    let may = g.role.map(|r| r.allows(slipway_model::auth::Permission::Approve)).unwrap_or(false);
    let d = slipway_engine::release::approve(&ctx.store, &d.id, &g.user()?.user.id, may).await?;
    crate::auth::audit(&g, "deploy.approved", Some(&d.project_id), Some(("deployment", &d.id)), serde_json::json!({ "environment": d.environment, "release": d.release_tag, "image_digests": d.image_digests, "status": d.status })).await;
    Ok(d)
}

/// Rejects a gated deployment; the environment keeps what it runs.
#[server(prefix = "/api", endpoint = "deployments/reject", input = Json)]
pub async fn reject(deployment: String) -> Result<Deployment, AppError> {
    let ctx = crate::server::context()?;
    let (d, g) = deployment_guard("deployments/reject", &deployment).await?;
    let may = g.role.map(|r| r.allows(slipway_model::auth::Permission::Approve)).unwrap_or(false);
    let d = slipway_engine::release::reject(&ctx.store, &d.id, &g.user()?.user.id, may).await?;
    crate::auth::audit(&g, "deploy.rejected", Some(&d.project_id), Some(("deployment", &d.id)), serde_json::json!({ "environment": d.environment, "release": d.release_tag })).await;
    Ok(d)
}

/// One deployment with its approvals and containers.
#[server(prefix = "/api", endpoint = "deployments/show", input = Json)]
pub async fn show_deployment(deployment: String) -> Result<Deployment, AppError> {
    let (d, _) = deployment_guard("deployments/show", &deployment).await?;
    Ok(d)
}

/// The board: one column per environment with its current release, pending deployments and history.
#[server(prefix = "/api", endpoint = "deployments/board", input = Json)]
pub async fn get_board(project: String) -> Result<Board, AppError> {
    let ctx = crate::server::context()?;
    let (pid, _) = project_guard("deployments/board", &project).await?;
    Ok(slipway_engine::release::board(&ctx.store, &pid).await?)
}

/// What would change between two environments (digests, sha, build args).
#[server(prefix = "/api", endpoint = "deployments/diff", input = Json)]
pub async fn diff(project: String, from: String, to: String) -> Result<PromotionDiff, AppError> {
    let ctx = crate::server::context()?;
    let (pid, _) = project_guard("deployments/diff", &project).await?;
    Ok(slipway_engine::release::diff(&ctx.store, &pid, &from, &to).await?)
}

fn short(s: &str) -> String {
    let s = s.strip_prefix("sha256:").unwrap_or(s);
    s.chars().take(12).collect()
}

/// `?project=` of the page, or the first project the user can see.
fn use_project() -> (Memo<String>, impl Fn(String) + Clone) {
    let query = use_query_map();
    let navigate = use_navigate();
    let project = Memo::new(move |_| query.read().get("project").unwrap_or_default());
    let set = move |p: String| {
        let path = leptos_router::hooks::use_location().pathname.get_untracked();
        navigate(&format!("{path}?project={p}"), Default::default());
    };
    (project, set)
}

#[component]
fn ProjectPicker(project: Memo<String>, set: impl Fn(String) + Clone + Send + Sync + 'static) -> impl IntoView {
    let projects = Resource::new(|| (), |_| crate::projects::list_projects());
    let set2 = set.clone();
    Effect::new(move |_| {
        if project.get().is_empty() {
            if let Some(Ok(list)) = projects.get() {
                if let Some(first) = list.first() {
                    set2(first.project.slug.clone());
                }
            }
        }
    });
    view! {
        <label class="picker">"Project "
            <Suspense fallback=|| ()>
                {move || {
                    let set = set.clone();
                    Suspend::new(async move {
                        let list = projects.await.unwrap_or_default();
                        view! {
                            <select name="project" on:change=move |ev| set(event_target_value(&ev))>
                                {list.into_iter().map(|p| {
                                    let slug = p.project.slug.clone();
                                    view! { <option value=slug.clone() selected=move || project.get() == slug>{p.project.name.clone()}</option> }
                                }).collect_view()}
                            </select>
                        }
                    })
                }}
            </Suspense>
        </label>
    }
}


/// The Releases page: a project's releases and where each runs.
#[component]
pub fn ReleasesPage() -> impl IntoView {
    let (project, set) = use_project();
    let releases = Resource::new(move || project.get(), |p| async move {
        if p.is_empty() { Ok(ReleasePage { items: vec![], next: None }) } else { list_releases(p, ReleaseListQuery::default()).await }
    });
    view! {
        <Title text="Releases"/>
        <header class="page-header"><h1>"Releases"</h1><ProjectPicker project set/></header>
        <section class="panel">
            <Transition fallback=|| view! { <Loading what="releases"/> }>
                <ErrorBoundary fallback=error_fallback>
                    {move || Suspend::new(async move {
                        let page = releases.await?;
                        if page.items.is_empty() {
                            return Ok::<_, AppError>(view! { <p class="empty">"No releases yet: create one from a completed build."</p> }.into_any());
                        }
                        Ok(view! {
                            <table id="releases" class="table">
                                <thead><tr><th>"Tag"</th><th>"Commit"</th><th>"Images"</th><th>"Deployed to"</th><th>"Build"</th><th>"Created"</th></tr></thead>
                                <tbody>{page.items.into_iter().map(|r| view! {
                                    <tr data-release=r.tag.clone().unwrap_or_default()>
                                        <td><strong>{r.tag.clone().unwrap_or_else(|| r.id.clone())}</strong></td>
                                        <td><code>{short(&r.git_sha)}</code></td>
                                        <td>{r.image_digests.iter().map(|(s, d)| view! { <div><code>{format!("{s}@{}", short(d))}</code></div> }).collect_view()}</td>
                                        <td>{if r.deployed_to.is_empty() { "—".to_string() } else { r.deployed_to.join(", ") }}</td>
                                        <td><a href=format!("/builds/{}", r.build_id)><code>{r.build_id.clone()}</code></a></td>
                                        <td>{format_time(&r.created_at)}</td>
                                    </tr>
                                }).collect_view()}</tbody>
                            </table>
                        }.into_any())
                    })}
                </ErrorBoundary>
            </Transition>
        </section>
    }
}

/// A "Create release" button for a completed build.
#[component]
pub fn CreateReleaseButton(project: String, build_id: String) -> impl IntoView {
    let create = ServerAction::<CreateRelease>::new();
    let tag = RwSignal::new(String::new());
    view! {
        <form id="create-release" class="form inline" on:submit=move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let t = tag.get_untracked();
            create.dispatch(CreateRelease { input: NewRelease {
                project: project.clone(), build: build_id.clone(),
                tag: (!t.trim().is_empty()).then_some(t), version: None, notes: None,
            }});
        }>
            <input name="tag" placeholder="tag (default r<N>)" bind:value=tag/>
            <button type="submit" class="secondary">"Create release"</button>
        </form>
        {move || match create.value().get() {
            Some(Ok(r)) => view! { <p class="notice" role="status">"Created release "<strong>{r.tag.clone().unwrap_or(r.id.clone())}</strong></p> }.into_any(),
            Some(Err(e)) => view! { <ErrorNotice error=e/> }.into_any(),
            None => ().into_any(),
        }}
    }
}

/// The Environments board.
#[component]
pub fn EnvironmentsPage() -> impl IntoView {
    let (project, set) = use_project();
    let promote_a = ServerAction::<Promote>::new();
    let approve_a = ServerAction::<Approve>::new();
    let reject_a = ServerAction::<Reject>::new();
    let rollback_a = ServerAction::<Rollback>::new();
    let save_env = ServerAction::<SaveEnvironment>::new();
    let tick = crate::components::ticker(1500);
    let board_r = Resource::new(
        move || (project.get(), promote_a.version().get(), approve_a.version().get(), reject_a.version().get(), rollback_a.version().get(), save_env.version().get(), tick.get()),
        |(p, ..)| async move { if p.is_empty() { Err(AppError::not_found("project")) } else { get_board(p).await } },
    );
    let errors = move || {
        [promote_a.value().get(), approve_a.value().get(), reject_a.value().get(), rollback_a.value().get()]
            .into_iter()
            .flatten()
            .filter_map(|r| r.err())
            .last()
    };
    view! {
        <Title text="Environments"/>
        <header class="page-header"><h1>"Environments"</h1><ProjectPicker project set/></header>
        {move || errors().map(|e| view! { <ErrorNotice error=e/> })}
        <Transition fallback=|| view! { <Loading what="environments"/> }>
            <ErrorBoundary fallback=error_fallback>
                {move || Suspend::new(async move {
                    let b = board_r.await?;
                    let slug = b.project.slug.clone();
                    let cols = b.environments.clone();
                    if cols.is_empty() {
                        return Ok::<_, AppError>(view! { <p class="empty panel">"No environments: define them in the manifest (environments:) or add one."</p> }.into_any());
                    }
                    let names: Vec<String> = cols.iter().map(|c| c.environment.name.clone()).collect();
                    Ok(view! {
                        <div class="board" id="board">
                            {cols.into_iter().enumerate().map(|(i, col)| {
                                let next = names.get(i + 1).cloned();
                                view! { <Column col next project=slug.clone() promote_a approve_a reject_a rollback_a/> }
                            }).collect_view()}
                        </div>
                    }.into_any())
                })}
            </ErrorBoundary>
        </Transition>
        <NewEnvironmentForm project save_env/>
    }
}

/// Adds an environment at the end of the promotion path (project admins).
#[component]
fn NewEnvironmentForm(project: Memo<String>, save_env: ServerAction<SaveEnvironment>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let approvals = RwSignal::new(String::from("0"));
    let approvers = RwSignal::new(String::new());
    view! {
        <section class="panel">
            <h2>"Add an environment"</h2>
            <form id="new-environment" class="form" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                let approvers: Vec<String> = approvers.get_untracked().split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                save_env.dispatch(SaveEnvironment {
                    project: project.get_untracked(),
                    environment: None,
                    input: EnvironmentInput {
                        name: name.get_untracked(),
                        approval_required: approvals.get_untracked().trim().parse().unwrap_or(0),
                        approvers,
                        ..Default::default()
                    },
                });
            }>
                <label>"Name"<input name="env-name" required placeholder="qa" bind:value=name/></label>
                <label>"Approvals required"<input name="env-approvals" bind:value=approvals/></label>
                <label>"Named approvers"<input name="env-approvers" placeholder="anyone with the approver role" bind:value=approvers/></label>
                <button type="submit">"Add environment"</button>
            </form>
            {move || save_env.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorNotice error=e/> })}
        </section>
    }
}

fn status_badge(s: DeploymentStatus) -> &'static str {
    match s {
        DeploymentStatus::Succeeded => "badge ok",
        DeploymentStatus::Failed | DeploymentStatus::Rejected => "badge bad",
        DeploymentStatus::Deploying => "badge live",
        DeploymentStatus::AwaitingApproval | DeploymentStatus::Pending => "badge wait",
        _ => "badge muted",
    }
}

#[component]
fn Column(
    col: BoardColumn,
    next: Option<String>,
    project: String,
    promote_a: ServerAction<Promote>,
    approve_a: ServerAction<Approve>,
    reject_a: ServerAction<Reject>,
    rollback_a: ServerAction<Rollback>,
) -> impl IntoView {
    let env = col.environment.clone();
    let name = env.name.clone();
    let gate = if env.approval_required > 0 {
        format!("gate: {} approval(s){}", env.approval_required, if env.approvers.is_empty() { String::new() } else { format!(" from {}", env.approvers.join(", ")) })
    } else {
        "no gate".to_string()
    };
    let show_diff = RwSignal::new(false);
    let (p1, p2, p3) = (project.clone(), project.clone(), project.clone());
    let (n1, n2) = (name.clone(), name.clone());
    let next_for_diff = next.clone();
    let diff_r = Resource::new(move || show_diff.get(), move |on| {
        let (p, from, to) = (p3.clone(), n2.clone(), next_for_diff.clone());
        async move {
            match (on, to) {
                (true, Some(to)) => diff(p, from, to).await.map(Some),
                _ => Ok(None),
            }
        }
    });
    view! {
        <section class="column panel" data-env=name.clone()>
            <h2>{name.clone()}</h2>
            <p class="muted small">{gate}</p>
            <div class="current">
                {match col.current.clone() {
                    Some(d) => view! {
                        <div class="release-card" data-current=d.release_tag.clone().unwrap_or_default()>
                            <strong class="tag">{d.release_tag.clone().unwrap_or_else(|| "untagged".into())}</strong>
                            <div><code>{d.git_sha.as_deref().map(short).unwrap_or_default()}</code></div>
                            {d.image_digests.iter().map(|(s, dg)| view! { <div class="digest-line"><code>{format!("{s}@{}", short(dg))}</code></div> }).collect_view()}
                            <div class="muted small">{format!("{} by {}", d.completed_at.as_ref().map(format_time).unwrap_or_default(), d.requested_by_name.clone().unwrap_or_else(|| "system".into()))}</div>
                        </div>
                    }.into_any(),
                    None => view! { <p class="empty">"Nothing deployed"</p> }.into_any(),
                }}
            </div>
            {col.pending.clone().into_iter().map(|d| {
                let (id1, id2) = (d.id.clone(), d.id.clone());
                view! {
                    <div class="pending" data-deployment=d.id.clone()>
                        <span class=status_badge(d.status)>{d.status.as_str()}</span>
                        " "<strong>{d.release_tag.clone().unwrap_or_default()}</strong>
                        <div class="muted small">{format!("requested by {}", d.requested_by_name.clone().unwrap_or_default())}</div>
                        {d.pipeline_run_id.clone().map(|p| view! { <a class="small" href=format!("/pipelines/{p}")>"pipeline run"</a> })}
                        {(d.status == DeploymentStatus::AwaitingApproval).then(|| view! {
                            <div class="approvals small">
                                {format!("approvals {}/{}", d.approvals.iter().filter(|a| a.valid && a.decision == slipway_model::status::ApprovalDecision::Approved).count(), d.approvals_required)}
                                {(!d.approvers_still_needed.is_empty()).then(|| format!(" — still needed: {}", d.approvers_still_needed.join(", ")))}
                                {d.approvals.iter().map(|a| view! { <div>{format!("✓ {}", a.username)}</div> }).collect_view()}
                            </div>
                            <button class="approve" on:click=move |_| { approve_a.dispatch(Approve { deployment: id1.clone() }); }>"Approve"</button>
                            <button class="danger reject" on:click=move |_| { reject_a.dispatch(Reject { deployment: id2.clone() }); }>"Reject"</button>
                        })}
                    </div>
                }
            }).collect_view()}
            <div class="actions">
                {next.clone().map(|to| {
                    let (p, from, to2) = (p1.clone(), n1.clone(), to.clone());
                    view! {
                        <button class="promote" on:click=move |_| { promote_a.dispatch(Promote { project: p.clone(), from: from.clone(), to: to2.clone() }); }>
                            {format!("Promote to {to} →")}
                        </button>
                        <button class="secondary small" on:click=move |_| show_diff.update(|s| *s = !*s)>"Diff"</button>
                    }
                })}
                {
                    let (p, e) = (p2.clone(), name.clone());
                    view! { <button class="secondary small rollback" on:click=move |_| { rollback_a.dispatch(Rollback { project: p.clone(), environment: e.clone() }); }>"Roll back"</button> }
                }
            </div>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match diff_r.await {
                        Ok(Some(d)) => view! { <DiffView d/> }.into_any(),
                        Ok(None) => ().into_any(),
                        Err(e) => view! { <ErrorNotice error=e/> }.into_any(),
                    }
                })}
            </Suspense>
            <details class="history">
                <summary>{format!("History ({})", col.history.len())}</summary>
                {col.history.into_iter().map(|d| view! {
                    <div class="small"><span class=status_badge(d.status)>{d.status.as_str()}</span>" "{d.release_tag.clone().unwrap_or_default()}" "{d.kind.as_str()}" "<span class="muted">{format_time(&d.created_at)}</span>
                        // Why a rollout failed (a refused target, a rollout's pod reason).
                        {d.error_message.clone().map(|e| view! { <div class="deployment-error error">{e}</div> })}
                    </div>
                }).collect_view()}
            </details>
        </section>
    }
}

#[component]
fn DiffView(d: PromotionDiff) -> impl IntoView {
    view! {
        <div class="diff small">
            <div>{format!("{} → {}: {} → {}", d.from_env, d.to_env, d.to_release.clone().unwrap_or_else(|| "nothing".into()), d.from_release.clone().unwrap_or_else(|| "nothing".into()))}</div>
            <div>{format!("sha {} → {}", d.to_sha.as_deref().map(short).unwrap_or_else(|| "—".into()), d.from_sha.as_deref().map(short).unwrap_or_else(|| "—".into()))}</div>
            {d.services.into_iter().map(|s| view! {
                <div class=if s.changed { "changed" } else { "same" }>
                    {format!("{}: {} → {}", s.service, s.to_digest.as_deref().map(short).unwrap_or_else(|| "—".into()), s.from_digest.as_deref().map(short).unwrap_or_else(|| "—".into()))}
                </div>
            }).collect_view()}
        </div>
    }
}
