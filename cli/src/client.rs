//! HTTP calls to Slipway: server functions (`POST /api/<endpoint>` with JSON),
//! plain GETs and the websocket base, all with the bearer token when one is
//! configured.

use std::time::Duration;

use anyhow::anyhow;
use serde::de::DeserializeOwned;
use slipway_model::AppError;

pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

fn error_from(url: &str, code: u16, text: &str) -> anyhow::Error {
    match serde_json::from_str::<AppError>(text) {
        Ok(err) => {
            let mut msg = err.message.clone();
            if err.problems.len() > 1 {
                for p in &err.problems {
                    msg.push_str(&format!("\n  {}: {}", p.field, p.message));
                }
            }
            if code == 401 {
                msg.push_str(" (log in with `slipway login`)");
            }
            anyhow!(msg)
        }
        Err(_) => anyhow!("{url} answered {code}: {}", text.trim()),
    }
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Client {
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5)).timeout(Duration::from_secs(120)).build();
        Client { base: server.trim_end_matches('/').to_string(), token, agent }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("cannot reach Slipway at {}: {e} (is it running? start it with `cargo xtask run`, or pass --server)", self.base)
    }

    fn with_auth(&self, req: ureq::Request) -> ureq::Request {
        match &self.token {
            Some(t) => req.set("Authorization", &format!("Bearer {t}")),
            None => req,
        }
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
        match self.with_auth(self.agent.get(&url).set("Accept", "application/json")).call() {
            Ok(resp) => Ok(resp.into_json()?),
            Err(ureq::Error::Status(code, resp)) => Err(error_from(&url, code, &resp.into_string().unwrap_or_default())),
            Err(e) => Err(self.unreachable(e)),
        }
    }

    /// An agent for large transfers: no overall timeout, generous per-read and
    /// per-write ones (the server packs an export before its first byte).
    fn transfer_agent(&self) -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout_read(Duration::from_secs(30 * 60))
            .timeout_write(Duration::from_secs(30 * 60))
            .build()
    }

    /// GETs a raw body (`path` starts with `/`) and streams it into `out`.
    /// Returns the number of bytes written.
    pub fn download(&self, path: &str, out: &mut dyn std::io::Write) -> anyhow::Result<u64> {
        let url = format!("{}{path}", self.base);
        match self.with_auth(self.transfer_agent().get(&url)).call() {
            Ok(resp) => {
                let mut reader = resp.into_reader();
                Ok(std::io::copy(&mut reader, out)?)
            }
            Err(ureq::Error::Status(code, resp)) => Err(error_from(&url, code, &resp.into_string().unwrap_or_default())),
            Err(e) => Err(self.unreachable(e)),
        }
    }

    /// POSTs `len` bytes read from `body` as a raw body of `content_type` and
    /// decodes the JSON answer, or its [`AppError`].
    pub fn upload<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        len: u64,
        body: impl std::io::Read,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let req = self
            .with_auth(self.transfer_agent().post(&url))
            .set("Accept", "application/json")
            .set("Content-Type", content_type)
            .set("Content-Length", &len.to_string());
        match req.send(body) {
            Ok(resp) => Ok(resp.into_json()?),
            Err(ureq::Error::Status(code, resp)) => Err(error_from(&url, code, &resp.into_string().unwrap_or_default())),
            Err(e) => Err(self.unreachable(e)),
        }
    }

    /// Calls a server function and decodes its answer, or its [`AppError`].
    pub fn call<T: DeserializeOwned>(&self, endpoint: &str, body: serde_json::Value) -> anyhow::Result<T> {
        self.call_with_cookie(endpoint, body, None).map(|(v, _)| v)
    }

    /// Like [`Client::call`], sending a session cookie, and returning the
    /// session cookie the answer sets, if any (used by `slipway login`).
    pub fn call_with_cookie<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        body: serde_json::Value,
        cookie: Option<&str>,
    ) -> anyhow::Result<(T, Option<String>)> {
        let url = format!("{}/api/{endpoint}", self.base);
        let mut req = self.agent.post(&url).set("Accept", "application/json");
        req = match cookie {
            Some(c) => req.set("Cookie", c),
            None => self.with_auth(req),
        };
        match req.send_json(body) {
            Ok(resp) => {
                let set_cookie = resp.header("set-cookie").and_then(|c| c.split(';').next()).map(str::to_string);
                Ok((resp.into_json()?, set_cookie))
            }
            Err(ureq::Error::Status(code, resp)) => Err(error_from(&url, code, &resp.into_string().unwrap_or_default())),
            Err(e) => Err(self.unreachable(e)),
        }
    }
}
