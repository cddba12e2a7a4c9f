//! The allowed-images list: base images builds may use and repositories of
//! Slipway's registry shared with a project. Everyone logged in reads the
//! entries that apply to their projects; only global administrators change
//! the list (a project administrator must not be able to let their project
//! read another project's images).

use leptos::prelude::*;
use leptos_meta::Title;
use server_fn::codec::Json;
use slipway_model::base_image::{AllowedImage, NewAllowedImage};
use slipway_model::AppError;

use crate::components::{error_fallback, format_time, ErrorNotice, Loading};

/// The entries that apply to the caller's projects (administrators: all).
#[server(prefix = "/api", endpoint = "base-images/list", input = Json)]
pub async fn list_base_images() -> Result<Vec<AllowedImage>, AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("base-images/list", None, || AppError::not_found("allowed image")).await?;
    let visible = ctx.store.visible_project_ids(g.user()?).await?;
    Ok(ctx.store.list_allowed_images(visible.as_deref()).await?)
}

/// Allows an image (pattern) for every project or for one (administrators).
#[server(prefix = "/api", endpoint = "base-images/add", input = Json)]
pub async fn add_base_image(input: NewAllowedImage) -> Result<AllowedImage, AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("base-images/add", None, || AppError::not_found("allowed image")).await?;
    let entry = ctx.store.add_allowed_image(&input, g.user_id()).await?;
    crate::auth::audit(
        &g,
        "base_image.allowed",
        entry.project_id.as_deref(),
        Some(("allowed_image", &entry.id.to_string())),
        serde_json::json!({ "pattern": entry.pattern, "project": entry.project }),
    )
    .await;
    Ok(entry)
}

/// Removes an entry, named by its pattern and project (administrators).
#[server(prefix = "/api", endpoint = "base-images/remove", input = Json)]
pub async fn remove_base_image(pattern: String, #[server(default)] project: Option<String>) -> Result<AllowedImage, AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("base-images/remove", None, || AppError::not_found("allowed image")).await?;
    let entry = ctx.store.remove_allowed_image(&pattern, project.as_deref()).await?;
    crate::auth::audit(
        &g,
        "base_image.removed",
        entry.project_id.as_deref(),
        Some(("allowed_image", &entry.id.to_string())),
        serde_json::json!({ "pattern": entry.pattern, "project": entry.project }),
    )
    .await;
    Ok(entry)
}

/// `/base-images`: the list, and (for administrators) adding and removing entries.
#[component]
pub fn BaseImagesPage() -> impl IntoView {
    let add = ServerAction::<AddBaseImage>::new();
    let remove = ServerAction::<RemoveBaseImage>::new();
    let entries = Resource::new(move || (add.version().get(), remove.version().get()), |_| list_base_images());
    let pattern = RwSignal::new(String::new());
    let project = RwSignal::new(String::new());
    view! {
        <Title text="Allowed images"/>
        <header class="page-header"><h1>"Allowed images"</h1></header>
        <section class="panel">
            <p class="muted">
                "A Dockerfile's " <code>"FROM"</code> ", " <code>"COPY --from"</code> " and " <code>"RUN --mount=from="</code>
                " may name an image of the project itself, a stage of the same Dockerfile, or an image listed here. "
                "Entries naming repositories of Slipway's registry also let the project pull them. Only administrators change the list."
            </p>
            <form id="new-base-image" class="form" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                let p = project.get_untracked();
                add.dispatch(AddBaseImage { input: NewAllowedImage {
                    pattern: pattern.get_untracked(),
                    project: (!p.trim().is_empty()).then_some(p),
                }});
            }>
                <label>"Image or pattern"<input name="pattern" required placeholder="docker.io/library/*" bind:value=pattern/></label>
                <label>"Project"<input name="project" placeholder="every project" bind:value=project/></label>
                <button type="submit">"Allow"</button>
            </form>
            {move || match add.value().get() {
                Some(Err(e)) => view! { <ErrorNotice error=e/> }.into_any(),
                _ => ().into_any(),
            }}
            {move || match remove.value().get() {
                Some(Err(e)) => view! { <ErrorNotice error=e/> }.into_any(),
                _ => ().into_any(),
            }}
            <Transition fallback=|| view! { <Loading what="allowed images"/> }>
                <ErrorBoundary fallback=error_fallback>
                    {move || Suspend::new(async move {
                        let entries = entries.await?;
                        Ok::<_, AppError>(view! {
                            <table id="base-images" class="table">
                                <thead><tr><th>"Image"</th><th>"Project"</th><th>"Added by"</th><th>"Added"</th><th></th></tr></thead>
                                <tbody>{entries.into_iter().map(|e| {
                                    let (p, proj) = (e.pattern.clone(), e.project.clone());
                                    view! {
                                        <tr>
                                            <td><code>{e.pattern.clone()}</code></td>
                                            <td>{e.project.clone().unwrap_or_else(|| "every project".into())}</td>
                                            <td>{e.created_by.clone().unwrap_or_else(|| "—".into())}</td>
                                            <td>{format_time(&e.created_at)}</td>
                                            <td><button class="danger small" on:click=move |_| {
                                                remove.dispatch(RemoveBaseImage { pattern: p.clone(), project: proj.clone() });
                                            }>"Remove"</button></td>
                                        </tr>
                                    }
                                }).collect_view()}</tbody>
                            </table>
                        })
                    })}
                </ErrorBoundary>
            </Transition>
        </section>
    }
}
