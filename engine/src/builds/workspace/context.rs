//! Packing a build context into a tar: `.dockerignore` applied, the
//! Dockerfile and `.dockerignore` always included, modes and symbolic links
//! kept, and the same tree always giving the same bytes.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use slipway_model::manifest::DEFAULT_DOCKERFILE;

use super::refs::normalize_rel;
use super::MAX_READ_BYTES;
use crate::builds::dockerignore::DockerIgnore;

/// What went into a build context tar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextStats {
    /// Regular files and symbolic links in the tar (directories are not counted).
    pub files: usize,
    /// Total size of the regular files, in bytes.
    pub bytes: u64,
    /// Paths left out by `.dockerignore` (a directory left out whole counts once),
    /// plus the context root's `.git`, if any.
    pub ignored: usize,
}

/// Packs `context_dir` into an uncompressed tar for a build, honouring
/// `<context>/.dockerignore`; `Dockerfile` and `.dockerignore` are always included.
/// Same as [`context_tar_with_dockerfile`] with `Dockerfile`.
pub fn context_tar(context_dir: &Path) -> Result<(bytes::Bytes, ContextStats), io::Error> {
    context_tar_with_dockerfile(context_dir, DEFAULT_DOCKERFILE)
}

/// Packs `context_dir` into an uncompressed tar for a build.
///
/// - `<context>/.dockerignore` is honoured (see [`DockerIgnore`]); it must be a
///   regular file (a symbolic link is refused, never followed); the Dockerfile
///   (`dockerfile`, relative to the context; ignored if it lies outside) and
///   `.dockerignore` are always included, as Docker does.
/// - The context root's `.git` is always left out, as BuildKit does for git
///   contexts: it is not part of the commit and may hold the clone URL's credentials.
/// - Regular files, directories and symbolic links (stored as links, never
///   followed) are included; sockets, FIFOs and devices are skipped.
/// - The result is reproducible: entries in byte order of their paths (depth
///   first), mtimes 0, uid/gid 0, no user or group names, modes normalised to
///   `0755` for directories and executable files, `0644` for other files, `0777`
///   for links. The same tree gives byte-identical tars.
///
/// This is blocking file I/O; call it from `spawn_blocking`. The whole tar is held
/// in memory.
pub fn context_tar_with_dockerfile(
    context_dir: &Path,
    dockerfile: &str,
) -> Result<(bytes::Bytes, ContextStats), io::Error> {
    let ignore_path = context_dir.join(".dockerignore");
    // Never followed: a link could lead out of the checkout (to a host file, or to
    // a device that never ends).
    let ignore = match std::fs::symlink_metadata(&ignore_path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                ".dockerignore is a symbolic link; Slipway does not follow links for it \
                 (commit the file itself)",
            ))
        }
        Ok(meta) if meta.is_file() => {
            if meta.len() > MAX_READ_BYTES as u64 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(".dockerignore is {} bytes; the limit is {MAX_READ_BYTES} bytes", meta.len()),
                ));
            }
            DockerIgnore::parse(&String::from_utf8_lossy(&std::fs::read(&ignore_path)?))
        }
        _ => DockerIgnore::default(),
    };
    let mut forced = vec![".dockerignore".to_string()];
    if let Some(df) = normalize_rel(dockerfile).filter(|d| d != ".") {
        forced.push(df);
    }
    let mut walker = Walker {
        root: context_dir,
        ignore: &ignore,
        forced: &forced,
        entries: Vec::new(),
        stats: ContextStats::default(),
    };
    walker.walk("", Path::new(""))?;
    let Walker {
        entries, mut stats, ..
    } = walker;

    let mut builder = tar::Builder::new(Vec::new());
    for entry in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match entry.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, &entry.rel, io::empty())?;
            }
            EntryKind::File { executable } => {
                let data = std::fs::read(context_dir.join(&entry.rel))?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if executable { 0o755 } else { 0o644 });
                header.set_size(data.len() as u64);
                stats.files += 1;
                stats.bytes += data.len() as u64;
                builder.append_data(&mut header, &entry.rel, data.as_slice())?;
            }
            EntryKind::Symlink => {
                let target = std::fs::read_link(context_dir.join(&entry.rel))?;
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                stats.files += 1;
                builder.append_link(&mut header, &entry.rel, &target)?;
            }
        }
    }
    let tar = builder.into_inner()?;
    tracing::debug!(
        context = %context_dir.display(),
        files = stats.files, bytes = stats.bytes, ignored = stats.ignored, tar_bytes = tar.len(),
        "packed build context"
    );
    Ok((bytes::Bytes::from(tar), stats))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    Dir,
    File { executable: bool },
    Symlink,
}

/// One planned tar entry; `rel` is relative to the context root.
#[derive(Debug)]
struct Entry {
    rel: PathBuf,
    kind: EntryKind,
}

/// Walks a context directory in sorted order, planning the tar entries.
struct Walker<'a> {
    root: &'a Path,
    ignore: &'a DockerIgnore,
    forced: &'a [String],
    entries: Vec<Entry>,
    stats: ContextStats,
}

impl Walker<'_> {
    /// Plans the entries below `rel_dir` (`""` for the root); `rel_dir_path` is the
    /// same path as it is on disk (names need not be UTF-8).
    fn walk(&mut self, rel_dir: &str, rel_dir_path: &Path) -> io::Result<()> {
        let dir_path = self.root.join(rel_dir_path);
        let mut names: Vec<OsString> = std::fs::read_dir(&dir_path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        for name in names {
            let name_str = name.to_string_lossy();
            let rel = if rel_dir.is_empty() {
                name_str.to_string()
            } else {
                format!("{rel_dir}/{name_str}")
            };
            let rel_path = rel_dir_path.join(&name);
            if rel_dir.is_empty() && name_str == ".git" {
                self.stats.ignored += 1;
                continue;
            }
            let meta = std::fs::symlink_metadata(self.root.join(&rel_path))?;
            let forced = self.forced.contains(&rel);
            let excluded = !forced && self.ignore.is_excluded(&rel);
            let file_type = meta.file_type();
            if file_type.is_dir() {
                if !excluded {
                    self.entries.push(Entry {
                        rel: rel_path.clone(),
                        kind: EntryKind::Dir,
                    });
                    self.walk(&rel, &rel_path)?;
                } else if self.ignore.may_include_under(&rel)
                    || self
                        .forced
                        .iter()
                        .any(|f| f.starts_with(&format!("{rel}/")))
                {
                    // Something below may be re-included: look inside, and keep the
                    // directory entry only if something was.
                    let mark = self.entries.len();
                    let ignored_before = self.stats.ignored;
                    self.entries.push(Entry {
                        rel: rel_path.clone(),
                        kind: EntryKind::Dir,
                    });
                    self.walk(&rel, &rel_path)?;
                    if self.entries.len() == mark + 1 {
                        self.entries.truncate(mark);
                        self.stats.ignored = ignored_before + 1;
                    }
                } else {
                    self.stats.ignored += 1;
                }
            } else if excluded {
                self.stats.ignored += 1;
            } else if file_type.is_file() {
                use std::os::unix::fs::PermissionsExt;
                let executable = meta.permissions().mode() & 0o111 != 0;
                self.entries.push(Entry {
                    rel: rel_path,
                    kind: EntryKind::File { executable },
                });
            } else if file_type.is_symlink() {
                self.entries.push(Entry {
                    rel: rel_path,
                    kind: EntryKind::Symlink,
                });
            } else {
                tracing::debug!(path = %rel, "skipping a special file in the build context");
            }
        }
        Ok(())
    }
}

