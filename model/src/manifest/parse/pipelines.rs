//! The `pipelines` section: named pipelines of build, release and deploy
//! steps (in either spelling), their `depends_on` graph checked for
//! unknown steps and cycles.

use std::collections::BTreeSet;

use super::*;

const PIPELINE_KEYS: &[&str] = &["steps"];
const STEP_KEYS: &[&str] = &["name", "depends_on", "build", "release", "deploy", "action"];
const STEP_ACTIONS: &[&str] = &["build", "release", "deploy"];
const BUILD_STEP_KEYS: &[&str] = &["services"];
const RELEASE_STEP_KEYS: &[&str] = &["tag", "version"];
const DEPLOY_STEP_KEYS: &[&str] = &["environment", "env_name"];
const EVE_BUILD_KEYS: &[&str] = &["type", "services"];
const EVE_RELEASE_KEYS: &[&str] = &["type", "tag", "version"];
const EVE_DEPLOY_KEYS: &[&str] = &["type", "env_name", "environment"];

impl Parser {
    // ----- pipelines ---------------------------------------------------------------------

    pub(super) fn pipelines(
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

