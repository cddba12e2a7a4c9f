//! Configuration: every setting is a flag and an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Slipway: a self-hosted build and release control plane.
///
/// With no configuration it starts what it needs itself: a private Postgres
/// cluster in the data directory (unless DATABASE_URL is set), the Docker
/// engine (unless one answers), a registry on 127.0.0.1, and a local base image.
#[derive(Debug, Parser)]
#[command(name = "slipway-server", version, about, long_about)]
pub struct Cli {
    /// How the process logs: `text` for people, `json` (one object per
    /// line, with the span's ids) for log shippers. `RUST_LOG` filters.
    #[arg(long, env = "SLIPWAY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"], global = true)]
    pub log_format: String,

    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub serve: Serve,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the dashboard and API (the default).
    Serve,
    /// Start only the embedded services (Postgres, Docker engine, registry,
    /// base image), print how to reach them as KEY=VALUE lines, and keep them
    /// running until interrupted. The test command uses this.
    Services,
    /// Administration from the shell.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a global administrator; the password is read from standard input.
    Create {
        #[arg(long)]
        username: String,
    },
}

/// Settings shared by every command.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// Directory for Slipway's own data: the embedded Postgres cluster, registry
    /// storage, logs of started services, the demo repository. Defaults to
    /// /var/lib/slipway as root, else $XDG_DATA_HOME/slipway.
    #[arg(long, env = "SLIPWAY_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,

    /// Postgres to use. When unset, Slipway runs its own cluster in the data directory.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Start `dockerd --bridge=none --iptables=false --ip-masq=false` when no engine answers
    /// at DOCKER_HOST (or /var/run/docker.sock).
    #[arg(long, env = "SLIPWAY_START_DOCKER", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub start_docker: bool,

    /// An existing registry (host:port) to push to, or `none` to disable pushing.
    /// When unset, Slipway serves its own registry at --registry-addr.
    #[arg(long, env = "SLIPWAY_REGISTRY", global = true)]
    pub registry: Option<String>,

    /// The key that signs registry tokens (PEM PKCS#8 ECDSA P-256, mode 0600),
    /// created on first start. Defaults to `registry-token.key` in the data
    /// directory for the embedded registry; for a registry set with
    /// --registry, tokens are only used when this is given (the registry of
    /// another Slipway process, e.g. the test services).
    #[arg(long, env = "SLIPWAY_REGISTRY_TOKEN_KEY", global = true)]
    pub registry_token_key: Option<PathBuf>,

    /// Address of the embedded registry (loopback only).
    #[arg(long, env = "SLIPWAY_REGISTRY_ADDR", default_value = "127.0.0.1:5000", global = true)]
    pub registry_addr: SocketAddr,
}

/// Settings of the `serve` command.
#[derive(Debug, Args, Clone)]
pub struct Serve {
    /// Address the dashboard and API listen on.
    #[arg(long, env = "SLIPWAY_ADDR", default_value = "127.0.0.1:3000", global = true)]
    pub addr: SocketAddr,

    /// Directory with the built site (pkg/slipway.js, pkg/slipway_bg.wasm, pkg/slipway.css, favicon).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site", global = true)]
    pub site_root: PathBuf,

    /// Name of the database in the embedded cluster.
    #[arg(long, env = "SLIPWAY_DATABASE_NAME", default_value = "slipway", global = true)]
    pub database_name: String,

    /// Run builds in this process (several processes may share one database;
    /// each claims runs from the same queue).
    #[arg(long, env = "SLIPWAY_BUILD_WORKER", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub build_worker: bool,

    /// Builds this process runs at the same time.
    #[arg(long, env = "SLIPWAY_BUILD_CONCURRENCY", default_value_t = 2, global = true)]
    pub build_concurrency: usize,

    /// Reuse the artifacts of an earlier successful run with the same project,
    /// sha, manifest, services, build args and registry.
    #[arg(long, env = "SLIPWAY_BUILD_REUSE", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub build_reuse: bool,

    /// Timeout of a build run that does not set its own, in seconds.
    #[arg(long, env = "SLIPWAY_BUILD_TIMEOUT", default_value_t = 3600, global = true)]
    pub build_timeout: u64,

    /// Build backend: `buildkit` (the Docker engine's embedded BuildKit) or
    /// `legacy` (the engine's classic builder, an explicit fallback).
    #[arg(long, env = "SLIPWAY_BUILD_BACKEND", default_value = "buildkit", value_parser = ["buildkit", "legacy"], global = true)]
    pub build_backend: String,

    /// A header a reverse proxy in front of Slipway sets to the client's
    /// address (e.g. `X-Forwarded-For`; the right-most address in it is used).
    /// Only set this when every request comes through that proxy: the client
    /// address keys login limits and the audit trail. Unset (the default):
    /// the socket's peer address, and forwarding headers are ignored.
    #[arg(long, env = "SLIPWAY_TRUSTED_PROXY_HEADER", global = true)]
    pub trusted_proxy_header: Option<String>,

    /// Always mark the session cookie `Secure`. Without it the cookie is
    /// `Secure` when the request came over https (as a trusted proxy's
    /// `X-Forwarded-Proto` says).
    #[arg(long, env = "SLIPWAY_FORCE_SECURE_COOKIE", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub force_secure_cookie: bool,

    /// A token that reads `GET /metrics` (Prometheus' `bearer_token`) and
    /// nothing else. Without it only a global administrator's token reads
    /// the metrics.
    #[arg(long, env = "SLIPWAY_METRICS_TOKEN", global = true, hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Also serve `/metrics` (with the same rule) on this address, e.g. an
    /// interface only the monitoring network reaches.
    #[arg(long, env = "SLIPWAY_METRICS_ADDR", global = true)]
    pub metrics_addr: Option<SocketAddr>,

    /// Seed the demo project on first run.
    #[arg(long, env = "SLIPWAY_SEED_DEMO", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub seed_demo: bool,
}

impl Common {
    /// The data directory, defaulted as documented.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.data_dir {
            return d.clone();
        }
        // SAFETY: geteuid cannot fail.
        if unsafe { libc_geteuid() } == 0 {
            return PathBuf::from("/var/lib/slipway");
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("slipway")
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
