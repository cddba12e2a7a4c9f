//! The embedded registry: Debian's `docker-registry` on 127.0.0.1 with its
//! storage in the data directory, and token authentication with Slipway as
//! the issuer (anonymous pulls and pushes are refused).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::{ensure_dir, find_binary, port_in_use, terminate};
use crate::error::{Error, Result};

/// Token authentication for the registry: where clients get tokens, and the
/// certificate of the key that signs them.
#[derive(Debug, Clone)]
pub struct RegistryTokenAuth {
    /// The token endpoint the registry names in its challenges, e.g.
    /// `http://127.0.0.1:3000/internal/registry/token`.
    pub realm: String,
    /// PEM certificate of the signing key (`rootcertbundle`).
    pub certificate_pem: String,
}

/// A registry Slipway pushes to; `child` is set when this process started it.
#[derive(Debug)]
pub struct EmbeddedRegistry {
    pub addr: SocketAddr,
    child: Option<Child>,
}

/// Asks `http://host/v2/` whether a registry answers; returns its API version header.
pub fn probe_registry(host: &str) -> std::result::Result<String, String> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(3)).build();
    match agent.get(&format!("http://{host}/v2/")).call() {
        Ok(resp) => Ok(resp.header("Docker-Distribution-API-Version").unwrap_or("registry/2.0").to_string()),
        Err(ureq::Error::Status(401, resp)) => {
            Ok(resp.header("Docker-Distribution-API-Version").unwrap_or("registry/2.0 (auth required)").to_string())
        }
        Err(ureq::Error::Status(code, _)) => Err(format!("http://{host}/v2/ answered {code}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether `http://host/v2/` answers without credentials.
fn anonymous_allowed(host: &str) -> bool {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(3)).build();
    agent.get(&format!("http://{host}/v2/")).call().is_ok()
}

/// A YAML double-quoted string.
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{}\"", s.replace(['"', '\\'], "")))
}

impl EmbeddedRegistry {
    /// Starts `docker-registry serve` on `addr`, or adopts a registry already
    /// answering there; anything else on the port is an error saying so.
    pub async fn start(data_dir: &Path, addr: SocketAddr, auth: Option<&RegistryTokenAuth>) -> Result<EmbeddedRegistry> {
        let host = addr.to_string();
        if port_in_use(addr) {
            return match probe_registry(&host) {
                Ok(_) => {
                    if auth.is_some() && anonymous_allowed(&host) {
                        tracing::warn!(registry = %host, "a registry already answers there and lets anyone pull and push: it was not started by Slipway with token authentication; stop it so Slipway can start its own");
                    }
                    tracing::info!(registry = %host, "a registry already answers there; using it");
                    Ok(EmbeddedRegistry { addr, child: None })
                }
                Err(_) => Err(Error::Startup(format!(
                    "port {} is in use by something that is not a registry: stop it, or choose another port with --registry-addr / SLIPWAY_REGISTRY_ADDR",
                    addr.port()
                ))),
            };
        }
        let bin = find_binary("docker-registry", &[]).ok_or_else(|| {
            Error::Startup("docker-registry not found: install it with `apt-get install docker-registry`, or set SLIPWAY_REGISTRY to an existing registry".into())
        })?;
        let dir = data_dir.join("registry");
        ensure_dir(&dir.join("storage"))?;
        let config = dir.join("config.yml");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.join("storage").display()
        );
        if let Some(auth) = auth {
            let cert = dir.join("token-issuer.crt");
            std::fs::write(&cert, &auth.certificate_pem).map_err(|e| Error::io(format!("writing {}", cert.display()), e))?;
            yaml.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                yaml_string(&auth.realm),
                crate::registry_auth::SERVICE,
                crate::registry_auth::ISSUER,
                yaml_string(&cert.display().to_string())
            ));
        }
        std::fs::write(&config, yaml).map_err(|e| Error::io(format!("writing {}", config.display()), e))?;
        let log_path = dir.join("registry.log");
        let log = std::fs::File::create(&log_path).map_err(|e| Error::io(format!("creating {}", log_path.display()), e))?;
        let log_err = log.try_clone().map_err(|e| Error::io("registry log", e))?;
        let mut child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| Error::Startup(format!("starting docker-registry: {e}")))?;
        let started = Instant::now();
        loop {
            let probe_host = host.clone();
            let answered = tokio::task::spawn_blocking(move || probe_registry(&probe_host).is_ok()).await.unwrap_or(false);
            if answered {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::Startup(format!("docker-registry exited with {status}; see {}", log_path.display())));
            }
            if started.elapsed() > Duration::from_secs(30) {
                terminate(&mut child, "docker-registry", 5).await;
                return Err(Error::Startup(format!("docker-registry did not answer within 30 s; see {}", log_path.display())));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::info!(
            registry = %format!("http://{host}"),
            storage = %dir.join("storage").display(),
            realm = auth.map(|a| a.realm.as_str()).unwrap_or("none (anonymous access)"),
            "started the registry"
        );
        Ok(EmbeddedRegistry { addr, child: Some(child) })
    }

    /// Stops the registry if this process started it.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, "docker-registry", 5).await;
        }
    }
}
