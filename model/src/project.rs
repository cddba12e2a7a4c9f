//! Projects: a name and the git repository Slipway builds from.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, FieldProblem};

/// A project as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub slug: String,
    /// A local path or a git URL.
    pub repo_url: String,
    pub default_branch: String,
    pub description: Option<String>,
    pub auto_release: bool,
    /// Name of the project secret holding an https token for the repository
    /// (`token` or `username:token`), if the project uses one.
    #[serde(default)]
    pub git_token_secret: Option<String>,
    /// Name of the project secret holding an SSH deploy key (private key) for the
    /// repository, if the project uses one.
    #[serde(default)]
    pub git_ssh_key_secret: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A project with the counts the dashboard lists beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSummary {
    #[serde(flatten)]
    pub project: Project,
    pub build_count: i64,
    pub release_count: i64,
    pub environment_count: i64,
}

/// Input for creating a project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewProject {
    pub name: String,
    pub repo_url: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub default_branch: Option<String>,
}

/// The branch used when a project does not name one.
pub const DEFAULT_BRANCH: &str = "main";

impl NewProject {
    /// Trims the input and checks every field, reporting all problems at once.
    /// Whether a local path exists is checked by the engine, which can do I/O.
    pub fn normalized(&self) -> Result<NewProject, AppError> {
        let mut problems = Vec::new();
        let name = self.name.trim().to_string();
        if name.is_empty() {
            problems.push(problem("name", "is required"));
        } else if name.chars().count() > 100 {
            problems.push(problem("name", "must be at most 100 characters"));
        } else if slugify(&name).is_empty() {
            problems.push(problem("name", "must contain at least one letter or digit"));
        }
        let repo_url = self.repo_url.trim().to_string();
        if let Err(message) = check_repo_url(&repo_url) {
            problems.push(problem("repo_url", &message));
        }
        let default_branch = self
            .default_branch
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(str::to_string);
        if let Some(branch) = &default_branch {
            if !is_valid_branch(branch) {
                problems.push(problem("default_branch", "is not a valid git branch name"));
            }
        }
        let description = self
            .description
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_string);
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 2000)
        {
            problems.push(problem("description", "must be at most 2000 characters"));
        }
        if !problems.is_empty() {
            return Err(AppError::invalid_fields(problems));
        }
        Ok(NewProject {
            name,
            repo_url,
            description,
            default_branch,
        })
    }
}

fn problem(field: &str, message: &str) -> FieldProblem {
    FieldProblem {
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// The kind of repository location a project points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    /// An absolute path on the Slipway host.
    LocalPath,
    /// A `file://` URL: also a path on the Slipway host.
    FileUrl,
    /// A network URL git can clone (`https://`, `ssh://`, `git://`, `user@host:path`).
    Remote,
}

impl RepoKind {
    /// Whether the repository is read from the Slipway host's own disk: only a
    /// global administrator may point a project there.
    pub fn is_on_this_host(self) -> bool {
        matches!(self, RepoKind::LocalPath | RepoKind::FileUrl)
    }
}

/// The message when someone who is not a global administrator names a host path.
/// The same whether the path exists or not, so it reveals nothing about the host.
pub const HOST_REPO_FORBIDDEN: &str = "only a Slipway administrator may use a path on the Slipway host or a file:// URL; \
     give an https:// or ssh:// URL (a private repository needs a token or deploy key in the project's secrets, \
     named in the project settings)";

/// Settings a project admin may change (`projects/settings`); fields left out stay
/// as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSettings {
    /// Every completed build creates a release.
    #[serde(default)]
    pub auto_release: Option<bool>,
    /// The secret holding the repository's https token; `""` clears it.
    #[serde(default)]
    pub git_token_secret: Option<String>,
    /// The secret holding the repository's SSH deploy key; `""` clears it.
    #[serde(default)]
    pub git_ssh_key_secret: Option<String>,
}

/// Says whether `repo` is a local absolute path or a git URL, or why it is neither.
pub fn check_repo_url(repo: &str) -> Result<RepoKind, String> {
    if repo.is_empty() {
        return Err("is required: an absolute path on the Slipway host or a git URL".into());
    }
    if repo.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    if repo.starts_with('/') {
        if repo.split('/').any(|part| part == "..") {
            return Err("must not contain `..` segments".into());
        }
        return Ok(RepoKind::LocalPath);
    }
    for scheme in ["https://", "http://", "ssh://", "git://", "file://"] {
        if let Some(rest) = repo.strip_prefix(scheme) {
            if rest.is_empty() || rest.starts_with('/') && scheme != "file://" {
                return Err(format!("`{repo}` has no host after {scheme}"));
            }
            if scheme == "file://" {
                return Ok(RepoKind::FileUrl);
            }
            return Ok(RepoKind::Remote);
        }
    }
    // scp-like syntax: user@host:path
    if let Some((user_host, path)) = repo.split_once(':') {
        if user_host.contains('@') && !user_host.contains('/') && !path.is_empty() {
            return Ok(RepoKind::Remote);
        }
    }
    Err(format!(
        "`{repo}` is neither an absolute path nor a git URL (expected /path/to/repo, https://host/repo.git, ssh://… or user@host:repo.git)"
    ))
}

fn is_valid_branch(branch: &str) -> bool {
    !branch.starts_with('-')
        && !branch.starts_with('/')
        && !branch.ends_with('/')
        && !branch.ends_with(".lock")
        && !branch.contains("..")
        && !branch.contains("//")
        && branch.len() <= 200
        && branch
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"~^:?*[\\".contains(c))
}

/// Lowercase, dash-separated form of a name, used in URLs and image names.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.starts_with(|c: char| c.is_ascii_digit()) {
        slug.insert_str(0, "p-");
    }
    slug.truncate(63);
    while slug.ends_with('-') {
        slug.pop();
    }
    slug
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_of_a_new_project_is_reported_at_once() {
        let err = NewProject {
            name: "  ".into(),
            repo_url: "not a repo".into(),
            ..Default::default()
        }
        .normalized()
        .unwrap_err();
        let fields: Vec<_> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["name", "repo_url"]);
        assert!(
            err.message.contains("repo_url: `not a repo` is neither"),
            "{}",
            err.message
        );
    }

    #[test]
    fn local_paths_and_git_urls_are_accepted() {
        for ok in [
            "/srv/repos/app",
            "https://git.example/app.git",
            "git@host:team/app.git",
            "ssh://host/app",
            "file:///srv/app",
        ] {
            assert!(check_repo_url(ok).is_ok(), "{ok}");
        }
        for bad in ["relative/path", "/srv/../etc", "https://", "ftp://x"] {
            assert!(check_repo_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slugs_are_lowercase_and_dashed() {
        assert_eq!(slugify("My Demo App!"), "my-demo-app");
        assert_eq!(slugify("42 things"), "p-42-things");
        assert_eq!(slugify("--"), "");
    }
}
