//! Image naming: which image repositories belong to a project.
//!
//! All projects share one Docker engine and one registry, so a build must
//! never be able to give its image a name that another project, or Slipway
//! itself, uses: that would re-tag the shared base image or another
//! project's images. Every image Slipway builds for a project is therefore
//! named inside that project's *namespace*:
//!
//! | the build's registry | repository |
//! |---|---|
//! | `none`, or Slipway's registry when pushing is disabled | `slipway.local/<slug>/<service>` |
//! | Slipway's registry (`registry: slipway`) | `<registry host>/<slug>/<service>` |
//! | the project's own (`registry: {host, namespace}`) | `<host>/<namespace or slug>/<service>` |
//!
//! Rules that keep namespaces apart:
//!
//! - `slipway.local/` is only ever the first part of a project's local
//!   namespace; `slipway/` (the base image `slipway/busybox:1`) is Slipway's
//!   own. No build may name an image under either outside its own namespace.
//! - On Slipway's registry (its host, or any loopback name for the same
//!   port) the path under the host must start with the project's slug:
//!   `registry: {host: 127.0.0.1:5000, namespace: other}` is refused when
//!   Slipway's registry is `127.0.0.1:5000`.
//! - A registry host must look like one (a dot, a port, or `localhost`):
//!   Docker reads `acme/api` as a Docker Hub path, not a host.
//! - A built service's `image` may rename the repository, but only inside
//!   the namespace its build pushes to.
//!
//! [`ProjectImages::owns`] answers "is this reference one of project X's
//! images?" — the question a `FROM` check asks.

use std::net::IpAddr;

use crate::manifest::{Manifest, Registry};

/// First part of every project's local (not pushed) namespace.
pub const LOCAL_ROOT: &str = "slipway.local";

/// Namespace of Slipway's own images, such as the base image `slipway/busybox:1`.
pub const SLIPWAY_NAMESPACE: &str = "slipway";

/// Docker Hub's canonical host.
const DOCKER_HUB: &str = "docker.io";

/// A name problem, with the manifest path of the field it comes from
/// (`services.api.image`, `registry.namespace`, `registry.host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamingProblem {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for NamingProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What is known about Slipway's own registry where a name is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlipwayRegistry {
    /// Pushing goes to this `host[:port]`.
    Host(String),
    /// Pushing is disabled: `registry: slipway` builds stay local.
    Disabled,
    /// Not known here (e.g. a pipeline step recording a build): a name that
    /// may be in Slipway's registry passes when the slug is its first path
    /// part; the runner, which knows the host, checks again.
    Unknown,
}

impl SlipwayRegistry {
    /// `Host` for `Some`, `Disabled` for `None`.
    pub fn from_config(host: Option<&str>) -> SlipwayRegistry {
        match host.map(str::trim).filter(|h| !h.is_empty()) {
            Some(h) => SlipwayRegistry::Host(h.to_string()),
            None => SlipwayRegistry::Disabled,
        }
    }
}

/// One project's image namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectImages {
    slug: String,
    registry: Registry,
    slipway: SlipwayRegistry,
}

/// Whether `reference` (`[host/]path[:tag][@digest]`) names one of the
/// project's images: under its local namespace, its path on Slipway's
/// registry (or any loopback registry), or the path of the registry its
/// manifest declares. Shorthand for [`ProjectImages::owns`].
pub fn is_project_image(reference: &str, project_slug: &str, registry: &Registry, slipway_registry: &SlipwayRegistry) -> bool {
    ProjectImages::new(project_slug, registry, slipway_registry.clone()).owns(reference)
}

impl ProjectImages {
    /// The namespaces of project `slug` whose builds push to `registry`
    /// (the build's override, else the manifest's).
    pub fn new(slug: &str, registry: &Registry, slipway: SlipwayRegistry) -> ProjectImages {
        ProjectImages { slug: path_component(slug, "project"), registry: registry.clone(), slipway }
    }

    /// The project's local namespace, `slipway.local/<slug>`.
    pub fn local_namespace(&self) -> String {
        format!("{LOCAL_ROOT}/{}", self.slug)
    }

    /// Where this project's builds put their images (no trailing slash),
    /// or why the registry settings are refused. `None` when Slipway's
    /// registry is not known here.
    pub fn build_namespace(&self) -> Result<Option<String>, NamingProblem> {
        match &self.registry {
            Registry::None => Ok(Some(self.local_namespace())),
            Registry::Native => match &self.slipway {
                SlipwayRegistry::Host(h) => Ok(Some(format!("{}/{}", normalize_host(h), self.slug))),
                SlipwayRegistry::Disabled => Ok(Some(self.local_namespace())),
                SlipwayRegistry::Unknown => Ok(None),
            },
            Registry::Byo { host, namespace, .. } => {
                let host = normalize_host(host);
                let (bare, host_path) = host.split_once('/').unwrap_or((host.as_str(), ""));
                if !looks_like_host(bare) {
                    return Err(NamingProblem {
                        path: "registry.host".into(),
                        message: format!(
                            "`{bare}` is not a registry host (Docker would read it as a Docker Hub path): give a host name with a dot or a port, e.g. `registry.example.com:5000`"
                        ),
                    });
                }
                if bare == LOCAL_ROOT {
                    return Err(NamingProblem {
                        path: "registry.host".into(),
                        message: format!("`{LOCAL_ROOT}` is reserved for the images Slipway keeps on its engine; it is not a registry"),
                    });
                }
                let ns = namespace
                    .as_deref()
                    .map(|ns| ns.split('/').map(|c| path_component(c, "")).filter(|c| !c.is_empty()).collect::<Vec<_>>().join("/"))
                    .filter(|ns| !ns.is_empty())
                    .unwrap_or_else(|| self.slug.clone());
                let path = if host_path.is_empty() { ns.clone() } else { format!("{host_path}/{ns}") };
                if self.is_slipway_host(bare) && path != self.slug && !under(&path, &self.slug) {
                    return Err(NamingProblem {
                        path: "registry.namespace".into(),
                        message: format!(
                            "`{bare}` is Slipway's registry, where this project may only push under `{}/`; `{path}` is outside it",
                            self.slug
                        ),
                    });
                }
                Ok(Some(format!("{host}/{ns}")))
            }
        }
    }

    /// The repository a build of `service` gets: `explicit` (the manifest's
    /// `image`) when it lies inside the build namespace, else the
    /// namespace and the service name; an `explicit` name outside it is refused.
    pub fn repository(&self, service: &str, explicit: Option<&str>) -> Result<String, NamingProblem> {
        let namespace = self.build_namespace()?;
        match explicit {
            None => match namespace {
                Some(ns) => Ok(format!("{ns}/{}", path_component(service, "app"))),
                None => Err(NamingProblem {
                    path: format!("services.{service}"),
                    message: "Slipway's registry is not known here, so the image name cannot be derived".into(),
                }),
            },
            Some(image) => {
                let refuse = |why: String| NamingProblem { path: format!("services.{service}.image"), message: why };
                let Some(name) = normalize_name(image) else {
                    return Err(refuse(format!("`{image}` is not a valid image repository name")));
                };
                let inside = match &namespace {
                    Some(ns) => under(&name, &normalize_name(ns).unwrap_or_else(|| ns.clone())),
                    None => self.owns(image),
                };
                if inside {
                    return Ok(name);
                }
                let why = match reserved_reason(image) {
                    Some(reason) => reason,
                    None => match self.other_project(&name) {
                        Some(other) => format!("`{image}` is in project `{other}`'s namespace, not this project's"),
                        None => format!("`{image}` is outside this project's image namespace"),
                    },
                };
                let hint = match &namespace {
                    Some(ns) => format!("name it `{ns}/<name>` or leave `image` out"),
                    None => format!("name it `<registry host>/{}/<name>` or leave `image` out", self.slug),
                };
                Err(refuse(format!("{why}: every image this project builds lives under its own namespace; {hint}")))
            }
        }
    }

    /// Whether `reference` is one of this project's images (see [`is_project_image`]).
    pub fn owns(&self, reference: &str) -> bool {
        let Some(name) = normalize_name(reference) else { return false };
        let Some((host, path)) = name.split_once('/') else { return false };
        if host == LOCAL_ROOT || self.is_slipway_host(host) {
            return under(path, &self.slug);
        }
        if let (Registry::Native, SlipwayRegistry::Unknown) = (&self.registry, &self.slipway) {
            if host != DOCKER_HUB && under(path, &self.slug) {
                return true;
            }
        }
        match (&self.registry, self.build_namespace()) {
            (Registry::Byo { .. }, Ok(Some(ns))) => normalize_name(&ns).is_some_and(|ns| under(&name, &ns)),
            _ => false,
        }
    }

    /// Every problem with the image names of `manifest`'s built services
    /// and with the registry they push to, with manifest paths.
    pub fn check_manifest(&self, manifest: &Manifest) -> Vec<NamingProblem> {
        if let Err(p) = self.build_namespace() {
            return vec![p];
        }
        manifest
            .services
            .iter()
            .filter(|(_, s)| s.build.is_some())
            .filter_map(|(name, s)| s.image.as_deref().and_then(|image| self.repository(name, Some(image)).err()))
            .collect()
    }

    /// Whether `host` (normalized, no path) is Slipway's registry: its
    /// host, or another loopback name for the same port.
    fn is_slipway_host(&self, host: &str) -> bool {
        match &self.slipway {
            SlipwayRegistry::Host(h) => same_registry(&normalize_host(h), host),
            SlipwayRegistry::Disabled | SlipwayRegistry::Unknown => false,
        }
    }

    /// The slug of the project whose namespace `name` (normalized) is in, if
    /// it is another project's local or Slipway-registry namespace.
    fn other_project(&self, name: &str) -> Option<String> {
        let (host, path) = name.split_once('/')?;
        if host == LOCAL_ROOT || self.is_slipway_host(host) {
            let first = path.split('/').next()?;
            return (first != self.slug && path.contains('/')).then(|| first.to_string());
        }
        None
    }
}

/// Why `image` may not name a built image in any project, if it is
/// reserved: Slipway's own namespace (`slipway/…`, e.g. the base image).
/// Context-free, so the manifest parser can say it early.
pub fn reserved_reason(image: &str) -> Option<String> {
    let name = normalize_name(image)?;
    let (host, path) = name.split_once('/')?;
    if host == DOCKER_HUB && under(path, SLIPWAY_NAMESPACE) {
        return Some(format!("`{image}` is reserved for Slipway's own images (such as the base image `slipway/busybox:1`)"));
    }
    None
}

/// `reference` without tag or digest, in Docker's full form: lowercase
/// host first (`docker.io` for Docker Hub, `docker.io/library/x` for
/// `x`), then the path. `None` when it is not a valid reference.
pub fn normalize_name(reference: &str) -> Option<String> {
    let r = reference.trim();
    let no_digest = r.split('@').next().unwrap_or(r);
    let last_slash = no_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let repo = match no_digest[last_slash..].rfind(':') {
        Some(colon) => &no_digest[..last_slash + colon],
        None => no_digest,
    };
    if repo.is_empty() || repo.starts_with('/') || repo.ends_with('/') || repo.contains("//") {
        return None;
    }
    let (host, path) = match repo.split_once('/') {
        Some((first, rest)) if looks_like_host(first) => (first.to_ascii_lowercase(), rest.to_string()),
        _ if repo.contains('/') => (DOCKER_HUB.to_string(), repo.to_string()),
        _ => (DOCKER_HUB.to_string(), format!("library/{repo}")),
    };
    let host = match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        _ => host,
    };
    let valid_component = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
            && c.as_bytes()[0].is_ascii_alphanumeric()
            && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
    };
    path.split('/').all(valid_component).then(|| format!("{host}/{path}"))
}

/// Whether two normalized hosts reach the same registry: equal, or both
/// loopback on the same port.
fn same_registry(a: &str, b: &str) -> bool {
    a == b || (reaches_loopback(a) && reaches_loopback(b) && port_of(a) == port_of(b))
}

/// The port of `host[:port]` (IPv6 in brackets), if it has one.
fn port_of(host: &str) -> Option<&str> {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once("]:").map(|(_, port)| port);
    }
    match host.matches(':').count() {
        1 => host.split_once(':').map(|(_, port)| port),
        _ => None,
    }
}

/// `path` is `prefix` or below it.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// Docker's rule for the first part of a reference: a host when it has a
/// dot or a port, or is `localhost`.
fn looks_like_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

/// `host` without a scheme or trailing slash, lowercased.
pub fn normalize_host(host: &str) -> String {
    let h = host.trim();
    let h = h.strip_prefix("https://").or_else(|| h.strip_prefix("http://")).unwrap_or(h);
    h.trim_end_matches('/').to_ascii_lowercase()
}

/// `host` without its port (and without IPv6 brackets).
pub fn host_without_port(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.matches(':').count() {
        1 => host.split(':').next().unwrap_or(host),
        _ => host,
    }
}

/// Whether a registry host is a loopback *name*: `localhost` or a loopback
/// IP address in its usual spelling (plain HTTP is allowed to these).
pub fn is_loopback(host: &str) -> bool {
    let h = host_without_port(host);
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a host reaches the loopback interface in any spelling: `localhost`
/// (and names under it), 127.0.0.0/8 as the C resolver reads it (`127.1`,
/// `0x7f.0.0.1`, `2130706433`), `::1` and `::ffff:127.x.y.z`.
pub fn reaches_loopback(host: &str) -> bool {
    let h = host_without_port(host).trim_end_matches('.').to_ascii_lowercase();
    if h == "localhost" || h.ends_with(".localhost") {
        return true;
    }
    match h.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Ok(ip) => ip.is_loopback(),
        Err(_) => inet_aton(&h).is_some_and(|a| a >> 24 == 127),
    }
}

/// An IPv4 address as `inet_aton` reads it: one to four parts, each
/// decimal, octal (`0…`) or hex (`0x…`), the last filling the remaining bytes.
fn inet_aton(text: &str) -> Option<u32> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for p in &parts {
        let v = if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            u64::from_str_radix(hex, 16).ok()?
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            p.parse::<u64>().ok()?
        };
        values.push(v);
    }
    let (last, head) = values.split_last()?;
    let mut addr: u64 = 0;
    for (i, v) in head.iter().enumerate() {
        if *v > 255 {
            return None;
        }
        addr |= v << (24 - 8 * i);
    }
    let room = 32 - 8 * head.len() as u32;
    if room < 64 && *last >= (1u64 << room) {
        return None;
    }
    u32::try_from(addr | last).ok()
}

/// The image repository for a service: `host/<namespace or project slug>/<service>`,
/// lowercased and reduced to what a Docker reference allows.
pub fn image_name(host: &str, namespace: Option<&str>, project_slug: &str, service: &str) -> String {
    let host = normalize_host(host);
    let namespace = namespace
        .map(|ns| ns.split('/').map(|c| path_component(c, "")).filter(|c| !c.is_empty()).collect::<Vec<_>>().join("/"))
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| path_component(project_slug, "project"));
    let service = path_component(service, "app");
    format!("{host}/{namespace}/{service}")
}

/// One path component of a reference: `[a-z0-9]+` joined by `.`, `_`, `__`
/// or dashes; anything else becomes a dash. Empty input gives `fallback`.
pub fn path_component(raw: &str, fallback: &str) -> String {
    let lower = raw.trim().to_lowercase();
    let mut out = String::new();
    let mut sep = String::new();
    for c in lower.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if !out.is_empty() && !sep.is_empty() {
                let valid = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|s| s == '-');
                out.push_str(if valid { &sep } else { "-" });
            }
            sep.clear();
            out.push(c);
        } else if c == '.' || c == '_' || c == '-' {
            sep.push(c);
        } else {
            sep.push('-');
        }
    }
    if out.is_empty() {
        fallback.to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn byo(host: &str, namespace: Option<&str>) -> Registry {
        Registry::Byo { host: host.into(), namespace: namespace.map(str::to_string), auth: None }
    }

    fn demo(registry: &Registry) -> ProjectImages {
        ProjectImages::new("demo", registry, SlipwayRegistry::Host("127.0.0.1:5000".into()))
    }

    #[test]
    fn references_are_normalized_the_way_docker_reads_them() {
        assert_eq!(normalize_name("busybox").as_deref(), Some("docker.io/library/busybox"));
        assert_eq!(normalize_name("slipway/busybox:1").as_deref(), Some("docker.io/slipway/busybox"));
        assert_eq!(normalize_name("index.docker.io/slipway/busybox").as_deref(), Some("docker.io/slipway/busybox"));
        assert_eq!(normalize_name("127.0.0.1:5000/demo/api:sha-1@sha256:ab").as_deref(), Some("127.0.0.1:5000/demo/api"));
        assert_eq!(normalize_name("Slipway.Local/demo/api").as_deref(), Some("slipway.local/demo/api"));
        assert_eq!(normalize_name("demo/API"), None);
        assert_eq!(normalize_name("demo//api"), None);
        assert_eq!(normalize_name("/demo"), None);
    }

    #[test]
    fn builds_are_named_inside_the_projects_namespace() {
        assert_eq!(demo(&Registry::None).repository("api", None).unwrap(), "slipway.local/demo/api");
        assert_eq!(demo(&Registry::Native).repository("api", None).unwrap(), "127.0.0.1:5000/demo/api");
        let disabled = ProjectImages::new("demo", &Registry::Native, SlipwayRegistry::Disabled);
        assert_eq!(disabled.repository("api", None).unwrap(), "slipway.local/demo/api");
        assert_eq!(demo(&byo("ghcr.io", Some("acme"))).repository("api", None).unwrap(), "ghcr.io/acme/api");
        assert_eq!(demo(&byo("public.ecr.aws/w7c4", None)).repository("api", None).unwrap(), "public.ecr.aws/w7c4/demo/api");
        // An explicit name inside the namespace is kept.
        assert_eq!(demo(&Registry::None).repository("api", Some("slipway.local/demo/server")).unwrap(), "slipway.local/demo/server");
        assert_eq!(demo(&Registry::Native).repository("api", Some("127.0.0.1:5000/demo/x/y")).unwrap(), "127.0.0.1:5000/demo/x/y");
    }

    #[test]
    fn reserved_names_and_other_projects_repositories_are_refused() {
        let p = demo(&Registry::None).repository("api", Some("slipway/busybox")).unwrap_err();
        assert_eq!(p.path, "services.api.image");
        assert!(p.message.contains("reserved for Slipway's own images"), "{p}");
        assert!(p.message.contains("slipway.local/demo/<name>"), "{p}");
        let p = demo(&Registry::Native).repository("api", Some("127.0.0.1:5000/other/api")).unwrap_err();
        assert!(p.message.contains("project `other`"), "{p}");
        let p = demo(&Registry::None).repository("api", Some("slipway.local/other/api")).unwrap_err();
        assert!(p.message.contains("project `other`"), "{p}");
        assert!(demo(&Registry::None).repository("api", Some("busybox")).is_err());
        let p = demo(&Registry::Native).repository("api", Some("localhost:5000/other/api")).unwrap_err();
        assert!(p.message.contains("project `other`"), "{p}");
        assert!(same_registry("[::1]:5000", "127.0.0.1:5000") && !same_registry("127.0.0.1:5000", "127.0.0.1:5001"));
        for alias in ["127.1:5000", "0x7f.0.0.1:5000", "2130706433:5000", "0177.0.0.1:5000", "[::ffff:127.0.0.1]:5000", "api.localhost:5000"] {
            assert!(same_registry("127.0.0.1:5000", alias), "{alias}");
        }
        assert!(!reaches_loopback("128.0.0.1") && !reaches_loopback("10.0.0.1") && !reaches_loopback("4294967296") && !reaches_loopback("ghcr.io"));
        assert!(reaches_loopback("127.1") && !is_loopback("127.1"), "a loopback name is only the usual spelling");
        // The namespace itself is not a repository of the project.
        assert!(demo(&Registry::None).repository("api", Some("slipway.local/demo")).is_err());
        assert!(reserved_reason("docker.io/slipway/anything").is_some());
        assert!(reserved_reason("slipway.local/demo/api").is_none());
    }

    #[test]
    fn a_registry_of_the_projects_own_may_not_point_into_slipways() {
        let p = demo(&byo("127.0.0.1:5000", Some("other"))).build_namespace().unwrap_err();
        assert_eq!(p.path, "registry.namespace");
        let p = demo(&byo("localhost:5000", Some("other/x"))).build_namespace().unwrap_err();
        assert_eq!(p.path, "registry.namespace");
        assert_eq!(demo(&byo("localhost:5000", Some("demo/x"))).build_namespace().unwrap().as_deref(), Some("localhost:5000/demo/x"));
        // A registry of the project's own on another loopback port is not Slipway's.
        assert_eq!(demo(&byo("127.0.0.1:41591", Some("team"))).build_namespace().unwrap().as_deref(), Some("127.0.0.1:41591/team"));
        assert!(ProjectImages::new("demo", &byo("127.0.0.1:5000", Some("other")), SlipwayRegistry::Unknown).build_namespace().is_ok());
        assert_eq!(demo(&byo("127.0.0.1:5000", None)).build_namespace().unwrap().as_deref(), Some("127.0.0.1:5000/demo"));
        let slipway_elsewhere = ProjectImages::new("demo", &byo("reg.internal:5000", Some("other")), SlipwayRegistry::Host("reg.internal:5000".into()));
        assert!(slipway_elsewhere.build_namespace().is_err());
        assert_eq!(demo(&byo("slipway", Some("demo"))).build_namespace().unwrap_err().path, "registry.host");
        assert_eq!(demo(&byo("slipway.local", Some("demo"))).build_namespace().unwrap_err().path, "registry.host");
    }

    #[test]
    fn ownership_covers_every_namespace_of_the_project_and_nothing_else() {
        let p = demo(&byo("ghcr.io", Some("acme")));
        for mine in ["slipway.local/demo/api:1", "127.0.0.1:5000/demo/api", "localhost:5000/demo/api@sha256:00", "ghcr.io/acme/api:v1"] {
            assert!(p.owns(mine), "{mine}");
        }
        for theirs in ["slipway/busybox:1", "slipway.local/other/api", "127.0.0.1:5000/other/api", "127.0.0.1:5001/demo/api", "demo/api", "busybox", "ghcr.io/other/api", "slipway.local/demo"] {
            assert!(!p.owns(theirs), "{theirs}");
        }
        assert!(is_project_image("slipway.local/demo/api", "demo", &Registry::None, &SlipwayRegistry::Disabled));
        // Not knowing Slipway's registry, any registry host with the slug first passes.
        let unknown = ProjectImages::new("demo", &Registry::Native, SlipwayRegistry::Unknown);
        assert!(unknown.owns("reg.internal:5000/demo/api"));
        assert!(!unknown.owns("reg.internal:5000/other/api"));
        assert!(unknown.check_manifest(&Manifest::default()).is_empty());
    }
}
