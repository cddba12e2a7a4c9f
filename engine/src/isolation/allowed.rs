//! The allowed-images list in the store: entries for every project or for
//! one, managed by global administrators. Patterns are stored canonical
//! (see [`ImagePattern`]), so `busybox` and `docker.io/library/busybox` are
//! one entry.

use chrono::{DateTime, Utc};
use slipway_model::base_image::{AllowedImage, NewAllowedImage};
use slipway_model::AppError;

use super::reference::ImagePattern;
use crate::error::Result;
use crate::Store;

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    pattern: String,
    project: Option<String>,
    project_id: Option<String>,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<Row> for AllowedImage {
    fn from(r: Row) -> Self {
        AllowedImage {
            id: r.id,
            pattern: r.pattern,
            project: r.project,
            project_id: r.project_id,
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

const COLUMNS: &str = "a.id, a.pattern, p.slug AS project, a.project_id, u.username AS created_by, a.created_at";
const FROM: &str = "allowed_images a LEFT JOIN projects p ON p.id = a.project_id LEFT JOIN users u ON u.id = a.created_by";

impl Store {
    /// Every entry, or those that apply to the given projects (global ones
    /// included), global entries first, then by project and pattern.
    #[tracing::instrument(skip_all)]
    pub async fn list_allowed_images(&self, only_projects: Option<&[String]>) -> Result<Vec<AllowedImage>> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM {FROM}
             WHERE $1::text[] IS NULL OR a.project_id IS NULL OR a.project_id = ANY($1)
             ORDER BY (a.project_id IS NOT NULL), p.slug, a.pattern"
        ))
        .bind(only_projects.map(|p| p.to_vec()))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The patterns that apply to a project (its own entries and the global ones).
    #[tracing::instrument(skip_all, fields(project = %project_id))]
    pub async fn allowed_image_patterns(&self, project_id: &str) -> Result<Vec<ImagePattern>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT pattern FROM allowed_images WHERE project_id IS NULL OR project_id = $1 ORDER BY id")
                .bind(project_id)
                .fetch_all(self.pool())
                .await?;
        // Stored patterns were checked on the way in; one that no longer parses allows nothing.
        Ok(rows.into_iter().filter_map(|(p,)| ImagePattern::parse(&p).ok()).collect())
    }

    /// Adds an entry (the pattern is checked and stored canonical); 409 when it exists.
    #[tracing::instrument(skip_all)]
    pub async fn add_allowed_image(&self, input: &NewAllowedImage, created_by: Option<&str>) -> Result<AllowedImage> {
        let pattern = ImagePattern::parse(&input.pattern).map_err(|m| AppError::invalid("pattern", m))?;
        let project = match input.project.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => Some(self.get_project(p).await?),
            None => None,
        };
        let inserted: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO allowed_images (pattern, project_id, created_by) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(pattern.as_str())
        .bind(project.as_ref().map(|p| p.id.as_str()))
        .bind(created_by)
        .fetch_optional(self.pool())
        .await?;
        let Some((id,)) = inserted else {
            let scope = project.as_ref().map(|p| format!("project {}", p.slug)).unwrap_or_else(|| "every project".into());
            return Err(AppError::conflict(format!("`{}` is already allowed for {scope}", pattern.as_str())).into());
        };
        self.allowed_image(id).await
    }

    async fn allowed_image(&self, id: i64) -> Result<AllowedImage> {
        let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM {FROM} WHERE a.id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(Into::into).ok_or_else(|| AppError::not_found(format!("allowed image {id}")).into())
    }

    /// Removes the entry with this pattern for the project (or the global
    /// one when `project` is `None`); 404 when there is none.
    #[tracing::instrument(skip_all)]
    pub async fn remove_allowed_image(&self, pattern: &str, project: Option<&str>) -> Result<AllowedImage> {
        let canonical = ImagePattern::parse(pattern).map_err(|m| AppError::invalid("pattern", m))?;
        let project = match project.map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => Some(self.get_project(p).await?),
            None => None,
        };
        let project_id = project.as_ref().map(|p| p.id.as_str());
        let row: Option<Row> = sqlx::query_as(&format!(
            "WITH gone AS (DELETE FROM allowed_images WHERE pattern = $1 AND project_id IS NOT DISTINCT FROM $2 RETURNING *)
             SELECT {COLUMNS} FROM gone a LEFT JOIN projects p ON p.id = a.project_id LEFT JOIN users u ON u.id = a.created_by"
        ))
        .bind(canonical.as_str())
        .bind(project_id)
        .fetch_optional(self.pool())
        .await?;
        let scope = project.as_ref().map(|p| format!("project {}", p.slug)).unwrap_or_else(|| "every project".into());
        row.map(Into::into)
            .ok_or_else(|| AppError::not_found(format!("allowed image `{}` for {scope}", canonical.as_str())).into())
    }
}
