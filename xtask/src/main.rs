//! `cargo xtask run` and `cargo xtask test`: the two commands the README
//! opens with. Each installs what is missing (idempotently), builds the
//! dashboard (wasm + CSS) and the server, and then serves or tests.
//!
//! Why an xtask instead of cargo-leptos: installing cargo-leptos 0.3.10 takes
//! about 19 minutes of compiling on a fresh 2-core machine, and it downloads
//! any tool missing from PATH from GitHub, which fails offline. The steps it
//! would run (cargo build for wasm32, wasm-bindgen, wasm-opt, copy the CSS and
//! assets, build the server) take this file a few hundred lines and no
//! dependencies, so `cargo xtask` compiles in seconds.

mod install;
mod site;
mod test;
mod util;

use std::process::ExitCode;

use util::{fail, Ctx};

const USAGE: &str = "usage: cargo xtask <command> [args]

commands:
  run [-- SERVER ARGS]   install what is missing, build, and serve Slipway on http://127.0.0.1:3000
                         (server flags after --, e.g. `cargo xtask run -- --addr 127.0.0.1:3100`;
                         `cargo xtask run -- --help` lists every setting)
  test                   install what is missing, build, start the services the tests need,
                         and run the whole suite (unit, store, router, engine and browser tests)
  build                  install what is missing and build the site and the server (release)
  bench [NAME]           start the services and run the benchmarks (builds, logs), printing their numbers";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ctx = Ctx::new();
    let result = match args.first().map(String::as_str) {
        Some("run") => cmd_run(&ctx, &args[1..]),
        Some("test") => test::run(&ctx, &args[1..]),
        Some("build") => cmd_build(&ctx),
        Some("bench") => test::bench(&ctx, &args[1..]),
        Some("-h") | Some("--help") | Some("help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn cmd_build(ctx: &Ctx) -> Result<(), String> {
    install::ensure(ctx, install::Purpose::Run)?;
    site::build_site(ctx, site::Profile::Release)?;
    site::build_server(ctx, site::Profile::Release)?;
    Ok(())
}

fn cmd_run(ctx: &Ctx, args: &[String]) -> Result<(), String> {
    let server_args: Vec<String> = match args.first().map(String::as_str) {
        Some("--") => args[1..].to_vec(),
        _ => args.to_vec(),
    };
    // `--help` needs no install or services.
    let wants_help = server_args.iter().any(|a| a == "--help" || a == "-h");
    if !wants_help {
        install::ensure(ctx, install::Purpose::Run)?;
        site::build_site(ctx, site::Profile::Release)?;
    }
    let server = site::build_server(ctx, site::Profile::Release)?;
    util::exec_server(ctx, &server, &server_args)
}
