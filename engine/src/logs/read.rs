//! Reading build logs: keyset pages by sequence number on the primary key
//! `(run_id, seq)`, a case-insensitive plain-text search that ignores ANSI
//! colour codes, and the few questions build
//! diagnosis asks of a run's log (its tail, its last phase, the steps it
//! started). Lines are written by [`super::writer::start_writer`]; every
//! query of `build_logs` other than the writer's insert is here.

use chrono::{DateTime, Utc};
use slipway_model::logs::{LogLine, LogPage, MAX_PAGE};

use crate::error::Result;
use crate::store::Store;

/// ANSI escape sequences as a Postgres regular expression: CSI sequences
/// (colours, cursor moves), OSC sequences (titles, links) and two-character
/// escapes. Same rules as [`slipway_model::logs::strip_ansi`].
const ANSI_RE: &str = r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\?)?|.)";

/// The columns of a stored line, in [`LineRow`]'s order.
const LINE_COLUMNS: &str = "seq, ts, phase, step, stream, line";

#[derive(sqlx::FromRow)]
struct LineRow {
    seq: i64,
    ts: DateTime<Utc>,
    phase: String,
    step: Option<String>,
    stream: String,
    line: String,
}

impl From<LineRow> for LogLine {
    fn from(r: LineRow) -> Self {
        LogLine { seq: r.seq, ts: r.ts, phase: r.phase, step: r.step, stream: r.stream, line: r.line }
    }
}

impl Store {
    /// Lines of a run with `seq > after` (all lines when `after` is `None`),
    /// in order, at most `limit` (clamped to 1..=[`MAX_PAGE`]).
    #[tracing::instrument(skip_all, fields(run = %run_id, after = ?after, limit))]
    pub async fn logs_after(&self, run_id: &str, after: Option<i64>, limit: i64) -> Result<Vec<LogLine>> {
        let rows: Vec<LineRow> = sqlx::query_as(
            &format!("SELECT {LINE_COLUMNS} FROM build_logs WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"),
        )
        .bind(run_id)
        .bind(after.unwrap_or(-1))
        .bind(limit.clamp(1, MAX_PAGE))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The highest stored sequence number of a run, if it has any line.
    pub async fn last_log_seq(&self, run_id: &str) -> Result<Option<i64>> {
        let (last,): (Option<i64>,) = sqlx::query_as("SELECT max(seq) FROM build_logs WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(self.pool())
            .await?;
        Ok(last)
    }

    /// One page of a run's log after `after`; with `query`, only the lines
    /// whose text without ANSI codes contains it, ignoring case. Unknown run:
    /// not found.
    #[tracing::instrument(skip_all, fields(run = %run_id, after = ?after, limit, search = query.is_some()))]
    pub async fn log_page(&self, run_id: &str, after: Option<i64>, limit: i64, query: Option<&str>) -> Result<LogPage> {
        // The status is read first: when it is final, every line is already
        // stored (the writer finishes before the run is marked ended), so a
        // short page is really the end.
        let run = self.get_run(run_id).await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let query = query.map(str::trim).filter(|q| !q.is_empty());
        let lines: Vec<LogLine> = match query {
            None => self.logs_after(run_id, after, limit).await?,
            Some(q) => {
                let rows: Vec<LineRow> = sqlx::query_as(&format!(
                    "SELECT {LINE_COLUMNS} FROM build_logs
                     WHERE run_id = $1 AND seq > $2
                       AND strpos(lower(regexp_replace(line, $3, '', 'g')), lower($4)) > 0
                     ORDER BY seq LIMIT $5"
                ))
                .bind(run_id)
                .bind(after.unwrap_or(-1))
                .bind(ANSI_RE)
                .bind(q)
                .bind(limit)
                .fetch_all(self.pool())
                .await?;
                rows.into_iter().map(Into::into).collect()
            }
        };
        let last = lines.last().map(|l| l.seq).or(after);
        let next_after = if lines.len() as i64 == limit || !run.status.is_terminal() { Some(last.unwrap_or(-1)) } else { None };
        Ok(LogPage { run_id: run.id, run_status: run.status, lines, next_after })
    }

    /// The last `limit` lines of a run that `tail` selects, oldest first.
    #[tracing::instrument(skip_all, fields(run = %run_id, limit))]
    pub async fn log_tail(&self, run_id: &str, tail: LogTail<'_>, limit: i64) -> Result<Vec<LogLine>> {
        let (filter, param): (&str, Option<String>) = match tail {
            LogTail::All => ("true", None),
            LogTail::From(seq) => ("seq >= $3::bigint", Some(seq.to_string())),
            LogTail::StepsFrom(seq) => ("seq >= $3::bigint AND step IS NOT NULL", Some(seq.to_string())),
            LogTail::StepPrefix(prefix) => ("starts_with(step, $3)", Some(prefix.to_string())),
            LogTail::Step(step) => ("step = $3", Some(step.to_string())),
        };
        let sql = format!("SELECT {LINE_COLUMNS} FROM build_logs WHERE run_id = $1 AND ({filter}) ORDER BY seq DESC LIMIT $2");
        let mut query = sqlx::query_as::<_, LineRow>(&sql).bind(run_id).bind(limit.clamp(1, MAX_PAGE));
        if let Some(p) = param {
            query = query.bind(p);
        }
        let mut rows = query.fetch_all(self.pool()).await?;
        rows.reverse();
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The phase of a run's last line that is not a `system` line (where the
    /// run was when it stopped), with the sequence number of that phase's first line.
    pub async fn last_work_phase(&self, run_id: &str) -> Result<Option<(String, i64)>> {
        let last: Option<(String,)> =
            sqlx::query_as("SELECT phase FROM build_logs WHERE run_id = $1 AND phase <> 'system' ORDER BY seq DESC LIMIT 1")
                .bind(run_id)
                .fetch_optional(self.pool())
                .await?;
        let Some((phase,)) = last else { return Ok(None) };
        let (first,): (Option<i64>,) = sqlx::query_as("SELECT min(seq) FROM build_logs WHERE run_id = $1 AND phase = $2")
            .bind(run_id)
            .bind(&phase)
            .fetch_one(self.pool())
            .await?;
        Ok(Some((phase, first.unwrap_or_default())))
    }

    /// The runner's own `building <service> → <ref>` lines of a run, in order.
    pub async fn build_start_lines(&self, run_id: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT line FROM build_logs WHERE run_id = $1 AND phase = 'build' AND step IS NULL AND stream = 'system'
               AND starts_with(line, 'building ') ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(line,)| line).collect())
    }

    /// The step of the last line of `phase` that has one.
    pub async fn last_step_in_phase(&self, run_id: &str, phase: &str) -> Result<Option<String>> {
        let step: Option<(String,)> = sqlx::query_as(
            "SELECT step FROM build_logs WHERE run_id = $1 AND phase = $2 AND step IS NOT NULL ORDER BY seq DESC LIMIT 1",
        )
        .bind(run_id)
        .bind(phase)
        .fetch_optional(self.pool())
        .await?;
        Ok(step.map(|(s,)| s))
    }

    /// `(seq, step)` of every legacy-builder step start (`Step N/M : …`
    /// announced by a `▶ ` system line) of a run, in order.
    pub async fn legacy_step_starts(&self, run_id: &str) -> Result<Vec<(i64, String)>> {
        Ok(sqlx::query_as(
            "SELECT seq, step FROM build_logs WHERE run_id = $1 AND phase = 'build' AND stream = 'system'
               AND step IS NOT NULL AND starts_with(step, 'Step ') AND starts_with(line, '▶ ') ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?)
    }
}

/// Which lines [`Store::log_tail`] takes the last of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTail<'a> {
    /// Every line.
    All,
    /// Lines from this sequence number on.
    From(i64),
    /// Lines with a step, from this sequence number on.
    StepsFrom(i64),
    /// Lines whose step starts with this text (a BuildKit stage: `[build `).
    StepPrefix(&'a str),
    /// Lines of exactly this step.
    Step(&'a str),
}
