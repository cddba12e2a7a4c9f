//! Kubernetes clusters: an admin-managed list of the clusters environments
//! may deploy to. A cluster is reached through a kubeconfig (stored
//! encrypted, never shown again) or "in-cluster", with the service account
//! of the pod Slipway runs in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AppError, FieldProblem};

/// Longest kubeconfig accepted, in bytes.
pub const MAX_KUBECONFIG_BYTES: usize = 256 * 1024;

/// How Slipway reaches a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterSource {
    /// A stored kubeconfig.
    Kubeconfig,
    /// The service account of the pod Slipway runs in.
    InCluster,
}

impl ClusterSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterSource::Kubeconfig => "kubeconfig",
            ClusterSource::InCluster => "in-cluster",
        }
    }
}

/// A registered cluster as listed: never its kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: String,
    /// What environments name in `target.cluster` (`default` when they name none).
    pub name: String,
    pub source: ClusterSource,
    /// The API server's address from the kubeconfig (not secret), when known.
    pub server: Option<String>,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Input for registering a cluster: exactly one of `kubeconfig` and `in_cluster`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCluster {
    /// `[a-z][a-z0-9-]{0,62}`.
    pub name: String,
    /// The kubeconfig's YAML; its current context is the one used.
    #[serde(default)]
    pub kubeconfig: Option<String>,
    /// Use the service account of the pod Slipway runs in.
    #[serde(default)]
    pub in_cluster: bool,
}

impl std::fmt::Debug for NewCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCluster")
            .field("name", &self.name)
            .field("kubeconfig", &self.kubeconfig.as_ref().map(|_| "<redacted>"))
            .field("in_cluster", &self.in_cluster)
            .finish()
    }
}

/// Whether `name` is an acceptable cluster name.
pub fn is_valid_cluster_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

impl NewCluster {
    /// Checks the fields; the kubeconfig's content is checked by whoever parses it.
    pub fn check(&self) -> Result<(), AppError> {
        let mut problems = Vec::new();
        let problem = |field: &str, message: &str| FieldProblem { field: field.into(), message: message.into() };
        if !is_valid_cluster_name(self.name.trim()) {
            problems.push(problem("name", "must be 1-63 characters of a-z, 0-9 and `-`, starting with a letter"));
        }
        match (&self.kubeconfig, self.in_cluster) {
            (Some(_), true) => problems.push(problem("kubeconfig", "give a kubeconfig or in_cluster, not both")),
            (None, false) => problems.push(problem("kubeconfig", "required unless in_cluster is set")),
            (Some(k), false) if k.trim().is_empty() => problems.push(problem("kubeconfig", "must not be empty")),
            (Some(k), false) if k.len() > MAX_KUBECONFIG_BYTES => {
                problems.push(problem("kubeconfig", &format!("must be at most {MAX_KUBECONFIG_BYTES} bytes")))
            }
            _ => {}
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(AppError::invalid_fields(problems))
        }
    }
}

/// The answer of `GET /version` from a cluster, or why there was none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterCheck {
    pub name: String,
    pub reachable: bool,
    /// The API server's `gitVersion`, e.g. `v1.31.2`.
    pub version: Option<String>,
    /// Why it is unreachable.
    pub message: Option<String>,
    pub checked_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_needs_exactly_one_way_in() {
        let ok = NewCluster { name: "eu-1".into(), kubeconfig: Some("apiVersion: v1".into()), in_cluster: false };
        assert!(ok.check().is_ok());
        assert!(NewCluster { name: "eu-1".into(), kubeconfig: None, in_cluster: true }.check().is_ok());
        let both = NewCluster { in_cluster: true, ..ok.clone() };
        assert_eq!(both.check().unwrap_err().problems[0].field, "kubeconfig");
        let neither = NewCluster { name: "Bad Name".into(), kubeconfig: None, in_cluster: false };
        let fields: Vec<String> = neither.check().unwrap_err().problems.into_iter().map(|f| f.field).collect();
        assert_eq!(fields, ["name", "kubeconfig"]);
    }

    #[test]
    fn a_new_cluster_never_prints_its_kubeconfig() {
        let c = NewCluster { name: "a".into(), kubeconfig: Some("token: hunter2".into()), in_cluster: false };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
