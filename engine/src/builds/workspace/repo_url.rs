//! Repository URLs: how a repository is reached (a local path, a `file://`
//! URL or the network), refusing what git must not be given, and credentials
//! removed from any text that shows a URL.

use slipway_model::status::ErrorClass;

use crate::builds::BuildFailure;

/// How a repository is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RepoKind {
    /// An absolute path on this host.
    Local,
    /// A `file://` URL.
    FileUrl,
    /// A network URL (https, http, ssh, git, scp-like).
    Network,
}


/// Classifies a repository URL or path, rejecting what git must not be given.
pub(super) fn repo_kind(url: &str) -> Result<RepoKind, BuildFailure> {
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

