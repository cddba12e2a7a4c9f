//! Build log capture: every line gets a run-wide sequence number, a timestamp,
//! its phase, step and stream; secret values are masked before a line is
//! stored or sent. A writer task stores lines in batches (multi-row inserts
//! off the build's hot path) through a bounded channel, so a flood of output
//! applies back-pressure instead of growing memory; after each batch it sends
//! a notification on [`LOGS_CHANNEL`] (`<run_id>:<last seq>`) for live
//! followers ([`super::hub`]). The insert is a [`Store`] query like every
//! other.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::LOGS_CHANNEL;
use crate::error::{Error, Result};
use crate::store::Store;

/// The phase of a run a line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Clone,
    Checkout,
    Workspace,
    Build,
    Push,
    Record,
    System,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Clone => "clone",
            Phase::Checkout => "checkout",
            Phase::Workspace => "workspace",
            Phase::Build => "build",
            Phase::Push => "push",
            Phase::Record => "record",
            Phase::System => "system",
        }
    }
}

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
    /// Slipway's own messages (phase starts, step summaries).
    System,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::System => "system",
        }
    }
}

/// One stored line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub seq: i64,
    pub ts: DateTime<Utc>,
    pub phase: Phase,
    pub step: Option<String>,
    pub stream: Stream,
    pub line: String,
}

/// Replaces secret values in text. Values shorter than three characters are
/// not masked (they would mask ordinary text); secret stores refuse them.
///
/// A multi-line secret (a PEM key, a JSON document) is also masked line by
/// line: output arrives in chunks and is stored per line, so the whole value
/// may never appear in one piece of text.
#[derive(Default, Clone)]
pub struct Masker {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker").field("values", &self.secrets.len()).finish()
    }
}

/// What a masked value is replaced with.
pub const MASK: &str = "••••••";

impl Masker {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Masker {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .flat_map(|s| {
                // Each line of a multi-line value is masked on its own too.
                let lines: Vec<String> = if s.contains('\n') {
                    s.split('\n').map(|l| l.trim_end_matches('\r').trim().to_string()).collect()
                } else {
                    Vec::new()
                };
                std::iter::once(s).chain(lines)
            })
            .filter(|s| s.chars().count() >= 3)
            .collect();
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Masker { secrets }
    }

    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}

enum Target {
    Channel(mpsc::Sender<LogRecord>),
    Memory(Arc<Mutex<Vec<LogRecord>>>),
}

struct SinkInner {
    target: Target,
    masker: Masker,
    next_seq: Mutex<i64>,
}

/// Where a build writes its output. Cheap to clone; lines keep their order.
#[derive(Clone)]
pub struct LogSink {
    inner: Arc<SinkInner>,
}

/// The lines a [`LogSink::memory`] sink collected (tests, benchmarks).
#[derive(Clone)]
pub struct MemoryLog(Arc<Mutex<Vec<LogRecord>>>);

impl MemoryLog {
    pub fn lines(&self) -> Vec<LogRecord> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
    /// Every line's text joined with newlines.
    pub fn text(&self) -> String {
        self.lines().iter().map(|l| l.line.as_str()).collect::<Vec<_>>().join("\n")
    }
}

impl LogSink {
    /// A sink that keeps lines in memory.
    pub fn memory() -> (LogSink, MemoryLog) {
        LogSink::memory_masked(Masker::default())
    }

    pub fn memory_masked(masker: Masker) -> (LogSink, MemoryLog) {
        let store = Arc::new(Mutex::new(Vec::new()));
        let sink = LogSink {
            inner: Arc::new(SinkInner { target: Target::Memory(store.clone()), masker, next_seq: Mutex::new(0) }),
        };
        (sink, MemoryLog(store))
    }

    /// Records `text`, split into lines (`\n`, and `\r` progress redraws); the
    /// text and the step are masked first.
    pub async fn line(&self, phase: Phase, step: Option<&str>, stream: Stream, text: &str) {
        let masked = self.inner.masker.mask(text);
        let step = step.map(|s| self.inner.masker.mask(s));
        for raw in masked.split('\n') {
            let line = raw.rsplit('\r').find(|s| !s.is_empty()).unwrap_or("").trim_end();
            if line.is_empty() && raw.trim().is_empty() && masked.ends_with('\n') {
                continue;
            }
            let record = {
                let mut seq = match self.inner.next_seq.lock() {
                    Ok(s) => s,
                    Err(p) => p.into_inner(),
                };
                let r = LogRecord {
                    seq: *seq,
                    ts: Utc::now(),
                    phase,
                    step: step.clone(),
                    stream,
                    line: line.to_string(),
                };
                *seq += 1;
                r
            };
            match &self.inner.target {
                Target::Channel(tx) => {
                    // Back-pressure: waits when the writer is behind.
                    if tx.send(record).await.is_err() {
                        tracing::warn!("log writer is gone; dropping a line");
                    }
                }
                Target::Memory(m) => {
                    if let Ok(mut m) = m.lock() {
                        m.push(record);
                    }
                }
            }
        }
    }

    /// A Slipway message for a phase.
    pub async fn system(&self, phase: Phase, text: &str) {
        self.line(phase, None, Stream::System, text).await;
    }

    /// Masks text the same way lines are masked (for error messages).
    pub fn mask(&self, text: &str) -> String {
        self.inner.masker.mask(text)
    }
}

/// The task storing a run's lines; [`LogWriter::finish`] waits until every
/// line sent before it is stored.
pub struct LogWriter {
    handle: JoinHandle<Result<i64>>,
}

/// Lines per insert, and the longest a line waits before its batch is written.
const BATCH: usize = 500;
const FLUSH_EVERY: Duration = Duration::from_millis(50);
const CHANNEL: usize = 4096;

/// Starts a writer for `run_id` whose first line gets `first_seq`.
pub fn start_writer(store: Store, run_id: String, first_seq: i64, masker: Masker) -> (LogSink, LogWriter) {
    let (tx, mut rx) = mpsc::channel::<LogRecord>(CHANNEL);
    let sink = LogSink {
        inner: Arc::new(SinkInner { target: Target::Channel(tx), masker, next_seq: Mutex::new(first_seq) }),
    };
    let handle = tokio::spawn(async move {
        let mut stored = 0i64;
        let mut batch: Vec<LogRecord> = Vec::with_capacity(BATCH);
        loop {
            let first = match rx.recv().await {
                Some(r) => r,
                None => break,
            };
            batch.push(first);
            let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
            while batch.len() < BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(r)) => batch.push(r),
                    Ok(None) | Err(_) => break,
                }
            }
            store.insert_log_batch(&run_id, &batch).await?;
            stored += batch.len() as i64;
            batch.clear();
        }
        Ok(stored)
    });
    (sink, LogWriter { handle })
}

impl Store {
    /// Stores one batch of a run's lines and announces it on [`LOGS_CHANNEL`]
    /// in the same transaction, so a follower woken by the notification
    /// finds the lines.
    #[tracing::instrument(skip_all, fields(run = %run_id, lines = batch.len()))]
    pub async fn insert_log_batch(&self, run_id: &str, batch: &[LogRecord]) -> Result<()> {
        let seqs: Vec<i64> = batch.iter().map(|r| r.seq).collect();
        let ts: Vec<DateTime<Utc>> = batch.iter().map(|r| r.ts).collect();
        let phases: Vec<&str> = batch.iter().map(|r| r.phase.as_str()).collect();
        let steps: Vec<Option<&str>> = batch.iter().map(|r| r.step.as_deref()).collect();
        let streams: Vec<&str> = batch.iter().map(|r| r.stream.as_str()).collect();
        let lines: Vec<&str> = batch.iter().map(|r| r.line.as_str()).collect();
        let last = seqs.last().copied().unwrap_or_default();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO build_logs (run_id, seq, ts, phase, step, stream, line)
             SELECT $1, * FROM UNNEST($2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[])",
        )
        .bind(run_id)
        .bind(&seqs)
        .bind(&ts)
        .bind(&phases)
        .bind(&steps)
        .bind(&streams)
        .bind(&lines)
        .execute(&mut *tx)
        .await?;
        crate::worker::notify(&mut *tx, LOGS_CHANNEL, &format!("{run_id}:{last}")).await?;
        tx.commit().await?;
        crate::metrics::log_lines_ingested(batch.len());
        Ok(())
    }
}

impl LogWriter {
    /// Waits for every line to be stored (drop every clone of the sink first).
    pub async fn finish(self) -> Result<i64> {
        match self.handle.await {
            Ok(r) => r,
            Err(e) => Err(Error::Internal(format!("log writer task failed: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_masked_and_numbered() {
        let (sink, log) = LogSink::memory_masked(Masker::new(["hunter22".to_string()]));
        sink.line(Phase::Build, Some("[1/2] RUN x"), Stream::Stdout, "a\nb token=hunter22\n").await;
        sink.line(Phase::Build, None, Stream::Stderr, "progress 10%\rprogress 100%").await;
        let lines = log.lines();
        let texts: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(texts, ["a", "b token=••••••", "progress 100%"]);
        assert_eq!(lines.iter().map(|l| l.seq).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(lines[0].step.as_deref(), Some("[1/2] RUN x"));
    }

    #[tokio::test]
    async fn a_multi_line_secret_split_across_chunks_and_a_secret_in_a_step_are_masked() {
        let pem = "-----BEGIN KEY-----\r\nAAAA1111\r\nBBBB2222\r\n-----END KEY-----".to_string();
        let (sink, log) = LogSink::memory_masked(Masker::new([pem, "tok-123".to_string()]));
        sink.line(Phase::Build, Some("[2/2] RUN echo tok-123"), Stream::Stdout, "-----BEGIN KEY-----\nAAAA1111\n").await;
        sink.line(Phase::Build, Some("[2/2] RUN echo tok-123"), Stream::Stdout, "  BBBB2222\n-----END KEY-----\n").await;
        let lines = log.lines();
        let texts: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(texts, [MASK, MASK, &format!("  {MASK}"), MASK]);
        assert!(lines.iter().all(|l| l.step.as_deref() == Some(&*format!("[2/2] RUN echo {MASK}"))));
        assert!(!format!("{:?}", Masker::new(["tok-123".to_string()])).contains("tok-123"), "Debug shows no value");
    }

    #[test]
    fn longer_secrets_are_masked_before_the_shorter_ones_they_contain() {
        let m = Masker::new(["abc".to_string(), "abcdef".to_string(), "x".to_string()]);
        assert_eq!(m.mask("abcdef abc x"), format!("{MASK} {MASK} x"));
    }
}
