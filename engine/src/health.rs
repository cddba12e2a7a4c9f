//! What `GET /healthz` reports: database, Docker engine and registry.

use slipway_model::health::{ComponentHealth, Health};

use crate::store::Store;

fn ok(endpoint: &str, detail: String) -> ComponentHealth {
    ComponentHealth { status: "ok".into(), endpoint: endpoint.into(), detail }
}

fn down(endpoint: &str, detail: String) -> ComponentHealth {
    ComponentHealth { status: "down".into(), endpoint: endpoint.into(), detail }
}

/// Checks the three components concurrently, each with a short timeout.
pub async fn check(store: &Store, docker: Option<&bollard::Docker>, docker_endpoint: &str, registry_host: Option<&str>) -> Health {
    let timeout = std::time::Duration::from_secs(3);
    let db = async {
        match tokio::time::timeout(timeout, store.server_version()).await {
            Ok(Ok(v)) => ok("postgres", format!("PostgreSQL {v}")),
            Ok(Err(e)) => down("postgres", e.to_string()),
            Err(_) => down("postgres", "no answer within 3 s".into()),
        }
    };
    let engine = async {
        let Some(docker) = docker else {
            return down(docker_endpoint, "not connected".into());
        };
        match tokio::time::timeout(timeout, docker.version()).await {
            Ok(Ok(v)) => ok(docker_endpoint, format!("Docker {} (API {})", v.version.unwrap_or_default(), v.api_version.unwrap_or_default())),
            Ok(Err(e)) => down(docker_endpoint, e.to_string()),
            Err(_) => down(docker_endpoint, "no answer within 3 s".into()),
        }
    };
    let registry = async {
        let Some(host) = registry_host else {
            return ComponentHealth { status: "ok".into(), endpoint: "none".into(), detail: "no registry configured (push disabled)".into() };
        };
        let host_owned = host.to_string();
        match tokio::task::spawn_blocking(move || crate::embedded::probe_registry(&host_owned)).await {
            Ok(Ok(v)) => ok(host, v),
            Ok(Err(e)) => down(host, e),
            Err(e) => down(host, e.to_string()),
        }
    };
    let (database, docker, registry) = tokio::join!(db, engine, registry);
    let all_ok = [&database, &docker, &registry].iter().all(|c| c.status == "ok");
    Health {
        status: if all_ok { "ok".into() } else { "degraded".into() },
        version: env!("CARGO_PKG_VERSION").into(),
        database,
        docker,
        registry,
    }
}
