//! The project manifest: what to build, where to push it, and how releases are promoted.
//!
//! The manifest lives at [`MANIFEST_PATH`] (`.slipway/manifest.yaml`) in the repository.
//! Two spellings are accepted and normalised into one [`Manifest`]:
//!
//! ```yaml
//! # Eve shape
//! registry: slipway                # or "eve" / "local" / "native", "none", or {host, namespace, auth}
//! services:
//!   api:
//!     build:
//!       context: ./apps/api
//!       dockerfile: Dockerfile      # relative to the context (a path from the repo root
//!       args: { VERSION: "1.2" }    # that lies inside the context is accepted too)
//!       target: release
//! environments:
//!   - name: staging
//!   - name: production
//!     approval: { required: 1, approvers: [alice, bob] }
//!     target: { kind: kubernetes, namespace: prod }
//! pipelines:
//!   deploy:
//!     steps:
//!       - name: build
//!         build: {}
//!       - name: release
//!         depends_on: [build]
//!         release: { tag: v1.0.0 }
//!       - name: ship
//!         depends_on: [release]
//!         deploy: { environment: staging }    # or Eve's `action: {type: deploy, env_name: staging}`
//! ```
//!
//! ```yaml
//! # Convox shorthand
//! services:
//!   api:
//!     build: ./apps/api
//!     manifest: Dockerfile.production
//! ```
//!
//! [`parse`] walks the YAML tree by hand so that every problem is reported with its path
//! (`services.api.build.context: ...`) and all problems are collected in one pass.
//! [`check_paths`] checks build contexts and Dockerfiles against a [`RepoView`], and
//! [`validate`] does both. [`Manifest::canonical_hash`] identifies the *meaning* of a
//! manifest: formatting, comments, key order and the choice of spelling do not change it.
//!
//! Keys starting with `x-` (at the top level, in services, environments and steps) are
//! ignored, as in Compose files, and do not affect the hash.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};

/// Where the manifest lives, relative to the repository root.
pub const MANIFEST_PATH: &str = ".slipway/manifest.yaml";

/// Largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

/// Most YAML nodes a manifest may have, counting each use of an alias as its whole
/// anchored node again (so an alias bomb stops here, before anything is expanded).
pub const MAX_MANIFEST_NODES: usize = 10_000;

/// Deepest nesting of mappings and lists a manifest may have.
pub const MAX_MANIFEST_DEPTH: usize = 32;

/// Dockerfile name used when a service does not name one.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";

/// Secret holding the registry user name when `registry.auth.username_secret` is not given.
pub const DEFAULT_USERNAME_SECRET: &str = "REGISTRY_USERNAME";

/// Secret holding the registry token when `registry.auth.token_secret` is not given.
pub const DEFAULT_TOKEN_SECRET: &str = "REGISTRY_PASSWORD";

/// Longest approval wait timer accepted (30 days), in seconds.
pub const MAX_WAIT_TIMER_SECONDS: u64 = 30 * 24 * 60 * 60;

// ---------------------------------------------------------------------------------------
// The normalised manifest
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------------------

/// One thing wrong with a manifest, at a path such as `services.api.build.context`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Where: dotted keys and `[index]`es from the top of the document; empty for the
    /// document as a whole (e.g. a YAML syntax error). Keys that are not plain words are
    /// quoted: `services["My App"]`.
    pub path: String,
    /// What is wrong and, where possible, what was expected.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a manifest (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ManifestErrors(pub Vec<Problem>);

impl ManifestErrors {
    /// The problems, in document order (path checks last).
    pub fn problems(&self) -> &[Problem] {
        &self.0
    }
}

impl fmt::Display for ManifestErrors {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------

/// Parses and checks a manifest, reporting every problem found (not just the first).
pub fn parse(yaml: &str) -> Result<Manifest, ManifestErrors> {
    let (manifest, problems) = parse_partial(yaml);
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(ManifestErrors(problems))
    }
}

/// The canonical hash of a manifest's text: [`parse`] then [`Manifest::canonical_hash`].
pub fn hash_yaml(yaml: &str) -> Result<String, ManifestErrors> {
    parse(yaml).map(|m| m.canonical_hash())
}

/// Read-only view of a repository checkout, for [`check_paths`].
///
/// Paths are relative to the repository root, normalised (no leading `./`, no `..`),
/// with `/` separators; `.` is the root itself.
pub trait RepoView {
    /// Whether `rel` is a directory.
    fn is_dir(&self, rel: &str) -> bool;
    /// Whether `rel` is a regular file.
    fn is_file(&self, rel: &str) -> bool;
}

/// Checks that every build context is a directory and every Dockerfile a file.
pub fn check_paths(manifest: &Manifest, repo: &dyn RepoView) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, service) in &manifest.services {
        let Some(build) = &service.build else {
            continue;
        };
        let base = join_key(&join_key("services", name), "build");
        let context_ok = repo.is_dir(&build.context);
        if !context_ok {
            problems.push(Problem::new(
                join_key(&base, "context"),
                "directory not found",
            ));
        }
        // Inside a missing context the Dockerfile is missing too; say it once.
        if context_ok || build.dockerfile.starts_with("../") {
            let path = build.dockerfile_path();
            if !repo.is_file(&path) {
                problems.push(Problem::new(
                    join_key(&base, "dockerfile"),
                    format!("file not found (looked for {path})"),
                ));
            }
        }
    }
    problems
}

/// [`parse`] and [`check_paths`] together, reporting every problem of both in one list.
/// Path checks also run on the services that parsed cleanly when others did not.
pub fn validate(yaml: &str, repo: &dyn RepoView) -> Result<Manifest, ManifestErrors> {
    let (manifest, mut problems) = parse_partial(yaml);
    problems.extend(check_paths(&manifest, repo));
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(ManifestErrors(problems))
    }
}

/// Parses as much as possible: the manifest built from the parts that are valid, and
/// every problem found.
fn parse_partial(yaml: &str) -> (Manifest, Vec<Problem>) {
    let mut parser = Parser::default();
    let manifest = parser.manifest(yaml);
    (manifest, parser.problems)
}

// ---------------------------------------------------------------------------------------
// The parser: walks a serde_yaml::Value, collecting problems with their paths
// ---------------------------------------------------------------------------------------

const TOP_LEVEL_KEYS: &[&str] = &["name", "registry", "services", "environments", "pipelines"];
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
const REGISTRY_KEYS: &[&str] = &["host", "namespace", "auth"];
const AUTH_KEYS: &[&str] = &["username_secret", "token_secret"];
const ENVIRONMENT_KEYS: &[&str] = &["name", "approval", "target"];
const APPROVAL_KEYS: &[&str] = &["required", "approvers", "wait_timer_seconds"];
const TARGET_KEYS: &[&str] = &["kind", "namespace", "cluster"];
const PIPELINE_KEYS: &[&str] = &["steps"];
const STEP_KEYS: &[&str] = &["name", "depends_on", "build", "release", "deploy", "action"];
const STEP_ACTIONS: &[&str] = &["build", "release", "deploy"];
const BUILD_STEP_KEYS: &[&str] = &["services"];
const RELEASE_STEP_KEYS: &[&str] = &["tag", "version"];
const DEPLOY_STEP_KEYS: &[&str] = &["environment", "env_name"];
const EVE_BUILD_KEYS: &[&str] = &["type", "services"];
const EVE_RELEASE_KEYS: &[&str] = &["type", "tag", "version"];
const EVE_DEPLOY_KEYS: &[&str] = &["type", "env_name", "environment"];

const SLUG_RULE: &str =
    "must start with a lowercase letter and contain only lowercase letters, digits and `-` (at most 63 characters)";
const VAR_RULE: &str = "must be letters, digits and `_`, not starting with a digit";
const NEEDS_BUILD_OR_IMAGE: &str =
    "a service needs `build` (a directory to build, e.g. `build: ./api`; `build: .` for the repository root) or `image` (an image to run)";

/// The string-keyed entries of a YAML mapping, in document order.
struct Fields<'a> {
    entries: Vec<(&'a str, &'a Value)>,
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// Facts about a partly parsed manifest that later sections check references against.
struct Known<'a> {
    /// Every service key, with whether it has a `build` key.
    services: BTreeMap<&'a str, bool>,
    /// Every environment name.
    environments: Vec<String>,
}

#[derive(Default)]
struct Parser {
    problems: Vec<Problem>,
}

impl Parser {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    // ----- generic helpers ---------------------------------------------------------------

    /// The entries of a mapping, reporting keys that are not strings.
    fn entries<'a>(&mut self, path: &str, map: &'a Mapping) -> Fields<'a> {
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in map {
            match k {
                Value::String(s) => entries.push((s.as_str(), v)),
                other => self.problem(
                    path,
                    format!("keys must be strings, found {}", describe(other)),
                ),
            }
        }
        Fields { entries }
    }

    /// The entries of `v`, which must be a mapping (`expected` describes it otherwise).
    fn mapping<'a>(&mut self, path: &str, v: &'a Value, expected: &str) -> Option<Fields<'a>> {
        match v {
            Value::Mapping(m) => Some(self.entries(path, m)),
            other => {
                self.problem(
                    path,
                    format!("expected {expected}, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// Reports keys outside `allowed` (ignoring `x-` extension keys), suggesting the
    /// nearest allowed key.
    fn check_keys(&mut self, path: &str, fields: &Fields<'_>, allowed: &[&str]) {
        for (k, _) in &fields.entries {
            if allowed.contains(k) || k.starts_with("x-") {
                continue;
            }
            let mut msg = format!("unknown key `{k}`");
            if let Some(s) = suggest(k, allowed) {
                msg.push_str(&format!("; did you mean `{s}`?"));
            }
            msg.push_str(&format!(" (expected one of: {})", allowed.join(", ")));
            self.problem(&join_key(path, k), msg);
        }
    }

    /// A string, which must not be empty or only whitespace.
    fn string(&mut self, path: &str, v: &Value) -> Option<String> {
        match v {
            Value::String(s) if s.trim().is_empty() => {
                self.problem(path, "must not be empty");
                None
            }
            Value::String(s) => Some(s.clone()),
            other => {
                self.problem(
                    path,
                    format!("expected a string, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A string without whitespace (names, tags, hosts).
    fn word(&mut self, path: &str, v: &Value) -> Option<String> {
        let s = self.string(path, v)?;
        if s.chars().any(char::is_whitespace) {
            self.problem(path, format!("`{s}` must not contain spaces"));
            return None;
        }
        Some(s)
    }

    /// A name matching `^[a-z][a-z0-9-]{0,62}$`.
    fn slug(&mut self, path: &str, v: &Value, what: &str) -> Option<String> {
        let s = self.string(path, v)?;
        if !is_slug(&s) {
            self.problem(path, format!("invalid {what} `{s}`: {SLUG_RULE}"));
            return None;
        }
        Some(s)
    }

    /// A scalar (string, number or boolean) as a string.
    fn scalar(&mut self, path: &str, v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.problem(
                    path,
                    format!(
                        "expected a string, number or boolean, found {}",
                        describe(other)
                    ),
                );
                None
            }
        }
    }

    /// A non-negative integer no larger than `max`.
    fn integer(&mut self, path: &str, v: &Value, max: u64) -> Option<u64> {
        match v {
            Value::Number(n) => match n.as_u64() {
                Some(i) if i <= max => Some(i),
                Some(i) => {
                    self.problem(path, format!("{i} is too large; the maximum is {max}"));
                    None
                }
                None => {
                    self.problem(
                        path,
                        format!("expected a whole number of at least 0, found {n}"),
                    );
                    None
                }
            },
            other => {
                self.problem(
                    path,
                    format!("expected a whole number, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A list of strings; a single string is accepted as a list of one.
    fn string_list(&mut self, path: &str, v: &Value) -> Vec<(String, String)> {
        match v {
            Value::String(_) => self
                .string(path, v)
                .map(|s| (path.to_owned(), s))
                .into_iter()
                .collect(),
            Value::Sequence(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let p = join_index(path, i);
                    self.string(&p, item).map(|s| (p, s))
                })
                .collect(),
            other => {
                self.problem(
                    path,
                    format!("expected a list of names, found {}", describe(other)),
                );
                Vec::new()
            }
        }
    }

    /// `KEY: value` pairs given as a mapping or as a list of `KEY=value` (or bare `KEY`
    /// when `allow_unset`) strings.
    fn key_values(
        &mut self,
        path: &str,
        v: &Value,
        what: &str,
        allow_unset: bool,
    ) -> BTreeMap<String, Option<String>> {
        let mut out = BTreeMap::new();
        match v {
            Value::Null => {}
            Value::Mapping(m) => {
                let fields = self.entries(path, m);
                for (k, val) in fields.entries {
                    let p = join_key(path, k);
                    if !is_var_name(k) {
                        self.problem(&p, format!("invalid {what} name `{k}`: {VAR_RULE}"));
                        continue;
                    }
                    let value = match val {
                        Value::Null if allow_unset => None,
                        Value::Null => {
                            self.problem(&p, format!("{what} `{k}` needs a value"));
                            continue;
                        }
                        other => match self.scalar(&p, other) {
                            Some(s) => Some(s),
                            None => continue,
                        },
                    };
                    out.insert(k.to_owned(), value);
                }
            }
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = join_index(path, i);
                    let Some(s) = self.string(&p, item) else {
                        continue;
                    };
                    let (k, value) = match s.split_once('=') {
                        Some((k, val)) => (k.to_owned(), Some(val.to_owned())),
                        None => (s.clone(), None),
                    };
                    if !is_var_name(&k) {
                        self.problem(
                            &p,
                            format!("invalid {what} name `{k}`: {VAR_RULE} (write `NAME=value`)"),
                        );
                        continue;
                    }
                    if value.is_none() && !allow_unset {
                        self.problem(&p, format!("{what} `{k}` needs a value: write `{k}=value`"));
                        continue;
                    }
                    if out.insert(k.clone(), value).is_some() {
                        self.problem(&p, format!("{what} `{k}` is given more than once"));
                    }
                }
            }
            other => self.problem(
                path,
                format!(
                    "expected a mapping of {what}s or a list of `NAME=value`, found {}",
                    describe(other)
                ),
            ),
        }
        out
    }

    // ----- top level ---------------------------------------------------------------------

    fn manifest(&mut self, yaml: &str) -> Manifest {
        let mut m = Manifest::default();
        if yaml.len() > MAX_MANIFEST_BYTES {
            self.problem(
                "",
                format!(
                    "the manifest is {} bytes; the limit is {MAX_MANIFEST_BYTES} bytes",
                    yaml.len()
                ),
            );
            return m;
        }
        if let Err(exceeded) = crate::yaml_budget::check(yaml, MAX_MANIFEST_NODES, MAX_MANIFEST_DEPTH) {
            self.problem("", exceeded.to_string());
            return m;
        }
        let mut root: Value = match serde_yaml::from_str(yaml) {
            Ok(v) => v,
            Err(e) => {
                self.problem("", yaml_error_message(&e));
                return m;
            }
        };
        if let Err(e) = root.apply_merge() {
            self.problem("", format!("invalid YAML merge key (`<<`): {e}"));
            return m;
        }
        let fields = match &root {
            Value::Null => {
                self.problem(
                    "",
                    "the manifest is empty; it needs at least `services`, e.g. `services: {api: {build: ./api}}`",
                );
                return m;
            }
            Value::Mapping(map) => self.entries("", map),
            other => {
                self.problem(
                    "",
                    format!(
                        "expected a mapping with `services` at the top level, found {}",
                        describe(other)
                    ),
                );
                return m;
            }
        };
        self.check_keys("", &fields, TOP_LEVEL_KEYS);

        if let Some(v) = fields.get("name") {
            m.name = self.slug("name", v, "project name");
        }
        if let Some(v) = fields.get("registry") {
            m.registry = self.registry("registry", v);
        }

        let mut known = Known {
            services: BTreeMap::new(),
            environments: Vec::new(),
        };
        match fields.get("services") {
            Some(v) => m.services = self.services("services", v, &mut known),
            None => self.problem(
                "services",
                "required: list the services to build, e.g. `services: {api: {build: ./api}}`",
            ),
        }
        if let Some(v) = fields.get("environments") {
            m.environments = self.environments("environments", v);
            known.environments = m.environments.iter().map(|e| e.name.clone()).collect();
        }
        if let Some(v) = fields.get("pipelines") {
            m.pipelines = self.pipelines("pipelines", v, &known);
        }
        m
    }

    // ----- registry ----------------------------------------------------------------------

    fn registry(&mut self, path: &str, v: &Value) -> Registry {
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

    // ----- services ----------------------------------------------------------------------

    fn services<'a>(
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

    // ----- environments ------------------------------------------------------------------

    fn environments(&mut self, path: &str, v: &Value) -> Vec<Environment> {
        let mut out: Vec<Environment> = Vec::new();
        // Name → path where it was first defined.
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut add = |me: &mut Self, name_path: String, env: Environment| {
            if let Some(first) = seen.get(&env.name) {
                me.problem(
                    &name_path,
                    format!(
                        "duplicate environment `{}` (already defined at {first})",
                        env.name
                    ),
                );
            } else {
                seen.insert(env.name.clone(), name_path);
                out.push(env);
            }
        };
        match v {
            Value::Null => {}
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    let ipath = join_index(path, i);
                    match item {
                        // `- staging` is an environment with defaults.
                        Value::String(_) => {
                            if let Some(name) = self.slug(&ipath, item, "environment name") {
                                add(self, ipath, Environment::named(name));
                            }
                        }
                        Value::Mapping(map) => {
                            let fields = self.entries(&ipath, map);
                            let name_path = join_key(&ipath, "name");
                            let name = match fields.get("name") {
                                Some(n) => self.slug(&name_path, n, "environment name"),
                                None => {
                                    self.problem(
                                        &name_path,
                                        "required: the environment's name, e.g. `staging`",
                                    );
                                    None
                                }
                            };
                            let env = self.environment_body(&ipath, &fields, name);
                            if let Some(env) = env {
                                add(self, name_path, env);
                            }
                        }
                        other => self.problem(
                            &ipath,
                            format!(
                                "expected an environment name or a mapping with `name`, found {}",
                                describe(other)
                            ),
                        ),
                    }
                }
            }
            Value::Mapping(map) => {
                let fields = self.entries(path, map);
                for (key, body) in fields.entries {
                    let epath = join_key(path, key);
                    let name = if is_slug(key) {
                        Some(key.to_owned())
                    } else {
                        self.problem(
                            &epath,
                            format!("invalid environment name `{key}`: {SLUG_RULE}"),
                        );
                        None
                    };
                    let env = match body {
                        Value::Null => name.map(Environment::named),
                        Value::Mapping(m) => {
                            let body_fields = self.entries(&epath, m);
                            if let Some(n) = body_fields.get("name") {
                                if n.as_str() != Some(key) {
                                    self.problem(
                                        &join_key(&epath, "name"),
                                        format!("the name comes from the key `{key}`; remove `name` or make it match"),
                                    );
                                }
                            }
                            self.environment_body(&epath, &body_fields, name)
                        }
                        other => {
                            self.problem(
                                &epath,
                                format!("expected a mapping, found {}", describe(other)),
                            );
                            None
                        }
                    };
                    if let Some(env) = env {
                        add(self, epath, env);
                    }
                }
            }
            other => self.problem(
                path,
                format!(
                    "expected a list of environments in promotion order, found {}",
                    describe(other)
                ),
            ),
        }
        out
    }

    /// The fields of one environment other than its name.
    fn environment_body(
        &mut self,
        path: &str,
        fields: &Fields<'_>,
        name: Option<String>,
    ) -> Option<Environment> {
        self.check_keys(path, fields, ENVIRONMENT_KEYS);
        let approval = fields
            .get("approval")
            .and_then(|a| self.approval(&join_key(path, "approval"), a));
        let target = match fields.get("target") {
            Some(t) => self.target(&join_key(path, "target"), t),
            None => DeployTarget::Docker,
        };
        Some(Environment {
            name: name?,
            approval,
            target,
        })
    }

    fn approval(&mut self, path: &str, v: &Value) -> Option<Approval> {
        let fields = match v {
            Value::Null | Value::Bool(false) => return None,
            Value::Bool(true) => {
                return Some(Approval {
                    required: 1,
                    approvers: Vec::new(),
                    wait_timer_seconds: None,
                })
            }
            other => self.mapping(
                path,
                other,
                "a mapping with `required` and optional `approvers`",
            )?,
        };
        self.check_keys(path, &fields, APPROVAL_KEYS);
        let required_path = join_key(path, "required");
        let required = match fields.get("required") {
            None => Some(1),
            Some(r) => match self.integer(&required_path, r, u64::from(u32::MAX)) {
                Some(0) => {
                    self.problem(
                        &required_path,
                        "must be at least 1; remove `approval` to deploy without approval",
                    );
                    None
                }
                Some(n) => u32::try_from(n).ok(),
                None => None,
            },
        };
        let mut approvers: Vec<String> = Vec::new();
        if let Some(list) = fields.get("approvers") {
            let apath = join_key(path, "approvers");
            if let Value::Sequence(items) = list {
                for (i, item) in items.iter().enumerate() {
                    let p = join_index(&apath, i);
                    if let Some(user) = self.word(&p, item) {
                        if approvers.contains(&user) {
                            self.problem(&p, format!("approver `{user}` is listed more than once"));
                        } else {
                            approvers.push(user);
                        }
                    }
                }
                if let Some(req) = required {
                    // Only count well-formed names; malformed ones were reported above.
                    if usize::try_from(req).map_or(true, |r| r > approvers.len())
                        && approvers.len() == items.len()
                    {
                        self.problem(
                            &required_path,
                            format!(
                                "{req} approval{} required but only {} approver{} named in `approvers`",
                                if req == 1 { " is" } else { "s are" },
                                approvers.len(),
                                if approvers.len() == 1 { " is" } else { "s are" },
                            ),
                        );
                    }
                }
            } else {
                self.problem(
                    &apath,
                    format!("expected a list of user names, found {}", describe(list)),
                );
            }
        }
        approvers.sort();
        let wait_timer_seconds = fields
            .get("wait_timer_seconds")
            .and_then(|w| {
                self.integer(
                    &join_key(path, "wait_timer_seconds"),
                    w,
                    MAX_WAIT_TIMER_SECONDS,
                )
            })
            .filter(|&w| w > 0);
        Some(Approval {
            required: required?,
            approvers,
            wait_timer_seconds,
        })
    }

    fn target(&mut self, path: &str, v: &Value) -> DeployTarget {
        let kind_of = |me: &mut Self, p: &str, s: &str| -> Option<DeployTarget> {
            match s {
                "docker" => Some(DeployTarget::Docker),
                "kubernetes" | "k8s" => Some(DeployTarget::Kubernetes { namespace: None, cluster: None }),
                other => {
                    me.problem(
                        p,
                        format!(
                            "unknown deploy target `{other}`; expected `docker` or `kubernetes`"
                        ),
                    );
                    None
                }
            }
        };
        match v {
            Value::String(s) => kind_of(self, path, s).unwrap_or_default(),
            Value::Mapping(map) => {
                let fields = self.entries(path, map);
                self.check_keys(path, &fields, TARGET_KEYS);
                let kpath = join_key(path, "kind");
                let kind = match fields.get("kind") {
                    Some(k) => self
                        .string(&kpath, k)
                        .and_then(|s| kind_of(self, &kpath, &s)),
                    None => {
                        self.problem(&kpath, "required: `docker` or `kubernetes`");
                        None
                    }
                };
                let npath = join_key(path, "namespace");
                let namespace = fields.get("namespace").and_then(|n| {
                    let ns = self.string(&npath, n)?;
                    if !is_dns_label(&ns) {
                        self.problem(
                            &npath,
                            format!("invalid namespace `{ns}`: lowercase letters, digits and `-`, starting and ending with a letter or digit (at most 63 characters)"),
                        );
                        return None;
                    }
                    Some(ns)
                });
                let cpath = join_key(path, "cluster");
                let cluster = fields.get("cluster").and_then(|c| {
                    let name = self.string(&cpath, c)?;
                    if !is_dns_label(&name) || !name.starts_with(|ch: char| ch.is_ascii_lowercase()) {
                        self.problem(&cpath, format!("invalid cluster name `{name}`: lowercase letters, digits and `-`, starting with a letter (at most 63 characters)"));
                        return None;
                    }
                    Some(name)
                });
                match kind {
                    Some(DeployTarget::Kubernetes { .. }) => DeployTarget::Kubernetes { namespace, cluster },
                    Some(DeployTarget::Docker) => {
                        if fields.has("namespace") {
                            self.problem(&npath, "`namespace` applies only to `kind: kubernetes`");
                        }
                        if fields.has("cluster") {
                            self.problem(&cpath, "`cluster` applies only to `kind: kubernetes`");
                        }
                        DeployTarget::Docker
                    }
                    None => DeployTarget::Docker,
                }
            }
            other => {
                self.problem(
                    path,
                    format!(
                        "expected `docker`, `kubernetes`, or a mapping with `kind`, found {}",
                        describe(other)
                    ),
                );
                DeployTarget::Docker
            }
        }
    }

    // ----- pipelines ---------------------------------------------------------------------

    fn pipelines(
        &mut self,
        path: &str,
        v: &Value,
        known: &Known<'_>,
    ) -> BTreeMap<String, Pipeline> {
        let mut out = BTreeMap::new();
        let Some(fields) = self.mapping(path, v, "a mapping of pipeline names to pipelines") else {
            return out;
        };
        for (name, body) in fields.entries {
            let ppath = join_key(path, name);
            if !is_slug(name) {
                self.problem(
                    &ppath,
                    format!("invalid pipeline name `{name}`: {SLUG_RULE}"),
                );
            }
            let Some(body_fields) = self.mapping(&ppath, body, "a mapping with `steps`") else {
                continue;
            };
            self.check_keys(&ppath, &body_fields, PIPELINE_KEYS);
            let spath = join_key(&ppath, "steps");
            let steps = match body_fields.get("steps") {
                Some(Value::Sequence(items)) if items.is_empty() => {
                    self.problem(&spath, "a pipeline needs at least one step");
                    Vec::new()
                }
                Some(Value::Sequence(items)) => self.steps(&spath, items, known),
                Some(other) => {
                    self.problem(
                        &spath,
                        format!("expected a list of steps, found {}", describe(other)),
                    );
                    Vec::new()
                }
                None => {
                    self.problem(
                        &spath,
                        "required: a list of steps, e.g. `[{name: build, build: {}}]`",
                    );
                    Vec::new()
                }
            };
            out.insert(name.to_owned(), Pipeline { steps });
        }
        out
    }

    fn steps(&mut self, path: &str, items: &[Value], known: &Known<'_>) -> Vec<PipelineStep> {
        // Every step's name (None if missing or invalid), in order, for reference checks.
        let mut names: Vec<Option<String>> = Vec::with_capacity(items.len());
        // (step index, path of the entry, name) of every depends_on entry.
        let mut deps: Vec<(usize, String, String)> = Vec::new();
        let mut steps: Vec<PipelineStep> = Vec::new();

        for (i, item) in items.iter().enumerate() {
            let ipath = join_index(path, i);
            let Some(fields) =
                self.mapping(&ipath, item, "a step: a mapping with `name` and an action")
            else {
                names.push(None);
                continue;
            };
            let name_path = join_key(&ipath, "name");
            let name = match fields.get("name") {
                Some(n) => self.slug(&name_path, n, "step name"),
                None => {
                    self.problem(&name_path, "required: the step's name, e.g. `build`");
                    None
                }
            };
            if let Some(n) = &name {
                if let Some(first) = names.iter().position(|m| m.as_deref() == Some(n.as_str())) {
                    self.problem(
                        &name_path,
                        format!(
                            "duplicate step `{n}` (already defined at {})",
                            join_index(path, first)
                        ),
                    );
                }
            }
            names.push(name.clone());

            let mut unknown = false;
            for (k, _) in &fields.entries {
                if STEP_KEYS.contains(k) || k.starts_with("x-") {
                    continue;
                }
                unknown = true;
                let mut msg = format!("unknown step action or key `{k}`");
                if let Some(s) = suggest(k, STEP_KEYS) {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                }
                msg.push_str(
                    " (a step has `name`, optional `depends_on`, and exactly one action: `build`, `release` or `deploy`)",
                );
                self.problem(&join_key(&ipath, k), msg);
            }

            let actions: Vec<&str> = ["build", "release", "deploy", "action"]
                .into_iter()
                .filter(|a| fields.has(a))
                .collect();
            let action = match actions.as_slice() {
                [] => {
                    if !unknown {
                        self.problem(
                            &ipath,
                            "a step needs exactly one action: `build`, `release` or `deploy`",
                        );
                    }
                    None
                }
                [one] => {
                    let apath = join_key(&ipath, one);
                    match (*one, fields.get(one)) {
                        ("action", Some(v)) => self.eve_action(&apath, v, known),
                        (kind, Some(v)) => self.step_action(&apath, kind, v, known),
                        (_, None) => None,
                    }
                }
                several => {
                    self.problem(
                        &ipath,
                        format!(
                            "a step has exactly one action, found {}; split it into steps joined by `depends_on`",
                            several.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(" and ")
                        ),
                    );
                    None
                }
            };

            let mut depends_on: Vec<String> = Vec::new();
            if let Some(d) = fields.get("depends_on") {
                for (p, dep) in self.string_list(&join_key(&ipath, "depends_on"), d) {
                    if name.as_deref() == Some(dep.as_str()) {
                        self.problem(&p, format!("step `{dep}` cannot depend on itself"));
                        continue;
                    }
                    deps.push((i, p, dep.clone()));
                    depends_on.push(dep);
                }
            }
            depends_on.sort();
            depends_on.dedup();

            if let (Some(name), Some(action)) = (name, action) {
                steps.push(PipelineStep {
                    name,
                    action,
                    depends_on,
                });
            }
        }

        // References to unknown steps.
        let defined: Vec<&str> = names.iter().flatten().map(String::as_str).collect();
        for (_, p, dep) in &deps {
            if !defined.contains(&dep.as_str()) {
                self.problem(
                    p,
                    format!(
                        "unknown step `{dep}`; steps in this pipeline: {}",
                        list_or_none(&defined)
                    ),
                );
            }
        }

        // Cycles, over every step that has a name (even if its action had problems).
        let edges: Vec<Vec<usize>> = (0..names.len())
            .map(|i| {
                let mut e: Vec<usize> = deps
                    .iter()
                    .filter(|(from, _, _)| *from == i)
                    .filter_map(|(_, _, dep)| {
                        names
                            .iter()
                            .position(|n| n.as_deref() == Some(dep.as_str()))
                    })
                    .collect();
                e.sort_unstable();
                e.dedup();
                e
            })
            .collect();
        for cycle in find_cycles(&edges) {
            let first = cycle.iter().copied().min().unwrap_or(0);
            let mut names_in_cycle: Vec<&str> = cycle
                .iter()
                .map(|&i| names[i].as_deref().unwrap_or("?"))
                .collect();
            if let Some(start) = names_in_cycle.first().copied() {
                names_in_cycle.push(start);
            }
            self.problem(
                &join_key(&join_index(path, first), "depends_on"),
                format!(
                    "steps depend on each other in a cycle: {}",
                    names_in_cycle.join(" → ")
                ),
            );
        }
        steps
    }

    /// `build:`, `release:` or `deploy:` on a step (Slipway shape).
    fn step_action(
        &mut self,
        path: &str,
        kind: &str,
        v: &Value,
        known: &Known<'_>,
    ) -> Option<StepAction> {
        match kind {
            "deploy" => {
                // `deploy: staging` is shorthand for `deploy: {environment: staging}`.
                if let Value::String(_) = v {
                    let env = self.string(path, v)?;
                    return self.deploy_environment(path, env, known);
                }
                let fields = match v {
                    Value::Null => Fields {
                        entries: Vec::new(),
                    },
                    other => self.mapping(path, other, "a mapping with `environment`")?,
                };
                self.check_keys(path, &fields, DEPLOY_STEP_KEYS);
                self.deploy_fields(path, &fields, known)
            }
            _ => {
                let fields = match v {
                    Value::Null => Fields {
                        entries: Vec::new(),
                    },
                    other => self.mapping(path, other, "a mapping (or nothing)")?,
                };
                if kind == "build" {
                    self.check_keys(path, &fields, BUILD_STEP_KEYS);
                    self.build_fields(path, &fields, known)
                } else {
                    self.check_keys(path, &fields, RELEASE_STEP_KEYS);
                    Some(self.release_fields(path, &fields))
                }
            }
        }
    }

    /// Eve's `action: {type: build|release|deploy, ...}`.
    fn eve_action(&mut self, path: &str, v: &Value, known: &Known<'_>) -> Option<StepAction> {
        let fields = self.mapping(path, v, "a mapping with `type`")?;
        let tpath = join_key(path, "type");
        let kind = match fields.get("type") {
            Some(t) => self.string(&tpath, t)?,
            None => {
                self.problem(&tpath, "required: `build`, `release` or `deploy`");
                return None;
            }
        };
        match kind.as_str() {
            "build" => {
                self.check_keys(path, &fields, EVE_BUILD_KEYS);
                self.build_fields(path, &fields, known)
            }
            "release" => {
                self.check_keys(path, &fields, EVE_RELEASE_KEYS);
                Some(self.release_fields(path, &fields))
            }
            "deploy" => {
                self.check_keys(path, &fields, EVE_DEPLOY_KEYS);
                self.deploy_fields(path, &fields, known)
            }
            other => {
                let mut msg = format!("unknown step action `{other}`");
                if let Some(s) = suggest(other, STEP_ACTIONS) {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                }
                msg.push_str(" (expected `build`, `release` or `deploy`)");
                self.problem(&tpath, msg);
                None
            }
        }
    }

    fn build_fields(
        &mut self,
        path: &str,
        fields: &Fields<'_>,
        known: &Known<'_>,
    ) -> Option<StepAction> {
        let Some(list) = fields.get("services") else {
            return Some(StepAction::Build { services: None });
        };
        let spath = join_key(path, "services");
        let entries = self.string_list(&spath, list);
        if entries.is_empty() && matches!(list, Value::Sequence(s) if s.is_empty()) {
            self.problem(
                &spath,
                "an empty list builds nothing; leave out `services` to build them all",
            );
            return None;
        }
        let mut services = Vec::new();
        for (p, name) in entries {
            match known.services.get(name.as_str()) {
                None => {
                    let all: Vec<&str> = known.services.keys().copied().collect();
                    self.problem(
                        &p,
                        format!("unknown service `{name}`; services: {}", list_or_none(&all)),
                    );
                }
                Some(false) => self.problem(
                    &p,
                    format!(
                        "service `{name}` has no `build` section, so there is nothing to build"
                    ),
                ),
                Some(true) => services.push(name),
            }
        }
        services.sort();
        services.dedup();
        Some(StepAction::Build {
            services: Some(services),
        })
    }

    fn release_fields(&mut self, path: &str, fields: &Fields<'_>) -> StepAction {
        let tag = fields
            .get("tag")
            .and_then(|t| self.word(&join_key(path, "tag"), t));
        let version = fields
            .get("version")
            .and_then(|t| self.word(&join_key(path, "version"), t));
        StepAction::Release { tag, version }
    }

    fn deploy_fields(
        &mut self,
        path: &str,
        fields: &Fields<'_>,
        known: &Known<'_>,
    ) -> Option<StepAction> {
        match (fields.get("environment"), fields.get("env_name")) {
            (Some(_), Some(_)) => {
                self.problem(
                    &join_key(path, "env_name"),
                    "give the environment once, as `environment` or `env_name`",
                );
                None
            }
            (Some(v), None) => {
                let p = join_key(path, "environment");
                let env = self.string(&p, v)?;
                self.deploy_environment(&p, env, known)
            }
            (None, Some(v)) => {
                let p = join_key(path, "env_name");
                let env = self.string(&p, v)?;
                self.deploy_environment(&p, env, known)
            }
            (None, None) => {
                self.problem(
                    &join_key(path, "environment"),
                    "required: the environment to deploy to",
                );
                None
            }
        }
    }

    fn deploy_environment(
        &mut self,
        path: &str,
        env: String,
        known: &Known<'_>,
    ) -> Option<StepAction> {
        if known.environments.contains(&env) {
            return Some(StepAction::Deploy { environment: env });
        }
        if known.environments.is_empty() {
            self.problem(
                path,
                format!("unknown environment `{env}`; no environments are defined (add it under `environments`)"),
            );
        } else {
            let all: Vec<&str> = known.environments.iter().map(String::as_str).collect();
            let mut msg = format!("unknown environment `{env}`");
            if let Some(s) = suggest(&env, &all) {
                msg.push_str(&format!("; did you mean `{s}`?"));
            }
            msg.push_str(&format!(" (environments: {})", all.join(", ")));
            self.problem(path, msg);
        }
        None
    }
}

impl Environment {
    /// An environment with no approval gate on the default target.
    fn named(name: String) -> Self {
        Self {
            name,
            approval: None,
            target: DeployTarget::Docker,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Describes a YAML value for "expected X, found Y" messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".to_owned(),
        Value::Bool(b) => format!("the boolean `{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(t) => format!("a value tagged `{}` (YAML tags are not supported)", t.tag),
    }
}

/// A YAML syntax error as a message with its line and column.
fn yaml_error_message(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    match e.location() {
        Some(loc) => {
            // serde_yaml appends " at line L column C"; say it once, up front.
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            let msg = text.replacen(&suffix, "", 1);
            format!(
                "invalid YAML at line {}, column {}: {msg}",
                loc.line(),
                loc.column()
            )
        }
        None => format!("invalid YAML: {text}"),
    }
}

/// Appends a key to a path, quoting keys that are not plain words.
fn join_key(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{}]", Json::String(key.to_owned())),
    }
}

/// Appends a list index to a path.
fn join_index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// `a, b, c`, or `(none)`.
fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

/// `^[a-z][a-z0-9-]{0,62}$`
fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`
fn is_var_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// A Kubernetes namespace: an RFC 1123 label.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether an image reference carries a tag (`:tag` in its last segment) or a digest.
fn image_has_tag_or_digest(image: &str) -> bool {
    image.contains('@')
        || image
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
}

/// Normalises a port spec: `3000`, `8080:80`, `53/udp`; `/tcp` is dropped.
fn normalise_port(raw: &str) -> Option<String> {
    let (ports, proto) = match raw.split_once('/') {
        Some((p, "tcp")) => (p, ""),
        Some((p, "udp")) => (p, "/udp"),
        Some(_) => return None,
        None => (raw, ""),
    };
    let number = |s: &str| -> Option<u16> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u16>().ok().filter(|p| *p > 0)
    };
    let spec = match ports.split_once(':') {
        Some((host, container)) => format!("{}:{}", number(host)?, number(container)?),
        None => number(ports)?.to_string(),
    };
    Some(format!("{spec}{proto}"))
}

/// Splits a relative path into components, resolving `.` and `..` lexically; returns the
/// number of `..` that climbed above the start, and the remaining components.
fn lexical(raw: &str) -> (usize, Vec<&str>) {
    let mut ups = 0;
    let mut parts: Vec<&str> = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    ups += 1;
                }
            }
            s => parts.push(s),
        }
    }
    (ups, parts)
}

/// Components joined with `/`, or `.` for none.
fn join_parts(parts: &[&str]) -> String {
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

/// What is wrong with the shape of a repository path, if anything.
fn path_shape_problem(raw: &str, what: &str) -> Option<String> {
    let b = raw.as_bytes();
    if raw.trim().is_empty() {
        return Some(format!(
            "{what} must not be empty (use `.` for the repository root)"
        ));
    }
    if raw.contains("://") || raw.starts_with("git@") {
        return Some(format!(
            "`{raw}` is a URL; the {what} must be a path inside the repository"
        ));
    }
    if raw.starts_with('/')
        || raw.starts_with('~')
        || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
    {
        return Some(format!(
            "`{raw}` is an absolute path; the {what} must be relative to the repository root"
        ));
    }
    if raw.contains('\\') {
        return Some(format!("`{raw}` uses `\\`; separate directories with `/`"));
    }
    None
}

/// Normalises a build context; it must stay inside the repository.
fn normalise_context(raw: &str) -> Result<String, String> {
    if let Some(p) = path_shape_problem(raw, "build context") {
        return Err(p);
    }
    let (ups, parts) = lexical(raw);
    if ups > 0 {
        return Err(format!(
            "`{raw}` is outside the repository; the build context must be a directory inside it"
        ));
    }
    Ok(join_parts(&parts))
}

/// Normalises a Dockerfile path to the canonical form relative to `context` (which is
/// already normalised). A path that, read from the repository root, lies inside the
/// context (Eve's spelling, `context: ./api, dockerfile: ./api/Dockerfile`) is taken as
/// such; otherwise the path is relative to the context. It must stay in the repository.
fn normalise_dockerfile(context: &str, raw: &str) -> Result<String, String> {
    if let Some(p) = path_shape_problem(raw, "Dockerfile path") {
        return Err(p);
    }
    let ctx: Vec<&str> = if context == "." {
        Vec::new()
    } else {
        context.split('/').collect()
    };
    let (ups, parts) = lexical(raw);
    if parts.is_empty() {
        return Err(format!(
            "`{raw}` names a directory; give the Dockerfile's file name, e.g. `Dockerfile`"
        ));
    }
    // Path of the Dockerfile from the repository root.
    let from_root: Vec<&str> = if ups == 0
        && !ctx.is_empty()
        && parts.len() > ctx.len()
        && parts[..ctx.len()] == ctx[..]
    {
        parts.clone()
    } else {
        if ups > ctx.len() {
            return Err(format!(
                "`{raw}` is outside the repository; the Dockerfile must be inside it"
            ));
        }
        let mut p: Vec<&str> = ctx[..ctx.len() - ups].to_vec();
        p.extend(parts.iter().copied());
        p
    };
    // Express it relative to the context again, canonically.
    let common = ctx
        .iter()
        .zip(from_root.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let common = common.min(from_root.len().saturating_sub(1));
    let mut rel = "../".repeat(ctx.len() - common);
    rel.push_str(&from_root[common..].join("/"));
    Ok(rel)
}

/// Closest allowed word within a small edit distance, for "did you mean" hints.
fn suggest<'a>(word: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    allowed
        .iter()
        .map(|a| (edit_distance(&lower, a), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4) && *d < a.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Levenshtein distance (small inputs only).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Elementary cycles found by depth-first search over `edges` (adjacency lists), each
/// reported once, as the list of nodes in dependency order.
fn find_cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let n = edges.len();
    let mut mark = vec![Mark::New; n];
    let mut cycles: Vec<Vec<usize>> = Vec::new();
    let mut seen: BTreeSet<Vec<usize>> = BTreeSet::new();
    for root in 0..n {
        if mark[root] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next edge to follow).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::OnStack;
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            let edge = edges[node].get(top.1).copied();
            top.1 += 1;
            match edge {
                Some(to) => match mark[to] {
                    Mark::New => {
                        mark[to] = Mark::OnStack;
                        stack.push((to, 0));
                    }
                    Mark::OnStack => {
                        let start = stack.iter().position(|(s, _)| *s == to).unwrap_or(0);
                        let cycle: Vec<usize> = stack[start..].iter().map(|(s, _)| *s).collect();
                        let mut key = cycle.clone();
                        key.sort_unstable();
                        if seen.insert(key) {
                            cycles.push(cycle);
                        }
                    }
                    Mark::Done => {}
                },
                None => {
                    mark[node] = Mark::Done;
                    stack.pop();
                }
            }
        }
    }
    cycles
}

/// Writes `v` as canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace.
/// Sorting here (rather than relying on `serde_json`'s map type, which a `preserve_order`
/// feature elsewhere in the build could change) keeps the hash stable.
fn write_canonical(v: &Json, out: &mut String) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository made of a list of files; directories are implied by the paths.
    struct FakeRepo {
        files: Vec<&'static str>,
    }

    impl RepoView for FakeRepo {
        fn is_dir(&self, rel: &str) -> bool {
            rel == "." || self.files.iter().any(|f| f.starts_with(&format!("{rel}/")))
        }
        fn is_file(&self, rel: &str) -> bool {
            self.files.contains(&rel)
        }
    }

    fn ok(yaml: &str) -> Manifest {
        match parse(yaml) {
            Ok(m) => m,
            Err(e) => panic!("expected a valid manifest, got:\n{e}"),
        }
    }

    fn problems(yaml: &str) -> Vec<String> {
        match parse(yaml) {
            Ok(m) => panic!("expected problems, got {m:?}"),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    fn has(problems: &[String], needle: &str) -> bool {
        problems.iter().any(|p| p.contains(needle))
    }

    const EVE: &str = r#"
name: shop
registry: eve
services:
  api:
    build:
      context: ./apps/api
      dockerfile: ./apps/api/Dockerfile.production
  web:
    build:
      context: web/
environments:
  - name: test
  - name: staging
  - name: production
    approval:
      required: 1
      approvers: [bob, alice]
pipelines:
  deploy:
    steps:
      - name: build
        action: { type: build }
      - name: release
        depends_on: [build]
        action: { type: release }
      - name: deploy
        depends_on: [release]
        action: { type: deploy, env_name: staging }
"#;

    const CONVOX: &str = r#"
# The same project, written the short way.
name: shop
registry: slipway
services:
  web:
    build: ./web
  api:
    build: apps/api
    manifest: Dockerfile.production
environments:
  test:
  staging: {}
  production:
    approval: {approvers: [alice, bob]}
pipelines:
  deploy:
    steps:
      - {name: build, build: {}}
      - {name: release, release: null, depends_on: build}
      - {name: deploy, deploy: staging, depends_on: [release]}
"#;

    #[test]
    fn the_eve_and_convox_shapes_parse_to_the_same_manifest_and_hash() {
        let eve = ok(EVE);
        let convox = ok(CONVOX);
        assert_eq!(eve, convox);
        assert_eq!(eve.canonical_hash(), convox.canonical_hash());
        let api = &eve.services["api"];
        let build = api.build.as_ref().expect("api builds");
        assert_eq!(build.context, "apps/api");
        assert_eq!(build.dockerfile, "Dockerfile.production");
        assert_eq!(build.dockerfile_path(), "apps/api/Dockerfile.production");
        assert_eq!(eve.registry, Registry::Native);
    }

    #[test]
    fn the_hash_is_stable_under_reformatting_key_order_and_comments() {
        let a = r#"
services:
  api:
    build: {context: ./api, dockerfile: Dockerfile, args: {B: "2", A: "1"}}
  web: {image: nginx}
"#;
        let b = r#"
# comment at the top
services:   # services follow
  web:
      image: "nginx"     # quoted this time
  api:
      build:
          args:
              A: 1
              B: 2
          dockerfile: ./Dockerfile
          context: api/
"#;
        assert_eq!(hash_yaml(a), hash_yaml(b));
        let h = hash_yaml(a).expect("valid");
        assert_eq!(h.len(), 64);
        assert!(h
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
    }

    #[test]
    fn defaults_written_out_hash_the_same_as_defaults_left_out() {
        let short = "services: {api: {build: ./api}}";
        let long = r#"
registry: native
services:
  api:
    build: {context: api, dockerfile: Dockerfile, args: {}}
    environment: []
    ports: []
"#;
        assert_eq!(hash_yaml(short), hash_yaml(long));
    }

    #[test]
    fn the_hash_changes_when_a_dockerfile_changes() {
        let a = hash_yaml("services: {api: {build: ./api}}").expect("valid");
        let b =
            hash_yaml("services: {api: {build: ./api, manifest: Dockerfile.prod}}").expect("valid");
        assert_ne!(a, b);
    }

    #[test]
    fn the_hash_changes_when_the_meaning_changes() {
        let base = hash_yaml("services: {api: {build: ./api}}\nenvironments: [test, prod]")
            .expect("valid");
        for other in [
            "services: {api: {build: ./api}}\nenvironments: [prod, test]",
            "services: {api: {build: {context: ./api, args: {A: x}}}}\nenvironments: [test, prod]",
            "services: {api: {build: ./web}}\nenvironments: [test, prod]",
            "services: {app: {build: ./api}}\nenvironments: [test, prod]",
            "registry: none\nservices: {api: {build: ./api}}\nenvironments: [test, prod]",
            "services: {api: {build: ./api}}\nenvironments: [test, {name: prod, approval: true}]",
        ] {
            assert_ne!(hash_yaml(other).expect(other), base, "{other}");
        }
    }

    #[test]
    fn a_golden_hash_is_fixed_so_canonicalisation_changes_are_noticed() {
        let m = ok(EVE);
        assert_eq!(
            m.canonical_json(),
            concat!(
                r#"{"environments":[{"name":"test","target":{"kind":"docker"}},"#,
                r#"{"name":"staging","target":{"kind":"docker"}},"#,
                r#"{"approval":{"approvers":["alice","bob"],"required":1},"name":"production","target":{"kind":"docker"}}],"#,
                r#""name":"shop","#,
                r#""pipelines":{"deploy":{"steps":[{"action":{"type":"build"},"name":"build"},"#,
                r#"{"action":{"type":"release"},"depends_on":["build"],"name":"release"},"#,
                r#"{"action":{"environment":"staging","type":"deploy"},"depends_on":["release"],"name":"deploy"}]}},"#,
                r#""registry":{"kind":"native"},"#,
                r#""services":{"api":{"build":{"context":"apps/api","dockerfile":"Dockerfile.production"}},"#,
                r#""web":{"build":{"context":"web","dockerfile":"Dockerfile"}}}}"#
            )
        );
        assert_eq!(m.canonical_hash(), GOLDEN_HASH);
    }

    const GOLDEN_HASH: &str = "6e7665ecd743a19216ad9fde8346f66c3d892cf19534a55637a6fb89ed0f1ff8";

    #[test]
    fn the_canonical_json_is_the_sorted_serde_json_form() {
        // The API representation and the hashed form are the same document.
        for yaml in [EVE, CONVOX, FULL] {
            let m = ok(yaml);
            let via_serde = serde_json::to_value(&m).expect("serialises");
            let mut out = String::new();
            write_canonical(&via_serde, &mut out);
            assert_eq!(out, m.canonical_json());
            let back: Manifest = serde_json::from_value(via_serde).expect("deserialises");
            assert_eq!(back, m);
        }
    }

    const FULL: &str = r#"
registry:
  host: registry.example.com:5000
  namespace: acme
  auth: {username_secret: REG_USER}
services:
  api:
    image: registry.example.com:5000/acme/api
    build:
      context: .
      dockerfile: docker/api.Dockerfile
      args: [VERSION=1.2, "DEBUG=false"]
      target: release
    environment: [LOG=info, DATABASE_URL]
    ports: [3000, "8080:80/tcp", "53/udp"]
    port: 8443
    command: ./api --serve
  db:
    image: postgres:16
    environment: {POSTGRES_PASSWORD: null, PGPORT: 5432}
environments:
  - staging
  - name: production
    approval: {required: 2, approvers: [carol, alice, bob], wait_timer_seconds: 600}
    target: {kind: kubernetes, namespace: prod}
pipelines:
  ship:
    steps:
      - name: deploy
        depends_on: [tag]
        deploy: {environment: production}
      - name: build
        build: {services: [api]}
      - name: tag
        depends_on: [build, build]
        release: {tag: v1.0.0, version: 1.0.0}
"#;

    #[test]
    fn every_section_is_normalised() {
        let m = ok(FULL);
        assert_eq!(
            m.registry,
            Registry::Byo {
                host: "registry.example.com:5000".into(),
                namespace: Some("acme".into()),
                auth: Some(RegistryAuth {
                    username_secret: "REG_USER".into(),
                    token_secret: DEFAULT_TOKEN_SECRET.into()
                }),
            }
        );
        let api = &m.services["api"];
        let build = api.build.as_ref().expect("builds");
        assert_eq!(build.context, ".");
        assert_eq!(build.dockerfile, "docker/api.Dockerfile");
        assert_eq!(build.dockerfile_path(), "docker/api.Dockerfile");
        assert_eq!(build.args["VERSION"], "1.2");
        assert_eq!(build.target.as_deref(), Some("release"));
        assert_eq!(api.ports, ["8443", "3000", "8080:80", "53/udp"]);
        assert_eq!(api.environment["LOG"].as_deref(), Some("info"));
        assert_eq!(api.environment["DATABASE_URL"], None);
        assert_eq!(api.command.as_deref(), Some("./api --serve"));
        let db = &m.services["db"];
        assert!(db.build.is_none());
        assert_eq!(db.environment["PGPORT"].as_deref(), Some("5432"));
        assert_eq!(m.service_names(), ["api", "db"]);
        assert_eq!(m.buildable_service_names(), ["api"]);
        assert_eq!(m.environment_order(), ["staging", "production"]);
        let prod = m.environment("production").expect("defined");
        assert_eq!(
            prod.approval,
            Some(Approval {
                required: 2,
                approvers: vec!["alice".into(), "bob".into(), "carol".into()],
                wait_timer_seconds: Some(600)
            })
        );
        assert_eq!(
            prod.target,
            DeployTarget::Kubernetes {
                namespace: Some("prod".into()),
                cluster: None
            }
        );
        assert_eq!(
            m.next_environment("staging").map(|e| e.name.as_str()),
            Some("production")
        );
        assert!(m.next_environment("production").is_none());
        let ship = &m.pipelines["ship"];
        assert_eq!(
            ship.step("tag").map(|s| s.depends_on.clone()),
            Some(vec!["build".to_owned()])
        );
        assert_eq!(
            ship.step("build").map(|s| s.action.clone()),
            Some(StepAction::Build {
                services: Some(vec!["api".into()])
            })
        );
        let order: Vec<&str> = ship
            .execution_order()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(order, ["build", "tag", "deploy"]);
    }

    #[test]
    fn registry_spellings_are_recognised() {
        for native in ["eve", "slipway", "local", "native"] {
            let m = ok(&format!(
                "registry: {native}\nservices: {{a: {{image: x}}}}"
            ));
            assert_eq!(m.registry, Registry::Native);
        }
        assert_eq!(
            ok("registry: none\nservices: {a: {image: x}}").registry,
            Registry::None
        );
        assert_eq!(ok("services: {a: {image: x}}").registry, Registry::Native);
        let m = ok("registry: {host: ghcr.io, auth: {}}\nservices: {a: {image: x}}");
        assert_eq!(
            m.registry,
            Registry::Byo {
                host: "ghcr.io".into(),
                namespace: None,
                auth: Some(RegistryAuth {
                    username_secret: DEFAULT_USERNAME_SECRET.into(),
                    token_secret: DEFAULT_TOKEN_SECRET.into()
                })
            }
        );
        let p = problems("registry: dockerhub\nservices: {a: {image: x}}");
        assert!(has(&p, "registry: unknown registry `dockerhub`"), "{p:?}");
        let p = problems("registry: {host: https://ghcr.io}\nservices: {a: {image: x}}");
        assert!(
            has(&p, "registry.host: `https://ghcr.io` includes a scheme"),
            "{p:?}"
        );
        let p = problems("registry: {namespace: acme}\nservices: {a: {image: x}}");
        assert!(has(&p, "registry.host: required"), "{p:?}");
    }

    #[test]
    fn a_manifest_with_three_problems_reports_all_three_with_paths() {
        let p = problems(
            r#"
servics: {}
services:
  API:
    build: ./api
  web:
    build:
      context: ../outside
"#,
        );
        assert_eq!(
            p,
            [
                "servics: unknown key `servics`; did you mean `services`? (expected one of: name, registry, services, environments, pipelines)",
                "services.API: invalid service name `API`: must start with a lowercase letter and contain only lowercase letters, digits and `-` (at most 63 characters)",
                "services.web.build.context: `../outside` is outside the repository; the build context must be a directory inside it",
            ]
        );
    }

    #[test]
    fn problems_are_collected_across_every_section_in_one_pass() {
        let p = problems(
            r#"
name: My Shop
registry: 42
services:
  api: {build: {context: /abs, dockerfle: x}}
  db: {}
  "my.svc": {image: x}
environments:
  - name: test
  - name: test
  - name: prod
    approval: {required: 3, approvers: [alice, bob]}
    target: {kind: docker, namespace: x}
pipelines:
  ship:
    steps:
      - {name: a, build: {services: [db, nope]}, depends_on: [c]}
      - {name: b, deploy: prdo, depends_on: [a]}
      - {name: c, test: {}}
      - {name: d, build: {}, release: {}}
"#,
        );
        for expected in [
            "name: invalid project name `My Shop`",
            "registry: expected `slipway`, `none`, or a mapping with `host`, found the number `42`",
            "services.api.build.dockerfle: unknown key `dockerfle`; did you mean `dockerfile`?",
            "services.api.build.context: `/abs` is an absolute path",
            "services.db: a service needs `build`",
            r#"services["my.svc"]: invalid service name `my.svc`"#,
            "environments[1].name: duplicate environment `test` (already defined at environments[0].name)",
            "environments[2].approval.required: 3 approvals are required but only 2 approvers are named in `approvers`",
            "environments[2].target.namespace: `namespace` applies only to `kind: kubernetes`",
            "pipelines.ship.steps[0].build.services[0]: service `db` has no `build` section",
            "pipelines.ship.steps[0].build.services[1]: unknown service `nope`",
            "pipelines.ship.steps[1].deploy: unknown environment `prdo`; did you mean `prod`? (environments: test, prod)",
            "pipelines.ship.steps[2].test: unknown step action or key `test`",
            "pipelines.ship.steps[3]: a step has exactly one action, found `build` and `release`",
        ] {
            assert!(has(&p, expected), "missing {expected:?} in:\n{}", p.join("\n"));
        }
        assert_eq!(p.len(), 14, "{}", p.join("\n"));
    }

    #[test]
    fn unknown_step_actions_are_reported_in_both_shapes() {
        let p = problems(
            r#"
services: {api: {build: .}}
pipelines:
  p:
    steps:
      - {name: a, action: {type: deplay}}
      - {name: b, publish: {}}
      - {name: c}
"#,
        );
        assert_eq!(
            p,
            [
                "pipelines.p.steps[0].action.type: unknown step action `deplay`; did you mean `deploy`? (expected `build`, `release` or `deploy`)",
                "pipelines.p.steps[1].publish: unknown step action or key `publish` (a step has `name`, optional `depends_on`, and exactly one action: `build`, `release` or `deploy`)",
                "pipelines.p.steps[2]: a step needs exactly one action: `build`, `release` or `deploy`",
            ]
        );
    }

    #[test]
    fn dependency_cycles_are_detected() {
        let p = problems(
            r#"
services: {api: {build: .}}
pipelines:
  p:
    steps:
      - {name: a, build: {}, depends_on: [c]}
      - {name: b, release: {}, depends_on: [a]}
      - {name: c, release: {}, depends_on: [b]}
      - {name: d, release: {}, depends_on: [d]}
      - {name: e, release: {}, depends_on: [f]}
      - {name: f, release: {}, depends_on: [e, a]}
"#,
        );
        assert_eq!(
            p,
            [
                "pipelines.p.steps[3].depends_on[0]: step `d` cannot depend on itself",
                "pipelines.p.steps[0].depends_on: steps depend on each other in a cycle: a → c → b → a",
                "pipelines.p.steps[4].depends_on: steps depend on each other in a cycle: e → f → e",
            ]
        );
    }

    #[test]
    fn depends_on_naming_an_unknown_step_is_reported() {
        let p = problems(
            "services: {api: {build: .}}\npipelines: {p: {steps: [{name: a, build: {}}, {name: b, release: {}, depends_on: [bild]}]}}",
        );
        assert_eq!(p, ["pipelines.p.steps[1].depends_on[0]: unknown step `bild`; steps in this pipeline: a, b"]);
    }

    #[test]
    fn a_deploy_step_needs_a_defined_environment() {
        let p = problems("services: {api: {build: .}}\npipelines: {p: {steps: [{name: a, deploy: {environment: prod}}]}}");
        assert_eq!(
            p,
            ["pipelines.p.steps[0].deploy.environment: unknown environment `prod`; no environments are defined (add it under `environments`)"]
        );
    }

    #[test]
    fn approvals_must_be_satisfiable() {
        let p = problems("services: {a: {image: x}}\nenvironments: [{name: prod, approval: {required: 2, approvers: [alice]}}]");
        assert_eq!(
            p,
            ["environments[0].approval.required: 2 approvals are required but only 1 approver is named in `approvers`"]
        );
        let p = problems(
            "services: {a: {image: x}}\nenvironments: [{name: prod, approval: {required: 0}}]",
        );
        assert!(has(&p, "must be at least 1"), "{p:?}");
        let p = problems("services: {a: {image: x}}\nenvironments: [{name: prod, approval: {approvers: [al, al]}}]");
        assert!(
            has(
                &p,
                "environments[0].approval.approvers[1]: approver `al` is listed more than once"
            ),
            "{p:?}"
        );
        // Without `approvers`, any number of approvals may be required.
        let m =
            ok("services: {a: {image: x}}\nenvironments: [{name: prod, approval: {required: 3}}]");
        assert_eq!(
            m.environments[0].approval.as_ref().map(|a| a.required),
            Some(3)
        );
    }

    #[test]
    fn environments_given_as_a_map_keep_their_written_order() {
        let m = ok(
            "services: {a: {image: x}}\nenvironments:\n  zeta: {}\n  alpha:\n  mid: {target: k8s}",
        );
        assert_eq!(m.environment_order(), ["zeta", "alpha", "mid"]);
        assert_eq!(
            m.environments[2].target,
            DeployTarget::Kubernetes { namespace: None, cluster: None }
        );
    }

    #[test]
    fn build_contexts_must_stay_inside_the_repository() {
        for (ctx, msg) in [
            ("/srv/app", "is an absolute path"),
            ("C:/app", "is an absolute path"),
            ("../other", "is outside the repository"),
            ("api/../../x", "is outside the repository"),
            ("https://github.com/a/b.git", "is a URL"),
            ("''", "must not be empty"),
            (r#""api\\src""#, "separate directories with `/`"),
        ] {
            let p = problems(&format!("services: {{api: {{build: {ctx}}}}}"));
            assert!(
                p.len() == 1 && p[0].starts_with("services.api.build: ") && p[0].contains(msg),
                "{ctx}: {p:?}"
            );
        }
        let m = ok("services: {api: {build: ./api/../web/./}}");
        assert_eq!(
            m.services["api"].build.as_ref().map(|b| b.context.as_str()),
            Some("web")
        );
        let p = problems("services: {api: {build: {context: api, dockerfile: ../../Dockerfile}}}");
        assert!(
            has(
                &p,
                "services.api.build.dockerfile: `../../Dockerfile` is outside the repository"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn dockerfiles_are_stored_relative_to_their_context() {
        let cases = [
            ("{context: api}", "Dockerfile", "api/Dockerfile"),
            (
                "{context: api, dockerfile: api/Dockerfile}",
                "Dockerfile",
                "api/Dockerfile",
            ),
            (
                "{context: ./api, dockerfile: ./Dockerfile.dev}",
                "Dockerfile.dev",
                "api/Dockerfile.dev",
            ),
            (
                "{context: api, dockerfile: ../docker/api}",
                "../docker/api",
                "docker/api",
            ),
            (
                "{context: a/b, dockerfile: ../b/Dockerfile}",
                "Dockerfile",
                "a/b/Dockerfile",
            ),
            (
                "{context: ., dockerfile: ./ops/Dockerfile}",
                "ops/Dockerfile",
                "ops/Dockerfile",
            ),
        ];
        for (build, rel, from_root) in cases {
            let m = ok(&format!("services: {{api: {{build: {build}}}}}"));
            let b = m.services["api"].build.clone().expect("builds");
            assert_eq!(
                (b.dockerfile.as_str(), b.dockerfile_path().as_str()),
                (rel, from_root),
                "{build}"
            );
        }
    }

    #[test]
    fn path_checks_report_missing_contexts_and_dockerfiles() {
        let m = ok(r#"
services:
  api: {build: ./api}
  web: {build: {context: web, dockerfile: Dockerfile.prod}}
  worker: {build: ./worker}
  tool: {build: {context: tools/x, dockerfile: ../../Dockerfile.tool}}
  db: {image: postgres}
"#);
        let repo = FakeRepo {
            files: vec![
                "api/Dockerfile",
                "web/Dockerfile",
                "web/index.html",
                "tools/x/main.go",
            ],
        };
        let p: Vec<String> = check_paths(&m, &repo)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            p,
            [
                "services.tool.build.dockerfile: file not found (looked for Dockerfile.tool)",
                "services.web.build.dockerfile: file not found (looked for web/Dockerfile.prod)",
                "services.worker.build.context: directory not found",
            ]
        );
        let good = FakeRepo {
            files: vec![
                "api/Dockerfile",
                "web/Dockerfile.prod",
                "worker/Dockerfile",
                "tools/x/a",
                "Dockerfile.tool",
            ],
        };
        assert!(check_paths(&m, &good).is_empty());
    }

    #[test]
    fn validate_reports_parse_and_path_problems_together() {
        let repo = FakeRepo {
            files: vec!["web/Dockerfile"],
        };
        let err = validate("services:\n  api: {build: ./api}\n  web: {build: ./web}\n  Bad: {build: ./web, ports: [0]}\n", &repo)
            .expect_err("problems");
        let p: Vec<String> = err.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            p,
            [
                "services.Bad: invalid service name `Bad`: must start with a lowercase letter and contain only lowercase letters, digits and `-` (at most 63 characters)",
                "services.Bad.ports[0]: invalid port `0`: expected a number 1-65535, optionally `host:container` and `/tcp` or `/udp`",
                "services.api.build.context: directory not found",
            ]
        );
        let m = validate("services: {web: {build: web}}", &repo).expect("valid");
        assert_eq!(m.service_names(), ["web"]);
    }

    #[test]
    fn yaml_syntax_errors_report_their_line_and_column() {
        let p = problems("services:\n  api:\n    build: ./api\n   bad: [\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("invalid YAML at line "), "{p:?}");
        assert!(p[0].contains(", column "), "{p:?}");
        let p = problems("services: {a: {image: x}}\nservices: {}\n");
        assert!(
            p[0].starts_with(
                "invalid YAML at line 1, column 1: duplicate entry with key \"services\""
            ),
            "{p:?}"
        );
    }

    #[test]
    fn empty_and_non_mapping_documents_are_explained() {
        assert!(problems("")[0].starts_with("the manifest is empty"));
        assert!(problems("# only a comment\n")[0].starts_with("the manifest is empty"));
        assert!(problems("- a\n- b")[0].contains("found a list"));
        assert_eq!(problems("name: x"), ["services: required: list the services to build, e.g. `services: {api: {build: ./api}}`"]);
        assert_eq!(
            problems("services: {}"),
            ["services: at least one service is required"]
        );
    }

    #[test]
    fn extension_keys_and_merge_keys_are_supported() {
        let a = ok(r#"
x-defaults: &defaults
  build: {context: api, args: {A: "1"}}
x-note: ignored
services:
  api:
    <<: *defaults
    x-owner: team-a
"#);
        let b = ok("services: {api: {build: {context: api, args: {A: '1'}}}}");
        assert_eq!(a, b);
        assert_eq!(a.canonical_hash(), b.canonical_hash());
    }

    #[test]
    fn a_built_service_image_must_not_carry_a_tag() {
        let p = problems("services: {api: {build: ., image: reg.io/acme/api:latest}}");
        assert!(
            has(
                &p,
                "services.api.image: `reg.io/acme/api:latest` has a tag or digest"
            ),
            "{p:?}"
        );
        ok("services: {api: {build: ., image: 'localhost:5000/acme/api'}}");
        ok("services: {db: {image: 'postgres:16@sha256:abc'}}");
    }

    #[test]
    fn a_built_service_may_not_take_a_name_reserved_for_slipway() {
        for image in ["slipway/busybox", "docker.io/slipway/busybox", "slipway/anything/else"] {
            let p = problems(&format!("services: {{api: {{build: ., image: '{image}'}}}}"));
            assert!(has(&p, "services.api.image: `"), "{image}: {p:?}");
            assert!(p.iter().any(|x| x.contains("reserved for Slipway's own images")), "{image}: {p:?}");
        }
        // Running Slipway's base image as a prebuilt service is fine.
        ok("services: {tools: {image: 'slipway/busybox:1'}}");
    }

    #[test]
    fn the_convox_manifest_key_needs_a_build_and_must_not_conflict() {
        let p = problems("services: {api: {image: x, manifest: Dockerfile.p}}");
        assert!(
            has(
                &p,
                "services.api.manifest: `manifest` names the Dockerfile for `build`"
            ),
            "{p:?}"
        );
        let p = problems("services: {api: {build: {context: ., dockerfile: A}, manifest: B}}");
        assert!(
            has(
                &p,
                "services.api.manifest: conflicts with `build.dockerfile`"
            ),
            "{p:?}"
        );
        let m = ok("services: {api: {build: {context: api}, manifest: Dockerfile.p}}");
        assert_eq!(
            m.services["api"]
                .build
                .as_ref()
                .map(|b| b.dockerfile.as_str()),
            Some("Dockerfile.p")
        );
    }

    #[test]
    fn build_args_and_environment_are_checked() {
        let p = problems("services: {api: {build: {context: ., args: [NOVALUE, 1X=2]}, environment: {bad-name: x}}}");
        assert_eq!(
            p,
            [
                "services.api.build.args[0]: build argument `NOVALUE` needs a value: write `NOVALUE=value`",
                "services.api.build.args[1]: invalid build argument name `1X`: must be letters, digits and `_`, not starting with a digit (write `NAME=value`)",
                "services.api.environment.bad-name: invalid environment variable name `bad-name`: must be letters, digits and `_`, not starting with a digit",
            ]
        );
    }

    #[test]
    fn unusual_keys_are_quoted_in_paths() {
        let p = problems("services:\n  \"a b\": {image: x}\n  1: {image: y}\n");
        assert_eq!(
            p,
            [
                "services: keys must be strings, found the number `1`",
                r#"services["a b"]: invalid service name `a b`: must start with a lowercase letter and contain only lowercase letters, digits and `-` (at most 63 characters)"#,
            ]
        );
    }

    #[test]
    fn a_problem_at_the_root_displays_only_its_message() {
        assert_eq!(Problem::new("", "oops").to_string(), "oops");
        assert_eq!(
            Problem::new("services.api.build.context", "directory not found").to_string(),
            "services.api.build.context: directory not found"
        );
        let errs = ManifestErrors(vec![Problem::new("a", "x"), Problem::new("b", "y")]);
        assert_eq!(errs.to_string(), "a: x\nb: y");
        assert_eq!(errs.problems().len(), 2);
    }

    #[test]
    fn oversized_manifests_are_refused() {
        let huge = format!(
            "services: {{a: {{image: x}}}}\n#{}",
            "x".repeat(MAX_MANIFEST_BYTES)
        );
        assert!(problems(&huge)[0].contains("the limit is"));
    }

    #[test]
    fn an_alias_bomb_is_refused_naming_the_node_limit() {
        let mut bomb = String::from("x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..=9 {
            let p = i - 1;
            bomb.push_str(&format!("x-a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        bomb.push_str("services: {api: {image: x}}\n");
        let found = problems(&bomb);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains(&format!("the limit is {MAX_MANIFEST_NODES} nodes")), "{found:?}");
    }

    #[test]
    fn deeply_nested_manifests_are_refused_naming_the_depth_limit() {
        let deep = format!("services: {{api: {{image: x}}}}\nx-deep: {}1{}\n", "[".repeat(100), "]".repeat(100));
        let found = problems(&deep);
        assert!(found[0].contains(&format!("the limit is {MAX_MANIFEST_DEPTH} levels")), "{found:?}");
    }

    #[test]
    fn service_name_rules_follow_the_pattern() {
        assert!(is_slug("a"));
        assert!(is_slug("api-v2"));
        assert!(is_slug(&format!("a{}", "b".repeat(62))));
        assert!(!is_slug(&format!("a{}", "b".repeat(63))));
        assert!(!is_slug("2api"));
        assert!(!is_slug("-api"));
        assert!(!is_slug("api_v2"));
        assert!(!is_slug(""));
    }
}
