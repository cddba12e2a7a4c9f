//! The services a one-command install starts for itself when none is
//! configured: a private Postgres cluster, the Docker engine, a loopback
//! registry, and a local base image. Each one is logged with how to reach it;
//! a missing binary or a busy port is a one-line error that says what to do.

mod base_image;
mod dockerd;
mod postgres;
mod registry;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

pub use base_image::{ensure_base_image, ensure_base_image_as, BASE_IMAGE};
pub use dockerd::{connect_or_start_docker, DockerEngine};
pub use postgres::EmbeddedPostgres;
pub use registry::{probe_registry, EmbeddedRegistry, RegistryTokenAuth};

use crate::error::{Error, Result};

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(|e| Error::io("finding a free port", e))?;
    let port = listener.local_addr().map_err(|e| Error::io("finding a free port", e))?.port();
    Ok(port)
}

/// Whether something already listens on `addr`.
pub fn port_in_use(addr: SocketAddr) -> bool {
    TcpListener::bind(addr).is_err()
}

/// Finds `name` on PATH or in the given extra directories.
pub fn find_binary(name: &str, extra_dirs: &[PathBuf]) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    extra_dirs.iter().chain(path_dirs.iter()).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Creates a directory (and parents) with a readable error.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

/// True when this process runs as root (then helpers run as `postgres`).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether a process with this pid is alive.
pub(crate) fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Sends SIGTERM to a child and waits (up to `secs`) for it to exit, then kills it.
pub(crate) async fn terminate(child: &mut tokio::process::Child, what: &str, secs: u64) {
    if let Some(pid) = child.id() {
        // SAFETY: sending SIGTERM to our own child process.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    match tokio::time::timeout(std::time::Duration::from_secs(secs), child.wait()).await {
        Ok(_) => tracing::info!("{what} stopped"),
        Err(_) => {
            tracing::warn!("{what} did not stop within {secs}s; killing it");
            let _ = child.kill().await;
        }
    }
}
