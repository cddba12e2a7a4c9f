//! Loading image archives (`docker save` output) from outside without
//! letting them name anything.
//!
//! An archive read by `docker load` can tag images: `RepoTags` in
//! `manifest.json`, a legacy `repositories` file, or name annotations in an
//! OCI `index.json`. A tag set that way silently moves a name already on
//! the shared engine (the base image, another project's images) to the
//! archive's image. So, before the engine sees an archive:
//!
//! - every entry name must be canonical — relative, `/`-separated, no `.`,
//!   `..` or empty parts, a trailing `/` only on a directory — and unique,
//!   because the engine unpacks `/manifest.json`, `a/../manifest.json` and a
//!   second `manifest.json` onto the same file;
//! - entries are files, directories, or symlinks to files inside the
//!   archive (nothing lives under a symlink);
//! - `manifest.json` tags nothing, `repositories` is empty, `index.json`
//!   carries no name annotations, and each image config is content-addressed
//!   (its name is the sha256 of its bytes) and is one of the expected images.
//!
//! After loading, the engine's own report is read: a `Loaded image: <name>`
//! line means a name was set anyway; it is put back on the image it named
//! before (the engine says which) or removed, and the load fails.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use bollard::query_parameters::{ImportImageOptions, RemoveImageOptions, TagImageOptions};
use bollard::Docker;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use slipway_model::AppError;

use crate::error::{Error, Result};

/// Largest metadata file (`manifest.json`, `index.json`, an image config) read.
const MAX_METADATA: u64 = 16 * 1024 * 1024;

/// Top-level files the engine reads names from.
const METADATA_FILES: &[&str] = &["manifest.json", "repositories", "index.json", "oci-layout"];

/// OCI annotations that name an image when an index is loaded.
const NAME_ANNOTATIONS: &[&str] = &["io.containerd.image.name", "org.opencontainers.image.ref.name"];

fn refused(what: &str, message: impl std::fmt::Display) -> Error {
    AppError::invalid("archive", format!("{what}: {message}")).into()
}

/// The canonical form of a tar entry name (without a directory's trailing
/// `/`), or why it is refused.
pub fn canonical_entry_name(raw: &[u8], is_dir: bool) -> std::result::Result<String, String> {
    let name = std::str::from_utf8(raw).map_err(|_| "an entry name is not UTF-8".to_string())?;
    let shown = name.escape_debug().to_string();
    if name.starts_with('/') {
        return Err(format!("the entry `{shown}` has an absolute name"));
    }
    let trimmed = if is_dir { name.strip_suffix('/').unwrap_or(name) } else { name };
    let parts: Vec<&str> = trimmed.split('/').collect();
    if parts.contains(&"..") {
        return Err(format!("the entry `{shown}` has a `..` in its name"));
    }
    if trimmed.is_empty() || parts.iter().any(|p| p.is_empty() || *p == ".") || name.chars().any(|c| c.is_control() || c == '\\') {
        return Err(format!("the entry `{shown}` has a non-canonical name"));
    }
    Ok(trimmed.to_string())
}

/// Names seen so far in one archive: canonical and each at most once.
#[derive(Default)]
pub struct EntryNames {
    seen: BTreeSet<String>,
}

impl EntryNames {
    /// The entry's canonical name, or a 422 on `archive` (`what` names the archive).
    pub fn admit<R: Read>(&mut self, what: &str, entry: &tar::Entry<'_, R>) -> Result<String> {
        let is_dir = entry.header().entry_type().is_dir();
        let name = canonical_entry_name(&entry.path_bytes(), is_dir).map_err(|m| refused(what, m))?;
        if !self.seen.insert(name.clone()) {
            return Err(refused(what, format!("the entry `{name}` appears more than once")));
        }
        Ok(name)
    }
}

/// `<hex>` of a content-addressed config name: `<hex>.json` or `blobs/sha256/<hex>`.
fn config_hex(name: &str) -> Option<&str> {
    let hex = name.strip_suffix(".json").filter(|h| !h.contains('/')).or_else(|| name.strip_prefix("blobs/sha256/"))?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(hex)
}

/// `target` of a symlink at `name`, resolved inside the archive.
fn resolve_link(name: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            ".." => {
                parts.pop()?;
            }
            "" | "." => return None,
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn read_json<R: Read>(what: &str, name: &str, entry: &mut tar::Entry<'_, R>) -> Result<serde_json::Value> {
    let mut buf = Vec::new();
    entry.take(MAX_METADATA).read_to_end(&mut buf).map_err(|e| refused(what, format!("{name}: {e}")))?;
    serde_json::from_slice(&buf).map_err(|e| refused(what, format!("{name} is not JSON: {e}")))
}

/// Checks `docker save` output at `path` before it is loaded: canonical,
/// unique entry names; no names set by any of the engine's metadata files;
/// and exactly the images `expected_ids` (`sha256:…`), by content.
/// Every problem is a 422 on `archive`.
pub fn check_images_tar(path: &Path, expected_ids: &[String]) -> Result<()> {
    const WHAT: &str = "images.tar";
    let file = std::fs::File::open(path).map_err(|e| Error::io("opening images.tar", e))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut names = EntryNames::default();
    let mut files: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut links: Vec<(String, String)> = Vec::new();
    let mut metadata: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let entries = archive.entries().map_err(|e| refused(WHAT, format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| refused(WHAT, format!("not a tar archive: {e}")))?;
        let name = names.admit(WHAT, &entry)?;
        let kind = entry.header().entry_type();
        if kind.is_file() || kind == tar::EntryType::Continuous {
            if METADATA_FILES.contains(&name.as_str()) {
                let value = if name == "oci-layout" { serde_json::Value::Null } else { read_json(WHAT, &name, &mut entry)? };
                metadata.insert(name, value);
            } else if config_hex(&name).is_some() && entry.header().size().unwrap_or(u64::MAX) <= MAX_METADATA {
                let mut hasher = Sha256::new();
                std::io::copy(&mut (&mut entry).take(MAX_METADATA), &mut hasher).map_err(|e| refused(WHAT, format!("{name}: {e}")))?;
                files.insert(name, Some(hex::encode(hasher.finalize())));
            } else {
                files.insert(name, None);
            }
        } else if kind.is_dir() {
        } else if kind.is_symlink() {
            let target = entry.link_name_bytes().map(|t| String::from_utf8_lossy(&t).into_owned()).unwrap_or_default();
            let resolved = resolve_link(&name, &target)
                .filter(|r| !METADATA_FILES.contains(&r.as_str()) && !METADATA_FILES.contains(&name.as_str()))
                .ok_or_else(|| refused(WHAT, format!("the symlink `{name}` points outside the archive's image files (`{target}`)")))?;
            links.push((name, resolved));
        } else {
            return Err(refused(WHAT, format!("the entry `{name}` is a {kind:?}; an image archive holds only files, directories and symlinks")));
        }
    }
    for (link, target) in &links {
        if names.seen.iter().any(|n| n.starts_with(&format!("{link}/"))) {
            return Err(refused(WHAT, format!("entries are stored under the symlink `{link}`")));
        }
        if !files.contains_key(target) {
            return Err(refused(WHAT, format!("the symlink `{link}` points at `{target}`, which is not a file in the archive")));
        }
    }
    if metadata.get("repositories").is_some_and(|r| r.as_object().is_none_or(|o| !o.is_empty())) {
        return Err(refused(WHAT, "it tags images (`repositories`); an export never does"));
    }
    if let Some(index) = metadata.get("index.json") {
        let annotated = |v: &serde_json::Value| {
            v.get("annotations").and_then(|a| a.as_object()).is_some_and(|a| a.keys().any(|k| NAME_ANNOTATIONS.contains(&k.as_str())))
        };
        let manifests = index.get("manifests").and_then(|m| m.as_array()).map(Vec::as_slice).unwrap_or_default();
        if annotated(index) || manifests.iter().any(annotated) {
            return Err(refused(WHAT, "`index.json` names images (name annotations); an export never does"));
        }
    }
    let Some(entries) = metadata.get("manifest.json").and_then(|m| m.as_array()) else {
        return Err(refused(WHAT, "it has no manifest.json: it is not `docker save` output"));
    };
    let mut found = BTreeSet::new();
    for e in entries {
        if e.get("RepoTags").is_some_and(|t| !t.is_null() && t.as_array().is_none_or(|t| !t.is_empty())) {
            return Err(refused(WHAT, "it tags images (RepoTags); an export never does"));
        }
        let config = e.get("Config").and_then(|c| c.as_str()).unwrap_or_default();
        let hex = config_hex(config).ok_or_else(|| refused(WHAT, format!("manifest.json names the image config `{config}`, which is not content-addressed")))?;
        match files.get(config) {
            Some(Some(actual)) if actual == hex => {}
            Some(Some(_)) => return Err(refused(WHAT, format!("the image config `{config}` does not match its digest"))),
            _ => return Err(refused(WHAT, format!("the image config `{config}` is not in the archive"))),
        }
        found.insert(format!("sha256:{hex}"));
    }
    let expected: BTreeSet<String> = expected_ids.iter().cloned().collect();
    if let Some(missing) = expected.difference(&found).next() {
        return Err(refused(WHAT, format!("it does not contain image {missing}")));
    }
    if let Some(extra) = found.difference(&expected).next() {
        return Err(refused(WHAT, format!("it contains image {extra}, which build.json does not list")));
    }
    Ok(())
}

/// What the engine said while loading.
#[derive(Debug, Default, PartialEq, Eq)]
struct LoadReport {
    /// `Loaded image ID: sha256:…`
    ids: Vec<String>,
    /// `Loaded image: name:tag` — names set by the load.
    names: Vec<String>,
    /// `The image X already exists, renaming the old one with ID Y …`: X → Y.
    previous: BTreeMap<String, String>,
}

impl LoadReport {
    fn read(&mut self, text: &str) {
        for line in text.lines().map(str::trim) {
            if let Some(id) = line.strip_prefix("Loaded image ID: ") {
                self.ids.push(id.trim().to_string());
            } else if let Some(name) = line.strip_prefix("Loaded image: ") {
                self.names.push(name.trim().to_string());
            } else if let Some(rest) = line.strip_prefix("The image ") {
                if let Some((name, rest)) = rest.split_once(" already exists, renaming the old one with ID ") {
                    let id = rest.split_whitespace().next().unwrap_or_default();
                    self.previous.insert(name.to_string(), id.to_string());
                }
            }
        }
    }
}

fn engine_text(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

/// Loads a checked archive and reads the engine's report: any name the
/// load set is put back (or removed) and the load fails with a 422, and
/// so does an image other than `expected_ids`.
pub async fn load_images(docker: &Docker, path: &Path, expected_ids: &[String]) -> Result<()> {
    let file = tokio::fs::File::open(path).await.map_err(|e| Error::io("opening images.tar", e))?;
    let options = ImportImageOptions { quiet: true, ..Default::default() };
    let mut load = docker.import_image_stream(options, tokio_util::io::ReaderStream::new(file), None);
    let mut report = LoadReport::default();
    let mut failure = None;
    while let Some(item) = load.next().await {
        match item {
            Ok(info) => report.read(info.stream.as_deref().unwrap_or_default()),
            Err(e) => {
                failure = Some(engine_text(&e));
                break;
            }
        }
    }
    if !report.names.is_empty() {
        restore_names(docker, &report).await;
        return Err(refused(
            WHAT_LOADED,
            format!("loading it named images ({}); an export never does — the names were put back as they were", report.names.join(", ")),
        ));
    }
    if let Some(message) = failure {
        return Err(refused(WHAT_LOADED, format!("the engine could not load the images: {message}")));
    }
    if let Some(extra) = report.ids.iter().find(|id| !expected_ids.contains(id)) {
        return Err(refused(WHAT_LOADED, format!("loading it produced image {extra}, which build.json does not list")));
    }
    Ok(())
}

const WHAT_LOADED: &str = "images.tar";

/// Puts each name a load set back on the image it named before, or removes it.
async fn restore_names(docker: &Docker, report: &LoadReport) {
    for name in &report.names {
        let result = match report.previous.get(name) {
            Some(previous) => {
                let (repo, tag) = split_tag(name);
                docker
                    .tag_image(previous, Some(TagImageOptions { repo: Some(repo.to_string()), tag: Some(tag.to_string()) }))
                    .await
                    .map(|_| ())
            }
            None => docker.remove_image(name, Some(RemoveImageOptions { force: false, noprune: true, ..Default::default() }), None).await.map(|_| ()),
        };
        match result {
            Ok(()) => tracing::warn!(name, previous = report.previous.get(name).map(String::as_str), "an imported archive named an image; the name was restored"),
            Err(e) => tracing::error!(name, error = %engine_text(&e), "an imported archive named an image and the name could not be restored"),
        }
    }
}

/// `repo:tag` split at the tag's colon (`latest` when there is none).
fn split_tag(name: &str) -> (&str, &str) {
    let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name[last_slash..].rfind(':') {
        Some(colon) => (&name[..last_slash + colon], &name[last_slash + colon + 1..]),
        None => (name, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_must_be_canonical() {
        assert_eq!(canonical_entry_name(b"manifest.json", false).as_deref(), Ok("manifest.json"));
        assert_eq!(canonical_entry_name(b"abc/", true).as_deref(), Ok("abc"));
        assert_eq!(canonical_entry_name(b"abc/layer.tar", false).as_deref(), Ok("abc/layer.tar"));
        for bad in [&b"/manifest.json"[..], b"a/../manifest.json", b"manifest.json/", b"./manifest.json", b"a//b", b"", b"a\\b"] {
            assert!(canonical_entry_name(bad, false).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(canonical_entry_name(b"a/./b/", true).is_err());
    }

    #[test]
    fn symlinks_resolve_inside_the_archive_only() {
        assert_eq!(resolve_link("b/layer.tar", "../a/layer.tar").as_deref(), Some("a/layer.tar"));
        assert_eq!(resolve_link("b/layer.tar", "../../etc/passwd"), None);
        assert_eq!(resolve_link("b/layer.tar", "/etc/passwd"), None);
        assert_eq!(resolve_link("x", ".."), None);
    }

    #[test]
    fn the_load_report_is_read_line_by_line() {
        let mut r = LoadReport::default();
        r.read("The image slipway/busybox:1 already exists, renaming the old one with ID sha256:aa to empty string\n");
        r.read("Loaded image: slipway/busybox:1\nLoaded image ID: sha256:bb\n");
        assert_eq!(r.names, ["slipway/busybox:1"]);
        assert_eq!(r.ids, ["sha256:bb"]);
        assert_eq!(r.previous.get("slipway/busybox:1").map(String::as_str), Some("sha256:aa"));
        assert_eq!(split_tag("127.0.0.1:5000/a/b:v1"), ("127.0.0.1:5000/a/b", "v1"));
        assert_eq!(split_tag("127.0.0.1:5000/a/b"), ("127.0.0.1:5000/a/b", "latest"));
    }

    #[test]
    fn configs_are_named_by_their_digest() {
        let hex = "a".repeat(64);
        assert_eq!(config_hex(&format!("{hex}.json")), Some(hex.as_str()));
        assert_eq!(config_hex(&format!("blobs/sha256/{hex}")), Some(hex.as_str()));
        assert_eq!(config_hex(&format!("x/{hex}.json")), None);
        assert_eq!(config_hex("manifest.json"), None);
    }
}
