//! [`FsRepoView`]: the manifest's view of a checkout on disk, for checking
//! build contexts and Dockerfiles.

use std::path::PathBuf;

use slipway_model::manifest::RepoView;

use super::refs::normalize_rel;

/// A [`RepoView`] over a directory on disk, typically a [`Checkout`]'s working tree.
/// Paths are relative to the directory; absolute paths, `..` and symbolic links that
/// lead outside the directory are treated as missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsRepoView(pub PathBuf);

impl FsRepoView {
    /// The canonical path of `rel` if it exists inside the root.
    fn resolve(&self, rel: &str) -> Option<PathBuf> {
        let rel = normalize_rel(rel)?;
        let root = self.0.canonicalize().ok()?;
        let full = if rel == "." {
            root.clone()
        } else {
            root.join(&rel).canonicalize().ok()?
        };
        full.starts_with(&root).then_some(full)
    }
}

impl RepoView for FsRepoView {
    fn is_dir(&self, rel: &str) -> bool {
        self.resolve(rel).is_some_and(|p| p.is_dir())
    }

    fn is_file(&self, rel: &str) -> bool {
        self.resolve(rel).is_some_and(|p| p.is_file())
    }
}

