//! `slipway build …`: create, run, list, show, runs, artifacts, cancel.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;
use serde_json::json;
use slipway_model::build::{BuildArtifact, BuildDetail, BuildListQuery, BuildPage, BuildRun, ImportedBuild, NewBuild};
use slipway_model::status::BuildRunStatus;

use crate::client::Client;
use crate::{print_json, table};

#[derive(Debug, Subcommand)]
pub enum BuildCmd {
    /// List builds, newest first.
    List {
        #[arg(long)]
        project: Option<String>,
        /// pending, building, completed, failed or cancelled.
        #[arg(long)]
        status: Option<BuildRunStatus>,
        #[arg(long, default_value_t = 25)]
        limit: u32,
    },
    /// Show a build: spec, runs and artifacts.
    Show { build: String },
    /// Create a build spec (and queue its first run unless --no-run).
    Create {
        #[arg(long)]
        project: String,
        /// Branch, tag or sha (default: the project's default branch).
        #[arg(long = "ref")]
        git_ref: Option<String>,
        /// Manifest hash at that commit; computed from --repo-dir when omitted there.
        #[arg(long)]
        manifest_hash: Option<String>,
        /// Comma-separated services (default: all).
        #[arg(long, value_delimiter = ',')]
        services: Option<Vec<String>>,
        /// A local clone: resolves --ref and computes --manifest-hash locally.
        #[arg(long)]
        repo_dir: Option<std::path::PathBuf>,
        /// Managed arg by name (BUILD_APP) or custom KEY=VALUE; repeatable.
        #[arg(long = "build-arg", alias = "build-args")]
        build_args: Vec<String>,
        #[arg(long)]
        force_rebuild: bool,
        /// Tag images `:local` (development build).
        #[arg(long)]
        development: bool,
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long)]
        timeout_seconds: Option<u32>,
        /// Create the spec only.
        #[arg(long)]
        no_run: bool,
        /// Wait for the run to finish; exit non-zero unless it completed.
        #[arg(long)]
        wait: bool,
    },
    /// Start a new run of a build.
    Run {
        build: String,
        #[arg(long)]
        force_rebuild: bool,
        #[arg(long)]
        wait: bool,
    },
    /// List a build's runs.
    Runs { build: String },
    /// List a build's image artifacts.
    Artifacts { build: String },
    /// Cancel a build's active run.
    Cancel { build: String },
    /// Everything about a build: spec, runs, artifacts, last 30 log lines and,
    /// for a failure, its class, cause, hint and failed stage.
    Diagnose { build: String },
    /// Write a completed build (its record and its images) to a .tgz file.
    Export {
        build: String,
        /// Where to write the archive.
        #[arg(long, short = 'f')]
        file: std::path::PathBuf,
    },
    /// Import a build exported with `build export` into a project: its images
    /// are pushed to that project's registry and a release of it is created.
    Import {
        #[arg(long)]
        project: String,
        /// The archive `build export` wrote.
        #[arg(long, short = 'f')]
        file: std::path::PathBuf,
    },
    /// Print a run's log (the newest run unless --run); --follow streams it live.
    Logs {
        build: String,
        #[arg(long)]
        run: Option<String>,
        #[arg(long, short)]
        follow: bool,
    },
}

fn git_local(dir: &std::path::Path, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .with_context(|| format!("running git in {}", dir.display()))?;
    if !out.status.success() {
        bail!("git {} in {}: {}", args.join(" "), dir.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

pub fn run(cmd: &BuildCmd, client: &Client, json_out: bool) -> anyhow::Result<()> {
    match cmd {
        BuildCmd::List { project, status, limit } => {
            let page: BuildPage = client.call(
                "builds/list",
                json!({ "query": BuildListQuery { project: project.clone(), status: *status, before: None, limit: Some(*limit) } }),
            )?;
            if json_out {
                return print_json(&page);
            }
            let rows = page
                .items
                .iter()
                .map(|b| {
                    vec![
                        b.id.clone(),
                        b.project_slug.clone(),
                        b.status.map(|s| s.as_str().to_string()).unwrap_or_else(|| "not run".into())
                            + if b.reused_from_run_id.is_some() { " (reused)" } else { "" },
                        b.release_tag.clone().unwrap_or_else(|| "-".into()),
                        short(&b.git_sha).to_string(),
                        b.started_at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|| "-".into()),
                        match (b.started_at, b.completed_at) {
                            (Some(s), Some(e)) => format!("{:.1}s", (e - s).num_milliseconds() as f64 / 1000.0),
                            (Some(s), None) => format!("{:.0}s…", (chrono::Utc::now() - s).num_seconds()),
                            _ => "-".into(),
                        },
                    ]
                })
                .collect::<Vec<_>>();
            table::print(&["ID", "PROJECT", "STATUS", "RELEASE", "SHA", "STARTED", "ELAPSED"], &rows);
        }
        BuildCmd::Show { build } => {
            let d: BuildDetail = client.call("builds/show", json!({ "build": build }))?;
            if json_out {
                return print_json(&d);
            }
            print_detail(&d);
        }
        BuildCmd::Create {
            project,
            git_ref,
            manifest_hash,
            services,
            repo_dir,
            build_args,
            force_rebuild,
            development,
            idempotency_key,
            timeout_seconds,
            no_run,
            wait,
        } => {
            let mut git_ref = git_ref.clone();
            let mut manifest_hash = manifest_hash.clone();
            if let Some(dir) = repo_dir {
                let r = git_ref.clone().unwrap_or_else(|| "HEAD".into());
                let sha = git_local(dir, &["rev-parse", "--verify", &format!("{r}^{{commit}}")])?.trim().to_string();
                if manifest_hash.is_none() {
                    let text = git_local(dir, &["show", &format!("{sha}:{}", slipway_model::manifest::MANIFEST_PATH)])?;
                    let hash = slipway_model::manifest::hash_yaml(&text).map_err(|e| anyhow!("manifest at {sha}:\n{e}"))?;
                    manifest_hash = Some(hash);
                }
                git_ref = Some(sha);
            }
            let input = NewBuild {
                project: project.clone(),
                git_ref,
                manifest_hash,
                services: services.clone(),
                build_args: build_args.clone(),
                force_rebuild: *force_rebuild,
                development: *development,
                idempotency_key: idempotency_key.clone(),
                timeout_seconds: *timeout_seconds,
                run: !*no_run,
                ..Default::default()
            };
            let d: BuildDetail = client.call("builds/create", json!({ "input": input }))?;
            if *wait && !*no_run {
                return wait_for(client, &d.spec.id, json_out);
            }
            if json_out {
                return print_json(&d);
            }
            println!("Created build {} ({} at {})", d.spec.id, d.spec.project_slug, short(&d.spec.git_sha));
            if let Some(r) = d.runs.first() {
                println!("Queued run {} (#{})", r.id, r.seq);
            }
        }
        BuildCmd::Run { build, force_rebuild, wait } => {
            let r: BuildRun = client.call("builds/run", json!({ "build": build, "force_rebuild": force_rebuild }))?;
            if *wait {
                return wait_for(client, build, json_out);
            }
            if json_out {
                return print_json(&r);
            }
            println!("Queued run {} (#{}) of build {}", r.id, r.seq, r.build_id);
        }
        BuildCmd::Runs { build } => {
            let runs: Vec<BuildRun> = client.call("builds/runs", json!({ "build": build }))?;
            if json_out {
                return print_json(&runs);
            }
            print_runs(&runs);
        }
        BuildCmd::Artifacts { build } => {
            let artifacts: Vec<BuildArtifact> = client.call("builds/artifacts", json!({ "build": build }))?;
            if json_out {
                return print_json(&artifacts);
            }
            print_artifacts(&artifacts);
        }
        BuildCmd::Diagnose { build } => {
            let d: slipway_model::diagnose::Diagnosis = client.call("builds/diagnose", json!({ "build": build }))?;
            if json_out {
                return print_json(&d);
            }
            print!("{}", d.to_text());
        }
        BuildCmd::Logs { build, run, follow } => {
            if *follow {
                crate::logs::follow(client, build, run.as_deref())?;
            } else {
                crate::logs::print_all(client, build, run.as_deref())?;
            }
        }
        BuildCmd::Export { build, file } => export(client, build, file, json_out)?,
        BuildCmd::Import { project, file } => import(client, project, file, json_out)?,
        BuildCmd::Cancel { build } => {
            let r: BuildRun = client.call("builds/cancel", json!({ "build": build }))?;
            if json_out {
                return print_json(&r);
            }
            match r.status {
                BuildRunStatus::Cancelled => println!("Cancelled run {} (it had not started)", r.id),
                _ => println!("Cancelling run {}: the build stops within a second", r.id),
            }
        }
    }
    Ok(())
}

fn wait_for(client: &Client, build: &str, json_out: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last = None;
    loop {
        let d: BuildDetail = client.call("builds/show", json!({ "build": build }))?;
        let status = d.runs.first().map(|r| r.status);
        if status != last && !json_out {
            eprintln!("{build}: {} ({:.0}s)", status.map(|s| s.as_str()).unwrap_or("not run"), started.elapsed().as_secs_f64());
            last = status;
        }
        if status.is_some_and(|s| s.is_terminal()) {
            if json_out {
                print_json(&d)?;
            } else {
                print_detail(&d);
            }
            return match status {
                Some(BuildRunStatus::Completed) => Ok(()),
                Some(s) => Err(anyhow!("build {build} {}", s.as_str())),
                None => Ok(()),
            };
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn print_detail(d: &BuildDetail) {
    let s = &d.spec;
    let mut args = s.build_args.managed.clone();
    args.extend(s.build_args.custom.iter().map(|(k, v)| format!("{k}={v}")));
    table::print_facts(&[
        ("Build", s.id.clone()),
        ("Project", s.project_slug.clone()),
        ("Commit", s.git_sha.clone()),
        ("Manifest hash", s.manifest_hash.clone()),
        ("Services", s.services.clone().map(|v| v.join(", ")).unwrap_or_else(|| "all".into())),
        ("Build args", if args.is_empty() { "-".into() } else { args.join(" ") }),
        ("Created", s.created_at.to_rfc3339()),
    ]);
    if let Some(r) = d.runs.first() {
        if let Some(from) = &r.reused_from_run_id {
            println!("\nReused the artifacts of run {from}");
        }
        if r.status == BuildRunStatus::Failed {
            println!(
                "\nFailed ({}){}: {}",
                r.error_code.clone().unwrap_or_else(|| "unknown".into()),
                r.failed_step.as_ref().map(|s| format!(" at `{s}`")).unwrap_or_default(),
                r.error_message.clone().unwrap_or_default()
            );
        }
    }
    println!("\nRuns:");
    print_runs(&d.runs);
    println!("\nArtifacts:");
    print_artifacts(&d.artifacts);
}

fn print_runs(runs: &[BuildRun]) {
    let rows = runs
        .iter()
        .map(|r| {
            vec![
                r.seq.to_string(),
                r.id.clone(),
                r.status.as_str().to_string(),
                r.backend.clone().unwrap_or_else(|| "-".into()),
                r.reused_from_run_id.clone().map(|f| format!("reused {f}")).or_else(|| r.error_code.clone()).unwrap_or_default(),
            ]
        })
        .collect::<Vec<_>>();
    table::print(&["#", "RUN", "STATUS", "BACKEND", "NOTE"], &rows);
}

fn print_artifacts(artifacts: &[BuildArtifact]) {
    let rows = artifacts
        .iter()
        .map(|a| vec![a.service_name.clone(), a.image_ref.clone(), a.digest.clone(), a.size_bytes.map(|s| s.to_string()).unwrap_or_default()])
        .collect::<Vec<_>>();
    table::print(&["SERVICE", "IMAGE", "DIGEST", "SIZE"], &rows);
}

/// Hex-escapes what is not safe in a URL path segment.
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `slipway build export <build> -f build.tgz`: streams the archive into a
/// temporary file next to the target and renames it when complete.
fn export(client: &Client, build: &str, file: &std::path::Path, json_out: bool) -> anyhow::Result<()> {
    let build = build.trim();
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = file.file_name().ok_or_else(|| anyhow!("{} is not a file name", file.display()))?.to_string_lossy().into_owned();
    let partial = dir.join(format!(".{name}.partial"));
    let mut out = std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let written = match client.download(&format!("/builds/{}/export", path_segment(build)), &mut out) {
        Ok(n) => n,
        Err(e) => {
            drop(out);
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    out.sync_all().with_context(|| format!("writing {}", partial.display()))?;
    drop(out);
    std::fs::rename(&partial, file).with_context(|| format!("moving the archive to {}", file.display()))?;
    if json_out {
        return print_json(&json!({ "build": build, "file": file.display().to_string(), "size_bytes": written }));
    }
    println!("Exported build {build} to {} ({written} bytes)", file.display());
    Ok(())
}

/// `slipway build import --project <p> -f build.tgz`: streams the archive up.
fn import(client: &Client, project: &str, file: &std::path::Path, json_out: bool) -> anyhow::Result<()> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let len = f.metadata().with_context(|| format!("reading {}", file.display()))?.len();
    let imported: ImportedBuild = client.upload(
        &format!("/api/projects/{}/import", path_segment(project.trim())),
        "application/gzip",
        len,
        std::io::BufReader::new(f),
    )?;
    if json_out {
        return print_json(&imported);
    }
    let r = &imported.release;
    println!(
        "Imported build {} into {} as build {}",
        imported
            .build
            .spec
            .inputs
            .get("imported_from")
            .and_then(|f| f.get("build_id"))
            .and_then(|b| b.as_str())
            .unwrap_or("?"),
        imported.build.spec.project_slug,
        imported.build.spec.id
    );
    println!("Created release {} ({})", r.tag.clone().unwrap_or_else(|| r.id.clone()), r.id);
    print_artifacts(&imported.build.artifacts);
    Ok(())
}
