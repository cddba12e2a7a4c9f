//! Git's failures as messages: what failed, on which repository (its URL
//! redacted), why, and what to do, classified as a clone or an
//! authentication error.

use std::io;
use std::time::Duration;

use slipway_model::status::ErrorClass;

use crate::builds::BuildFailure;

/// Why a git command did not succeed.
#[derive(Debug)]
pub(super) enum GitError {
    /// `git` could not be started.
    Spawn(io::Error),
    /// The command ran out of time.
    TimedOut(Duration),
    /// The command exited unsuccessfully.
    Failed { code: Option<i32>, stderr: String },
}


/// Turns a failed git command into a message: `"{action}: {reason}"`.
pub(super) fn git_failure(action: &str, shown: &str, err: GitError) -> BuildFailure {
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
pub(super) fn commit_fetch_failure(sha: &str, shown: &str, err: GitError) -> BuildFailure {
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

pub(super) fn commit_not_found(sha: &str, shown: &str) -> BuildFailure {
    BuildFailure::new(
        ErrorClass::CloneError,
        format!("commit {sha} not found in {shown} (check the sha, or push the commit first)"),
    )
}

/// Picks the reason out of git's error output and classifies it.
pub(super) fn describe_git_error(stderr: &str, code: Option<i32>, shown: &str) -> (ErrorClass, String) {
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

