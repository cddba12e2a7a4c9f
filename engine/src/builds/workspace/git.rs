//! [`Git`]: the `git` binary driven with a time limit per command, the
//! project's own credential and nothing of the host's git setup; resolving
//! refs, checking commits out, and reading one file at a commit.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use slipway_model::status::ErrorClass;
use tokio::process::Command;

use super::cleanup::{KillGroupOnDrop, TempDir};
use super::errors::{commit_fetch_failure, commit_not_found, git_failure, GitError};
use super::refs::{check_ref, find_tree_entry, normalize_rel, pick_ref, require_full_sha};
use super::repo_url::{redact_url, repo_kind, RepoKind};
use super::{is_full_sha, Checkout, DEFAULT_GIT_TIMEOUT, MAX_READ_BYTES, MAX_SYMLINK_HOPS};
use crate::builds::git_access::{GitCredentials, GitEnv};
use crate::builds::BuildFailure;

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

