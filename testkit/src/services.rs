//! The test services (`cargo xtask test` starts them and sets their
//! environment; by hand, load `/work/services.env` or the like): the
//! registry with Slipway's token auth and the Docker engine.

use std::collections::BTreeMap;

use slipway_engine::builds::registry::RegistryTarget;
use slipway_engine::docker::Docker;
use slipway_engine::embedded::ensure_base_image;
use slipway_engine::registry_auth::TokenIssuer;
use slipway_engine::release::LocalDockerTarget;

/// `host:port` of the test registry (`SLIPWAY_REGISTRY`).
pub fn registry() -> String {
    std::env::var("SLIPWAY_REGISTRY").expect("SLIPWAY_REGISTRY names the test registry (run the tests with `cargo xtask test`)")
}

/// The issuer of the test registry's tokens (`SLIPWAY_REGISTRY_TOKEN_KEY`), if it has one.
pub fn tokens() -> Option<TokenIssuer> {
    TokenIssuer::from_env(&registry()).expect("a usable SLIPWAY_REGISTRY_TOKEN_KEY")
}

/// A target that may read the project's images in the test registry.
pub fn reader(project_slug: &str) -> RegistryTarget {
    match tokens() {
        Some(issuer) => issuer.pull_target(&registry(), project_slug).expect("a pull credential"),
        None => RegistryTarget::new(registry()),
    }
}

/// The test Docker engine (API version negotiated), with the local base
/// image present.
pub async fn docker() -> Docker {
    let docker = Docker::connect_with_local_defaults()
        .expect("a Docker engine (cargo xtask test starts one)")
        .negotiate_version()
        .await
        .expect("no Docker engine answers: start `dockerd --bridge=none --iptables=false --ip-masq=false`");
    ensure_base_image(&docker).await.expect("the local base image");
    docker
}

/// [`reader`] for the project of image `name` (`<project>/<service>`).
pub fn image_reader(name: &str) -> RegistryTarget {
    reader(name.split('/').next().unwrap_or_default())
}

/// A deploy target on the test engine that pulls with the test registry's
/// tokens and labels its containers `dev.slipway.test=<test>`.
pub fn local_target(docker: Docker, test: &str) -> LocalDockerTarget {
    LocalDockerTarget::new(docker)
        .with_registry_tokens(tokens())
        .with_labels(BTreeMap::from([("dev.slipway.test".to_string(), test.to_string())]))
}

/// Removes every container labelled `key=value` when dropped (also when a
/// test panics).
pub struct RemoveContainers {
    filter: String,
}

impl RemoveContainers {
    /// The containers labelled `key=value`.
    pub fn labelled(key: &str, value: &str) -> RemoveContainers {
        RemoveContainers { filter: format!("label={key}={value}") }
    }
}

impl Drop for RemoveContainers {
    fn drop(&mut self) {
        let listed = std::process::Command::new("docker").args(["ps", "-aq", "--filter", &self.filter]).output();
        if let Ok(out) = listed {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker").arg("rm").arg("-f").args(&ids).output();
            }
        }
    }
}
