//! Kubernetes clusters as an admin-managed resource: the `clusters` table
//! ([`store`]), and connecting to and checking a cluster ([`connect`]).
//! Deploying into a cluster is `release::kubernetes`.

pub mod connect;
pub mod store;

pub use connect::{check, check_kubeconfig, client_for};
pub use store::ClusterAccess;

use slipway_model::cluster::ClusterCheck;

use crate::error::Result;
use crate::Store;

/// Checks the registered cluster `name`: reachability through `GET /version`.
/// 404 when no cluster has that name.
pub async fn check_registered(store: &Store, name: &str) -> Result<ClusterCheck> {
    let cluster = store.get_cluster(name).await?;
    let access = store.cluster_access(&cluster.name).await?;
    Ok(match client_for(&access).await {
        Ok(client) => check(&cluster.name, &client).await,
        Err(message) => ClusterCheck {
            name: cluster.name,
            reachable: false,
            version: None,
            message: Some(message),
            checked_at: chrono::Utc::now(),
        },
    })
}
