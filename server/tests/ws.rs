//! Build logs at the HTTP edge: the websocket through the real router on a
//! real TCP listener (tokio-tungstenite as the client), the paged JSON
//! endpoint and the text download, against a fresh database per test.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use http_body_util::BodyExt;
use leptos::config::LeptosOptions;
use serde_json::Value;
use slipway_engine::logs::{start_writer, LogSink, LogWriter, Masker, Phase, Stream, MASK};
use slipway_engine::logs::{HubConfig, LogHub};
use slipway_engine::builds::RunOutcome;
use slipway_engine::Store;
use slipway_model::project::NewProject;
use slipway_server::{app, AppState};
use sqlx::PgPool;
use slipway_testkit::records::record_spec;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tower::ServiceExt;

const WORKER: &str = "ws-test";

struct Fixture {
    store: Store,
    hub: LogHub,
    build_id: String,
    /// An administrator's API token: the log endpoints need a reader.
    token: String,
}

impl Fixture {
    async fn new(pool: PgPool, config: HubConfig) -> Fixture {
        let store = Store::from_pool(pool);
        let name = format!("ws-{}", slipway_testkit::nonce());
        let project = store
            .create_project(&NewProject { name, repo_url: "https://example.com/ws.git".into(), ..Default::default() }, None)
            .await
            .unwrap();
        let (sha, hash) = ("c".repeat(40), "d".repeat(64));
        let spec_id = record_spec(&store, &project.id, &sha, &hash).await;
        let hub = LogHub::start_with(store.clone(), config);
        let admin = store.create_user("ws-admin", None, "a long enough password", true).await.unwrap();
        let principal = slipway_model::auth::Principal { user: admin, token_id: None, token_project: None, client: Default::default() };
        let token = store
            .create_token(&principal, &slipway_model::auth::NewToken { name: "ws".into(), project: None, expires_in_days: None })
            .await
            .unwrap()
            .token;
        Fixture { store, hub, build_id: spec_id, token }
    }

    fn state(&self) -> AppState {
        let leptos = LeptosOptions::builder().output_name("slipway").site_root("target/site").site_pkg_dir("pkg").build();
        AppState {
            leptos,
            store: self.store.clone(),
            docker: None,
            docker_endpoint: "not connected".into(),
            registry: None,
            registry_tokens: None,
            log_hub: self.hub.clone(),
            secrets: None,
            metrics: None,
            edge: Default::default(),
        }
    }

    /// The whole router on 127.0.0.1, on a free port.
    async fn serve(&self) -> SocketAddr {
        serve_state(self.state()).await
    }

    async fn start_run(&self, masker: Masker) -> (String, LogSink, LogWriter) {
        let run = self.store.enqueue_run(&self.build_id, None, false).await.unwrap();
        let claimed = self.store.claim_run(WORKER, Duration::from_secs(600), "test").await.unwrap().unwrap();
        assert_eq!(claimed.run.id, run.id);
        let (sink, writer) = start_writer(self.store.clone(), run.id.clone(), 0, masker);
        (run.id, sink, writer)
    }

    async fn finish(&self, run_id: &str, outcome: RunOutcome) {
        assert!(self.store.finish_run(run_id, WORKER, &outcome).await.unwrap());
    }

    async fn get(&self, uri: &str) -> (StatusCode, Option<String>, Option<String>, String) {
        let req = Request::builder().uri(uri).header("authorization", format!("Bearer {}", self.token)).body(Body::empty()).unwrap();
        let res = app(self.state()).oneshot(req).await.unwrap();
        let header = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().to_string());
        let (content_type, disposition) = (header("content-type"), header("content-disposition"));
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, disposition, String::from_utf8(body.to_vec()).unwrap())
    }
}

/// The router over `state` on 127.0.0.1, on a free port.
async fn serve_state(state: AppState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(state);
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

async fn write_lines(sink: &LogSink, first: usize, count: usize) {
    let text: Vec<String> = (first..first + count).map(|i| format!("\u{1b}[32mline\u{1b}[0m {i}")).collect();
    sink.line(Phase::Build, Some("[build 1/1] RUN produce"), Stream::Stdout, &text.join("\n")).await;
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a websocket client saw until the server closed the stream.
#[derive(Debug, Default)]
struct Seen {
    seqs: Vec<i64>,
    frames: Vec<String>,
    end: Option<Value>,
    close: Option<(u16, String)>,
}

/// Reads text frames until `stop` says so or the server closes.
async fn read(socket: &mut Socket, seen: &mut Seen, mut stop: impl FnMut(&Seen) -> bool) {
    while !stop(seen) {
        let msg = tokio::time::timeout(Duration::from_secs(60), socket.next()).await.expect("the log stream stalled");
        match msg {
            Some(Ok(Message::Text(text))) => {
                let v: Value = serde_json::from_str(&text).unwrap();
                match v["type"].as_str() {
                    Some("lines") => {
                        for l in v["lines"].as_array().unwrap() {
                            seen.seqs.push(l["seq"].as_i64().unwrap());
                        }
                    }
                    Some("end") => {
                        assert!(seen.end.is_none(), "two end messages");
                        seen.end = Some(v);
                    }
                    other => panic!("unexpected message type {other:?}: {text}"),
                }
                seen.frames.push(text.to_string());
            }
            Some(Ok(Message::Close(frame))) => {
                seen.close = Some(frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new())));
                return;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("websocket error: {e}"),
            None => return,
        }
    }
}

fn ws_request(token: &str, addr: SocketAddr, path: &str) -> tungstenite::handshake::client::Request {
    use tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

async fn connect(token: &str, addr: SocketAddr, path: &str) -> Socket {
    let (socket, response) = tokio_tungstenite::connect_async(ws_request(token, addr, path)).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn websocket_sends_the_backlog_then_live_lines_then_the_end(pool: PgPool) {
    let fx = Fixture::new(pool, HubConfig::default()).await;
    let addr = fx.serve().await;
    let secret = "pw-5be1c0ffee";
    let (run_id, sink, writer) = fx.start_run(Masker::new([secret.to_string()])).await;
    write_lines(&sink, 0, 150).await;
    sink.line(Phase::Push, None, Stream::Stderr, &format!("login with {secret}")).await;
    let stored_backlog = async {
        while fx.store.last_log_seq(&run_id).await.unwrap() != Some(150) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), stored_backlog).await.unwrap();

    // No `run`: the build's newest run.
    let mut socket = connect(&fx.token, addr, &format!("/ws/builds/{}/logs", fx.build_id)).await;
    let mut seen = Seen::default();
    read(&mut socket, &mut seen, |s| s.seqs.len() >= 151).await;
    for chunk in 0..10 {
        write_lines(&sink, 151 + chunk * 20, 20).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(sink);
    writer.finish().await.unwrap();
    fx.finish(&run_id, RunOutcome::Completed { reused_from: None }).await;
    read(&mut socket, &mut seen, |_| false).await;

    assert_eq!(seen.seqs, (0..351).collect::<Vec<i64>>(), "every line once, in order");
    let end = seen.end.as_ref().expect("an end message");
    assert_eq!(end, &serde_json::json!({"type": "end", "status": "completed", "error_code": null, "error_message": null}));
    let last: Value = serde_json::from_str(seen.frames.last().unwrap()).unwrap();
    assert_eq!(&last, end, "the end message is the last frame");
    let (code, reason) = seen.close.clone().expect("a close frame");
    assert_eq!(code, 1000, "{reason}");
    let all = seen.frames.join("\n");
    assert!(!all.contains(secret), "the secret was streamed");
    assert!(all.contains(&format!("login with {MASK}")));
    let first: Value = serde_json::from_str(&seen.frames[0]).unwrap();
    let line = &first["lines"][0];
    assert_eq!(line["phase"], "build");
    assert_eq!(line["step"], "[build 1/1] RUN produce");
    assert_eq!(line["stream"], "stdout");
    assert_eq!(line["line"], "\u{1b}[32mline\u{1b}[0m 0", "colours are kept for display");
    assert!(line["ts"].as_str().unwrap().contains('T'));

    // Resuming from a sequence number, naming the run.
    let mut again = connect(&fx.token, addr, &format!("/ws/builds/{}/logs?run={run_id}&after=300", fx.build_id)).await;
    let mut resumed = Seen::default();
    read(&mut again, &mut resumed, |_| false).await;
    assert_eq!(resumed.seqs, (301..351).collect::<Vec<i64>>());
    assert_eq!(resumed.end.as_ref().unwrap()["status"], "completed");
    assert_eq!(resumed.close.map(|c| c.0), Some(1000));
    fx.hub.shutdown().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn websocket_answers_404_for_an_unknown_build_or_run_and_422_for_bad_parameters(pool: PgPool) {
    let fx = Fixture::new(pool, HubConfig::default()).await;
    let addr = fx.serve().await;
    let ghost_build = slipway_model::id::encode("bld", uuid::Uuid::nil());
    let ghost_run = slipway_model::id::encode("run", uuid::Uuid::nil());
    let (run_id, sink, writer) = fx.start_run(Masker::default()).await;
    let cases = [
        (format!("/ws/builds/{ghost_build}/logs"), 404, "not_found", None),
        (format!("/ws/builds/{}/logs?run={ghost_run}", fx.build_id), 404, "not_found", None),
        (format!("/ws/builds/{}/logs?after=soon", fx.build_id), 422, "invalid_input", Some("after")),
        (format!("/ws/builds/{}/logs?run=bld_x", fx.build_id), 422, "invalid_input", Some("run")),
        ("/ws/builds/nonsense/logs".to_string(), 422, "invalid_input", Some("build")),
    ];
    for (path, status, code, field) in cases {
        match tokio_tungstenite::connect_async(ws_request(&fx.token, addr, &path)).await {
            Err(tungstenite::Error::Http(res)) => {
                assert_eq!(res.status().as_u16(), status, "{path}");
                let body: Value = serde_json::from_slice(res.body().as_deref().unwrap()).unwrap();
                assert_eq!(body["code"], code, "{path}: {body}");
                if let Some(field) = field {
                    assert_eq!(body["problems"][0]["field"], field, "{path}: {body}");
                }
            }
            Ok(_) => panic!("{path}: the upgrade should have been refused"),
            Err(e) => panic!("{path}: {e}"),
        }
    }
    // A build with a run, asked for over plain HTTP: not a websocket request.
    let (status, _, _, _) = fx.get(&format!("/ws/builds/{}/logs", fx.build_id)).await;
    assert!(status.is_client_error(), "{status}");
    drop(sink);
    writer.finish().await.unwrap();
    fx.finish(&run_id, RunOutcome::Cancelled { message: "test".into() }).await;
    fx.hub.shutdown().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_websocket_client_that_stops_reading_is_closed_as_too_slow_and_can_resume(pool: PgPool) {
    let fx = Fixture::new(pool, HubConfig { max_lag_lines: 300, page: 100, channel_batches: 8, ..HubConfig::default() }).await;
    let addr = fx.serve().await;
    let (run_id, sink, writer) = fx.start_run(Masker::default()).await;
    write_lines(&sink, 0, 1).await;
    let mut socket = connect(&fx.token, addr, &format!("/ws/builds/{}/logs?run={run_id}", fx.build_id)).await;
    let mut seen = Seen::default();
    read(&mut socket, &mut seen, |s| !s.seqs.is_empty()).await;

    // The client stops reading; far more output than socket buffers hold.
    const N: usize = 60_000;
    let padding = "x".repeat(200);
    for chunk in 0..(N / 500) {
        let text: Vec<String> = (0..500).map(|i| format!("{} {padding}", 1 + chunk * 500 + i)).collect();
        sink.line(Phase::Build, None, Stream::Stdout, &text.join("\n")).await;
    }
    drop(sink);
    writer.finish().await.unwrap();
    fx.finish(&run_id, RunOutcome::Completed { reused_from: None }).await;

    read(&mut socket, &mut seen, |_| false).await;
    let (code, reason) = seen.close.clone().expect("a close frame");
    assert_eq!(code, u16::from(CloseCode::Policy), "{reason}");
    assert!(reason.starts_with("too slow: follower fell more than 300 lines behind; reconnect with after="), "{reason}");
    let after: i64 = reason.rsplit('=').next().unwrap().parse().unwrap();
    assert_eq!(seen.seqs, (0..=after).collect::<Vec<i64>>(), "lines up to `after`, each once");
    assert!(seen.end.is_none());

    // Reconnecting from there gets the rest, then the end. On a loaded machine
    // the client may be dropped as too slow again: it resumes the same way.
    let mut all = Vec::new();
    let mut resume = after;
    let mut last_close = None;
    for _ in 0..20 {
        let mut again = connect(&fx.token, addr, &format!("/ws/builds/{}/logs?run={run_id}&after={resume}", fx.build_id)).await;
        let mut rest = Seen::default();
        read(&mut again, &mut rest, |_| false).await;
        all.extend(rest.seqs.iter().copied());
        last_close = rest.close.clone();
        match &rest.close {
            Some((code, reason)) if *code == u16::from(CloseCode::Policy) => {
                resume = reason.rsplit('=').next().unwrap().parse().unwrap();
            }
            _ => break,
        }
    }
    assert_eq!(all, (after + 1..=N as i64).collect::<Vec<i64>>(), "every line after `after`, each once, in order");
    assert_eq!(last_close.map(|c| c.0), Some(1000));
    fx.hub.shutdown().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn text_download_and_paged_json_read_the_stored_log(pool: PgPool) {
    let fx = Fixture::new(pool, HubConfig::default()).await;
    let (run_id, sink, writer) = fx.start_run(Masker::default()).await;
    write_lines(&sink, 0, 12_000).await;
    sink.line(Phase::System, None, Stream::System, "\u{1b}[1;31mERROR\u{1b}[0m: the end").await;
    drop(sink);
    writer.finish().await.unwrap();
    fx.finish(&run_id, RunOutcome::Completed { reused_from: None }).await;
    let build = &fx.build_id;

    let (status, content_type, disposition, text) = fx.get(&format!("/builds/{build}/logs.txt")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("text/plain; charset=utf-8"));
    let disposition = disposition.unwrap();
    assert!(disposition.starts_with("attachment; filename=") && disposition.contains(&run_id), "{disposition}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 12_001, "every line, across download pages");
    for (i, l) in lines.iter().enumerate() {
        let b = l.as_bytes();
        assert!(
            b.len() > 11 && b[0] == b'[' && b[3] == b':' && b[6] == b':' && b[9] == b']' && b[10] == b' ',
            "line {i} lacks the [HH:MM:SS] prefix: {l}"
        );
        assert!(!l.contains('\u{1b}'), "line {i} keeps ANSI codes: {l:?}");
    }
    assert!(lines[0].ends_with("] line 0"), "{}", lines[0]);
    assert!(lines[12_000].ends_with("] ERROR: the end"), "{}", lines[12_000]);

    let (status, _, _, body) = fx.get(&format!("/api/builds/{build}/logs?after=9&limit=5")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["run_id"], run_id.as_str());
    assert_eq!(page["run_status"], "completed");
    let seqs: Vec<i64> = page["lines"].as_array().unwrap().iter().map(|l| l["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [10, 11, 12, 13, 14]);
    assert_eq!(page["next_after"], 14);

    let (_, _, _, body) = fx.get(&format!("/api/builds/{build}/logs?run={run_id}&after=11990")).await;
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["lines"].as_array().unwrap().len(), 10);
    assert_eq!(page["next_after"], Value::Null, "the end of a finished run");

    let (_, _, _, body) = fx.get(&format!("/api/builds/{build}/logs?q=error%3A")).await;
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["lines"][0]["seq"], 12_000);
    assert_eq!(page["lines"].as_array().unwrap().len(), 1);

    for (query, field) in [("limit=0", "limit"), ("limit=10001", "limit"), ("after=-5", "after"), ("run=nope", "run")] {
        let (status, _, _, body) = fx.get(&format!("/api/builds/{build}/logs?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        let err: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(err["problems"][0]["field"], field, "{query}: {body}");
    }
    let ghost = slipway_model::id::encode("bld", uuid::Uuid::nil());
    assert_eq!(fx.get(&format!("/api/builds/{ghost}/logs")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(fx.get(&format!("/builds/{ghost}/logs.txt")).await.0, StatusCode::NOT_FOUND);

    // The server functions under /api/ still answer beside the log route.
    let res = app(fx.state())
        .oneshot(
            Request::builder()
                .method("POST")
                .uri("/api/builds/show")
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {}", fx.token))
                .body(Body::from(serde_json::json!({ "build": build }).to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    fx.hub.shutdown().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn one_user_cannot_open_more_log_followers_than_the_limit(pool: PgPool) {
    let fx = Fixture::new(pool, HubConfig::default()).await;
    let mut state = fx.state();
    let limits = slipway_server::Limits { followers_per_caller: 2, ..Default::default() };
    state.edge = std::sync::Arc::new(slipway_server::Edge::new(None, false, limits));
    let addr = serve_state(state).await;
    let (run_id, sink, writer) = fx.start_run(Masker::default()).await;
    let path = format!("/ws/builds/{}/logs", fx.build_id);
    let first = connect(&fx.token, addr, &path).await;
    let _second = connect(&fx.token, addr, &path).await;
    match tokio_tungstenite::connect_async(ws_request(&fx.token, addr, &path)).await {
        Err(tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
            let body: Value = serde_json::from_slice(res.body().as_deref().unwrap()).unwrap();
            assert!(body["message"].as_str().unwrap().contains("at most 2"), "{body}");
        }
        Ok(_) => panic!("a third follower was let in"),
        Err(e) => panic!("{e}"),
    }
    // Closing one frees its place.
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio_tungstenite::connect_async(ws_request(&fx.token, addr, &path)).await {
            Ok(_) => break,
            Err(tungstenite::Error::Http(res)) if res.status() == StatusCode::TOO_MANY_REQUESTS => {
                assert!(std::time::Instant::now() < deadline, "the closed follower's place was never freed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    drop(sink);
    writer.finish().await.unwrap();
    fx.finish(&run_id, RunOutcome::Cancelled { message: "test".into() }).await;
    fx.hub.shutdown().await;
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_cookie_websocket_upgrade_from_another_site_is_refused_and_from_the_dashboard_accepted(pool: PgPool) {
    let fx = Fixture::new(pool, HubConfig::default()).await;
    let addr = fx.serve().await;
    let (run_id, sink, writer) = fx.start_run(Masker::default()).await;
    // A browser session of the administrator: the session cookie, no token.
    let login = Request::builder()
        .method("POST")
        .uri("/api/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(serde_json::json!({ "username": "ws-admin", "password": "a long enough password" }).to_string()))
        .unwrap();
    let res = app(fx.state()).oneshot(login).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let set_cookie = res.headers().get("set-cookie").unwrap().to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let path = format!("/ws/builds/{}/logs", fx.build_id);
    let upgrade = |headers: &[(&'static str, String)]| {
        use tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        for (k, v) in headers {
            req.headers_mut().insert(*k, v.parse().unwrap());
        }
        req
    };
    // Another site's page opening the socket: the browser sends the cookie
    // along (and its own Origin, or Sec-Fetch-Site: cross-site).
    for headers in [vec![("origin", "http://evil.example".to_string())], vec![("sec-fetch-site", "cross-site".to_string())]] {
        match tokio_tungstenite::connect_async(upgrade(&headers)).await {
            Err(tungstenite::Error::Http(res)) => {
                assert_eq!(res.status(), StatusCode::FORBIDDEN, "{headers:?}");
                let body: Value = serde_json::from_slice(res.body().as_deref().unwrap()).unwrap();
                assert!(body["message"].as_str().unwrap().contains("cross-origin request refused"), "{body}");
            }
            Ok(_) => panic!("{headers:?}: a cross-site page opened a log websocket with the session cookie"),
            Err(e) => panic!("{headers:?}: {e}"),
        }
    }
    // The dashboard itself (its own origin): the same cookie is accepted.
    for headers in [vec![("origin", format!("http://{addr}"))], vec![("sec-fetch-site", "same-origin".to_string())]] {
        let (socket, response) = tokio_tungstenite::connect_async(upgrade(&headers)).await.unwrap_or_else(|e| panic!("{headers:?}: {e}"));
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        drop(socket);
    }
    drop(sink);
    writer.finish().await.unwrap();
    fx.finish(&run_id, RunOutcome::Cancelled { message: "test".into() }).await;
    fx.hub.shutdown().await;
}
