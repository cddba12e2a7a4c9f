//! Logs: how fast the log writer stores lines ([`start_writer`], at full
//! speed and at a sustained offered rate), the latency of a line from the
//! producer to 100 websocket followers through the real router and log hub,
//! and the same machine's floor: a bare axum websocket broadcast fed by a
//! `tokio::sync::broadcast` channel, without Slipway.
//!
//! Everything runs in this process on loopback, so a line's `ts` (taken by
//! [`LogSink::line`], or by the floor's producer) and the follower's receive
//! time come from the same clock. Lines are produced on a steady
//! `tokio::time::interval` (a batch of lines every [`TICK`]), never by
//! sleeping per line.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use leptos::config::LeptosOptions;
use serde::Deserialize;
use slipway_engine::logs::{start_writer, LogSink, Masker, Phase, Stream, LOGS_CHANNEL};
use slipway_engine::builds::{RunOutcome, SpecInsert};
use slipway_engine::Store;
use slipway_model::auth::{NewToken, Principal};
use slipway_model::logs::{LogLine, LogStreamMessage};
use slipway_model::project::NewProject;
use slipway_model::status::BuildRunStatus;
use slipway_server::{app, AppState};
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::{fresh_store, percentile};

/// Bytes of text per produced line.
const LINE_BYTES: usize = 80;
/// Lines stored as fast as the writer takes them.
const FULL_SPEED_LINES: usize = 200_000;
/// The producer's period: every tick it emits one batch of lines.
const TICK: Duration = Duration::from_millis(10);
/// Offered rate of the sustained ingest, lines per second.
const SUSTAINED_RATE: usize = 20_000;
/// Length of the sustained ingest and of each latency run.
const RUN_FOR: Duration = Duration::from_secs(5);
/// Websocket followers of one run (and of the floor's broadcast).
const FOLLOWERS: usize = 100;
/// Offered rate while followers watch, lines per second.
const FOLLOW_RATE: usize = 10_000;
/// Batches the floor's broadcast channel holds for its slowest receiver.
const FLOOR_CHANNEL: usize = 2048;
/// Longest a follower waits for its next frame before giving up.
const FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// Worker name the benchmark claims its runs as.
const WORKER: &str = "bench-logs";
/// The step every produced line belongs to.
const STEP: &str = "[build 1/1] RUN cargo build --release";
/// A secret the masker looks for in every line (it never occurs).
const SECRET: &str = "bench-secret-4f1c9a";

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Lines per tick at `rate` lines per second.
fn per_tick(rate: usize) -> usize {
    (rate as f64 * TICK.as_secs_f64()).round() as usize
}

/// Ticks in [`RUN_FOR`].
fn ticks() -> usize {
    (RUN_FOR.as_secs_f64() / TICK.as_secs_f64()).round() as usize
}

/// Line `n` of the produced output: compiler-like text of exactly [`LINE_BYTES`] ASCII bytes.
fn line_text(n: usize) -> String {
    let mut s = format!("{n:>8}   Compiling crate-{:05} v0.{}.{} (/src/crates/crate-{:05})", n % 100_000, n % 13, n % 7, n % 100_000);
    s.truncate(LINE_BYTES);
    while s.len() < LINE_BYTES {
        s.push('.');
    }
    s
}

/// One project and build spec whose runs carry the benchmark's logs.
struct Fixture {
    store: Store,
    build_id: String,
}

impl Fixture {
    async fn new(store: Store) -> anyhow::Result<Fixture> {
        let project = store
            .create_project(&NewProject { name: "bench-logs".into(), repo_url: "https://example.com/bench-logs.git".into(), ..Default::default() }, None)
            .await?;
        let (sha, hash) = ("c".repeat(40), "d".repeat(64));
        store.record_manifest(&project.id, &sha, &hash, "services: {}\n", &serde_json::json!({})).await?;
        let (spec, _) = store
            .create_build_spec(&SpecInsert {
                project_id: project.id,
                git_sha: sha,
                manifest_hash: hash,
                services: None,
                inputs: serde_json::json!({}),
                registry: None,
                cache: None,
                build_args: Default::default(),
                force_rebuild: false,
                idempotency_key: None,
                created_by: None,
            })
            .await?;
        Ok(Fixture { store, build_id: spec.id })
    }

    /// A new run of the build, claimed by [`WORKER`] (running, as while a build writes its log).
    async fn start_run(&self) -> anyhow::Result<String> {
        let run = self.store.enqueue_run(&self.build_id, None, false).await?;
        let claimed = self
            .store
            .claim_run(WORKER, Duration::from_secs(600), "bench")
            .await?
            .ok_or_else(|| anyhow::anyhow!("the run just queued could not be claimed"))?;
        anyhow::ensure!(claimed.run.id == run.id, "claimed run {} instead of {}", claimed.run.id, run.id);
        Ok(run.id)
    }

    /// Marks a run completed (followers get their `end` frame).
    async fn finish(&self, run_id: &str) -> anyhow::Result<()> {
        let done = self.store.finish_run(run_id, WORKER, &RunOutcome::Completed { reused_from: None }).await?;
        anyhow::ensure!(done, "run {run_id} could not be finished");
        Ok(())
    }
}

/// Where the steady producer sends its lines.
enum Target<'a> {
    /// Slipway: one [`LogSink::line`] call per line.
    Sink(&'a LogSink),
    /// The floor: one JSON `lines` message per tick, broadcast.
    Floor(&'a broadcast::Sender<FloorEvent>),
}

/// What the steady producer measured.
struct Produced {
    /// When the first tick started.
    started: Instant,
    /// When the last line had been handed over.
    finished: Instant,
    lines: usize,
    /// When each tick started (the lines of tick `k` follow the warm-up ones, `per_tick` each).
    tick_starts: Vec<Instant>,
    /// The longest a single hand-over took (back-pressure from the writer).
    max_wait: Duration,
}

impl Produced {
    /// Lines offered per second: the last tick counts as one whole [`TICK`],
    /// so a producer on schedule offers exactly its nominal rate.
    fn rate(&self) -> f64 {
        self.lines as f64 / (self.finished - self.started + TICK).as_secs_f64()
    }
}

/// Produces `per_tick` lines every [`TICK`] for `ticks` ticks, numbering texts from `first`.
/// Missed ticks are made up at once, so the offered rate holds on average.
async fn produce_steady(target: Target<'_>, per_tick: usize, ticks: usize, first: usize, produced: &AtomicI64) -> anyhow::Result<Produced> {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut tick_starts = Vec::with_capacity(ticks);
    let mut max_wait = Duration::ZERO;
    let mut n = first;
    let mut started = None;
    for _ in 0..ticks {
        interval.tick().await;
        let now = Instant::now();
        started.get_or_insert(now);
        tick_starts.push(now);
        match &target {
            Target::Sink(sink) => {
                for _ in 0..per_tick {
                    let text = line_text(n);
                    let before = Instant::now();
                    sink.line(Phase::Build, Some(STEP), Stream::Stdout, &text).await;
                    max_wait = max_wait.max(before.elapsed());
                    produced.fetch_add(1, Ordering::AcqRel);
                    n += 1;
                }
            }
            Target::Floor(tx) => {
                let lines: Vec<LogLine> = (0..per_tick).map(|i| floor_line((n + i) as i64, line_text(n + i))).collect();
                let text = serde_json::to_string(&LogStreamMessage::Lines { lines })?;
                let before = Instant::now();
                // No receiver left is not an error here: the followers' reports tell.
                let _ = tx.send(FloorEvent::Batch(Utf8Bytes::from(text)));
                max_wait = max_wait.max(before.elapsed());
                produced.fetch_add(per_tick as i64, Ordering::AcqRel);
                n += per_tick;
            }
        }
    }
    let finished = Instant::now();
    Ok(Produced { started: started.unwrap_or(finished), finished, lines: n - first, tick_starts, max_wait })
}

/// A floor line as Slipway would send it, stamped now.
fn floor_line(seq: i64, line: String) -> LogLine {
    LogLine { seq, ts: Utc::now(), phase: "build".into(), step: Some(STEP.into()), stream: "stdout".into(), line }
}

/// The one-minute load average (Linux), or `?`: numbers taken on a busy machine are not comparable.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// CPU time so far, from `/proc` (Linux; clock ticks of 1/100 s): this
/// process (user + system) and the whole machine's busy time (all CPUs,
/// everything but idle and I/O wait). `None` elsewhere.
#[derive(Clone, Copy)]
struct CpuTimes {
    process: f64,
    machine: f64,
    at: Instant,
}

impl CpuTimes {
    fn now() -> Option<CpuTimes> {
        const TICKS: f64 = 100.0;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name: state is field 3, utime 14, stime 15.
        let after = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        let machine = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<f64> = machine.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
        let total: f64 = cpu.iter().take(8).sum();
        let idle = cpu.get(3)? + cpu.get(4)?;
        Some(CpuTimes { process: (utime + stime) / TICKS, machine: (total - idle) / TICKS, at: Instant::now() })
    }

    /// CPUs kept busy since `self`: `(this process, the whole machine)`.
    fn since(self) -> Option<(f64, f64)> {
        let now = CpuTimes::now()?;
        let wall = (now.at - self.at).as_secs_f64().max(f64::EPSILON);
        Some(((now.process - self.process) / wall, (now.machine - self.machine) / wall))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `1234567` as `1 234 567`.
fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------- ingest

/// Full speed: every line handed to the sink as soon as the previous one is taken.
struct FullSpeed {
    lines: usize,
    rate: f64,
    produce: Duration,
    total: Duration,
}

async fn ingest_full_speed(fx: &Fixture) -> anyhow::Result<FullSpeed> {
    let run_id = fx.start_run().await?;
    let texts: Vec<String> = (0..FULL_SPEED_LINES).map(line_text).collect();
    let (sink, writer) = start_writer(fx.store.clone(), run_id.clone(), 0, Masker::new([SECRET.to_string()]));
    let started = Instant::now();
    for text in &texts {
        sink.line(Phase::Build, Some(STEP), Stream::Stdout, text).await;
    }
    let produce = started.elapsed();
    drop(sink);
    let stored = writer.finish().await?;
    let total = started.elapsed();
    fx.finish(&run_id).await?;
    anyhow::ensure!(stored == FULL_SPEED_LINES as i64, "the writer stored {stored} of {FULL_SPEED_LINES} lines");
    let last = fx.store.last_log_seq(&run_id).await?;
    anyhow::ensure!(last == Some(FULL_SPEED_LINES as i64 - 1), "the last stored line is {last:?}");
    let rate = FULL_SPEED_LINES as f64 / total.as_secs_f64();
    Ok(FullSpeed { lines: FULL_SPEED_LINES, rate, produce, total })
}

/// p50, p99 and max of a set of durations, in milliseconds.
#[derive(Clone, Copy)]
struct Spread {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Spread {
    fn of(samples: &mut [Duration]) -> Spread {
        let p50 = percentile(samples, 0.5);
        let p99 = percentile(samples, 0.99);
        let max = samples.last().map(|d| ms(*d)).unwrap_or(f64::NAN);
        Spread { p50, p99, max }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", self.p50, self.p99, self.max)
    }
}

/// One batch the writer committed, as its notification announced it.
struct Commit {
    /// When the notification arrived here.
    at: Instant,
    /// The batch's first and last sequence numbers.
    first: i64,
    last: i64,
    /// Lines produced but not yet committed just before this commit landed.
    backlog: i64,
}

/// Starts listening to the writer's `NOTIFY build_logs, '<run>:<last seq>'`
/// for `run_id`; the task ends once `total` lines are committed, or when no
/// notification comes for [`FRAME_TIMEOUT`]. `produced` counts the lines
/// handed to the sink so far (for the backlog).
async fn watch_commits(store: &Store, run_id: &str, total: i64, produced: Arc<AtomicI64>) -> anyhow::Result<JoinHandle<anyhow::Result<Vec<Commit>>>> {
    let mut listener = PgListener::connect_with(store.pool()).await?;
    listener.listen(LOGS_CHANNEL).await?;
    let run_id = run_id.to_string();
    Ok(tokio::spawn(async move {
        let mut commits: Vec<Commit> = Vec::new();
        let mut stored = 0i64;
        while stored < total {
            let n = match tokio::time::timeout(FRAME_TIMEOUT, listener.recv()).await {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(anyhow::Error::from(e)),
                Err(_) => anyhow::bail!("no log notification for {}s", FRAME_TIMEOUT.as_secs()),
            };
            let at = Instant::now();
            let Some((run, seq)) = n.payload().rsplit_once(':') else { continue };
            if run != run_id {
                continue;
            }
            let last: i64 = seq.parse()?;
            let backlog = produced.load(Ordering::Acquire) - stored;
            commits.push(Commit { at, first: stored, last, backlog });
            stored = last + 1;
        }
        Ok(commits)
    }))
}

/// The watcher's commits, once it has seen every line (at most [`FRAME_TIMEOUT`] more).
async fn commits_of(watch: JoinHandle<anyhow::Result<Vec<Commit>>>) -> anyhow::Result<Vec<Commit>> {
    match tokio::time::timeout(FRAME_TIMEOUT, watch).await {
        Ok(joined) => joined?,
        Err(_) => anyhow::bail!("the notification watcher did not finish"),
    }
}

/// The writer stage of every line: from its production (the start of its
/// tick; lines from `first_seq` on, `per_tick` per tick) to its batch being
/// committed and notified.
fn commit_lags(commits: &[Commit], tick_starts: &[Instant], per_tick: usize, first_seq: i64) -> Vec<Duration> {
    let mut lags = Vec::new();
    for c in commits {
        for seq in c.first.max(first_seq)..=c.last {
            if let Some(t) = tick_starts.get((seq - first_seq) as usize / per_tick) {
                lags.push(c.at.saturating_duration_since(*t));
            }
        }
    }
    lags
}

/// A sustained offered rate, watched through the writer's own notifications.
struct Sustained {
    offered: usize,
    lines: usize,
    /// Lines the producer actually offered per second (lower when held back).
    achieved_offer: f64,
    /// Lines stored per second: all lines over the offered window plus the drain.
    stored_rate: f64,
    /// Most lines produced but not yet committed, just before a commit landed.
    max_backlog: i64,
    /// Longest single hand-over to the sink.
    max_wait: Duration,
    /// From the last line produced to the writer finishing.
    drain: Duration,
    /// Per line: produced → committed and notified.
    lag: Spread,
    batches: usize,
}

impl Sustained {
    /// The producer was not held back, and the writer finished soon after it.
    fn kept_up(&self) -> bool {
        self.achieved_offer >= self.offered as f64 * 0.98 && self.drain < Duration::from_millis(500)
    }
}

async fn ingest_sustained(fx: &Fixture) -> anyhow::Result<Sustained> {
    let run_id = fx.start_run().await?;
    let per_tick = per_tick(SUSTAINED_RATE);
    let ticks = ticks();
    let total = (per_tick * ticks) as i64;
    let produced = Arc::new(AtomicI64::new(0));
    let watch = watch_commits(&fx.store, &run_id, total, produced.clone()).await?;

    let (sink, writer) = start_writer(fx.store.clone(), run_id.clone(), 0, Masker::new([SECRET.to_string()]));
    let p = produce_steady(Target::Sink(&sink), per_tick, ticks, 0, &produced).await?;
    drop(sink);
    let stored = writer.finish().await?;
    let finished = Instant::now();
    let commits = commits_of(watch).await?;
    fx.finish(&run_id).await?;
    anyhow::ensure!(stored == total, "the writer stored {stored} of {total} lines");

    let mut lags = commit_lags(&commits, &p.tick_starts, per_tick, 0);
    Ok(Sustained {
        offered: SUSTAINED_RATE,
        lines: p.lines,
        achieved_offer: p.rate(),
        stored_rate: p.lines as f64 / (finished - p.started + TICK).as_secs_f64(),
        max_backlog: commits.iter().map(|c| c.backlog).max().unwrap_or(0),
        max_wait: p.max_wait,
        drain: finished - p.finished,
        lag: Spread::of(&mut lags),
        batches: commits.len(),
    })
}

// ---------------------------------------------------------------- followers

/// Only what a follower needs of a frame.
#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    lines: Vec<Stamp>,
}

#[derive(Deserialize)]
struct Stamp {
    seq: i64,
    ts: DateTime<Utc>,
}

/// What one websocket follower saw until the server closed its stream.
#[derive(Default)]
struct Followed {
    /// Timed lines received (the warm-up line excluded).
    lines: usize,
    /// Receive time − `ts`, per timed line.
    latencies: Vec<Duration>,
    /// Every line arrived once and in order.
    in_order: bool,
    /// An `end` frame arrived.
    end: bool,
    /// The close code and reason, when the server closed.
    close: Option<(u16, String)>,
    /// Why reading stopped early.
    error: Option<String>,
}

/// Reads a follower's frames until the server closes: `seq 0` is the warm-up
/// line (counted in `warmed`), the rest are timed. Each frame is stamped on
/// arrival, before it is parsed.
async fn follow(mut socket: Socket, warmed: Arc<AtomicUsize>) -> Followed {
    let mut seen = Followed { in_order: true, ..Default::default() };
    let mut next_seq = 0i64;
    loop {
        let msg = match tokio::time::timeout(FRAME_TIMEOUT, socket.next()).await {
            Ok(m) => m,
            Err(_) => {
                seen.error = Some(format!("no frame for {}s", FRAME_TIMEOUT.as_secs()));
                return seen;
            }
        };
        match msg {
            Some(Ok(tungstenite::Message::Text(text))) => {
                let now = Utc::now();
                let frame: Frame = match serde_json::from_str(&text) {
                    Ok(f) => f,
                    Err(e) => {
                        seen.error = Some(format!("bad frame: {e}"));
                        return seen;
                    }
                };
                if frame.kind == "end" {
                    seen.end = true;
                }
                for stamp in frame.lines {
                    if stamp.seq != next_seq {
                        seen.in_order = false;
                    }
                    next_seq = stamp.seq + 1;
                    if stamp.seq == 0 {
                        warmed.fetch_add(1, Ordering::AcqRel);
                        continue;
                    }
                    seen.lines += 1;
                    seen.latencies.push((now - stamp.ts).to_std().unwrap_or(Duration::ZERO));
                }
            }
            Some(Ok(tungstenite::Message::Close(frame))) => {
                seen.close = Some(frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new())));
                return seen;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                seen.error = Some(e.to_string());
                return seen;
            }
            None => return seen,
        }
    }
}

/// Connects `FOLLOWERS` clients to `url` (with `Authorization: Bearer
/// <token>` when given), each read by its own task.
async fn connect_followers(url: &str, token: Option<&str>, warmed: &Arc<AtomicUsize>) -> anyhow::Result<Vec<JoinHandle<Followed>>> {
    let mut tasks = Vec::with_capacity(FOLLOWERS);
    for _ in 0..FOLLOWERS {
        let mut request = url.into_client_request()?;
        if let Some(token) = token {
            request.headers_mut().insert(tungstenite::http::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
        }
        let (socket, response) = tokio_tungstenite::connect_async(request).await?;
        anyhow::ensure!(response.status().as_u16() == 101, "{url}: {}", response.status());
        tasks.push(tokio::spawn(follow(socket, warmed.clone())));
    }
    Ok(tasks)
}

/// Waits (at most 30 s) until every follower has the warm-up line.
async fn wait_warmed(warmed: &AtomicUsize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while warmed.load(Ordering::Acquire) < FOLLOWERS {
        anyhow::ensure!(Instant::now() < deadline, "only {} of {FOLLOWERS} followers got the warm-up line", warmed.load(Ordering::Acquire));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Let followers settle from the backlog read into the live feed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// Every follower's report, once all have finished (at most a minute).
async fn join_followers(tasks: Vec<JoinHandle<Followed>>) -> anyhow::Result<Vec<Followed>> {
    let all = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(tasks))
        .await
        .map_err(|_| anyhow::anyhow!("followers did not finish within a minute"))?;
    all.into_iter().map(|r| r.map_err(anyhow::Error::from)).collect()
}

/// Latency and completeness over all followers of one run.
struct Fanout {
    produced: usize,
    /// Receive time − line `ts`, over every timed line of every follower.
    latency: Spread,
    /// Slipway only: the writer's share, produced → committed and notified.
    writer: Option<Spread>,
    min_lines: usize,
    max_lines: usize,
    complete: usize,
    out_of_order: usize,
    too_slow: usize,
    ended: usize,
    errors: Vec<String>,
    /// Offered lines per second, as the producer achieved it.
    rate: f64,
    /// CPUs busy while lines flowed: this process (server and clients), the whole machine.
    cpu: Option<(f64, f64)>,
}

impl Fanout {
    fn new(produced: &Produced, cpu: Option<(f64, f64)>, followed: Vec<Followed>) -> Fanout {
        let mut latencies: Vec<Duration> = Vec::with_capacity(followed.iter().map(|f| f.latencies.len()).sum());
        let mut errors = Vec::new();
        let (mut complete, mut out_of_order, mut too_slow, mut ended) = (0, 0, 0, 0);
        let min_lines = followed.iter().map(|f| f.lines).min().unwrap_or(0);
        let max_lines = followed.iter().map(|f| f.lines).max().unwrap_or(0);
        for f in followed {
            complete += usize::from(f.lines == produced.lines);
            out_of_order += usize::from(!f.in_order);
            ended += usize::from(f.end);
            if let Some((code, reason)) = &f.close {
                if *code == close_code::POLICY {
                    too_slow += 1;
                } else if *code != close_code::NORMAL {
                    errors.push(format!("closed {code}: {reason}"));
                }
            }
            if let Some(e) = f.error {
                errors.push(e);
            }
            latencies.extend(f.latencies);
        }
        errors.sort();
        errors.dedup();
        Fanout {
            produced: produced.lines,
            latency: Spread::of(&mut latencies),
            writer: None,
            min_lines,
            max_lines,
            complete,
            out_of_order,
            too_slow,
            ended,
            errors,
            rate: produced.rate(),
            cpu,
        }
    }

    fn print(&self, name: &str) {
        println!(
            "  {name}: {} lines at {} lines/s offered; latency {}",
            thousands(self.produced as f64),
            thousands(self.rate),
            self.latency
        );
        if let Some(writer) = self.writer {
            println!("    of which the writer (line ts → batch committed and notified): {writer}");
        }
        println!(
            "    lines per follower: min {}, max {}; complete {}/{FOLLOWERS}, out of order {}, dropped as too slow {}, end frames {}",
            thousands(self.min_lines as f64),
            thousands(self.max_lines as f64),
            self.complete,
            self.out_of_order,
            self.too_slow,
            self.ended
        );
        if let Some((process, machine)) = self.cpu {
            println!("    CPUs busy while producing: this process (server + {FOLLOWERS} clients) {process:.2}, whole machine {machine:.2}");
        }
        for e in &self.errors {
            println!("    follower problem: {e}");
        }
    }
}

/// An API token of a global administrator (followers must authenticate; an
/// administrator may read every project). The token check costs each
/// follower one query when it connects, not per line.
async fn bench_token(store: &Store) -> anyhow::Result<String> {
    let admin = store.create_user("bench-logs", None, "bench-logs password, not a secret", true).await?;
    let principal = Principal { user: admin, token_id: None, token_project: None, client: Default::default() };
    let created = store.create_token(&principal, &NewToken { name: "bench-logs".into(), project: None, expires_in_days: Some(1) }).await?;
    Ok(created.token)
}

/// Slipway: the real router and log hub on 127.0.0.1, 100 followers of one
/// run written through [`start_writer`] at [`FOLLOW_RATE`].
async fn slipway_fanout(fx: &Fixture) -> anyhow::Result<Fanout> {
    let leptos = LeptosOptions::builder().output_name("slipway").site_root("target/site").site_pkg_dir("pkg").build();
    let mut state = AppState::for_tests(leptos, fx.store.clone());
    // One benchmark user follows with all its sockets: above the per-user limit.
    let limits = slipway_server::Limits { followers_per_caller: FOLLOWERS, followers_per_build: FOLLOWERS, ..Default::default() };
    state.edge = std::sync::Arc::new(slipway_server::Edge::new(None, false, limits));
    let hub = state.log_hub.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app(state)).await });

    let result = async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !hub.is_connected() {
            anyhow::ensure!(Instant::now() < deadline, "the log hub did not start listening within 10 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let token = bench_token(&fx.store).await?;
        let run_id = fx.start_run().await?;
        let (sink, writer) = start_writer(fx.store.clone(), run_id.clone(), 0, Masker::new([SECRET.to_string()]));
        let warmed = Arc::new(AtomicUsize::new(0));
        let url = format!("ws://{addr}/ws/builds/{}/logs?run={run_id}", fx.build_id);
        let tasks = connect_followers(&url, Some(&token), &warmed).await?;
        let (per_tick, ticks) = (per_tick(FOLLOW_RATE), ticks());
        // The warm-up line (seq 0) and the timed ones.
        let total = (per_tick * ticks) as i64 + 1;
        let watch = watch_commits(&fx.store, &run_id, total, Arc::new(AtomicI64::new(0))).await?;
        sink.line(Phase::System, None, Stream::System, "warm-up").await;
        wait_warmed(&warmed).await?;

        let cpu = CpuTimes::now();
        let produced = produce_steady(Target::Sink(&sink), per_tick, ticks, 1, &AtomicI64::new(0)).await?;
        let cpu = cpu.and_then(CpuTimes::since);
        drop(sink);
        let stored = writer.finish().await?;
        anyhow::ensure!(stored == total, "the writer stored {stored} of {total} lines");
        let commits = commits_of(watch).await?;
        fx.finish(&run_id).await?;
        let followed = join_followers(tasks).await?;
        let mut fanout = Fanout::new(&produced, cpu, followed);
        fanout.writer = Some(Spread::of(&mut commit_lags(&commits, &produced.tick_starts, per_tick, 1)));
        Ok(fanout)
    }
    .await;
    hub.shutdown().await;
    server.abort();
    result
}

/// What the floor's broadcast carries.
#[derive(Clone)]
enum FloorEvent {
    /// One JSON `lines` message, encoded once for every follower.
    Batch(Utf8Bytes),
    /// Send the `end` message and close.
    End(Utf8Bytes),
}

/// `GET /ws` of the floor: subscribes before the upgrade, so a connected client misses nothing.
async fn floor_ws(State(tx): State<broadcast::Sender<FloorEvent>>, upgrade: WebSocketUpgrade) -> Response {
    let rx = tx.subscribe();
    upgrade.on_upgrade(move |socket| floor_stream(socket, rx))
}

/// Forwards broadcast messages to one client; a lagging receiver is closed 1008, like Slipway's too-slow followers.
async fn floor_stream(mut socket: WebSocket, mut rx: broadcast::Receiver<FloorEvent>) {
    let close = loop {
        match rx.recv().await {
            Ok(FloorEvent::Batch(text)) => {
                if socket.send(Message::Text(text)).await.is_err() {
                    return;
                }
            }
            Ok(FloorEvent::End(text)) => {
                if socket.send(Message::Text(text)).await.is_err() {
                    return;
                }
                break CloseFrame { code: close_code::NORMAL, reason: "done".into() };
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                break CloseFrame { code: close_code::POLICY, reason: format!("too slow: lagged {n} batches").into() };
            }
            Err(broadcast::error::RecvError::Closed) => break CloseFrame { code: close_code::AWAY, reason: "gone".into() },
        }
    };
    let _ = socket.send(Message::Close(Some(close))).await;
    // Wait briefly for the client's close.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// The floor: an axum websocket endpoint fed by a broadcast channel, one JSON
/// message per producer tick (100 lines every 10 ms), to 100 followers.
async fn floor_fanout() -> anyhow::Result<Fanout> {
    let (tx, _) = broadcast::channel::<FloorEvent>(FLOOR_CHANNEL);
    let router = Router::new().route("/ws", get(floor_ws)).with_state(tx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let result = async {
        let warmed = Arc::new(AtomicUsize::new(0));
        let tasks = connect_followers(&format!("ws://{addr}/ws"), None, &warmed).await?;
        let warm = serde_json::to_string(&LogStreamMessage::Lines { lines: vec![floor_line(0, "warm-up".into())] })?;
        let _ = tx.send(FloorEvent::Batch(warm.into()));
        wait_warmed(&warmed).await?;

        let (per_tick, ticks) = (per_tick(FOLLOW_RATE), ticks());
        let cpu = CpuTimes::now();
        let produced = produce_steady(Target::Floor(&tx), per_tick, ticks, 1, &AtomicI64::new(0)).await?;
        let cpu = cpu.and_then(CpuTimes::since);
        let end = serde_json::to_string(&LogStreamMessage::End { status: BuildRunStatus::Completed, error_code: None, error_message: None })?;
        let _ = tx.send(FloorEvent::End(end.into()));
        let followed = join_followers(tasks).await?;
        Ok(Fanout::new(&produced, cpu, followed))
    }
    .await;
    server.abort();
    result
}

// ---------------------------------------------------------------- run

/// Runs the log benchmarks and prints their numbers and a summary table.
pub async fn run() -> anyhow::Result<()> {
    let store = fresh_store("logs").await?;
    let fx = Fixture::new(store).await?;
    println!(
        "logs: lines of {LINE_BYTES} bytes, one masked secret, one step; producer ticks every {} ms; everything in one process on 127.0.0.1 ({} CPUs, Postgres on the same machine, load average {} at the start)",
        TICK.as_millis(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        load_average()
    );

    println!("ingest through start_writer (batched inserts + NOTIFY):");
    let full = ingest_full_speed(&fx).await?;
    println!(
        "  full speed: {} lines in {:.0} ms (producer done after {:.0} ms) = {} lines/s, {:.1} MB/s of text",
        thousands(full.lines as f64),
        ms(full.total),
        ms(full.produce),
        thousands(full.rate),
        full.rate * LINE_BYTES as f64 / 1e6
    );
    let sus = ingest_sustained(&fx).await?;
    println!(
        "  offered {} lines/s for {} s ({} lines, {} per {} ms): producer achieved {} lines/s, stored {} lines/s",
        thousands(sus.offered as f64),
        RUN_FOR.as_secs(),
        thousands(sus.lines as f64),
        per_tick(SUSTAINED_RATE),
        TICK.as_millis(),
        thousands(sus.achieved_offer),
        thousands(sus.stored_rate)
    );
    println!(
        "    {} commits; max backlog {} lines; longest line() wait {:.2} ms; drained {:.1} ms after the producer stopped; kept up: {}",
        sus.batches,
        thousands(sus.max_backlog as f64),
        ms(sus.max_wait),
        ms(sus.drain),
        if sus.kept_up() { "yes" } else { "no" }
    );
    println!("    per line, produced → committed and notified: {}", sus.lag);

    println!(
        "line latency to {FOLLOWERS} websocket followers, {} lines/s for {} s (receive time − line ts):",
        thousands(FOLLOW_RATE as f64),
        RUN_FOR.as_secs()
    );
    let slipway = slipway_fanout(&fx).await?;
    slipway.print("slipway (writer → Postgres → NOTIFY → log hub → /ws/builds/…/logs)");
    let floor = floor_fanout().await?;
    floor.print(&format!("floor (axum websocket + tokio broadcast, one JSON message of {} lines per tick, encoded once)", per_tick(FOLLOW_RATE)));

    println!("logs summary");
    println!("  {:<34} {:>14}", "ingest, full speed", format!("{} lines/s", thousands(full.rate)));
    println!(
        "  {:<34} {:>14}   max backlog {} lines, drained in {:.0} ms, kept up: {}",
        format!("ingest, offered {} lines/s", thousands(sus.offered as f64)),
        format!("{} lines/s", thousands(sus.stored_rate)),
        thousands(sus.max_backlog as f64),
        ms(sus.drain),
        if sus.kept_up() { "yes" } else { "no" }
    );
    println!("  {:<34} {:>9} {:>9} {:>9}   complete / too slow", format!("{FOLLOWERS} followers @ {} lines/s", thousands(FOLLOW_RATE as f64)), "p50 ms", "p99 ms", "max ms");
    for (name, f) in [("slipway", &slipway), ("floor (bare broadcast)", &floor)] {
        println!("  {:<34} {:>9.1} {:>9.1} {:>9.1}   {}/{FOLLOWERS} / {}", name, f.latency.p50, f.latency.p99, f.latency.max, f.complete, f.too_slow);
    }
    Ok(())
}
