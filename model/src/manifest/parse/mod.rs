//! The hand parser: walks a `serde_yaml::Value`, collecting every problem
//! with its path in one pass. This file holds the parser's state, the
//! readers of single values it shares, and the top level; each section of
//! the document has its own file.

mod environments;
mod pipelines;
mod registry;
mod services;

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::problems::{describe, join_index, join_key, list_or_none, yaml_error_message};
use super::rules::{is_slug, is_var_name};
use super::suggest::suggest;
use super::types::*;
use super::{Problem, MAX_MANIFEST_BYTES, MAX_MANIFEST_DEPTH, MAX_MANIFEST_NODES};

const TOP_LEVEL_KEYS: &[&str] = &["name", "registry", "services", "environments", "pipelines"];

const SLUG_RULE: &str =
    "must start with a lowercase letter and contain only lowercase letters, digits and `-` (at most 63 characters)";
const VAR_RULE: &str = "must be letters, digits and `_`, not starting with a digit";

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
}

/// Parses as much as possible: the manifest built from the parts that are valid, and
/// every problem found.
pub(super) fn parse_partial(yaml: &str) -> (Manifest, Vec<Problem>) {
    let mut parser = Parser::default();
    let manifest = parser.manifest(yaml);
    (manifest, parser.problems)
}
