//! The `registry` section: the built-in registry, none, or a host with
//! a namespace and the secrets that hold its credentials.

use super::*;
use crate::manifest::{DEFAULT_TOKEN_SECRET, DEFAULT_USERNAME_SECRET};

const REGISTRY_KEYS: &[&str] = &["host", "namespace", "auth"];
const AUTH_KEYS: &[&str] = &["username_secret", "token_secret"];

impl Parser {
    // ----- registry ----------------------------------------------------------------------

    pub(super) fn registry(&mut self, path: &str, v: &Value) -> Registry {
        match v {
            Value::String(s) => match s.as_str() {
                "slipway" | "eve" | "local" | "native" => Registry::Native,
                "none" => Registry::None,
                other => {
                    self.problem(
                        path,
                        format!(
                            "unknown registry `{other}`; expected `slipway` (the built-in registry), `none` (do not push), or a mapping with `host`"
                        ),
                    );
                    Registry::Native
                }
            },
            Value::Mapping(map) => {
                let fields = self.entries(path, map);
                self.check_keys(path, &fields, REGISTRY_KEYS);
                let host = match fields.get("host") {
                    Some(h) => self.registry_host(&join_key(path, "host"), h),
                    None => {
                        self.problem(
                            &join_key(path, "host"),
                            "required: the registry host, e.g. `registry.example.com` (or use `registry: slipway` for the built-in one)",
                        );
                        None
                    }
                };
                let namespace = fields.get("namespace").and_then(|n| {
                    let p = join_key(path, "namespace");
                    let ns = self.word(&p, n)?;
                    if ns.starts_with('/') || ns.ends_with('/') {
                        self.problem(&p, format!("`{ns}` must not start or end with `/`"));
                        return None;
                    }
                    Some(ns)
                });
                let auth = fields
                    .get("auth")
                    .and_then(|a| self.registry_auth(&join_key(path, "auth"), a));
                match host {
                    Some(host) => Registry::Byo {
                        host,
                        namespace,
                        auth,
                    },
                    None => Registry::Native,
                }
            }
            other => {
                self.problem(
                    path,
                    format!(
                        "expected `slipway`, `none`, or a mapping with `host`, found {}",
                        describe(other)
                    ),
                );
                Registry::Native
            }
        }
    }

    fn registry_host(&mut self, path: &str, v: &Value) -> Option<String> {
        let host = self.word(path, v)?;
        if host.contains("://") {
            self.problem(
                path,
                format!("`{host}` includes a scheme; give only the host, e.g. `registry.example.com:5000`"),
            );
            return None;
        }
        if host.starts_with('/') || host.ends_with('/') {
            self.problem(path, format!("`{host}` must not start or end with `/`"));
            return None;
        }
        Some(host)
    }

    fn registry_auth(&mut self, path: &str, v: &Value) -> Option<RegistryAuth> {
        let fields = match v {
            Value::Null => Fields {
                entries: Vec::new(),
            },
            other => self.mapping(
                path,
                other,
                "a mapping with `username_secret` and `token_secret`",
            )?,
        };
        self.check_keys(path, &fields, AUTH_KEYS);
        let mut secret = |key: &str, default: &str| -> Option<String> {
            match fields.get(key) {
                None => Some(default.to_owned()),
                Some(v) => {
                    let p = join_key(path, key);
                    let name = self.string(&p, v)?;
                    if !is_var_name(&name) {
                        self.problem(&p, format!("invalid secret name `{name}`: {VAR_RULE}"));
                        return None;
                    }
                    Some(name)
                }
            }
        };
        let username_secret = secret("username_secret", DEFAULT_USERNAME_SECRET);
        let token_secret = secret("token_secret", DEFAULT_TOKEN_SECRET);
        Some(RegistryAuth {
            username_secret: username_secret?,
            token_secret: token_secret?,
        })
    }
}
