//! The `clusters` table: registering, listing and removing Kubernetes
//! clusters, and reading back a cluster's access for the deployer. A
//! kubeconfig is sealed with the master key ([`SecretBox`]) bound to its row
//! (`cluster|<id>|<name>`); only [`Store::cluster_access`] opens it, and no
//! listing carries it.

use chrono::{DateTime, Utc};
use slipway_model::cluster::{Cluster, ClusterSource, NewCluster};
use slipway_model::id::{self, CLUSTER};
use slipway_model::AppError;

use crate::error::{Error, Result};
use crate::secrets::{Sealed, SecretBox};
use crate::store::Store;

/// How to reach a cluster, opened for a connection.
#[derive(Clone)]
pub enum ClusterAccess {
    /// The kubeconfig's YAML.
    Kubeconfig(String),
    /// The pod's own service account.
    InCluster,
}

impl std::fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterAccess::Kubeconfig(_) => f.write_str("Kubeconfig(<redacted>)"),
            ClusterAccess::InCluster => f.write_str("InCluster"),
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    in_cluster: bool,
    server: Option<String>,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<Row> for Cluster {
    fn from(r: Row) -> Self {
        Cluster {
            id: r.id,
            name: r.name,
            source: if r.in_cluster { ClusterSource::InCluster } else { ClusterSource::Kubeconfig },
            server: r.server,
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

const COLUMNS: &str = "c.id, c.name, c.in_cluster, c.server, u.username AS created_by, c.created_at";

fn aad(id: &str, name: &str) -> String {
    format!("cluster|{id}|{name}")
}

fn secret_box(store: &Store) -> Result<&SecretBox> {
    store.secret_box().ok_or_else(|| Error::Io("clusters need the master key, and this store was opened without it".into()))
}

impl Store {
    /// Registers a cluster. `server` is the API server's address read from
    /// the kubeconfig (by the caller, which parses it). A taken name is a 409.
    #[tracing::instrument(skip_all, fields(cluster = %input.name.trim()))]
    pub async fn add_cluster(&self, input: &NewCluster, server: Option<&str>, created_by: Option<&str>) -> Result<Cluster> {
        input.check()?;
        let name = input.name.trim();
        let id = id::new_id(CLUSTER);
        let sealed = match &input.kubeconfig {
            Some(k) if !input.in_cluster => Some(secret_box(self)?.seal(aad(&id, name).as_bytes(), k.as_bytes())?),
            _ => None,
        };
        let inserted = sqlx::query(
            "INSERT INTO clusters (id, name, in_cluster, server, ciphertext, nonce, key_id, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(name)
        .bind(input.in_cluster)
        .bind(server)
        .bind(sealed.as_ref().map(|s| &s.ciphertext))
        .bind(sealed.as_ref().map(|s| &s.nonce))
        .bind(sealed.as_ref().map(|s| &s.key_id))
        .bind(created_by)
        .execute(self.pool())
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                return Err(AppError::conflict(format!("a cluster named `{name}` is already registered; remove it first to replace it")).into())
            }
            Err(e) => return Err(e.into()),
        }
        self.get_cluster(name).await
    }

    /// Every registered cluster, by name.
    #[tracing::instrument(skip_all)]
    pub async fn list_clusters(&self) -> Result<Vec<Cluster>> {
        let rows: Vec<Row> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM clusters c LEFT JOIN users u ON u.id = c.created_by ORDER BY c.name"))
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().map(Cluster::from).collect())
    }

    /// The cluster `name`; 404 when none has that name.
    #[tracing::instrument(skip_all, fields(cluster = %name))]
    pub async fn get_cluster(&self, name: &str) -> Result<Cluster> {
        let row: Option<Row> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM clusters c LEFT JOIN users u ON u.id = c.created_by WHERE c.name = $1"))
                .bind(name.trim())
                .fetch_optional(self.pool())
                .await?;
        row.map(Cluster::from).ok_or_else(|| AppError::not_found(format!("cluster `{}`", name.trim())).into())
    }

    /// Removes the cluster `name` and returns it; 404 when none has that name.
    #[tracing::instrument(skip_all, fields(cluster = %name))]
    pub async fn remove_cluster(&self, name: &str) -> Result<Cluster> {
        let cluster = self.get_cluster(name).await?;
        sqlx::query("DELETE FROM clusters WHERE id = $1").bind(&cluster.id).execute(self.pool()).await?;
        Ok(cluster)
    }

    /// How to reach the cluster `name`, its kubeconfig decrypted; 404 when
    /// none has that name.
    #[tracing::instrument(skip_all, fields(cluster = %name))]
    pub async fn cluster_access(&self, name: &str) -> Result<ClusterAccess> {
        let row: Option<(String, bool, Option<Vec<u8>>, Option<Vec<u8>>, Option<String>)> =
            sqlx::query_as("SELECT id, in_cluster, ciphertext, nonce, key_id FROM clusters WHERE name = $1")
                .bind(name.trim())
                .fetch_optional(self.pool())
                .await?;
        let Some((id, in_cluster, ciphertext, nonce, key_id)) = row else {
            return Err(AppError::not_found(format!("cluster `{}`", name.trim())).into());
        };
        if in_cluster {
            return Ok(ClusterAccess::InCluster);
        }
        let (Some(ciphertext), Some(nonce), Some(key_id)) = (ciphertext, nonce, key_id) else {
            return Err(Error::Io(format!("cluster `{name}` has no stored kubeconfig")));
        };
        let plain = secret_box(self)?
            .open(aad(&id, name.trim()).as_bytes(), &Sealed { ciphertext, nonce, key_id })
            .map_err(|e| Error::Io(format!("the kubeconfig of cluster `{name}`: {e}")))?;
        String::from_utf8(plain)
            .map(ClusterAccess::Kubeconfig)
            .map_err(|_| Error::Io(format!("the kubeconfig of cluster `{name}` is not UTF-8")))
    }
}
