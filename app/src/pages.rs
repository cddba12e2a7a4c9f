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

