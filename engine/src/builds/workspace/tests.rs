//! The workspace's tests, against real repositories made with the `git` binary.

use super::errors::describe_git_error;
use super::refs::{normalize_rel, pick_ref};
use super::repo_url::{repo_kind, RepoKind};
use super::*;
use slipway_model::manifest::RepoView;
use slipway_model::status::ErrorClass;
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
