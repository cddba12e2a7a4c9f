//! Slipway's dashboard: Leptos components and the server functions they call.
//! The same server functions are the HTTP API scripts and the CLI use; every
//! one has a stable endpoint under `/api/`.

pub mod account;
pub mod auth;
pub mod base_images;
pub mod clusters;
pub mod builds;
pub mod components;
pub mod logview;
pub mod pages;
pub mod pipelines;
pub mod projects;
pub mod registries;
pub mod releases;
#[cfg(feature = "ssr")]
pub mod server;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::path;

/// The name wasm-bindgen output and the stylesheet are published under (`/pkg/slipway.js`).
pub const OUTPUT_NAME: &str = "slipway";

/// The HTML document the server renders around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The dashboard: layout, navigation and routes.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Marks the page as interactive once the wasm has taken over; effects only
    // run in the browser, so a server-rendered page never carries the mark.
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(body) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.body()) {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Stylesheet id="slipway" href="/pkg/slipway.css"/>
        <Title formatter=|text| format!("{text} · Slipway")/>
        <Router>
            <div class="layout">
                <nav class="sidebar" aria-label="Main">
                    <a class="brand" href="/"><img src="/favicon.svg" alt="" width="22" height="22"/>"Slipway"</a>
                    <A href="/projects">"Projects"</A>
                    <A href="/builds">"Builds"</A>
                    <A href="/releases">"Releases"</A>
                    <A href="/environments">"Environments"</A>
                    <A href="/audit">"Audit"</A>
                    <A href="/base-images">"Allowed images"</A>
                    <A href="/clusters">"Clusters"</A>
                    <UserMenu/>
                </nav>
                <main class="content">
                    <Routes fallback=|| view! { <pages::NotFound/> }>
                        <Route path=path!("/") view=projects::ProjectsPage/>
                        <Route path=path!("/projects") view=projects::ProjectsPage/>
                        <Route path=path!("/projects/:project") view=projects::ProjectPage/>
                        <Route path=path!("/builds") view=builds::BuildsPage/>
                        <Route path=path!("/builds/:build") view=builds::BuildPage/>
                        <Route path=path!("/releases") view=releases::ReleasesPage/>
                        <Route path=path!("/environments") view=releases::EnvironmentsPage/>
                        <Route path=path!("/login") view=account::LoginPage/>
                        <Route path=path!("/setup") view=account::SetupPage/>
                        <Route path=path!("/account") view=account::AccountPage/>
                        <Route path=path!("/audit") view=account::AuditPage/>
                        <Route path=path!("/base-images") view=base_images::BaseImagesPage/>
                        <Route path=path!("/clusters") view=clusters::ClustersPage/>
                        <Route path=path!("/pipelines/:run") view=pipelines::PipelineRunPage/>
                    </Routes>
                </main>
            </div>
        </Router>
    }
}

/// Who is logged in, with Account and Log out; or a Log in link.
#[component]
fn UserMenu() -> impl IntoView {
    let logout = ServerAction::<account::Logout>::new();
    let user = Resource::new(move || logout.version().get(), |_| account::me());
    Effect::new(move |_| {
        if let Some(Ok(())) = logout.value().get() {
            #[cfg(feature = "hydrate")]
            if let Some(w) = web_sys::window() {
                let _ = w.location().set_href("/login");
            }
        }
    });
    view! {
        <div class="user-menu">
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match user.await {
                        Ok(Some(u)) => view! {
                            <span id="current-user" class="who">{u.username.clone()}</span>
                            <A href="/account">"Account"</A>
                            <button class="link" id="logout" on:click=move |_| { logout.dispatch(account::Logout {}); }>"Log out"</button>
                        }.into_any(),
                        _ => view! { <A href="/login">"Log in"</A> }.into_any(),
                    }
                })}
            </Suspense>
        </div>
    }
}
