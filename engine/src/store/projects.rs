//! Projects. A repository on this host (a path or a `file://` URL) may only be
//! named by a global administrator (or the system, e.g. demo seeding); anyone
//! else gets the same answer whether the path exists or not.

use chrono::{DateTime, Utc};
use slipway_model::id::{self, PROJECT};
use slipway_model::project::{
    check_repo_url, slugify, NewProject, Project, ProjectSettings, ProjectSummary, RepoKind, DEFAULT_BRANCH,
    HOST_REPO_FORBIDDEN,
};
use slipway_model::secret::check_secret_name;
use slipway_model::{AppError, ErrorCode, FieldProblem};

use super::Store;
use crate::error::Result;

#[derive(sqlx::FromRow)]
struct ProjectRow {
    id: String,
    name: String,
    slug: String,
    repo_url: String,
    default_branch: String,
    description: Option<String>,
    auto_release: bool,
    git_token_secret: Option<String>,
    git_ssh_key_secret: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<ProjectRow> for Project {
    fn from(r: ProjectRow) -> Self {
        Project {
            id: r.id,
            name: r.name,
            slug: r.slug,
            repo_url: r.repo_url,
            default_branch: r.default_branch,
            description: r.description,
            auto_release: r.auto_release,
            git_token_secret: r.git_token_secret,
            git_ssh_key_secret: r.git_ssh_key_secret,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    #[sqlx(flatten)]
    project: ProjectRow,
    build_count: i64,
    release_count: i64,
    environment_count: i64,
}

const PROJECT_COLUMNS: &str = "p.id, p.name, p.slug, p.repo_url, p.default_branch, p.description, p.auto_release, \
     p.git_token_secret, p.git_ssh_key_secret, p.created_at";

/// Checks that a local repository path exists on this host and is a git repository.
fn check_local_repo(path: &str) -> Result<(), AppError> {
    let p = std::path::Path::new(path);
    if !p.exists() {
        return Err(AppError::invalid("repo_url", format!("{path} does not exist on the Slipway host")));
    }
    if !p.is_dir() {
        return Err(AppError::invalid("repo_url", format!("{path} is not a directory")));
    }
    let is_worktree = p.join(".git").exists();
    let is_bare = p.join("HEAD").is_file() && p.join("objects").is_dir();
    if !is_worktree && !is_bare {
        return Err(AppError::invalid("repo_url", format!("{path} is not a git repository (no .git found)")));
    }
    Ok(())
}

/// 403 on `repo_url`: the same for a path that exists and one that does not.
fn host_repo_forbidden() -> AppError {
    AppError {
        code: ErrorCode::Forbidden,
        message: format!("repo_url: {HOST_REPO_FORBIDDEN}"),
        problems: vec![FieldProblem { field: "repo_url".into(), message: HOST_REPO_FORBIDDEN.into() }],
    }
}

impl Store {
    /// Creates a project after validating every field; a duplicate name is a
    /// conflict naming the field. `created_by` is a user id (`None`: the system).
    #[tracing::instrument(skip_all, fields(name = %input.name))]
    pub async fn create_project(&self, input: &NewProject, created_by: Option<&str>) -> Result<Project> {
        let input = input.normalized()?;
        let kind = check_repo_url(&input.repo_url).map_err(|m| AppError::invalid("repo_url", m))?;
        if kind.is_on_this_host() {
            // Permission first, existence after: a member learns nothing about the host.
            let allowed = match created_by {
                None => true,
                Some(user_id) => self.get_user(user_id).await?.is_admin,
            };
            if !allowed {
                return Err(host_repo_forbidden().into());
            }
            if kind == RepoKind::LocalPath {
                check_local_repo(&input.repo_url)?;
            }
        }
        let slug = slugify(&input.name);
        let row: ProjectRow = sqlx::query_as(&format!(
            "INSERT INTO projects AS p (id, name, slug, repo_url, default_branch, description, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING {PROJECT_COLUMNS}"
        ))
        .bind(id::new_id(PROJECT))
        .bind(&input.name)
        .bind(&slug)
        .bind(&input.repo_url)
        .bind(input.default_branch.as_deref().unwrap_or(DEFAULT_BRANCH))
        .bind(&input.description)
        .bind(created_by)
        .fetch_one(self.pool())
        .await?;
        Ok(row.into())
    }

    /// Every project, by name, with its counts.
    #[tracing::instrument(skip_all)]
    pub async fn list_projects(&self) -> Result<Vec<ProjectSummary>> {
        let rows: Vec<SummaryRow> = sqlx::query_as(&format!(
            "SELECT {PROJECT_COLUMNS},
                (SELECT count(*) FROM build_specs b WHERE b.project_id = p.id) AS build_count,
                (SELECT count(*) FROM releases r WHERE r.project_id = p.id) AS release_count,
                (SELECT count(*) FROM environments e WHERE e.project_id = p.id) AS environment_count
             FROM projects p ORDER BY lower(p.name)"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ProjectSummary {
                project: r.project.into(),
                build_count: r.build_count,
                release_count: r.release_count,
                environment_count: r.environment_count,
            })
            .collect())
    }

    /// One project by id (`prj_…`) or slug.
    #[tracing::instrument(skip_all, fields(project = %id_or_slug))]
    pub async fn get_project(&self, id_or_slug: &str) -> Result<Project> {
        let key = id_or_slug.trim();
        let row: Option<ProjectRow> = sqlx::query_as(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1 OR p.slug = $1 OR lower(p.name) = lower($1)
             ORDER BY (p.id = $1) DESC, (p.slug = $1) DESC LIMIT 1"
        ))
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        row.map(Into::into).ok_or_else(|| AppError::not_found(format!("project `{key}`")).into())
    }

    /// The project with this slug, if any (used by seeding to stay idempotent).
    pub async fn find_project_by_slug(&self, slug: &str) -> Result<Option<Project>> {
        let row: Option<ProjectRow> =
            sqlx::query_as(&format!("SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.slug = $1"))
                .bind(slug)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(Into::into))
    }

    /// Turns Convox's behaviour on or off: every completed build creates a release.
    #[tracing::instrument(skip_all, fields(project = %project_id))]
    pub async fn set_auto_release(&self, project_id: &str, on: bool) -> Result<Project> {
        self.update_project_settings(project_id, &ProjectSettings { auto_release: Some(on), ..Default::default() })
            .await
    }

    /// Changes the settings given (the others stay): auto-release, and which
    /// project secret holds the repository's https token or SSH deploy key (names
    /// only; `""` clears one; setting one clears the other). The repository URL
    /// itself never changes here.
    #[tracing::instrument(skip_all, fields(project = %project_id))]
    pub async fn update_project_settings(&self, project_id: &str, settings: &ProjectSettings) -> Result<Project> {
        let mut problems = Vec::new();
        let mut name = |field: &str, value: &Option<String>| -> Option<Option<String>> {
            let v = value.as_deref()?.trim();
            if v.is_empty() {
                return Some(None);
            }
            if let Err(e) = check_secret_name(v) {
                let message = e.problems.first().map_or(e.message.clone(), |p| p.message.clone());
                problems.push(FieldProblem { field: field.to_string(), message });
            }
            Some(Some(v.to_string()))
        };
        let token = name("git_token_secret", &settings.git_token_secret);
        let key = name("git_ssh_key_secret", &settings.git_ssh_key_secret);
        if matches!((&token, &key), (Some(Some(_)), Some(Some(_)))) {
            problems.push(FieldProblem {
                field: "git_ssh_key_secret".into(),
                message: "give either an https token or an SSH deploy key, not both".into(),
            });
        }
        if !problems.is_empty() {
            return Err(AppError::invalid_fields(problems).into());
        }
        // Setting one kind of credential clears the other.
        let (token, key) = match (token, key) {
            (Some(Some(t)), _) => (Some(Some(t)), Some(None)),
            (_, Some(Some(k))) => (Some(None), Some(Some(k))),
            other => other,
        };
        let row: Option<ProjectRow> = sqlx::query_as(&format!(
            "UPDATE projects p SET
                auto_release = COALESCE($2, p.auto_release),
                git_token_secret = CASE WHEN $3 THEN $4 ELSE p.git_token_secret END,
                git_ssh_key_secret = CASE WHEN $5 THEN $6 ELSE p.git_ssh_key_secret END
             WHERE p.id = $1 RETURNING {PROJECT_COLUMNS}"
        ))
        .bind(project_id)
        .bind(settings.auto_release)
        .bind(token.is_some())
        .bind(token.flatten())
        .bind(key.is_some())
        .bind(key.flatten())
        .fetch_optional(self.pool())
        .await?;
        row.map(Into::into).ok_or_else(|| AppError::not_found(format!("project `{project_id}`")).into())
    }
}
