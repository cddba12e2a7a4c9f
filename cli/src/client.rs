//! HTTP calls to Slipway's server functions (`POST /api/<endpoint>` with JSON).

use std::time::Duration;

use anyhow::anyhow;
use serde::de::DeserializeOwned;
use slipway_model::AppError;

pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(server: &str) -> Client {
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).timeout(Duration::from_secs(120)).build();
        Client { base: server.trim_end_matches('/').to_string(), agent }
    }

    /// `ws://…` or `wss://…` base of the server.
    pub fn ws_base(&self) -> String {
        if let Some(rest) = self.base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            format!("ws://{}", self.base.trim_start_matches("http://"))
        }
    }

    /// GET a JSON resource (`path` starts with `/`).
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        match self.agent.get(&url).set("Accept", "application/json").call() {
            Ok(resp) => Ok(resp.into_json()?),
            Err(ureq::Error::Status(code, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                match serde_json::from_str::<AppError>(&text) {
                    Ok(err) => Err(anyhow!(err.message)),
                    Err(_) => Err(anyhow!("{url} answered {code}: {}", text.trim())),
                }
            }
            Err(e) => Err(anyhow!("cannot reach Slipway at {}: {e} (is it running? start it with `cargo xtask run`, or pass --server)", self.base)),
        }
    }

    /// Calls a server function and decodes its answer, or its [`AppError`].
    pub fn call<T: DeserializeOwned>(&self, endpoint: &str, body: serde_json::Value) -> anyhow::Result<T> {
        let url = format!("{}/api/{endpoint}", self.base);
        match self.agent.post(&url).set("Accept", "application/json").send_json(body) {
            Ok(resp) => Ok(resp.into_json()?),
            Err(ureq::Error::Status(code, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                match serde_json::from_str::<AppError>(&text) {
                    Ok(err) => {
                        let mut msg = err.message.clone();
                        if err.problems.len() > 1 {
                            for p in &err.problems {
                                msg.push_str(&format!("\n  {}: {}", p.field, p.message));
                            }
                        }
                        Err(anyhow!(msg))
                    }
                    Err(_) => Err(anyhow!("{url} answered {code}: {}", text.trim())),
                }
            }
            Err(e) => Err(anyhow!(
                "cannot reach Slipway at {}: {e} (is it running? start it with `cargo xtask run`, or pass --server)",
                self.base
            )),
        }
    }
}
