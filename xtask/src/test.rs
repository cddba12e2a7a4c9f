//! `cargo xtask test`: build, start the services the tests need (a private
//! Postgres cluster, the Docker engine, a registry on a free loopback port),
//! run every Rust test against them, then serve Slipway on a free port with its
//! own database and data directory and run the browser tests against it.
//! Ends with one line: `summary: N passed, M failed, K skipped` (plus the
//! test binaries that crashed, if any: their tests never reported).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::install::{self, Purpose};
use crate::site::{self, Profile};
use crate::util::{free_port, run as run_cmd, show, step, Ctx};

#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
    /// Ignored Rust tests; skipped, did-not-run and interrupted browser tests.
    skipped: u64,
    /// Test binaries that died (a signal, or an exit code other than a test
    /// failure's 101) before reporting a result: their tests are uncounted.
    crashed: Vec<String>,
    failures: Vec<String>,
}

impl Totals {
    fn summary(&self) -> String {
        let mut line = format!("summary: {} passed, {} failed, {} skipped", self.passed, self.failed, self.skipped);
        if !self.crashed.is_empty() {
            line.push_str(&format!(", {} test binaries crashed ({})", self.crashed.len(), self.crashed.join("; ")));
        }
        line
    }
}

/// The `slipway-server services` process and what it printed.
struct Services {
    child: Child,
    env: Vec<(String, String)>,
}

impl Services {
    fn start(server: &Path, data_dir: &Path) -> Result<Services, String> {
        let registry_port = free_port()?;
        let mut cmd = Command::new(server);
        cmd.arg("services")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--registry-addr")
            .arg(format!("127.0.0.1:{registry_port}"))
            .env_remove("DATABASE_URL")
            .env_remove("SLIPWAY_REGISTRY")
            .env_remove("SLIPWAY_REGISTRY_TOKEN_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        step(&format!("starting test services: {}", show(&cmd)));
        let mut child = cmd.spawn().map_err(|e| format!("starting {}: {e}", server.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout from the services process")?;
        let mut env = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| e.to_string())?;
            if line == "SLIPWAY_SERVICES_READY=1" {
                return Ok(Services { child, env });
            }
            if let Some((k, v)) = line.split_once('=') {
                eprintln!("    {k}={v}");
                env.push((k.to_string(), v.to_string()));
            }
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        Err(format!("the test services did not start ({status}); see the error above"))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn stop(mut self) {
        terminate(&mut self.child, Duration::from_secs(60));
    }
}

fn terminate(child: &mut Child, grace: Duration) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs a command, echoing its stdout (fed line by line to `parse`) and its
/// stderr (fed to `parse_err`, read on a thread so neither pipe blocks).
fn run_counted(cmd: &mut Command, mut parse: impl FnMut(&str), mut parse_err: impl FnMut(&str)) -> Result<bool, String> {
    let shown = show(cmd);
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| format!("could not start `{shown}`: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let errors = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut err = std::io::stderr();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(err, "{line}");
            lines.push(line);
        }
        lines
    });
    let mut out = std::io::stdout();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let _ = writeln!(out, "{line}");
        parse(&line);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    for line in errors.join().map_err(|_| "the stderr reader panicked")? {
        parse_err(&line);
    }
    Ok(status.success())
}

/// `test result: ok. 5 passed; 0 failed; 1 ignored; …`
fn parse_cargo(line: &str, totals: &mut Totals) {
    if let Some(rest) = line.trim().strip_prefix("test result: ") {
        for part in rest.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            match words.as_slice() {
                [.., n, "passed"] => totals.passed += n.parse::<u64>().unwrap_or(0),
                [n, "failed"] => totals.failed += n.parse::<u64>().unwrap_or(0),
                [n, "ignored"] => totals.skipped += n.parse::<u64>().unwrap_or(0),
                _ => {}
            }
        }
    }
}

/// Cargo's stderr names every test binary that did not exit successfully:
/// ``process didn't exit successfully: `/…/deps/builds-0a1b2c` (exit status: 101)``.
/// 101 is a test failure (already counted from its `test result` line);
/// anything else — a signal, an abort, `process::exit` — is a crash, and
/// the binary never reported its tests. Returns `builds (signal: 6, …)`.
fn parse_cargo_crash(line: &str) -> Option<String> {
    let rest = line.split_once("process didn't exit successfully: `")?.1;
    let (command, status) = rest.split_once('`')?;
    let binary = command.split_whitespace().next().unwrap_or(command);
    let status = status.trim().trim_start_matches('(').trim_end_matches(')');
    if status == "exit status: 101" {
        return None;
    }
    let file = binary.rsplit('/').next().unwrap_or(binary);
    let name = match file.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => name,
        _ => file,
    };
    Some(format!("{name} ({status})"))
}

/// Playwright's list reporter ends with counts: `  3 passed (4.2s)`,
/// `  1 failed`, `  1 flaky`, `  2 skipped`, `  1 did not run`, `  1 interrupted`.
fn parse_playwright(line: &str, totals: &mut Totals) {
    let words: Vec<&str> = line.split_whitespace().collect();
    if let [n, kind, rest @ ..] = words.as_slice() {
        if let Ok(n) = n.parse::<u64>() {
            match (*kind, rest) {
                ("passed", _) => totals.passed = n,
                ("failed" | "flaky", _) => totals.failed += n,
                ("skipped" | "interrupted", _) | ("did", ["not", "run", ..]) => totals.skipped += n,
                _ => {}
            }
        }
    }
}

fn http_get_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1)?.parse().ok()
}

fn cargo_tests(ctx: &Ctx, services: &Services, extra: &[String], totals: &mut Totals) -> Result<(), String> {
    step("running the Rust tests (unit, store, router, engine)");
    let mut cmd = ctx.cargo();
    cmd.args(["test", "--workspace", "--exclude", "slipway-frontend", "--no-fail-fast"]).args(extra);
    for (k, v) in &services.env {
        cmd.env(k, v);
    }
    let mut counts = Totals::default();
    let mut crashed = Vec::new();
    let ok = run_counted(&mut cmd, |line| parse_cargo(line, &mut counts), |line| crashed.extend(parse_cargo_crash(line)))?;
    totals.passed += counts.passed;
    totals.failed += counts.failed + crashed.len() as u64;
    totals.skipped += counts.skipped;
    if !ok {
        if counts.failed == 0 && crashed.is_empty() {
            totals.failed += 1;
        }
        totals.failures.push("cargo test".into());
    }
    for c in &crashed {
        totals.failures.push(format!("test binary {c} crashed"));
    }
    totals.crashed.extend(crashed);
    Ok(())
}

fn browser_tests(ctx: &Ctx, server: &Path, services: &Services, work: &Path, totals: &mut Totals) -> Result<(), String> {
    step("running the browser tests (Playwright, Debian's Chromium)");
    let e2e = ctx.root.join("end2end");
    if !e2e.join("node_modules/@playwright/test").is_dir() {
        run_cmd(Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(&e2e))?;
    }
    let base_url = services.get("DATABASE_URL").ok_or("the services process printed no DATABASE_URL")?;
    let db = format!("slipway_e2e_{}", std::process::id());
    run_cmd(Command::new("psql").arg(base_url).args(["-q", "-v", "ON_ERROR_STOP=1", "-c"]).arg(format!("CREATE DATABASE {db}")))?;
    let db_url = format!("{}/{db}", base_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(base_url));
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let data = work.join("e2e");
    // An administrator for the browser tests, with a password made for this run.
    let password = random_hex(16)?;
    let mut admin = Command::new(server)
        .args(["admin", "create", "--username", "e2e-admin", "--database-url", &db_url])
        .arg("--data-dir")
        .arg(&data)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("creating the e2e administrator: {e}"))?;
    if let Some(mut stdin) = admin.stdin.take() {
        stdin.write_all(password.as_bytes()).map_err(|e| e.to_string())?;
    }
    if !admin.wait().map_err(|e| e.to_string())?.success() {
        return Err("creating the e2e administrator failed".into());
    }
    let log_path = work.join("e2e-server.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(server);
    cmd.args(["serve", "--addr", &addr, "--start-docker", "false", "--database-url", &db_url])
        .arg("--data-dir")
        .arg(&data)
        .arg("--site-root")
        .arg(ctx.site())
        .arg("--registry")
        .arg(services.get("SLIPWAY_REGISTRY").unwrap_or("none"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    // The services' registry takes tokens signed with this key.
    if let Some(key) = services.get("SLIPWAY_REGISTRY_TOKEN_KEY") {
        cmd.env("SLIPWAY_REGISTRY_TOKEN_KEY", key);
    }
    let mut child = cmd.spawn().map_err(|e| format!("starting the server for browser tests: {e}"))?;
    let started = Instant::now();
    loop {
        if http_get_status(&addr, "/healthz") == Some(200) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("the server for browser tests exited ({status}):\n{log}"));
        }
        if started.elapsed() > Duration::from_secs(90) {
            terminate(&mut child, Duration::from_secs(10));
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("the server for browser tests was not healthy within 90 s:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut cmd = Command::new("npx");
    // --forbid-only: a stray `test.only` fails the run instead of silently skipping the rest.
    cmd.args(["playwright", "test", "--reporter=list", "--forbid-only"])
        .current_dir(&e2e)
        .env("BASE_URL", format!("http://{addr}"))
        .env("SLIPWAY_E2E_REPO", data.join("demo-repo"))
        .env("SLIPWAY_E2E_ADMIN", "e2e-admin")
        .env("SLIPWAY_E2E_PASSWORD", &password)
        // For specs that need a server of their own (setup.spec.ts: an empty database).
        .env("SLIPWAY_E2E_SERVER", server)
        .env("SLIPWAY_E2E_SITE_ROOT", ctx.site())
        .env("SLIPWAY_E2E_DATABASE_BASE", base_url);
    let mut counts = Totals::default();
    let ok = run_counted(&mut cmd, |line| parse_playwright(line, &mut counts), |_| {});
    terminate(&mut child, Duration::from_secs(20));
    let ok = ok?;
    if !ok && counts.failed == 0 {
        counts.failed = 1;
    }
    totals.passed += counts.passed;
    totals.failed += counts.failed;
    totals.skipped += counts.skipped;
    if !ok {
        totals.failures.push(format!("browser tests (server log: {})", log_path.display()));
    }
    Ok(())
}

/// `n` random bytes from the kernel, as hex.
fn random_hex(n: usize) -> Result<String, String> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn work_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("slipway-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

/// `cargo xtask test [-- CARGO TEST ARGS]`.
pub fn run(ctx: &Ctx, args: &[String]) -> Result<(), String> {
    let extra: Vec<String> = match args.first().map(String::as_str) {
        Some("--") => args[1..].to_vec(),
        _ => args.to_vec(),
    };
    install::ensure(ctx, Purpose::Test)?;
    site::build_site(ctx, Profile::Dev)?;
    let server = site::build_server(ctx, Profile::Dev)?;
    step("compiling the tests");
    run_cmd(ctx.cargo().args(["test", "--workspace", "--exclude", "slipway-frontend", "--no-run"]))?;
    let work = work_dir()?;
    let services = Services::start(&server, &work.join("services"))?;
    let mut totals = Totals::default();
    let cargo = cargo_tests(ctx, &services, &extra, &mut totals);
    let browser = if extra.is_empty() { browser_tests(ctx, &server, &services, &work, &mut totals) } else { Ok(()) };
    services.stop();
    if totals.failures.is_empty() && cargo.is_ok() && browser.is_ok() {
        let _ = std::fs::remove_dir_all(&work);
    }
    cargo?;
    browser?;
    println!("{}", totals.summary());
    if !totals.failures.is_empty() {
        return Err(format!("failed: {}", totals.failures.join(", ")));
    }
    Ok(())
}


/// `cargo xtask bench [NAME]`: start the services, run the benchmark binary
/// (optimised, profile `server-release`) against them, print its numbers.
pub fn bench(ctx: &Ctx, args: &[String]) -> Result<(), String> {
    install::ensure(ctx, Purpose::Run)?;
    let server = site::build_server(ctx, Profile::Dev)?;
    step("building the benchmarks (profile server-release)");
    run_cmd(ctx.cargo().args(["build", "--package", "slipway-bench", "--profile", "server-release"]))?;
    let work = work_dir()?;
    let services = Services::start(&server, &work.join("services"))?;
    step("running the benchmarks");
    let mut cmd = Command::new(ctx.target.join("server-release/slipway-bench"));
    cmd.args(args).env("RUST_LOG", "warn");
    for (k, v) in &services.env {
        cmd.env(k, v);
    }
    let result = run_cmd(&mut cmd);
    services.stop();
    let _ = std::fs::remove_dir_all(&work);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_counts_passed_failed_and_ignored_tests() {
        let mut t = Totals::default();
        parse_cargo("test result: FAILED. 5 passed; 2 failed; 3 ignored; 0 measured; 9 filtered out; finished in 1.00s", &mut t);
        parse_cargo("test result: ok. 1 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s", &mut t);
        assert_eq!((t.passed, t.failed, t.skipped), (6, 2, 4));
    }

    #[test]
    fn a_test_binary_killed_by_a_signal_is_a_crash_and_a_test_failure_is_not() {
        let crash = "  process didn't exit successfully: `/var/tmp/slipway-target/debug/deps/builds-0123456789abcdef` (signal: 6, SIGABRT: process abort signal)";
        assert_eq!(parse_cargo_crash(crash).as_deref(), Some("builds (signal: 6, SIGABRT: process abort signal)"));
        let exit = "process didn't exit successfully: `/t/debug/deps/cli-fedcba9876543210 --nocapture` (exit status: 1)";
        assert_eq!(parse_cargo_crash(exit).as_deref(), Some("cli (exit status: 1)"));
        let failed = "process didn't exit successfully: `/t/debug/deps/builds-0123456789abcdef` (exit status: 101)";
        assert_eq!(parse_cargo_crash(failed), None);
        assert_eq!(parse_cargo_crash("     Running tests/builds.rs (/t/debug/deps/builds-0123456789abcdef)"), None);
    }

    #[test]
    fn playwright_counts_skipped_did_not_run_and_interrupted_tests_as_skipped() {
        let mut t = Totals::default();
        for line in ["  1 failed", "    [chromium] › a.spec.ts:3:5 › x", "  2 flaky", "  1 skipped", "  3 did not run", "  1 interrupted", "  7 passed (40.2s)"] {
            parse_playwright(line, &mut t);
        }
        assert_eq!((t.passed, t.failed, t.skipped), (7, 3, 5));
        t.crashed.push("builds (signal: 9, SIGKILL: kill)".into());
        assert_eq!(t.summary(), "summary: 7 passed, 3 failed, 5 skipped, 1 test binaries crashed (builds (signal: 9, SIGKILL: kill))");
    }
}
