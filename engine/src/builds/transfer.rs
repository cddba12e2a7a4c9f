//! Build export and import (Convox's `builds export` / `builds import`).
//!
//! An export is a gzipped tar with two files:
//!
//! - `build.json` ([`ExportedBuildFile`]): the spec, the completed run, its
//!   artifacts with their digests, each image's local id, and the manifest
//!   text (and hash) of the build's commit;
//! - `images.tar`: the images, as `docker save` writes them (saved by image
//!   id, so the archive carries no tags that could overwrite a name on the
//!   importing engine).
//!
//! Importing into a project checks `images.tar` and loads it (see
//! [`super::image_archive`]: no entry or metadata file may name an image,
//! and a name the engine reports setting anyway is put back and fails the
//! import), names each image inside the project's namespace,
//! `<registry>/<project>/<service>:<original tag>`, pushes it to
//! Slipway's registry, records the manifest for the target project at the
//! same commit, a build spec with one completed run (backend `import`) and
//! its artifacts carrying the pushed digests, and creates a release of it.
//! The same image pushed to the same kind of registry gets the same manifest
//! digest, so an imported release has the digests of the exported build.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bollard::query_parameters::{CreateImageOptions, TagImageOptions};
use bollard::Docker;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use slipway_model::build::{is_git_sha, is_manifest_hash, BuildArtifact, BuildRun, BuildSpec, ImportedBuild};
use slipway_model::id;
use slipway_model::image_name::{ProjectImages, SlipwayRegistry};
use slipway_model::manifest::Registry;
use slipway_model::manifest::{self, MANIFEST_PATH};
use slipway_model::release::{is_image_digest, NewRelease};
use slipway_model::status::BuildRunStatus;
use slipway_model::AppError;
use tokio::io::AsyncWriteExt;

use super::image_archive::{self, EntryNames};
use super::registry::{self as reg, RegistryTarget};
use crate::registry_auth::TokenIssuer;
use bollard::auth::DockerCredentials;
use super::LogSink;
use crate::error::{Error, Result};
use crate::release::target::repository_of;
use super::{ArtifactInsert, SpecInsert};
use crate::Store;

/// `format` of `build.json`.
pub const EXPORT_FORMAT: &str = "slipway-build-export";
/// `version` of `build.json` this code writes and reads.
pub const EXPORT_VERSION: u32 = 1;
/// Largest archive the HTTP import accepts (2 GiB).
pub const MAX_IMPORT_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Largest `build.json` read from an archive.
const MAX_BUILD_JSON: u64 = 16 * 1024 * 1024;
/// Largest `images.tar` unpacked from an archive (a gzip bomb stops here).
const MAX_IMAGES_TAR: u64 = 16 * 1024 * 1024 * 1024;

/// `build.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedBuildFile {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// [`EXPORT_VERSION`].
    pub version: u32,
    pub exported_at: DateTime<Utc>,
    /// Project the build belongs to (`prj_…`) and its slug.
    pub project_id: String,
    pub project_slug: String,
    pub spec: BuildSpec,
    /// The completed run the artifacts come from.
    pub run: BuildRun,
    pub artifacts: Vec<BuildArtifact>,
    /// One per artifact: the image as saved in `images.tar`.
    pub images: Vec<ExportedImage>,
    /// The manifest at the build's commit.
    pub manifest: ExportedManifest,
}

/// One image of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedImage {
    pub service: String,
    /// The artifact's reference, e.g. `127.0.0.1:5000/demo/api:sha-0123456789ab`.
    pub image_ref: String,
    /// The artifact's (registry) digest.
    pub digest: String,
    /// The local image id (`sha256:…` of the image config) it was saved by.
    pub image_id: String,
}

/// The manifest text of the build's commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedManifest {
    pub path: String,
    pub hash: String,
    pub content: String,
}

/// A finished export: an unlinked temporary file holding the `.tgz`.
#[derive(Debug)]
pub struct BuildExport {
    pub build_id: String,
    /// Suggested download name, `<build id>.tgz`.
    pub file_name: String,
    pub size_bytes: u64,
    pub file: tokio::fs::File,
}

impl BuildExport {
    /// The archive as a stream of chunks (for an HTTP body).
    pub fn into_stream(self) -> tokio_util::io::ReaderStream<tokio::fs::File> {
        tokio_util::io::ReaderStream::new(self.file)
    }

    /// The whole archive in memory.
    pub async fn into_bytes(mut self) -> Result<bytes::Bytes> {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::with_capacity(usize::try_from(self.size_bytes).unwrap_or(0));
        self.file.read_to_end(&mut buf).await.map_err(|e| Error::io("reading the export", e))?;
        Ok(buf.into())
    }
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(kind: &str) -> Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("slipway-{kind}-{}", id::new_id("tmp")));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn invalid_archive(message: impl Into<String>) -> Error {
    AppError::invalid("archive", message).into()
}

fn engine_text(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------

/// What an export of `build_id` contains, once it is known to be exportable:
/// a build with a completed run that has artifacts, and its manifest.
/// Needs no Docker engine (the HTTP handler checks this first).
pub async fn exportable(store: &Store, build_id: &str) -> Result<(BuildSpec, BuildRun, Vec<BuildArtifact>, ExportedManifest)> {
    let spec = store.get_build_spec(build_id.trim()).await?;
    let runs = store.list_runs(&spec.id).await?;
    let Some(run) = runs.into_iter().find(|r| r.status == BuildRunStatus::Completed) else {
        return Err(AppError::conflict(format!(
            "build {} has no completed run; only a completed build with artifacts can be exported",
            spec.id
        ))
        .into());
    };
    let artifacts = store.run_artifacts(&run.id).await?;
    if artifacts.is_empty() {
        return Err(AppError::conflict(format!("build {} (run {}) has no artifacts to export", spec.id, run.id)).into());
    }
    let (hash, content) = store
        .manifest_content(&spec.project_id, &spec.git_sha)
        .await?
        .ok_or_else(|| Error::CorruptRow(format!("the manifest of build {} was not recorded", spec.id)))?;
    Ok((spec, run, artifacts, ExportedManifest { path: MANIFEST_PATH.to_string(), hash, content }))
}

/// The local image id of an artifact's image, pulling it by digest when the
/// engine does not have it.
async fn local_image_id(docker: &Docker, a: &BuildArtifact, credentials: Option<DockerCredentials>) -> Result<String> {
    let repo = repository_of(&a.image_ref).to_string();
    let pinned = format!("{repo}@{}", a.digest);
    if let Ok(image) = docker.inspect_image(&pinned).await {
        if let Some(id) = image.id {
            return Ok(id);
        }
    }
    // Never pushed (registry `none`): the digest is the local image id.
    if let Ok(image) = docker.inspect_image(&a.digest).await {
        if image.id.as_deref() == Some(a.digest.as_str()) {
            return Ok(a.digest.clone());
        }
    }
    let options = CreateImageOptions { from_image: Some(repo.clone()), tag: Some(a.digest.clone()), ..Default::default() };
    let mut pull = docker.create_image(Some(options), None, credentials);
    let mut failure = None;
    while let Some(item) = pull.next().await {
        if let Err(e) = item {
            failure = Some(engine_text(&e));
        }
    }
    match docker.inspect_image(&pinned).await {
        Ok(image) => image.id.ok_or_else(|| Error::Io(format!("the engine reports no id for {pinned}"))),
        Err(e) => Err(AppError::unavailable(format!(
            "service {}: the image {pinned} is not on the engine and could not be pulled: {}",
            a.service_name,
            failure.unwrap_or_else(|| engine_text(&e))
        ))
        .into()),
    }
}

fn pull_credentials(tokens: Option<&TokenIssuer>, project_slug: &str, image_ref: &str) -> Result<Option<DockerCredentials>> {
    match tokens {
        Some(issuer) => issuer.pull_credentials(project_slug, image_ref),
        None => Ok(None),
    }
}

/// Exports a completed build: `build.json` and its images (`docker save`),
/// gzipped, in an unlinked temporary file. The build must have a completed
/// run with artifacts; an image missing on the engine is pulled by digest.
#[tracing::instrument(skip_all, fields(build = %build_id))]
pub async fn export_build(store: &Store, docker: &Docker, build_id: &str, tokens: Option<&TokenIssuer>) -> Result<BuildExport> {
    let (spec, run, artifacts, manifest) = exportable(store, build_id).await?;
    let mut images = Vec::with_capacity(artifacts.len());
    for a in &artifacts {
        images.push(ExportedImage {
            service: a.service_name.clone(),
            image_ref: a.image_ref.clone(),
            digest: a.digest.clone(),
            image_id: local_image_id(docker, a, pull_credentials(tokens, &spec.project_slug, &a.image_ref)?).await?,
        });
    }
    let file = ExportedBuildFile {
        format: EXPORT_FORMAT.to_string(),
        version: EXPORT_VERSION,
        exported_at: Utc::now(),
        project_id: spec.project_id.clone(),
        project_slug: spec.project_slug.clone(),
        spec: spec.clone(),
        run,
        artifacts,
        images,
        manifest,
    };
    let scratch = Scratch::new("export")?;
    let images_path = scratch.0.join("images.tar");
    let mut ids: Vec<&str> = file.images.iter().map(|i| i.image_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    {
        let mut out = tokio::fs::File::create(&images_path).await.map_err(|e| Error::io("creating images.tar", e))?;
        let mut saved = docker.export_images(&ids);
        while let Some(chunk) = saved.next().await {
            let chunk = chunk.map_err(|e| Error::Io(format!("the engine could not save the images: {}", engine_text(&e))))?;
            out.write_all(&chunk).await.map_err(|e| Error::io("writing images.tar", e))?;
        }
        out.flush().await.map_err(|e| Error::io("writing images.tar", e))?;
    }
    let json = serde_json::to_vec_pretty(&file).map_err(|e| Error::Internal(format!("encoding build.json: {e}")))?;
    let tgz_path = scratch.0.join("build.tgz");
    let (images_in, tgz_out) = (images_path.clone(), tgz_path.clone());
    tokio::task::spawn_blocking(move || write_tgz(&tgz_out, &json, &images_in))
        .await
        .map_err(|e| Error::Io(format!("packing the export stopped: {e}")))??;
    let out = tokio::fs::File::open(&tgz_path).await.map_err(|e| Error::io("opening the export", e))?;
    let size_bytes = out.metadata().await.map_err(|e| Error::io("reading the export's size", e))?.len();
    // The open file stays readable after its directory is removed.
    drop(scratch);
    tracing::info!(build = %spec.id, size_bytes, images = ids.len(), "build exported");
    Ok(BuildExport { build_id: spec.id.clone(), file_name: format!("{}.tgz", spec.id), size_bytes, file: out })
}

fn write_tgz(path: &Path, build_json: &[u8], images: &Path) -> Result<()> {
    let io = |what: &str, e: std::io::Error| Error::io(format!("packing the export ({what})"), e);
    let out = std::fs::File::create(path).map_err(|e| io("create", e))?;
    let gz = flate2::write::GzEncoder::new(std::io::BufWriter::new(out), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mtime = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    let mut header = tar::Header::new_gnu();
    header.set_size(build_json.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, "build.json", build_json).map_err(|e| io("build.json", e))?;
    let mut images_file = std::fs::File::open(images).map_err(|e| io("images.tar", e))?;
    let size = images_file.metadata().map_err(|e| io("images.tar", e))?.len();
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, "images.tar", &mut images_file).map_err(|e| io("images.tar", e))?;
    let gz = tar.into_inner().map_err(|e| io("finish", e))?;
    let mut buffered = gz.finish().map_err(|e| io("gzip", e))?;
    buffered.flush().map_err(|e| io("flush", e))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------

/// An unpacked, checked archive; its scratch directory goes when dropped.
pub struct ImportArchive {
    pub build: ExportedBuildFile,
    images_tar: PathBuf,
    _scratch: Scratch,
}

impl std::fmt::Debug for ImportArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportArchive").field("build", &self.build.spec.id).field("images_tar", &self.images_tar).finish()
    }
}

/// Unpacks and checks an export (`.tgz` at `path`) without touching the
/// engine or the database: `build.json` must be a readable version-1 export
/// whose manifest matches its hash, with a digest and an image id per
/// artifact, and `images.tar` must hold exactly those images, untagged.
/// Every problem is a 422 on `archive`.
pub async fn open_import(path: &Path) -> Result<ImportArchive> {
    let scratch = Scratch::new("import")?;
    let (src, dir) = (path.to_path_buf(), scratch.0.clone());
    let (json, images_tar) = tokio::task::spawn_blocking(move || unpack(&src, &dir))
        .await
        .map_err(|e| Error::Io(format!("unpacking the archive stopped: {e}")))??;
    let build: ExportedBuildFile = serde_json::from_slice(&json)
        .map_err(|e| invalid_archive(format!("build.json is not a Slipway build export: {e}")))?;
    check_build_file(&build)?;
    let tar_path = images_tar.clone();
    let expected: Vec<String> = build.images.iter().map(|i| i.image_id.clone()).collect();
    tokio::task::spawn_blocking(move || image_archive::check_images_tar(&tar_path, &expected))
        .await
        .map_err(|e| Error::Io(format!("reading images.tar stopped: {e}")))??;
    Ok(ImportArchive { build, images_tar, _scratch: scratch })
}

/// `build.json` (in memory) and `images.tar` (into `dir`) from the archive.
fn unpack(path: &Path, dir: &Path) -> Result<(Vec<u8>, PathBuf)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("opening the archive", e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let entries = archive
        .entries()
        .map_err(|e| invalid_archive(format!("not a gzipped tar archive (.tgz) as `slipway build export` writes: {e}")))?;
    let mut json: Option<Vec<u8>> = None;
    let mut images: Option<PathBuf> = None;
    let mut names = EntryNames::default();
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid_archive(format!("not a gzipped tar archive (.tgz) as `slipway build export` writes: {e}")))?;
        let name = names.admit("the archive", &entry)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        match name.as_str() {
            "build.json" => {
                if entry.header().size().unwrap_or(u64::MAX) > MAX_BUILD_JSON {
                    return Err(invalid_archive("build.json is larger than 16 MiB"));
                }
                let mut buf = Vec::new();
                (&mut entry).take(MAX_BUILD_JSON + 1).read_to_end(&mut buf).map_err(|e| invalid_archive(format!("reading build.json: {e}")))?;
                json = Some(buf);
            }
            "images.tar" => {
                if entry.header().size().unwrap_or(u64::MAX) > MAX_IMAGES_TAR {
                    return Err(invalid_archive("images.tar is larger than 16 GiB"));
                }
                let out_path = dir.join("images.tar");
                let mut out = std::fs::File::create(&out_path).map_err(|e| Error::io("unpacking images.tar", e))?;
                std::io::copy(&mut (&mut entry).take(MAX_IMAGES_TAR), &mut out)
                    .map_err(|e| invalid_archive(format!("reading images.tar: {e}")))?;
                images = Some(out_path);
            }
            _ => {}
        }
    }
    match (json, images) {
        (Some(j), Some(i)) => Ok((j, i)),
        (None, _) => Err(invalid_archive("build.json is missing: this is not an archive from `slipway build export`")),
        (_, None) => Err(invalid_archive("images.tar is missing: this is not an archive from `slipway build export`")),
    }
}

fn is_service_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn check_build_file(b: &ExportedBuildFile) -> Result<()> {
    if b.format != EXPORT_FORMAT {
        return Err(invalid_archive(format!("build.json has format `{}`, not `{EXPORT_FORMAT}`", b.format)));
    }
    if b.version != EXPORT_VERSION {
        return Err(invalid_archive(format!(
            "build.json is export version {}; this Slipway reads version {EXPORT_VERSION}",
            b.version
        )));
    }
    if !is_git_sha(&b.spec.git_sha) {
        return Err(invalid_archive("build.json: spec.git_sha is not a full commit sha"));
    }
    if !is_manifest_hash(&b.manifest.hash) || b.spec.manifest_hash != b.manifest.hash {
        return Err(invalid_archive("build.json: the manifest hash is malformed or differs from the spec's"));
    }
    if b.manifest.content.len() > manifest::MAX_MANIFEST_BYTES {
        return Err(invalid_archive(format!(
            "build.json: the manifest is {} bytes; the limit is {} bytes",
            b.manifest.content.len(),
            manifest::MAX_MANIFEST_BYTES
        )));
    }
    let parsed = manifest::parse(&b.manifest.content)
        .map_err(|e| invalid_archive(format!("build.json: the manifest is not valid: {e}")))?;
    if parsed.canonical_hash() != b.manifest.hash {
        return Err(invalid_archive("build.json: the manifest does not match its hash"));
    }
    if b.artifacts.is_empty() {
        return Err(invalid_archive("build.json lists no artifacts"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for a in &b.artifacts {
        if !is_service_name(&a.service_name) || !seen.insert(a.service_name.as_str()) {
            return Err(invalid_archive(format!("build.json: artifact service `{}` is invalid or repeated", a.service_name)));
        }
        if !is_image_digest(&a.digest) {
            return Err(invalid_archive(format!("build.json: artifact {} has a malformed digest", a.service_name)));
        }
        let Some(image) = b.images.iter().find(|i| i.service == a.service_name) else {
            return Err(invalid_archive(format!("build.json: no image for service {}", a.service_name)));
        };
        if !is_image_digest(&image.image_id) {
            return Err(invalid_archive(format!("build.json: the image id of {} is malformed", a.service_name)));
        }
        if tag_of(&a.image_ref).is_some_and(|t| !is_tag(t)) {
            return Err(invalid_archive(format!("build.json: the tag of artifact {} is not a valid image tag", a.service_name)));
        }
    }
    Ok(())
}

/// Docker's tag syntax: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The tag of an image reference (`repo:tag`), if it has one.
fn tag_of(image_ref: &str) -> Option<&str> {
    let no_digest = image_ref.split('@').next().unwrap_or(image_ref);
    let repo = repository_of(no_digest);
    no_digest.strip_prefix(repo).and_then(|t| t.strip_prefix(':')).filter(|t| !t.is_empty())
}

/// Imports a checked archive into `project`: loads the images, names and
/// pushes them to `registry` (Slipway's registry, `host:port`; `None` keeps
/// them on the engine and records their image ids, as builds do with
/// registry `none`), records the manifest at the build's commit for the
/// project (a different manifest already recorded there is a conflict), a
/// build spec with one completed run (backend `import`) and the artifacts,
/// and creates a release of that build.
#[tracing::instrument(skip_all, fields(project = %project, build = %archive.build.spec.id))]
pub async fn import_archive(
    store: &Store,
    docker: &Docker,
    project: &str,
    archive: &ImportArchive,
    registry: Option<&str>,
    tokens: Option<&TokenIssuer>,
    imported_by: Option<&str>,
) -> Result<ImportedBuild> {
    let b = &archive.build;
    let project = store.get_project(project).await?;
    let sha = &b.spec.git_sha;
    match store.manifest_content(&project.id, sha).await? {
        Some((hash, _)) if hash != b.manifest.hash => {
            return Err(AppError::conflict(format!(
                "project {} already has another manifest at commit {sha} (hash {hash}); the build's manifest has hash {}",
                project.slug, b.manifest.hash
            ))
            .into())
        }
        Some(_) => {}
        None => {
            let parsed = manifest::parse(&b.manifest.content).map_err(AppError::from)?;
            let parsed_json = serde_json::from_str::<serde_json::Value>(&parsed.canonical_json())
                .unwrap_or_else(|_| serde_json::json!({}));
            store.record_manifest(&project.id, sha, &b.manifest.hash, &b.manifest.content, &parsed_json).await?;
        }
    }

    // Load the images.
    let expected: Vec<String> = b.images.iter().map(|i| i.image_id.clone()).collect();
    image_archive::load_images(docker, &archive.images_tar, &expected).await?;
    for image in &b.images {
        if docker.inspect_image(&image.image_id).await.is_err() {
            return Err(invalid_archive(format!("image {} of {} is not on the engine after loading", image.image_id, image.service)));
        }
    }

    // Name, push, and collect the artifacts.
    let mut target = registry.map(|host| RegistryTarget {
        host: host.to_string(),
        namespace: Some(project.slug.clone()),
        credentials: None,
        insecure: reg::insecure_allowed(host),
        auth_hosts: Vec::new(),
        embedded: true,
    });
    // Slipway's registry: a credential for the importing project's own repositories only.
    if let (Some(t), Some(issuer)) = (&target, tokens) {
        let grant = crate::registry_auth::Grant::project(&project.slug, &[]);
        target = Some(issuer.authorize(t, &crate::registry_auth::issuer::project_subject(&project.slug), grant)?);
    }
    let images = match registry {
        Some(host) => ProjectImages::new(&project.slug, &Registry::Native, SlipwayRegistry::Host(host.to_string())),
        None => ProjectImages::new(&project.slug, &Registry::None, SlipwayRegistry::Disabled),
    };
    let (log, _lines) = LogSink::memory();
    let mut artifacts = Vec::with_capacity(b.artifacts.len());
    for a in &b.artifacts {
        let image = b.images.iter().find(|i| i.service == a.service_name).ok_or_else(|| invalid_archive("no image"))?;
        let tag = tag_of(&a.image_ref).map(str::to_string).unwrap_or_else(|| reg::sha_tag(sha));
        let repo = images.repository(&a.service_name, None).map_err(|p| Error::Io(format!("naming the imported image: {p}")))?;
        docker
            .tag_image(&image.image_id, Some(TagImageOptions { repo: Some(repo.clone()), tag: Some(tag.clone()) }))
            .await
            .map_err(|e| Error::Io(format!("tagging {repo}:{tag}: {}", engine_text(&e))))?;
        let digest = match &target {
            Some(t) => reg::push(docker, &repo, &tag, t, &log)
                .await
                .map_err(|f| AppError::unavailable(format!("pushing {repo}:{tag} failed: {}", f.message)))?,
            None => image.image_id.clone(),
        };
        if digest != a.digest {
            tracing::info!(service = %a.service_name, exported = %a.digest, imported = %digest, "the imported image has another digest in this registry");
        }
        artifacts.push(ArtifactInsert {
            service_name: a.service_name.clone(),
            image_ref: format!("{repo}:{tag}"),
            digest,
            platforms: a.platforms.clone(),
            size_bytes: a.size_bytes,
        });
    }

    // Record the build, its completed run and the artifacts.
    let mut inputs = match &b.spec.inputs {
        serde_json::Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    inputs.insert(
        "imported_from".into(),
        serde_json::json!({
            "project_id": b.project_id,
            "project_slug": b.project_slug,
            "build_id": b.spec.id,
            "run_id": b.run.id,
            "exported_at": b.exported_at,
        }),
    );
    let (spec, _) = store
        .create_build_spec(&SpecInsert {
            project_id: project.id.clone(),
            git_sha: sha.clone(),
            manifest_hash: b.manifest.hash.clone(),
            services: b.spec.services.clone().filter(|s| !s.is_empty()),
            inputs: serde_json::Value::Object(inputs),
            registry: None,
            cache: None,
            build_args: b.spec.build_args.clone(),
            force_rebuild: false,
            idempotency_key: None,
            created_by: imported_by.map(str::to_string),
        })
        .await?;
    let run_id = store.insert_imported_run(&spec.id, &format!("import of {} ({})", b.spec.id, b.project_slug)).await?;
    for a in &artifacts {
        store.insert_artifact(&run_id, &spec.id, a).await?;
    }
    let release = crate::release::create_release(
        store,
        &NewRelease {
            project: project.id.clone(),
            build: spec.id.clone(),
            tag: None,
            version: b.spec.inputs.get("version").and_then(|v| v.as_str()).map(str::to_string),
            notes: Some(format!("imported from build {} of project {} (run {})", b.spec.id, b.project_slug, b.run.id)),
        },
        imported_by,
    )
    .await?;
    let digests: BTreeMap<&str, &str> = artifacts.iter().map(|a| (a.service_name.as_str(), a.digest.as_str())).collect();
    tracing::info!(build = %spec.id, release = %release.id, ?digests, "build imported");
    Ok(ImportedBuild { build: store.get_build(&spec.id).await?, release })
}

/// [`open_import`] and [`import_archive`] for an archive in memory.
pub async fn import_build(
    store: &Store,
    docker: &Docker,
    project: &str,
    tgz: bytes::Bytes,
    registry: Option<&str>,
    tokens: Option<&TokenIssuer>,
    imported_by: Option<&str>,
) -> Result<ImportedBuild> {
    let scratch = Scratch::new("upload")?;
    let path = scratch.0.join("build.tgz");
    tokio::fs::write(&path, &tgz).await.map_err(|e| Error::io("writing the archive", e))?;
    let archive = open_import(&path).await?;
    drop(scratch);
    import_archive(store, docker, project, &archive, registry, tokens, imported_by).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_from_references() {
        assert_eq!(tag_of("127.0.0.1:5000/demo/api:sha-0123456789ab"), Some("sha-0123456789ab"));
        assert_eq!(tag_of("127.0.0.1:5000/demo/api"), None);
        assert_eq!(tag_of("demo/web:local"), Some("local"));
        assert_eq!(tag_of(&format!("r.io/a/b:v1@sha256:{}", "0".repeat(64))), Some("v1"));
    }

    #[tokio::test]
    async fn garbage_is_refused_as_an_invalid_archive() {
        let dir = std::env::temp_dir().join(format!("slipway-test-{}", id::new_id("tmp")));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.tgz");
        std::fs::write(&path, b"{}").unwrap();
        let err = AppError::from(open_import(&path).await.unwrap_err());
        assert_eq!(err.code, slipway_model::ErrorCode::InvalidInput, "{err:?}");
        assert!(err.message.contains("gzipped tar"), "{}", err.message);
        // A gzipped tar without build.json.
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        tar.append_data(&mut h, "other.txt", &b"hi"[..]).unwrap();
        let bytes = tar.into_inner().unwrap().finish().unwrap();
        std::fs::write(&path, bytes).unwrap();
        let err = AppError::from(open_import(&path).await.unwrap_err());
        assert!(err.message.contains("build.json is missing"), "{}", err.message);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
