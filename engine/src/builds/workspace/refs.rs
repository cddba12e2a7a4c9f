//! What git is given and what it lists: refs, shas and repository paths
//! checked before git sees them, and the output of `ls-remote` and
//! `ls-tree` read back.

use slipway_model::status::ErrorClass;

use super::is_full_sha;
use crate::builds::BuildFailure;

/// Rejects refs that git could take for options or that cannot be ref names.
pub(super) fn check_ref(git_ref: &str, shown: &str) -> Result<(), BuildFailure> {
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

pub(super) fn require_full_sha(sha: &str) -> Result<(), BuildFailure> {
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
pub(super) fn pick_ref(listing: &str, git_ref: &str) -> Option<String> {
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
pub(super) fn find_tree_entry(listing: &[u8], path: &str) -> Option<(String, String)> {
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
pub(super) fn normalize_rel(path: &str) -> Option<String> {
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

