//! What is wrong with a manifest and where: [`Problem`] (a path in the
//! document and a message), [`ManifestErrors`] (all of them), and the
//! helpers that build paths and messages.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use serde_yaml::Value;

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


/// Describes a YAML value for "expected X, found Y" messages.
pub(super) fn describe(v: &Value) -> String {
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
pub(super) fn yaml_error_message(e: &serde_yaml::Error) -> String {
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
pub(super) fn join_key(parent: &str, key: &str) -> String {
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
pub(super) fn join_index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// `a, b, c`, or `(none)`.
pub(super) fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

