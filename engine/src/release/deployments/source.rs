//! What a deploy request names to deploy: a release (tag or id, also from
//! `inputs`), raw image digests (each one this project built), an image tag
//! (the newest release whose images carry it) or, with `direct`, a commit
//! (its newest release); every malformed or unknown one is a 422 naming its
//! field.

use slipway_model::build::{is_git_sha, is_manifest_hash};
use slipway_model::project::Project;
use slipway_model::release::{is_image_digest, DeployRequest, ImageDigests, Release};
use slipway_model::{AppError, ErrorCode, FieldProblem};

use crate::error::{Error, Result};
use crate::release::internal;
use crate::release::releases::{ReleaseRow, RELEASE_COLUMNS};
use crate::Store;

/// What a request resolved to.
pub(super) struct Source {
    pub(super) release_id: Option<String>,
    pub(super) digests: ImageDigests,
    pub(super) git_sha: Option<String>,
}

impl Source {
    pub(super) fn of_release(r: Release) -> Source {
        Source { release_id: Some(r.id), digests: r.image_digests, git_sha: Some(r.git_sha) }
    }
}

/// The release named by a request: `release`, else `inputs.release_id` /
/// `release_tag` / `release`.
pub(crate) fn release_reference(req: &DeployRequest, inputs: &serde_json::Value) -> Option<String> {
    let from_inputs = ["release_id", "release_tag", "release"]
        .iter()
        .find_map(|k| inputs.get(*k).and_then(|v| v.as_str()))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    req.release.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).or(from_inputs)
}


/// The source `req` names (see the module's doc), or a 422 naming the field.
/// The pipeline shape (a commit without `direct`) never reaches here.
pub(super) async fn resolve_source(store: &Store, project: &Project, req: &DeployRequest, inputs: &serde_json::Value) -> Result<Source> {
    let nonempty = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let release_ref = release_reference(req, inputs);
    let image_tag = nonempty(&req.image_tag);
    let git_sha = nonempty(&req.git_sha);
    let manifest_hash = nonempty(&req.manifest_hash);
    let mut problems = Vec::new();
    if let Some(s) = &git_sha {
        if !is_git_sha(s) {
            problems.push(FieldProblem { field: "git_sha".into(), message: format!("`{s}` is not a full 40-hex commit sha") });
        }
    }
    if let Some(h) = &manifest_hash {
        if !is_manifest_hash(h) {
            problems.push(FieldProblem { field: "manifest_hash".into(), message: format!("`{h}` is not a 64-hex manifest hash") });
        }
    }
    let sources = [release_ref.is_some(), req.image_digests.is_some(), image_tag.is_some()];
    if sources.iter().filter(|s| **s).count() > 1 {
        problems.push(FieldProblem {
            field: "release".into(),
            message: "give only one of release, image_digests and image_tag".into(),
        });
    }
    if !problems.is_empty() {
        return Err(AppError::invalid_fields(problems).into());
    }
    let source = if let Some(r) = release_ref {
        let release = match crate::release::resolve_release(store, &project.id, &r).await {
            Ok(rel) => rel,
            Err(Error::App(e)) if e.code == ErrorCode::NotFound => {
                return Err(AppError::invalid("release", format!("project {} has no release `{r}`", project.slug)).into())
            }
            Err(e) => return Err(e),
        };
        Source::of_release(release)
    } else if let Some(digests) = &req.image_digests {
        digests_source(store, project, digests, git_sha.clone()).await?
    } else if let Some(tag) = image_tag {
        match release_with_image_tag(store, &project.id, &tag).await? {
            Some(rel) => Source::of_release(rel),
            None => {
                return Err(AppError::invalid(
                    "image_tag",
                    format!("no release of project {} has images tagged `{tag}`; create a release of that build first", project.slug),
                )
                .into())
            }
        }
    } else if let Some(sha) = git_sha.clone() {
        if !req.direct {
            // crate::pipeline::request_deploy starts the pipeline for this shape instead.
            return Err(AppError::invalid("git_sha", "runs the pipeline; it cannot be resolved to a release here").into());
        }
        match newest_release_of_commit(store, &project.id, &sha, manifest_hash.as_deref()).await? {
            Some(rel) => Source::of_release(rel),
            None => {
                return Err(AppError::invalid(
                    "git_sha",
                    format!("project {} has no release of commit {sha}; build and release it first, or deploy without direct to run the pipeline", project.slug),
                )
                .into())
            }
        }
    } else {
        return Err(AppError::invalid(
            "release",
            "say what to deploy: a release (tag or id), image_digests, image_tag, or git_sha with manifest_hash",
        )
        .into());
    };
    if let (Some(asked), Some(found)) = (&git_sha, &source.git_sha) {
        if asked != found {
            return Err(AppError::invalid(
                "git_sha",
                format!("{asked} is not the commit of the release being deployed ({found})"),
            )
            .into());
        }
    }
    Ok(source)
}

/// Raw digests: each must be an image this project built for that service.
/// Linked to the newest release with exactly these digests, if there is one.
async fn digests_source(store: &Store, project: &Project, digests: &ImageDigests, git_sha: Option<String>) -> Result<Source> {
    if digests.is_empty() {
        return Err(AppError::invalid("image_digests", "must name at least one service").into());
    }
    let mut problems = Vec::new();
    for (service, digest) in digests {
        if !is_image_digest(digest) {
            problems.push(FieldProblem {
                field: format!("image_digests.{service}"),
                message: format!("`{digest}` is not a sha256:<64 hex> digest"),
            });
        }
    }
    if !problems.is_empty() {
        return Err(AppError::invalid_fields(problems).into());
    }
    let wanted: Vec<String> = digests.values().cloned().collect();
    let known: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT a.service_name, a.digest FROM build_artifacts a JOIN build_specs b ON b.id = a.build_id
         WHERE a.digest = ANY($1) AND b.project_id = $2",
    )
    .bind(&wanted)
    .bind(&project.id)
    .fetch_all(store.pool())
    .await?;
    for (service, digest) in digests {
        if !known.iter().any(|(s, d)| s == service && d == digest) {
            problems.push(FieldProblem {
                field: format!("image_digests.{service}"),
                message: format!("{digest} is not an image project {} built for service {service}", project.slug),
            });
        }
    }
    if !problems.is_empty() {
        return Err(AppError::invalid_fields(problems).into());
    }
    let json = serde_json::to_value(digests).map_err(internal)?;
    let release: Option<(String, String)> = sqlx::query_as(
        "SELECT id, git_sha FROM releases WHERE project_id = $1 AND image_digests = $2 ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(&project.id)
    .bind(&json)
    .fetch_optional(store.pool())
    .await?;
    Ok(match release {
        Some((id, sha)) if git_sha.as_ref().is_none_or(|g| *g == sha) => {
            Source { release_id: Some(id), digests: digests.clone(), git_sha: Some(sha) }
        }
        _ => Source { release_id: None, digests: digests.clone(), git_sha },
    })
}

/// The newest release whose artifacts (those it took its digests from) carry `tag`.
async fn release_with_image_tag(store: &Store, project_id: &str, tag: &str) -> Result<Option<Release>> {
    let row: Option<ReleaseRow> = sqlx::query_as(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases r
         WHERE r.project_id = $1 AND EXISTS (
             SELECT 1 FROM build_artifacts a
             WHERE a.build_id = r.build_id AND a.digest = r.image_digests ->> a.service_name
               AND right(a.image_ref, length($2) + 1) = ':' || $2)
         ORDER BY r.created_at DESC, r.id DESC LIMIT 1"
    ))
    .bind(project_id)
    .bind(tag)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| r.into_release(Vec::new())).transpose()
}

async fn newest_release_of_commit(store: &Store, project_id: &str, sha: &str, manifest_hash: Option<&str>) -> Result<Option<Release>> {
    let row: Option<ReleaseRow> = sqlx::query_as(&format!(
        "SELECT {RELEASE_COLUMNS} FROM releases r
         WHERE r.project_id = $1 AND r.git_sha = $2 AND ($3::text IS NULL OR r.manifest_hash = $3)
         ORDER BY r.created_at DESC, r.id DESC LIMIT 1"
    ))
    .bind(project_id)
    .bind(sha)
    .bind(manifest_hash)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| r.into_release(Vec::new())).transpose()
}
