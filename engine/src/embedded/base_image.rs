//! A local base image, so Dockerfiles can `RUN` without pulling anything:
//! `docker import` of a rootfs holding Debian's static busybox.

use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;

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

/// Imports the base image unless the engine already has it.
pub async fn ensure_base_image(docker: &Docker) -> Result<()> {
    if docker.inspect_image(BASE_IMAGE).await.is_ok() {
        tracing::debug!(image = BASE_IMAGE, "base image present");
        return Ok(());
    }
    let tar = rootfs_tar(&static_busybox()?)?;
    let (repo, tag) = BASE_IMAGE.split_once(':').unwrap_or((BASE_IMAGE, "latest"));
    let options = CreateImageOptionsBuilder::default().from_src("-").repo(repo).tag(tag).build();
    let mut stream = docker.create_image(Some(options), Some(bollard::body_full(tar.into())), None);
    while let Some(item) = stream.next().await {
        item?;
    }
    docker
        .inspect_image(BASE_IMAGE)
        .await
        .map_err(|e| Error::Startup(format!("importing {BASE_IMAGE} did not produce the image: {e}")))?;
    tracing::info!(image = BASE_IMAGE, "imported the local base image (static busybox)");
    Ok(())
}

