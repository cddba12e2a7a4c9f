//! Reading build logs: keyset pages by sequence number on the primary key
//! `(run_id, seq)`, a case-insensitive plain-text search that ignores ANSI
//! colour codes, and the newest run of a build. Lines are written by
//! [`crate::build::logs::start_writer`].

use chrono::{DateTime, Utc};
use slipway_model::logs::{LogLine, LogPage, MAX_PAGE};

use super::Store;
use crate::error::Result;

/// ANSI escape sequences as a Postgres regular expression: CSI sequences
/// (colours, cursor moves), OSC sequences (titles, links) and two-character
/// escapes. Same rules as [`slipway_model::logs::strip_ansi`].
const ANSI_RE: &str = r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\?)?|.)";

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
            "SELECT seq, ts, phase, step, stream, line FROM build_logs
             WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
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
                let rows: Vec<LineRow> = sqlx::query_as(
                    "SELECT seq, ts, phase, step, stream, line FROM build_logs
                     WHERE run_id = $1 AND seq > $2
                       AND strpos(lower(regexp_replace(line, $3, '', 'g')), lower($4)) > 0
                     ORDER BY seq LIMIT $5",
                )
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

    /// The newest run (highest run number) of a build, if it has one.
    pub async fn latest_run_id(&self, build_id: &str) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT id FROM build_runs WHERE build_id = $1 ORDER BY seq DESC LIMIT 1")
                .bind(build_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(id,)| id))
    }
}
