//! Secrets: named values a project's builds read (registry credentials, secret
//! build args). The API only ever returns their metadata, never the values.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Shortest value accepted: shorter values cannot be masked in build logs
/// without masking ordinary text too.
pub const MIN_SECRET_VALUE_CHARS: usize = 3;

/// Longest value accepted, in bytes (64 KiB).
pub const MAX_SECRET_VALUE_BYTES: usize = 64 * 1024;

/// Longest secret name accepted (the database enforces the same limit).
pub const MAX_SECRET_NAME_CHARS: usize = 128;

/// A stored secret as the API lists it: where it applies and which key
/// encrypted it, but never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretMeta {
    /// `sec_…` id.
    pub id: String,
    /// Environment-variable style name, e.g. `REGISTRY_PASSWORD`.
    pub name: String,
    /// The environment it is scoped to (`env_…`), or `None` for project-wide.
    pub environment_id: Option<String>,
    /// Fingerprint of the master key that encrypted it (for key rotation).
    pub key_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Checks a secret name: `^[A-Z_][A-Z0-9_]*$`, at most 128 characters.
pub fn check_secret_name(name: &str) -> Result<(), AppError> {
    if name.is_empty() {
        return Err(AppError::invalid("name", "is required"));
    }
    if name.chars().count() > MAX_SECRET_NAME_CHARS {
        return Err(AppError::invalid("name", format!("must be at most {MAX_SECRET_NAME_CHARS} characters")));
    }
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_uppercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !first_ok || !rest_ok {
        return Err(AppError::invalid(
            "name",
            "must be uppercase letters, digits and `_`, not starting with a digit (like `REGISTRY_PASSWORD`)",
        ));
    }
    Ok(())
}

/// Checks a secret value's length (never quoting the value back):
/// 3 characters to 64 KiB.
pub fn check_secret_value(value: &str) -> Result<(), AppError> {
    if value.chars().count() < MIN_SECRET_VALUE_CHARS {
        return Err(AppError::invalid(
            "value",
            format!("must be at least {MIN_SECRET_VALUE_CHARS} characters, so that it can be masked in build logs"),
        ));
    }
    if value.len() > MAX_SECRET_VALUE_BYTES {
        return Err(AppError::invalid("value", "must be at most 64 KiB"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_environment_variable_pattern() {
        for ok in ["A", "_", "REGISTRY_PASSWORD", "_X1", "A1_B2"] {
            assert!(check_secret_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "a", "A-B", "A B", "É", "Aé", &"A".repeat(129)] {
            let err = check_secret_name(bad).unwrap_err();
            assert_eq!(err.problems[0].field, "name", "{bad}");
        }
    }

    #[test]
    fn values_must_be_maskable_and_bounded() {
        assert!(check_secret_value("abc").is_ok());
        assert!(check_secret_value(&"x".repeat(MAX_SECRET_VALUE_BYTES)).is_ok());
        for bad in [String::new(), "ab".into(), "x".repeat(MAX_SECRET_VALUE_BYTES + 1)] {
            let err = check_secret_value(&bad).unwrap_err();
            assert_eq!(err.problems[0].field, "value");
        }
    }
}
