//! A hostile member against the server's own git identity: a project whose
//! repository asks for credentials must get nothing of the host's (its
//! credential helper, global configuration, SSH command or agent) and only the
//! project's own token, named in its settings. One test per process, because
//! it plants the host's git setup in this process's environment first.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use slipway_engine::builds::create::create_build;
use slipway_engine::secrets::{MasterKey, SecretBox};
use slipway_engine::Store;
use slipway_model::build::NewBuild;
use slipway_model::project::{NewProject, ProjectSettings};
use sqlx::PgPool;

/// An HTTP "git server" on loopback that asks every request for Basic
/// credentials and records the Authorization header each one carried.
fn asking_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/org/app.git", listener.local_addr().unwrap().port());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut auth = "none".to_string();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("authorization") {
                        auth = value.trim().to_string();
                    }
                }
                line.clear();
            }
            record.lock().unwrap().push(auth);
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (url, seen)
}

fn basic(user_pass: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass))
}

#[sqlx::test(migrator = "slipway_engine::store::MIGRATOR")]
async fn a_repository_asking_for_credentials_gets_only_the_projects_own_token_never_the_hosts(pool: PgPool) {
    // The host's own git setup: a credential helper with the server's secret, an
    // SSH command and an agent. None of it may be used for a project.
    let host = tempfile::tempdir().unwrap();
    let config = host.path().join(".gitconfig");
    std::fs::write(
        &config,
        "[credential]\n\thelper = \"!f() { echo username=server; echo password=server-own-secret; }; f\"\n",
    )
    .unwrap();
    let marker = host.path().join("host-ssh-was-used");
    let ssh = host.path().join("host-ssh");
    std::fs::write(&ssh, format!("#!/bin/sh\ntouch '{}'\nexit 1\n", marker.display())).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&ssh).status().unwrap();
    std::env::set_var("HOME", host.path());
    std::env::set_var("GIT_CONFIG_GLOBAL", &config);
    std::env::set_var("GIT_SSH_COMMAND", &ssh);
    std::env::set_var("SSH_AUTH_SOCK", host.path().join("agent.sock"));

    let sb = Arc::new(SecretBox::new(MasterKey::from_bytes([5; 32])));
    let store = Store::from_pool(pool).with_secrets(sb.clone());
    let (url, seen) = asking_server();
    let project = store
        .create_project(&NewProject { name: "private".into(), repo_url: url.clone(), ..Default::default() }, None)
        .await
        .unwrap();
    let build = || NewBuild { project: "private".into(), git_ref: Some("main".into()), ..Default::default() };

    // No credential in the project: git asks nobody and fails.
    let err = create_build(&store, &build(), None).await.unwrap_err();
    let err = slipway_model::AppError::from(err);
    assert_eq!(err.http_status(), 422, "{err:?}");
    let host_secret = basic("server:server-own-secret");
    let sent = seen.lock().unwrap().clone();
    assert!(!sent.is_empty(), "git reached the server");
    assert!(!sent.contains(&host_secret), "the host's credential helper was used: {sent:?}");

    // The project's own token, named in its settings: that and only that is sent.
    store.set_secret(&sb, &project.id, None, "GIT_TOKEN", "bot:project-token", None).await.unwrap();
    store
        .update_project_settings(&project.id, &ProjectSettings { git_token_secret: Some("GIT_TOKEN".into()), ..Default::default() })
        .await
        .unwrap();
    seen.lock().unwrap().clear();
    assert!(create_build(&store, &build(), None).await.is_err(), "the server still refuses");
    let sent = seen.lock().unwrap().clone();
    assert!(sent.contains(&basic("bot:project-token")), "the project's token was sent: {sent:?}");
    assert!(!sent.contains(&host_secret), "the host's credential helper was used: {sent:?}");

    // SSH: the host's SSH command (and agent) are never used.
    store
        .create_project(&NewProject { name: "over-ssh".into(), repo_url: "ssh://git@127.0.0.1:1/org/app.git".into(), ..Default::default() }, None)
        .await
        .unwrap();
    let over_ssh = NewBuild { project: "over-ssh".into(), git_ref: Some("main".into()), ..Default::default() };
    assert!(create_build(&store, &over_ssh, None).await.is_err());
    assert!(!marker.exists(), "the host's GIT_SSH_COMMAND ran");
    let specs: (i64,) = sqlx::query_as("SELECT count(*) FROM build_specs").fetch_one(store.pool()).await.unwrap();
    assert_eq!(specs.0, 0, "nothing was recorded");
}
