//! The Postgres store: one pool and migrations at start-up.
//!
//! How storage is written, everywhere: each capability owns its queries as
//! `impl Store` blocks in its own module (`builds/store.rs`, `logs/read.rs`
//! and `logs/writer.rs`, `auth/`, `secrets.rs`, projects here), so a query is
//! always called as `store.something(…)`, spans come from one
//! `#[tracing::instrument]` per method, and finding who touches a table means
//! reading one module. This style was already the majority (projects, builds,
//! logs, auth, secrets); free functions over `&Store` (release/, pipeline.rs)
//! are the older style still being converted.

mod projects;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::error::Result;

/// The migrations in `engine/migrations`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// Opens project secrets where a secret is needed below the server functions
    /// (a project's git credentials); `None`: no secret can be read.
    secrets: Option<std::sync::Arc<crate::secrets::SecretBox>>,
}

impl Store {
    /// Connects with a pool sized for a server process.
    #[tracing::instrument(skip_all)]
    pub async fn connect(url: &str) -> Result<Store> {
        let options: PgConnectOptions = url.parse()?;
        let options = options.log_statements(tracing::log::LevelFilter::Debug);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Store { pool, secrets: None })
    }

    /// Wraps an existing pool (tests get one from `#[sqlx::test]`).
    pub fn from_pool(pool: PgPool) -> Store {
        Store { pool, secrets: None }
    }

    /// The same store, able to open project secrets with `secrets`.
    pub fn with_secrets(mut self, secrets: std::sync::Arc<crate::secrets::SecretBox>) -> Store {
        self.secrets = Some(secrets);
        self
    }

    /// What opens project secrets, if this store was given it.
    pub fn secret_box(&self) -> Option<&crate::secrets::SecretBox> {
        self.secrets.as_deref()
    }

    /// Applies every migration not yet applied.
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `SELECT version()`, for the health check.
    pub async fn server_version(&self) -> Result<String> {
        let v: (String,) = sqlx::query_as("SELECT current_setting('server_version')").fetch_one(&self.pool).await?;
        Ok(v.0)
    }
}
