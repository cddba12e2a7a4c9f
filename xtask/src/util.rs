//! Paths, process helpers and messages shared by the xtask commands.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// Where things are: the workspace root, the target directory, the tools directory.
pub struct Ctx {
    pub root: PathBuf,
    pub target: PathBuf,
    pub tools: PathBuf,
}

impl Ctx {
    pub fn new() -> Ctx {
        // The workspace the command runs in: found from the current directory,
        // not baked in at compile time (a shared target directory may hold an
        // xtask binary built from another clone).
        let root = workspace_root().unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
        });
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
        let target = if target.is_relative() { root.join(target) } else { target };
        // Tools installed from npm live outside the clone so a fresh clone reuses them.
        let tools = std::env::var_os("SLIPWAY_TOOLS_DIR").map(PathBuf::from).unwrap_or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/slipway-tools")).unwrap_or_else(|| target.join("tools"))
        });
        Ctx { root, target, tools }
    }

    pub fn site(&self) -> PathBuf {
        self.target.join("site")
    }

    pub fn cargo(&self) -> Command {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(&self.root);
        // Never let a caller's LEPTOS_OUTPUT_NAME change the wasm file names the server expects.
        cmd.env_remove("LEPTOS_OUTPUT_NAME");
        cmd
    }
}

/// The nearest directory at or above the current one whose Cargo.toml has `[workspace]`.
fn workspace_root() -> Option<PathBuf> {
    let mut dir = std::env::current_dir().ok()?;
    loop {
        let manifest = dir.join("Cargo.toml");
        if std::fs::read_to_string(&manifest).map(|t| t.contains("[workspace]")).unwrap_or(false) {
            return Some(dir);
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// Prints a step heading.
pub fn step(msg: &str) {
    eprintln!("\x1b[1;34m==>\x1b[0m {msg}");
}

/// Prints the error and returns a failing exit code.
pub fn fail(msg: &str) -> ExitCode {
    eprintln!("\x1b[1;31merror:\x1b[0m {msg}");
    ExitCode::FAILURE
}

/// Runs a command with inherited output; an error names the command.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = show(cmd);
    let status = cmd.status().map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if !status.success() {
        return Err(format!("`{shown}` failed ({status})"));
    }
    Ok(())
}

/// Runs a command and returns its stdout, or None if it cannot run or fails.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Whether `name` is an executable on PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

pub fn is_root() -> bool {
    output(Command::new("id").arg("-u")).map(|s| s.trim() == "0").unwrap_or(false)
}

/// Replaces this process with the server, so Ctrl-C reaches it directly and
/// it stops what it started.
pub fn exec_server(ctx: &Ctx, server: &Path, args: &[String]) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(server);
    cmd.args(args).current_dir(&ctx.root);
    if std::env::var_os("LEPTOS_SITE_ROOT").is_none() {
        cmd.env("LEPTOS_SITE_ROOT", ctx.site());
    }
    step(&format!("starting {}", show(&cmd)));
    let err = cmd.exec();
    Err(format!("could not start {}: {err}", server.display()))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Size of a file in bytes, and of its gzip -9 form (via the gzip tool).
pub fn sizes(path: &Path) -> (u64, Option<u64>) {
    let raw = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let gz = output(Command::new("sh").arg("-c").arg(format!("gzip -9 -c '{}' | wc -c", path.display())))
        .and_then(|s| s.trim().parse().ok());
    (raw, gz)
}
