//! Registries a project may push to: an admin-managed list per project. A
//! build (its manifest or its registry override) may only name a registry on
//! this list, and only the secrets listed with it are ever sent there as
//! credentials. A listing may also name extra hosts the registry's token
//! service (the `realm` of its `WWW-Authenticate` challenge) may live on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, FieldProblem};
use crate::manifest::Registry;
use crate::secret::check_secret_name;

/// Longest host name accepted (with port and path).
pub const MAX_HOST_CHARS: usize = 253;

/// Most extra token-service hosts one listing may name.
pub const MAX_AUTH_HOSTS: usize = 8;

/// A registry on a project's list, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedRegistry {
    /// `reg_…` id.
    pub id: String,
    pub project_id: String,
    /// `host[:port]`, lowercased, possibly with a path (`public.ecr.aws/abc`).
    pub host: String,
    /// Secret holding the user name sent to this registry (`None`: no credentials).
    pub username_secret: Option<String>,
    /// Secret holding the password or token sent to this registry.
    pub token_secret: Option<String>,
    /// Extra hosts its token service may be on (besides the registry's own host).
    pub auth_hosts: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// Input for listing a registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAllowedRegistry {
    pub host: String,
    #[serde(default)]
    pub username_secret: Option<String>,
    #[serde(default)]
    pub token_secret: Option<String>,
    #[serde(default)]
    pub auth_hosts: Vec<String>,
}

/// A host as registries are compared: no scheme, no trailing slash, lowercase.
pub fn normalize_host(host: &str) -> String {
    let h = host.trim().to_ascii_lowercase();
    let h = h.strip_prefix("https://").or_else(|| h.strip_prefix("http://")).unwrap_or(&h);
    h.trim_end_matches('/').to_string()
}

/// Why `host` is not a registry host (`host[:port][/path]`), if it is not one.
fn host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("is required, e.g. `registry.example.com:5000`".into());
    }
    if host.contains("://") {
        return Some(format!("`{host}` includes a scheme; give only the host, e.g. `registry.example.com:5000`"));
    }
    if host.chars().count() > MAX_HOST_CHARS {
        return Some(format!("must be at most {MAX_HOST_CHARS} characters"));
    }
    let ok = host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/' | '[' | ']'));
    if !ok || host.starts_with(['/', '.', '-', ':']) || host.ends_with(['/', '.']) || host.contains("//") {
        return Some(format!("`{host}` is not a registry host (letters, digits, `.`, `-`, an optional `:port` and `/path`)"));
    }
    None
}

impl NewAllowedRegistry {
    /// Trims and checks every field, reporting all problems at once: a valid
    /// host, both secrets or neither (valid secret names), valid auth hosts.
    pub fn normalized(&self) -> Result<NewAllowedRegistry, AppError> {
        let mut problems = Vec::new();
        let mut push = |field: &str, message: String| problems.push(FieldProblem { field: field.into(), message });
        let host = normalize_host(&self.host);
        if let Some(p) = host_problem(&host) {
            push("host", p);
        }
        let clean = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let username_secret = clean(&self.username_secret);
        let token_secret = clean(&self.token_secret);
        for (field, value) in [("username_secret", &username_secret), ("token_secret", &token_secret)] {
            if let Some(name) = value {
                if let Err(e) = check_secret_name(name) {
                    push(field, e.problems.first().map(|p| p.message.clone()).unwrap_or(e.message));
                }
            }
        }
        match (&username_secret, &token_secret) {
            (Some(_), None) => push("token_secret", "is required with username_secret".into()),
            (None, Some(_)) => push("username_secret", "is required with token_secret".into()),
            _ => {}
        }
        let mut auth_hosts = Vec::new();
        for (i, h) in self.auth_hosts.iter().enumerate() {
            let h = normalize_host(h);
            match host_problem(&h) {
                Some(p) => push(&format!("auth_hosts[{i}]"), p),
                None if h.contains('/') => push(&format!("auth_hosts[{i}]"), format!("`{h}` must be a host (and port), without a path")),
                None if !auth_hosts.contains(&h) => auth_hosts.push(h),
                None => {}
            }
        }
        if auth_hosts.len() > MAX_AUTH_HOSTS {
            push("auth_hosts", format!("at most {MAX_AUTH_HOSTS} hosts"));
        }
        if !problems.is_empty() {
            return Err(AppError::invalid_fields(problems));
        }
        Ok(NewAllowedRegistry { host, username_secret, token_secret, auth_hosts })
    }
}

/// Checks a build's registry against the project's list: the built-in
/// registry and `none` need no listing; a registry of its own must be listed,
/// and the secrets it names as credentials must be exactly the listed ones.
/// `listing` is the entry for the registry's host, if there is one. The error
/// is the message for the `registry` field.
pub fn check_allowed(registry: &Registry, listing: Option<&AllowedRegistry>, project: &str) -> Result<(), String> {
    let Registry::Byo { host, auth, .. } = registry else { return Ok(()) };
    let Some(listed) = listing.filter(|l| l.host == normalize_host(host)) else {
        return Err(format!(
            "registry `{host}` is not on the registries list of project {project}; a project admin adds it \
             (`slipway registries add {} --project {project}`) before builds may push there",
            normalize_host(host)
        ));
    };
    let Some(auth) = auth else { return Ok(()) };
    match (&listed.username_secret, &listed.token_secret) {
        (Some(u), Some(t)) if *u == auth.username_secret && *t == auth.token_secret => Ok(()),
        (Some(u), Some(t)) => Err(format!(
            "registry `{}` may receive only the secrets {u} and {t} as credentials, not {} and {}",
            listed.host, auth.username_secret, auth.token_secret
        )),
        _ => Err(format!(
            "registry `{}` is listed without credentials: no secret may be sent there (a project admin lists it with its secrets)",
            listed.host
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::RegistryAuth;

    fn listed(username: Option<&str>, token: Option<&str>) -> AllowedRegistry {
        AllowedRegistry {
            id: "reg_x".into(),
            project_id: "prj_x".into(),
            host: "reg.example:5000".into(),
            username_secret: username.map(str::to_string),
            token_secret: token.map(str::to_string),
            auth_hosts: vec![],
            created_at: Utc::now(),
        }
    }

    fn byo(host: &str, auth: Option<(&str, &str)>) -> Registry {
        Registry::Byo {
            host: host.into(),
            namespace: None,
            auth: auth.map(|(u, t)| RegistryAuth { username_secret: u.into(), token_secret: t.into() }),
        }
    }

    #[test]
    fn only_listed_registries_with_their_listed_secrets_pass() {
        let l = listed(Some("REG_USER"), Some("REG_TOKEN"));
        assert!(check_allowed(&Registry::Native, None, "p").is_ok());
        assert!(check_allowed(&Registry::None, None, "p").is_ok());
        assert!(check_allowed(&byo("evil.example", Some(("REG_USER", "REG_TOKEN"))), None, "p").unwrap_err().contains("not on the registries list"));
        assert!(check_allowed(&byo("Reg.Example:5000", Some(("REG_USER", "REG_TOKEN"))), Some(&l), "p").is_ok());
        assert!(check_allowed(&byo("reg.example:5000", None), Some(&l), "p").is_ok());
        let e = check_allowed(&byo("reg.example:5000", Some(("DB_PASSWORD", "PROD_KEY"))), Some(&l), "p").unwrap_err();
        assert!(e.contains("only the secrets REG_USER and REG_TOKEN"), "{e}");
        let anonymous = listed(None, None);
        assert!(check_allowed(&byo("reg.example:5000", Some(("DB_PASSWORD", "PROD_KEY"))), Some(&anonymous), "p").is_err());
        // A listing of another host is no listing.
        assert!(check_allowed(&byo("other.example", None), Some(&l), "p").is_err());
    }

    #[test]
    fn new_listings_are_checked_field_by_field() {
        let ok = NewAllowedRegistry {
            host: " HTTPS://Reg.Example:5000/ ".into(),
            username_secret: Some("REG_USER".into()),
            token_secret: Some("REG_TOKEN".into()),
            auth_hosts: vec!["Auth.Example".into(), "auth.example".into()],
        }
        .normalized()
        .unwrap();
        assert_eq!(ok.host, "reg.example:5000");
        assert_eq!(ok.auth_hosts, ["auth.example"]);
        let e = NewAllowedRegistry {
            host: "bad host".into(),
            username_secret: Some("lower".into()),
            token_secret: None,
            auth_hosts: vec!["a.example/path".into()],
        }
        .normalized()
        .unwrap_err();
        let fields: Vec<&str> = e.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["host", "username_secret", "token_secret", "auth_hosts[0]"]);
    }
}
