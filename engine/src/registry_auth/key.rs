//! The registry token signing key: an ECDSA P-256 key generated at first
//! start and kept in a file of mode 0600 (like the master key), the
//! self-signed certificate the registry trusts it by (`rootcertbundle`), and
//! the key id (`kid`) the registry looks tokens' keys up by: libtrust's
//! fingerprint, the first 240 bits of the SHA-256 of the DER public key in
//! base32, in groups of four.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine as _;
use chrono::{Duration, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// File name of the key in the data directory.
pub const KEY_FILE: &str = "registry-token.key";

/// The key that signs registry tokens and Slipway's registry credentials.
pub struct SigningKey {
    /// Signs JWTs (`r || s`, as JWS ES256 wants).
    jws: EcdsaKeyPair,
    /// Signs the certificate (DER signature, as X.509 wants).
    x509: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid()).finish()
    }
}

impl SigningKey {
    /// A new random key (tests; [`SigningKey::load_or_create`] for servers).
    pub fn generate() -> Result<SigningKey> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| Error::Startup("could not generate the registry token signing key".into()))?;
        SigningKey::from_pkcs8(pkcs8.as_ref())
    }

    fn from_pkcs8(der: &[u8]) -> Result<SigningKey> {
        let rng = SystemRandom::new();
        let bad = |_| Error::Startup("the registry token signing key is not an ECDSA P-256 PKCS#8 key".into());
        let jws = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng).map_err(bad)?;
        let x509 = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng).map_err(bad)?;
        Ok(SigningKey { jws, x509, rng })
    }

    /// Reads the key at `path`, or creates it (mode 0600) when it does not exist.
    /// An existing file must not be accessible by group or others.
    pub fn load_or_create(path: &Path) -> Result<SigningKey> {
        match File::open(path) {
            Ok(file) => read_key(file, path),
            Err(e) if e.kind() == ErrorKind::NotFound => match create_key(path)? {
                Some(key) => Ok(key),
                // Another process created it between our open and create: use theirs.
                None => read_key(File::open(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?, path),
            },
            Err(e) => Err(Error::Startup(format!("cannot read the registry token key {}: {e}", path.display()))),
        }
    }

    /// The public key as DER `SubjectPublicKeyInfo`.
    pub fn public_key_der(&self) -> Vec<u8> {
        let point = self.jws.public_key().as_ref();
        let algorithm = der::seq(&[OID_EC_PUBLIC_KEY, OID_PRIME256V1].concat());
        der::seq(&[algorithm, der::bit_string(point)].concat())
    }

    /// libtrust's key id, which the registry matches a token's `kid` against.
    pub fn kid(&self) -> String {
        let hash = Sha256::digest(self.public_key_der());
        let b32 = base32(&hash[..30]);
        b32.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":")
    }

    /// Signs `message` for a JWS (ES256: 64 bytes, `r || s`).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.jws.sign(&self.rng, message).map(|s| s.as_ref().to_vec()).map_err(|_| Error::Internal("signing a registry token failed".into()))
    }

    /// Whether `sig` is this key's ES256 signature of `message`.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, self.jws.public_key().as_ref()).verify(message, sig).is_ok()
    }

    /// A self-signed certificate for the key, PEM, valid from yesterday to 2099:
    /// the registry's `rootcertbundle`.
    pub fn certificate_pem(&self) -> Result<String> {
        let mut serial = [0u8; 16];
        self.rng.fill(&mut serial).map_err(|_| Error::Internal("no randomness for a certificate serial".into()))?;
        serial[0] &= 0x7f;
        serial[0] |= 0x01;
        let name = der::seq(&der::set(&der::seq(&[OID_COMMON_NAME.to_vec(), der::tlv(0x0c, b"Slipway registry token issuer")].concat())));
        let not_before = (Utc::now() - Duration::days(1)).format("%y%m%d%H%M%SZ").to_string();
        let validity = der::seq(&[der::tlv(0x17, not_before.as_bytes()), der::tlv(0x18, b"20991231235959Z")].concat());
        let algorithm = der::seq(OID_ECDSA_SHA256);
        let tbs = der::seq(
            &[
                der::tlv(0xa0, &der::integer(&[2])),
                der::integer(&serial),
                algorithm.clone(),
                name.clone(),
                validity,
                name,
                self.public_key_der(),
            ]
            .concat(),
        );
        let sig = self.x509.sign(&self.rng, &tbs).map_err(|_| Error::Internal("signing the registry token certificate failed".into()))?;
        let cert = der::seq(&[tbs, algorithm, der::bit_string(sig.as_ref())].concat());
        Ok(pem("CERTIFICATE", &cert))
    }
}

const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_PRIME256V1: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_ECDSA_SHA256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];

/// The few DER encodings a certificate needs.
mod der {
    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = content.len();
        if n < 0x80 {
            out.push(n as u8);
        } else if n < 0x100 {
            out.extend([0x81, n as u8]);
        } else {
            out.extend([0x82, (n >> 8) as u8, n as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    pub fn seq(content: &[u8]) -> Vec<u8> {
        tlv(0x30, content)
    }

    pub fn set(content: &[u8]) -> Vec<u8> {
        tlv(0x31, content)
    }

    /// A non-negative INTEGER from big-endian bytes.
    pub fn integer(bytes: &[u8]) -> Vec<u8> {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let mut content = if trimmed.is_empty() { vec![0] } else { trimmed };
        if content[0] & 0x80 != 0 {
            content.insert(0, 0);
        }
        tlv(0x02, &content)
    }

    pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
        let mut content = vec![0];
        content.extend_from_slice(bytes);
        tlv(0x03, &content)
    }
}

/// RFC 4648 base32 without padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for b in bytes {
        buffer = (buffer << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn read_key(mut file: File, path: &Path) -> Result<SigningKey> {
    let meta = file.metadata().map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mode = meta.permissions().mode() & 0o777;
    if !meta.is_file() || mode & 0o077 != 0 || meta.len() > 16 * 1024 {
        return Err(Error::Startup(format!(
            "refusing to use the registry token key {}: it must be a regular file of mode 0600 (it is {mode:04o}, {} bytes)",
            path.display(),
            meta.len()
        )));
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| Error::Startup(format!("the registry token key {} is not a PEM private key", path.display())))?;
    SigningKey::from_pkcs8(&der)
}

/// Creates the key file; `None` when another process created it first.
fn create_key(path: &Path) -> Result<Option<SigningKey>> {
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let mut file = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(Error::Startup(format!("cannot create the registry token key {}: {e}", path.display()))),
    };
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| Error::Startup("could not generate the registry token signing key".into()))?;
    if let Err(e) = file.write_all(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes()).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(Error::io(format!("writing the registry token key {}", path.display()), e));
    }
    let key = SigningKey::from_pkcs8(pkcs8.as_ref())?;
    tracing::info!(path = %path.display(), kid = %key.kid(), "created the registry token signing key");
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }

    #[test]
    fn the_kid_is_twelve_groups_of_four() {
        let key = SigningKey::generate().unwrap();
        let kid = key.kid();
        assert_eq!(kid.len(), 12 * 4 + 11, "{kid}");
        assert!(kid.split(':').all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))), "{kid}");
    }

    #[test]
    fn the_key_file_is_created_0600_and_read_back_as_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(KEY_FILE);
        let a = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let b = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(a.kid(), b.kid());
        let sig = a.sign(b"message").unwrap();
        assert_eq!(sig.len(), 64);
        assert!(b.verify(b"message", &sig));
        assert!(!b.verify(b"other", &sig));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(SigningKey::load_or_create(&path).is_err(), "a key others can read is refused");
        assert!(a.certificate_pem().unwrap().starts_with("-----BEGIN CERTIFICATE-----\n"));
    }
}
