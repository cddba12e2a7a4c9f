//! Git repositories for tests, made with the `git` binary under a fixed
//! identity and without the user's configuration of signing.

use std::path::Path;

/// Runs git in `dir`; returns its trimmed standard output. Panics with git's
/// error output when git fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A git repository on branch `main` with no commit yet.
pub fn empty_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    dir
}

/// A git repository holding `files` (path, content), committed on `main`.
pub fn repo<S: AsRef<str>>(files: &[(&str, S)]) -> tempfile::TempDir {
    let dir = empty_repo();
    commit(dir.path(), files);
    dir
}

/// Writes `files` (path, content) into the repository at `dir` and commits
/// them (an empty commit when there are none); returns the new commit's sha.
pub fn commit<S: AsRef<str>>(dir: &Path, files: &[(&str, S)]) -> String {
    for (path, content) in files {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().expect("a parent directory")).expect("mkdir");
        std::fs::write(full, content.as_ref()).expect("write");
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", "fixture"]);
    git(dir, &["rev-parse", "HEAD"])
}

/// Commits `.slipway/manifest.yaml` with this text; returns the commit's sha.
pub fn commit_manifest(dir: &Path, manifest: &str) -> String {
    commit(dir, &[(slipway_model::manifest::MANIFEST_PATH, manifest)])
}

/// A git repository holding `files` (path, content) and the symbolic links
/// `links` (path, target), committed on `main`.
pub fn repo_with_links<S: AsRef<str>>(files: &[(&str, S)], links: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = empty_repo();
    for (path, target) in links {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().expect("a parent directory")).expect("mkdir");
        std::os::unix::fs::symlink(target, full).expect("symlink");
    }
    commit(dir.path(), files);
    dir
}
