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

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use slipway_model::manifest::{RepoView, DEFAULT_DOCKERFILE};
use slipway_model::status::ErrorClass;
use tokio::process::Command;

use super::dockerignore::DockerIgnore;
use super::git_access::{GitCredentials, GitEnv};
use super::BuildFailure;

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

/// Git operations with a given time limit per git command and the credential of
/// one project (none by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Git {
    /// Time limit of each git command; the command's process group is killed then.
    pub timeout: Duration,
    /// The only credential git may use.
    pub credentials: GitCredentials,
}

impl Default for Git {
    fn default() -> Self {
        Git {
            timeout: DEFAULT_GIT_TIMEOUT,
            credentials: GitCredentials::None,
        }
    }
}

/// How a repository is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RepoKind {
    /// An absolute path on this host.
    Local,
    /// A `file://` URL.
    FileUrl,
    /// A network URL (https, http, ssh, git, scp-like).
    Network,
}

/// Why a git command did not succeed.
#[derive(Debug)]
enum GitError {
    /// `git` could not be started.
    Spawn(io::Error),
    /// The command ran out of time.
    TimedOut(Duration),
    /// The command exited unsuccessfully.
    Failed { code: Option<i32>, stderr: String },
}

impl Git {
    /// Git operations whose commands each get at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Git {
            timeout,
            credentials: GitCredentials::None,
        }
    }

    /// The same, authenticating with `credentials` (and nothing else).
    pub fn with_credentials(mut self, credentials: GitCredentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Git for `project`'s repository, with the credential named in its settings.
    pub async fn for_project(
        store: &crate::Store,
        project: &slipway_model::project::Project,
    ) -> Result<Git, BuildFailure> {
        Ok(Git::default().with_credentials(GitCredentials::for_project(store, project).await?))
    }

    /// Resolves `git_ref` in `repo_url` to a full commit sha.
    ///
    /// - A full sha (40 hex digits, any case) is checked to exist and returned in
    ///   lowercase. For a remote repository the check fetches that one commit.
    /// - Otherwise `git ls-remote` is asked, and the first of `<ref>`, `refs/<ref>`,
    ///   `refs/tags/<ref>`, `refs/heads/<ref>`, `refs/remotes/<ref>` that exists wins
    ///   (git's own order); annotated tags resolve to their commit.
    /// - For a local repository, anything else `git rev-parse` understands is tried
    ///   last: short shas, `HEAD~2`, …
    ///
    /// An unknown ref is an error naming the ref and the repository.
    pub async fn resolve_ref(&self, repo_url: &str, git_ref: &str) -> Result<String, BuildFailure> {
        let kind = repo_kind(repo_url)?;
        let shown = redact_url(repo_url);
        check_ref(git_ref, &shown)?;
        if git_ref.len() == 40 && git_ref.bytes().all(|b| b.is_ascii_hexdigit()) {
            let sha = git_ref.to_ascii_lowercase();
            match kind {
                RepoKind::Local => {
                    self.ensure_local_commit(Path::new(repo_url), &sha, &shown)
                        .await?
                }
                RepoKind::FileUrl | RepoKind::Network => {
                    let _probe = self
                        .fetch_commit_to_temp(repo_url, kind, &sha, "--filter=tree:0")
                        .await?;
                }
            }
            return Ok(sha);
        }

        // The `^{}` pattern brings the peeled line of an annotated tag along.
        let peeled = format!("{git_ref}^{{}}");
        let listing = self
            .run(None, ["ls-remote", "--", repo_url, git_ref, &peeled])
            .await
            .map_err(|e| {
                git_failure(
                    &format!("could not list the branches and tags of {shown}"),
                    &shown,
                    e,
                )
            })?;
        if let Some(sha) = pick_ref(&String::from_utf8_lossy(&listing), git_ref) {
            tracing::debug!(repo = %shown, git_ref, %sha, "resolved ref with ls-remote");
            return Ok(sha);
        }

        if kind == RepoKind::Local {
            let rev = format!("{git_ref}^{{commit}}");
            match self
                .run(
                    Some(Path::new(repo_url)),
                    ["rev-parse", "--verify", "--quiet", &rev],
                )
                .await
            {
                Ok(out) => {
                    let sha = String::from_utf8_lossy(&out).trim().to_string();
                    if is_full_sha(&sha) {
                        tracing::debug!(repo = %shown, git_ref, %sha, "resolved ref with rev-parse");
                        return Ok(sha);
                    }
                }
                Err(GitError::Failed { .. }) => {}
                Err(e) => {
                    return Err(git_failure(
                        &format!("could not resolve `{git_ref}` in {shown}"),
                        &shown,
                        e,
                    ))
                }
            }
            return Err(BuildFailure::new(
                ErrorClass::CloneError,
                format!(
                    "ref `{git_ref}` not found in {shown}: no branch, tag or commit has that name \
                     (check the spelling, or push it first)"
                ),
            ));
        }

        let hint = if git_ref.len() >= 4 && git_ref.bytes().all(|b| b.is_ascii_hexdigit()) {
            "; short shas can only be resolved in local repositories, give the full 40-character sha"
        } else {
            " (check the spelling, or push it first)"
        };
        Err(BuildFailure::new(
            ErrorClass::CloneError,
            format!("ref `{git_ref}` not found in {shown}: no branch or tag has that name{hint}"),
        ))
    }

    /// Clones `repo_url` into `dest` and checks out the full sha `sha` (detached HEAD).
    ///
    /// `dest` must not exist or be an empty directory. The clone is made with
    /// `git clone --no-checkout --quiet` (plus `--filter=blob:none` for network
    /// URLs); when `sha` is not reachable from the cloned branches and tags it is
    /// fetched by id. Submodules are not checked out. On failure `dest` is removed
    /// again (or emptied, if it existed before).
    pub async fn checkout(
        &self,
        repo_url: &str,
        sha: &str,
        dest: &Path,
    ) -> Result<Checkout, BuildFailure> {
        let kind = repo_kind(repo_url)?;
        let shown = redact_url(repo_url);
        require_full_sha(sha)?;
        let existed = match std::fs::read_dir(dest) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(BuildFailure::new(
                        ErrorClass::CloneError,
                        format!(
                            "could not clone {shown}: the destination {} is not empty (remove it first)",
                            dest.display()
                        ),
                    ));
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                return Err(BuildFailure::new(
                    ErrorClass::CloneError,
                    format!(
                        "could not clone {shown}: cannot use the destination {}: {e}",
                        dest.display()
                    ),
                ))
            }
        };
        let started = Instant::now();
        let result = self
            .clone_and_checkout(repo_url, kind, sha, dest, &shown)
            .await;
        match &result {
            Ok(_) => tracing::debug!(
                repo = %shown, sha, dest = %dest.display(),
                elapsed_ms = started.elapsed().as_millis() as u64, "checked out"
            ),
            Err(e) => {
                tracing::debug!(repo = %shown, sha, error = %e, "checkout failed; cleaning up");
                let _ = std::fs::remove_dir_all(dest);
                if existed {
                    let _ = std::fs::create_dir_all(dest);
                }
            }
        }
        result
    }

    async fn clone_and_checkout(
        &self,
        repo_url: &str,
        kind: RepoKind,
        sha: &str,
        dest: &Path,
        shown: &str,
    ) -> Result<Checkout, BuildFailure> {
        let mut args: Vec<OsString> =
            vec!["clone".into(), "--no-checkout".into(), "--quiet".into()];
        if kind == RepoKind::Network {
            args.push("--filter=blob:none".into());
        }
        args.extend(["--".into(), repo_url.into(), dest.as_os_str().to_owned()]);
        self.run(None, &args)
            .await
            .map_err(|e| git_failure(&format!("could not clone {shown}"), shown, e))?;

        let commit = format!("{sha}^{{commit}}");
        if self
            .run(Some(dest), ["cat-file", "-e", &commit])
            .await
            .is_err()
        {
            tracing::debug!(repo = %shown, sha, "commit not in the clone; fetching it by id");
            let mut fetch: Vec<&str> = vec!["fetch", "--quiet", "--no-tags"];
            if kind == RepoKind::Network {
                fetch.push("--filter=blob:none");
            }
            fetch.extend(["origin", sha]);
            self.run(Some(dest), &fetch)
                .await
                .map_err(|e| commit_fetch_failure(sha, shown, e))?;
        }
        self.run(Some(dest), ["checkout", "--quiet", "--detach", sha, "--"])
            .await
            .map_err(|e| {
                git_failure(&format!("could not check out {sha} from {shown}"), shown, e)
            })?;
        Ok(Checkout {
            dir: dest.to_path_buf(),
            sha: sha.to_string(),
        })
    }

    /// Reads the file `path` (relative to the repository root) at the full sha `sha`,
    /// without a checkout. `Ok(None)` when there is no regular file there (missing, a
    /// directory, a submodule, or a symbolic link that leads outside the repository);
    /// symbolic links inside the repository are followed. The content must be UTF-8
    /// and at most [`MAX_READ_BYTES`] long (the size is asked before the content).
    ///
    /// Local repositories are read in place; other URLs fetch only that commit into a
    /// temporary repository (see the module documentation).
    pub async fn read_file_at(
        &self,
        repo_url: &str,
        sha: &str,
        path: &str,
    ) -> Result<Option<String>, BuildFailure> {
        let kind = repo_kind(repo_url)?;
        let shown = redact_url(repo_url);
        require_full_sha(sha)?;
        let Some(rel) = normalize_rel(path) else {
            return Err(BuildFailure::new(
                ErrorClass::CloneError,
                format!("cannot read `{path}`: the path must be relative to the repository root and stay inside it"),
            ));
        };
        match kind {
            RepoKind::Local => {
                let repo = Path::new(repo_url);
                self.ensure_local_commit(repo, sha, &shown).await?;
                self.read_blob(repo, sha, &rel, &shown).await
            }
            RepoKind::FileUrl | RepoKind::Network => {
                let temp = self
                    .fetch_commit_to_temp(repo_url, kind, sha, "--filter=blob:none")
                    .await?;
                self.read_blob(temp.path(), sha, &rel, &shown).await
            }
        }
    }

    /// Reads `rel` at `sha` from the repository (work tree or bare) at `repo`.
    async fn read_blob(
        &self,
        repo: &Path,
        sha: &str,
        rel: &str,
        shown: &str,
    ) -> Result<Option<String>, BuildFailure> {
        let what = |p: &str| format!("could not read {p} at {sha} in {shown}");
        let mut current = rel.to_string();
        for _ in 0..=MAX_SYMLINK_HOPS {
            if current == "." {
                return Ok(None);
            }
            let listing = self
                .run(
                    Some(repo),
                    [
                        "--literal-pathspecs",
                        "ls-tree",
                        "--full-tree",
                        "-z",
                        sha,
                        "--",
                        &current,
                    ],
                )
                .await
                .map_err(|e| git_failure(&what(&current), shown, e))?;
            let Some((mode, object)) = find_tree_entry(&listing, &current) else {
                return Ok(None);
            };
            match mode.as_str() {
                "100644" | "100755" | "120000" => {}
                _ => return Ok(None),
            }
            // Ask the size first: a huge blob is refused before it is read into memory.
            let size = self
                .run(Some(repo), ["cat-file", "-s", &object])
                .await
                .map_err(|e| git_failure(&what(&current), shown, e))?;
            let size: u64 = String::from_utf8_lossy(&size).trim().parse().unwrap_or(u64::MAX);
            if size > MAX_READ_BYTES as u64 {
                return Err(BuildFailure::new(
                    ErrorClass::CloneError,
                    format!(
                        "{current} at {sha} in {shown} is {size} bytes; the limit is {MAX_READ_BYTES} bytes \
                         (the largest manifest Slipway reads)"
                    ),
                ));
            }
            let content = self
                .run(Some(repo), ["cat-file", "blob", &object])
                .await
                .map_err(|e| git_failure(&what(&current), shown, e))?;
            if mode == "120000" {
                let target = String::from_utf8_lossy(&content).to_string();
                let parent = current.rsplit_once('/').map_or("", |(dir, _)| dir);
                let joined = if target.starts_with('/') {
                    // An absolute link points outside the repository.
                    return Ok(None);
                } else if parent.is_empty() {
                    target
                } else {
                    format!("{parent}/{target}")
                };
                match normalize_rel(&joined) {
                    Some(next) => {
                        tracing::debug!(link = %current, target = %next, "following a symbolic link");
                        current = next;
                        continue;
                    }
                    None => return Ok(None),
                }
            }
            return String::from_utf8(content).map(Some).map_err(|_| {
                BuildFailure::new(
                    ErrorClass::CloneError,
                    format!("{current} at {sha} in {shown} is not UTF-8 text (save it as UTF-8)"),
                )
            });
        }
        tracing::debug!(path = rel, "too many symbolic links");
        Ok(None)
    }

    /// Fails unless `sha` is a commit in the local repository `repo`.
    async fn ensure_local_commit(
        &self,
        repo: &Path,
        sha: &str,
        shown: &str,
    ) -> Result<(), BuildFailure> {
        // Check that the repository itself is readable first, so a missing repository
        // is not reported as a missing commit.
        self.run(Some(repo), ["rev-parse", "--git-dir"])
            .await
            .map_err(|e| git_failure(&format!("could not open {shown}"), shown, e))?;
        let commit = format!("{sha}^{{commit}}");
        match self.run(Some(repo), ["cat-file", "-e", &commit]).await {
            Ok(_) => Ok(()),
            Err(GitError::Failed { .. }) => Err(commit_not_found(sha, shown)),
            Err(e) => Err(git_failure(
                &format!("could not look up {sha} in {shown}"),
                shown,
                e,
            )),
        }
    }

    /// Fetches the single commit `sha` of a remote repository into a new private
    /// temporary bare repository (removed when the returned value is dropped).
    async fn fetch_commit_to_temp(
        &self,
        repo_url: &str,
        kind: RepoKind,
        sha: &str,
        filter: &str,
    ) -> Result<TempDir, BuildFailure> {
        let shown = redact_url(repo_url);
        let temp = TempDir::new().map_err(|e| {
            BuildFailure::new(
                ErrorClass::CloneError,
                format!("could not fetch from {shown}: cannot create a temporary directory: {e}"),
            )
        })?;
        let setup = |e| git_failure(&format!("could not fetch from {shown}"), &shown, e);
        self.run(Some(temp.path()), ["init", "--quiet", "--bare"])
            .await
            .map_err(setup)?;
        self.run(
            Some(temp.path()),
            ["remote", "add", "--", "origin", repo_url],
        )
        .await
        .map_err(|e| git_failure(&format!("could not fetch from {shown}"), &shown, e))?;
        let mut args = vec!["fetch", "--quiet", "--no-tags", "--depth=1"];
        if kind == RepoKind::Network {
            args.push(filter);
        }
        args.extend(["origin", sha]);
        self.run(Some(temp.path()), &args)
            .await
            .map_err(|e| commit_fetch_failure(sha, &shown, e))?;
        Ok(temp)
    }

    /// Runs `git <args>` (in `dir` when given) and returns its standard output.
    async fn run<I, S>(&self, dir: Option<&Path>, args: I) -> Result<Vec<u8>, GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let printable = redact_url(
            &args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
        );
        let env = GitEnv::prepare(&self.credentials).map_err(GitError::Spawn)?;
        let mut cmd = Command::new("git");
        env.apply(&mut cmd, &self.credentials);
        if let Some(dir) = dir {
            cmd.arg("-C").arg(dir);
        }
        cmd.args([
            "-c",
            "protocol.file.allow=always",
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.autocrlf=false",
            "-c",
            "advice.detachedHead=false",
        ])
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);

        let started = Instant::now();
        let child = cmd.spawn().map_err(GitError::Spawn)?;
        // git leads its own process group (`process_group(0)`), so its id is the group's.
        let pgid = child.id().and_then(|id| i32::try_from(id).ok());
        let mut output = Box::pin(child.wait_with_output());
        // Declared after `output` so it is dropped first: the whole process group
        // (git and its helpers) is killed, before the child is reaped, when the
        // command times out or this future is dropped mid-way.
        let mut group = KillGroupOnDrop(pgid);
        let result = tokio::time::timeout(self.timeout, output.as_mut()).await;
        match result {
            Err(_) => {
                tracing::debug!(command = %printable, timeout_s = self.timeout.as_secs(), "git timed out");
                Err(GitError::TimedOut(self.timeout))
            }
            Ok(Err(e)) => Err(GitError::Spawn(e)),
            Ok(Ok(out)) => {
                group.disarm();
                let elapsed_ms = started.elapsed().as_millis() as u64;
                if out.status.success() {
                    tracing::debug!(command = %printable, elapsed_ms, "git ok");
                    Ok(out.stdout)
                } else {
                    let stderr = redact_url(&String::from_utf8_lossy(&out.stderr));
                    tracing::debug!(command = %printable, elapsed_ms, code = ?out.status.code(), stderr = %stderr.trim(), "git failed");
                    Err(GitError::Failed {
                        code: out.status.code(),
                        stderr,
                    })
                }
            }
        }
    }
}

/// Kills a process group when dropped, unless disarmed.
struct KillGroupOnDrop(Option<i32>);

impl KillGroupOnDrop {
    fn disarm(&mut self) {
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
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> io::Result<TempDir> {
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

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Classifies a repository URL or path, rejecting what git must not be given.
fn repo_kind(url: &str) -> Result<RepoKind, BuildFailure> {
    let shown = redact_url(url);
    let bad = |why: &str| {
        BuildFailure::new(
            ErrorClass::CloneError,
            format!(
                "cannot use the repository `{shown}`: {why} (give an absolute path, or an https://, \
                 ssh://, git://, file:// or user@host:path URL)"
            ),
        )
    };
    if url.is_empty() {
        return Err(bad("it is empty"));
    }
    if url.starts_with('-') {
        return Err(bad("it starts with `-`"));
    }
    if url.chars().any(char::is_control) {
        return Err(bad("it contains control characters"));
    }
    if url.starts_with('/') {
        return Ok(RepoKind::Local);
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        if rest.is_empty() {
            return Err(bad("it has nothing after the scheme"));
        }
        return match scheme.to_ascii_lowercase().as_str() {
            "file" => Ok(RepoKind::FileUrl),
            "https" | "http" | "ssh" | "git" | "git+ssh" | "ssh+git" => Ok(RepoKind::Network),
            _ => Err(bad(&format!("the scheme `{scheme}` is not supported"))),
        };
    }
    // scp-like syntax: [user@]host:path, with no `/` before the colon.
    if let Some((host, path)) = url.split_once(':') {
        if !host.is_empty() && !host.contains('/') && !path.is_empty() && !path.starts_with(':') {
            return Ok(RepoKind::Network);
        }
    }
    Err(bad("it is neither an absolute path nor a git URL"))
}

/// Rejects refs that git could take for options or that cannot be ref names.
fn check_ref(git_ref: &str, shown: &str) -> Result<(), BuildFailure> {
    let why = if git_ref.is_empty() {
        Some("it is empty")
    } else if git_ref.starts_with('-') {
        Some("it starts with `-`")
    } else if git_ref.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("it contains whitespace or control characters")
    } else if git_ref.len() > 1024 {
        Some("it is too long")
    } else {
        None
    };
    match why {
        Some(why) => Err(BuildFailure::new(
            ErrorClass::CloneError,
            format!("cannot resolve ref `{git_ref}` in {shown}: {why} (give a branch, tag or commit sha)"),
        )),
        None => Ok(()),
    }
}

fn require_full_sha(sha: &str) -> Result<(), BuildFailure> {
    if is_full_sha(sha) {
        Ok(())
    } else {
        Err(BuildFailure::new(
            ErrorClass::CloneError,
            format!("`{sha}` is not a full commit sha (resolve the ref to 40 lowercase hex digits first)"),
        ))
    }
}

/// Picks the sha of `git_ref` from `git ls-remote` output, in git's disambiguation
/// order, preferring the peeled (`^{}`) line of annotated tags.
fn pick_ref(listing: &str, git_ref: &str) -> Option<String> {
    let refs: Vec<(&str, &str)> = listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(sha, name)| (sha.trim(), name.trim()))
        .collect();
    let lookup = |name: &str| {
        refs.iter()
            .find(|(_, n)| *n == name)
            .map(|(sha, _)| sha.to_string())
    };
    let candidates: Vec<String> = if git_ref == "HEAD" {
        vec!["HEAD".to_string()]
    } else {
        vec![
            git_ref.to_string(),
            format!("refs/{git_ref}"),
            format!("refs/tags/{git_ref}"),
            format!("refs/heads/{git_ref}"),
            format!("refs/remotes/{git_ref}"),
            format!("refs/remotes/{git_ref}/HEAD"),
        ]
    };
    candidates
        .iter()
        .find_map(|c| lookup(&format!("{c}^{{}}")).or_else(|| lookup(c)))
        .filter(|sha| is_full_sha(sha))
}

/// Finds `path`'s entry in `git ls-tree -z` output: `(mode, object id)`.
fn find_tree_entry(listing: &[u8], path: &str) -> Option<(String, String)> {
    listing.split(|&b| b == 0).find_map(|record| {
        let record = std::str::from_utf8(record).ok()?;
        let (meta, name) = record.split_once('\t')?;
        if name != path {
            return None;
        }
        let mut parts = meta.split(' ');
        let mode = parts.next()?.to_string();
        let _kind = parts.next()?;
        let object = parts.next()?.to_string();
        Some((mode, object))
    })
}

/// Normalises a repository-relative path: `/`-separated, no `.` segments, no empty
/// segments, `.` for the root. `None` when it is absolute or climbs out with `..`.
fn normalize_rel(path: &str) -> Option<String> {
    if path.starts_with('/') || path.contains('\0') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    })
}

/// Removes credentials (`user:password@`, `token@`) from every `scheme://` URL in
/// `text`, e.g. `https://user:tok@host/x` → `https://host/x`. scp-like addresses
/// (`git@host:path`) carry no password and are left as they are.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '\'' | '"' | '`' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => out.push_str(&authority[at + 1..]),
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Turns a failed git command into a message: `"{action}: {reason}"`.
fn git_failure(action: &str, shown: &str, err: GitError) -> BuildFailure {
    match err {
        GitError::Spawn(e) if e.kind() == io::ErrorKind::NotFound => BuildFailure::new(
            ErrorClass::CloneError,
            format!("{action}: the `git` program was not found (install git on the Slipway host)"),
        ),
        GitError::Spawn(e) => BuildFailure::new(
            ErrorClass::CloneError,
            format!("{action}: could not run git: {e}"),
        ),
        GitError::TimedOut(limit) => BuildFailure::new(
            ErrorClass::CloneError,
            format!(
                "{action}: git did not finish within {} s (check that the host is reachable and \
                 the repository is not too large, or raise the git timeout)",
                limit.as_secs()
            ),
        ),
        GitError::Failed { code, stderr } => {
            let (class, reason) = describe_git_error(&stderr, code, shown);
            BuildFailure::new(class, format!("{action}: {reason}"))
        }
    }
}

/// The failure for a commit that could not be fetched by id.
fn commit_fetch_failure(sha: &str, shown: &str, err: GitError) -> BuildFailure {
    if let GitError::Failed { stderr, .. } = &err {
        let lower = stderr.to_ascii_lowercase();
        let missing = [
            "not our ref",
            "couldn't find remote ref",
            "unadvertised object",
            "no such remote ref",
            "not a valid object",
            "upload-pack: not our ref",
        ];
        if missing.iter().any(|m| lower.contains(m)) {
            return commit_not_found(sha, shown);
        }
    }
    git_failure(
        &format!("could not fetch commit {sha} from {shown}"),
        shown,
        err,
    )
}

fn commit_not_found(sha: &str, shown: &str) -> BuildFailure {
    BuildFailure::new(
        ErrorClass::CloneError,
        format!("commit {sha} not found in {shown} (check the sha, or push the commit first)"),
    )
}

/// Picks the reason out of git's error output and classifies it.
fn describe_git_error(stderr: &str, code: Option<i32>, shown: &str) -> (ErrorClass, String) {
    let lower = stderr.to_ascii_lowercase();
    if lower.contains("dubious ownership") {
        return (
            ErrorClass::CloneError,
            format!(
                "git refuses to read {shown}: it is owned by another user, whose repository \
                 configuration could run commands as Slipway (make the user Slipway runs as its owner; \
                 Slipway's git ignores the host's git configuration, including `safe.directory`)"
            ),
        );
    }
    let auth = [
        "authentication failed",
        "could not read username",
        "could not read password",
        "terminal prompts disabled",
        "permission denied (publickey",
        "host key verification failed",
        "invalid username or password",
        "http basic: access denied",
        "the requested url returned error: 401",
        "the requested url returned error: 403",
    ];
    if auth.iter().any(|a| lower.contains(a)) {
        return (
            ErrorClass::AuthError,
            "authentication failed (check the repository's access token or SSH key)".to_string(),
        );
    }
    let not_found = [
        "repository not found",
        "does not exist",
        "does not appear to be a git repository",
        "not a git repository",
        "the requested url returned error: 404",
    ];
    if not_found.iter().any(|n| lower.contains(n))
        || (lower.contains("repository") && lower.contains("not found"))
    {
        return (
            ErrorClass::CloneError,
            "repository not found (check the repository URL and that its access token can read it)"
                .to_string(),
        );
    }
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("fatal:"))
        .or_else(|| lines.iter().rev().find(|l| l.starts_with("error:")))
        .or_else(|| lines.last())
        .map(|l| {
            l.trim_start_matches("fatal:")
                .trim_start_matches("error:")
                .trim()
                .to_string()
        });
    let reason = match line {
        Some(l) if !l.is_empty() => l,
        _ => format!(
            "git exited with status {}",
            code.map_or_else(|| "unknown".to_string(), |c| c.to_string())
        ),
    };
    (ErrorClass::CloneError, reason)
}

/// A [`RepoView`] over a directory on disk, typically a [`Checkout`]'s working tree.
/// Paths are relative to the directory; absolute paths, `..` and symbolic links that
/// lead outside the directory are treated as missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsRepoView(pub PathBuf);

impl FsRepoView {
    /// The canonical path of `rel` if it exists inside the root.
    fn resolve(&self, rel: &str) -> Option<PathBuf> {
        let rel = normalize_rel(rel)?;
        let root = self.0.canonicalize().ok()?;
        let full = if rel == "." {
            root.clone()
        } else {
            root.join(&rel).canonicalize().ok()?
        };
        full.starts_with(&root).then_some(full)
    }
}

impl RepoView for FsRepoView {
    fn is_dir(&self, rel: &str) -> bool {
        self.resolve(rel).is_some_and(|p| p.is_dir())
    }

    fn is_file(&self, rel: &str) -> bool {
        self.resolve(rel).is_some_and(|p| p.is_file())
    }
}

/// What went into a build context tar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextStats {
    /// Regular files and symbolic links in the tar (directories are not counted).
    pub files: usize,
    /// Total size of the regular files, in bytes.
    pub bytes: u64,
    /// Paths left out by `.dockerignore` (a directory left out whole counts once),
    /// plus the context root's `.git`, if any.
    pub ignored: usize,
}

/// Packs `context_dir` into an uncompressed tar for a build, honouring
/// `<context>/.dockerignore`; `Dockerfile` and `.dockerignore` are always included.
/// Same as [`context_tar_with_dockerfile`] with `Dockerfile`.
pub fn context_tar(context_dir: &Path) -> Result<(bytes::Bytes, ContextStats), io::Error> {
    context_tar_with_dockerfile(context_dir, DEFAULT_DOCKERFILE)
}

/// Packs `context_dir` into an uncompressed tar for a build.
///
/// - `<context>/.dockerignore` is honoured (see [`DockerIgnore`]); it must be a
///   regular file (a symbolic link is refused, never followed); the Dockerfile
///   (`dockerfile`, relative to the context; ignored if it lies outside) and
///   `.dockerignore` are always included, as Docker does.
/// - The context root's `.git` is always left out, as BuildKit does for git
///   contexts: it is not part of the commit and may hold the clone URL's credentials.
/// - Regular files, directories and symbolic links (stored as links, never
///   followed) are included; sockets, FIFOs and devices are skipped.
/// - The result is reproducible: entries in byte order of their paths (depth
///   first), mtimes 0, uid/gid 0, no user or group names, modes normalised to
///   `0755` for directories and executable files, `0644` for other files, `0777`
///   for links. The same tree gives byte-identical tars.
///
/// This is blocking file I/O; call it from `spawn_blocking`. The whole tar is held
/// in memory.
pub fn context_tar_with_dockerfile(
    context_dir: &Path,
    dockerfile: &str,
) -> Result<(bytes::Bytes, ContextStats), io::Error> {
    let ignore_path = context_dir.join(".dockerignore");
    // Never followed: a link could lead out of the checkout (to a host file, or to
    // a device that never ends).
    let ignore = match std::fs::symlink_metadata(&ignore_path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                ".dockerignore is a symbolic link; Slipway does not follow links for it \
                 (commit the file itself)",
            ))
        }
        Ok(meta) if meta.is_file() => {
            if meta.len() > MAX_READ_BYTES as u64 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(".dockerignore is {} bytes; the limit is {MAX_READ_BYTES} bytes", meta.len()),
                ));
            }
            DockerIgnore::parse(&String::from_utf8_lossy(&std::fs::read(&ignore_path)?))
        }
        _ => DockerIgnore::default(),
    };
    let mut forced = vec![".dockerignore".to_string()];
    if let Some(df) = normalize_rel(dockerfile).filter(|d| d != ".") {
        forced.push(df);
    }
    let mut walker = Walker {
        root: context_dir,
        ignore: &ignore,
        forced: &forced,
        entries: Vec::new(),
        stats: ContextStats::default(),
    };
    walker.walk("", Path::new(""))?;
    let Walker {
        entries, mut stats, ..
    } = walker;

    let mut builder = tar::Builder::new(Vec::new());
    for entry in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match entry.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, &entry.rel, io::empty())?;
            }
            EntryKind::File { executable } => {
                let data = std::fs::read(context_dir.join(&entry.rel))?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if executable { 0o755 } else { 0o644 });
                header.set_size(data.len() as u64);
                stats.files += 1;
                stats.bytes += data.len() as u64;
                builder.append_data(&mut header, &entry.rel, data.as_slice())?;
            }
            EntryKind::Symlink => {
                let target = std::fs::read_link(context_dir.join(&entry.rel))?;
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                stats.files += 1;
                builder.append_link(&mut header, &entry.rel, &target)?;
            }
        }
    }
    let tar = builder.into_inner()?;
    tracing::debug!(
        context = %context_dir.display(),
        files = stats.files, bytes = stats.bytes, ignored = stats.ignored, tar_bytes = tar.len(),
        "packed build context"
    );
    Ok((bytes::Bytes::from(tar), stats))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    Dir,
    File { executable: bool },
    Symlink,
}

/// One planned tar entry; `rel` is relative to the context root.
#[derive(Debug)]
struct Entry {
    rel: PathBuf,
    kind: EntryKind,
}

/// Walks a context directory in sorted order, planning the tar entries.
struct Walker<'a> {
    root: &'a Path,
    ignore: &'a DockerIgnore,
    forced: &'a [String],
    entries: Vec<Entry>,
    stats: ContextStats,
}

impl Walker<'_> {
    /// Plans the entries below `rel_dir` (`""` for the root); `rel_dir_path` is the
    /// same path as it is on disk (names need not be UTF-8).
    fn walk(&mut self, rel_dir: &str, rel_dir_path: &Path) -> io::Result<()> {
        let dir_path = self.root.join(rel_dir_path);
        let mut names: Vec<OsString> = std::fs::read_dir(&dir_path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        for name in names {
            let name_str = name.to_string_lossy();
            let rel = if rel_dir.is_empty() {
                name_str.to_string()
            } else {
                format!("{rel_dir}/{name_str}")
            };
            let rel_path = rel_dir_path.join(&name);
            if rel_dir.is_empty() && name_str == ".git" {
                self.stats.ignored += 1;
                continue;
            }
            let meta = std::fs::symlink_metadata(self.root.join(&rel_path))?;
            let forced = self.forced.contains(&rel);
            let excluded = !forced && self.ignore.is_excluded(&rel);
            let file_type = meta.file_type();
            if file_type.is_dir() {
                if !excluded {
                    self.entries.push(Entry {
                        rel: rel_path.clone(),
                        kind: EntryKind::Dir,
                    });
                    self.walk(&rel, &rel_path)?;
                } else if self.ignore.may_include_under(&rel)
                    || self
                        .forced
                        .iter()
                        .any(|f| f.starts_with(&format!("{rel}/")))
                {
                    // Something below may be re-included: look inside, and keep the
                    // directory entry only if something was.
                    let mark = self.entries.len();
                    let ignored_before = self.stats.ignored;
                    self.entries.push(Entry {
                        rel: rel_path.clone(),
                        kind: EntryKind::Dir,
                    });
                    self.walk(&rel, &rel_path)?;
                    if self.entries.len() == mark + 1 {
                        self.entries.truncate(mark);
                        self.stats.ignored = ignored_before + 1;
                    }
                } else {
                    self.stats.ignored += 1;
                }
            } else if excluded {
                self.stats.ignored += 1;
            } else if file_type.is_file() {
                use std::os::unix::fs::PermissionsExt;
                let executable = meta.permissions().mode() & 0o111 != 0;
                self.entries.push(Entry {
                    rel: rel_path,
                    kind: EntryKind::File { executable },
                });
            } else if file_type.is_symlink() {
                self.entries.push(Entry {
                    rel: rel_path,
                    kind: EntryKind::Symlink,
                });
            } else {
                tracing::debug!(path = %rel, "skipping a special file in the build context");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command as StdCommand;

    /// Runs git in `dir` with a fixed identity and no user configuration.
    fn git(dir: &Path, args: &[&str]) -> String {
        let out = StdCommand::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=Test",
                "-c",
                "user.email=test@example.com",
                "-c",
                "commit.gpgsign=false",
                "-c",
                "tag.gpgsign=false",
                "-c",
                "init.defaultBranch=main",
                "-c",
                "core.hooksPath=/dev/null",
            ])
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn write(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// A repository with two commits on `main`, a `feature` branch, an annotated tag
    /// `v1` and a lightweight tag `light` on the first commit.
    struct Repo {
        _dir: tempfile::TempDir,
        path: PathBuf,
        first: String,
        second: String,
        feature: String,
    }

    impl Repo {
        fn url(&self) -> String {
            self.path.to_str().unwrap().to_string()
        }

        fn file_url(&self) -> String {
            format!("file://{}", self.path.display())
        }
    }

    fn make_repo() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app");
        std::fs::create_dir(&path).unwrap();
        git(&path, &["init", "--quiet"]);
        write(
            &path,
            ".slipway/manifest.yaml",
            "services:\n  api:\n    build: ./api\n",
        );
        write(&path, "api/Dockerfile", "FROM scratch\nCOPY . /app\n");
        write(
            &path,
            "api/.dockerignore",
            "*.log\nnode_modules\n!node_modules/keep.txt\n*.md\n!README.md\n",
        );
        write(&path, "api/main.sh", "#!/bin/sh\necho hi\n");
        std::fs::set_permissions(
            path.join("api/main.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        write(&path, "api/README.md", "readme\n");
        write(&path, "api/NOTES.md", "notes\n");
        write(&path, "api/debug.log", "log\n");
        write(
            &path,
            "api/node_modules/dep/index.js",
            "module.exports = 1;\n",
        );
        write(&path, "api/node_modules/keep.txt", "keep\n");
        write(&path, "api/src/lib.txt", "v1\n");
        std::os::unix::fs::symlink("src/lib.txt", path.join("api/link.txt")).unwrap();
        std::os::unix::fs::symlink("../api/Dockerfile", path.join(".slipway/Dockerfile-link"))
            .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", path.join("outside")).unwrap();
        git(&path, &["add", "-A"]);
        git(&path, &["commit", "--quiet", "-m", "first"]);
        let first = git(&path, &["rev-parse", "HEAD"]);
        git(&path, &["tag", "-a", "v1", "-m", "version 1"]);
        git(&path, &["tag", "light"]);
        git(&path, &["checkout", "--quiet", "-b", "feature"]);
        write(&path, "api/src/lib.txt", "feature\n");
        git(&path, &["commit", "--quiet", "-am", "feature"]);
        let feature = git(&path, &["rev-parse", "HEAD"]);
        git(&path, &["checkout", "--quiet", "main"]);
        write(&path, "api/src/lib.txt", "v2\n");
        git(&path, &["commit", "--quiet", "-am", "second"]);
        let second = git(&path, &["rev-parse", "HEAD"]);
        Repo {
            _dir: dir,
            path,
            first,
            second,
            feature,
        }
    }

    fn tar_entries(tar: &[u8]) -> BTreeMap<String, (tar::EntryType, u32, String)> {
        let mut archive = tar::Archive::new(tar);
        let mut out = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string();
            let header = entry.header();
            let kind = header.entry_type();
            let mode = header.mode().unwrap();
            assert_eq!(header.mtime().unwrap(), 0, "{path}");
            assert_eq!(header.uid().unwrap(), 0, "{path}");
            assert_eq!(header.gid().unwrap(), 0, "{path}");
            let detail = if kind == tar::EntryType::Symlink {
                entry
                    .link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .to_string()
            } else {
                let mut s = String::new();
                entry.read_to_string(&mut s).unwrap();
                s
            };
            out.insert(path, (kind, mode, detail));
        }
        out
    }

    #[test]
    fn full_shas_are_forty_lowercase_hex_digits() {
        assert!(is_full_sha(&"a".repeat(40)));
        assert!(is_full_sha("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_full_sha(&"A".repeat(40)));
        assert!(!is_full_sha(&"a".repeat(39)));
        assert!(!is_full_sha(&"a".repeat(41)));
        assert!(!is_full_sha(&"g".repeat(40)));
        assert!(!is_full_sha(""));
    }

    #[test]
    fn credentials_are_removed_from_urls_in_any_text() {
        assert_eq!(
            redact_url("https://user:secret@github.com/a/b.git"),
            "https://github.com/a/b.git"
        );
        assert_eq!(
            redact_url("https://ghp_token@github.com/a/b"),
            "https://github.com/a/b"
        );
        assert_eq!(
            redact_url("fatal: repository 'https://x:y@host:8443/r/' not found"),
            "fatal: repository 'https://host:8443/r/' not found"
        );
        assert_eq!(
            redact_url("ssh://git:pw@host/r and http://a@b"),
            "ssh://host/r and http://b"
        );
        assert_eq!(
            redact_url("git@github.com:org/repo.git"),
            "git@github.com:org/repo.git"
        );
        assert_eq!(redact_url("/srv/repos/app"), "/srv/repos/app");
    }

    #[test]
    fn repository_urls_are_classified_and_bad_ones_rejected() {
        assert_eq!(repo_kind("/srv/app").unwrap(), RepoKind::Local);
        assert_eq!(repo_kind("file:///srv/app").unwrap(), RepoKind::FileUrl);
        assert_eq!(
            repo_kind("https://github.com/a/b").unwrap(),
            RepoKind::Network
        );
        assert_eq!(repo_kind("ssh://git@host/a").unwrap(), RepoKind::Network);
        assert_eq!(repo_kind("git://host/a").unwrap(), RepoKind::Network);
        assert_eq!(
            repo_kind("git@github.com:org/repo.git").unwrap(),
            RepoKind::Network
        );
        for bad in [
            "",
            "-uhello",
            "relative/path",
            "ext::sh -c touch% /tmp/x",
            "ftp://host/x",
            "/a\nb",
        ] {
            let err = repo_kind(bad).unwrap_err();
            assert_eq!(err.class, ErrorClass::CloneError, "{bad}");
        }
        let err = repo_kind("foo://user:secret@host/x").unwrap_err();
        assert!(!err.message.contains("secret"), "{}", err.message);
    }

    #[test]
    fn ls_remote_output_is_read_in_gits_order_with_peeled_tags() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let c = "c".repeat(40);
        let d = "d".repeat(40);
        let listing = format!(
            "{a}\tHEAD\n{a}\trefs/heads/main\n{b}\trefs/heads/v1\n{c}\trefs/tags/v1\n{d}\trefs/tags/v1^{{}}\n"
        );
        assert_eq!(pick_ref(&listing, "HEAD").as_deref(), Some(a.as_str()));
        assert_eq!(pick_ref(&listing, "main").as_deref(), Some(a.as_str()));
        assert_eq!(pick_ref(&listing, "v1").as_deref(), Some(d.as_str()));
        assert_eq!(pick_ref(&listing, "heads/v1").as_deref(), Some(b.as_str()));
        assert_eq!(
            pick_ref(&listing, "refs/heads/v1").as_deref(),
            Some(b.as_str())
        );
        assert_eq!(pick_ref(&listing, "ain"), None);
    }

    #[test]
    fn git_errors_are_classified_with_a_reason() {
        let (class, reason) =
            describe_git_error("fatal: repository '/x' does not exist\n", Some(128), "/x");
        assert_eq!(class, ErrorClass::CloneError);
        assert!(reason.starts_with("repository not found"), "{reason}");
        let (class, _) = describe_git_error(
            "fatal: Authentication failed for 'https://github.com/a/b/'\n",
            Some(128),
            "https://github.com/a/b",
        );
        assert_eq!(class, ErrorClass::AuthError);
        let (class, _) = describe_git_error(
            "git@github.com: Permission denied (publickey).\n",
            Some(128),
            "x",
        );
        assert_eq!(class, ErrorClass::AuthError);
        let (class, reason) = describe_git_error(
            "warning: x\nfatal: unable to access 'https://nohost/': Could not resolve host: nohost\n",
            Some(128),
            "https://nohost",
        );
        assert_eq!(class, ErrorClass::CloneError);
        assert_eq!(
            reason,
            "unable to access 'https://nohost/': Could not resolve host: nohost"
        );
        let (_, reason) = describe_git_error("", Some(1), "x");
        assert_eq!(reason, "git exited with status 1");
    }

    #[test]
    fn repository_paths_are_normalised_and_escapes_rejected() {
        assert_eq!(normalize_rel("a/./b//c").as_deref(), Some("a/b/c"));
        assert_eq!(normalize_rel("a/../b").as_deref(), Some("b"));
        assert_eq!(normalize_rel("./").as_deref(), Some("."));
        assert_eq!(normalize_rel("../x"), None);
        assert_eq!(normalize_rel("a/../../x"), None);
        assert_eq!(normalize_rel("/etc/passwd"), None);
    }

    #[tokio::test]
    async fn resolve_ref_finds_the_tip_of_a_branch() {
        let repo = make_repo();
        assert_eq!(resolve_ref(&repo.url(), "main").await.unwrap(), repo.second);
        assert_eq!(
            resolve_ref(&repo.url(), "feature").await.unwrap(),
            repo.feature
        );
        assert_eq!(
            resolve_ref(&repo.url(), "refs/heads/feature")
                .await
                .unwrap(),
            repo.feature
        );
    }

    #[tokio::test]
    async fn resolve_ref_turns_annotated_and_lightweight_tags_into_their_commit() {
        let repo = make_repo();
        assert_eq!(resolve_ref(&repo.url(), "v1").await.unwrap(), repo.first);
        assert_eq!(resolve_ref(&repo.url(), "light").await.unwrap(), repo.first);
    }

    #[tokio::test]
    async fn resolve_ref_understands_head_and_short_shas_in_a_local_repository() {
        let repo = make_repo();
        assert_eq!(resolve_ref(&repo.url(), "HEAD").await.unwrap(), repo.second);
        assert_eq!(
            resolve_ref(&repo.url(), &repo.first[..8]).await.unwrap(),
            repo.first
        );
        assert_eq!(
            resolve_ref(&repo.url(), "HEAD~1").await.unwrap(),
            repo.first
        );
    }

    #[tokio::test]
    async fn resolve_ref_checks_that_a_full_sha_exists() {
        let repo = make_repo();
        assert_eq!(
            resolve_ref(&repo.url(), &repo.feature).await.unwrap(),
            repo.feature
        );
        assert_eq!(
            resolve_ref(&repo.url(), &repo.first.to_uppercase())
                .await
                .unwrap(),
            repo.first
        );
        let missing = "0123456789abcdef0123456789abcdef01234567";
        let err = resolve_ref(&repo.url(), missing).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::CloneError);
        assert!(
            err.message.contains(missing) && err.message.contains(&repo.url()),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn resolve_ref_names_the_ref_and_the_repository_when_the_ref_is_unknown() {
        let repo = make_repo();
        let err = resolve_ref(&repo.url(), "no-such-branch")
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::CloneError);
        assert!(err.message.contains("`no-such-branch`"), "{}", err.message);
        assert!(err.message.contains(&repo.url()), "{}", err.message);
    }

    #[tokio::test]
    async fn resolve_ref_works_over_a_file_url() {
        let repo = make_repo();
        assert_eq!(
            resolve_ref(&repo.file_url(), "main").await.unwrap(),
            repo.second
        );
        assert_eq!(
            resolve_ref(&repo.file_url(), "v1").await.unwrap(),
            repo.first
        );
        assert_eq!(
            resolve_ref(&repo.file_url(), &repo.feature).await.unwrap(),
            repo.feature
        );
        let err = resolve_ref(&repo.file_url(), "0123456789abcdef0123456789abcdef01234567")
            .await
            .unwrap_err();
        assert!(err.message.contains("not found"), "{}", err.message);
        let err = resolve_ref(&repo.file_url(), &repo.first[..8])
            .await
            .unwrap_err();
        assert!(
            err.message.contains("full 40-character sha"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn resolve_ref_says_when_the_repository_does_not_exist() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = resolve_ref(missing.to_str().unwrap(), "main")
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::CloneError);
        assert!(
            err.message.contains("repository not found"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains(missing.to_str().unwrap()),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn resolve_ref_rejects_refs_that_look_like_options() {
        let repo = make_repo();
        let err = resolve_ref(&repo.url(), "--upload-pack=touch /tmp/x")
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::CloneError);
        assert!(err.message.contains("starts with `-`"), "{}", err.message);
    }

    #[tokio::test]
    async fn errors_never_show_credentials_from_the_url() {
        // Port 1 on localhost refuses the connection at once.
        let url = "https://someone:hunter2@127.0.0.1:1/org/repo.git";
        let err = resolve_ref(url, "main").await.unwrap_err();
        assert!(
            !err.message.contains("hunter2") && !err.message.contains("someone"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("https://127.0.0.1:1/org/repo.git"),
            "{}",
            err.message
        );
        let dir = tempfile::tempdir().unwrap();
        let err = checkout(url, &"a".repeat(40), &dir.path().join("x"))
            .await
            .unwrap_err();
        assert!(!err.message.contains("hunter2"), "{}", err.message);
    }

    #[tokio::test]
    async fn a_git_command_that_takes_too_long_is_stopped() {
        let git = Git::new(Duration::from_millis(1));
        let repo = make_repo();
        let err = git.resolve_ref(&repo.url(), "main").await.unwrap_err();
        assert!(
            err.message.contains("did not finish within"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn checkout_puts_the_commit_in_the_destination() {
        let repo = make_repo();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("src");
        let co = checkout(&repo.url(), &repo.first, &dest).await.unwrap();
        assert_eq!(
            co,
            Checkout {
                dir: dest.clone(),
                sha: repo.first.clone()
            }
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("api/src/lib.txt")).unwrap(),
            "v1\n"
        );
        assert_eq!(git(&dest, &["rev-parse", "HEAD"]), repo.first);
        // Detached: no branch checked out.
        assert_eq!(git(&dest, &["rev-parse", "--abbrev-ref", "HEAD"]), "HEAD");
        let mode = std::fs::metadata(dest.join("api/main.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_ne!(mode & 0o111, 0);
        assert!(std::fs::symlink_metadata(dest.join("api/link.txt"))
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[tokio::test]
    async fn checkout_accepts_an_empty_existing_directory_and_refuses_a_non_empty_one() {
        let repo = make_repo();
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        checkout(&repo.url(), &repo.second, &empty).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(empty.join("api/src/lib.txt")).unwrap(),
            "v2\n"
        );
        let err = checkout(&repo.url(), &repo.second, &empty)
            .await
            .unwrap_err();
        assert!(err.message.contains("is not empty"), "{}", err.message);
    }

    #[tokio::test]
    async fn checkout_fetches_a_commit_that_no_branch_reaches() {
        let repo = make_repo();
        // Make the feature commit unreachable from any ref the clone copies.
        git(&repo.path, &["branch", "--quiet", "-D", "feature"]);
        git(
            &repo.path,
            &["update-ref", "refs/keep/feature", &repo.feature],
        );
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("src");
        checkout(&repo.file_url(), &repo.feature, &dest)
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.join("api/src/lib.txt")).unwrap(),
            "feature\n"
        );
    }

    #[tokio::test]
    async fn checkout_clones_from_a_file_url() {
        let repo = make_repo();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("src");
        let co = checkout(&repo.file_url(), &repo.feature, &dest)
            .await
            .unwrap();
        assert_eq!(co.sha, repo.feature);
        assert_eq!(
            std::fs::read_to_string(dest.join("api/src/lib.txt")).unwrap(),
            "feature\n"
        );
        assert_eq!(
            git(&dest, &["remote", "get-url", "origin"]),
            repo.file_url()
        );
    }

    #[tokio::test]
    async fn checkout_of_an_unknown_commit_fails_and_cleans_up() {
        let repo = make_repo();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("src");
        let missing = "0123456789abcdef0123456789abcdef01234567";
        let err = checkout(&repo.url(), missing, &dest).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::CloneError);
        assert!(err.message.contains(missing), "{}", err.message);
        assert!(!dest.exists());
    }

    #[tokio::test]
    async fn checkout_of_a_missing_repository_says_repository_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = checkout(
            missing.to_str().unwrap(),
            &"a".repeat(40),
            &dir.path().join("src"),
        )
        .await
        .unwrap_err();
        assert_eq!(err.class, ErrorClass::CloneError);
        assert_eq!(
            err.message,
            format!(
                "could not clone {}: repository not found (check the repository URL and that its access token can read it)",
                missing.display()
            )
        );
    }

    #[tokio::test]
    async fn checkout_requires_a_full_sha() {
        let repo = make_repo();
        let dir = tempfile::tempdir().unwrap();
        let err = checkout(&repo.url(), "main", &dir.path().join("x"))
            .await
            .unwrap_err();
        assert!(
            err.message.contains("not a full commit sha"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn read_file_at_reads_a_file_at_a_commit_in_a_local_repository() {
        let repo = make_repo();
        let manifest = read_file_at(
            &repo.url(),
            &repo.first,
            slipway_model::manifest::MANIFEST_PATH,
        )
        .await
        .unwrap();
        assert_eq!(
            manifest.as_deref(),
            Some("services:\n  api:\n    build: ./api\n")
        );
        assert_eq!(
            read_file_at(&repo.url(), &repo.first, "api/src/lib.txt")
                .await
                .unwrap()
                .as_deref(),
            Some("v1\n")
        );
        assert_eq!(
            read_file_at(&repo.url(), &repo.second, "./api//src/lib.txt")
                .await
                .unwrap()
                .as_deref(),
            Some("v2\n")
        );
    }

    #[tokio::test]
    async fn read_file_at_returns_none_for_missing_files_and_directories() {
        let repo = make_repo();
        assert_eq!(
            read_file_at(&repo.url(), &repo.first, "nope.yaml")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            read_file_at(&repo.url(), &repo.first, "api/src")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            read_file_at(&repo.url(), &repo.first, ".").await.unwrap(),
            None
        );
        assert_eq!(
            read_file_at(&repo.url(), &repo.first, "api/*.md")
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn read_file_at_follows_symbolic_links_inside_the_repository_only() {
        let repo = make_repo();
        assert_eq!(
            read_file_at(&repo.url(), &repo.first, "api/link.txt")
                .await
                .unwrap()
                .as_deref(),
            Some("v1\n")
        );
        assert_eq!(
            read_file_at(&repo.url(), &repo.first, ".slipway/Dockerfile-link")
                .await
                .unwrap()
                .as_deref(),
            Some("FROM scratch\nCOPY . /app\n")
        );
        assert_eq!(
            read_file_at(&repo.url(), &repo.first, "outside")
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn read_file_at_rejects_paths_outside_the_repository() {
        let repo = make_repo();
        let err = read_file_at(&repo.url(), &repo.first, "../secret")
            .await
            .unwrap_err();
        assert!(err.message.contains("stay inside"), "{}", err.message);
    }

    #[tokio::test]
    async fn read_file_at_fails_for_an_unknown_commit() {
        let repo = make_repo();
        let missing = "0123456789abcdef0123456789abcdef01234567";
        let err = read_file_at(&repo.url(), missing, "a").await.unwrap_err();
        assert!(err.message.contains(missing), "{}", err.message);
        let err = read_file_at(&repo.file_url(), missing, "a")
            .await
            .unwrap_err();
        assert!(err.message.contains(missing), "{}", err.message);
    }

    #[tokio::test]
    async fn read_file_at_reads_through_a_file_url_and_leaves_no_temporary_repository() {
        let repo = make_repo();
        let before = count_temp_repos();
        let content = read_file_at(&repo.file_url(), &repo.feature, "api/src/lib.txt")
            .await
            .unwrap();
        assert_eq!(content.as_deref(), Some("feature\n"));
        assert_eq!(
            read_file_at(&repo.file_url(), &repo.feature, "missing")
                .await
                .unwrap(),
            None
        );
        // Other tests may be running at the same time; ours were removed.
        assert!(count_temp_repos() <= before + 2);
    }

    fn count_temp_repos() -> usize {
        let prefix = format!("slipway-git-{}-", std::process::id());
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count()
    }

    #[tokio::test]
    async fn fs_repo_view_sees_files_and_directories_of_a_checkout() {
        let repo = make_repo();
        let dir = tempfile::tempdir().unwrap();
        let co = checkout(&repo.url(), &repo.first, &dir.path().join("src"))
            .await
            .unwrap();
        let view = co.repo_view();
        assert!(view.is_dir("."));
        assert!(view.is_dir("api"));
        assert!(view.is_dir("./api/src/"));
        assert!(!view.is_dir("api/Dockerfile"));
        assert!(view.is_file("api/Dockerfile"));
        assert!(view.is_file("api/link.txt"));
        assert!(!view.is_file("api"));
        assert!(!view.is_file("api/missing"));
        assert!(!view.is_dir("../src"));
        assert!(!view.is_dir("/"));
        assert!(!view.is_file("/etc/passwd"));
        assert!(
            !view.is_file("outside"),
            "a link to /etc/passwd escapes the checkout"
        );
    }

    #[tokio::test]
    async fn manifest_paths_are_checked_against_a_checkout() {
        let repo = make_repo();
        let dir = tempfile::tempdir().unwrap();
        let co = checkout(&repo.url(), &repo.first, &dir.path().join("src"))
            .await
            .unwrap();
        let good = slipway_model::manifest::parse("services:\n  api:\n    build: ./api\n").unwrap();
        assert!(slipway_model::manifest::check_paths(&good, &co.repo_view()).is_empty());
        let bad = slipway_model::manifest::parse("services:\n  web:\n    build: ./web\n").unwrap();
        assert_eq!(
            slipway_model::manifest::check_paths(&bad, &co.repo_view()).len(),
            1
        );
    }

    #[tokio::test]
    async fn context_tar_honours_dockerignore_and_keeps_modes_and_links() {
        let repo = make_repo();
        let dir = tempfile::tempdir().unwrap();
        let co = checkout(&repo.url(), &repo.first, &dir.path().join("src"))
            .await
            .unwrap();
        let (tar, stats) = context_tar(&co.dir.join("api")).unwrap();
        let entries = tar_entries(&tar);
        let names: Vec<&str> = entries.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            vec![
                ".dockerignore",
                "Dockerfile",
                "README.md",
                "link.txt",
                "main.sh",
                "node_modules",
                "node_modules/keep.txt",
                "src",
                "src/lib.txt",
            ]
        );
        assert_eq!(entries["main.sh"].0, tar::EntryType::Regular);
        assert_eq!(entries["main.sh"].1, 0o755);
        assert_eq!(entries["README.md"].1, 0o644);
        assert_eq!(entries["src"].0, tar::EntryType::Directory);
        assert_eq!(entries["src"].1, 0o755);
        assert_eq!(entries["link.txt"].0, tar::EntryType::Symlink);
        assert_eq!(entries["link.txt"].2, "src/lib.txt");
        assert_eq!(entries["src/lib.txt"].2, "v1\n");
        assert_eq!(stats.files, 7);
        let expected_bytes: u64 = [
            "Dockerfile",
            ".dockerignore",
            "README.md",
            "main.sh",
            "node_modules/keep.txt",
            "src/lib.txt",
        ]
        .iter()
        .map(|f| std::fs::metadata(co.dir.join("api").join(f)).unwrap().len())
        .sum();
        assert_eq!(stats.bytes, expected_bytes);
        // NOTES.md, debug.log, node_modules/dep (whole).
        assert_eq!(stats.ignored, 3);
    }

    #[tokio::test]
    async fn context_tar_is_byte_identical_for_the_same_tree() {
        let repo = make_repo();
        let dir = tempfile::tempdir().unwrap();
        let a = checkout(&repo.url(), &repo.first, &dir.path().join("a"))
            .await
            .unwrap();
        let b = checkout(&repo.file_url(), &repo.first, &dir.path().join("b"))
            .await
            .unwrap();
        // The same tree with other times: every file and directory of `b`
        // dated 2001 (instead of waiting for the clock to move on).
        fn backdate(path: &Path) {
            let long_ago = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
            let meta = std::fs::symlink_metadata(path).unwrap();
            if meta.file_type().is_symlink() {
                return;
            }
            if meta.is_dir() {
                for entry in std::fs::read_dir(path).unwrap() {
                    backdate(&entry.unwrap().path());
                }
            }
            std::fs::File::open(path).unwrap().set_modified(long_ago).unwrap();
        }
        backdate(&b.dir);
        let dockerfile = |c: &Path| std::fs::metadata(c.join("api/Dockerfile")).unwrap().modified().unwrap();
        assert_ne!(dockerfile(&a.dir), dockerfile(&b.dir), "the two checkouts differ in mtime");
        let (tar_a, stats_a) = context_tar(&a.dir).unwrap();
        let (tar_b, stats_b) = context_tar(&b.dir).unwrap();
        assert_eq!(stats_a, stats_b);
        assert!(
            tar_a == tar_b,
            "two checkouts of one commit must give the same tar"
        );
        let (again, _) = context_tar(&a.dir).unwrap();
        assert_eq!(tar_a, again);
        let (other, _) = context_tar(
            &checkout(&repo.url(), &repo.second, &dir.path().join("c"))
                .await
                .unwrap()
                .dir,
        )
        .unwrap();
        assert_ne!(tar_a, other);
    }

    #[tokio::test]
    async fn context_tar_of_the_repository_root_leaves_out_git() {
        let repo = make_repo();
        let dir = tempfile::tempdir().unwrap();
        let co = checkout(&repo.url(), &repo.first, &dir.path().join("src"))
            .await
            .unwrap();
        let (tar, stats) = context_tar(&co.dir).unwrap();
        let entries = tar_entries(&tar);
        assert!(!entries
            .keys()
            .any(|k| k == ".git" || k.starts_with(".git/")));
        assert!(entries.contains_key(".slipway/manifest.yaml"));
        // The root has no .dockerignore: only .git is left out.
        assert_eq!(stats.ignored, 1);
        assert_eq!(entries["outside"].0, tar::EntryType::Symlink);
        assert_eq!(entries["outside"].2, "/etc/passwd");
    }

    #[test]
    fn context_tar_always_includes_the_dockerfile_and_dockerignore() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path();
        write(ctx, ".dockerignore", "*\n");
        write(ctx, "Dockerfile", "FROM scratch\n");
        write(ctx, "docker/prod.Dockerfile", "FROM scratch\n");
        write(ctx, "docker/other", "x\n");
        write(ctx, "app.txt", "x\n");
        let (tar, stats) = context_tar(ctx).unwrap();
        let names: Vec<String> = tar_entries(&tar).into_keys().collect();
        assert_eq!(names, vec![".dockerignore", "Dockerfile"]);
        assert_eq!(stats.ignored, 2);
        let (tar, stats) = context_tar_with_dockerfile(ctx, "./docker/prod.Dockerfile").unwrap();
        let names: Vec<String> = tar_entries(&tar).into_keys().collect();
        assert_eq!(
            names,
            vec![".dockerignore", "docker", "docker/prod.Dockerfile"]
        );
        // Dockerfile, app.txt, docker/other.
        assert_eq!(stats.ignored, 3);
    }

    #[test]
    fn context_tar_stores_long_paths() {
        let dir = tempfile::tempdir().unwrap();
        let long = format!("{}/{}.txt", "d".repeat(120), "f".repeat(120));
        write(dir.path(), &long, "deep\n");
        std::os::unix::fs::symlink(&long, dir.path().join("l")).unwrap();
        let (tar, _) = context_tar(dir.path()).unwrap();
        let entries = tar_entries(&tar);
        assert_eq!(entries[&long].2, "deep\n");
        assert_eq!(entries["l"].2, long);
    }

    #[test]
    fn context_tar_of_a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(context_tar(&dir.path().join("nope")).is_err());
    }
}
