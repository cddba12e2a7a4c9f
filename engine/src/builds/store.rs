//! Build specs, runs, artifacts, and the run queue (claimed with
//! `FOR NO KEY UPDATE SKIP LOCKED` under a lease renewed by heartbeats).

use std::time::Duration;

use chrono::{DateTime, Utc};
use slipway_model::build::{
    BuildArgs, BuildArtifact, BuildCursor, BuildDetail, BuildListQuery, BuildPage, BuildRun, BuildSpec, BuildSummary,
};
use slipway_model::id::{self, ARTIFACT, BUILD, MANIFEST, RUN};
use slipway_model::status::BuildRunStatus;
use slipway_model::AppError;

use super::{CANCEL_CHANNEL, QUEUE_CHANNEL};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::worker::notify;

#[derive(sqlx::FromRow)]
struct SpecRow {
    id: String,
    project_id: String,
    project_slug: String,
    git_sha: String,
    manifest_hash: String,
    services: Option<Vec<String>>,
    inputs: serde_json::Value,
    registry: Option<serde_json::Value>,
    cache: Option<serde_json::Value>,
    build_args: serde_json::Value,
    force_rebuild: bool,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<SpecRow> for BuildSpec {
    fn from(r: SpecRow) -> Self {
        BuildSpec {
            id: r.id,
            project_id: r.project_id,
            project_slug: r.project_slug,
            git_sha: r.git_sha,
            manifest_hash: r.manifest_hash,
            services: r.services,
            inputs: r.inputs,
            registry: r.registry,
            cache: r.cache,
            build_args: serde_json::from_value(r.build_args).unwrap_or_default(),
            force_rebuild: r.force_rebuild,
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

const SPEC_COLUMNS: &str = "b.id, b.project_id, p.slug AS project_slug, b.git_sha, b.manifest_hash, b.services, b.inputs, \
     b.registry, b.cache, b.build_args, b.force_rebuild, b.created_by, b.created_at";

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    build_id: String,
    seq: i32,
    status: String,
    backend: Option<String>,
    runner_ref: Option<String>,
    error_message: Option<String>,
    error_code: Option<String>,
    failed_step: Option<String>,
    reused_from_run_id: Option<String>,
    cancel_requested: bool,
    force_rebuild: bool,
    attempt: i32,
    timeout_seconds: Option<i32>,
    queued_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
}

impl TryFrom<RunRow> for BuildRun {
    type Error = Error;
    fn try_from(r: RunRow) -> Result<Self> {
        let status: BuildRunStatus =
            r.status.parse().map_err(|e| Error::CorruptRow(format!("run {} has an unknown status: {e}", r.id)))?;
        Ok(BuildRun {
            id: r.id,
            build_id: r.build_id,
            seq: r.seq,
            status,
            backend: r.backend,
            runner_ref: r.runner_ref,
            error_message: r.error_message,
            error_code: r.error_code,
            failed_step: r.failed_step,
            reused_from_run_id: r.reused_from_run_id,
            cancel_requested: r.cancel_requested,
            force_rebuild: r.force_rebuild,
            attempt: r.attempt,
            timeout_seconds: r.timeout_seconds,
            queued_at: r.queued_at,
            started_at: r.started_at,
            completed_at: r.completed_at,
        })
    }
}

const RUN_COLUMNS: &str = "r.id, r.build_id, r.seq, r.status, r.backend, r.runner_ref, r.error_message, r.error_code, \
     r.failed_step, r.reused_from_run_id, r.cancel_requested, r.force_rebuild, r.attempt, r.timeout_seconds, r.queued_at, r.started_at, r.completed_at";

#[derive(sqlx::FromRow)]
struct ArtifactRow {
    id: String,
    run_id: String,
    service_name: String,
    image_ref: String,
    digest: String,
    platforms: Option<Vec<String>>,
    size_bytes: Option<i64>,
}

impl From<ArtifactRow> for BuildArtifact {
    fn from(r: ArtifactRow) -> Self {
        BuildArtifact {
            id: r.id,
            run_id: r.run_id,
            service_name: r.service_name,
            image_ref: r.image_ref,
            digest: r.digest,
            platforms: r.platforms.unwrap_or_default(),
            size_bytes: r.size_bytes,
        }
    }
}

/// What a new spec records.
#[derive(Debug, Clone)]
pub struct SpecInsert {
    pub project_id: String,
    pub git_sha: String,
    pub manifest_hash: String,
    /// Sorted, de-duplicated; `None` = all services.
    pub services: Option<Vec<String>>,
    pub inputs: serde_json::Value,
    pub registry: Option<serde_json::Value>,
    pub cache: Option<serde_json::Value>,
    pub build_args: BuildArgs,
    pub force_rebuild: bool,
    pub idempotency_key: Option<String>,
    pub created_by: Option<String>,
}

/// A run a worker has claimed, with its lease.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    pub run: BuildRun,
    pub worker: String,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum RunOutcome {
    Completed { reused_from: Option<String> },
    Failed { code: String, message: String, failed_step: Option<String> },
    Cancelled { message: String },
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Lease renewed; keep going.
    Renewed,
    /// Someone asked to cancel this run.
    CancelRequested,
    /// The lease is no longer ours (expired and taken over, or the run ended).
    Lost,
}

/// An artifact to record.
#[derive(Debug, Clone)]
pub struct ArtifactInsert {
    pub service_name: String,
    pub image_ref: String,
    pub digest: String,
    pub platforms: Vec<String>,
    pub size_bytes: Option<i64>,
}


/// Managed build args whose value is new for every build or run.
const PER_BUILD_ARGS: [&str; 2] = ["BUILD_ID", "BUILD_GENERATION"];

impl Store {
    /// Records the manifest of a commit (once per project and sha).
    #[tracing::instrument(skip_all, fields(project = %project_id, sha = %git_sha))]
    pub async fn record_manifest(
        &self,
        project_id: &str,
        git_sha: &str,
        hash: &str,
        content: &str,
        parsed: &serde_json::Value,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO manifests (id, project_id, git_sha, hash, content, parsed) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (project_id, git_sha) DO NOTHING",
        )
        .bind(id::new_id(MANIFEST))
        .bind(project_id)
        .bind(git_sha)
        .bind(hash)
        .bind(content)
        .bind(parsed)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The manifest text recorded for a commit.
    pub async fn manifest_content(&self, project_id: &str, git_sha: &str) -> Result<Option<(String, String)>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT hash, content FROM manifests WHERE project_id = $1 AND git_sha = $2")
                .bind(project_id)
                .bind(git_sha)
                .fetch_optional(self.pool())
                .await?;
        Ok(row)
    }

    /// Inserts a spec; with an idempotency key already used in this project,
    /// returns the existing spec instead (and `false`).
    #[tracing::instrument(skip_all, fields(project = %spec.project_id))]
    pub async fn create_build_spec(&self, spec: &SpecInsert) -> Result<(BuildSpec, bool)> {
        let build_args = serde_json::to_value(&spec.build_args).map_err(|e| Error::Internal(format!("encoding build args: {e}")))?;
        let inserted: Option<(String,)> = sqlx::query_as(
            "INSERT INTO build_specs (id, project_id, git_sha, manifest_hash, services, inputs, registry, cache, build_args,
                                      force_rebuild, idempotency_key, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (project_id, idempotency_key) DO NOTHING
             RETURNING id",
        )
        .bind(id::new_id(BUILD))
        .bind(&spec.project_id)
        .bind(&spec.git_sha)
        .bind(&spec.manifest_hash)
        .bind(&spec.services)
        .bind(&spec.inputs)
        .bind(&spec.registry)
        .bind(&spec.cache)
        .bind(&build_args)
        .bind(spec.force_rebuild)
        .bind(&spec.idempotency_key)
        .bind(&spec.created_by)
        .fetch_optional(self.pool())
        .await?;
        match inserted {
            Some((id,)) => Ok((self.get_build_spec(&id).await?, true)),
            None => {
                let (id,): (String,) =
                    sqlx::query_as("SELECT id FROM build_specs WHERE project_id = $1 AND idempotency_key = $2")
                        .bind(&spec.project_id)
                        .bind(&spec.idempotency_key)
                        .fetch_one(self.pool())
                        .await?;
                let existing = self.get_build_spec(&id).await?;
                if existing.git_sha != spec.git_sha || existing.services != spec.services {
                    return Err(AppError::conflict(format!(
                        "idempotency_key: already used by build {} for a different sha or services",
                        existing.id
                    ))
                    .into());
                }
                Ok((existing, false))
            }
        }
    }

    pub async fn get_build_spec(&self, build_id: &str) -> Result<BuildSpec> {
        let row: Option<SpecRow> = sqlx::query_as(&format!(
            "SELECT {SPEC_COLUMNS} FROM build_specs b JOIN projects p ON p.id = b.project_id WHERE b.id = $1"
        ))
        .bind(build_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(Into::into).ok_or_else(|| AppError::not_found(format!("build `{build_id}`")).into())
    }

    /// Queues a new run of a spec. Refused while another run of it is pending or building.
    #[tracing::instrument(skip_all, fields(build = %build_id))]
    pub async fn enqueue_run(&self, build_id: &str, timeout_seconds: Option<i32>, force_rebuild: bool) -> Result<BuildRun> {
        let res: std::result::Result<RunRow, sqlx::Error> = sqlx::query_as(&format!(
            "INSERT INTO build_runs AS r (id, build_id, seq, timeout_seconds, force_rebuild)
             VALUES ($1, $2, (SELECT coalesce(max(seq), 0) + 1 FROM build_runs WHERE build_id = $2), $3, $4)
             RETURNING {RUN_COLUMNS}"
        ))
        .bind(id::new_id(RUN))
        .bind(build_id)
        .bind(timeout_seconds)
        .bind(force_rebuild)
        .fetch_one(self.pool())
        .await;
        match res {
            Ok(row) => {
                notify(self.pool(), QUEUE_CHANNEL, build_id).await?;
                row.try_into()
            }
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                let active: Option<(String,)> = sqlx::query_as(
                    "SELECT id FROM build_runs WHERE build_id = $1 AND status IN ('pending', 'building')",
                )
                .bind(build_id)
                .fetch_optional(self.pool())
                .await?;
                Err(AppError::conflict(format!(
                    "build {build_id} already has an active run{}; cancel it or wait for it to finish",
                    active.map(|(id,)| format!(" ({id})")).unwrap_or_default()
                ))
                .into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Claims the oldest pending run for `worker`, under a lease.
    #[tracing::instrument(skip_all, fields(worker = %worker))]
    pub async fn claim_run(&self, worker: &str, lease: Duration, backend: &str) -> Result<Option<ClaimedRun>> {
        let row: Option<RunRow> = sqlx::query_as(&format!(
            "WITH next AS (
                 SELECT id FROM build_runs WHERE status = 'pending'
                 ORDER BY queued_at, id LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED)
             UPDATE build_runs r SET status = 'building', started_at = now(), lease_owner = $1,
                    lease_expires_at = now() + make_interval(secs => $2), heartbeat_at = now(),
                    attempt = r.attempt + 1, runner_ref = $1, backend = $3
             FROM next WHERE r.id = next.id
             RETURNING {RUN_COLUMNS}"
        ))
        .bind(worker)
        .bind(lease.as_secs_f64())
        .bind(backend)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(r) => Ok(Some(ClaimedRun { run: r.try_into()?, worker: worker.to_string() })),
            None => Ok(None),
        }
    }

    /// Renews the lease; tells whether to go on, stop for a cancel, or give up.
    pub async fn heartbeat(&self, run_id: &str, worker: &str, lease: Duration) -> Result<Heartbeat> {
        let row: Option<(bool,)> = sqlx::query_as(
            "UPDATE build_runs SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => $3)
             WHERE id = $1 AND lease_owner = $2 AND status = 'building'
             RETURNING cancel_requested",
        )
        .bind(run_id)
        .bind(worker)
        .bind(lease.as_secs_f64())
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            None => Heartbeat::Lost,
            Some((true,)) => Heartbeat::CancelRequested,
            Some((false,)) => Heartbeat::Renewed,
        })
    }

    /// Ends a claimed run. Returns false when the lease was no longer ours.
    #[tracing::instrument(skip_all, fields(run = %run_id))]
    pub async fn finish_run(&self, run_id: &str, worker: &str, outcome: &RunOutcome) -> Result<bool> {
        let (status, code, message, step, reused): (&str, Option<&str>, Option<&str>, Option<&str>, Option<&str>) =
            match outcome {
                RunOutcome::Completed { reused_from } => ("completed", None, None, None, reused_from.as_deref()),
                RunOutcome::Failed { code, message, failed_step } => {
                    ("failed", Some(code.as_str()), Some(message.as_str()), failed_step.as_deref(), None)
                }
                RunOutcome::Cancelled { message } => ("cancelled", None, Some(message.as_str()), None, None),
            };
        let done = sqlx::query(
            "UPDATE build_runs SET status = $3, error_code = $4, error_message = $5, failed_step = $6,
                    reused_from_run_id = $7, completed_at = now(), lease_owner = NULL, lease_expires_at = NULL
             WHERE id = $1 AND lease_owner = $2 AND status = 'building'",
        )
        .bind(run_id)
        .bind(worker)
        .bind(status)
        .bind(code)
        .bind(message)
        .bind(step)
        .bind(reused)
        .execute(self.pool())
        .await?;
        notify(self.pool(), crate::logs::RUNS_CHANNEL, run_id).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Runs whose worker stopped renewing its lease: queued again while
    /// attempts remain, else failed with a message saying why. Returns how
    /// many were requeued and failed.
    #[tracing::instrument(skip_all)]
    pub async fn reap_expired_runs(&self, max_attempts: i32) -> Result<(u64, u64)> {
        let requeued = sqlx::query(
            "UPDATE build_runs SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, queued_at = now()
             WHERE status = 'building' AND lease_expires_at < now() AND attempt < $1 AND NOT cancel_requested",
        )
        .bind(max_attempts)
        .execute(self.pool())
        .await?
        .rows_affected();
        let failed = sqlx::query(
            "UPDATE build_runs SET
                 status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'failed' END,
                 error_code = CASE WHEN cancel_requested THEN NULL ELSE 'unknown' END,
                 error_message = CASE WHEN cancel_requested
                     THEN 'cancelled; its worker (' || lease_owner || ') stopped before it could stop the build'
                     ELSE 'its worker (' || lease_owner || ') stopped renewing the lease ' || attempt ||
                          ' time(s); the build did not finish. Run it again.' END,
                 completed_at = now(), lease_owner = NULL, lease_expires_at = NULL
             WHERE status = 'building' AND lease_expires_at < now()",
        )
        .execute(self.pool())
        .await?
        .rows_affected();
        if requeued > 0 {
            notify(self.pool(), QUEUE_CHANNEL, "requeued").await?;
        }
        Ok((requeued, failed))
    }

    /// Asks to cancel a build's active run: a pending run is cancelled at
    /// once; a building one is stopped by its worker within a heartbeat.
    #[tracing::instrument(skip_all, fields(build = %build_id))]
    pub async fn request_cancel(&self, build_id: &str) -> Result<BuildRun> {
        let pending: Option<RunRow> = sqlx::query_as(&format!(
            "UPDATE build_runs r SET status = 'cancelled', cancel_requested = true, completed_at = now(),
                    error_message = 'cancelled before it started'
             WHERE build_id = $1 AND status = 'pending' RETURNING {RUN_COLUMNS}"
        ))
        .bind(build_id)
        .fetch_optional(self.pool())
        .await?;
        if let Some(r) = pending {
            return r.try_into();
        }
        let building: Option<RunRow> = sqlx::query_as(&format!(
            "UPDATE build_runs r SET cancel_requested = true
             WHERE build_id = $1 AND status = 'building' RETURNING {RUN_COLUMNS}"
        ))
        .bind(build_id)
        .fetch_optional(self.pool())
        .await?;
        match building {
            Some(r) => {
                notify(self.pool(), CANCEL_CHANNEL, &r.id).await?;
                r.try_into()
            }
            None => {
                self.get_build_spec(build_id).await?;
                Err(AppError::conflict(format!("build {build_id} has no pending or building run to cancel")).into())
            }
        }
    }

    pub async fn get_run(&self, run_id: &str) -> Result<BuildRun> {
        let row: Option<RunRow> = sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM build_runs r WHERE r.id = $1"))
            .bind(run_id)
            .fetch_optional(self.pool())
            .await?;
        row.ok_or_else(|| Error::from(AppError::not_found(format!("run `{run_id}`"))))?.try_into()
    }

    /// Runs of a build, newest first.
    pub async fn list_runs(&self, build_id: &str) -> Result<Vec<BuildRun>> {
        let rows: Vec<RunRow> =
            sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM build_runs r WHERE r.build_id = $1 ORDER BY r.seq DESC"))
                .bind(build_id)
                .fetch_all(self.pool())
                .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// The newest successful run with artifacts for the same project, sha,
    /// manifest, services, build args and registry, and where its artifacts
    /// came from (the run that built them).
    pub async fn find_reusable_run(&self, spec: &BuildSpec) -> Result<Option<String>> {
        // These managed args differ for every build (or run), so an image
        // built with one of them embeds a value no other build may reuse.
        if spec.build_args.managed.iter().any(|m| PER_BUILD_ARGS.contains(&m.as_str())) {
            return Ok(None);
        }
        let build_args = serde_json::to_value(&spec.build_args).map_err(|e| Error::Internal(format!("encoding build args: {e}")))?;
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT r.id, r.reused_from_run_id FROM build_runs r JOIN build_specs b ON b.id = r.build_id
             WHERE b.project_id = $1 AND b.git_sha = $2 AND b.manifest_hash = $3
               AND b.services IS NOT DISTINCT FROM $4 AND b.build_args = $5 AND b.registry IS NOT DISTINCT FROM $6
               AND b.inputs = $7
               AND r.status = 'completed'
               AND EXISTS (SELECT 1 FROM build_artifacts a WHERE a.run_id = r.id)
             ORDER BY r.completed_at DESC LIMIT 1",
        )
        .bind(&spec.project_id)
        .bind(&spec.git_sha)
        .bind(&spec.manifest_hash)
        .bind(&spec.services)
        .bind(&build_args)
        .bind(&spec.registry)
        .bind(&spec.inputs)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|(id, from)| from.unwrap_or(id)))
    }

    /// Copies a run's artifacts onto another run (reuse).
    pub async fn copy_artifacts(&self, from_run: &str, to_run: &str, to_build: &str) -> Result<u64> {
        let artifacts = self.run_artifacts(from_run).await?;
        for a in &artifacts {
            self.insert_artifact(
                to_run,
                to_build,
                &ArtifactInsert {
                    service_name: a.service_name.clone(),
                    image_ref: a.image_ref.clone(),
                    digest: a.digest.clone(),
                    platforms: a.platforms.clone(),
                    size_bytes: a.size_bytes,
                },
            )
            .await?;
        }
        Ok(artifacts.len() as u64)
    }

    pub async fn insert_artifact(&self, run_id: &str, build_id: &str, a: &ArtifactInsert) -> Result<BuildArtifact> {
        let row: ArtifactRow = sqlx::query_as(
            "INSERT INTO build_artifacts (id, run_id, build_id, service_name, image_ref, digest, platforms, size_bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             RETURNING id, run_id, service_name, image_ref, digest, platforms, size_bytes",
        )
        .bind(id::new_id(ARTIFACT))
        .bind(run_id)
        .bind(build_id)
        .bind(&a.service_name)
        .bind(&a.image_ref)
        .bind(&a.digest)
        .bind(&a.platforms)
        .bind(a.size_bytes)
        .fetch_one(self.pool())
        .await?;
        Ok(row.into())
    }

    pub async fn run_artifacts(&self, run_id: &str) -> Result<Vec<BuildArtifact>> {
        let rows: Vec<ArtifactRow> = sqlx::query_as(
            "SELECT id, run_id, service_name, image_ref, digest, platforms, size_bytes
             FROM build_artifacts WHERE run_id = $1 ORDER BY service_name",
        )
        .bind(run_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The artifacts of a build's newest completed run.
    pub async fn build_artifacts(&self, build_id: &str) -> Result<Vec<BuildArtifact>> {
        let run: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM build_runs WHERE build_id = $1 AND status = 'completed' ORDER BY seq DESC LIMIT 1",
        )
        .bind(build_id)
        .fetch_optional(self.pool())
        .await?;
        match run {
            Some((run_id,)) => self.run_artifacts(&run_id).await,
            None => Ok(Vec::new()),
        }
    }

    /// A spec, its runs and its artifacts.
    pub async fn get_build(&self, build_id: &str) -> Result<BuildDetail> {
        let spec = self.get_build_spec(build_id).await?;
        let runs = self.list_runs(build_id).await?;
        let artifacts = self.build_artifacts(build_id).await?;
        Ok(BuildDetail { spec, runs, artifacts })
    }

    /// The next free log sequence number of a run.
    pub async fn next_log_seq(&self, run_id: &str) -> Result<i64> {
        let (next,): (i64,) = sqlx::query_as("SELECT coalesce(max(seq) + 1, 0) FROM build_logs WHERE run_id = $1")
            .bind(run_id)
            .fetch_one(self.pool())
            .await?;
        Ok(next)
    }

    /// Builds, newest first, filtered and paged by keyset.
    #[tracing::instrument(skip_all)]
    /// `visible`: when given, only builds of these projects.
    pub async fn list_builds(&self, q: &BuildListQuery, visible: Option<&[String]>) -> Result<BuildPage> {
        let limit = q.limit.unwrap_or(50).clamp(1, 200) as i64;
        let project_id = match &q.project {
            Some(p) if !p.trim().is_empty() => Some(self.get_project(p).await?.id),
            _ => None,
        };
        #[derive(sqlx::FromRow)]
        struct Row {
            id: String,
            project_slug: String,
            git_sha: String,
            services: Option<Vec<String>>,
            created_at: DateTime<Utc>,
            status: Option<String>,
            run_id: Option<String>,
            started_at: Option<DateTime<Utc>>,
            completed_at: Option<DateTime<Utc>>,
            reused_from_run_id: Option<String>,
            release_tag: Option<String>,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT b.id, p.slug AS project_slug, b.git_sha, b.services, b.created_at,
                    r.status, r.id AS run_id, r.started_at, r.completed_at, r.reused_from_run_id,
                    (SELECT tag FROM releases rel WHERE rel.build_id = b.id ORDER BY rel.created_at DESC LIMIT 1) AS release_tag
             FROM build_specs b JOIN projects p ON p.id = b.project_id
             LEFT JOIN LATERAL (SELECT * FROM build_runs r WHERE r.build_id = b.id ORDER BY r.seq DESC LIMIT 1) r ON true
             WHERE ($1::text IS NULL OR b.project_id = $1)
               AND ($2::text IS NULL OR r.status = $2)
               AND ($3::timestamptz IS NULL OR (b.created_at, b.id) < ($3, $4))
               AND ($6::text[] IS NULL OR b.project_id = ANY($6))
             ORDER BY b.created_at DESC, b.id DESC
             LIMIT $5",
        )
        .bind(project_id)
        .bind(q.status.map(|s| s.as_str()))
        .bind(q.before.as_ref().map(|c| c.created_at))
        .bind(q.before.as_ref().map(|c| c.id.clone()))
        .bind(limit + 1)
        .bind(visible)
        .fetch_all(self.pool())
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for r in rows {
            items.push(BuildSummary {
                status: r.status.as_deref().map(str::parse).transpose().map_err(|e| Error::CorruptRow(format!("{e}")))?,
                id: r.id,
                project_slug: r.project_slug,
                git_sha: r.git_sha,
                services: r.services,
                created_at: r.created_at,
                run_id: r.run_id,
                started_at: r.started_at,
                completed_at: r.completed_at,
                reused_from_run_id: r.reused_from_run_id,
                release_tag: r.release_tag,
            });
        }
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|l| BuildCursor { created_at: l.created_at, id: l.id.clone() })
        } else {
            None
        };
        Ok(BuildPage { items, next })
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

    /// Records the one run of an imported build: completed, by `import`,
    /// with `runner_ref` saying where it came from. Returns its id.
    #[tracing::instrument(skip_all, fields(build = %build_id))]
    pub async fn insert_imported_run(&self, build_id: &str, runner_ref: &str) -> Result<String> {
        let run_id = id::new_id(RUN);
        sqlx::query(
            "INSERT INTO build_runs (id, build_id, seq, status, backend, runner_ref, started_at, completed_at)
             VALUES ($1, $2, 1, 'completed', 'import', $3, now(), now())",
        )
        .bind(&run_id)
        .bind(build_id)
        .bind(runner_ref)
        .execute(self.pool())
        .await?;
        Ok(run_id)
    }

}
