//! The embedded registry with token authentication (Debian's
//! docker-registry 2.8) accepts exactly the tokens Slipway signs, for
//! exactly the repositories and actions they name, until they expire; it
//! refuses anonymous requests. Talks to the registry's HTTP API directly.

use std::time::Duration;

use chrono::Utc;
use slipway_engine::embedded::{free_port, EmbeddedRegistry, RegistryTokenAuth};
use slipway_engine::registry_auth::{ResourceActions, SigningKey, TokenIssuer};

struct Registry {
    registry: EmbeddedRegistry,
    issuer: TokenIssuer,
    _dir: tempfile::TempDir,
}

impl Registry {
    async fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let addr = format!("127.0.0.1:{}", free_port().unwrap()).parse().unwrap();
        let key = SigningKey::generate().unwrap();
        let auth = RegistryTokenAuth { realm: "http://127.0.0.1:9/internal/registry/token".into(), certificate_pem: key.certificate_pem().unwrap() };
        let registry = EmbeddedRegistry::start(dir.path(), addr, Some(&auth)).await.expect("docker-registry starts with token auth");
        let issuer = TokenIssuer::new(key, &registry.addr.to_string());
        Registry { registry, issuer, _dir: dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.registry.addr)
    }

    fn token(&self, name: &str, actions: &[&str], issued_at: i64) -> String {
        let access = vec![ResourceActions {
            resource_type: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }];
        self.issuer.registry_token("test", access, issued_at, 300).unwrap()
    }
}

/// The status of a request, with an optional bearer token.
fn status(method: &str, url: &str, token: Option<&str>) -> u16 {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

#[tokio::test]
async fn anonymous_requests_are_refused_with_a_challenge_naming_slipways_realm() {
    let mut r = Registry::start().await;
    let res = ureq::get(&r.url("/v2/")).call();
    let Err(ureq::Error::Status(401, resp)) = res else { panic!("anonymous /v2/ must be 401: {res:?}") };
    let challenge = resp.header("WWW-Authenticate").unwrap_or_default().to_string();
    assert!(challenge.starts_with("Bearer realm=\"http://127.0.0.1:9/internal/registry/token\""), "{challenge}");
    assert!(challenge.contains("service=\"slipway-registry\""), "{challenge}");
    assert_eq!(status("GET", &r.url("/v2/_catalog"), None), 401);
    assert_eq!(status("POST", &r.url("/v2/alpha/api/blobs/uploads/"), None), 401);
    r.registry.stop().await;
}

#[tokio::test]
async fn a_token_opens_only_its_repository_and_actions_and_not_after_it_expires() {
    let mut r = Registry::start().await;
    let now = Utc::now().timestamp();
    let push = r.token("alpha/api", &["pull", "push"], now);
    let pull = r.token("alpha/api", &["pull"], now);
    // Allowed: an upload with a push token; reading (404: nothing pushed yet, but not refused).
    assert_eq!(status("POST", &r.url("/v2/alpha/api/blobs/uploads/"), Some(&push)), 202);
    assert_eq!(status("GET", &r.url("/v2/alpha/api/tags/list"), Some(&pull)), 404);
    // Refused: pushing with a pull token, another repository, a token past its expiry (plus the registry's 60 s leeway).
    assert_eq!(status("POST", &r.url("/v2/alpha/api/blobs/uploads/"), Some(&pull)), 401);
    assert_eq!(status("GET", &r.url("/v2/beta/api/tags/list"), Some(&push)), 401);
    assert_eq!(status("POST", &r.url("/v2/beta/api/blobs/uploads/"), Some(&push)), 401);
    let expired = r.token("alpha/api", &["pull", "push"], now - 400 - 300);
    assert_eq!(status("GET", &r.url("/v2/alpha/api/tags/list"), Some(&expired)), 401);
    // A token signed by another key, even for the right repository.
    let stranger = TokenIssuer::new(SigningKey::generate().unwrap(), &r.registry.addr.to_string());
    let forged = stranger.registry_token("test", vec![ResourceActions { resource_type: "repository".into(), name: "alpha/api".into(), actions: vec!["pull".into()] }], now, 300).unwrap();
    assert_eq!(status("GET", &r.url("/v2/alpha/api/tags/list"), Some(&forged)), 401);
    r.registry.stop().await;
}
