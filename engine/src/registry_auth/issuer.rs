//! Slipway as the token issuer of its registry. Slipway mints short-lived
//! registry credentials (a user name and a password that is a JWT signed by
//! the signing key, carrying a [`Grant`]) for its own work — a build's push,
//! a deploy's pull, an import — and hands them to the Docker engine. The
//! engine presents them to the realm (`/internal/registry/token`), which
//! checks the signature and expiry and answers with a registry token whose
//! `access` is what the request asked for, cut down to what the grant
//! allows. Anonymous requests get nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::grant::{Grant, Scope};
use super::jwt;
use super::key::SigningKey;
use crate::builds::registry::RegistryTarget;
use crate::error::Result;
use crate::isolation::reference::normalize_host;
use crate::Store;

/// `iss` of every token; the registry's `auth.token.issuer`.
pub const ISSUER: &str = "slipway";
/// `aud` of registry tokens; the registry's `auth.token.service`.
pub const SERVICE: &str = "slipway-registry";
/// `aud` of credentials, so a credential is never accepted as a registry token.
const CREDENTIAL_AUDIENCE: &str = "slipway-registry-credential";
/// How the user name (and token subject) of a project's credential starts;
/// the rest is the project slug. (No `:`: Basic authentication splits there.)
pub const PROJECT_SUBJECT_PREFIX: &str = "slipway-project-";

/// The user name and token subject of a project's credentials.
pub fn project_subject(project_slug: &str) -> String {
    format!("{PROJECT_SUBJECT_PREFIX}{project_slug}")
}

/// Lifetime of a registry token.
pub const TOKEN_TTL: Duration = Duration::from_secs(300);
/// Lifetime of a credential Slipway mints for one operation.
pub const CREDENTIAL_TTL: Duration = Duration::from_secs(900);
/// Environment variable naming the signing key file, for processes that use
/// a registry whose tokens another Slipway process issues (the test suite).
pub const KEY_ENV: &str = "SLIPWAY_REGISTRY_TOKEN_KEY";

/// One entry of a registry token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceActions {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Serialize)]
struct RegistryClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    nbf: i64,
    iat: i64,
    jti: String,
    access: Vec<ResourceActions>,
}

#[derive(Serialize, Deserialize)]
struct CredentialClaims {
    iss: String,
    aud: String,
    sub: String,
    exp: i64,
    iat: i64,
    grant: Grant,
}

/// The realm's answer (the registry token protocol's JSON).
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    pub token: String,
    /// The same token, for OAuth2 clients.
    pub access_token: String,
    pub expires_in: u64,
    pub issued_at: DateTime<Utc>,
    /// Who the credential was minted for.
    #[serde(skip)]
    pub subject: String,
    /// What the token grants.
    #[serde(skip)]
    pub access: Vec<ResourceActions>,
}

/// Why the realm refuses to issue a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("registry credentials are required (anonymous access is refused)")]
    NoCredentials,
    #[error("the registry credentials are not valid: unknown, tampered with or expired")]
    BadCredentials,
    #[error("this realm issues tokens for the service `{SERVICE}`, not `{0}`")]
    WrongService(String),
}

/// The user name and password of an `Authorization: Basic …` header value.
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let encoded = header.trim().strip_prefix("Basic ").or_else(|| header.trim().strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Issues credentials and tokens for the registry at `registry_host`.
#[derive(Clone)]
pub struct TokenIssuer {
    key: Arc<SigningKey>,
    registry_host: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer").field("registry_host", &self.registry_host).field("kid", &self.key.kid()).finish()
    }
}

impl TokenIssuer {
    pub fn new(key: SigningKey, registry_host: &str) -> TokenIssuer {
        TokenIssuer { key: Arc::new(key), registry_host: normalize_host(registry_host) }
    }

    /// The issuer for `registry_host` whose key file [`KEY_ENV`] names, if it is set.
    pub fn from_env(registry_host: &str) -> Result<Option<TokenIssuer>> {
        match std::env::var_os(KEY_ENV).filter(|v| !v.is_empty()) {
            Some(path) => Ok(Some(TokenIssuer::new(SigningKey::load_or_create(Path::new(&path))?, registry_host))),
            None => Ok(None),
        }
    }

    /// The default key file in a data directory.
    pub fn default_key_path(data_dir: &Path) -> PathBuf {
        data_dir.join(super::key::KEY_FILE)
    }

    pub fn registry_host(&self) -> &str {
        &self.registry_host
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Whether `host` is the registry this issuer signs for.
    pub fn covers(&self, host: &str) -> bool {
        normalize_host(host) == self.registry_host
    }

    /// A credential (user name, password) for `subject` carrying `grant`, valid for `ttl`.
    pub fn credential(&self, subject: &str, grant: Grant, ttl: Duration) -> Result<(String, String)> {
        let subject = subject.replace(':', "-");
        let subject = subject.as_str();
        let now = Utc::now().timestamp();
        let claims = CredentialClaims {
            iss: ISSUER.into(),
            aud: CREDENTIAL_AUDIENCE.into(),
            sub: subject.into(),
            exp: now + ttl.as_secs() as i64,
            iat: now,
            grant,
        };
        Ok((subject.to_string(), jwt::encode(&self.key, &claims)?))
    }

    /// A credential for a build of the project: push and pull on its own
    /// repositories, pull on what the allowed-images list shares with it.
    pub async fn project_credential(&self, store: &Store, project_id: &str, project_slug: &str) -> Result<(String, String)> {
        let shared = store.allowed_image_patterns(project_id).await?;
        self.credential(&project_subject(project_slug), Grant::project(project_slug, &shared), CREDENTIAL_TTL)
    }

    /// `target` with a fresh credential of `grant` when it is this issuer's
    /// registry and has no credentials of its own; otherwise unchanged.
    pub fn authorize(&self, target: &RegistryTarget, subject: &str, grant: Grant) -> Result<RegistryTarget> {
        if target.credentials.is_some() || !self.covers(&target.host) {
            return Ok(target.clone());
        }
        // This issuer's registry is Slipway's own: its realm may be on loopback.
        Ok(RegistryTarget { credentials: Some(self.credential(subject, grant, CREDENTIAL_TTL)?), embedded: true, ..target.clone() })
    }

    /// Credentials the engine pulls the project's own images with (pull
    /// only), when `image` (a reference or repository) is on this issuer's
    /// registry; `None` for images elsewhere.
    pub fn pull_credentials(&self, project_slug: &str, image: &str) -> Result<Option<bollard::auth::DockerCredentials>> {
        let host = image.split('/').next().unwrap_or_default();
        if !image.contains('/') || !self.covers(host) {
            return Ok(None);
        }
        let (username, password) = self.credential(&project_subject(project_slug), Grant::pull_only(project_slug), CREDENTIAL_TTL)?;
        Ok(Some(bollard::auth::DockerCredentials {
            username: Some(username),
            password: Some(password),
            serveraddress: Some(host.to_string()),
            ..Default::default()
        }))
    }

    /// `RegistryTarget::new(host)` with a pull-only credential for the project
    /// (reading digests of its images).
    pub fn pull_target(&self, host: &str, project_slug: &str) -> Result<RegistryTarget> {
        self.authorize(&RegistryTarget::new(host), &project_subject(project_slug), Grant::pull_only(project_slug))
    }

    /// The realm: exchanges a credential for a registry token covering what
    /// `scopes` ask and the credential's grant allows.
    pub fn exchange(&self, password: Option<&str>, service: Option<&str>, scopes: &[String]) -> std::result::Result<IssuedToken, Refusal> {
        if let Some(s) = service.filter(|s| *s != SERVICE) {
            return Err(Refusal::WrongService(s.to_string()));
        }
        let password = password.filter(|p| !p.is_empty()).ok_or(Refusal::NoCredentials)?;
        let claims: CredentialClaims = jwt::verify(&self.key, password).ok_or(Refusal::BadCredentials)?;
        let now = Utc::now();
        if claims.aud != CREDENTIAL_AUDIENCE || claims.iss != ISSUER || claims.exp <= now.timestamp() {
            return Err(Refusal::BadCredentials);
        }
        let mut access: Vec<ResourceActions> = Vec::new();
        for scope in scopes.iter().flat_map(|s| s.split_whitespace()).filter_map(Scope::parse) {
            if scope.resource_type != "repository" {
                continue;
            }
            let actions = claims.grant.allowed_actions(&self.registry_host, &scope.name, &scope.actions);
            if !actions.is_empty() {
                access.push(ResourceActions { resource_type: scope.resource_type, name: scope.name, actions });
            }
        }
        let token = self.registry_token(&claims.sub, access.clone(), now.timestamp(), TOKEN_TTL.as_secs() as i64).map_err(|e| {
            tracing::error!(error = %e, "signing a registry token");
            Refusal::BadCredentials
        })?;
        Ok(IssuedToken { access_token: token.clone(), token, expires_in: TOKEN_TTL.as_secs(), issued_at: now, subject: claims.sub, access })
    }

    /// A registry token for `subject` with `access`, issued at `issued_at`
    /// (unix seconds) and valid for `ttl_secs`.
    pub fn registry_token(&self, subject: &str, access: Vec<ResourceActions>, issued_at: i64, ttl_secs: i64) -> Result<String> {
        let mut jti = [0u8; 12];
        rand::Rng::fill(&mut rand::thread_rng(), &mut jti);
        let claims = RegistryClaims {
            iss: ISSUER,
            sub: subject,
            aud: SERVICE,
            exp: issued_at + ttl_secs,
            nbf: issued_at,
            iat: issued_at,
            jti: hex::encode(jti),
            access,
        };
        jwt::encode(&self.key, &claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(SigningKey::generate().unwrap(), "127.0.0.1:5000")
    }

    fn scopes(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_credential_gets_what_its_grant_allows_of_what_is_asked() {
        let i = issuer();
        let (_, pw) = i.credential(&project_subject("alpha"), Grant::project("alpha", &[]), CREDENTIAL_TTL).unwrap();
        let t = i.exchange(Some(&pw), Some(SERVICE), &scopes(&["repository:alpha/api:pull,push repository:beta/api:pull,push", "registry:catalog:*"])).unwrap();
        assert_eq!(t.access, vec![ResourceActions { resource_type: "repository".into(), name: "alpha/api".into(), actions: scopes(&["pull", "push"]) }]);
        assert_eq!(t.subject, "slipway-project-alpha");
    }

    #[test]
    fn no_bad_expired_or_foreign_credentials_get_a_token() {
        let i = issuer();
        assert_eq!(i.exchange(None, None, &[]).unwrap_err(), Refusal::NoCredentials);
        assert_eq!(i.exchange(Some("not-a-jwt"), None, &[]).unwrap_err(), Refusal::BadCredentials);
        let (_, expired) = i.credential("p", Grant::project("alpha", &[]), Duration::ZERO).unwrap();
        assert_eq!(i.exchange(Some(&expired), None, &[]).unwrap_err(), Refusal::BadCredentials);
        let (_, foreign) = issuer().credential("p", Grant::project("alpha", &[]), CREDENTIAL_TTL).unwrap();
        assert_eq!(i.exchange(Some(&foreign), None, &[]).unwrap_err(), Refusal::BadCredentials);
        // A registry token is not a credential.
        let token = i.registry_token("p", Vec::new(), Utc::now().timestamp(), 300).unwrap();
        assert_eq!(i.exchange(Some(&token), None, &[]).unwrap_err(), Refusal::BadCredentials);
        let (_, pw) = i.credential("p", Grant::project("alpha", &[]), CREDENTIAL_TTL).unwrap();
        assert_eq!(i.exchange(Some(&pw), Some("other"), &[]).unwrap_err(), Refusal::WrongService("other".into()));
    }
}
