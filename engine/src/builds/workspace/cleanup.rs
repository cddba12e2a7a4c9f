//! What a git call leaves behind is cleaned up: a timed-out or cancelled
//! command's whole process group is killed, and a temporary repository is
//! removed.

use std::io;
use std::path::{Path, PathBuf};

/// Kills a process group when dropped, unless disarmed.
pub(super) struct KillGroupOnDrop(pub(super) Option<i32>);

impl KillGroupOnDrop {
    pub(super) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: kill(2) with a negative pid signals that process group; the
            // group leader has not been reaped yet, so the id cannot have been reused.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// A private temporary directory, removed when dropped.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new() -> io::Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        let mut attempts = 0;
        loop {
            let name = format!(
                "slipway-git-{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            );
            let path = base.join(name);
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(TempDir(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => attempts += 1,
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

