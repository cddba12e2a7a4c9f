//! Build logs, in one place: how lines are captured and stored
//! ([`writer`]), how they are read back — pages, search, the facts diagnosis
//! needs ([`read`]) — and how live followers in every process get them
//! ([`hub`]). The Postgres NOTIFY channels the three talk through are named
//! here and nowhere else.
//!
//! The wire types (`LogLine`, `LogPage`, the websocket frames) are
//! [`slipway_model::logs`]; the websocket route is `server/src/ws.rs` and the
//! log view `app/src/logview.rs`.

pub mod hub;
pub mod read;
pub mod writer;

pub use hub::{FollowEvent, Follower, HubConfig, LogHub, RunEnd};
pub use writer::{start_writer, LogRecord, LogSink, LogWriter, Masker, MemoryLog, Phase, Stream, MASK};

/// Channel the log writer notifies after each stored batch, with payload
/// `<run_id>:<last seq>`.
pub const LOGS_CHANNEL: &str = "build_logs";
/// Channel notified when a run ends, with payload `<run_id>`
/// ([`crate::Store::finish_run`]); followers then read to the end.
pub const RUNS_CHANNEL: &str = "build_runs";
