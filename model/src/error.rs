//! The one error type that crosses the wire: server functions return it, the
//! dashboard renders it and the CLI decodes it from response bodies.

use serde::{Deserialize, Serialize};

/// What kind of failure this is; decides the HTTP status at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request was malformed or a field failed validation (400/422).
    InvalidInput,
    /// The thing asked for does not exist, or the caller may not know it does (404).
    NotFound,
    /// The request conflicts with what is recorded, e.g. a duplicate name (409).
    Conflict,
    /// Nobody is logged in (401).
    Unauthenticated,
    /// Logged in, but the role does not allow this (403).
    Forbidden,
    /// Too many attempts (e.g. failed logins); the message says when to retry (429).
    RateLimited,
    /// The request (its body, or a list in it) is larger than the documented
    /// limit, which the message states (413).
    TooLarge,
    /// A dependency (database, engine, registry) is not answering (503).
    Unavailable,
    /// The server failed; details are in its log, never in the response (500).
    Internal,
    /// The client could not reach the server or read its answer (client side only).
    Transport,
}

impl ErrorCode {
    /// The HTTP status this code is sent with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidInput => 422,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::RateLimited => 429,
            ErrorCode::TooLarge => 413,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
            ErrorCode::Transport => 502,
        }
    }
}

/// One problem with one field of the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldProblem {
    /// Dotted path of the field, e.g. `repo_url` or `services.api.build.context`.
    pub field: String,
    /// What was wrong and what was expected.
    pub message: String,
}

/// A failure a user can read: a code, a sentence, and every field problem at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<FieldProblem>,
}

/// Result alias for operations that fail with [`AppError`].
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError {
            code,
            message: message.into(),
            problems: Vec::new(),
        }
    }

    /// One invalid field: the message names it.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        AppError {
            code: ErrorCode::InvalidInput,
            message: format!("{field}: {message}"),
            problems: vec![FieldProblem {
                field: field.to_string(),
                message,
            }],
        }
    }

    /// Several invalid fields, reported together.
    pub fn invalid_fields(problems: Vec<FieldProblem>) -> Self {
        let message = problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect::<Vec<_>>()
            .join("; ");
        AppError {
            code: ErrorCode::InvalidInput,
            message,
            problems,
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        AppError::new(ErrorCode::NotFound, format!("{} not found", what.into()))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::Conflict, message)
    }

    /// 413 for a list in the request with more than `max` entries.
    pub fn too_many(field: &str, max: usize, got: usize) -> Self {
        let message = format!("at most {max} entries are accepted (got {got})");
        AppError {
            code: ErrorCode::TooLarge,
            message: format!("{field}: {message}"),
            problems: vec![FieldProblem { field: field.to_string(), message }],
        }
    }

    /// 413 unless `len <= max` (see [`crate::limits`]).
    pub fn check_list_len(field: &str, len: usize, max: usize) -> Result<(), AppError> {
        if len > max {
            return Err(AppError::too_many(field, max, len));
        }
        Ok(())
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::Unavailable, message)
    }

    /// An internal failure: the message must already be safe to show.
    pub fn internal(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::Internal, message)
    }

    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }
}

#[cfg(feature = "server-fn")]
mod server_fn_impl {
    use super::{AppError, ErrorCode};
    use server_fn::codec::JsonEncoding;
    use server_fn::error::{FromServerFnError, ServerFnErrorErr};

    impl FromServerFnError for AppError {
        type Encoder = JsonEncoding;

        fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
            match value {
                ServerFnErrorErr::Args(m) | ServerFnErrorErr::Deserialization(m) => AppError::new(
                    ErrorCode::InvalidInput,
                    format!("the request body could not be read: {m}"),
                ),
                ServerFnErrorErr::Registration(m) => AppError::new(ErrorCode::NotFound, m),
                ServerFnErrorErr::Request(m) | ServerFnErrorErr::Response(m) => AppError::new(
                    ErrorCode::Transport,
                    format!("could not reach the Slipway server: {m}"),
                ),
                ServerFnErrorErr::MissingArg(m) => {
                    AppError::new(ErrorCode::InvalidInput, format!("missing argument: {m}"))
                }
                other => AppError::new(ErrorCode::Internal, other.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_field_message_names_the_field() {
        let e = AppError::invalid("repo_url", "must be an absolute path or a git URL");
        assert_eq!(
            e.to_string(),
            "repo_url: must be an absolute path or a git URL"
        );
        assert_eq!(e.http_status(), 422);
        let json = serde_json::to_string(&e).unwrap();
        let back: AppError = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }
}
