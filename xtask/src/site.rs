//! Builds the dashboard's site (what cargo-leptos would): the hydrate crate to
//! wasm, wasm-bindgen, wasm-opt, the stylesheet and the public assets; and the
//! server binary.

use std::path::PathBuf;

use crate::install::wasm_opt;
use crate::util::{run, sizes, step, Ctx};

/// Name the server's hydration script loads (`/pkg/slipway.js`, `/pkg/slipway_bg.wasm`).
const OUTPUT_NAME: &str = "slipway";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Optimised: the wasm through wasm-opt -Oz, the server with `server-release`.
    Release,
    /// The server with the dev profile, sharing compiled dependencies with `cargo test`.
    Dev,
}

/// Builds target/site: pkg/slipway.js, pkg/slipway_bg.wasm, pkg/slipway.css and public/*.
pub fn build_site(ctx: &Ctx, _profile: Profile) -> Result<(), String> {
    step("building the dashboard (wasm, profile wasm-release)");
    run(ctx.cargo().args([
        "build",
        "--package",
        "slipway-frontend",
        "--lib",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "wasm-release",
    ]))?;
    let input = ctx.target.join("wasm32-unknown-unknown/wasm-release/slipway_frontend.wasm");
    let site = ctx.site();
    let pkg = site.join("pkg");
    std::fs::create_dir_all(&pkg).map_err(|e| format!("creating {}: {e}", pkg.display()))?;
    run(std::process::Command::new("wasm-bindgen")
        .arg(&input)
        .args(["--target", "web", "--no-typescript", "--out-name", OUTPUT_NAME, "--out-dir"])
        .arg(&pkg))?;
    let wasm = pkg.join(format!("{OUTPUT_NAME}_bg.wasm"));
    let (raw_before, _) = sizes(&wasm);
    step("optimising the wasm (wasm-opt -Oz)");
    run(std::process::Command::new(wasm_opt(ctx))
        .arg(&wasm)
        .args(["-Oz", "--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext", "--enable-mutable-globals", "-o"])
        .arg(&wasm))?;
    let (raw, gz) = sizes(&wasm);
    eprintln!(
        "    wasm: {} KB after wasm-bindgen, {} KB after wasm-opt, {} KB gzip -9",
        raw_before / 1024,
        raw / 1024,
        gz.map(|g| (g / 1024).to_string()).unwrap_or_else(|| "?".into())
    );
    let css = ctx.root.join("style/main.css");
    std::fs::copy(&css, pkg.join(format!("{OUTPUT_NAME}.css"))).map_err(|e| format!("copying {}: {e}", css.display()))?;
    copy_dir(&ctx.root.join("public"), &site)?;
    precompress(&pkg)?;
    Ok(())
}

/// Writes `<file>.br` (brotli -q 11) and `<file>.gz` (gzip -9) beside each
/// asset, so the server sends them compressed without compressing per request.
fn precompress(pkg: &std::path::Path) -> Result<(), String> {
    step("precompressing the assets (brotli, gzip)");
    let entries = std::fs::read_dir(pkg).map_err(|e| format!("reading {}: {e}", pkg.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if !matches!(ext, "wasm" | "js" | "css") {
            continue;
        }
        run(std::process::Command::new("gzip").args(["-9", "-k", "-f", "-n"]).arg(&path))?;
        run(std::process::Command::new("brotli").args(["-f", "-k", "-q", "11"]).arg(&path))?;
    }
    let wasm = pkg.join(format!("{OUTPUT_NAME}_bg.wasm.br"));
    if let Ok(m) = std::fs::metadata(&wasm) {
        eprintln!("    wasm: {} KB brotli -q 11", m.len() / 1024);
    }
    Ok(())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<(), String> {
    let entries = std::fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let dest = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest).map_err(|e| format!("copying {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Builds the server (and the CLI) and returns the server binary's path.
pub fn build_server(ctx: &Ctx, profile: Profile) -> Result<PathBuf, String> {
    let (args, dir): (&[&str], &str) = match profile {
        Profile::Release => (&["--profile", "server-release"], "server-release"),
        Profile::Dev => (&[], "debug"),
    };
    step(&format!("building the server and the CLI (profile {dir})"));
    run(ctx.cargo().args(["build", "--package", "slipway-server", "--package", "slipway-cli"]).args(args))?;
    Ok(ctx.target.join(dir).join("slipway-server"))
}
