//! The Kubernetes objects a deployment applies, rendered from what Slipway
//! knows about it ([`Rendering`]) without talking to any cluster: per
//! service a Deployment (image pinned by digest, `imagePullSecrets`), a
//! Secret holding the values of its secret references, and a Service when
//! the manifest gives a port; per project and namespace one
//! `kubernetes.io/dockerconfigjson` pull Secret. `slipway env render` prints
//! exactly these.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, LocalObjectReference, PodSpec, PodTemplateSpec, Secret,
    SecretKeySelector, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use sha2::{Digest, Sha256};

/// The field manager of every server-side apply Slipway sends.
pub const FIELD_MANAGER: &str = "slipway";
/// `app.kubernetes.io/managed-by` on everything Slipway applies.
pub const MANAGED_BY: &str = "slipway";
/// Prefix of Slipway's own annotations and labels.
pub const ANNOTATION_PREFIX: &str = "slipway.dev/";

/// Registry credentials for the pull Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PullCredential {
    /// Registry host, e.g. `registry.example.com` or `127.0.0.1:5000`.
    pub host: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for PullCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullCredential").field("host", &self.host).field("username", &self.username).finish_non_exhaustive()
    }
}

/// One service as it will run.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceRendering {
    pub service: String,
    /// `<repository>@sha256:…`.
    pub image: String,
    pub digest: String,
    pub command: Option<Vec<String>>,
    /// Values the manifest gives: plain env.
    pub env: BTreeMap<String, String>,
    /// Secret references resolved to their values: written to a Secret.
    pub secret_env: BTreeMap<String, String>,
    /// `(service port, container port)` from the manifest's first port.
    pub port: Option<(i32, i32)>,
}

impl std::fmt::Debug for ServiceRendering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceRendering")
            .field("service", &self.service)
            .field("image", &self.image)
            .field("env", &self.env)
            .field("secret_env", &self.secret_env.keys().collect::<Vec<_>>())
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// Everything the objects of one deployment are rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendering {
    pub namespace: String,
    pub project_slug: String,
    pub environment: String,
    pub deployment_id: String,
    pub release_id: Option<String>,
    pub git_sha: Option<String>,
    /// Usernames whose approvals let the deployment run.
    pub approvals: Vec<String>,
    /// Seconds after which Kubernetes reports a rollout as not progressing.
    pub progress_deadline_seconds: i32,
    pub services: Vec<ServiceRendering>,
    /// Pull credentials for the images' registries (empty: pull anonymously).
    pub pull_credentials: Vec<PullCredential>,
}

/// The objects of one deployment, in the order they are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Objects {
    pub pull_secret: Option<Secret>,
    pub env_secrets: Vec<Secret>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
}

/// A DNS-1123 label made of `parts`: lowercase, `-` for anything else, at
/// most 63 characters (a long name keeps a hash of the whole as its tail).
pub fn object_name(parts: &[&str]) -> String {
    let joined = parts.join("-");
    let mut clean: String =
        joined.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    while clean.contains("--") {
        clean = clean.replace("--", "-");
    }
    let clean = clean.trim_matches('-').to_string();
    if clean.len() <= 63 {
        return clean;
    }
    let hash = hex::encode(&Sha256::digest(joined.as_bytes())[..4]);
    format!("{}-{hash}", clean[..54].trim_end_matches('-'))
}

/// The name of a service's Deployment (and Service, and env Secret prefix).
pub fn workload_name(project_slug: &str, environment: &str, service: &str) -> String {
    object_name(&[project_slug, environment, service])
}

/// The name of the project's pull Secret in a namespace.
pub fn pull_secret_name(project_slug: &str) -> String {
    object_name(&["slipway-pull", project_slug])
}

fn labels(r: &Rendering, service: &str, workload: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), object_name(&[service])),
        ("app.kubernetes.io/instance".to_string(), workload.to_string()),
        ("app.kubernetes.io/part-of".to_string(), object_name(&[&r.project_slug])),
        ("app.kubernetes.io/managed-by".to_string(), MANAGED_BY.to_string()),
        (format!("{ANNOTATION_PREFIX}environment"), object_name(&[&r.environment])),
    ])
}

fn annotations(r: &Rendering, s: &ServiceRendering) -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([
        (format!("{ANNOTATION_PREFIX}deployment"), r.deployment_id.clone()),
        (format!("{ANNOTATION_PREFIX}digest"), s.digest.clone()),
        (format!("{ANNOTATION_PREFIX}approvals"), r.approvals.join(",")),
    ]);
    if let Some(rel) = &r.release_id {
        a.insert(format!("{ANNOTATION_PREFIX}release"), rel.clone());
    }
    if let Some(sha) = &r.git_sha {
        a.insert(format!("{ANNOTATION_PREFIX}git-sha"), sha.clone());
    }
    a
}

/// `{"auths": {host: {username, password, auth}}}`.
fn dockerconfigjson(credentials: &[PullCredential]) -> Vec<u8> {
    let auths: serde_json::Map<String, serde_json::Value> = credentials
        .iter()
        .map(|c| {
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password));
            (c.host.clone(), serde_json::json!({ "username": c.username, "password": c.password, "auth": auth }))
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "auths": auths })).unwrap_or_default()
}

/// Renders the objects of a deployment.
pub fn render(r: &Rendering) -> Objects {
    let pull_name = pull_secret_name(&r.project_slug);
    let pull_secret = (!r.pull_credentials.is_empty()).then(|| Secret {
        metadata: ObjectMeta {
            name: Some(pull_name.clone()),
            namespace: Some(r.namespace.clone()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/part-of".to_string(), object_name(&[&r.project_slug])),
                ("app.kubernetes.io/managed-by".to_string(), MANAGED_BY.to_string()),
            ])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(BTreeMap::from([(".dockerconfigjson".to_string(), ByteString(dockerconfigjson(&r.pull_credentials)))])),
        ..Default::default()
    });
    let mut env_secrets = Vec::new();
    let mut deployments = Vec::new();
    let mut services = Vec::new();
    for s in &r.services {
        let workload = workload_name(&r.project_slug, &r.environment, &s.service);
        let labels = labels(r, &s.service, &workload);
        let selector = BTreeMap::from([("app.kubernetes.io/instance".to_string(), workload.clone())]);
        let env_secret_name = object_name(&[&workload, "env"]);
        let mut env: Vec<EnvVar> =
            s.env.iter().map(|(k, v)| EnvVar { name: k.clone(), value: Some(v.clone()), ..Default::default() }).collect();
        env.extend(s.secret_env.keys().map(|k| EnvVar {
            name: k.clone(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector { name: env_secret_name.clone(), key: k.clone(), optional: Some(false) }),
                ..Default::default()
            }),
            ..Default::default()
        }));
        if !s.secret_env.is_empty() {
            env_secrets.push(Secret {
                metadata: ObjectMeta {
                    name: Some(env_secret_name.clone()),
                    namespace: Some(r.namespace.clone()),
                    labels: Some(labels.clone()),
                    ..Default::default()
                },
                type_: Some("Opaque".into()),
                data: Some(s.secret_env.iter().map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec()))).collect()),
                ..Default::default()
            });
        }
        let container = Container {
            name: object_name(&[&s.service]),
            image: Some(s.image.clone()),
            image_pull_policy: Some("IfNotPresent".into()),
            command: s.command.clone(),
            env: (!env.is_empty()).then_some(env),
            ports: s.port.map(|(_, container)| vec![ContainerPort { container_port: container, ..Default::default() }]),
            ..Default::default()
        };
        let annotations = annotations(r, s);
        deployments.push(Deployment {
            metadata: ObjectMeta {
                name: Some(workload.clone()),
                namespace: Some(r.namespace.clone()),
                labels: Some(labels.clone()),
                annotations: Some(annotations.clone()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(1),
                progress_deadline_seconds: Some(r.progress_deadline_seconds),
                selector: LabelSelector { match_labels: Some(selector.clone()), ..Default::default() },
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    // The old pod keeps serving until the new one is available.
                    rolling_update: Some(RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString::Int(0)),
                        max_surge: Some(IntOrString::Int(1)),
                    }),
                }),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels.clone()),
                        annotations: Some(annotations),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![container],
                        image_pull_secrets: pull_secret.as_ref().map(|_| vec![LocalObjectReference { name: pull_name.clone() }]),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        });
        if let Some((port, target)) = s.port {
            services.push(Service {
                metadata: ObjectMeta {
                    name: Some(workload.clone()),
                    namespace: Some(r.namespace.clone()),
                    labels: Some(labels),
                    ..Default::default()
                },
                spec: Some(ServiceSpec {
                    selector: Some(selector),
                    ports: Some(vec![ServicePort { port, target_port: Some(IntOrString::Int(target)), ..Default::default() }]),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    Objects { pull_secret, env_secrets, deployments, services }
}

/// `(service port, container port)` of a manifest port (`"3000"`,
/// `"8080:80"`, `"53/udp"`); only TCP ports make a Service.
pub fn parse_port(port: &str) -> Option<(i32, i32)> {
    if port.contains('/') {
        return None;
    }
    let mut parts = port.rsplit(':');
    let container: i32 = parts.next()?.parse().ok()?;
    let published: i32 = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => container,
    };
    let ok = |p: i32| (1..=65535).contains(&p);
    (ok(container) && ok(published)).then_some((published, container))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_dns_labels_even_when_long() {
        assert_eq!(workload_name("demo", "prod", "api_v2"), "demo-prod-api-v2");
        let long = workload_name(&"a".repeat(40), "production", &"b".repeat(30));
        assert!(long.len() <= 63, "{long}");
        assert_ne!(long, workload_name(&"a".repeat(40), "production", &"b".repeat(31)));
    }

    #[test]
    fn manifest_ports_become_service_and_container_ports() {
        assert_eq!(parse_port("3000"), Some((3000, 3000)));
        assert_eq!(parse_port("8080:80"), Some((8080, 80)));
        assert_eq!(parse_port("127.0.0.1:8080:80"), Some((8080, 80)));
        assert_eq!(parse_port("53/udp"), None);
        assert_eq!(parse_port("0"), None);
    }
}
