//! The normalised manifest: what [`super::parse`] produces from either
//! spelling, and what the API, the store and the canonical hash read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::paths::{join_parts, lexical};

/// A parsed, normalised manifest. Both accepted spellings produce the same value.
///
/// Serialised (for the API and storage), optional fields that are absent and empty
/// collections are left out; [`Manifest::canonical_json`] uses exactly the same shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Optional project name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where built images are pushed. Absent in the YAML means the built-in registry.
    #[serde(default)]
    pub registry: Registry,
    /// Services by name (sorted).
    pub services: BTreeMap<String, Service>,
    /// Environments in promotion order (e.g. test, staging, production).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<Environment>,
    /// Pipelines by name (sorted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pipelines: BTreeMap<String, Pipeline>,
}

/// Where built images are pushed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Registry {
    /// Slipway's built-in registry (`registry: slipway`, also spelt `eve`, `local`,
    /// `native`); credentials are handled internally.
    #[default]
    Native,
    /// Do not push images (`registry: none`).
    None,
    /// Bring your own registry.
    Byo {
        /// Registry host, possibly with a path (e.g. `public.ecr.aws/w7c4v0w3`).
        host: String,
        /// Namespace or organisation inside the registry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// Names of the secrets holding the credentials; `None` pushes anonymously.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth: Option<RegistryAuth>,
    },
}

/// Names of the project secrets that hold registry credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryAuth {
    /// Secret holding the user name (default [`DEFAULT_USERNAME_SECRET`]).
    pub username_secret: String,
    /// Secret holding the password or token (default [`DEFAULT_TOKEN_SECRET`]).
    pub token_secret: String,
}

/// One service of the project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Image name. With `build`, the repository to push to (no tag); without, the image
    /// to run. When absent, the name is derived from the service key and the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How to build the image; `None` for services that only run an existing image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<ServiceBuild>,
    /// Runtime environment. `None` values (`- KEY` in list form, `KEY: null` in map form)
    /// must be provided at deploy time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
    /// Exposed ports, normalised: `"3000"`, `"8080:80"`, `"53/udp"` (`/tcp` is dropped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Command overriding the image's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// How a service's image is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceBuild {
    /// Build context, relative to the repository root, normalised: no `./`, no trailing
    /// `/`, never escaping the repository; `.` is the root.
    pub context: String,
    /// Dockerfile, relative to the context (may start with `../` but stays inside the
    /// repository). Default [`DEFAULT_DOCKERFILE`].
    pub dockerfile: String,
    /// Build arguments (`ARG`s).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// Multi-stage target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl ServiceBuild {
    /// The Dockerfile's path relative to the repository root, e.g. `api/Dockerfile`.
    pub fn dockerfile_path(&self) -> String {
        if self.context == "." {
            join_parts(&lexical(&self.dockerfile).1)
        } else {
            let joined = format!("{}/{}", self.context, self.dockerfile);
            join_parts(&lexical(&joined).1)
        }
    }
}

/// A deployment environment, one stop on the promotion path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// Environment name, unique in the manifest.
    pub name: String,
    /// Approval gate; `None` deploys without approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// Where deployments run. Default: containers on the local Docker engine.
    #[serde(default)]
    pub target: DeployTarget,
}

/// An approval gate in front of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Number of approvals needed (at least 1).
    pub required: u32,
    /// Users allowed to approve, sorted; empty means any user with access.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Delay after approval before the deployment starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timer_seconds: Option<u64>,
}

/// Where an environment's deployments run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeployTarget {
    /// Containers on the Docker engine Slipway uses.
    #[default]
    Docker,
    /// A Kubernetes cluster.
    Kubernetes {
        /// Namespace to deploy into (the cluster default when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        /// The registered cluster to deploy to (`default` when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster: Option<String>,
    },
}

/// A pipeline: steps connected by `depends_on`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipeline {
    /// Steps in the order written.
    pub steps: Vec<PipelineStep>,
}

/// One step of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineStep {
    /// Step name, unique in its pipeline.
    pub name: String,
    /// What the step does.
    pub action: StepAction,
    /// Steps that must succeed first (sorted, without duplicates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// The single action of a pipeline step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepAction {
    /// Build images; outputs `build_id` and `image_digests`.
    Build {
        /// Services to build (sorted); `None` builds every service with a `build`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        services: Option<Vec<String>>,
    },
    /// Create a release from the upstream build.
    Release {
        /// Release tag, e.g. `v1.0.0`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
        /// Semantic version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    /// Deploy the upstream release to an environment.
    Deploy {
        /// Environment name; always one defined in the manifest.
        environment: String,
    },
}

impl StepAction {
    /// The action's name: `build`, `release` or `deploy`.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Build { .. } => "build",
            Self::Release { .. } => "release",
            Self::Deploy { .. } => "deploy",
        }
    }
}

impl Pipeline {
    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&PipelineStep> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// Steps in an order where every step comes after the steps it depends on; among
    /// steps that are ready together, the one written first comes first. (Dependencies
    /// on unknown steps are ignored; a validated manifest has none, and no cycles.)
    pub fn execution_order(&self) -> Vec<&PipelineStep> {
        let index: BTreeMap<&str, usize> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let mut remaining: Vec<usize> = self
            .steps
            .iter()
            .map(|s| {
                s.depends_on
                    .iter()
                    .filter(|d| index.contains_key(d.as_str()))
                    .count()
            })
            .collect();
        let mut done = vec![false; self.steps.len()];
        let mut order = Vec::with_capacity(self.steps.len());
        while order.len() < self.steps.len() {
            // The first not-yet-scheduled step with no pending dependency; if a cycle
            // leaves none, take the first remaining step so every step appears once.
            let next = (0..self.steps.len())
                .find(|&i| !done[i] && remaining[i] == 0)
                .or_else(|| (0..self.steps.len()).find(|&i| !done[i]));
            let Some(i) = next else { break };
            done[i] = true;
            order.push(&self.steps[i]);
            for (j, step) in self.steps.iter().enumerate() {
                if !done[j] && step.depends_on.iter().any(|d| *d == self.steps[i].name) {
                    remaining[j] = remaining[j].saturating_sub(1);
                }
            }
        }
        order
    }
}

impl Manifest {
    /// Service names, sorted.
    pub fn service_names(&self) -> Vec<&str> {
        self.services.keys().map(String::as_str).collect()
    }

    /// Names of the services that have a `build` section, sorted.
    pub fn buildable_service_names(&self) -> Vec<&str> {
        self.services
            .iter()
            .filter(|(_, s)| s.build.is_some())
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// Environment names in promotion order.
    pub fn environment_order(&self) -> Vec<&str> {
        self.environments.iter().map(|e| e.name.as_str()).collect()
    }

    /// The environment called `name`.
    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.name == name)
    }

    /// The environment after `name` on the promotion path, if any.
    pub fn next_environment(&self, name: &str) -> Option<&Environment> {
        let i = self.environments.iter().position(|e| e.name == name)?;
        self.environments.get(i + 1)
    }
}
