//! Build logs at the HTTP edge:
//!
//! - `GET /ws/builds/{build}/logs?run=<run_id>&after=<seq>`: a websocket
//!   following a run (the build's newest run by default): the backlog from
//!   the database, then live lines, each exactly once and in order, as JSON
//!   text frames ([`LogStreamMessage`]): `{"type":"lines","lines":[…]}`, and
//!   when the run is over `{"type":"end","status":…,"error_code":…,
//!   "error_message":…}` followed by a Close frame with code 1000. A follower
//!   that falls too far behind is closed with code 1008 and a reason telling
//!   it to reconnect with `after=<last seq>`. The server pings every 20 s.
//!   An unknown build or run is a 404 with a JSON [`AppError`] before any
//!   upgrade; bad parameters a 422 naming the parameter. A user may hold at
//!   most 20 followers and a build have at most 200 (per server process;
//!   `slipway_model::limits`); one more is a 429 naming the limit.
//! - `GET /api/builds/{build}/logs?run=&after=&limit=&q=`: one [`LogPage`]
//!   as JSON (limit 1000 by default, at most 10 000; `q` is a
//!   case-insensitive search in the text without ANSI codes).
//! - `GET /builds/{build}/logs.txt?run=`: the whole log as a plain-text
//!   download, each line `[HH:MM:SS] text` with ANSI codes stripped.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use slipway_engine::logs::{FollowEvent, Follower};
use slipway_engine::Store;
use slipway_model::id::{self, BUILD, RUN};
use slipway_model::logs::{text_line, LogPage, LogStreamMessage, DEFAULT_PAGE, MAX_PAGE};
use slipway_model::AppError;
use tokio::time::Instant;

use crate::authz::Caller;
use crate::problem::ApiError;
use crate::http::AppState;

/// How often the server pings a follower.
const PING_EVERY: Duration = Duration::from_secs(20);
/// A follower that answers no ping for this long is gone.
const PONG_TIMEOUT: Duration = Duration::from_secs(60);
/// A frame that cannot be written for this long means a client not reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines per database read of the text download.
const TEXT_PAGE: i64 = 5000;

/// The query parameters of the log endpoints, checked.
#[derive(Debug, Default)]
struct LogParams {
    run: Option<String>,
    after: Option<i64>,
    limit: i64,
    q: Option<String>,
}

impl LogParams {
    fn parse(query: Result<Query<HashMap<String, String>>, QueryRejection>) -> Result<LogParams, AppError> {
        let Query(map) = query.map_err(|e| AppError::invalid("query", e.body_text()))?;
        let nonempty = |k: &str| map.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let run = match nonempty("run") {
            Some(r) => {
                id::parse_expect(RUN, r).map_err(|e| AppError::invalid("run", e.to_string()))?;
                Some(r.to_string())
            }
            None => None,
        };
        let after = match nonempty("after") {
            Some(a) => match a.parse::<i64>() {
                Ok(n) if n >= -1 => Some(n).filter(|n| *n >= 0),
                _ => return Err(AppError::invalid("after", format!("`{a}` is not a sequence number (an integer ≥ 0, or -1 for the start)"))),
            },
            None => None,
        };
        let limit = match nonempty("limit") {
            Some(l) => match l.parse::<i64>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => return Err(AppError::invalid("limit", format!("`{l}` is not a number of lines between 1 and {MAX_PAGE}"))),
            },
            None => DEFAULT_PAGE,
        };
        let q = nonempty("q").map(str::to_string);
        Ok(LogParams { run, after, limit, q })
    }
}

/// The run to read: `run` when given (it must belong to the build), else the
/// build's newest run. Unknown build or run, or a build without runs: not
/// found; a caller who may not read the build's project: as the table says.
async fn resolve_run(state: &AppState, caller: &Caller, build: &str, run: Option<&str>) -> Result<(String, slipway_app::auth::Guard), ApiError> {
    let store: &Store = &state.store;
    let build = build.trim();
    id::parse_expect(BUILD, build).map_err(|e| AppError::invalid("build", e.to_string()))?;
    let not_found = || AppError::not_found(format!("build `{build}`"));
    let spec = store.get_build_spec(build).await.map_err(|_| not_found())?;
    let guard = caller.project(&spec.project_id, not_found).await?;
    match run {
        Some(run_id) => {
            let run = store.get_run(run_id).await?;
            if run.build_id != build {
                return Err(AppError::not_found(format!("run `{run_id}` of build `{build}`")).into());
            }
            Ok((run.id, guard))
        }
        None => match store.latest_run_id(build).await? {
            Some(run) => Ok((run, guard)),
            None => Err(AppError::not_found(format!("a run of build `{build}` (it has not run yet)")).into()),
        },
    }
}

/// `GET /ws/builds/{build}/logs?run=&after=`: follows a run over a websocket.
#[tracing::instrument(skip_all, fields(build = %build))]
pub async fn follow_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(build): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let params = match LogParams::parse(query) {
        Ok(p) => p,
        Err(e) => return ApiError(e).into_response(),
    };
    let (run_id, guard) = match resolve_run(&state, &caller, &build, params.run.as_deref()).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    // Counted from before the upgrade until the socket closes.
    let slot = match guard.user().and_then(|p| state.edge.follower_slot(&p.user.id, build.trim())) {
        Ok(slot) => slot,
        Err(e) => return ApiError(e).into_response(),
    };
    let hub = state.log_hub.clone();
    let after = params.after;
    upgrade.on_upgrade(move |socket| async move {
        tracing::debug!(run = %run_id, ?after, "log follower connected");
        let follower = hub.follow(&run_id, after);
        stream(socket, follower).await;
        drop(slot);
    })
}

/// Why a websocket loop stopped.
enum Stop {
    /// Send this Close frame, then wait briefly for the client's.
    Close(u16, String),
    /// The connection is unusable; just drop it.
    Drop,
}

async fn send(socket: &mut WebSocket, msg: Message) -> Result<(), Stop> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "log follower went away");
            Err(Stop::Drop)
        }
        Err(_) => {
            tracing::info!("log follower did not read for {}s; dropping it", SEND_TIMEOUT.as_secs());
            Err(Stop::Drop)
        }
    }
}

async fn send_json(socket: &mut WebSocket, msg: &LogStreamMessage) -> Result<(), Stop> {
    match serde_json::to_string(msg) {
        Ok(text) => send(socket, Message::Text(text.into())).await,
        Err(e) => {
            tracing::error!(error = %e, "encoding a log message");
            Err(Stop::Close(close_code::ERROR, "internal error encoding the log".into()))
        }
    }
}

/// What the follower's next event means for the socket.
async fn forward(socket: &mut WebSocket, event: Option<FollowEvent>) -> Result<(), Stop> {
    match event {
        Some(FollowEvent::Lines(lines)) => send_json(socket, &LogStreamMessage::Lines { lines }).await,
        Some(FollowEvent::End { status, error_code, error_message }) => {
            send_json(socket, &LogStreamMessage::End { status, error_code, error_message }).await?;
            Err(Stop::Close(close_code::NORMAL, format!("run {status}")))
        }
        Some(FollowEvent::TooSlow { last_seq, max_lag, .. }) => Err(Stop::Close(
            close_code::POLICY,
            format!("too slow: follower fell more than {max_lag} lines behind; reconnect with after={}", last_seq.unwrap_or(-1)),
        )),
        None => Err(Stop::Close(close_code::AWAY, "the log stream ended: the run is gone or the server is stopping".into())),
    }
}

/// Pumps a follower into a websocket, with ping/pong keepalive.
async fn stream(mut socket: WebSocket, mut follower: Follower) {
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_heard = Instant::now();
    let stop = loop {
        // `Follower::next` and `WebSocket::recv` are cancel-safe.
        let step = tokio::select! {
            event = follower.next() => forward(&mut socket, event).await,
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None => Err(Stop::Drop),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "log follower connection failed");
                    Err(Stop::Drop)
                }
                Some(Ok(_)) => {
                    last_heard = Instant::now();
                    Ok(())
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > PONG_TIMEOUT {
                    tracing::info!("log follower answered no ping for {}s; dropping it", PONG_TIMEOUT.as_secs());
                    Err(Stop::Drop)
                } else {
                    send(&mut socket, Message::Ping(Bytes::from_static(b"slipway"))).await
                }
            }
        };
        if let Err(stop) = step {
            break stop;
        }
    };
    if let Stop::Close(code, reason) = stop {
        tracing::debug!(run = %follower.run_id(), code, %reason, "closing the log stream");
        let frame = CloseFrame { code, reason: reason.into() };
        if send(&mut socket, Message::Close(Some(frame))).await.is_ok() {
            // Give the client a moment to answer the close handshake.
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while let Some(Ok(msg)) = socket.recv().await {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }
}

/// `GET /api/builds/{build}/logs?run=&after=&limit=&q=`: one page of a run's log.
#[tracing::instrument(skip_all, fields(build = %build))]
pub async fn log_page(
    State(state): State<AppState>,
    caller: Caller,
    Path(build): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<LogPage>, ApiError> {
    let params = LogParams::parse(query)?;
    let (run_id, _) = resolve_run(&state, &caller, &build, params.run.as_deref()).await?;
    let page = state.store.log_page(&run_id, params.after, params.limit, params.q.as_deref()).await?;
    Ok(Json(page))
}

/// `GET /builds/{build}/logs.txt?run=`: the whole log as text, streamed page by page.
#[tracing::instrument(skip_all, fields(build = %build))]
pub async fn log_text(
    State(state): State<AppState>,
    caller: Caller,
    Path(build): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = LogParams::parse(query)?;
    let (run_id, _) = resolve_run(&state, &caller, &build, params.run.as_deref()).await?;
    let store = state.store.clone();
    let filename = format!("{}-{run_id}.log", build.trim());
    let pages = futures::stream::try_unfold((store, run_id, Some(-1i64)), |(store, run_id, after)| async move {
        let Some(after) = after else { return Ok(None) };
        let lines = store.logs_after(&run_id, Some(after), TEXT_PAGE).await.map_err(|e| {
            tracing::error!(error = %e, run = %run_id, "reading the log for a download");
            std::io::Error::other("the log could not be read to the end")
        })?;
        let next = (lines.len() as i64 == TEXT_PAGE).then(|| lines.last().map(|l| l.seq)).flatten();
        let mut text = String::with_capacity(lines.len() * 80);
        for l in &lines {
            text.push_str(&text_line(l));
            text.push('\n');
        }
        Ok::<_, std::io::Error>(Some((Bytes::from(text), (store, run_id, next))))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
        ],
        Body::from_stream(pages),
    )
        .into_response())
}
