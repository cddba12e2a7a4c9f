//! Rules for single values of a manifest: service and environment names,
//! variable names, Kubernetes namespaces, image references and ports.

/// `^[a-z][a-z0-9-]{0,62}$`
pub(super) fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`
pub(super) fn is_var_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// A Kubernetes namespace: an RFC 1123 label.
pub(super) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether an image reference carries a tag (`:tag` in its last segment) or a digest.
pub(super) fn image_has_tag_or_digest(image: &str) -> bool {
    image.contains('@')
        || image
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
}

/// Normalises a port spec: `3000`, `8080:80`, `53/udp`; `/tcp` is dropped.
pub(super) fn normalise_port(raw: &str) -> Option<String> {
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

