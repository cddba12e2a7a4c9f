//! Build log lines as the API sends them (websocket, paged HTTP, CLI), and the
//! plain-text helpers every text view shares: ANSI stripping and the
//! `[HH:MM:SS] ` prefix.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::status::BuildRunStatus;

/// Lines a log page holds unless asked otherwise.
pub const DEFAULT_PAGE: i64 = 1000;
/// The most lines one log page may hold.
pub const MAX_PAGE: i64 = 10_000;

/// One stored line of a run's output. `line` keeps its ANSI colour codes
/// (already masked: secrets never reach this type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Run-wide sequence number, from 0, without gaps.
    pub seq: i64,
    pub ts: DateTime<Utc>,
    /// `clone`, `checkout`, `workspace`, `build`, `push`, `record` or `system`.
    pub phase: String,
    /// The BuildKit vertex (e.g. `[build 3/5] RUN pnpm install`) or other step.
    pub step: Option<String>,
    /// `stdout`, `stderr` or `system` (Slipway's own messages).
    pub stream: String,
    pub line: String,
}

/// One page of a run's log (`GET /api/builds/{build}/logs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPage {
    pub run_id: String,
    pub run_status: BuildRunStatus,
    /// In sequence order.
    pub lines: Vec<LogLine>,
    /// The `after` to ask for the next page with: the last sequence number
    /// scanned. `None` when this page is the end of a finished run's log (a
    /// running build always gets one, since more lines may come).
    pub next_after: Option<i64>,
}

/// A text frame of the log websocket (`/ws/builds/{build}/logs`), as JSON
/// tagged by `type`:
/// `{"type":"lines","lines":[…]}` and, once, `{"type":"end","status":…,"error_code":…,"error_message":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogStreamMessage {
    /// The next lines, in sequence order, each exactly once.
    Lines { lines: Vec<LogLine> },
    /// The run ended and every line was sent; a Close frame (1000) follows.
    End { status: BuildRunStatus, error_code: Option<String>, error_message: Option<String> },
}

/// `text` without ANSI escape sequences (colours, cursor moves, OSC titles
/// and links), for search and plain-text views.
pub fn strip_ansi(text: &str) -> String {
    crate::ansi::strip(text)
}

/// A line as text views show it: `[HH:MM:SS] text` (UTC), ANSI stripped.
pub fn text_line(line: &LogLine) -> String {
    format!("[{}] {}", line.ts.format("%H:%M:%S"), strip_ansi(&line.line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn text_lines_carry_a_utc_time_prefix() {
        let l = LogLine {
            seq: 3,
            ts: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().expect("valid time"),
            phase: "build".into(),
            step: None,
            stream: "stdout".into(),
            line: "\u{1b}[32mok\u{1b}[0m".into(),
        };
        assert_eq!(text_line(&l), "[03:04:05] ok");
    }
}
