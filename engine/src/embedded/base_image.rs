//! A local base image, so Dockerfiles can `RUN` without pulling anything:
//! a rootfs holding Debian's static busybox, loaded as an image whose
//! config is fixed, so its id is known before it is loaded.
//!
//! Every project builds on the same engine, so the name `slipway/busybox:1`
//! is checked *by id* at start-up: when it names any other image (a build or
//! an import re-tagged it), the real one is loaded again under the name.

use bollard::query_parameters::ImportImageOptions;
use bollard::Docker;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The base image demo and test Dockerfiles start `FROM`.
pub const BASE_IMAGE: &str = "slipway/busybox:1";

/// The busybox applets linked into the image.
const APPLETS: &[&str] = &[
    "sh", "ash", "echo", "cat", "ls", "mkdir", "cp", "mv", "rm", "sleep", "true", "false", "env", "printf",
    "test", "[", "wc", "head", "tail", "grep", "sed", "date", "id", "uname", "touch", "chmod", "ln", "pwd",
    "find", "xargs", "tar", "gzip", "httpd", "nc", "wget", "sort", "uniq", "tr", "cut", "dd", "seq", "yes",
    "whoami", "hostname", "ps", "kill", "sha256sum", "md5sum", "vi", "awk", "du", "df", "basename", "dirname",
];

/// Where Debian's `busybox-static` puts its binary.
fn static_busybox() -> Result<Vec<u8>> {
    let candidates = [std::env::var("SLIPWAY_BUSYBOX").unwrap_or_default(), "/bin/busybox".into(), "/usr/bin/busybox".into()];
    for path in candidates.iter().filter(|p| !p.is_empty()) {
        if let Ok(bytes) = std::fs::read(path) {
            // A dynamically linked busybox names its loader; it would not run in an empty rootfs.
            let dynamic = bytes.windows(10).take(8192).any(|w| w == b"/lib64/ld-" || w.starts_with(b"/lib/ld-li"));
            if !dynamic {
                return Ok(bytes);
            }
            tracing::warn!(path, "busybox here is dynamically linked; looking for a static one");
        }
    }
    Err(Error::Startup("a static busybox was not found: install it with `apt-get install busybox-static`".into()))
}

/// The rootfs tarball: /bin/busybox, one symlink per applet, /tmp and a passwd file.
fn rootfs_tar(busybox: &[u8]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let io = |e| Error::io("writing the base image rootfs", e);
    for dir in ["bin/", "tmp/", "etc/", "app/"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(if dir == "tmp/" { 0o1777 } else { 0o755 });
        h.set_size(0);
        h.set_cksum();
        builder.append_data(&mut h, dir, std::io::empty()).map_err(io)?;
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    h.set_cksum();
    builder.append_data(&mut h, "bin/busybox", busybox).map_err(io)?;
    for applet in APPLETS {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        builder.append_link(&mut h, format!("bin/{applet}"), "busybox").map_err(io)?;
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(passwd.len() as u64);
    h.set_cksum();
    builder.append_data(&mut h, "etc/passwd", &passwd[..]).map_err(io)?;
    builder.into_inner().map_err(io)
}

/// The architecture name the engine uses for this machine (the busybox
/// binary is this machine's).
fn engine_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// The base image as `docker load` input, tagged `name`, and its image id
/// (`sha256:` of its config, which has no time or host in it).
fn base_image_archive(busybox: &[u8], name: &str) -> Result<(Vec<u8>, String)> {
    let layer = rootfs_tar(busybox)?;
    let diff_id = hex::encode(Sha256::digest(&layer));
    let config = serde_json::json!({
        "architecture": engine_arch(),
        "os": "linux",
        "config": {},
        "created": "1970-01-01T00:00:00Z",
        "history": [{ "created": "1970-01-01T00:00:00Z", "created_by": "slipway: static busybox rootfs" }],
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_id}")] },
    });
    let config = serde_json::to_vec(&config).map_err(|e| Error::Startup(format!("encoding the base image config: {e}")))?;
    let id = hex::encode(Sha256::digest(&config));
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("{id}.json"),
        "RepoTags": [name],
        "Layers": [format!("{diff_id}/layer.tar")],
    }]))
    .map_err(|e| Error::Startup(format!("encoding the base image manifest: {e}")))?;
    let mut builder = tar::Builder::new(Vec::new());
    let io = |e| Error::io("writing the base image archive", e);
    for (path, data) in [(format!("{diff_id}/layer.tar"), &layer), (format!("{id}.json"), &config), ("manifest.json".to_string(), &manifest)] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        builder.append_data(&mut h, path, data.as_slice()).map_err(io)?;
    }
    Ok((builder.into_inner().map_err(io)?, format!("sha256:{id}")))
}

/// Makes sure [`BASE_IMAGE`] names Slipway's base image (see [`ensure_base_image_as`]).
pub async fn ensure_base_image(docker: &Docker) -> Result<()> {
    ensure_base_image_as(docker, BASE_IMAGE).await.map(|_| ())
}

/// Makes sure `name` names Slipway's base image, checked by id: loads it
/// when the engine lacks it or when `name` points at another image.
/// Returns the image id.
pub async fn ensure_base_image_as(docker: &Docker, name: &str) -> Result<String> {
    let (archive, id) = base_image_archive(&static_busybox()?, name)?;
    match docker.inspect_image(name).await.ok().and_then(|i| i.id) {
        Some(current) if current == id => {
            tracing::debug!(image = name, "base image present");
            return Ok(id);
        }
        Some(other) => tracing::warn!(image = name, found = %other, expected = %id, "the base image name points at another image; loading the real base image again"),
        None => {}
    }
    let options = ImportImageOptions { quiet: true, ..Default::default() };
    let mut stream = docker.import_image(options, bollard::body_full(archive.into()), None);
    while let Some(item) = stream.next().await {
        item.map_err(|e| Error::Startup(format!("loading {name}: {e}")))?;
    }
    match docker.inspect_image(name).await.ok().and_then(|i| i.id) {
        Some(current) if current == id => {
            tracing::info!(image = name, id = %id, "loaded the local base image (static busybox)");
            Ok(id)
        }
        other => Err(Error::Startup(format!("loading {name} did not produce the base image {id} (found {other:?})"))),
    }
}
