//! The encrypted secret store: named values builds read (registry credentials,
//! secret build args), encrypted at rest with AES-256-GCM under a master key.
//!
//! * The master key ([`MasterKey`]) comes from `SLIPWAY_MASTER_KEY` (64 hex
//!   characters or base64 of 32 bytes) or from `<data dir>/master.key`, which is
//!   created with mode 0600 on first start.
//! * Each value gets a fresh random 96-bit nonce, and the associated data
//!   `project_id|environment_id|name` binds its ciphertext to its row: a
//!   ciphertext copied onto another secret fails to decrypt.
//! * Each row records the id of the key that encrypted it, so a [`SecretBox`]
//!   holding the current key and the previous ones can decrypt values written
//!   before a rotation.
//!
//! Values never leave through [`SecretMeta`] listings; only
//! [`Store::secret_value`] and [`Store::all_secret_values`] (for log masking)
//! decrypt them.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use slipway_model::id::{self, SECRET};
use slipway_model::secret::{check_secret_name, check_secret_value, SecretMeta};
use slipway_model::AppError;

use crate::error::{Error, Result};
use crate::store::Store;

/// Environment variable that, when set, holds the master key.
pub const MASTER_KEY_ENV: &str = "SLIPWAY_MASTER_KEY";

/// Name of the key file inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Length of an AES-GCM nonce in bytes (96 bits).
const NONCE_LEN: usize = 12;

/// What a valid master key looks like, for error messages.
const KEY_FORMAT_HINT: &str =
    "expected 64 hex characters or the base64 encoding of 32 bytes (generate one with `openssl rand -hex 32`)";

/// The 256-bit key secrets are encrypted with. `Debug` shows only its id.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; 32],
    id: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("key_id", &self.id).finish_non_exhaustive()
    }
}

impl MasterKey {
    /// Wraps raw key bytes (tests, or keys obtained elsewhere).
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        let digest = Sha256::digest(bytes);
        let id = hex::encode(&digest[..8]);
        MasterKey { bytes, id }
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate() -> MasterKey {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        MasterKey::from_bytes(bytes)
    }

    /// Public fingerprint of the key: the first 16 hex characters of its
    /// SHA-256. Stored beside each ciphertext; safe to log.
    pub fn key_id(&self) -> String {
        self.id.clone()
    }

    /// Loads the key the server runs with: `SLIPWAY_MASTER_KEY` if it is set,
    /// otherwise `<data_dir>/master.key`, which is created (mode 0600) if missing.
    pub fn from_env_or_file(data_dir: &Path) -> Result<MasterKey> {
        match std::env::var(MASTER_KEY_ENV) {
            Ok(value) => MasterKey::from_env_value_or_file(Some(&value), data_dir),
            Err(std::env::VarError::NotPresent) => MasterKey::from_env_value_or_file(None, data_dir),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::Startup(format!(
                "{MASTER_KEY_ENV} is not valid text: {KEY_FORMAT_HINT}"
            ))),
        }
    }

    /// [`MasterKey::from_env_or_file`] with the variable's value passed in
    /// (`None`: not set), so callers and tests need not touch the process
    /// environment.
    pub fn from_env_value_or_file(env_value: Option<&str>, data_dir: &Path) -> Result<MasterKey> {
        match env_value {
            Some(value) => MasterKey::from_env_value(value),
            None => MasterKey::from_file_or_create(data_dir),
        }
    }

    /// Parses the value of `SLIPWAY_MASTER_KEY`. The error names the variable
    /// and the expected format but never repeats the value.
    pub fn from_env_value(value: &str) -> Result<MasterKey> {
        parse_key_text(value).ok_or_else(|| {
            Error::Startup(format!(
                "{MASTER_KEY_ENV} is set but is not a valid key ({} characters): {KEY_FORMAT_HINT}; \
                 or unset it to use {MASTER_KEY_FILE} in the data directory",
                value.trim().chars().count()
            ))
        })
    }

    /// Reads `<data_dir>/master.key`, or creates it with a new random key.
    ///
    /// An existing file must not be readable or writable by group or others
    /// (mode 0600), and must hold 32 raw bytes, or 64 hex characters or
    /// base64 of 32 bytes as text.
    pub fn from_file_or_create(data_dir: &Path) -> Result<MasterKey> {
        let path = data_dir.join(MASTER_KEY_FILE);
        match File::open(&path) {
            Ok(file) => read_key_file(file, &path),
            Err(e) if e.kind() == ErrorKind::NotFound => match create_key_file(data_dir, &path) {
                Ok(key) => Ok(key),
                // Another process created it between our open and create: use theirs.
                Err(CreateError::Exists) => {
                    let file = File::open(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
                    read_key_file(file, &path)
                }
                Err(CreateError::Failed(e)) => Err(e),
            },
            Err(e) => Err(Error::Startup(format!("cannot read the master key {}: {e}", path.display()))),
        }
    }
}

/// Parses key text: 64 hex characters, or base64 (standard or URL-safe, with
/// or without padding) of exactly 32 bytes. Surrounding whitespace is ignored.
fn parse_key_text(text: &str) -> Option<MasterKey> {
    let text = text.trim();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        return Some(MasterKey::from_bytes(bytes));
    }
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .filter_map(|engine| engine.decode(text).ok())
        .find_map(|decoded| <[u8; 32]>::try_from(decoded.as_slice()).ok())
        .map(MasterKey::from_bytes)
}

/// Checks an opened key file's mode and reads the key from it.
fn read_key_file(mut file: File, path: &Path) -> Result<MasterKey> {
    let meta = file.metadata().map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if !meta.is_file() {
        return Err(Error::Startup(format!("the master key {} is not a regular file", path.display())));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Startup(format!(
            "refusing to use the master key {}: its mode {mode:04o} lets other users access it; \
             it must be 0600 (run `chmod 600 {}`)",
            path.display(),
            path.display()
        )));
    }
    if meta.len() > 1024 {
        return Err(Error::Startup(format!(
            "the master key {} is {} bytes long; it must hold 32 raw bytes, or {KEY_FORMAT_HINT}",
            path.display(),
            meta.len()
        )));
    }
    let mut contents = Vec::with_capacity(64);
    file.read_to_end(&mut contents).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if let Ok(bytes) = <[u8; 32]>::try_from(contents.as_slice()) {
        return Ok(MasterKey::from_bytes(bytes));
    }
    std::str::from_utf8(&contents).ok().and_then(parse_key_text).ok_or_else(|| {
        Error::Startup(format!(
            "the master key {} is not a valid key ({} bytes): it must hold 32 raw bytes, or {KEY_FORMAT_HINT}",
            path.display(),
            contents.len()
        ))
    })
}

/// Why a key file could not be created.
enum CreateError {
    /// The file appeared meanwhile.
    Exists,
    Failed(Error),
}

/// Creates the key file with a new key, mode 0600 from the start.
fn create_key_file(data_dir: &Path, path: &Path) -> Result<MasterKey, CreateError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| CreateError::Failed(Error::io(format!("creating the data directory {}", data_dir.display()), e)))?;
    let mut file = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(CreateError::Exists),
        Err(e) => {
            return Err(CreateError::Failed(Error::Startup(format!(
                "cannot create the master key {}: {e}",
                path.display()
            ))))
        }
    };
    let key = MasterKey::generate();
    if let Err(e) = file.write_all(&key.bytes).and_then(|()| file.sync_all()) {
        drop(file);
        // A truncated key file would be refused at the next start; remove it.
        let _ = fs::remove_file(path);
        return Err(CreateError::Failed(Error::io(format!("writing the master key {}", path.display()), e)));
    }
    tracing::info!(
        path = %path.display(),
        key_id = %key.key_id(),
        "created a new master key for secrets; back it up, since stored secrets cannot be decrypted without it"
    );
    Ok(key)
}

/// A value sealed by [`SecretBox::seal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// AES-GCM output: ciphertext followed by the 16-byte tag.
    pub ciphertext: Vec<u8>,
    /// The 12-byte random nonce.
    pub nonce: Vec<u8>,
    /// Id of the key that sealed it.
    pub key_id: String,
}

/// Encrypts with the current master key and decrypts with whichever of the
/// current and previous keys has the recorded key id (for key rotation).
#[derive(Debug, Clone)]
pub struct SecretBox {
    /// The key new values are encrypted with.
    pub current: MasterKey,
    /// Retired keys, still accepted for decryption.
    pub previous: Vec<MasterKey>,
}

impl SecretBox {
    /// A box with only the current key.
    pub fn new(current: MasterKey) -> SecretBox {
        SecretBox { current, previous: Vec::new() }
    }

    /// The associated data binding a ciphertext to its row.
    pub fn associated_data(project_id: &str, environment_id: Option<&str>, name: &str) -> String {
        format!("{project_id}|{}|{name}", environment_id.unwrap_or(""))
    }

    /// Encrypts `plaintext` under the current key with a fresh random nonce,
    /// authenticating `aad` with it.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Sealed> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.current.bytes));
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .map_err(|_| Error::Internal("encrypting a secret failed".into()))?;
        Ok(Sealed { ciphertext, nonce: nonce.to_vec(), key_id: self.current.key_id() })
    }

    /// Decrypts a sealed value with the key whose id it records. Fails if no
    /// configured key has that id, or if the ciphertext, nonce or `aad` differ
    /// from what was sealed.
    pub fn open(&self, aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>> {
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| {
                Error::Io(format!(
                    "a secret was encrypted with master key {}, which is not configured (the current key is {}); \
                     add that key as a previous key",
                    sealed.key_id, self.current.id
                ))
            })?;
        if sealed.nonce.len() != NONCE_LEN {
            return Err(Error::Io(format!(
                "a stored secret has a {}-byte nonce; expected {NONCE_LEN}",
                sealed.nonce.len()
            )));
        }
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.bytes));
        cipher
            .decrypt(Nonce::from_slice(&sealed.nonce), Payload { msg: &sealed.ciphertext, aad })
            .map_err(|_| {
                Error::Io(format!(
                    "a secret failed to decrypt with master key {}: the stored ciphertext was altered \
                     or does not belong to this secret",
                    key.id
                ))
            })
    }

    /// Decrypts the value stored for one secret row.
    fn open_row(&self, project_id: &str, row: &ValueRow) -> Result<String> {
        let aad = SecretBox::associated_data(project_id, row.environment_id.as_deref(), &row.name);
        let sealed = Sealed { ciphertext: row.ciphertext.clone(), nonce: row.nonce.clone(), key_id: row.key_id.clone() };
        let plain = self.open(aad.as_bytes(), &sealed).map_err(|e| match e {
            Error::Io(msg) => Error::Io(format!("secret `{}` of project {project_id}: {msg}", row.name)),
            other => other,
        })?;
        String::from_utf8(plain)
            .map_err(|_| Error::Io(format!("secret `{}` of project {project_id} is not valid UTF-8", row.name)))
    }
}

#[derive(sqlx::FromRow)]
struct MetaRow {
    id: String,
    name: String,
    environment_id: Option<String>,
    key_id: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<MetaRow> for SecretMeta {
    fn from(r: MetaRow) -> Self {
        SecretMeta {
            id: r.id,
            name: r.name,
            environment_id: r.environment_id,
            key_id: r.key_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ValueRow {
    name: String,
    environment_id: Option<String>,
    ciphertext: Vec<u8>,
    nonce: Vec<u8>,
    key_id: String,
}

const META_COLUMNS: &str = "s.id, s.name, s.environment_id, s.key_id, s.created_at, s.updated_at";
const VALUE_COLUMNS: &str = "s.name, s.environment_id, s.ciphertext, s.nonce, s.key_id";

/// Turns foreign-key violations on insert into errors naming the field.
fn map_reference_error(err: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &err {
        if db.is_foreign_key_violation() {
            return match db.constraint().unwrap_or_default() {
                "secrets_environment_fk" => {
                    AppError::invalid("environment_id", "is not an environment of this project").into()
                }
                "secrets_created_by_fkey" => AppError::invalid("created_by", "is not a known user").into(),
                "secrets_project_id_fkey" => AppError::not_found("project").into(),
                _ => err.into(),
            };
        }
    }
    err.into()
}

impl Store {
    /// Stores (or replaces) the secret `name` of a project, project-wide or for
    /// one environment, encrypted with the box's current key. The name must
    /// match `^[A-Z_][A-Z0-9_]*$`; the value must be 3 characters to 64 KiB.
    #[tracing::instrument(skip_all, fields(project = %project_id, environment = ?environment_id, name = %name))]
    pub async fn set_secret(
        &self,
        sb: &SecretBox,
        project_id: &str,
        environment_id: Option<&str>,
        name: &str,
        value: &str,
        created_by: Option<&str>,
    ) -> Result<SecretMeta> {
        check_secret_name(name)?;
        check_secret_value(value)?;
        let aad = SecretBox::associated_data(project_id, environment_id, name);
        let sealed = sb.seal(aad.as_bytes(), value.as_bytes())?;
        let row: MetaRow = sqlx::query_as(&format!(
            "INSERT INTO secrets AS s (id, project_id, environment_id, name, ciphertext, nonce, key_id, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT ON CONSTRAINT secrets_scope_name_key DO UPDATE
                 SET ciphertext = EXCLUDED.ciphertext, nonce = EXCLUDED.nonce, key_id = EXCLUDED.key_id
             RETURNING {META_COLUMNS}"
        ))
        .bind(id::new_id(SECRET))
        .bind(project_id)
        .bind(environment_id)
        .bind(name)
        .bind(&sealed.ciphertext)
        .bind(&sealed.nonce)
        .bind(&sealed.key_id)
        .bind(created_by)
        .fetch_one(self.pool())
        .await
        .map_err(map_reference_error)?;
        Ok(row.into())
    }

    /// Every secret of a project (all scopes), by name, project-wide first:
    /// metadata only, never values.
    #[tracing::instrument(skip_all, fields(project = %project_id))]
    pub async fn list_secrets(&self, project_id: &str) -> Result<Vec<SecretMeta>> {
        let rows: Vec<MetaRow> = sqlx::query_as(&format!(
            "SELECT {META_COLUMNS} FROM secrets s WHERE s.project_id = $1
             ORDER BY s.name, s.environment_id NULLS FIRST"
        ))
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Which of `names` are set project-wide (not per environment) in a
    /// project: names only, never values.
    #[tracing::instrument(skip_all, fields(project = %project_id))]
    pub async fn project_wide_secret_names(&self, project_id: &str, names: &[&str]) -> Result<Vec<String>> {
        let present: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM secrets WHERE project_id = $1 AND environment_id IS NULL AND name = ANY($2)")
                .bind(project_id)
                .bind(names)
                .fetch_all(self.pool())
                .await?;
        Ok(present.into_iter().map(|(n,)| n).collect())
    }

    /// Deletes one secret in exactly this scope (`None`: the project-wide
    /// one); `false` if there was none.
    #[tracing::instrument(skip_all, fields(project = %project_id, environment = ?environment_id, name = %name))]
    pub async fn delete_secret(&self, project_id: &str, environment_id: Option<&str>, name: &str) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM secrets
             WHERE project_id = $1 AND environment_id IS NOT DISTINCT FROM $2::text AND name = $3",
        )
        .bind(project_id)
        .bind(environment_id)
        .bind(name)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The decrypted value of secret `name` as a build in `environment_id`
    /// sees it: the environment's own value if it has one, else the
    /// project-wide value. With `None`, only the project-wide value.
    #[tracing::instrument(skip_all, fields(project = %project_id, environment = ?environment_id, name = %name))]
    pub async fn secret_value(
        &self,
        sb: &SecretBox,
        project_id: &str,
        environment_id: Option<&str>,
        name: &str,
    ) -> Result<Option<String>> {
        let row: Option<ValueRow> = sqlx::query_as(&format!(
            "SELECT {VALUE_COLUMNS} FROM secrets s
             WHERE s.project_id = $1 AND s.name = $3
               AND (s.environment_id IS NULL OR s.environment_id = $2::text)
             ORDER BY s.environment_id IS NULL
             LIMIT 1"
        ))
        .bind(project_id)
        .bind(environment_id)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| sb.open_row(project_id, &r)).transpose()
    }

    /// Every decrypted value of the project, in all scopes, without
    /// duplicates and longest first (so masking replaces the longest match
    /// first), for masking build logs.
    #[tracing::instrument(skip_all, fields(project = %project_id))]
    pub async fn all_secret_values(&self, sb: &SecretBox, project_id: &str) -> Result<Vec<String>> {
        let rows: Vec<ValueRow> = sqlx::query_as(&format!(
            "SELECT {VALUE_COLUMNS} FROM secrets s WHERE s.project_id = $1"
        ))
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        let mut values = rows.iter().map(|r| sb.open_row(project_id, r)).collect::<Result<Vec<_>>>()?;
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Ok(values)
    }
}
