//! Pages of areas whose behaviour lands in later work; each tells the truth
//! about what is there now.

use leptos::prelude::*;
use leptos_meta::Title;

/// Shown for any unknown path.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
            res.set_status(axum::http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <Title text="Not found"/>
        <h1>"Page not found"</h1>
        <p><a href="/projects">"Back to projects"</a></p>
    }
}

#[component]
fn Planned(title: &'static str, text: &'static str) -> impl IntoView {
    view! {
        <Title text=title/>
        <header class="page-header"><h1>{title}</h1></header>
        <section class="panel"><p class="empty">{text}</p></section>
    }
}

#[component]
pub fn ReleasesPage() -> impl IntoView {
    view! { <Planned title="Releases" text="No releases yet: releases need completed builds."/> }
}

#[component]
pub fn EnvironmentsPage() -> impl IntoView {
    view! { <Planned title="Environments" text="No environments yet: promotion is not available in this version."/> }
}
