//! Image references as Docker reads them, reduced to one canonical text so
//! that `busybox`, `docker.io/library/busybox:latest` and
//! `index.docker.io/library/busybox` compare equal; and patterns of the
//! allowed-images list (`docker.io/library/*`) matched against them.

/// A reference split into its parts, with Docker's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host (with port), lowercase; `docker.io` when none is named.
    pub domain: String,
    /// Repository path, e.g. `library/busybox` or `demo/api`.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses a reference as `FROM` would read it. `None` when it is not a
    /// well-formed reference (empty, stray characters, empty components).
    pub fn parse(text: &str) -> Option<ImageRef> {
        let text = text.trim();
        if text.is_empty() || !text.chars().all(|c| c.is_ascii_alphanumeric() || "._-/:@+*".contains(c)) {
            return None;
        }
        let (name, digest) = match text.split_once('@') {
            Some((n, d)) => {
                let (algo, hex) = d.split_once(':')?;
                if algo.is_empty() || hex.is_empty() || d.contains('@') {
                    return None;
                }
                (n, Some(d.to_string()))
            }
            None => (text, None),
        };
        let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &name[last_slash + i + 1..];
                if tag.is_empty() || tag.contains('/') {
                    return None;
                }
                (&name[..last_slash + i], Some(tag.to_string()))
            }
            None => (name, None),
        };
        let (domain, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" || first.chars().any(|c| c.is_ascii_uppercase()) => {
                (first.to_ascii_lowercase(), rest.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" { "docker.io".to_string() } else { domain };
        let path = if domain == "docker.io" && !path.contains('/') { format!("library/{path}") } else { path };
        if path.is_empty() || path.split('/').any(|c| c.is_empty()) || path.contains(':') || path.contains('+') {
            return None;
        }
        if tag.as_deref().is_some_and(|t| t.contains('+')) {
            return None;
        }
        Some(ImageRef { domain, path, tag, digest })
    }

    /// `domain/path`, the repository without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `domain/path[:tag][@digest]`, with `:latest` when neither is given.
    pub fn canonical(&self) -> String {
        let mut s = self.repository();
        match (&self.tag, &self.digest) {
            (None, None) => s.push_str(":latest"),
            (tag, digest) => {
                if let Some(t) = tag {
                    s.push(':');
                    s.push_str(t);
                }
                if let Some(d) = digest {
                    s.push('@');
                    s.push_str(d);
                }
            }
        }
        s
    }
}

/// Host of a registry as written in settings (`127.0.0.1:5000`), without a
/// scheme or trailing slash, lowercase.
pub fn normalize_host(host: &str) -> String {
    let h = host.trim();
    let h = h.strip_prefix("https://").or_else(|| h.strip_prefix("http://")).unwrap_or(h);
    h.trim_end_matches('/').to_ascii_lowercase()
}

/// Whether `image` lies in the project's own namespace of Slipway's
/// registry: `<registry host>/<project slug>/…`.
///
/// Used by the registry token issuer (paths in Slipway's registry); the
/// base-image check asks [`slipway_model::image_name::is_project_image`],
/// which also knows the project's local namespace.
pub fn is_project_image(image: &ImageRef, project_slug: &str, registry_host: &str) -> bool {
    image.domain == normalize_host(registry_host) && is_project_repository(&image.path, project_slug)
}

/// Whether a repository path of Slipway's registry (`demo/api`) belongs to the project.
pub fn is_project_repository(path: &str, project_slug: &str) -> bool {
    !project_slug.is_empty() && path.strip_prefix(project_slug).is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
}

/// An entry of the allowed-images list: a reference, optionally with `*`
/// wildcards. Without a tag, digest or wildcard it allows every tag and
/// digest of that repository; `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePattern {
    /// Canonical text (see [`ImagePattern::parse`]).
    text: String,
    /// The repository part (`domain/path`, possibly with `*`).
    repository: String,
    /// True when the pattern names a repository only, without wildcards.
    repository_only: bool,
}

impl ImagePattern {
    /// Parses and canonicalises a pattern (`busybox` → `docker.io/library/busybox`);
    /// the error says what is wrong.
    pub fn parse(text: &str) -> Result<ImagePattern, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        if trimmed.len() > 512 {
            return Err("must be at most 512 characters".into());
        }
        if trimmed.starts_with('*') {
            return Err("must name a registry or repository before any `*` (a leading `*` would allow images of every registry)".into());
        }
        let parsed = ImageRef::parse(trimmed)
            .ok_or_else(|| format!("`{trimmed}` is not an image reference or pattern (e.g. `docker.io/library/*`, `slipway/busybox:1`)"))?;
        let untagged = parsed.tag.is_none() && parsed.digest.is_none();
        let text = if untagged { parsed.repository() } else { parsed.canonical() };
        Ok(ImagePattern { text, repository: parsed.repository(), repository_only: untagged && !trimmed.contains('*') })
    }

    /// The canonical text, as stored and shown.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this pattern allows the image.
    pub fn allows(&self, image: &ImageRef) -> bool {
        if self.repository_only {
            return self.text == image.repository();
        }
        glob(&self.text, &image.canonical())
    }

    /// Whether this pattern covers some tag of `repository` (`domain/path`):
    /// registry tokens grant per repository, not per tag.
    pub fn covers_repository(&self, repository: &str) -> bool {
        glob(&self.repository, repository)
    }
}

/// `*` matches any run of characters (including none); everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        ImageRef::parse(s).map(|r| r.canonical()).unwrap_or_else(|| "<invalid>".into())
    }

    #[test]
    fn references_take_dockers_defaults() {
        assert_eq!(canon("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(canon("index.docker.io/library/busybox:1"), "docker.io/library/busybox:1");
        assert_eq!(canon("slipway/busybox:1"), "docker.io/slipway/busybox:1");
        assert_eq!(canon("127.0.0.1:5000/demo/api:sha-0123"), "127.0.0.1:5000/demo/api:sha-0123");
        assert_eq!(canon("localhost/x"), "localhost/x:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(canon(&format!("127.0.0.1:5000/demo/api@{d}")), format!("127.0.0.1:5000/demo/api@{d}"));
        for bad in ["", "a b", "x:", "a//b", "$X", "x@", "127.0.0.1:5000/"] {
            assert_eq!(canon(bad), "<invalid>", "{bad}");
        }
    }

    #[test]
    fn project_images_are_those_under_the_slug_on_slipways_registry() {
        let r = |s: &str| ImageRef::parse(s).unwrap();
        assert!(is_project_image(&r("127.0.0.1:5000/demo/api:sha-1"), "demo", "127.0.0.1:5000"));
        assert!(!is_project_image(&r("127.0.0.1:5000/demo-2/api:sha-1"), "demo", "127.0.0.1:5000"));
        assert!(!is_project_image(&r("127.0.0.1:5000/demo"), "demo", "127.0.0.1:5000"));
        assert!(!is_project_image(&r("localhost:5000/demo/api"), "demo", "127.0.0.1:5000"));
        assert!(!is_project_image(&r("demo/api"), "demo", "127.0.0.1:5000"));
    }

    #[test]
    fn patterns_allow_repositories_tags_and_wildcards() {
        let p = |s: &str| ImagePattern::parse(s).unwrap();
        let r = |s: &str| ImageRef::parse(s).unwrap();
        assert_eq!(p("busybox").as_str(), "docker.io/library/busybox");
        assert!(p("busybox").allows(&r("docker.io/library/busybox:1.36")));
        assert!(p("slipway/busybox:1").allows(&r("slipway/busybox:1")));
        assert!(!p("slipway/busybox:1").allows(&r("slipway/busybox:2")));
        assert!(p("docker.io/library/*").allows(&r("alpine:3")));
        assert!(!p("docker.io/library/*").allows(&r("127.0.0.1:5000/library/alpine")));
        assert!(p("127.0.0.1:5000/shared/*").allows(&r("127.0.0.1:5000/shared/base:1")));
        assert!(!p("127.0.0.1:5000/shared/*").allows(&r("127.0.0.1:5000/other/base:1")));
        assert!(ImagePattern::parse("*").is_err());
        assert!(ImagePattern::parse("").is_err());
        assert!(ImagePattern::parse("a b").is_err());
    }

    #[test]
    fn patterns_cover_repositories_for_registry_tokens() {
        let p = |s: &str| ImagePattern::parse(s).unwrap();
        assert!(p("127.0.0.1:5000/shared/base:1").covers_repository("127.0.0.1:5000/shared/base"));
        assert!(p("127.0.0.1:5000/shared/*").covers_repository("127.0.0.1:5000/shared/base"));
        assert!(p("127.0.0.1:5000/shared/base").covers_repository("127.0.0.1:5000/shared/base"));
        assert!(!p("127.0.0.1:5000/shared/base").covers_repository("127.0.0.1:5000/shared/base2"));
        assert!(!p("127.0.0.1:5000/shared/*").covers_repository("127.0.0.1:5000/other/base"));
        assert!(!p("docker.io/library/*").covers_repository("127.0.0.1:5000/library/x"));
    }
}
