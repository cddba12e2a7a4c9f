//! argon2id password hashing, run on a blocking thread so that the ~20 MiB,
//! tens-of-milliseconds work does not stall the async runtime.
//!
//! Every hash and verification takes one of
//! [`MAX_CONCURRENT_HASHES`](slipway_model::limits::MAX_CONCURRENT_HASHES)
//! slots, so a flood of logins cannot take more than that many times 19 MiB;
//! at most [`MAX_QUEUED_HASHES`](slipway_model::limits::MAX_QUEUED_HASHES)
//! wait for a slot, and one more is answered 429 at once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

use slipway_model::limits::{MAX_CONCURRENT_HASHES, MAX_QUEUED_HASHES};
use slipway_model::{AppError, ErrorCode};
use tokio::sync::{Semaphore, SemaphorePermit};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::rngs::OsRng;

use crate::error::{Error, Result};

/// The hasher: argon2id, version 0x13, the crate's default cost (m = 19 MiB,
/// t = 2, p = 1, the OWASP minimum). Verification reads the cost from the
/// stored hash, so raising it later keeps old hashes valid.
fn hasher() -> Argon2<'static> {
    Argon2::default()
}

fn hash_blocking(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing a password failed: {e}")))
}

/// A hash of a random password nobody knows, verified against when the
/// username does not exist, so that such a login takes as long as a wrong
/// password does.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = super::random_secret();
        // Hashing cannot fail for a valid salt and a short password; if it
        // somehow did, an unparsable hash still fails verification (faster).
        hash_blocking(&random).unwrap_or_default()
    })
}

/// Verifies in constant time (the comparison of the derived key is
/// constant-time in the `password-hash` crate).
fn verify_blocking(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => hasher().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| Semaphore::new(MAX_CONCURRENT_HASHES))
}

/// Callers waiting for a slot.
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// Hashes and verifications started since the process began.
static STARTED: AtomicU64 = AtomicU64::new(0);

/// How many password hashes and verifications this process has started
/// (the dummy hash's one-time computation not counted). Tests use it to see
/// that a refused request did no argon2 work.
pub fn password_work_started() -> u64 {
    STARTED.load(Ordering::Relaxed)
}

struct Waiting;

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A hashing slot: at once when one is free, else after waiting in a
/// bounded queue; a full queue is a 429.
async fn slot() -> Result<SemaphorePermit<'static>> {
    if let Ok(permit) = slots().try_acquire() {
        return Ok(permit);
    }
    let ahead = WAITING.fetch_add(1, Ordering::AcqRel);
    let _waiting = Waiting;
    if ahead >= MAX_QUEUED_HASHES {
        return Err(AppError::new(
            ErrorCode::RateLimited,
            format!(
                "the server is busy checking passwords ({MAX_CONCURRENT_HASHES} at a time, {MAX_QUEUED_HASHES} waiting); try again in a few seconds"
            ),
        )
        .into());
    }
    slots().acquire().await.map_err(|_| Error::Internal("the password hashing slots are closed".into()))
}

/// Hashes a password with argon2id and a fresh random salt; returns the PHC
/// string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub async fn hash_password(password: &str) -> Result<String> {
    let _slot = slot().await?;
    STARTED.fetch_add(1, Ordering::Relaxed);
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|e| Error::Internal(format!("the password hashing task failed: {e}")))?
}

/// Whether `password` matches the stored PHC `hash` (429 when the server is
/// too busy checking passwords).
pub async fn verify_password(hash: &str, password: &str) -> Result<bool> {
    verify_or_dummy(Some(hash.to_owned()), password).await
}

/// Verifies against `hash`, or against the dummy hash when there is none
/// (unknown user) and then always fails: both take the same time.
pub(crate) async fn verify_or_dummy(hash: Option<String>, password: &str) -> Result<bool> {
    let _slot = slot().await?;
    STARTED.fetch_add(1, Ordering::Relaxed);
    let password = password.to_owned();
    Ok(tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_blocking(&h, &password),
        None => {
            let _ = verify_blocking(dummy_hash(), &password);
            false
        }
    })
    .await
    .unwrap_or(false))
}

/// Computes the dummy hash ahead of the first login with an unknown
/// username, so that even the first such attempt is not slower than usual.
pub(crate) async fn warm_up() {
    let _ = tokio::task::spawn_blocking(|| dummy_hash().len()).await;
}
