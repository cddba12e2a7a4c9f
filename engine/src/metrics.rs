//! The operational metrics the engine records, named once here: build runs,
//! build and queue durations, log lines, deployments, approvals and gate
//! decisions. They go through the `metrics` facade: a process that installs
//! no recorder (tests, tools) records nothing, and the server exposes them at
//! `/metrics` in Prometheus' text format (see `slipway_server::metrics`).
//!
//! Every series is this process's own: with several replicas, Prometheus
//! scrapes each and sums them. Label values come from closed sets (status,
//! backend, diagnosis class, outcome) or from names an administrator chose
//! (environments), never from request input.

use std::time::Duration;

/// Build runs that ended, by `status`, `backend` and diagnosis `class`.
pub const BUILD_RUNS: &str = "slipway_build_runs_total";
/// How long a run took from its start to its end.
pub const BUILD_DURATION: &str = "slipway_build_duration_seconds";
/// How long a run waited between being queued and being claimed.
pub const QUEUE_WAIT: &str = "slipway_build_queue_wait_seconds";
/// Log lines stored (and so sent to followers).
pub const LOG_LINES: &str = "slipway_log_lines_ingested_total";
/// Deployments that ended, by `environment` and `outcome`.
pub const DEPLOYMENTS: &str = "slipway_deployments_total";
/// How long an approved deployment waited for its approvals.
pub const APPROVAL_WAIT: &str = "slipway_approval_wait_seconds";
/// Gate decisions on deployments, by `decision` (approved, rejected, waiting).
pub const GATE_DECISIONS: &str = "slipway_gate_decisions_total";

/// Histogram buckets (seconds) for build durations and waits: from a cache
/// hit to an hour-long build.
pub const BUILD_BUCKETS: &[f64] = &[0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];
/// Histogram buckets (seconds) for approvals: minutes to days.
pub const APPROVAL_BUCKETS: &[f64] = &[60.0, 300.0, 900.0, 3600.0, 4.0 * 3600.0, 86400.0, 7.0 * 86400.0];

/// A build run ended.
pub fn build_run_ended(backend: &str, status: &str, class: Option<&str>, ran: Duration) {
    let labels = [("status", status.to_string()), ("backend", backend.to_string()), ("class", class.unwrap_or("").to_string())];
    metrics::counter!(BUILD_RUNS, &labels).increment(1);
    metrics::histogram!(BUILD_DURATION, "backend" => backend.to_string()).record(ran.as_secs_f64());
}

/// A build run was claimed after waiting `waited` in the queue.
pub fn build_run_claimed(backend: &str, waited: Duration) {
    metrics::histogram!(QUEUE_WAIT, "backend" => backend.to_string()).record(waited.as_secs_f64());
}

/// `n` log lines were stored.
pub fn log_lines_ingested(n: usize) {
    metrics::counter!(LOG_LINES).increment(n as u64);
}

/// A deployment ended (`succeeded`, `failed`, `superseded`, …).
pub fn deployment_ended(environment: &str, outcome: &str) {
    metrics::counter!(DEPLOYMENTS, "environment" => environment.to_string(), "outcome" => outcome.to_string()).increment(1);
}

/// A deployment's gate decided (`approved`, `rejected`, `waiting`, `open`).
pub fn gate_decided(decision: &'static str) {
    metrics::counter!(GATE_DECISIONS, "decision" => decision).increment(1);
}

/// A deployment was approved after waiting `waited` since it was requested.
pub fn approval_waited(environment: &str, waited: Duration) {
    metrics::histogram!(APPROVAL_WAIT, "environment" => environment.to_string()).record(waited.as_secs_f64());
}

/// How long ago `t` was (zero when it lies in the future: clocks differ between replicas).
pub fn since(t: chrono::DateTime<chrono::Utc>) -> Duration {
    (chrono::Utc::now() - t).to_std().unwrap_or_default()
}

impl crate::Store {
    /// Build runs waiting in the queue, all replicas together.
    pub async fn queued_run_count(&self) -> crate::Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM build_runs WHERE status = 'pending'").fetch_one(self.pool()).await?;
        Ok(n)
    }
}
