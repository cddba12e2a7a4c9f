//! Target selection: which [`DeployTarget`] applies a deployment, chosen per
//! environment from its stored `deploy_target`.
//!
//! [`Targets`] is itself a [`DeployTarget`]: the executor and the pipeline
//! driver hand it every deployment, and it reads the environment's stored
//! target at the moment of the rollout and hands the plan to the one target
//! of that kind. An environment whose target kind is not configured in this
//! process (no Docker engine, no Kubernetes support), or whose stored target
//! cannot be understood, fails the deployment with a message saying so.
//! Nothing ever falls back to another kind of target: a `kubernetes`
//! environment never reaches the Docker engine.

use std::sync::Arc;

use slipway_model::release::ContainerView;

use super::target::{DeployError, DeployPlan, DeployTarget};
use crate::builds::BoxFuture;
use crate::Store;

/// The cluster a `kubernetes` target without a `cluster` key deploys to.
pub const DEFAULT_CLUSTER: &str = "default";

/// Where an environment's stored target says its deployments run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetChoice {
    /// Containers on the Docker engine Slipway uses.
    Docker,
    /// A registered Kubernetes cluster; `namespace` `None` is the cluster's default.
    Kubernetes { cluster: String, namespace: Option<String> },
}

impl TargetChoice {
    /// Reads a stored `deploy_target` (`{"kind": "docker"}` or
    /// `{"kind": "kubernetes", "cluster": …, "namespace": …}`); `Err` says
    /// why it cannot be used.
    pub fn from_stored(stored: &serde_json::Value) -> Result<TargetChoice, String> {
        let text = |key: &str| -> Result<Option<String>, String> {
            match stored.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
                Some(other) => Err(format!("the stored target's `{key}` is not a name: {other}")),
            }
        };
        match stored.get("kind").and_then(|k| k.as_str()) {
            Some("docker") => Ok(TargetChoice::Docker),
            Some("kubernetes") | Some("k8s") => Ok(TargetChoice::Kubernetes {
                cluster: text("cluster")?.unwrap_or_else(|| DEFAULT_CLUSTER.to_string()),
                namespace: text("namespace")?,
            }),
            Some(other) => Err(format!("the stored target has an unknown kind `{other}`")),
            None => Err(format!("the stored target has no kind: {stored}")),
        }
    }

    /// `docker` or `kubernetes cluster <c> namespace <n>`, for messages.
    pub fn describe(&self) -> String {
        match self {
            TargetChoice::Docker => "the Docker engine".to_string(),
            TargetChoice::Kubernetes { cluster, namespace } => format!(
                "Kubernetes cluster `{cluster}`, namespace `{}`",
                namespace.as_deref().unwrap_or("(the cluster's default)")
            ),
        }
    }
}

/// Deploys into Kubernetes clusters: one implementation talks to the API
/// servers of registered clusters (see `kubernetes`), tests pass others.
pub trait ClusterDeployer: Send + Sync {
    /// Applies `plan` in `namespace` (or the cluster's default) of `cluster`.
    fn deploy<'a>(
        &'a self,
        cluster: &'a str,
        namespace: Option<&'a str>,
        plan: &'a DeployPlan,
    ) -> BoxFuture<'a, Result<Vec<ContainerView>, DeployError>>;
}

/// The deploy targets of this process, one per kind, chosen per environment.
#[derive(Clone)]
pub struct Targets {
    store: Store,
    docker: Option<Arc<dyn DeployTarget>>,
    kubernetes: Option<Arc<dyn ClusterDeployer>>,
}

impl Targets {
    /// Selection over `store`'s environments with no target configured yet:
    /// every deployment is refused until targets are added.
    pub fn new(store: Store) -> Targets {
        Targets { store, docker: None, kubernetes: None }
    }

    /// The target for environments of kind `docker`.
    pub fn with_docker(mut self, docker: Arc<dyn DeployTarget>) -> Targets {
        self.docker = Some(docker);
        self
    }

    /// The deployer for environments of kind `kubernetes`.
    pub fn with_kubernetes(mut self, kubernetes: Arc<dyn ClusterDeployer>) -> Targets {
        self.kubernetes = Some(kubernetes);
        self
    }

    /// The stored target of the plan's environment, as a choice.
    async fn choice_for(&self, plan: &DeployPlan) -> Result<TargetChoice, DeployError> {
        let stored = super::environments::stored_target(&self.store, &plan.project_id, &plan.environment)
            .await
            .map_err(|e| refuse(&plan.environment, format!("its deploy target could not be read: {e}")))?;
        let Some(stored) = stored else {
            return Err(refuse(&plan.environment, "the environment no longer exists"));
        };
        TargetChoice::from_stored(&stored).map_err(|why| refuse(&plan.environment, why))
    }

    async fn route(&self, plan: &DeployPlan) -> Result<Vec<ContainerView>, DeployError> {
        let choice = self.choice_for(plan).await?;
        tracing::info!(environment = %plan.environment, target = %choice.describe(), "deploy target chosen");
        match &choice {
            TargetChoice::Docker => match &self.docker {
                Some(docker) => docker.deploy(plan).await,
                None => Err(refuse(
                    &plan.environment,
                    "it deploys to the Docker engine, and this Slipway has no Docker engine connected",
                )),
            },
            TargetChoice::Kubernetes { cluster, namespace } => match &self.kubernetes {
                Some(k8s) => k8s.deploy(cluster, namespace.as_deref(), plan).await,
                None => Err(refuse(
                    &plan.environment,
                    format!(
                        "it deploys to {}, and this Slipway has no Kubernetes target configured (nothing falls back to the Docker engine)",
                        choice.describe()
                    ),
                )),
            },
        }
    }
}

/// The deploy target of a serving process: per environment, `docker`
/// environments on `docker` (when an engine is connected) and `kubernetes`
/// environments through `kubernetes` (when cluster support is configured).
pub fn targets_for_process(
    store: &Store,
    docker: Option<Arc<dyn DeployTarget>>,
    kubernetes: Option<Arc<dyn ClusterDeployer>>,
) -> Arc<dyn DeployTarget> {
    let mut targets = Targets::new(store.clone());
    if let Some(docker) = docker {
        targets = targets.with_docker(docker);
    }
    if let Some(kubernetes) = kubernetes {
        targets = targets.with_kubernetes(kubernetes);
    }
    Arc::new(targets)
}

/// A refusal recorded on the deployment.
fn refuse(environment: &str, why: impl std::fmt::Display) -> DeployError {
    DeployError { service: None, message: format!("refusing to deploy environment {environment}: {why}") }
}

impl DeployTarget for Targets {
    fn name(&self) -> &'static str {
        "per-environment"
    }

    fn deploy<'a>(&'a self, plan: &'a DeployPlan) -> BoxFuture<'a, Result<Vec<ContainerView>, DeployError>> {
        Box::pin(self.route(plan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_kubernetes_target_without_a_cluster_names_the_default_cluster() {
        let choice = TargetChoice::from_stored(&json!({"kind": "kubernetes", "namespace": "apps"})).unwrap();
        assert_eq!(choice, TargetChoice::Kubernetes { cluster: "default".into(), namespace: Some("apps".into()) });
        let named = TargetChoice::from_stored(&json!({"kind": "kubernetes", "cluster": "eu-1"})).unwrap();
        assert_eq!(named, TargetChoice::Kubernetes { cluster: "eu-1".into(), namespace: None });
    }

    #[test]
    fn an_unknown_or_missing_kind_is_refused_not_defaulted_to_docker() {
        assert!(TargetChoice::from_stored(&json!({"kind": "ftp"})).unwrap_err().contains("unknown kind `ftp`"));
        assert!(TargetChoice::from_stored(&json!({})).is_err());
        assert!(TargetChoice::from_stored(&json!({"kind": "kubernetes", "cluster": 3})).is_err());
        assert_eq!(TargetChoice::from_stored(&json!({"kind": "docker"})).unwrap(), TargetChoice::Docker);
    }
}
