//! The live build log: follows `/ws/builds/{build}/logs` (backlog, then live
//! lines, resuming from the last sequence number after a reconnect), groups
//! lines into collapsible step sections with duration and a cached badge,
//! renders ANSI colours, searches, links every line (`#L<seq>`), follows the
//! tail until the user scrolls up, and renders only the rows in view so
//! 100,000 lines stay smooth.

use std::collections::HashSet;

use leptos::prelude::*;
use slipway_model::logs::LogLine;

/// Height of one row in pixels (CSS `.log-row` must match).
const ROW: f64 = 20.0;
/// Rows rendered beyond the visible ones, above and below.
const OVERSCAN: usize = 30;

/// A section of the log: one build step, or one phase's own lines.
#[derive(Clone, Debug, PartialEq)]
struct Section {
    key: String,
    title: String,
    first: usize,
    lines: Vec<usize>,
    state: StepState,
}

#[derive(Clone, Debug, PartialEq)]
enum StepState {
    Running,
    Done(Option<String>),
    Cached,
    Failed,
}

/// What one rendered row is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Row {
    Header(usize),
    Line(usize),
}

fn section_key(l: &LogLine) -> String {
    match &l.step {
        Some(step) => format!("step:{step}"),
        None => format!("phase:{}", l.phase),
    }
}

/// Groups lines (in seq order) into sections, in order of first appearance.
fn sections(lines: &[LogLine]) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, l) in lines.iter().enumerate() {
        let key = section_key(l);
        let si = match index.get(&key) {
            Some(&si) if out.last().map(|s| s.key == key).unwrap_or(false) || l.step.is_some() => si,
            _ => {
                out.push(Section {
                    key: key.clone(),
                    title: l.step.clone().unwrap_or_else(|| l.phase.clone()),
                    first: i,
                    lines: Vec::new(),
                    state: if l.step.is_some() { StepState::Running } else { StepState::Done(None) },
                });
                index.insert(key, out.len() - 1);
                out.len() - 1
            }
        };
        let s = &mut out[si];
        s.lines.push(i);
        if l.step.is_some() && l.stream == "system" {
            let text = l.line.trim();
            if let Some(rest) = text.strip_prefix('✓') {
                s.state = if rest.contains("(cached)") {
                    StepState::Cached
                } else {
                    StepState::Done(rest.rsplit_once('(').map(|(_, d)| d.trim_end_matches(')').to_string()))
                };
            } else if text.starts_with('✗') {
                s.state = StepState::Failed;
            }
        }
    }
    out
}

/// The log of one run of a build, live while it runs.
#[component]
pub fn LogViewer(#[prop(into)] build_id: String, #[prop(into)] run: Signal<Option<String>>) -> impl IntoView {
    let lines: RwSignal<Vec<LogLine>> = RwSignal::new(Vec::new());
    let ended: RwSignal<Option<String>> = RwSignal::new(None);
    let conn_note: RwSignal<Option<String>> = RwSignal::new(None);
    let collapsed: RwSignal<HashSet<String>> = RwSignal::new(HashSet::new());
    let query = RwSignal::new(String::new());
    let follow = RwSignal::new(true);
    // Where the last automatic scroll put the view; only a user scrolling
    // above it pauses following (appended rows alone never do).
    let auto_top = StoredValue::new(0.0f64);
    let scroll_top = RwSignal::new(0.0f64);
    let viewport = RwSignal::new(480.0f64);
    let container: NodeRef<leptos::html::Div> = NodeRef::new();

    // (Re)connect whenever the run changes; only in the browser.
    let build = build_id;
    let build_for_ws = build.clone();
    Effect::new(move |_| {
        let run_id = run.get();
        lines.set(Vec::new());
        ended.set(None);
        #[cfg(feature = "hydrate")]
        client::connect(build_for_ws.clone(), run_id, lines, ended, conn_note);
        #[cfg(not(feature = "hydrate"))]
        let _ = (&build_for_ws, run_id);
    });

    let secs = Memo::new(move |_| lines.with(|l| sections(l)));
    let rows = Memo::new(move |_| {
        let q = query.get().to_lowercase();
        let collapsed = collapsed.get();
        lines.with(|all| {
            let mut rows = Vec::new();
            for (si, s) in secs.read().iter().enumerate() {
                let matching: Vec<usize> = if q.is_empty() {
                    s.lines.clone()
                } else {
                    s.lines.iter().copied().filter(|&i| slipway_model::ansi::strip(&all[i].line).to_lowercase().contains(&q)).collect()
                };
                if !q.is_empty() && matching.is_empty() {
                    continue;
                }
                rows.push(Row::Header(si));
                if q.is_empty() && collapsed.contains(&s.key) {
                    continue;
                }
                rows.extend(matching.into_iter().map(Row::Line));
            }
            rows
        })
    });

    // Scroll to the last row once the browser has laid out the rows just
    // rendered: scrolling at once can run before the list has grown, so the
    // browser clamps the position and the view is left a batch above the tail
    // (at the end of a build no further batch comes to fix it).
    let scroll_to_end = move || {
        request_animation_frame(move || {
            if !follow.get_untracked() {
                return;
            }
            if let Some(el) = container.get_untracked() {
                el.set_scroll_top(el.scroll_height());
                auto_top.set_value(el.scroll_top() as f64);
            }
        })
    };

    // Follow the tail: after new rows arrive, scroll to the bottom unless paused.
    Effect::new(move |_| {
        rows.track();
        if follow.get_untracked() {
            scroll_to_end();
        }
    });

    let on_scroll = move |_| {
        if let Some(el) = container.get_untracked() {
            let top = el.scroll_top() as f64;
            let height = el.client_height() as f64;
            scroll_top.set(top);
            viewport.set(height.max(ROW));
            let at_bottom = top + height + ROW * 2.0 >= el.scroll_height() as f64;
            let scrolled_up = top + ROW < auto_top.get_value();
            if at_bottom && !follow.get_untracked() {
                follow.set(true);
            } else if scrolled_up && follow.get_untracked() {
                follow.set(false);
            }
            if at_bottom {
                auto_top.set_value(top);
            }
        }
    };

    let visible = move || {
        let rows = rows.read();
        let first = ((scroll_top.get() / ROW) as usize).saturating_sub(OVERSCAN);
        let count = (viewport.get() / ROW) as usize + 2 * OVERSCAN;
        let last = (first + count).min(rows.len());
        (first, rows[first.min(last)..last].to_vec(), rows.len())
    };

    view! {
        <section class="panel log-panel">
            <div class="log-toolbar">
                <h2>"Log"</h2>
                <span id="log-count" class="muted small">{move || format!("{} lines", lines.read().len())}</span>
                <input
                    id="log-search"
                    type="search"
                    placeholder="Search the log"
                    prop:value=move || query.get()
                    on:input=move |ev| query.set(event_target_value(&ev))
                />
                <a class="small" href=format!("/builds/{build}/logs.txt") download>"Download"</a>
                {move || (!follow.get()).then(|| view! {
                    <button class="secondary small" id="log-follow" on:click=move |_| {
                        follow.set(true);
                        scroll_to_end();
                    }>"Follow ↓"</button>
                })}
                {move || conn_note.get().map(|n| view! { <span class="muted small">{n}</span> })}
            </div>
            <div class="log" id="log" node_ref=container on:scroll=on_scroll>
                {move || {
                    let (first, slice, total) = visible();
                    let secs = secs.read();
                    let all = lines.read();
                    let collapsed_now = collapsed.get();
                    let pad_top = first as f64 * ROW;
                    let pad_bottom = (total.saturating_sub(first + slice.len())) as f64 * ROW;
                    view! {
                        <div style=format!("height:{pad_top}px")></div>
                        {slice.into_iter().map(|row| match row {
                            Row::Header(si) => {
                                let s = secs[si].clone();
                                let key = s.key.clone();
                                let open = !collapsed_now.contains(&s.key);
                                let (badge, class) = match &s.state {
                                    StepState::Running => ("running".to_string(), "badge live"),
                                    StepState::Done(Some(d)) => (d.clone(), "badge ok"),
                                    StepState::Done(None) => (String::new(), ""),
                                    StepState::Cached => ("cached".to_string(), "badge muted"),
                                    StepState::Failed => ("failed".to_string(), "badge bad"),
                                };
                                view! {
                                    <div class="log-row log-step" data-step=s.title.clone() on:click=move |_| collapsed.update(|c| { if !c.remove(&key) { c.insert(key.clone()); } })>
                                        <span class="caret">{if open { "▾" } else { "▸" }}</span>
                                        <span class="step-title">{s.title.clone()}</span>
                                        {(!badge.is_empty()).then(|| view! { <span class=class>{badge}</span> })}
                                        <span class="muted small">{format!("{} lines", s.lines.len())}</span>
                                    </div>
                                }.into_any()
                            }
                            Row::Line(i) => {
                                let l = &all[i];
                                let time = l.ts.format("%H:%M:%S").to_string();
                                view! {
                                    <div class=format!("log-row log-line {}", l.stream) id=format!("L{}", l.seq)>
                                        <a class="ln" href=format!("#L{}", l.seq)>{l.seq}</a>
                                        <span class="ts">{time}</span>
                                        <span class="text">
                                            {slipway_model::ansi::spans(&l.line).into_iter().map(|(c, t)| view! { <span class=c>{t}</span> }).collect_view()}
                                        </span>
                                    </div>
                                }.into_any()
                            }
                        }).collect_view()}
                        <div style=format!("height:{pad_bottom}px")></div>
                    }
                }}
            </div>
            {move || ended.get().map(|status| view! { <p class="muted small" id="log-end">{format!("Run ended: {status}")}</p> })}
        </section>
    }
}

#[cfg(feature = "hydrate")]
mod client {
    use leptos::prelude::*;
    use slipway_model::logs::LogLine;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;

    #[derive(serde::Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Message {
        Lines { lines: Vec<LogLine> },
        End { status: String },
    }

    /// Opens the websocket; on an unexpected close, reconnects after a pause
    /// from the last sequence number received.
    pub fn connect(
        build: String,
        run: Option<String>,
        lines: RwSignal<Vec<LogLine>>,
        ended: RwSignal<Option<String>>,
        note: RwSignal<Option<String>>,
    ) {
        let Some(window) = web_sys::window() else { return };
        let location = window.location();
        let proto = if location.protocol().unwrap_or_default() == "https:" { "wss" } else { "ws" };
        let host = location.host().unwrap_or_default();
        let after = lines.with_untracked(|l| l.last().map(|l| l.seq));
        let mut url = format!("{proto}://{host}/ws/builds/{build}/logs?");
        if let Some(run) = &run {
            url.push_str(&format!("run={run}&"));
        }
        if let Some(after) = after {
            url.push_str(&format!("after={after}"));
        }
        let Ok(ws) = web_sys::WebSocket::new(&url) else {
            note.set(Some("could not open the log stream".into()));
            return;
        };
        let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
            let Some(text) = ev.data().as_string() else { return };
            match serde_json::from_str::<Message>(&text) {
                Ok(Message::Lines { lines: new }) => lines.update(|l| {
                    let last = l.last().map(|x| x.seq);
                    l.extend(new.into_iter().filter(|x| last.is_none_or(|s| x.seq > s)));
                }),
                Ok(Message::End { status }) => ended.set(Some(status)),
                Err(_) => {}
            }
        });
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
        let on_open = Closure::<dyn FnMut()>::new(move || note.set(None));
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        on_open.forget();
        let on_close = Closure::<dyn FnMut(web_sys::CloseEvent)>::new(move |ev: web_sys::CloseEvent| {
            if ended.get_untracked().is_some() || ev.code() == 1000 {
                return;
            }
            note.set(Some(format!("log stream closed ({}); reconnecting…", ev.reason())));
            let (build, run) = (build.clone(), run.clone());
            set_timeout(move || connect(build, run, lines, ended, note), std::time::Duration::from_millis(1000));
        });
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        on_close.forget();
    }
}
