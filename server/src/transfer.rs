//! Build export and import at the HTTP edge:
//!
//! - `GET /builds/{build}/export` (read access to the build's project): the
//!   build as a `.tgz` download (`application/gzip`): `build.json` and its
//!   images. 409 when the build has no completed run with artifacts, 503
//!   without a Docker engine.
//! - `POST /api/projects/{project}/import` (build access to the project): the
//!   body is such a `.tgz` (at most 2 GiB, else 413), streamed to a temporary
//!   file, checked (422 naming the problem), loaded, pushed to Slipway's
//!   registry under the project and recorded as a build with a release; the
//!   answer is an [`ImportedBuild`] as JSON. One import runs at a time per
//!   server process (another is a 429), so scratch space stays bounded.
//!
//! Both are audited (`build.exported`, `build.imported`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use slipway_app::auth::AuthInfo;
use slipway_engine::builds::transfer::{self, MAX_IMPORT_BYTES};
use slipway_model::auth::Principal;
use slipway_model::build::ImportedBuild;
use slipway_model::id::{self, BUILD};
use slipway_model::AppError;
use tokio::io::AsyncWriteExt;

use crate::authz::Caller;
use crate::http::AppState;
use crate::problem::ApiError;

async fn audit(state: &AppState, principal: &Principal, auth: &AuthInfo, action: &str, project_id: &str, target: (&str, &str), detail: serde_json::Value) {
    let record = slipway_engine::auth::AuditRecord {
        actor: Some(principal),
        actor_label: principal.user.username.clone(),
        action: action.to_string(),
        project_id: Some(project_id.to_string()),
        target_type: Some(target.0.to_string()),
        target_id: Some(target.1.to_string()),
        detail,
        ip: auth.ip.clone(),
        user_agent: auth.user_agent.clone(),
    };
    if let Err(e) = state.store.record_audit(record).await {
        tracing::error!(error = %e, action, "writing an audit event failed");
    }
}

fn no_engine() -> AppError {
    AppError::unavailable("this Slipway runs without a Docker engine, so it cannot move images")
}

/// `GET /builds/{build}/export`: the build and its images as a `.tgz`.
#[tracing::instrument(skip_all, fields(build = %build))]
pub async fn export(State(state): State<AppState>, caller: Caller, Path(build): Path<String>) -> Result<Response, ApiError> {
    let auth = caller.info();
    let build = build.trim().to_string();
    id::parse_expect(BUILD, &build).map_err(|e| AppError::invalid("build", e.to_string()))?;
    let not_found = || AppError::not_found(format!("build `{build}`"));
    let spec = state.store.get_build_spec(&build).await.map_err(|_| not_found())?;
    let guard = caller.project(&spec.project_id, not_found).await?;
    let principal = guard.user()?;
    // Say what is wrong with the build before saying the engine is missing.
    transfer::exportable(&state.store, &build).await?;
    let docker = state.docker.as_ref().ok_or_else(no_engine)?;
    let export = transfer::export_build(&state.store, docker, &build, state.registry_tokens.as_ref()).await?;
    audit(
        &state,
        principal,
        auth,
        "build.exported",
        &spec.project_id,
        ("build", &build),
        serde_json::json!({ "size_bytes": export.size_bytes }),
    )
    .await;
    let headers = [
        (header::CONTENT_TYPE, "application/gzip".to_string()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", export.file_name)),
        (header::CONTENT_LENGTH, export.size_bytes.to_string()),
    ];
    Ok((headers, Body::from_stream(export.into_stream())).into_response())
}

fn too_large() -> Response {
    let limit_gib = MAX_IMPORT_BYTES / (1024 * 1024 * 1024);
    let err = AppError::invalid("body", format!("the archive is larger than {limit_gib} GiB, the most an import accepts"));
    (StatusCode::PAYLOAD_TOO_LARGE, Json(err)).into_response()
}

/// `POST /api/projects/{project}/import`: imports an exported build.
#[tracing::instrument(skip_all, fields(project = %project))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let auth = caller.info();
    let not_found = || AppError::not_found(format!("project `{project}`"));
    let target = state.store.get_project(&project).await.map_err(|_| not_found())?;
    let guard = caller.project(&target.id, not_found).await?;
    let principal = guard.user()?;
    // Bounds the scratch space uploads and unpacking take.
    let _slot = state.edge.import_slot()?;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_IMPORT_BYTES) {
        return Ok(too_large());
    }
    // Stream the upload to a scratch file, counting.
    let dir = std::env::temp_dir().join(format!("slipway-import-{}", id::new_id("tmp")));
    tokio::fs::create_dir_all(&dir).await.map_err(|e| slipway_engine::Error::io("creating a scratch directory", e))?;
    let result = receive_and_import(&state, auth, principal, &target, &dir, body).await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

async fn receive_and_import(
    state: &AppState,
    auth: &AuthInfo,
    principal: &Principal,
    target: &slipway_model::project::Project,
    dir: &std::path::Path,
    body: Body,
) -> Result<Response, ApiError> {
    let path = dir.join("upload.tgz");
    let mut file = tokio::fs::File::create(&path).await.map_err(|e| slipway_engine::Error::io("storing the upload", e))?;
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| AppError::invalid("body", format!("the upload broke off: {e}")))?;
        received += chunk.len() as u64;
        if received > MAX_IMPORT_BYTES {
            return Ok(too_large());
        }
        file.write_all(&chunk).await.map_err(|e| slipway_engine::Error::io("storing the upload", e))?;
    }
    file.flush().await.map_err(|e| slipway_engine::Error::io("storing the upload", e))?;
    drop(file);
    if received == 0 {
        return Err(AppError::invalid("body", "send the .tgz that `slipway build export` wrote as the request body").into());
    }
    let archive = transfer::open_import(&path).await?;
    let _ = tokio::fs::remove_file(&path).await;
    let docker = state.docker.as_ref().ok_or_else(no_engine)?;
    let imported: ImportedBuild =
        transfer::import_archive(&state.store, docker, &target.id, &archive, state.registry.as_deref(), state.registry_tokens.as_ref(), Some(&principal.user.id)).await?;
    audit(
        state,
        principal,
        auth,
        "build.imported",
        &target.id,
        ("build", &imported.build.spec.id),
        serde_json::json!({
            "from_build": archive.build.spec.id,
            "from_project": archive.build.project_slug,
            "release": imported.release.id,
            "image_digests": imported.release.image_digests,
        }),
    )
    .await;
    Ok((StatusCode::OK, Json(imported)).into_response())
}
