//! Projects for tests, named apart from every other test's.

use std::path::Path;

use slipway_engine::Store;
use slipway_model::project::{NewProject, Project};

/// A project named `<prefix><nonce>` on the repository at `repo`.
pub async fn project(store: &Store, prefix: &str, repo: &Path) -> Project {
    let name = format!("{prefix}{}", crate::nonce());
    store
        .create_project(&NewProject { name, repo_url: repo.display().to_string(), ..Default::default() }, None)
        .await
        .expect("project created")
}
