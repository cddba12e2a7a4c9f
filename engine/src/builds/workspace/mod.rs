//! The build workspace: resolving refs, cloning and checking out commits, reading
//! single files at a commit, and packing a service's build context into a tar.
//!
//! Git is driven through the system `git` binary (no libgit2). Every call runs
//! isolated from the Slipway host's own git and SSH setup (its own empty `HOME`, no
//! system or global configuration, no credential helper, no SSH agent or default
//! keys; see [`super::git_access`]) with only the project's own credential
//! ([`Git::with_credentials`]), never prompting (so a missing credential fails
//! instead of hanging), `-c protocol.file.allow=always`, in its own process group
//! that is killed when the call times out or is cancelled, with a time limit
//! ([`DEFAULT_GIT_TIMEOUT`] unless a [`Git`] with another one is used).
//!
//! # Repositories
//!
//! A repository is named by one of:
//!
//! - an absolute path on this host (`/srv/repos/app`), a *local* repository: it is
//!   read in place (`git -C <repo> …`) and cloned without a blob filter;
//! - a `file://` URL, read through git's file transport like a remote;
//! - a network URL: `https://…`, `http://…`, `ssh://…`, `git://…`, or the scp-like
//!   `user@host:path`. Clones use `--filter=blob:none`.
//!
//! Credentials embedded in a URL (`https://user:token@host/…`) are never shown: every
//! message, log line and git error text passes through [`redact_url`].
//!
//! # Reading a file without a checkout
//!
//! [`read_file_at`] reads local repositories directly. For any other URL it fetches
//! just the one commit (`--depth=1`, with `--filter=blob:none` over the network)
//! into a private temporary bare repository that is deleted afterwards, then reads
//! the file from it, so nothing is cached between calls. (A build worker that has
//! a [`Checkout`] should read from the checkout instead.)
//!
//! # Errors
//!
//! Failures are [`BuildFailure`]s of class [`ErrorClass::CloneError`], except when
//! git reports that authentication failed ([`ErrorClass::AuthError`]). Messages say
//! what failed, on which repository, and what to do, e.g.
//! `could not clone /srv/x: repository not found (check the repository URL and that
//! its access token can read it)`.
//!
//! # Files
//!
//! `git` drives the `git` binary ([`Git`]); `repo_url` classifies repository URLs and
//! redacts their credentials; `refs` checks refs, shas and paths before git sees them
//! and reads git's listings back; `errors` turns git's failures into messages;
//! `cleanup` kills a timed-out git's process group and removes temporary
//! repositories; `repo_view` is the manifest's [`RepoView`] over a checkout; `context`
//! packs a build context into a tar.
//!
//! [`RepoView`]: slipway_model::manifest::RepoView

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::BuildFailure;

mod cleanup;
mod context;
mod errors;
mod git;
mod refs;
mod repo_url;
mod repo_view;
#[cfg(test)]
mod tests;

pub use context::{context_tar, context_tar_with_dockerfile, ContextStats};
pub use git::Git;
pub use repo_url::redact_url;
pub use repo_view::FsRepoView;

/// Time limit of a single git command unless a [`Git`] with another one is used.
pub const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(300);

/// Largest file [`read_file_at`] reads (its size is checked before reading): the
/// manifest size limit.
pub const MAX_READ_BYTES: usize = slipway_model::manifest::MAX_MANIFEST_BYTES;

/// How many symbolic links [`read_file_at`] follows before giving up.
const MAX_SYMLINK_HOPS: usize = 8;

/// Whether `s` is a full commit sha: exactly 40 lowercase hex digits.
pub fn is_full_sha(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Resolves a branch, tag, `HEAD`, full sha or (for local repositories) any revision
/// git understands, such as a short sha, to a full 40-hex commit sha, with
/// [`DEFAULT_GIT_TIMEOUT`]. See [`Git::resolve_ref`].
pub async fn resolve_ref(repo_url: &str, git_ref: &str) -> Result<String, BuildFailure> {
    Git::default().resolve_ref(repo_url, git_ref).await
}

/// Clones `repo_url` into `dest` and checks out `sha` (detached), with
/// [`DEFAULT_GIT_TIMEOUT`] per git command. See [`Git::checkout`].
pub async fn checkout(repo_url: &str, sha: &str, dest: &Path) -> Result<Checkout, BuildFailure> {
    Git::default().checkout(repo_url, sha, dest).await
}

/// Reads the text file `path` at commit `sha` without a checkout, with
/// [`DEFAULT_GIT_TIMEOUT`] per git command. See [`Git::read_file_at`].
pub async fn read_file_at(
    repo_url: &str,
    sha: &str,
    path: &str,
) -> Result<Option<String>, BuildFailure> {
    Git::default().read_file_at(repo_url, sha, path).await
}

/// A checked-out commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// The working tree (it contains the clone's `.git`).
    pub dir: PathBuf,
    /// The commit checked out (40 hex digits).
    pub sha: String,
}

impl Checkout {
    /// A [`RepoView`] over the working tree, for `manifest::check_paths`.
    pub fn repo_view(&self) -> FsRepoView {
        FsRepoView(self.dir.clone())
    }
}

