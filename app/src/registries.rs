//! A project's registries list: the registries its builds may push to and
//! which secrets each may receive as credentials. Server functions
//! (`/api/registries/*`, project admins only) and the section of the project
//! page that manages the list.

use leptos::prelude::*;
use server_fn::codec::Json;
use slipway_model::registry::{AllowedRegistry, NewAllowedRegistry};
use slipway_model::AppError;

use crate::components::{error_fallback, format_time, ErrorNotice, Loading};

#[cfg(feature = "ssr")]
async fn authorize(endpoint: &str, project: &str) -> Result<(String, crate::auth::Guard), AppError> {
    let ctx = crate::server::context()?;
    crate::auth::require_login()?;
    let not_found = || AppError::not_found(format!("project `{project}`"));
    let p = ctx.store.get_project(project).await.map_err(|_| not_found())?;
    let g = crate::auth::require(endpoint, Some(&p.id), not_found).await?;
    Ok((p.id, g))
}

/// The registries a project's builds may push to (project admins).
#[server(prefix = "/api", endpoint = "registries/list", input = Json)]
pub async fn list_registries(project: String) -> Result<Vec<AllowedRegistry>, AppError> {
    let ctx = crate::server::context()?;
    let (pid, _) = authorize("registries/list", &project).await?;
    Ok(ctx.store.list_registries(&pid).await?)
}

/// Lists a registry (or replaces its listing): its host, the two secrets it
/// may receive as credentials, and extra hosts its token service may be on.
#[server(prefix = "/api", endpoint = "registries/add", input = Json)]
pub async fn add_registry(project: String, registry: NewAllowedRegistry) -> Result<AllowedRegistry, AppError> {
    let ctx = crate::server::context()?;
    let (pid, g) = authorize("registries/add", &project).await?;
    let listed = ctx.store.add_registry(&pid, &registry, g.user_id()).await?;
    crate::auth::audit(
        &g,
        "registry.listed",
        Some(&pid),
        Some(("registry", &listed.id)),
        serde_json::json!({
            "host": listed.host,
            "username_secret": listed.username_secret,
            "token_secret": listed.token_secret,
            "auth_hosts": listed.auth_hosts,
        }),
    )
    .await;
    Ok(listed)
}

/// Takes a registry off the list; builds can no longer push there.
#[server(prefix = "/api", endpoint = "registries/remove", input = Json)]
pub async fn remove_registry(project: String, host: String) -> Result<bool, AppError> {
    let ctx = crate::server::context()?;
    let (pid, g) = authorize("registries/remove", &project).await?;
    if !ctx.store.remove_registry(&pid, &host).await? {
        return Err(AppError::not_found(format!("registry `{host}` on this project's list")));
    }
    crate::auth::audit(&g, "registry.removed", Some(&pid), Some(("registry", &host)), serde_json::json!({ "host": host })).await;
    Ok(true)
}

/// The registries section of a project's page (admins see and change it).
#[component]
pub fn ProjectRegistries(slug: String) -> impl IntoView {
    let add = ServerAction::<AddRegistry>::new();
    let remove = ServerAction::<RemoveRegistry>::new();
    let p1 = slug.clone();
    let list = Resource::new(move || (add.version().get(), remove.version().get()), move |_| list_registries(p1.clone()));
    let host = RwSignal::new(String::new());
    let user = RwSignal::new(String::new());
    let token = RwSignal::new(String::new());
    let auth_host = RwSignal::new(String::new());
    let (s1, s2) = (slug.clone(), slug);
    let some = |s: String| (!s.trim().is_empty()).then_some(s);
    view! {
        <section class="panel" id="registries-section">
            <h2>"Registries"</h2>
            <p class="muted">
                "Builds may push only to the built-in registry and to the registries listed here, and only the secrets listed with a registry are ever sent to it."
            </p>
            <Transition fallback=|| view! { <Loading what="registries"/> }>
                <ErrorBoundary fallback=error_fallback>
                    {move || { let s1 = s1.clone(); Suspend::new(async move {
                        let list = list.await?;
                        Ok::<_, AppError>(view! {
                            <table id="registries" class="table">
                                <thead><tr><th>"Host"</th><th>"Credentials"</th><th>"Token service hosts"</th><th>"Listed"</th><th></th></tr></thead>
                                <tbody>{list.into_iter().map(|r| {
                                    let (h, p) = (r.host.clone(), s1.clone());
                                    let creds = match (&r.username_secret, &r.token_secret) {
                                        (Some(u), Some(t)) => format!("{u} / {t}"),
                                        _ => "none".into(),
                                    };
                                    view! {
                                        <tr data-registry=r.host.clone()>
                                            <td><code>{r.host.clone()}</code></td>
                                            <td><code>{creds}</code></td>
                                            <td>{if r.auth_hosts.is_empty() { "its own host".to_string() } else { r.auth_hosts.join(", ") }}</td>
                                            <td>{format_time(&r.created_at)}</td>
                                            <td><button class="secondary small" on:click=move |_| { remove.dispatch(RemoveRegistry { project: p.clone(), host: h.clone() }); }>"Remove"</button></td>
                                        </tr>
                                    }
                                }).collect_view()}</tbody>
                            </table>
                        })
                    })}}
                </ErrorBoundary>
            </Transition>
            <form id="add-registry" class="form" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                add.dispatch(AddRegistry {
                    project: s2.clone(),
                    registry: NewAllowedRegistry {
                        host: host.get_untracked(),
                        username_secret: some(user.get_untracked()),
                        token_secret: some(token.get_untracked()),
                        auth_hosts: some(auth_host.get_untracked()).into_iter().collect(),
                    },
                });
            }>
                <label>"Host"<input name="registry-host" required placeholder="registry.example.com:5000" bind:value=host/></label>
                <label>"Username secret"<input name="registry-username-secret" placeholder="REGISTRY_USERNAME" bind:value=user/></label>
                <label>"Token secret"<input name="registry-token-secret" placeholder="REGISTRY_PASSWORD" bind:value=token/></label>
                <label>"Token service host"<input name="registry-auth-host" placeholder="optional" bind:value=auth_host/></label>
                <button type="submit">"List registry"</button>
            </form>
            {move || add.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorNotice error=e/> })}
            {move || remove.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorNotice error=e/> })}
        </section>
    }
}
