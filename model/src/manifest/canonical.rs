//! The canonical form of a manifest: its JSON with sorted keys and no
//! whitespace, and the SHA-256 of that, which identifies what a manifest
//! means whatever its formatting, comments, key order or spelling.

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::types::*;

/// Writes `v` as canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace.
/// Sorting here (rather than relying on `serde_json`'s map type, which a `preserve_order`
/// feature elsewhere in the build could change) keeps the hash stable.
pub(super) fn write_canonical(v: &Json, out: &mut String) {
    match v {
        Json::Object(map) => {
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String(k.clone()).to_string());
                out.push(':');
                write_canonical(val, out);
            }
            out.push('}');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        leaf => out.push_str(&leaf.to_string()),
    }
}

/// The canonical JSON shape of a manifest, built by hand so it cannot fail and does not
/// drift with serde attributes. It matches the serde representation (a test checks).
mod canon {
    use super::*;

    /// An object under construction.
    struct Obj(serde_json::Map<String, Json>);

    impl Obj {
        fn new() -> Self {
            Self(serde_json::Map::new())
        }
        fn put(mut self, k: &str, v: Json) -> Self {
            self.0.insert(k.to_owned(), v);
            self
        }
        fn opt(self, k: &str, v: Option<Json>) -> Self {
            match v {
                Some(v) => self.put(k, v),
                None => self,
            }
        }
        fn done(self) -> Json {
            Json::Object(self.0)
        }
    }

    fn s(v: &str) -> Json {
        Json::String(v.to_owned())
    }

    fn strings(v: &[String]) -> Json {
        Json::Array(v.iter().map(|x| s(x)).collect())
    }

    fn non_empty<T>(v: &[T], f: impl Fn(&[T]) -> Json) -> Option<Json> {
        (!v.is_empty()).then(|| f(v))
    }

    pub(super) fn manifest(m: &Manifest) -> Json {
        let services: serde_json::Map<String, Json> = m
            .services
            .iter()
            .map(|(k, v)| (k.clone(), service(v)))
            .collect();
        let pipelines: serde_json::Map<String, Json> = m
            .pipelines
            .iter()
            .map(|(k, v)| (k.clone(), pipeline(v)))
            .collect();
        Obj::new()
            .opt("name", m.name.as_deref().map(s))
            .put("registry", registry(&m.registry))
            .put("services", Json::Object(services))
            .opt(
                "environments",
                non_empty(&m.environments, |e| {
                    Json::Array(e.iter().map(environment).collect())
                }),
            )
            .opt(
                "pipelines",
                (!pipelines.is_empty()).then_some(Json::Object(pipelines)),
            )
            .done()
    }

    fn registry(r: &Registry) -> Json {
        match r {
            Registry::Native => Obj::new().put("kind", s("native")).done(),
            Registry::None => Obj::new().put("kind", s("none")).done(),
            Registry::Byo {
                host,
                namespace,
                auth,
            } => Obj::new()
                .put("kind", s("byo"))
                .put("host", s(host))
                .opt("namespace", namespace.as_deref().map(s))
                .opt(
                    "auth",
                    auth.as_ref().map(|a| {
                        Obj::new()
                            .put("username_secret", s(&a.username_secret))
                            .put("token_secret", s(&a.token_secret))
                            .done()
                    }),
                )
                .done(),
        }
    }

    fn service(v: &Service) -> Json {
        let env: serde_json::Map<String, Json> = v
            .environment
            .iter()
            .map(|(k, val)| (k.clone(), val.as_deref().map_or(Json::Null, s)))
            .collect();
        Obj::new()
            .opt("image", v.image.as_deref().map(s))
            .opt("build", v.build.as_ref().map(build))
            .opt(
                "environment",
                (!env.is_empty()).then_some(Json::Object(env)),
            )
            .opt("ports", non_empty(&v.ports, strings))
            .opt("command", v.command.as_deref().map(s))
            .done()
    }

    fn build(b: &ServiceBuild) -> Json {
        let args: serde_json::Map<String, Json> =
            b.args.iter().map(|(k, v)| (k.clone(), s(v))).collect();
        Obj::new()
            .put("context", s(&b.context))
            .put("dockerfile", s(&b.dockerfile))
            .opt("args", (!args.is_empty()).then_some(Json::Object(args)))
            .opt("target", b.target.as_deref().map(s))
            .done()
    }

    fn environment(e: &Environment) -> Json {
        let target = match &e.target {
            DeployTarget::Docker => Obj::new().put("kind", s("docker")).done(),
            DeployTarget::Kubernetes { namespace, cluster } => Obj::new()
                .put("kind", s("kubernetes"))
                .opt("namespace", namespace.as_deref().map(s))
                .opt("cluster", cluster.as_deref().map(s))
                .done(),
        };
        Obj::new()
            .put("name", s(&e.name))
            .opt(
                "approval",
                e.approval.as_ref().map(|a| {
                    Obj::new()
                        .put("required", Json::from(a.required))
                        .opt("approvers", non_empty(&a.approvers, strings))
                        .opt("wait_timer_seconds", a.wait_timer_seconds.map(Json::from))
                        .done()
                }),
            )
            .put("target", target)
            .done()
    }

    fn pipeline(p: &Pipeline) -> Json {
        let steps = p
            .steps
            .iter()
            .map(|st| {
                let action = match &st.action {
                    StepAction::Build { services } => Obj::new()
                        .put("type", s("build"))
                        .opt("services", services.as_deref().map(strings))
                        .done(),
                    StepAction::Release { tag, version } => Obj::new()
                        .put("type", s("release"))
                        .opt("tag", tag.as_deref().map(s))
                        .opt("version", version.as_deref().map(s))
                        .done(),
                    StepAction::Deploy { environment } => Obj::new()
                        .put("type", s("deploy"))
                        .put("environment", s(environment))
                        .done(),
                };
                Obj::new()
                    .put("name", s(&st.name))
                    .put("action", action)
                    .opt("depends_on", non_empty(&st.depends_on, strings))
                    .done()
            })
            .collect();
        Obj::new().put("steps", Json::Array(steps)).done()
    }
}

impl Manifest {
    /// Canonical JSON of the normalised manifest: object keys sorted, no whitespace,
    /// absent optional fields and empty collections left out (so adding a new optional
    /// field later does not change the hash of existing manifests).
    pub fn canonical_json(&self) -> String {
        let mut out = String::new();
        write_canonical(&canon::manifest(self), &mut out);
        out
    }

    /// SHA-256 of [`Manifest::canonical_json`], as 64 lowercase hex digits. Formatting,
    /// comments, key order and the Convox-vs-Eve spelling of the same thing do not change
    /// it; any change of meaning does.
    pub fn canonical_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_json().as_bytes()))
    }
}
