//! Finds every image a Dockerfile would make BuildKit read — `FROM`,
//! `COPY --from=`, `RUN --mount=…,from=`, the `# syntax=` frontend and
//! `ONBUILD` triggers — and resolves each with the build's args, the way the
//! Dockerfile frontend does: line continuations, the escape directive,
//! quotes, `$VAR`/`${VAR}`/`${VAR:-w}`/`${VAR:+w}`, global `ARG`s for `FROM`,
//! stage `ARG`/`ENV` for flags, stage names and indexes.
//!
//! Where the frontend's answer cannot be known from the text alone (a
//! variable the base image's `ENV` might set, an expansion form not handled
//! here) the reference is [`Resolved::Unknown`], which the check refuses:
//! this scanner errs towards refusing, never towards allowing.

use std::collections::{BTreeMap, HashMap};

/// One image reference found in a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// 1-based line of the instruction (its first line when continued).
    pub line: usize,
    /// What refers to it, e.g. `FROM`, `COPY --from`, `RUN --mount from`, `# syntax`.
    pub instruction: String,
    /// The reference as written, before substitution.
    pub written: String,
    pub resolved: Resolved,
}

/// What a reference turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// `FROM scratch`: no image at all.
    Scratch,
    /// An earlier stage of the same Dockerfile (its name or index).
    Stage(String),
    /// An image reference after substitution.
    Image(String),
    /// Cannot be decided from the text; the reason says why.
    Unknown(String),
}

/// Build args whose values the frontend supplies itself in the global scope.
fn platform_args() -> BTreeMap<&'static str, String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        other => other,
    };
    let mut m = BTreeMap::new();
    for prefix in ["TARGET", "BUILD"] {
        m.insert(if prefix == "TARGET" { "TARGETPLATFORM" } else { "BUILDPLATFORM" }, format!("linux/{arch}"));
        m.insert(if prefix == "TARGET" { "TARGETOS" } else { "BUILDOS" }, "linux".to_string());
        m.insert(if prefix == "TARGET" { "TARGETARCH" } else { "BUILDARCH" }, arch.to_string());
        m.insert(if prefix == "TARGET" { "TARGETVARIANT" } else { "BUILDVARIANT" }, String::new());
    }
    m
}

/// A logical line: an instruction with its continuation lines joined.
struct Logical {
    line: usize,
    text: String,
}

/// The parser directives at the top (`# escape=`, `# syntax=`), and the
/// logical lines after them.
fn logical_lines(text: &str) -> (char, Vec<(usize, String)>, Vec<Logical>) {
    let mut escape = '\\';
    let mut syntax = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    // Directives: only at the very top, until the first line that is not one.
    for raw in &lines {
        match directive(raw) {
            Some((key, value)) if key == "escape" => {
                if let Some(c) = value.chars().next().filter(|c| *c == '`' || *c == '\\') {
                    escape = c;
                }
            }
            Some(_) => {}
            None => break,
        }
    }
    // A `syntax` line anywhere is checked: refusing a harmless comment is
    // cheaper than missing a frontend image.
    for (i, raw) in lines.iter().enumerate() {
        if let Some((key, value)) = directive(raw) {
            if key == "syntax" {
                syntax.push((i + 1, value));
            }
        }
    }
    let mut out = Vec::new();
    let mut current: Option<Logical> = None;
    for (i, raw) in lines.iter().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.starts_with('#') {
            // Comments never continue or end an instruction.
            continue;
        }
        if trimmed.trim().is_empty() {
            // Blank lines neither start nor end an instruction (the frontend
            // skips them inside a continuation too).
            continue;
        }
        let body = raw.trim_end();
        let (piece, continues) = match body.strip_suffix(escape) {
            // `\\` at the end is an escaped escape in a word, still a continuation for the frontend.
            Some(rest) => (rest, true),
            None => (body, false),
        };
        let entry = current.get_or_insert_with(|| Logical { line: i + 1, text: String::new() });
        entry.text.push_str(piece);
        if continues {
            continue;
        }
        if let Some(done) = current.take() {
            out.push(done);
        }
    }
    if let Some(done) = current.take() {
        out.push(done);
    }
    (escape, syntax, out)
}

/// `# key=value` with a word key: a parser directive (lowercase key).
fn directive(raw: &str) -> Option<(String, String)> {
    let rest = raw.trim().strip_prefix('#')?;
    let (key, value) = rest.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((key.to_ascii_lowercase(), value.trim().to_string()))
}

/// Splits instruction arguments into words at unquoted whitespace, keeping
/// quotes and escapes in the words (they are removed on expansion).
fn split_words(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                word.push(c);
                if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            None => {
                word.push(c);
                if c == escape {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Variables visible to an expansion.
trait Lookup {
    /// `Ok(Some(v))`: set to v; `Ok(None)`: unset (expands to nothing);
    /// `Err(reason)`: the value cannot be known.
    fn get(&self, name: &str) -> Result<Option<String>, String>;
}

/// Removes quotes and escapes and expands variables, as the frontend does
/// for a word. Forms other than `$N`, `${N}`, `${N:-w}`, `${N:+w}` are an error.
fn expand(word: &str, escape: char, vars: &dyn Lookup) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut in_double = false;
    while i < chars.len() {
        let c = chars[i];
        if c == escape {
            if let Some(n) = chars.get(i + 1) {
                out.push(*n);
            }
            i += 2;
            continue;
        }
        if c == '\'' && !in_double {
            let end = chars[i + 1..].iter().position(|x| *x == '\'').ok_or("an unterminated single quote")?;
            out.extend(&chars[i + 1..i + 1 + end]);
            i += end + 2;
            continue;
        }
        if c == '"' {
            in_double = !in_double;
            i += 1;
            continue;
        }
        if c == '$' {
            let (value, used) = expand_var(&chars[i + 1..], escape, vars)?;
            out.push_str(&value);
            i += 1 + used;
            continue;
        }
        out.push(c);
        i += 1;
    }
    if in_double {
        return Err("an unterminated double quote".into());
    }
    Ok(out)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands the variable after a `$`; returns the value and how many chars were used.
fn expand_var(rest: &[char], escape: char, vars: &dyn Lookup) -> Result<(String, usize), String> {
    match rest.first() {
        Some('{') => {
            // Find the matching brace (nested `${…}` in a default word count).
            let mut depth = 0;
            let mut end = None;
            for (j, c) in rest.iter().enumerate() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end.ok_or("an unterminated ${")?;
            let inner: String = rest[1..end].iter().collect();
            let name_len = inner.chars().take_while(|c| is_name_char(*c)).count();
            let name = &inner[..name_len];
            if name.is_empty() {
                return Err(format!("`${{{inner}}}` is not a variable"));
            }
            let op = &inner[name_len..];
            let value = vars.get(name)?;
            let result = if op.is_empty() {
                value.unwrap_or_default()
            } else if let Some(word) = op.strip_prefix(":-") {
                match value.filter(|v| !v.is_empty()) {
                    Some(v) => v,
                    None => expand(word, escape, vars)?,
                }
            } else if let Some(word) = op.strip_prefix(":+") {
                match value.filter(|v| !v.is_empty()) {
                    Some(_) => expand(word, escape, vars)?,
                    None => String::new(),
                }
            } else {
                return Err(format!("the expansion `${{{inner}}}` is not one this check understands (use ${{{name}}}, ${{{name}:-default}} or ${{{name}:+alt}})"));
            };
            Ok((result, end + 1))
        }
        Some(c) if is_name_char(*c) => {
            let len = rest.iter().take_while(|c| is_name_char(**c)).count();
            let name: String = rest[..len].iter().collect();
            Ok((vars.get(&name)?.unwrap_or_default(), len))
        }
        _ => Ok(("$".to_string(), 0)),
    }
}

/// The global scope: `ARG`s before the first `FROM`, and the platform args.
struct Global {
    args: HashMap<String, Option<String>>,
}

impl Lookup for Global {
    fn get(&self, name: &str) -> Result<Option<String>, String> {
        if let Some(v) = self.args.get(name) {
            return Ok(v.clone());
        }
        Ok(platform_args().get(name).cloned())
    }
}

/// A stage's scope: its `ENV` (inherited from a parent stage) and `ARG`s.
#[derive(Clone, Default)]
struct Scope {
    /// `None`: set, to a value this check could not resolve.
    env: HashMap<String, Option<String>>,
    args: HashMap<String, Option<String>>,
    /// The stage descends from an image, whose `ENV` is not known here.
    image_rooted: bool,
}

impl Lookup for Scope {
    fn get(&self, name: &str) -> Result<Option<String>, String> {
        match self.env.get(name) {
            Some(Some(v)) => return Ok(Some(v.clone())),
            Some(None) => return Err(format!("${name} is set by an ENV whose value this check cannot resolve")),
            None => {}
        }
        if self.image_rooted {
            return Err(format!(
                "${name} may be set by the base image's ENV, which this check cannot see; write the reference literally or set it with ENV in the Dockerfile"
            ));
        }
        Ok(self.args.get(name).cloned().flatten())
    }
}

/// A stage seen so far.
struct Stage {
    name: Option<String>,
    scope: Scope,
}

/// Lists the images `dockerfile` refers to, resolved with `build_args`.
pub fn image_uses(dockerfile: &str, build_args: &BTreeMap<String, String>) -> Vec<ImageUse> {
    let (escape, syntax, lines) = logical_lines(dockerfile);
    let mut uses = Vec::new();
    for (line, value) in syntax {
        let resolved = if value.is_empty() { Resolved::Unknown("an empty syntax directive".into()) } else { Resolved::Image(value.clone()) };
        uses.push(ImageUse { line, instruction: "# syntax".into(), written: value, resolved });
    }
    if let Some(v) = build_args.get("BUILDKIT_SYNTAX") {
        uses.push(ImageUse { line: 0, instruction: "build arg BUILDKIT_SYNTAX".into(), written: v.clone(), resolved: Resolved::Image(v.clone()) });
    }
    let mut global = Global { args: HashMap::new() };
    let mut stages: Vec<Stage> = Vec::new();
    for logical in lines {
        let words = split_words(&logical.text, escape);
        let Some(first) = words.first() else { continue };
        let keyword = first.to_ascii_uppercase();
        let args = &words[1..];
        let mut push = |instruction: &str, written: &str, resolved: Resolved| {
            uses.push(ImageUse { line: logical.line, instruction: instruction.to_string(), written: written.to_string(), resolved });
        };
        match keyword.as_str() {
            "ARG" => {
                for a in args {
                    let (name, default) = match a.split_once('=') {
                        Some((n, d)) => (n.to_string(), Some(d.to_string())),
                        None => (a.clone(), None),
                    };
                    match stages.last_mut() {
                        None => {
                            let value = match build_args.get(&name) {
                                Some(v) => Some(v.clone()),
                                None => match default {
                                    Some(d) => expand(&d, escape, &global).ok(),
                                    None => None,
                                },
                            };
                            global.args.insert(name, value);
                        }
                        Some(stage) => {
                            let value = match build_args.get(&name) {
                                Some(v) => Some(v.clone()),
                                None => match default {
                                    Some(d) => expand(&d, escape, &stage.scope).ok(),
                                    None => global.args.get(&name).cloned().flatten().or_else(|| platform_args().get(name.as_str()).cloned()),
                                },
                            };
                            stage.scope.args.insert(name, value);
                        }
                    }
                }
            }
            "ENV" => {
                let Some(stage) = stages.last_mut() else { continue };
                let pairs: Vec<(String, String)> = if args.first().is_some_and(|a| a.contains('=')) {
                    args.iter().filter_map(|a| a.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect()
                } else if let Some((name, rest)) = args.split_first() {
                    vec![(name.clone(), rest.join(" "))]
                } else {
                    Vec::new()
                };
                for (k, v) in pairs {
                    let value = expand(&v, escape, &stage.scope).ok();
                    stage.scope.env.insert(k, value);
                }
            }
            "FROM" => {
                let rest: Vec<&String> = args.iter().skip_while(|w| w.starts_with("--")).collect();
                let Some(written) = rest.first() else {
                    push("FROM", "", Resolved::Unknown("FROM names no image".into()));
                    stages.push(Stage { name: None, scope: Scope { image_rooted: true, ..Default::default() } });
                    continue;
                };
                let name = match (rest.get(1), rest.get(2)) {
                    (Some(kw), Some(n)) if kw.eq_ignore_ascii_case("as") => Some(n.to_ascii_lowercase()),
                    _ => None,
                };
                let resolved = match expand(written, escape, &global) {
                    Err(e) => Resolved::Unknown(e),
                    Ok(v) if v.eq_ignore_ascii_case("scratch") => Resolved::Scratch,
                    Ok(v) => match stages.iter().position(|s| s.name.as_deref() == Some(v.to_ascii_lowercase().as_str())) {
                        Some(_) => Resolved::Stage(v.to_ascii_lowercase()),
                        None => Resolved::Image(v),
                    },
                };
                let scope = match &resolved {
                    Resolved::Scratch => Scope::default(),
                    Resolved::Stage(parent) => {
                        let mut s = stages.iter().find(|s| s.name.as_deref() == Some(parent.as_str())).map(|s| s.scope.clone()).unwrap_or_default();
                        s.args.clear();
                        s
                    }
                    _ => Scope { image_rooted: true, ..Default::default() },
                };
                push("FROM", written, resolved);
                stages.push(Stage { name, scope });
            }
            "COPY" | "ADD" => {
                let scope = stages.last().map(|s| s.scope.clone()).unwrap_or_default();
                for flag in args.iter().take_while(|w| w.starts_with("--")) {
                    if let Some(value) = flag_value(flag, "from") {
                        let resolved = resolve_flag(value, escape, &scope, &stages);
                        push(&format!("{keyword} --from"), value, resolved);
                    }
                }
            }
            "RUN" => {
                let scope = stages.last().map(|s| s.scope.clone()).unwrap_or_default();
                for flag in args.iter().take_while(|w| w.starts_with("--")) {
                    if let Some(value) = flag_value(flag, "mount") {
                        for (written, resolved) in mount_sources(value, escape, &scope, &stages) {
                            push("RUN --mount from", &written, resolved);
                        }
                    }
                }
            }
            "ONBUILD" => {
                // Runs in whatever build uses this image as a base, with that
                // build's variables: only literal, allowed references pass.
                let Some(inner) = args.first().map(|w| w.to_ascii_uppercase()) else { continue };
                let literal = |v: &str| {
                    if v.contains('$') {
                        Resolved::Unknown("an ONBUILD trigger expands variables in the downstream build; write the reference literally".into())
                    } else {
                        expand(v, escape, &Scope::default()).map(Resolved::Image).unwrap_or_else(Resolved::Unknown)
                    }
                };
                for flag in args[1..].iter().take_while(|w| w.starts_with("--")) {
                    if inner == "COPY" || inner == "ADD" {
                        if let Some(v) = flag_value(flag, "from") {
                            push(&format!("ONBUILD {inner} --from"), v, literal(v));
                        }
                    }
                    if inner == "RUN" {
                        if let Some(v) = flag_value(flag, "mount") {
                            for (written, resolved) in mount_sources(v, escape, &Scope::default(), &[]) {
                                let resolved = match resolved {
                                    Resolved::Image(_) | Resolved::Stage(_) => literal(&written),
                                    other => other,
                                };
                                push("ONBUILD RUN --mount from", &written, resolved);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    uses
}

/// The value of `--name=value` (name matched case-insensitively).
fn flag_value<'a>(flag: &'a str, name: &str) -> Option<&'a str> {
    let body = flag.strip_prefix("--")?;
    let (key, value) = body.split_once('=')?;
    key.eq_ignore_ascii_case(name).then_some(value)
}

/// A `--from` value: an earlier stage (name or index) or an image.
fn resolve_flag(written: &str, escape: char, scope: &Scope, stages: &[Stage]) -> Resolved {
    match expand(written, escape, scope) {
        Err(e) => Resolved::Unknown(e),
        Ok(v) => {
            let lower = v.to_ascii_lowercase();
            if stages.iter().any(|s| s.name.as_deref() == Some(lower.as_str())) {
                return Resolved::Stage(lower);
            }
            // The current stage is the last one: only earlier ones are sources.
            match v.parse::<usize>() {
                Ok(i) if i + 1 < stages.len() => Resolved::Stage(v),
                _ => Resolved::Image(v),
            }
        }
    }
}

/// The `from=` sources of a `--mount` value (CSV of key=value fields).
fn mount_sources(value: &str, escape: char, scope: &Scope, stages: &[Stage]) -> Vec<(String, Resolved)> {
    let unquoted = match expand(value, escape, &NoVars) {
        Ok(v) => v,
        // Variables are expanded per field below; quotes only here.
        Err(_) => value.replace(['"', '\''], ""),
    };
    let mut found = Vec::new();
    for field in csv_fields(&unquoted) {
        let (key, v) = field.split_once('=').unwrap_or((field.as_str(), ""));
        if key.trim().eq_ignore_ascii_case("from") {
            found.push((v.to_string(), resolve_flag(v, escape, scope, stages)));
        }
    }
    if found.is_empty() && unquoted.to_ascii_lowercase().contains("from") {
        found.push((value.to_string(), Resolved::Unknown("a --mount whose `from` this check could not read".into())));
    }
    found
}

/// Quote removal without expanding: `$` stays as written.
struct NoVars;

impl Lookup for NoVars {
    fn get(&self, name: &str) -> Result<Option<String>, String> {
        Err(format!("${name}"))
    }
}

/// Comma-separated fields; a field in double quotes may hold commas (`""` is a quote).
fn csv_fields(text: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses(df: &str, args: &[(&str, &str)]) -> Vec<(usize, String, Resolved)> {
        let args = args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        image_uses(df, &args).into_iter().map(|u| (u.line, u.instruction, u.resolved)).collect()
    }

    fn img(s: &str) -> Resolved {
        Resolved::Image(s.into())
    }

    #[test]
    fn from_lines_stages_and_scratch_are_told_apart() {
        let df = "FROM busybox AS build\nRUN true\nfrom build\nFROM scratch\nCOPY --from=build /a /a\nCOPY --from=0 /b /b\nCOPY --from=other/img /c /c\n";
        assert_eq!(
            uses(df, &[]),
            vec![
                (1, "FROM".into(), img("busybox")),
                (3, "FROM".into(), Resolved::Stage("build".into())),
                (4, "FROM".into(), Resolved::Scratch),
                (5, "COPY --from".into(), Resolved::Stage("build".into())),
                (6, "COPY --from".into(), Resolved::Stage("0".into())),
                (7, "COPY --from".into(), img("other/img")),
            ]
        );
    }

    #[test]
    fn global_args_and_build_args_resolve_from() {
        let df = "ARG REG=127.0.0.1:5000\nARG NAME=demo/api\nARG TAG\nFROM ${REG}/$NAME:${TAG:-latest}\n";
        assert_eq!(uses(df, &[]), vec![(4, "FROM".into(), img("127.0.0.1:5000/demo/api:latest"))]);
        assert_eq!(uses(df, &[("NAME", "other/api"), ("TAG", "sha-1")]), vec![(4, "FROM".into(), img("127.0.0.1:5000/other/api:sha-1"))]);
        // An undeclared build arg does not reach FROM.
        assert_eq!(uses("FROM x$UNDECLARED\n", &[("UNDECLARED", "y")]), vec![(1, "FROM".into(), img("x"))]);
        assert_eq!(uses("FROM --platform=$BUILDPLATFORM \"a/b\":1 AS s\n", &[]), vec![(1, "FROM".into(), img("a/b:1"))]);
    }

    #[test]
    fn continuations_comments_and_the_escape_directive_are_followed() {
        let df = "FROM scratch\nCOPY \\\n  # a comment inside\n  --from=127.0.0.1:5000/b/api:1 \\\n  / /x\n";
        assert_eq!(uses(df, &[])[1], (2, "COPY --from".into(), img("127.0.0.1:5000/b/api:1")));
        let df = "FROM scratch\nCOPY \\\n\n  --from=b/api / /x\n";
        assert_eq!(uses(df, &[])[1], (2, "COPY --from".into(), img("b/api")));
        let df = "# escape=`\nFROM scratch\nCOPY `\n --from=b/api / /x\n";
        assert_eq!(uses(df, &[])[1], (3, "COPY --from".into(), img("b/api")));
    }

    #[test]
    fn run_mounts_onbuild_and_syntax_are_found() {
        let df = "# syntax=127.0.0.1:5000/b/frontend\nFROM scratch AS s\nFROM busybox\nRUN --mount=type=bind,from=127.0.0.1:5000/b/api,target=/x --mount=type=cache,target=/c,from=s true\nONBUILD COPY --from=b/api / /\n";
        let found = uses(df, &[("BUILDKIT_SYNTAX", "evil/frontend")]);
        assert!(found.contains(&(1, "# syntax".into(), img("127.0.0.1:5000/b/frontend"))), "{found:?}");
        assert!(found.contains(&(0, "build arg BUILDKIT_SYNTAX".into(), img("evil/frontend"))), "{found:?}");
        assert!(found.contains(&(4, "RUN --mount from".into(), img("127.0.0.1:5000/b/api"))), "{found:?}");
        assert!(found.contains(&(4, "RUN --mount from".into(), Resolved::Stage("s".into()))), "{found:?}");
        assert!(found.contains(&(5, "ONBUILD COPY --from".into(), img("b/api"))), "{found:?}");
    }

    #[test]
    fn variables_a_base_image_could_set_are_unknown() {
        let df = "FROM busybox\nARG SRC=ok/image\nCOPY --from=$SRC / /\n";
        assert!(matches!(uses(df, &[])[1].2, Resolved::Unknown(_)));
        let df = "FROM busybox\nENV SRC=b/api\nCOPY --from=${SRC} / /\n";
        assert_eq!(uses(df, &[])[1].2, img("b/api"));
        let df = "FROM scratch\nARG SRC=b/api\nCOPY --from=$SRC / /\n";
        assert_eq!(uses(df, &[("SRC", "c/api")])[1].2, img("c/api"));
        let df = "ARG X\nFROM ${X/a/b}\n";
        assert!(matches!(uses(df, &[])[0].2, Resolved::Unknown(_)));
        let df = "FROM scratch\nRUN --mount=\"type=bind,FROM=b/api\" true\n";
        assert_eq!(uses(df, &[])[1].2, img("b/api"));
    }
}
