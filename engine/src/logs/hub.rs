//! Live build logs for many followers, across processes.
//!
//! A [`LogHub`] is the one place in a process that listens to Postgres
//! (to [`LOGS_CHANNEL`] and [`RUNS_CHANNEL`]). The log writer
//! ([`super::writer::start_writer`]) notifies `LOGS_CHANNEL` with
//! `<run_id>:<last seq>` after each stored batch, and
//! [`Store::finish_run`] notifies `RUNS_CHANNEL` with `<run_id>` when a run
//! ends. For every run somebody follows, the hub keeps one *feed*: a task that
//! reads the new rows once per notification (not once per follower) and
//! broadcasts them as shared `Arc<[LogLine]>` batches on a bounded
//! [`tokio::sync::broadcast`] channel. Any process sharing the database sees
//! the same notifications, so followers on every server get every line.
//!
//! A [`Follower`] never misses or repeats a line at the backlog → live
//! hand-over: it subscribes to the feed *before* it reads the backlog, keeps
//! a cursor (the last sequence number it delivered), drops whatever is at or
//! below the cursor and fills any hole (a late subscription, a lagged
//! receiver) from the database by sequence number. Log rows of a run become
//! visible in sequence order (one writer per run commits batch after batch),
//! so the database always has the lines below the newest one seen.
//!
//! The writer never waits for followers: it only inserts and notifies. A
//! follower that falls more than [`HubConfig::max_lag_lines`] lines behind
//! the live feed gets [`FollowEvent::TooSlow`] and its stream ends; it can
//! resume with `after` = its last sequence number.
//!
//! When the listener connection drops, the hub reconnects with back-off, and
//! meanwhile every feed polls the database every
//! [`HubConfig::disconnected_poll`] (500 ms) so nothing is missed; after a
//! reconnect every feed reads once more, for notifications sent while it was
//! gone. Feeds also re-check their run every [`HubConfig::safety_poll`], for
//! runs that end without a notification (a reaped lease, a cancelled pending
//! run).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use slipway_model::logs::LogLine;
use slipway_model::status::BuildRunStatus;
use slipway_model::ErrorCode;
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use super::{LOGS_CHANNEL, RUNS_CHANNEL};
use crate::error::Error;
use crate::store::Store;


/// A feed's head before it has read the database once.
const UNKNOWN: i64 = i64::MIN;

/// Tuning of a [`LogHub`]; [`HubConfig::default`] suits a server.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// A follower more than this many lines behind the live feed is dropped
    /// ([`FollowEvent::TooSlow`]). Lines it reads from the backlog that were
    /// stored before it started following do not count. At least twice
    /// `page` (one read of the feed must not make everyone too slow).
    pub max_lag_lines: i64,
    /// Batches a feed's broadcast channel holds for its slowest receiver.
    /// A receiver that lags past it recovers the missing lines from the
    /// database (while it is within `max_lag_lines`).
    pub channel_batches: usize,
    /// Lines per database read, for the backlog and the live feed.
    pub page: i64,
    /// How often feeds poll the database while the listener is disconnected.
    pub disconnected_poll: Duration,
    /// How often feeds re-check their run while connected.
    pub safety_poll: Duration,
    /// Listen for notifications. Without (e.g. behind a pooler in transaction
    /// mode, where LISTEN does not work) feeds only poll, every
    /// `disconnected_poll`.
    pub listen: bool,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_lag_lines: 20_000,
            channel_batches: 256,
            page: 1000,
            disconnected_poll: Duration::from_millis(500),
            safety_poll: Duration::from_secs(5),
            listen: true,
        }
    }
}

/// How a run ended, as followers are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    pub status: BuildRunStatus,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// What [`Follower::next`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowEvent {
    /// The next lines, in sequence order, each exactly once.
    Lines(Vec<LogLine>),
    /// The run is over and every line has been delivered; the stream ends.
    End { status: BuildRunStatus, error_code: Option<String>, error_message: Option<String> },
    /// The follower fell more than `max_lag` lines behind; the stream ends.
    /// Resume with `after = last_seq`.
    TooSlow { last_seq: Option<i64>, behind: i64, max_lag: i64 },
}

/// What a feed broadcasts.
#[derive(Debug, Clone)]
enum FeedEvent {
    Lines(Arc<[LogLine]>),
    End(RunEnd),
}

/// The live feed of one run in this process. Only the map and the feed's
/// task hold it, so its channel closes when the feed goes away.
struct Feed {
    run_id: String,
    tx: broadcast::Sender<FeedEvent>,
    heads: Arc<Heads>,
    /// New lines were announced (or may have been missed): read them.
    lines_dirty: AtomicBool,
    /// The run may have ended: look at its status.
    status_dirty: AtomicBool,
    wake: Notify,
}

/// Where a feed is, shared with its followers (who must not hold the sender).
struct Heads {
    /// The last sequence number broadcast ([`UNKNOWN`] before the first read, -1 for none).
    head: AtomicI64,
    /// The head the feed started from (set once, with the first read).
    start: AtomicI64,
}

impl Heads {
    /// The head when known, as the lag baseline of a new follower.
    fn base(&self) -> Option<i64> {
        let head = self.head.load(Ordering::Acquire);
        (head != UNKNOWN).then_some(head)
    }
}

struct Hub {
    store: Store,
    config: HubConfig,
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
    connected: AtomicBool,
    /// How many times the listener connected (1 + reconnects).
    connects: AtomicU64,
    cancel: CancellationToken,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The per-process fan-out of live build logs. Cheap to clone.
#[derive(Clone)]
pub struct LogHub {
    hub: Arc<Hub>,
}

impl std::fmt::Debug for LogHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHub").field("connected", &self.is_connected()).finish_non_exhaustive()
    }
}

impl LogHub {
    /// Starts the hub with the default settings: spawns its listener task
    /// (call from inside a Tokio runtime).
    pub fn start(store: Store) -> LogHub {
        LogHub::start_with(store, HubConfig::default())
    }

    /// Starts the hub with explicit settings (tests use a small lag limit).
    pub fn start_with(store: Store, mut config: HubConfig) -> LogHub {
        config.page = config.page.clamp(1, slipway_model::logs::MAX_PAGE);
        config.max_lag_lines = config.max_lag_lines.max(config.page * 2);
        let hub = Arc::new(Hub {
            store,
            config,
            feeds: Mutex::new(HashMap::new()),
            connected: AtomicBool::new(false),
            connects: AtomicU64::new(0),
            cancel: CancellationToken::new(),
            listener: Mutex::new(None),
        });
        if hub.config.listen {
            let handle = tokio::spawn(listen(hub.clone()));
            *lock(&hub.listener) = Some(handle);
        } else {
            tracing::info!("log hub not listening for notifications; followers poll the database");
        }
        LogHub { hub }
    }

    /// Follows a run from the line after `after` (from its first line when
    /// `None`): the backlog, then live lines, then its end. Nothing is read
    /// until [`Follower::next`] is called; an unknown run ends the stream at
    /// once (check that the run exists first to report it).
    pub fn follow(&self, run_id: &str, after: Option<i64>) -> Follower {
        let (heads, rx) = self.hub.subscribe(run_id);
        Follower {
            hub: self.hub.clone(),
            run_id: run_id.to_string(),
            base: heads.base(),
            heads,
            rx,
            cursor: after.unwrap_or(-1).max(-1),
            state: State::Backlog,
            stash: None,
        }
    }

    /// Whether the listener connection is up (while it is not, feeds poll).
    pub fn is_connected(&self) -> bool {
        self.hub.connected.load(Ordering::Acquire)
    }

    /// How many times the listener has connected: 1, plus one per reconnect.
    pub fn listener_connects(&self) -> u64 {
        self.hub.connects.load(Ordering::Acquire)
    }

    /// Runs with a live feed in this process (followed by someone).
    pub fn followed_runs(&self) -> usize {
        lock(&self.hub.feeds).len()
    }

    /// The settings this hub runs with.
    pub fn config(&self) -> &HubConfig {
        &self.hub.config
    }

    /// Stops the listener and every feed, and waits for the listener to
    /// give its connection back. Followers still open end their streams.
    pub async fn shutdown(&self) {
        self.hub.cancel.cancel();
        let handle = lock(&self.hub.listener).take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
        lock(&self.hub.feeds).clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::App(a) if a.code == ErrorCode::NotFound)
}

impl Hub {
    /// The run's feed (started when nobody followed it yet) and a receiver
    /// subscribed to it. Subscribing and the idle check of a feed happen under
    /// the same lock, so a receiver never lands on a feed that is going away.
    /// After shutdown, the receiver is already closed.
    fn subscribe(self: &Arc<Self>, run_id: &str) -> (Arc<Heads>, broadcast::Receiver<FeedEvent>) {
        let mut feeds = lock(&self.feeds);
        if let Some(feed) = feeds.get(run_id) {
            let rx = feed.tx.subscribe();
            return (feed.heads.clone(), rx);
        }
        let (tx, rx) = broadcast::channel(self.config.channel_batches.max(1));
        let heads = Arc::new(Heads { head: AtomicI64::new(UNKNOWN), start: AtomicI64::new(UNKNOWN) });
        if self.cancel.is_cancelled() {
            return (heads, rx);
        }
        let feed = Arc::new(Feed {
            run_id: run_id.to_string(),
            tx,
            heads: heads.clone(),
            lines_dirty: AtomicBool::new(true),
            status_dirty: AtomicBool::new(true),
            wake: Notify::new(),
        });
        feeds.insert(run_id.to_string(), feed.clone());
        tokio::spawn(run_feed(self.clone(), feed));
        (heads, rx)
    }

    /// Removes `feed` from the map if it is still the run's feed.
    fn remove(&self, feed: &Arc<Feed>) {
        let mut feeds = lock(&self.feeds);
        if feeds.get(&feed.run_id).is_some_and(|f| Arc::ptr_eq(f, feed)) {
            feeds.remove(&feed.run_id);
        }
    }

    /// Removes `feed` when nobody follows it any more.
    fn remove_if_idle(&self, feed: &Arc<Feed>) -> bool {
        let mut feeds = lock(&self.feeds);
        if feed.tx.receiver_count() > 0 {
            return false;
        }
        if feeds.get(&feed.run_id).is_some_and(|f| Arc::ptr_eq(f, feed)) {
            feeds.remove(&feed.run_id);
        }
        true
    }

    fn on_notification(&self, channel: &str, payload: &str) {
        let feeds = lock(&self.feeds);
        match channel {
            LOGS_CHANNEL => {
                let Some((run_id, seq)) = payload.rsplit_once(':') else {
                    tracing::debug!(payload, channel, "ignoring a malformed log notification");
                    return;
                };
                if let Some(feed) = feeds.get(run_id) {
                    let seq: i64 = seq.parse().unwrap_or(i64::MAX);
                    if seq > feed.heads.head.load(Ordering::Acquire) {
                        feed.lines_dirty.store(true, Ordering::Release);
                        feed.wake.notify_one();
                    }
                }
            }
            RUNS_CHANNEL => {
                if let Some(feed) = feeds.get(payload) {
                    feed.status_dirty.store(true, Ordering::Release);
                    feed.wake.notify_one();
                }
            }
            _ => {}
        }
    }

    /// Marks the connection up or down; either way every feed reads again
    /// (notifications may have been lost) and picks its poll interval anew.
    fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Release);
        for feed in lock(&self.feeds).values() {
            feed.lines_dirty.store(true, Ordering::Release);
            feed.status_dirty.store(true, Ordering::Release);
            feed.wake.notify_one();
        }
    }
}

/// The listener task: one connection listening to both channels,
/// reconnecting with back-off until the hub shuts down or the pool closes.
async fn listen(hub: Arc<Hub>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if hub.store.pool().is_closed() {
            tracing::debug!("database pool closed; log hub listener stops");
            break;
        }
        let connected = tokio::select! {
            _ = hub.cancel.cancelled() => break,
            r = connect_listener(&hub.store) => r,
        };
        let mut listener = match connected {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "log hub cannot listen to Postgres; followers poll meanwhile");
                tokio::select! {
                    _ = hub.cancel.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        tracing::info!("log hub listening for build log notifications");
        hub.connects.fetch_add(1, Ordering::AcqRel);
        hub.set_connected(true);
        loop {
            let received = tokio::select! {
                _ = hub.cancel.cancelled() => {
                    hub.set_connected(false);
                    return;
                }
                r = listener.try_recv() => r,
            };
            match received {
                Ok(Some(n)) => hub.on_notification(n.channel(), n.payload()),
                Ok(None) => {
                    tracing::warn!("log hub lost its Postgres listener connection; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "log hub listener failed; reconnecting");
                    break;
                }
            }
        }
        hub.set_connected(false);
        drop(listener);
    }
    hub.set_connected(false);
}

async fn connect_listener(store: &Store) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(store.pool()).await?;
    listener.eager_reconnect(false);
    listener.listen_all([LOGS_CHANNEL, RUNS_CHANNEL]).await?;
    Ok(listener)
}

/// A feed's task: reads new rows when told (or on its poll interval),
/// broadcasts them, and ends the feed when its run ends or nobody follows.
#[tracing::instrument(skip_all, fields(run = %feed.run_id))]
async fn run_feed(hub: Arc<Hub>, feed: Arc<Feed>) {
    let store = &hub.store;
    let page = hub.config.page.max(1);
    let mut head = UNKNOWN;
    let mut failing = false;
    loop {
        if hub.cancel.is_cancelled() || store.pool().is_closed() {
            hub.remove(&feed);
            return;
        }
        if head == UNKNOWN {
            match store.last_log_seq(&feed.run_id).await {
                Ok(last) => {
                    head = last.unwrap_or(-1);
                    feed.heads.start.store(head, Ordering::Release);
                    feed.heads.head.store(head, Ordering::Release);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "log feed cannot read its run's log; retrying");
                    failing = true;
                }
            }
        }
        if head != UNKNOWN && feed.status_dirty.swap(false, Ordering::AcqRel) {
            match store.get_run(&feed.run_id).await {
                Ok(run) if run.status.is_terminal() => {
                    // The writer is done before a run is marked ended: read to the end.
                    match read_new(store, &feed, &mut head, page).await {
                        Ok(()) => {
                            hub.remove(&feed);
                            let end = RunEnd { status: run.status, error_code: run.error_code, error_message: run.error_message };
                            let _ = feed.tx.send(FeedEvent::End(end));
                            tracing::debug!(last_seq = head, "log feed ended with its run");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "log feed cannot read its run's last lines; retrying");
                            feed.status_dirty.store(true, Ordering::Release);
                            failing = true;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {
                    // The run is gone: close the channel; followers find out.
                    hub.remove(&feed);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "log feed cannot read its run; retrying");
                    feed.status_dirty.store(true, Ordering::Release);
                    failing = true;
                }
            }
        }
        if head != UNKNOWN && feed.lines_dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = read_new(store, &feed, &mut head, page).await {
                tracing::warn!(error = %e, "log feed cannot read new lines; retrying");
                feed.lines_dirty.store(true, Ordering::Release);
                failing = true;
            }
        }
        if hub.remove_if_idle(&feed) {
            tracing::debug!("log feed stopped: nobody follows it");
            return;
        }
        let interval = if failing || !hub.connected.load(Ordering::Acquire) {
            hub.config.disconnected_poll
        } else {
            hub.config.safety_poll
        };
        failing = false;
        tokio::select! {
            _ = hub.cancel.cancelled() => {}
            _ = feed.wake.notified() => {}
            _ = tokio::time::sleep(interval) => {
                feed.lines_dirty.store(true, Ordering::Release);
                feed.status_dirty.store(true, Ordering::Release);
            }
        }
    }
}

/// Reads every stored line after `head`, page by page, and broadcasts each page.
async fn read_new(store: &Store, feed: &Feed, head: &mut i64, page: i64) -> crate::Result<()> {
    loop {
        let lines = store.logs_after(&feed.run_id, Some(*head), page).await?;
        let Some(last) = lines.last().map(|l| l.seq) else { return Ok(()) };
        let full = lines.len() as i64 >= page;
        *head = last;
        feed.heads.head.store(last, Ordering::Release);
        // No receiver is fine: the idle check ends the feed.
        let _ = feed.tx.send(FeedEvent::Lines(Arc::from(lines)));
        if !full {
            return Ok(());
        }
    }
}

enum State {
    /// Reading stored lines from the database, page by page.
    Backlog,
    /// Caught up: taking lines from the feed.
    Live,
    /// The run is over: reading the last stored lines, then the end.
    Draining(RunEnd),
    Done,
}

/// One follower of one run; see [`LogHub::follow`].
pub struct Follower {
    hub: Arc<Hub>,
    run_id: String,
    heads: Arc<Heads>,
    rx: broadcast::Receiver<FeedEvent>,
    /// The last sequence number delivered (-1: none).
    cursor: i64,
    /// The feed's head when this follower subscribed: lines up to it are
    /// backlog, not lag. `None` until the feed has read the database once.
    base: Option<i64>,
    state: State,
    /// A batch taken from the feed, kept while a gap before it is filled
    /// (so that `next` stays cancel-safe).
    stash: Option<Arc<[LogLine]>>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower").field("run_id", &self.run_id).field("last_seq", &self.last_seq()).finish_non_exhaustive()
    }
}

impl Follower {
    /// The run followed.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The last sequence number delivered (`None` before the first line).
    pub fn last_seq(&self) -> Option<i64> {
        (self.cursor >= 0).then_some(self.cursor)
    }

    /// The newest sequence number this process's feed has broadcast for the run.
    pub fn live_head(&self) -> Option<i64> {
        let head = self.heads.head.load(Ordering::Acquire);
        (head >= 0).then_some(head)
    }

    /// How many live lines (broadcast since this follower started) it has not delivered yet.
    pub fn behind(&mut self) -> i64 {
        if self.base.is_none() {
            let start = self.heads.start.load(Ordering::Acquire);
            if start != UNKNOWN {
                self.base = Some(start);
            }
        }
        let head = self.heads.head.load(Ordering::Acquire);
        match self.base {
            Some(base) if head != UNKNOWN => (head - self.cursor.max(base)).max(0),
            _ => 0,
        }
    }

    /// The next event; `None` once the stream has ended (after `End` or
    /// `TooSlow`, when the run does not exist, or when the hub shut down).
    ///
    /// Cancel-safe: dropping the future before it completes loses nothing;
    /// the next call picks up where it was.
    pub async fn next(&mut self) -> Option<FollowEvent> {
        let store = self.hub.store.clone();
        let page = self.hub.config.page.max(1);
        loop {
            if self.hub.cancel.is_cancelled() {
                self.state = State::Done;
            }
            let behind = self.behind();
            if behind > self.hub.config.max_lag_lines && matches!(self.state, State::Backlog | State::Live) {
                tracing::info!(run = %self.run_id, behind, last_seq = ?self.last_seq(), "log follower too slow; dropping it");
                self.state = State::Done;
                return Some(FollowEvent::TooSlow { last_seq: self.last_seq(), behind, max_lag: self.hub.config.max_lag_lines });
            }
            match &self.state {
                State::Done => return None,
                State::Backlog => {
                    let lines = match store.logs_after(&self.run_id, Some(self.cursor), page).await {
                        Ok(l) => l,
                        Err(e) => {
                            self.retry_after(&e).await;
                            continue;
                        }
                    };
                    if let Some(last) = lines.last().map(|l| l.seq) {
                        self.cursor = last;
                        return Some(FollowEvent::Lines(lines));
                    }
                    // Caught up with the database: is the run over already?
                    match store.get_run(&self.run_id).await {
                        Ok(run) if run.status.is_terminal() => {
                            self.state = State::Draining(RunEnd {
                                status: run.status,
                                error_code: run.error_code,
                                error_message: run.error_message,
                            });
                        }
                        Ok(_) => self.state = State::Live,
                        Err(e) => self.retry_after(&e).await,
                    }
                }
                State::Draining(end) => {
                    let end = end.clone();
                    let lines = match store.logs_after(&self.run_id, Some(self.cursor), page).await {
                        Ok(l) => l,
                        Err(e) => {
                            self.retry_after(&e).await;
                            continue;
                        }
                    };
                    if let Some(last) = lines.last().map(|l| l.seq) {
                        self.cursor = last;
                        return Some(FollowEvent::Lines(lines));
                    }
                    self.state = State::Done;
                    return Some(FollowEvent::End {
                        status: end.status,
                        error_code: end.error_code,
                        error_message: end.error_message,
                    });
                }
                State::Live => {
                    let batch = match self.stash.take() {
                        Some(b) => b,
                        None => match self.rx.recv().await {
                            Ok(FeedEvent::Lines(b)) => b,
                            Ok(FeedEvent::End(end)) => {
                                self.state = State::Draining(end);
                                continue;
                            }
                            // Missed batches: the next one shows the hole, filled from the database.
                            Err(broadcast::error::RecvError::Lagged(n)) => {
                                tracing::debug!(run = %self.run_id, skipped_batches = n, "log follower lagged; filling from the database");
                                continue;
                            }
                            Err(broadcast::error::RecvError::Closed) => {
                                // The feed went away without an end (its run vanished, or
                                // the hub stops): start over from the database.
                                if self.hub.cancel.is_cancelled() {
                                    self.state = State::Done;
                                    continue;
                                }
                                let (heads, rx) = self.hub.subscribe(&self.run_id);
                                self.base = heads.base();
                                self.heads = heads;
                                self.rx = rx;
                                self.state = State::Backlog;
                                continue;
                            }
                        },
                    };
                    let from = batch.partition_point(|l| l.seq <= self.cursor);
                    let Some(first) = batch.get(from).map(|l| l.seq) else { continue };
                    if first > self.cursor + 1 {
                        // A hole before this batch: read it from the database first.
                        self.stash = Some(batch);
                        let want = (first - self.cursor - 1).min(page);
                        let gap = match store.logs_after(&self.run_id, Some(self.cursor), want).await {
                            Ok(g) => g,
                            Err(e) => {
                                self.retry_after(&e).await;
                                continue;
                            }
                        };
                        let gap: Vec<LogLine> = gap.into_iter().filter(|l| l.seq < first).collect();
                        match gap.last().map(|l| l.seq) {
                            Some(last) => {
                                self.cursor = last;
                                return Some(FollowEvent::Lines(gap));
                            }
                            None => {
                                tracing::warn!(run = %self.run_id, from = self.cursor + 1, to = first - 1, "log lines missing from the database; skipping them");
                                self.cursor = first - 1;
                                continue;
                            }
                        }
                    }
                    let lines = batch[from..].to_vec();
                    if let Some(last) = lines.last().map(|l| l.seq) {
                        self.cursor = last;
                    }
                    return Some(FollowEvent::Lines(lines));
                }
            }
        }
    }

    /// A failed read: an unknown run ends the stream; anything else is
    /// retried after the poll interval.
    async fn retry_after(&mut self, e: &Error) {
        if is_not_found(e) {
            self.state = State::Done;
            return;
        }
        tracing::warn!(run = %self.run_id, error = %e, "log follower cannot read the database; retrying");
        tokio::select! {
            _ = self.hub.cancel.cancelled() => {}
            _ = tokio::time::sleep(self.hub.config.disconnected_poll) => {}
        }
    }
}
