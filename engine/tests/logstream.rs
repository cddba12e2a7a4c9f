//! Live build logs through the `LogHub`, on a real Postgres (a fresh database
//! per test): the backlog → live hand-over under a fast producer, resuming,
//! two processes on one database, slow followers, a lost listener
//! connection, masking, paged reads, and a real BuildKit build followed live.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use slipway_engine::builds::buildkit::BuildKitBackend;
use slipway_engine::builds::create::create_build;
use slipway_engine::logs::{start_writer, LogSink, LogWriter, Masker, Phase, Stream, MASK};
use slipway_engine::builds::runner::{Runner, RunnerConfig};
use slipway_engine::embedded::BASE_IMAGE;
use slipway_engine::logs::{FollowEvent, Follower, HubConfig, LogHub};
use slipway_engine::builds::RunOutcome;
use slipway_engine::Store;
use slipway_model::build::NewBuild;
use slipway_model::project::NewProject;
use slipway_model::status::BuildRunStatus;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use slipway_testkit::git::repo;
use slipway_testkit::nonce;
use slipway_testkit::projects::project;
use slipway_testkit::records::record_spec;
use slipway_testkit::services::docker;

const WORKER: &str = "logstream-test";

/// A project and build spec whose runs the tests start and finish by hand.
struct Fixture {
    store: Store,
    build_id: String,
}

impl Fixture {
    async fn new(pool: PgPool) -> Fixture {
        let store = Store::from_pool(pool);
        let name = format!("logs-{}", nonce());
        let project = store
            .create_project(&NewProject { name, repo_url: "https://example.com/logs.git".into(), ..Default::default() }, None)
            .await
            .unwrap();
        let sha = "a".repeat(40);
        let hash = "b".repeat(64);
        let build_id = record_spec(&store, &project.id, &sha, &hash).await;
        Fixture { store, build_id }
    }

    /// Queues and claims a new run of the spec: it is `building`.
    async fn start_run(&self) -> String {
        let run = self.store.enqueue_run(&self.build_id, None, false).await.unwrap();
        let claimed = self.store.claim_run(WORKER, Duration::from_secs(600), "test").await.unwrap().expect("the queued run");
        assert_eq!(claimed.run.id, run.id);
        run.id
    }

    fn writer(&self, run_id: &str, masker: Masker) -> (LogSink, LogWriter) {
        start_writer(self.store.clone(), run_id.to_string(), 0, masker)
    }

    async fn finish(&self, run_id: &str, outcome: RunOutcome) {
        assert!(self.store.finish_run(run_id, WORKER, &outcome).await.unwrap());
    }
}

fn completed() -> RunOutcome {
    RunOutcome::Completed { reused_from: None }
}

/// `count` lines `line <seq>` in one chunk (no trailing newline: no empty line).
async fn write_lines(sink: &LogSink, first: usize, count: usize) {
    let text: Vec<String> = (first..first + count).map(|i| format!("line {i}")).collect();
    sink.line(Phase::Build, Some("[build 1/1] RUN produce"), Stream::Stdout, &text.join("\n")).await;
}

/// Everything a follower yields until its stream ends: the sequence numbers
/// of the lines, the lines' text, and the last event (end or too slow).
async fn collect(mut f: Follower) -> (Vec<i64>, Vec<String>, Option<FollowEvent>) {
    let (mut seqs, mut texts) = (Vec::new(), Vec::new());
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(60), f.next()).await.expect("the follower stalled");
        match ev {
            Some(FollowEvent::Lines(lines)) => {
                assert!(!lines.is_empty(), "an empty batch");
                for l in lines {
                    seqs.push(l.seq);
                    texts.push(l.line);
                }
            }
            other => return (seqs, texts, other),
        }
    }
}

fn is_completed_end(ev: &Option<FollowEvent>) -> bool {
    matches!(ev, Some(FollowEvent::End { status: BuildRunStatus::Completed, error_code: None, error_message: None }))
}

/// Polls `cond` every 20 ms for up to 30 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn followers_get_every_line_once_in_order_across_the_backlog_to_live_hand_over(pool: PgPool) {
    let fx = Fixture::new(pool).await;
    let seed: u64 = std::env::var("LOGSTREAM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("LOGSTREAM_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    for iteration in 0..50 {
        // Small pages and channels make the hub page, lag and fill holes often.
        let config = HubConfig {
            page: rng.gen_range(5..300),
            channel_batches: rng.gen_range(1..16),
            max_lag_lines: i64::MAX / 4,
            ..HubConfig::default()
        };
        let hub = LogHub::start_with(fx.store.clone(), config.clone());
        let run_id = fx.start_run().await;
        let (sink, writer) = fx.writer(&run_id, Masker::default());
        let total: usize = rng.gen_range(50..1500);
        let chunks: Vec<(usize, u64)> = {
            let mut v = Vec::new();
            let mut left = total;
            while left > 0 {
                let n = rng.gen_range(1..=left.min(250));
                v.push((n, rng.gen_range(0..2500)));
                left -= n;
            }
            v
        };
        let producer = tokio::spawn(async move {
            let mut next = 0;
            for (n, pause_us) in chunks {
                write_lines(&sink, next, n).await;
                next += n;
                if pause_us > 0 {
                    tokio::time::sleep(Duration::from_micros(pause_us)).await;
                }
            }
            drop(sink);
            writer.finish().await.unwrap()
        });
        let mut followers = Vec::new();
        for _ in 0..rng.gen_range(1..5) {
            let after: Option<i64> = if rng.gen_bool(0.3) { None } else { Some(rng.gen_range(-1..total as i64)) };
            let delay = Duration::from_micros(rng.gen_range(0..40_000));
            let hub = hub.clone();
            let run_id = run_id.clone();
            followers.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let (seqs, _, end) = collect(hub.follow(&run_id, after)).await;
                (after, seqs, end)
            }));
        }
        let stored = producer.await.unwrap();
        assert_eq!(stored, total as i64);
        fx.finish(&run_id, completed()).await;
        for f in followers {
            let (after, seqs, end) = f.await.unwrap();
            let from = after.map_or(0, |a| a + 1);
            let expected: Vec<i64> = (from..total as i64).collect();
            assert!(
                seqs == expected,
                "iteration {iteration} (seed {seed}, {config:?}, {total} lines, after {after:?}): got {} lines, first mismatch at {:?}",
                seqs.len(),
                seqs.iter().zip(&expected).position(|(a, b)| a != b)
            );
            assert!(is_completed_end(&end), "iteration {iteration}: ended with {end:?}");
        }
        hub.shutdown().await;
    }
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_follower_resumes_exactly_after_reconnecting(pool: PgPool) {
    let fx = Fixture::new(pool).await;
    let hub = LogHub::start(fx.store.clone());
    let run_id = fx.start_run().await;
    let (sink, writer) = fx.writer(&run_id, Masker::default());
    write_lines(&sink, 0, 150).await;

    let mut first = hub.follow(&run_id, None);
    let mut got = Vec::new();
    while got.len() < 100 {
        match tokio::time::timeout(Duration::from_secs(30), first.next()).await.unwrap() {
            Some(FollowEvent::Lines(lines)) => got.extend(lines.iter().map(|l| l.seq)),
            other => panic!("unexpected {other:?}"),
        }
    }
    let last = first.last_seq().expect("lines were delivered");
    assert_eq!(Some(&last), got.last());
    drop(first); // the connection drops

    write_lines(&sink, 150, 250).await;
    let resumed = tokio::spawn(collect(hub.follow(&run_id, Some(last))));
    write_lines(&sink, 400, 100).await;
    drop(sink);
    writer.finish().await.unwrap();
    fx.finish(&run_id, completed()).await;

    let (rest, _, end) = resumed.await.unwrap();
    assert!(is_completed_end(&end), "{end:?}");
    got.extend(rest);
    assert_eq!(got, (0..500).collect::<Vec<i64>>());
    hub.shutdown().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn two_hubs_on_separate_connections_both_stream_a_run_completely(pool: PgPool) {
    // A second "server process": its own pool, its own listener, same database.
    let other_pool =
        PgPoolOptions::new().max_connections(5).connect_with((*pool.connect_options()).clone()).await.unwrap();
    let fx = Fixture::new(pool).await;
    let hub_a = LogHub::start(fx.store.clone());
    let hub_b = LogHub::start(Store::from_pool(other_pool.clone()));
    eventually("both listeners", || hub_a.is_connected() && hub_b.is_connected()).await;

    let run_id = fx.start_run().await;
    let (sink, writer) = fx.writer(&run_id, Masker::default());
    write_lines(&sink, 0, 200).await;
    let on_a = tokio::spawn(collect(hub_a.follow(&run_id, None)));
    let on_b = tokio::spawn(collect(hub_b.follow(&run_id, None)));
    for i in 0..40 {
        write_lines(&sink, 200 + i * 50, 50).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(sink);
    writer.finish().await.unwrap();
    fx.finish(&run_id, completed()).await;

    let expected: Vec<i64> = (0..2200).collect();
    for (name, task) in [("a", on_a), ("b", on_b)] {
        let (seqs, texts, end) = task.await.unwrap();
        assert_eq!(seqs, expected, "hub {name}");
        assert_eq!(texts[2199], "line 2199");
        assert!(is_completed_end(&end), "hub {name}: {end:?}");
    }
    hub_a.shutdown().await;
    hub_b.shutdown().await;
    other_pool.close().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_slow_follower_is_dropped_and_never_blocks_the_writer(pool: PgPool) {
    let fx = Fixture::new(pool).await;
    let hub =
        LogHub::start_with(fx.store.clone(), HubConfig { max_lag_lines: 500, channel_batches: 4, page: 100, ..HubConfig::default() });
    let other_hub = LogHub::start(fx.store.clone());
    let run_id = fx.start_run().await;
    let (sink, writer) = fx.writer(&run_id, Masker::default());
    write_lines(&sink, 0, 1).await;

    // Follows, takes the first line, then stops reading.
    let mut slow = hub.follow(&run_id, None);
    let first = tokio::time::timeout(Duration::from_secs(30), slow.next()).await.unwrap();
    assert!(matches!(&first, Some(FollowEvent::Lines(l)) if l[0].seq == 0), "{first:?}");

    // A follower alongside it (on a hub with the default lag limit) gets everything.
    let fast = tokio::spawn(collect(other_hub.follow(&run_id, Some(0))));

    const N: usize = 20_000;
    let started = Instant::now();
    for chunk in 0..(N / 100) {
        write_lines(&sink, 1 + chunk * 100, 100).await;
    }
    drop(sink);
    let stored = writer.finish().await.unwrap();
    let took = started.elapsed();
    eprintln!("stored {N} lines in {took:?} ({:.0} lines/s) with a stalled follower", N as f64 / took.as_secs_f64());
    assert_eq!(stored, N as i64 + 1);
    // The writer finished while the slow follower still sits on its first line.
    assert_eq!(slow.last_seq(), Some(0));

    eventually("the feed to broadcast every line", || slow.live_head() == Some(N as i64)).await;
    match slow.next().await {
        Some(FollowEvent::TooSlow { last_seq, behind, max_lag }) => {
            assert_eq!(last_seq, Some(0));
            assert_eq!(max_lag, 500);
            assert!(behind > 500, "{behind}");
        }
        other => panic!("expected TooSlow, got {other:?}"),
    }
    assert_eq!(slow.next().await, None, "the stream ends after TooSlow");

    fx.finish(&run_id, completed()).await;
    let (seqs, _, end) = fast.await.unwrap();
    assert_eq!(seqs, (1..=N as i64).collect::<Vec<_>>());
    assert!(is_completed_end(&end), "{end:?}");
    hub.shutdown().await;
    other_hub.shutdown().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn followers_keep_streaming_while_the_listener_connection_is_lost(pool: PgPool) {
    let fx = Fixture::new(pool.clone()).await;
    let hub = LogHub::start(fx.store.clone());
    eventually("the listener", || hub.is_connected()).await;
    assert_eq!(hub.listener_connects(), 1);
    let run_id = fx.start_run().await;
    let (sink, writer) = fx.writer(&run_id, Masker::default());
    write_lines(&sink, 0, 10).await;
    let follower = tokio::spawn(collect(hub.follow(&run_id, None)));

    // Kill the hub's LISTEN connection from the server side.
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE '%LISTEN%build_%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(killed.len(), 1, "exactly one listener connection");
    for i in 0..20 {
        write_lines(&sink, 10 + i * 10, 10).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eventually("the listener to reconnect", || hub.listener_connects() == 2 && hub.is_connected()).await;
    write_lines(&sink, 210, 10).await;
    drop(sink);
    writer.finish().await.unwrap();
    fx.finish(&run_id, completed()).await;

    let (seqs, _, end) = follower.await.unwrap();
    assert_eq!(seqs, (0..220).collect::<Vec<i64>>());
    assert!(is_completed_end(&end), "{end:?}");
    hub.shutdown().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn without_notifications_followers_still_get_everything_by_polling(pool: PgPool) {
    let fx = Fixture::new(pool).await;
    let hub = LogHub::start_with(fx.store.clone(), HubConfig { listen: false, ..HubConfig::default() });
    let run_id = fx.start_run().await;
    let (sink, writer) = fx.writer(&run_id, Masker::default());
    write_lines(&sink, 0, 30).await;
    let mut follower = hub.follow(&run_id, None);
    let mut seqs = Vec::new();
    // The backlog, then live lines that only a poll can find (how fast: `cargo xtask bench logs`).
    for until in [30, 50] {
        while seqs.len() < until {
            let next = tokio::time::timeout(Duration::from_secs(10), follower.next()).await;
            match next.unwrap_or_else(|_| panic!("no lines for 10 s after seq {:?}: polling does not deliver", seqs.last())) {
                Some(FollowEvent::Lines(l)) => seqs.extend(l.iter().map(|l| l.seq)),
                other => panic!("unexpected {other:?}"),
            }
        }
        if until == 30 {
            write_lines(&sink, 30, 20).await;
        }
    }
    assert_eq!(seqs, (0..50).collect::<Vec<i64>>());
    assert!(!hub.is_connected());
    drop(sink);
    writer.finish().await.unwrap();
    fx.finish(&run_id, completed()).await;
    let (rest, _, end) = collect(follower).await;
    assert!(rest.is_empty(), "{rest:?}");
    assert!(is_completed_end(&end), "{end:?}");
    hub.shutdown().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_secret_is_absent_from_stored_and_streamed_lines(pool: PgPool) {
    let fx = Fixture::new(pool).await;
    let hub = LogHub::start(fx.store.clone());
    let run_id = fx.start_run().await;
    let secret = "tok-8f2c41d9e7";
    let (sink, writer) = fx.writer(&run_id, Masker::new([secret.to_string()]));
    let follower = tokio::spawn(collect(hub.follow(&run_id, None)));
    sink.line(Phase::Clone, None, Stream::Stderr, &format!("fetching https://x:{secret}@example.com/repo.git")).await;
    sink.line(Phase::Build, Some("[build 2/3] RUN echo"), Stream::Stdout, &format!("a\n\u{1b}[31m{secret}\u{1b}[0m\nTOKEN={secret}{secret}\n"))
        .await;
    drop(sink);
    writer.finish().await.unwrap();
    fx.finish(&run_id, RunOutcome::Failed { code: "build_error".into(), message: "RUN failed".into(), failed_step: None })
        .await;

    let (_, streamed, end) = follower.await.unwrap();
    assert_eq!(streamed.len(), 4);
    let stored: Vec<(String,)> =
        sqlx::query_as("SELECT line FROM build_logs WHERE run_id = $1 ORDER BY seq").bind(&run_id).fetch_all(fx.store.pool()).await.unwrap();
    let stored: Vec<String> = stored.into_iter().map(|r| r.0).collect();
    assert_eq!(stored, streamed);
    for line in &stored {
        assert!(!line.contains(secret), "secret leaked: {line}");
    }
    assert_eq!(stored[3], format!("TOKEN={MASK}{MASK}"));
    assert!(stored[0].contains(MASK));
    assert!(
        matches!(&end, Some(FollowEvent::End { status: BuildRunStatus::Failed, error_code: Some(c), .. }) if c == "build_error"),
        "{end:?}"
    );
    hub.shutdown().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn log_pages_search_plain_text_ignoring_case_and_colours(pool: PgPool) {
    let fx = Fixture::new(pool).await;
    let run_id = fx.start_run().await;
    let (sink, writer) = fx.writer(&run_id, Masker::default());
    sink.line(Phase::Build, None, Stream::Stdout, "\u{1b}[1;31mERR\u{1b}[0mOR: disk full\nall good\nanother error here\n100%_done").await;
    drop(sink);
    writer.finish().await.unwrap();

    let store = &fx.store;
    let page = store.log_page(&run_id, None, 2, None).await.unwrap();
    assert_eq!(page.lines.iter().map(|l| l.seq).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(page.next_after, Some(1));
    assert_eq!(page.run_status, BuildRunStatus::Building);
    let page = store.log_page(&run_id, Some(1), 10, None).await.unwrap();
    assert_eq!(page.lines.len(), 2);
    assert_eq!(page.next_after, Some(3), "a running build can grow: keep asking from the last line");

    // The colour codes split "ERROR"; the search sees through them.
    let found = store.log_page(&run_id, None, 10, Some("error")).await.unwrap();
    assert_eq!(found.lines.iter().map(|l| l.seq).collect::<Vec<_>>(), [0, 2]);
    assert!(found.lines[0].line.contains('\u{1b}'), "lines keep their colours");
    // LIKE wildcards are plain text.
    let found = store.log_page(&run_id, None, 10, Some("%_d")).await.unwrap();
    assert_eq!(found.lines.iter().map(|l| l.seq).collect::<Vec<_>>(), [3]);

    fx.finish(&run_id, completed()).await;
    let page = store.log_page(&run_id, Some(1), 10, None).await.unwrap();
    assert_eq!(page.next_after, None, "a finished run's last page");
    assert_eq!(store.latest_run_id(&fx.build_id).await.unwrap(), Some(run_id.clone()));
    let missing = store.log_page("run_00000000000000000000000000", None, 10, None).await.unwrap_err();
    assert!(missing.to_string().contains("not found"), "{missing}");
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_real_build_is_followed_live_from_clone_to_its_end(pool: PgPool) {
    let store = Store::from_pool(pool);
    // A fresh nonce, so that BuildKit cannot answer the step from its cache.
    let nonce = nonce();
    let repo = repo(&[
        (".slipway/manifest.yaml", "services:\n  api:\n    build: api\n".to_string()),
        ("api/Dockerfile", format!("FROM {BASE_IMAGE}\nRUN echo {nonce}; for i in $(seq 1 300); do echo streamed-line-$i; sleep 0.002; done\n")),
    ]);
    let project = project(&store, "live", repo.path()).await;
    let docker = docker().await;
    let work = tempfile::tempdir().unwrap();
    let registry = std::env::var("SLIPWAY_REGISTRY").ok().filter(|r| r != "none");
    let config = RunnerConfig::new(work.path().to_path_buf(), registry);
    let runner = Runner::new(store.clone(), docker.clone(), Arc::new(BuildKitBackend::new(docker)), None, config);
    let detail = create_build(
        &store,
        &NewBuild { project: project.slug.clone(), run: true, force_rebuild: true, ..Default::default() },
        None,
    )
    .await
    .unwrap();
    let run_id = detail.runs[0].id.clone();

    let hub = LogHub::start(store.clone());
    let follower = tokio::spawn(collect(hub.follow(&run_id, None)));
    runner.run_once().await.unwrap().expect("the queued run");

    let (seqs, texts, end) = follower.await.unwrap();
    assert!(is_completed_end(&end), "{end:?}\n{}", texts.join("\n"));
    let stored = store.logs_after(&run_id, None, 10_000).await.unwrap();
    assert_eq!(seqs, stored.iter().map(|l| l.seq).collect::<Vec<_>>(), "every stored line, once, in order");
    assert_eq!(seqs, (0..stored.len() as i64).collect::<Vec<_>>());
    let text = texts.join("\n");
    for marker in ["cloning", "streamed-line-1", "streamed-line-300", "run completed"] {
        assert!(text.contains(marker), "the followed log lacks `{marker}`:\n{text}");
    }
    hub.shutdown().await;
}
