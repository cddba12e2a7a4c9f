//! Repository paths in a manifest: a build context must stay inside the
//! repository, and a Dockerfile is normalised relative to its context.

/// Splits a relative path into components, resolving `.` and `..` lexically; returns the
/// number of `..` that climbed above the start, and the remaining components.
pub(super) fn lexical(raw: &str) -> (usize, Vec<&str>) {
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
pub(super) fn join_parts(parts: &[&str]) -> String {
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

/// What is wrong with the shape of a repository path, if anything.
pub(super) fn path_shape_problem(raw: &str, what: &str) -> Option<String> {
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
pub(super) fn normalise_context(raw: &str) -> Result<String, String> {
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
pub(super) fn normalise_dockerfile(context: &str, raw: &str) -> Result<String, String> {
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

