//! Target selection on the real deploy path: real Postgres, a real BuildKit
//! build pushed to the test registry, and the real Docker engine. The
//! targets are those a Slipway process builds ([`release::targets_for_process`]);
//! an environment stored with a `kubernetes` target must never reach the
//! Docker engine, whatever else is configured.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bollard::query_parameters::ListContainersOptions;
use slipway_engine::embedded::BASE_IMAGE;
use slipway_engine::release::{self, LocalDockerTarget};
use slipway_model::release::{DeployRequest, DeploymentKind, NewRelease};
use slipway_model::status::DeploymentStatus;
use sqlx::PgPool;

const MANIFEST: &str = "services:
  app:
    build: app
environments:
  - name: cluster
    target:
      kind: kubernetes
      namespace: apps
  - name: local
";

fn files() -> Vec<(&'static str, String)> {
    vec![
        (".slipway/manifest.yaml", MANIFEST.to_string()),
        ("app/Dockerfile", format!("FROM {BASE_IMAGE}\nCMD [\"sleep\", \"300\"]\n")),
    ]
}

/// Removes the project's containers when dropped (also when a test panics).
struct ContainerGuard(String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let filter = format!("label=dev.slipway.project={}", self.0);
        if let Ok(out) = std::process::Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output() {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker").arg("rm").arg("-f").args(&ids).output();
            }
        }
    }
}

/// Every container on the engine, running or not, that belongs to `project_id`.
async fn containers_of(docker: &bollard::Docker, project_id: &str) -> Vec<HashMap<String, String>> {
    let filters = HashMap::from([("label".to_string(), vec![format!("dev.slipway.project={project_id}")])]);
    let list = docker
        .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
        .await
        .expect("list containers");
    list.into_iter().map(|c| c.labels.unwrap_or_default()).collect()
}

#[sqlx::test(migrations = "./migrations")]
async fn a_kubernetes_environment_never_reaches_the_docker_engine(pool: PgPool) {
    let mut builds = support::Builds::new(pool).await;
    let project = builds.project("k8s", &files()).await;
    let _guard = ContainerGuard(project.id.clone());
    let build = builds.build(&project).await;
    let store = builds.store.clone();
    let rel = release::create_release(
        &store,
        &NewRelease { project: project.slug.clone(), build: build.spec.id.clone(), tag: Some("v1".into()), ..Default::default() },
        None,
    )
    .await
    .expect("release");

    // What a serving process builds: the Docker engine connected, no cluster support.
    let docker_target = LocalDockerTarget::new(builds.docker.clone())
        .with_registry_tokens(slipway_testkit::services::tokens())
        .with_labels(BTreeMap::from([("dev.slipway.test".to_string(), "deploy_targets".to_string())]));
    let targets = release::targets_for_process(&store, Some(Arc::new(docker_target)), None);

    let request = |env: &str| DeployRequest { environment: env.into(), release: rel.tag.clone(), ..Default::default() };
    let to_cluster = slipway_engine::pipeline::request_deploy(&store, &project.slug, &request("cluster"), None, DeploymentKind::Deploy).await.expect("request");
    assert_eq!(to_cluster.status, DeploymentStatus::Deploying);
    let done = release::run_pending(&store, targets.as_ref()).await.expect("executor");
    let failed = done.iter().find(|d| d.id == to_cluster.id).expect("the cluster deployment ran");
    assert_eq!(failed.status, DeploymentStatus::Failed);
    let message = failed.error_message.clone().unwrap_or_default();
    assert!(message.contains("refusing to deploy environment cluster"), "{message}");
    assert!(message.contains("Kubernetes"), "{message}");
    assert!(failed.containers.is_empty());
    assert!(
        containers_of(&builds.docker, &project.id).await.is_empty(),
        "a kubernetes environment's deployment created containers on the Docker engine"
    );

    // The same process still deploys a docker environment to the engine.
    let to_local = slipway_engine::pipeline::request_deploy(&store, &project.slug, &request("local"), None, DeploymentKind::Deploy).await.expect("request");
    release::run_pending(&store, targets.as_ref()).await.expect("executor");
    let local = release::get_deployment(&store, &to_local.id).await.expect("deployment");
    assert_eq!(local.status, DeploymentStatus::Succeeded, "{:?}", local.error_message);
    let labels = containers_of(&builds.docker, &project.id).await;
    assert_eq!(labels.len(), 1);
    assert_eq!(labels[0].get("dev.slipway.environment").map(String::as_str), Some("local"));
}
