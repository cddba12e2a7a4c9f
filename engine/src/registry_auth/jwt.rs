//! Compact JWS (ES256) as the registry's token auth reads it: a header with
//! `alg` and the libtrust `kid`, base64url without padding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::key::SigningKey;
use crate::error::{Error, Result};

/// Signs `claims` into `header.claims.signature`.
pub fn encode(key: &SigningKey, claims: &impl Serialize) -> Result<String> {
    let header = serde_json::json!({ "typ": "JWT", "alg": "ES256", "kid": key.kid() });
    let claims = serde_json::to_vec(claims).map_err(|e| Error::Internal(format!("encoding token claims: {e}")))?;
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims));
    let sig = key.sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// The claims of a token this key signed; `None` when it is malformed, not
/// ES256 or signed by another key. Expiry is the caller's to check.
pub fn verify<T: DeserializeOwned>(key: &SigningKey, token: &str) -> Option<T> {
    let mut parts = token.trim().split('.');
    let (header, claims, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("ES256") {
        return None;
    }
    let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
    let signing_input = &token.trim()[..token.trim().rfind('.')?];
    if !key.verify(signing_input.as_bytes(), &sig) {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_with_its_key_and_unchanged() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let t = encode(&key, &serde_json::json!({ "sub": "x" })).unwrap();
        let v: serde_json::Value = verify(&key, &t).unwrap();
        assert_eq!(v["sub"], "x");
        assert!(verify::<serde_json::Value>(&other, &t).is_none());
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"y"}"#);
        parts[1] = &forged;
        assert!(verify::<serde_json::Value>(&key, &parts.join(".")).is_none());
    }
}
