//! The Docker engine: use the one that answers, or start `dockerd` without a
//! bridge so no container or build ever gets a private-range address.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bollard::Docker;
use tokio::process::{Child, Command};

use super::{find_binary, is_root, pid_alive, terminate};
use crate::error::{Error, Result};

/// The flags Slipway starts the engine with: no bridge, no iptables rules.
pub const DOCKERD_FLAGS: [&str; 3] = ["--bridge=none", "--iptables=false", "--ip-masq=false"];

/// A connected engine, and the `dockerd` process if this process started it.
pub struct DockerEngine {
    pub docker: Docker,
    pub endpoint: String,
    child: Option<Child>,
}

impl std::fmt::Debug for DockerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerEngine").field("endpoint", &self.endpoint).field("started_by_us", &self.child.is_some()).finish()
    }
}

fn endpoint() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

async fn ping(docker: &Docker) -> bool {
    matches!(tokio::time::timeout(Duration::from_secs(3), docker.ping()).await, Ok(Ok(_)))
}

/// A client for the engine, if its socket exists and it answers a ping.
/// (bollard refuses to build a client for a socket path that does not exist yet.)
async fn answering() -> Option<Docker> {
    let docker = Docker::connect_with_local_defaults().ok()?;
    ping(&docker).await.then_some(docker)
}

/// Connects to the engine at `DOCKER_HOST` (or the default socket); when none
/// answers and `may_start` is set, starts `dockerd` and waits for it.
pub async fn connect_or_start_docker(data_dir: &Path, may_start: bool) -> Result<DockerEngine> {
    let endpoint = endpoint();
    if let Some(docker) = answering().await {
        let docker = docker.negotiate_version().await?;
        tracing::info!(%endpoint, "using the Docker engine that is already running");
        return Ok(DockerEngine { docker, endpoint, child: None });
    }
    if !may_start {
        return Err(Error::Startup(format!(
            "no Docker engine answers at {endpoint}: start one (dockerd {}) or let Slipway start it",
            DOCKERD_FLAGS.join(" ")
        )));
    }
    if std::env::var_os("DOCKER_HOST").is_some() {
        return Err(Error::Startup(format!("DOCKER_HOST={endpoint} does not answer; start that engine or unset DOCKER_HOST")));
    }
    let dockerd = find_binary("dockerd", &[]).ok_or_else(|| {
        Error::Startup("dockerd not found: install the Docker engine with `apt-get install docker.io`, or set DOCKER_HOST".into())
    })?;
    if !is_root() {
        return Err(Error::Startup(
            "no Docker engine is running and only root can start dockerd: start it as root, or set DOCKER_HOST".into(),
        ));
    }
    remove_stale_pidfile(Path::new("/var/run/docker.pid"));
    let log_path = data_dir.join("dockerd.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io(format!("opening {}", log_path.display()), e))?;
    let log_err = log.try_clone().map_err(|e| Error::io("dockerd log", e))?;
    let mut child = Command::new(&dockerd)
        .args(DOCKERD_FLAGS)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| Error::Startup(format!("starting dockerd: {e}")))?;
    let started = Instant::now();
    let docker = loop {
        if let Some(docker) = answering().await {
            break docker;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Startup(format!(
                "dockerd exited with {status} while starting; see {} ",
                log_path.display()
            )));
        }
        if started.elapsed() > Duration::from_secs(60) {
            terminate(&mut child, "dockerd", 10).await;
            return Err(Error::Startup(format!("dockerd did not answer within 60 s; see {}", log_path.display())));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let docker = docker.negotiate_version().await?;
    tracing::info!(
        %endpoint,
        flags = %DOCKERD_FLAGS.join(" "),
        log = %log_path.display(),
        pid = child.id().unwrap_or_default(),
        "started the Docker engine"
    );
    Ok(DockerEngine { docker, endpoint, child: Some(child) })
}

fn remove_stale_pidfile(path: &Path) {
    if let Ok(text) = std::fs::read_to_string(path) {
        if let Ok(pid) = text.trim().parse::<i32>() {
            if !pid_alive(pid) {
                tracing::info!(path = %path.display(), "removing a stale dockerd pid file");
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

impl DockerEngine {
    /// Stops `dockerd` if this process started it.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, "dockerd", 20).await;
        }
    }

    pub fn started_by_us(&self) -> bool {
        self.child.is_some()
    }
}
