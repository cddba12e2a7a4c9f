//! The engine's error type and its mapping to the wire error.

use slipway_model::{AppError, ErrorCode};

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that a user can correct; already carries the field names.
    #[error(transparent)]
    App(#[from] AppError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("docker engine error: {0}")]
    Docker(#[from] bollard::errors::Error),
    /// Reading or writing a file, an archive or a stream failed.
    #[error("{0}")]
    Io(String),
    /// Slipway's own code failed where it should not (encoding, signing, a
    /// task that died): a bug or a broken host, never the caller's input.
    #[error("internal error: {0}")]
    Internal(String),
    /// A stored row holds a value Slipway cannot read (an unknown status,
    /// malformed JSON): written by another version, or by hand.
    #[error("corrupt record: {0}")]
    CorruptRow(String),
    /// A service Slipway needs could not be started; the text says what to do.
    #[error("{0}")]
    Startup(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(context: impl std::fmt::Display, err: std::io::Error) -> Self {
        Error::Io(format!("{context}: {err}"))
    }
}

/// Unique-constraint names mapped to the field a user should change.
fn conflict_field(constraint: &str) -> Option<(&'static str, &'static str)> {
    match constraint {
        "projects_name_key" | "projects_name_lower_key" => Some(("name", "a project with this name already exists")),
        "projects_slug_key" => Some(("name", "a project with this name (or one that gives the same slug) already exists")),
        _ => None,
    }
}

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        match err {
            Error::App(e) => e,
            Error::Db(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                let constraint = db.constraint().unwrap_or_default();
                match conflict_field(constraint) {
                    Some((field, message)) => AppError {
                        code: ErrorCode::Conflict,
                        message: format!("{field}: {message}"),
                        problems: vec![slipway_model::FieldProblem { field: field.into(), message: message.into() }],
                    },
                    None => AppError::conflict(format!("this conflicts with an existing record ({constraint})")),
                }
            }
            Error::Db(sqlx::Error::PoolTimedOut) | Error::Db(sqlx::Error::Io(_)) => {
                tracing::error!(error = %err, "database unavailable");
                AppError::unavailable("the database is not answering; try again shortly")
            }
            other => {
                tracing::error!(error = %other, "internal error");
                AppError::internal("internal error; the server log has the details")
            }
        }
    }
}
