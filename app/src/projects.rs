//! Projects: server functions (`/api/projects/*`) and the Projects and Project pages.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use server_fn::codec::Json;
use slipway_model::project::{NewProject, Project, ProjectSummary};
use slipway_model::AppError;

use crate::components::{error_fallback, format_time, ErrorNotice, Loading};

/// Every project with its build, release and environment counts.
#[server(prefix = "/api", endpoint = "projects/list", input = Json)]
pub async fn list_projects() -> Result<Vec<ProjectSummary>, AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("projects/list", None, || AppError::not_found("project")).await?;
    let visible = ctx.store.visible_project_ids(g.user()?).await?;
    let mut all = ctx.store.list_projects().await?;
    if let Some(ids) = visible {
        all.retain(|p| ids.contains(&p.project.id));
    }
    for s in &mut all {
        redact_repo(&mut s.project);
    }
    Ok(all)
}

/// A project as responses show it: the repository URL without the
/// `user:token@` it may carry (git needs it; no reader of the API does).
#[cfg(feature = "ssr")]
fn shown(mut p: Project) -> Project {
    redact_repo(&mut p);
    p
}

#[cfg(feature = "ssr")]
fn redact_repo(p: &mut Project) {
    p.repo_url = slipway_engine::builds::workspace::redact_url(&p.repo_url);
}

/// Creates a project from a name and a repository (absolute path or git URL).
#[server(prefix = "/api", endpoint = "projects/create", input = Json)]
pub async fn create_project(input: NewProject) -> Result<Project, AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("projects/create", None, || AppError::not_found("project")).await?;
    let user = g.user()?;
    let project = ctx.store.create_project(&input, Some(&user.user.id)).await?;
    // The creator administers the new project.
    ctx.store.set_member(&project.id, &user.user.id, slipway_model::auth::Role::Admin, user).await?;
    crate::auth::audit(&g, "project.created", Some(&project.id), Some(("project", &project.id)), serde_json::json!({ "name": project.name })).await;
    tracing::info!(project = %project.id, name = %project.name, "project created");
    Ok(shown(project))
}

/// One project by id, slug or name.
#[server(prefix = "/api", endpoint = "projects/show", input = Json)]
pub async fn get_project(project: String) -> Result<Project, AppError> {
    let ctx = crate::server::context()?;
    crate::auth::require_login()?;
    let not_found = || AppError::not_found(format!("project `{project}`"));
    let p = ctx.store.get_project(&project).await.map_err(|_| not_found())?;
    crate::auth::require("projects/show", Some(&p.id), || AppError::not_found(format!("project `{project}`"))).await?;
    Ok(shown(p))
}

/// Project settings (admins): whether every completed build creates a release,
/// and which project secret holds the repository's https token or SSH deploy key
/// (names only; `""` clears). Fields left out stay as they are.
#[server(prefix = "/api", endpoint = "projects/settings", input = Json)]
pub async fn update_settings(
    project: String,
    #[server(default)] auto_release: Option<bool>,
    #[server(default)] git_token_secret: Option<String>,
    #[server(default)] git_ssh_key_secret: Option<String>,
) -> Result<Project, AppError> {
    let ctx = crate::server::context()?;
    crate::auth::require_login()?;
    let not_found = || AppError::not_found(format!("project `{project}`"));
    let p = ctx.store.get_project(&project).await.map_err(|_| not_found())?;
    let g = crate::auth::require("projects/settings", Some(&p.id), not_found).await?;
    let settings = slipway_model::project::ProjectSettings { auto_release, git_token_secret, git_ssh_key_secret };
    let updated = ctx.store.update_project_settings(&p.id, &settings).await?;
    crate::auth::audit(
        &g,
        "project.settings",
        Some(&p.id),
        Some(("project", &p.id)),
        serde_json::json!({
            "auto_release": updated.auto_release,
            "git_token_secret": updated.git_token_secret,
            "git_ssh_key_secret": updated.git_ssh_key_secret,
        }),
    )
    .await;
    Ok(shown(updated))
}

/// The Projects page: the list, and the form that adds one.
#[component]
pub fn ProjectsPage() -> impl IntoView {
    let create = ServerAction::<CreateProject>::new();
    let projects = Resource::new(move || create.version().get(), |_| list_projects());
    view! {
        <Title text="Projects"/>
        <header class="page-header">
            <h1>"Projects"</h1>
        </header>
        <NewProjectForm create/>
        <section class="panel">
            <Suspense fallback=|| view! { <Loading what="projects"/> }>
                <ErrorBoundary fallback=error_fallback>
                    {move || Suspend::new(async move {
                        let projects = projects.await?;
                        Ok::<_, AppError>(view! { <ProjectTable projects/> })
                    })}
                </ErrorBoundary>
            </Suspense>
        </section>
    }
}

#[component]
fn ProjectTable(projects: Vec<ProjectSummary>) -> impl IntoView {
    if projects.is_empty() {
        return view! { <p class="empty">"No projects yet. Add one with the form above."</p> }.into_any();
    }
    view! {
        <table id="projects" class="table">
            <thead>
                <tr>
                    <th>"Name"</th>
                    <th>"Repository"</th>
                    <th class="num">"Builds"</th>
                    <th class="num">"Releases"</th>
                    <th class="num">"Environments"</th>
                    <th>"Created"</th>
                </tr>
            </thead>
            <tbody>
                {projects
                    .into_iter()
                    .map(|s| {
                        let href = format!("/projects/{}", s.project.slug);
                        view! {
                            <tr data-project=s.project.slug.clone()>
                                <td><a href=href>{s.project.name.clone()}</a></td>
                                <td><code>{s.project.repo_url.clone()}</code></td>
                                <td class="num">{s.build_count}</td>
                                <td class="num">{s.release_count}</td>
                                <td class="num">{s.environment_count}</td>
                                <td>{format_time(&s.project.created_at)}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

#[component]
fn NewProjectForm(create: ServerAction<CreateProject>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let repo = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let pending = create.pending();
    let result = create.value();
    // Clear the form once a project was created.
    Effect::new(move |_| {
        if let Some(Ok(_)) = result.get() {
            name.set(String::new());
            repo.set(String::new());
            description.set(String::new());
        }
    });
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let description = description.get_untracked();
        create.dispatch(CreateProject {
            input: NewProject {
                name: name.get_untracked(),
                repo_url: repo.get_untracked(),
                description: (!description.trim().is_empty()).then_some(description),
                default_branch: None,
            },
        });
    };
    view! {
        <section class="panel">
            <h2>"New project"</h2>
            <form id="new-project" class="form" on:submit=on_submit>
                <label>
                    "Name"
                    <input name="name" required placeholder="payments" bind:value=name/>
                </label>
                <label>
                    "Repository"
                    <input
                        name="repo_url"
                        required
                        placeholder="/srv/git/payments or https://git.example/payments.git"
                        bind:value=repo
                    />
                </label>
                <label>
                    "Description"
                    <input name="description" placeholder="optional" bind:value=description/>
                </label>
                <button type="submit" disabled=move || pending.get()>
                    {move || if pending.get() { "Creating…" } else { "Create project" }}
                </button>
            </form>
            {move || match result.get() {
                Some(Err(e)) => view! { <ErrorNotice error=e/> }.into_any(),
                Some(Ok(p)) => {
                    view! {
                        <p class="notice" role="status">
                            "Created "<a href=format!("/projects/{}", p.slug)>{p.name}</a>
                        </p>
                    }
                        .into_any()
                }
                None => ().into_any(),
            }}
        </section>
    }
}

/// One project: its repository and settings.
#[component]
pub fn ProjectPage() -> impl IntoView {
    let params = use_params_map();
    let key = move || params.read().get("project").unwrap_or_default();
    let project = Resource::new(key, get_project);
    view! {
        <Suspense fallback=|| view! { <Loading what="project"/> }>
            <ErrorBoundary fallback=error_fallback>
                {move || Suspend::new(async move {
                    let p = project.await?;
                    Ok::<_, AppError>(
                        view! {
                            <Title text=p.name.clone()/>
                            <header class="page-header">
                                <h1>{p.name.clone()}</h1>
                                <span class="muted"><code>{p.id.clone()}</code></span>
                            </header>
                            <ProjectBuilds slug=p.slug.clone()/>
                            <crate::account::ProjectSettings slug=p.slug.clone()/>
                            <crate::registries::ProjectRegistries slug=p.slug.clone()/>
                            <section class="panel">
                                <dl class="facts">
                                    <dt>"Repository"</dt>
                                    <dd><code>{p.repo_url.clone()}</code></dd>
                                    <dt>"Default branch"</dt>
                                    <dd>{p.default_branch.clone()}</dd>
                                    <dt>"Description"</dt>
                                    <dd>{p.description.clone().unwrap_or_else(|| "—".into())}</dd>
                                    <dt>"Every build creates a release"</dt>
                                    <dd><AutoReleaseToggle slug=p.slug.clone() on=p.auto_release/></dd>
                                    <dt>"Created"</dt>
                                    <dd>{format_time(&p.created_at)}</dd>
                                </dl>
                            </section>
                        },
                    )
                })}
            </ErrorBoundary>
        </Suspense>
    }
}

/// The project's recent builds and a form to start one.
#[component]
fn ProjectBuilds(slug: String) -> impl IntoView {
    use crate::builds::{list_builds, BuildTable, CreateBuild, NewBuildForm};
    use slipway_model::build::BuildListQuery;
    let create = ServerAction::<CreateBuild>::new();
    let project = slug.clone();
    let builds = Resource::new(
        move || create.version().get(),
        move |_| {
            let project = project.clone();
            async move { list_builds(BuildListQuery { project: Some(project), limit: Some(10), ..Default::default() }).await }
        },
    );
    view! {
        <NewBuildForm create project=slug/>
        <section class="panel">
            <h2>"Recent builds"</h2>
            <Transition fallback=|| view! { <Loading what="builds"/> }>
                <ErrorBoundary fallback=error_fallback>
                    {move || Suspend::new(async move {
                        let page = builds.await?;
                        Ok::<_, AppError>(view! { <BuildTable builds=page.items/> })
                    })}
                </ErrorBoundary>
            </Transition>
        </section>
    }
}

/// The auto-release switch (project admins may change it).
#[component]
fn AutoReleaseToggle(slug: String, on: bool) -> impl IntoView {
    let update = ServerAction::<UpdateSettings>::new();
    let state = RwSignal::new(on);
    Effect::new(move |_| {
        if let Some(Ok(p)) = update.value().get() {
            state.set(p.auto_release);
        }
    });
    view! {
        <label class="check">
            <input
                type="checkbox"
                id="auto-release"
                prop:checked=move || state.get()
                on:change=move |ev| {
                    update.dispatch(UpdateSettings {
                        project: slug.clone(),
                        auto_release: Some(event_target_checked(&ev)),
                        git_token_secret: None,
                        git_ssh_key_secret: None,
                    });
                }
            />
            {move || if state.get() { " yes" } else { " no" }}
        </label>
        {move || update.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorNotice error=e/> })}
    }
}
