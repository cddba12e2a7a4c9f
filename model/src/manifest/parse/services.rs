//! The `services` section: each service's image or build (context,
//! Dockerfile, args, target, in the Eve or the Convox spelling), ports,
//! command and environment.

use super::*;
use crate::manifest::paths::{normalise_context, normalise_dockerfile};
use crate::manifest::rules::{image_has_tag_or_digest, normalise_port};
use crate::manifest::DEFAULT_DOCKERFILE;

const SERVICE_KEYS: &[&str] = &[
    "image",
    "build",
    "manifest",
    "environment",
    "ports",
    "port",
    "command",
];
const BUILD_KEYS: &[&str] = &["context", "dockerfile", "args", "target"];
const NEEDS_BUILD_OR_IMAGE: &str =
    "a service needs `build` (a directory to build, e.g. `build: ./api`; `build: .` for the repository root) or `image` (an image to run)";

impl Parser {
    // ----- services ----------------------------------------------------------------------

    pub(super) fn services<'a>(
        &mut self,
        path: &str,
        v: &'a Value,
        known: &mut Known<'a>,
    ) -> BTreeMap<String, Service> {
        let mut out = BTreeMap::new();
        let Some(fields) = self.mapping(path, v, "a mapping of service names to services") else {
            return out;
        };
        if fields.entries.is_empty() {
            self.problem(path, "at least one service is required");
        }
        for (key, body) in fields.entries {
            let spath = join_key(path, key);
            if !is_slug(key) {
                self.problem(&spath, format!("invalid service name `{key}`: {SLUG_RULE}"));
            }
            let has_build = matches!(body, Value::Mapping(m) if m.contains_key("build"));
            known.services.insert(key, has_build);
            if let Some(service) = self.service(&spath, body) {
                out.insert(key.to_owned(), service);
            }
        }
        out
    }

    fn service(&mut self, path: &str, v: &Value) -> Option<Service> {
        if v.is_null() {
            self.problem(path, NEEDS_BUILD_OR_IMAGE);
            return None;
        }
        let fields = self.mapping(path, v, "a mapping with `build` or `image`")?;
        self.check_keys(path, &fields, SERVICE_KEYS);
        let mut service = Service::default();

        let image_path = join_key(path, "image");
        service.image = fields.get("image").and_then(|v| self.word(&image_path, v));

        let manifest_path = join_key(path, "manifest");
        let convox_dockerfile = fields
            .get("manifest")
            .and_then(|v| self.string(&manifest_path, v))
            .map(|d| (manifest_path.clone(), d));

        match fields.get("build") {
            Some(b) => {
                service.build = self.build(&join_key(path, "build"), b, convox_dockerfile);
            }
            None => {
                if convox_dockerfile.is_some() {
                    self.problem(
                        &manifest_path,
                        "`manifest` names the Dockerfile for `build`, but this service has no `build`",
                    );
                }
                if !fields.has("image") {
                    self.problem(path, NEEDS_BUILD_OR_IMAGE);
                }
            }
        }

        if fields.has("build") {
            if let Some(image) = &service.image {
                if image_has_tag_or_digest(image) {
                    self.problem(
                        &image_path,
                        format!(
                            "`{image}` has a tag or digest; when a service is built, `image` names the repository to push to and Slipway tags each build"
                        ),
                    );
                } else if let Some(reason) = crate::image_name::reserved_reason(image) {
                    self.problem(
                        &image_path,
                        format!("{reason}: a built image is named inside the project's own namespace; leave `image` out"),
                    );
                }
            }
        }

        if let Some(env) = fields.get("environment") {
            service.environment = self.key_values(
                &join_key(path, "environment"),
                env,
                "environment variable",
                true,
            );
        }
        if let Some(ports) = fields.get("ports") {
            let ppath = join_key(path, "ports");
            match ports {
                Value::Sequence(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(p) = self.port(&join_index(&ppath, i), item) {
                            if !service.ports.contains(&p) {
                                service.ports.push(p);
                            }
                        }
                    }
                }
                Value::Null => {}
                other => self.problem(
                    &ppath,
                    format!(
                        "expected a list of ports, e.g. `[3000, \"8080:80\"]`, found {}",
                        describe(other)
                    ),
                ),
            }
        }
        if let Some(port) = fields.get("port") {
            // Convox's single `port` is the service's main port: it goes first.
            if let Some(p) = self.port(&join_key(path, "port"), port) {
                service.ports.retain(|q| *q != p);
                service.ports.insert(0, p);
            }
        }
        if let Some(cmd) = fields.get("command") {
            service.command = self.string(&join_key(path, "command"), cmd);
        }
        Some(service)
    }

    /// `build:` as a directory string (Convox) or a mapping (Eve/Compose).
    fn build(
        &mut self,
        path: &str,
        v: &Value,
        convox_dockerfile: Option<(String, String)>,
    ) -> Option<ServiceBuild> {
        match v {
            Value::String(raw) => {
                let context = self.context(path, raw);
                let dockerfile = match (&context, &convox_dockerfile) {
                    (Some(ctx), Some((dpath, d))) => self.dockerfile(dpath, ctx, d),
                    (_, None) => Some(DEFAULT_DOCKERFILE.to_owned()),
                    (None, Some(_)) => None,
                };
                Some(ServiceBuild {
                    context: context?,
                    dockerfile: dockerfile?,
                    args: BTreeMap::new(),
                    target: None,
                })
            }
            Value::Mapping(map) => {
                let fields = self.entries(path, map);
                self.check_keys(path, &fields, BUILD_KEYS);
                let context = match fields.get("context") {
                    Some(c) => {
                        let cpath = join_key(path, "context");
                        self.string(&cpath, c)
                            .and_then(|raw| self.context(&cpath, &raw))
                    }
                    None => Some(".".to_owned()),
                };
                let dockerfile_raw = match (fields.get("dockerfile"), convox_dockerfile) {
                    (Some(d), Some((mpath, _))) => {
                        self.problem(
                            &mpath,
                            "conflicts with `build.dockerfile`; name the Dockerfile in one place",
                        );
                        let dpath = join_key(path, "dockerfile");
                        self.string(&dpath, d).map(|s| (dpath, s))
                    }
                    (Some(d), None) => {
                        let dpath = join_key(path, "dockerfile");
                        self.string(&dpath, d).map(|s| (dpath, s))
                    }
                    (None, convox) => convox,
                };
                let dockerfile = match (&context, dockerfile_raw) {
                    (Some(ctx), Some((dpath, raw))) => self.dockerfile(&dpath, ctx, &raw),
                    (Some(_), None) if !fields.has("dockerfile") => {
                        Some(DEFAULT_DOCKERFILE.to_owned())
                    }
                    _ => None,
                };
                let args = match fields.get("args") {
                    Some(a) => self
                        .key_values(&join_key(path, "args"), a, "build argument", false)
                        .into_iter()
                        .filter_map(|(k, v)| v.map(|v| (k, v)))
                        .collect(),
                    None => BTreeMap::new(),
                };
                let target = fields
                    .get("target")
                    .and_then(|t| self.word(&join_key(path, "target"), t));
                Some(ServiceBuild {
                    context: context?,
                    dockerfile: dockerfile?,
                    args,
                    target,
                })
            }
            other => {
                self.problem(
                    path,
                    format!(
                        "expected a directory (e.g. `./api`) or a mapping with `context`, found {}",
                        describe(other)
                    ),
                );
                None
            }
        }
    }

    fn context(&mut self, path: &str, raw: &str) -> Option<String> {
        match normalise_context(raw) {
            Ok(c) => Some(c),
            Err(msg) => {
                self.problem(path, msg);
                None
            }
        }
    }

    fn dockerfile(&mut self, path: &str, context: &str, raw: &str) -> Option<String> {
        match normalise_dockerfile(context, raw) {
            Ok(d) => Some(d),
            Err(msg) => {
                self.problem(path, msg);
                None
            }
        }
    }

    /// A port: a number, or a string `[host:]container[/tcp|/udp]`.
    fn port(&mut self, path: &str, v: &Value) -> Option<String> {
        let raw = match v {
            Value::Number(_) => self.integer(path, v, 65_535)?.to_string(),
            Value::String(s) => s.trim().to_owned(),
            other => {
                self.problem(
                    path,
                    format!(
                        "expected a port number or a string like \"8080:80\", found {}",
                        describe(other)
                    ),
                );
                return None;
            }
        };
        match normalise_port(&raw) {
            Some(p) => Some(p),
            None => {
                self.problem(
                    path,
                    format!("invalid port `{raw}`: expected a number 1-65535, optionally `host:container` and `/tcp` or `/udp`"),
                );
                None
            }
        }
    }
}
