//! The demo project seeded on first run: a local git repository with a
//! manifest and two services whose Dockerfiles build offline on the local
//! base image, so a newcomer has something real to build.

use std::path::{Path, PathBuf};

use slipway_model::project::{NewProject, Project};
use tokio::process::Command;

use crate::embedded::BASE_IMAGE;
use crate::error::{Error, Result};
use crate::store::Store;

/// Name (and slug) of the demo project.
pub const DEMO_PROJECT: &str = "demo";

fn files() -> Vec<(&'static str, String)> {
    vec![
        (
            ".slipway/manifest.yaml",
            "# Slipway manifest of the demo project: two services built on the local base image.\n\
             name: demo\n\
             registry: local\n\
             services:\n  api:\n    build:\n      context: api\n      dockerfile: Dockerfile\n  web:\n    build: web\n\
             environments:\n  - name: test\n  - name: staging\n  - name: production\n    approval:\n      required: 2\n\
             pipelines:\n  release:\n    steps:\n      - name: build\n        build: {}\n      - name: release\n        release: {}\n        depends_on: [build]\n      - name: deploy-test\n        deploy:\n          environment: test\n        depends_on: [release]\n"
                .to_string(),
        ),
        (
            "api/Dockerfile",
            format!(
                "FROM {BASE_IMAGE}\nARG BUILD_GIT_SHA=unknown\nRUN mkdir -p /srv && echo \"api built from $BUILD_GIT_SHA\" > /srv/index.html\nCOPY . /app\nRUN ls /app && echo api ready\nEXPOSE 8080\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/srv\"]\n"
            ),
        ),
        ("api/.dockerignore", "*.log\nscratch/\n".to_string()),
        ("api/main.sh", "#!/bin/sh\necho \"hello from the demo api\"\n".to_string()),
        (
            "web/Dockerfile",
            format!(
                "FROM {BASE_IMAGE}\nCOPY index.html /srv/index.html\nRUN echo web ready\nEXPOSE 8080\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/srv\"]\n"
            ),
        ),
        ("web/index.html", "<!doctype html><title>demo</title><h1>Hello from the Slipway demo</h1>\n".to_string()),
        ("README.md", "# Slipway demo\n\nTwo services (`api`, `web`) that build without network access.\n".to_string()),
    ]
}

async fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Slipway", "-c", "user.email=slipway@localhost", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .await
        .map_err(|e| Error::Startup(format!("running git (install it with `apt-get install git`): {e}")))?;
    if !out.status.success() {
        return Err(Error::Startup(format!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// Creates the demo repository under `data_dir` (once) and returns its path.
pub async fn ensure_demo_repo(data_dir: &Path) -> Result<PathBuf> {
    let repo = data_dir.join("demo-repo");
    if repo.join(".git").is_dir() {
        return Ok(repo);
    }
    for (path, content) in files() {
        let full = repo.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        std::fs::write(&full, content).map_err(|e| Error::io(format!("writing {}", full.display()), e))?;
    }
    git(&repo, &["init", "-q"]).await?;
    git(&repo, &["add", "-A"]).await?;
    git(&repo, &["commit", "-q", "-m", "Demo project: api and web services"]).await?;
    tracing::info!(repo = %repo.display(), "created the demo repository");
    Ok(repo)
}

/// Seeds the demo project on first run; later runs find it and do nothing.
pub async fn seed_demo_project(store: &Store, data_dir: &Path) -> Result<Project> {
    if let Some(project) = store.find_project_by_slug(DEMO_PROJECT).await? {
        return Ok(project);
    }
    let repo = ensure_demo_repo(data_dir).await?;
    let repo = repo.canonicalize().map_err(|e| Error::io("resolving the demo repository path", e))?;
    let input = NewProject {
        name: DEMO_PROJECT.into(),
        repo_url: repo.display().to_string(),
        description: Some("Seeded on first run: two services that build offline on the local base image.".into()),
        default_branch: Some("main".into()),
    };
    let project = store.create_project(&input, None).await?;
    tracing::info!(project = %project.id, "seeded the demo project");
    Ok(project)
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_manifest_is_valid() {
        let (_, manifest) = super::files().into_iter().next().unwrap();
        slipway_model::manifest::parse(&manifest).unwrap();
    }
}
