//! Turning a cluster's stored access into a `kube` client, and checking
//! that a cluster answers (`GET /version`).
//!
//! A kubeconfig is accepted only when everything it needs is inline: no
//! `exec` or `auth-provider` plugin (they would run commands on Slipway's
//! host) and no file paths (they would read Slipway's files). Its current
//! context is the one used.

use std::time::Duration;

use chrono::Utc;
use kube::config::{KubeConfigOptions, Kubeconfig};
use slipway_model::cluster::ClusterCheck;
use slipway_model::AppError;

use super::store::ClusterAccess;

/// How long a check or a connection waits for the API server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses a kubeconfig and refuses what Slipway will not use; returns the
/// API server address of its current context. Errors name the field `kubeconfig`.
pub fn check_kubeconfig(yaml: &str) -> Result<Option<String>, AppError> {
    let invalid = |m: String| AppError::invalid("kubeconfig", m);
    let config = Kubeconfig::from_yaml(yaml).map_err(|e| invalid(format!("not a kubeconfig: {e}")))?;
    for named in &config.auth_infos {
        let Some(auth) = &named.auth_info else { continue };
        let user = &named.name;
        if auth.exec.is_some() || auth.auth_provider.is_some() {
            return Err(invalid(format!(
                "user `{user}` authenticates through a plugin (exec / auth-provider), which would run a command on Slipway's host; use a token or client certificate data"
            )));
        }
        if auth.token_file.is_some() || auth.client_certificate.is_some() || auth.client_key.is_some() {
            return Err(invalid(format!(
                "user `{user}` names files (tokenFile / client-certificate / client-key); put the data inline (token, client-certificate-data, client-key-data)"
            )));
        }
    }
    for named in &config.clusters {
        if named.cluster.as_ref().is_some_and(|c| c.certificate_authority.is_some()) {
            return Err(invalid(format!(
                "cluster `{}` names a certificate-authority file; use certificate-authority-data",
                named.name
            )));
        }
    }
    let current = config.current_context.clone().ok_or_else(|| invalid("has no current-context".into()))?;
    let context = config
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| invalid(format!("its current-context `{current}` is not defined")))?;
    let server = config
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone());
    if server.is_none() {
        return Err(invalid(format!("cluster `{}` of the current context has no server", context.cluster)));
    }
    Ok(server)
}

/// A client for the cluster; `Err` says why none could be made.
pub async fn client_for(access: &ClusterAccess) -> Result<kube::Client, String> {
    let mut config = match access {
        ClusterAccess::InCluster => {
            kube::Config::incluster().map_err(|e| format!("Slipway is not running in a cluster pod: {e}"))?
        }
        ClusterAccess::Kubeconfig(yaml) => {
            check_kubeconfig(yaml).map_err(|e| e.message)?;
            let parsed = Kubeconfig::from_yaml(yaml).map_err(|e| format!("not a kubeconfig: {e}"))?;
            kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("the kubeconfig cannot be used: {e}"))?
        }
    };
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(Duration::from_secs(30));
    kube::Client::try_from(config).map_err(|e| format!("no client for the cluster: {e}"))
}

/// `GET /version` on the cluster.
pub async fn check(name: &str, client: &kube::Client) -> ClusterCheck {
    let answer = tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version()).await;
    let (reachable, version, message) = match answer {
        Ok(Ok(info)) => (true, Some(info.git_version), None),
        Ok(Err(e)) => (false, None, Some(format!("the API server did not answer GET /version: {e}"))),
        Err(_) => (false, None, Some(format!("the API server did not answer GET /version within {}s", CONNECT_TIMEOUT.as_secs()))),
    };
    ClusterCheck { name: name.to_string(), reachable, version, message, checked_at: Utc::now() }
}
