//! What a registry credential grants, and the access a token request gets:
//! `push,pull` on the project's own repositories (`<slug>/…`), `pull` on
//! repositories of Slipway's registry that an allowed-images entry for the
//! project covers, and nothing else — no deletes, no catalog.

use serde::{Deserialize, Serialize};

use crate::isolation::reference::{is_project_repository, normalize_host, ImagePattern};

/// The rights carried by a credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Project slugs whose repositories may be pushed and pulled.
    #[serde(default)]
    pub push: Vec<String>,
    /// Project slugs whose repositories may only be pulled.
    #[serde(default)]
    pub pull_projects: Vec<String>,
    /// Allowed-image patterns (canonical text) whose repositories may be pulled.
    #[serde(default)]
    pub pull: Vec<String>,
}

impl Grant {
    /// Push and pull on the project's own repositories, pull on what the allowed list shares with it.
    pub fn project(slug: &str, shared: &[ImagePattern]) -> Grant {
        Grant { push: vec![slug.to_string()], pull_projects: Vec::new(), pull: shared.iter().map(|p| p.as_str().to_string()).collect() }
    }

    /// Pull only, on the project's own repositories (deploys, exports).
    pub fn pull_only(slug: &str) -> Grant {
        Grant { push: Vec::new(), pull_projects: vec![slug.to_string()], pull: Vec::new() }
    }

    /// The actions of `requested` this grant allows on repository `name` of
    /// the registry at `registry_host`.
    pub fn allowed_actions(&self, registry_host: &str, name: &str, requested: &[String]) -> Vec<String> {
        let own = self.push.iter().any(|slug| is_project_repository(name, slug));
        let readable = own
            || self.pull_projects.iter().any(|slug| is_project_repository(name, slug))
            || {
                let repository = format!("{}/{name}", normalize_host(registry_host));
                self.pull.iter().filter_map(|p| ImagePattern::parse(p).ok()).any(|p| p.covers_repository(&repository))
            };
        let mut out = Vec::new();
        for action in requested {
            let ok = match action.as_str() {
                "pull" => readable,
                "push" => own,
                _ => false,
            };
            if ok && !out.contains(action) {
                out.push(action.clone());
            }
        }
        out
    }
}

/// One `scope` of a token request: `repository:demo/api:pull,push`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Scope {
    /// Parses one scope; `None` when it is not `type:name:actions`.
    pub fn parse(text: &str) -> Option<Scope> {
        let (resource_type, rest) = text.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if resource_type.is_empty() || name.is_empty() {
            return None;
        }
        Some(Scope {
            resource_type: resource_type.to_string(),
            name: name.to_string(),
            actions: actions.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_project_gets_its_own_repositories_and_shared_pulls_only() {
        let shared = vec![ImagePattern::parse("127.0.0.1:5000/beta/base").unwrap()];
        let g = Grant::project("alpha", &shared);
        let host = "127.0.0.1:5000";
        assert_eq!(g.allowed_actions(host, "alpha/api", &acts(&["pull", "push"])), acts(&["pull", "push"]));
        assert_eq!(g.allowed_actions(host, "alpha/api", &acts(&["delete", "*"])), acts(&[]));
        assert_eq!(g.allowed_actions(host, "beta/base", &acts(&["pull", "push"])), acts(&["pull"]));
        assert_eq!(g.allowed_actions(host, "beta/api", &acts(&["pull", "push"])), acts(&[]));
        assert_eq!(g.allowed_actions(host, "alpha-2/api", &acts(&["pull"])), acts(&[]));
        let p = Grant::pull_only("alpha");
        assert_eq!(p.allowed_actions(host, "alpha/api", &acts(&["pull", "push"])), acts(&["pull"]));
    }

    #[test]
    fn scopes_parse() {
        assert_eq!(
            Scope::parse("repository:demo/api:pull,push"),
            Some(Scope { resource_type: "repository".into(), name: "demo/api".into(), actions: acts(&["pull", "push"]) })
        );
        assert_eq!(Scope::parse("registry:catalog:*").unwrap().actions, acts(&["*"]));
        assert_eq!(Scope::parse("nonsense"), None);
    }
}
