//! A private Postgres cluster in the data directory, made with the system's
//! `initdb` and run with `pg_ctl`. It listens only on 127.0.0.1 and on a
//! socket inside the data directory, which is why trust authentication is
//! acceptable here: nothing off this host can reach it.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::{ensure_dir, find_binary, free_port, is_root, pid_alive};
use crate::error::{Error, Result};

/// A running private cluster that this process started (or found running).
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    started_by_us: bool,
}

/// The directory holding the newest installed PostgreSQL server binaries.
fn server_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SLIPWAY_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    find_binary("initdb", &[]).and_then(|p| p.parent().map(Path::to_path_buf))
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (initdb refuses root).
fn pg_command(bin: &Path, tool: &str) -> Command {
    let exe = bin.join(tool);
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.arg("-u").arg("postgres").arg("--").arg(exe);
        cmd
    } else {
        Command::new(exe)
    }
}

async fn run(mut cmd: Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| Error::Startup(format!("{what}: could not run it: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        return Err(Error::Startup(format!("{what} failed: {}{}", stderr.trim(), stdout.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl EmbeddedPostgres {
    /// Initialises the cluster in `dir` on first use, then starts it (or
    /// adopts an instance of it that is already running).
    pub async fn start(dir: &Path) -> Result<EmbeddedPostgres> {
        let bin = server_bin_dir().ok_or_else(|| {
            Error::Startup(
                "PostgreSQL server binaries (initdb, pg_ctl) not found: install them with `apt-get install postgresql`, or set DATABASE_URL to use an existing server".into(),
            )
        })?;
        ensure_dir(dir)?;
        let dir = dir.canonicalize().map_err(|e| Error::io(format!("resolving {}", dir.display()), e))?;
        if is_root() {
            chown_postgres(&dir).await?;
        }
        let data = dir.join("data");
        if !data.join("PG_VERSION").is_file() {
            tracing::info!(dir = %data.display(), "initialising a private PostgreSQL cluster");
            let mut cmd = pg_command(&bin, "initdb");
            cmd.arg("-D").arg(&data).args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-instructions"]);
            run(cmd, "initdb").await?;
        }
        if let Some(port) = running_port(&data) {
            tracing::info!(port, "PostgreSQL cluster already running; reusing it");
            return Ok(EmbeddedPostgres { bin, dir, port, started_by_us: false });
        }
        let port = free_port()?;
        let mut cmd = pg_command(&bin, "pg_ctl");
        cmd.arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(format!("-p {port} -k {} -c listen_addresses=127.0.0.1", dir.display()))
            .arg("-l")
            .arg(dir.join("postgres.log"))
            .args(["-w", "-t", "60", "start"]);
        run(cmd, "pg_ctl start").await.map_err(|e| {
            Error::Startup(format!("{e} (see {})", dir.join("postgres.log").display()))
        })?;
        let pg = EmbeddedPostgres { bin, dir, port, started_by_us: true };
        tracing::info!(
            url = %pg.url("postgres"),
            log = %pg.dir.join("postgres.log").display(),
            "started PostgreSQL (trust auth, loopback and socket only)"
        );
        Ok(pg)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connection URL for a database of this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `database` if it does not exist.
    pub async fn ensure_database(&self, database: &str) -> Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(database)
            .fetch_optional(&mut conn)
            .await?;
        if exists.is_none() {
            let quoted = database.replace('"', "\"\"");
            sqlx::query(&format!("CREATE DATABASE \"{quoted}\"")).execute(&mut conn).await?;
            tracing::info!(database, "created database");
        }
        Ok(())
    }

    /// Stops the cluster if this process started it.
    pub async fn stop(&self) {
        if !self.started_by_us {
            return;
        }
        let mut cmd = pg_command(&self.bin, "pg_ctl");
        cmd.arg("-D").arg(self.dir.join("data")).args(["-m", "fast", "-w", "stop"]);
        match run(cmd, "pg_ctl stop").await {
            Ok(_) => tracing::info!("PostgreSQL stopped"),
            Err(e) => tracing::warn!(error = %e, "stopping PostgreSQL"),
        }
    }
}

/// The port of a postmaster already running on `data`, if any.
fn running_port(data: &Path) -> Option<u16> {
    let pidfile = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let mut lines = pidfile.lines();
    let pid: i32 = lines.next()?.trim().parse().ok()?;
    if !pid_alive(pid) {
        return None;
    }
    lines.nth(2)?.trim().parse().ok()
}

/// Gives the cluster directory to `postgres`, and checks it can reach it.
async fn chown_postgres(dir: &Path) -> Result<()> {
    let mut cmd = Command::new("chown");
    cmd.arg("postgres:postgres").arg(dir);
    run(cmd, "chown postgres").await.map_err(|e| {
        Error::Startup(format!("{e}: the `postgres` user must exist (apt-get install postgresql)"))
    })?;
    let mut probe = Command::new("runuser");
    probe.args(["-u", "postgres", "--", "test", "-w"]).arg(dir);
    if run(probe, "access check").await.is_err() {
        return Err(Error::Startup(format!(
            "the postgres user cannot write {}: a parent directory is not traversable (e.g. /root is 0700); choose a data directory elsewhere with --data-dir or SLIPWAY_DATA_DIR",
            dir.display()
        )));
    }
    Ok(())
}
