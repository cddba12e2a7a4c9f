//! Idempotent installation of everything Slipway needs on a Debian machine
//! that has only the Rust toolchain: apt packages, the wasm target,
//! wasm-bindgen-cli (the exact version the crate pins) and a wasm-opt that
//! works (npm's binaryen; Debian's wasm-opt 108 silently breaks hydration).

use std::process::Command;

use crate::util::{is_root, on_path, output, run, step, Ctx};

/// The wasm-bindgen version pinned in Cargo.toml; the CLI must match it.
pub const WASM_BINDGEN_VERSION: &str = "0.2.129";
/// npm's binaryen; its wasm-opt (version 132) produces wasm that hydrates.
pub const BINARYEN_VERSION: &str = "132.0.0";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Run,
    Test,
}

/// Debian packages each purpose needs.
fn packages(purpose: Purpose) -> Vec<&'static str> {
    // Node.js and npm bring wasm-opt (npm's binaryen) and, for tests, Playwright.
    let mut p = vec!["postgresql", "docker.io", "docker-registry", "busybox-static", "git", "gzip", "brotli", "nodejs", "npm"];
    if purpose == Purpose::Test {
        p.extend(["chromium", "chromium-driver"]);
    }
    p
}

fn installed(pkg: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .map(|s| s.contains("install ok installed"))
        .unwrap_or(false)
}

fn ensure_apt(purpose: Purpose) -> Result<(), String> {
    let mut missing: Vec<&str> = packages(purpose).into_iter().filter(|p| !installed(p)).collect();
    // A machine may have Node.js from elsewhere; then Debian's nodejs/npm are not needed.
    if on_path("npm").is_some() && on_path("node").is_some() {
        missing.retain(|p| *p != "nodejs" && *p != "npm");
    }
    if missing.is_empty() {
        return Ok(());
    }
    if on_path("apt-get").is_none() {
        return Err(format!("missing packages {}: this machine has no apt-get; install them by hand", missing.join(" ")));
    }
    if !is_root() {
        return Err(format!("missing packages: run `sudo apt-get install {}` (or run this command as root)", missing.join(" ")));
    }
    step(&format!("installing Debian packages: {}", missing.join(" ")));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(())
}

fn ensure_wasm_target() -> Result<(), String> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if installed.lines().any(|l| l.trim() == "wasm32-unknown-unknown") {
        return Ok(());
    }
    step("adding the wasm32-unknown-unknown target");
    run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))
}

fn ensure_wasm_bindgen(ctx: &Ctx) -> Result<(), String> {
    let version = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if version.trim() == format!("wasm-bindgen {WASM_BINDGEN_VERSION}") {
        return Ok(());
    }
    step(&format!("installing wasm-bindgen-cli {WASM_BINDGEN_VERSION} (about 2 minutes, once)"));
    run(ctx.cargo().args(["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN_VERSION, "--locked"]))
}

/// Path of the wasm-opt from npm's binaryen, installed into the tools directory.
pub fn wasm_opt(ctx: &Ctx) -> std::path::PathBuf {
    ctx.tools.join("node_modules/.bin/wasm-opt")
}

fn ensure_wasm_opt(ctx: &Ctx) -> Result<(), String> {
    let bin = wasm_opt(ctx);
    let version = output(Command::new(&bin).arg("--version")).unwrap_or_default();
    if version.contains(&format!("version {}", BINARYEN_VERSION.split('.').next().unwrap_or_default())) {
        return Ok(());
    }
    std::fs::create_dir_all(&ctx.tools).map_err(|e| format!("creating {}: {e}", ctx.tools.display()))?;
    step(&format!("installing wasm-opt (npm binaryen@{BINARYEN_VERSION}) into {}", ctx.tools.display()));
    run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
        .arg(&ctx.tools)
        .arg(format!("binaryen@{BINARYEN_VERSION}")))
}

/// Everything `run` (and, with the browser, `test`) needs.
pub fn ensure(ctx: &Ctx, purpose: Purpose) -> Result<(), String> {
    step("checking prerequisites");
    ensure_apt(purpose)?;
    ensure_wasm_target()?;
    ensure_wasm_bindgen(ctx)?;
    ensure_wasm_opt(ctx)?;
    Ok(())
}
