//! Small shared components: error display, loading states, timestamps.

use leptos::prelude::*;
use slipway_model::{AppError, ErrorCode};

/// Shows an [`AppError`]: its sentence and, when there are any, every field problem.
#[component]
pub fn ErrorNotice(error: AppError) -> impl IntoView {
    let title = match error.code {
        ErrorCode::InvalidInput => "Please correct the input",
        ErrorCode::NotFound => "Not found",
        ErrorCode::Conflict => "Conflict",
        ErrorCode::Unauthenticated => "Please log in",
        ErrorCode::Forbidden => "Not allowed",
        ErrorCode::RateLimited => "Too many attempts",
        ErrorCode::TooLarge => "Too large",
        ErrorCode::Unavailable => "Temporarily unavailable",
        ErrorCode::Internal => "Something went wrong on the server",
        ErrorCode::Transport => "Could not reach Slipway",
    };
    let problems = error.problems.clone();
    view! {
        <div class="error" role="alert">
            <strong>{title}</strong>
            {(error.code == ErrorCode::Unauthenticated).then(|| view! { " " <a href="/login">"Log in"</a> })}
            {if problems.is_empty() {
                view! { <p>{error.message.clone()}</p> }.into_any()
            } else {
                view! {
                    <ul>
                        {problems
                            .into_iter()
                            .map(|p| view! { <li><code>{p.field}</code>": "{p.message}</li> })
                            .collect_view()}
                    </ul>
                }
                    .into_any()
            }}
        </div>
    }
}

/// Fallback for an [`ErrorBoundary`]: renders every error, as an [`AppError`] when it is one.
pub fn error_fallback(errors: ArcRwSignal<Errors>) -> impl IntoView {
    view! {
        <div class="errors">
            {move || {
                errors
                    .get()
                    .into_iter()
                    .map(|(_, e)| {
                        let app = e
                            .downcast_ref::<AppError>()
                            .cloned()
                            .unwrap_or_else(|| AppError::internal(e.to_string()));
                        view! { <ErrorNotice error=app/> }
                    })
                    .collect_view()
            }}
        </div>
    }
}

/// A loading line for `Suspense` fallbacks.
#[component]
pub fn Loading(#[prop(into)] what: String) -> impl IntoView {
    view! { <p class="loading" aria-busy="true">"Loading "{what}"…"</p> }
}

/// A UTC timestamp, short and sortable.
pub fn format_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A signal that ticks every `ms` in the browser (never on the server), for
/// pages that refresh themselves while work is in progress.
pub fn ticker(ms: u64) -> ReadSignal<u64> {
    let (tick, set_tick) = signal(0u64);
    Effect::new(move |_| {
        let _ = set_interval_with_handle(move || set_tick.update(|t| *t += 1), std::time::Duration::from_millis(ms));
    });
    tick
}
