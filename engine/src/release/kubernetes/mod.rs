//! The Kubernetes deploy target: a deployment's services applied into a
//! namespace of a registered cluster with server-side apply (field manager
//! `slipway`), then watched until the rollout is done or has failed.
//!
//! - [`objects`]: the typed objects rendered from a deployment (pure).
//! - [`inputs`]: what rendering needs, gathered from the store: the
//!   manifest's ports and secret references, the approvals, the registry
//!   credentials for the pull Secret.
//! - `apply` and `rollout`: talking to the API server.
//!
//! [`KubernetesDeployer`] is the [`ClusterDeployer`] target selection hands
//! `kubernetes` environments to. It reaches clusters through a
//! [`ClusterConnector`]: [`RegisteredClusters`] (the `clusters` table) in a
//! serving process, a mock transport in tests.

mod apply;
pub mod inputs;
pub mod objects;
mod rollout;

use std::sync::Arc;
use std::time::Duration;

use slipway_model::release::ContainerView;

use super::select::ClusterDeployer;
use super::target::{DeployError, DeployPlan};
use crate::builds::BoxFuture;
use crate::registry_auth::TokenIssuer;
use crate::Store;

pub use objects::{render, Objects, Rendering};

/// Gives a `kube` client for a cluster by name.
pub trait ClusterConnector: Send + Sync {
    /// `Err` says why the cluster cannot be reached (not registered, bad kubeconfig, …).
    fn connect<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, Result<kube::Client, String>>;
}

/// The clusters registered in the store (`slipway clusters add`).
#[derive(Clone)]
pub struct RegisteredClusters {
    store: Store,
}

impl RegisteredClusters {
    pub fn new(store: Store) -> RegisteredClusters {
        RegisteredClusters { store }
    }
}

impl ClusterConnector for RegisteredClusters {
    fn connect<'a>(&'a self, cluster: &'a str) -> BoxFuture<'a, Result<kube::Client, String>> {
        Box::pin(async move {
            let access = match self.store.cluster_access(cluster).await {
                Ok(a) => a,
                Err(crate::Error::App(e)) if e.code == slipway_model::ErrorCode::NotFound => {
                    return Err(format!(
                        "cluster `{cluster}` is not registered (an administrator adds it with `slipway clusters add {cluster}`)"
                    ))
                }
                Err(e) => return Err(format!("cluster `{cluster}`: {e}")),
            };
            crate::clusters::client_for(&access).await.map_err(|e| format!("cluster `{cluster}`: {e}"))
        })
    }
}

/// Deploys into Kubernetes clusters.
#[derive(Clone)]
pub struct KubernetesDeployer {
    store: Store,
    connector: Arc<dyn ClusterConnector>,
    registry_tokens: Option<TokenIssuer>,
    progress_deadline: Duration,
    poll: Duration,
}

impl KubernetesDeployer {
    /// A deployer reaching clusters through `connector`, with a 10-minute
    /// progress deadline checked every 3 s.
    pub fn new(store: Store, connector: Arc<dyn ClusterConnector>) -> KubernetesDeployer {
        KubernetesDeployer {
            store,
            connector,
            registry_tokens: None,
            progress_deadline: Duration::from_secs(600),
            poll: Duration::from_secs(3),
        }
    }

    /// Writes pull credentials for Slipway's own registry into the pull Secret.
    pub fn with_registry_tokens(mut self, issuer: Option<TokenIssuer>) -> KubernetesDeployer {
        self.registry_tokens = issuer;
        self
    }

    /// The progress deadline of every Deployment, and how often a rollout is read.
    pub fn with_timing(mut self, progress_deadline: Duration, poll: Duration) -> KubernetesDeployer {
        self.progress_deadline = progress_deadline;
        self.poll = poll;
        self
    }

    /// What would be applied for `plan` in `namespace`: the objects, rendered
    /// from the store (secret values and credentials included).
    pub async fn rendering(&self, namespace: &str, plan: &DeployPlan) -> Result<Rendering, String> {
        let deadline = i32::try_from(self.progress_deadline.as_secs()).unwrap_or(i32::MAX).max(1);
        inputs::gather(&self.store, self.registry_tokens.as_ref(), namespace, deadline, plan).await
    }

    async fn rollout(&self, cluster: &str, namespace: Option<&str>, plan: &DeployPlan) -> Result<Vec<ContainerView>, DeployError> {
        let fail = |message: String| DeployError { service: None, message };
        if plan.services.is_empty() {
            return Err(fail("the deployment has no services to run".into()));
        }
        let client = self.connector.connect(cluster).await.map_err(fail)?;
        let namespace = namespace.map(str::to_string).unwrap_or_else(|| client.default_namespace().to_string());
        let rendering = self.rendering(&namespace, plan).await.map_err(fail)?;
        let objects = render(&rendering);
        tracing::info!(cluster, namespace = %namespace, deployments = objects.deployments.len(), "applying to Kubernetes");
        let applied = apply::apply_all(&client, &namespace, &objects)
            .await
            .map_err(|e| fail(format!("cluster `{cluster}`: {e}")))?;
        let names: Vec<String> = applied.iter().filter_map(|d| d.metadata.name.clone()).collect();
        let watch = rollout::Watch { poll: self.poll, deadline: self.progress_deadline + self.progress_deadline.min(Duration::from_secs(30)) };
        rollout::wait_all(&client, &namespace, &names, watch).await.map_err(|e| fail(format!("cluster `{cluster}`: {e}")))?;
        Ok(rendering
            .services
            .iter()
            .map(|s| {
                let workload = objects::workload_name(&rendering.project_slug, &rendering.environment, &s.service);
                ContainerView {
                    service: s.service.clone(),
                    container_id: format!("k8s:{cluster}/{namespace}/deployment/{workload}"),
                    name: workload,
                    image: s.image.clone(),
                    digest: s.digest.clone(),
                }
            })
            .collect())
    }
}

impl ClusterDeployer for KubernetesDeployer {
    fn deploy<'a>(
        &'a self,
        cluster: &'a str,
        namespace: Option<&'a str>,
        plan: &'a DeployPlan,
    ) -> BoxFuture<'a, Result<Vec<ContainerView>, DeployError>> {
        Box::pin(self.rollout(cluster, namespace, plan))
    }
}
