//! Kubernetes clusters environments deploy to: global administrators
//! register (a name and a kubeconfig, or "in-cluster"), list, check and
//! remove them. A kubeconfig is stored encrypted and never returned: the
//! list shows only the API server's address.

use leptos::prelude::*;
use leptos_meta::Title;
use server_fn::codec::Json;
use slipway_model::cluster::{Cluster, ClusterCheck, NewCluster};
use slipway_model::AppError;

use crate::components::{error_fallback, format_time, ErrorNotice, Loading};

/// Every registered cluster (administrators).
#[server(prefix = "/api", endpoint = "clusters/list", input = Json)]
pub async fn list_clusters() -> Result<Vec<Cluster>, AppError> {
    let ctx = crate::server::context()?;
    crate::auth::require("clusters/list", None, || AppError::not_found("cluster")).await?;
    Ok(ctx.store.list_clusters().await?)
}

/// Registers a cluster; its kubeconfig is checked (inline credentials only,
/// a current context with a server) and stored encrypted (administrators).
#[server(prefix = "/api", endpoint = "clusters/add", input = Json)]
pub async fn add_cluster(input: NewCluster) -> Result<Cluster, AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("clusters/add", None, || AppError::not_found("cluster")).await?;
    input.check()?;
    let server = match (&input.kubeconfig, input.in_cluster) {
        (Some(k), false) => slipway_engine::clusters::check_kubeconfig(k)?,
        _ => None,
    };
    let store = match &ctx.secrets {
        Some(sb) => ctx.store.clone().with_secrets(sb.clone()),
        None if input.in_cluster => ctx.store.clone(),
        None => return Err(AppError::internal("storing a kubeconfig needs the master key, and this server has none")),
    };
    let cluster = store.add_cluster(&input, server.as_deref(), g.user_id()).await?;
    crate::auth::audit(
        &g,
        "cluster.added",
        None,
        Some(("cluster", &cluster.id)),
        serde_json::json!({ "name": cluster.name, "source": cluster.source.as_str(), "server": cluster.server }),
    )
    .await;
    Ok(cluster)
}

/// Removes a cluster by name (administrators).
#[server(prefix = "/api", endpoint = "clusters/remove", input = Json)]
pub async fn remove_cluster(name: String) -> Result<Cluster, AppError> {
    let ctx = crate::server::context()?;
    let g = crate::auth::require("clusters/remove", None, || AppError::not_found("cluster")).await?;
    let cluster = ctx.store.remove_cluster(&name).await?;
    crate::auth::audit(&g, "cluster.removed", None, Some(("cluster", &cluster.id)), serde_json::json!({ "name": cluster.name })).await;
    Ok(cluster)
}

/// Whether a cluster answers `GET /version` (administrators).
#[server(prefix = "/api", endpoint = "clusters/check", input = Json)]
pub async fn check_cluster(name: String) -> Result<ClusterCheck, AppError> {
    let ctx = crate::server::context()?;
    crate::auth::require("clusters/check", None, || AppError::not_found("cluster")).await?;
    let store = match &ctx.secrets {
        Some(sb) => ctx.store.clone().with_secrets(sb.clone()),
        None => ctx.store.clone(),
    };
    Ok(slipway_engine::clusters::check_registered(&store, &name).await?)
}

/// `/clusters`: the list, registering, checking and removing clusters.
#[component]
pub fn ClustersPage() -> impl IntoView {
    let add = ServerAction::<AddCluster>::new();
    let remove = ServerAction::<RemoveCluster>::new();
    let check = ServerAction::<CheckCluster>::new();
    let clusters = Resource::new(move || (add.version().get(), remove.version().get()), |_| list_clusters());
    let name = RwSignal::new(String::new());
    let kubeconfig = RwSignal::new(String::new());
    let in_cluster = RwSignal::new(false);
    view! {
        <Title text="Clusters"/>
        <header class="page-header"><h1>"Kubernetes clusters"</h1></header>
        <section class="panel">
            <p class="muted">
                "Environments whose target is " <code>"kind: kubernetes"</code> " deploy to the cluster they name ("
                <code>"default"</code> " when they name none). A kubeconfig is stored encrypted and never shown again; "
                "it must carry its credentials inline (no exec plugins, no file paths)."
            </p>
            <form id="new-cluster" class="form" on:submit=move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                let k = kubeconfig.get_untracked();
                let inside = in_cluster.get_untracked();
                add.dispatch(AddCluster { input: NewCluster {
                    name: name.get_untracked(),
                    kubeconfig: (!inside && !k.trim().is_empty()).then_some(k),
                    in_cluster: inside,
                }});
                kubeconfig.set(String::new());
            }>
                <label>"Name"<input name="name" required placeholder="default" bind:value=name/></label>
                <label>"Kubeconfig"<textarea name="kubeconfig" rows="6" bind:value=kubeconfig></textarea></label>
                <label><input type="checkbox" name="in_cluster" bind:checked=in_cluster/>" In-cluster (Slipway runs as a pod there)"</label>
                <button type="submit">"Register"</button>
            </form>
            {move || match add.value().get() {
                Some(Err(e)) => view! { <ErrorNotice error=e/> }.into_any(),
                _ => ().into_any(),
            }}
            {move || match remove.value().get() {
                Some(Err(e)) => view! { <ErrorNotice error=e/> }.into_any(),
                _ => ().into_any(),
            }}
            {move || match check.value().get() {
                Some(Ok(c)) => view! {
                    <p id="cluster-check" class="notice">
                        {if c.reachable {
                            format!("{} answers: Kubernetes {}", c.name, c.version.unwrap_or_default())
                        } else {
                            format!("{} is unreachable: {}", c.name, c.message.unwrap_or_default())
                        }}
                    </p>
                }.into_any(),
                Some(Err(e)) => view! { <ErrorNotice error=e/> }.into_any(),
                None => ().into_any(),
            }}
            <Transition fallback=|| view! { <Loading what="clusters"/> }>
                <ErrorBoundary fallback=error_fallback>
                    {move || Suspend::new(async move {
                        let list = clusters.await?;
                        Ok::<_, AppError>(view! {
                            <table id="clusters" class="table">
                                <thead><tr><th>"Name"</th><th>"Access"</th><th>"API server"</th><th>"Added by"</th><th>"Added"</th><th></th></tr></thead>
                                <tbody>{list.into_iter().map(|c| {
                                    let (for_check, for_remove) = (c.name.clone(), c.name.clone());
                                    view! {
                                        <tr>
                                            <td><code>{c.name.clone()}</code></td>
                                            <td>{c.source.as_str()}</td>
                                            <td>{c.server.clone().unwrap_or_else(|| "—".into())}</td>
                                            <td>{c.created_by.clone().unwrap_or_else(|| "—".into())}</td>
                                            <td>{format_time(&c.created_at)}</td>
                                            <td>
                                                <button class="small" on:click=move |_| { check.dispatch(CheckCluster { name: for_check.clone() }); }>"Check"</button>
                                                <button class="danger small" on:click=move |_| { remove.dispatch(RemoveCluster { name: for_remove.clone() }); }>"Remove"</button>
                                            </td>
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
