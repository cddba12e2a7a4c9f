//! The `environments` section: the promotion path in order, each with its
//! approval gate and deploy target (a list, or a mapping by name).

use super::*;
use crate::manifest::rules::is_dns_label;
use crate::manifest::MAX_WAIT_TIMER_SECONDS;

const ENVIRONMENT_KEYS: &[&str] = &["name", "approval", "target"];
const APPROVAL_KEYS: &[&str] = &["required", "approvers", "wait_timer_seconds"];
const TARGET_KEYS: &[&str] = &["kind", "namespace", "cluster"];

impl Parser {
    // ----- environments ------------------------------------------------------------------

    pub(super) fn environments(&mut self, path: &str, v: &Value) -> Vec<Environment> {
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
