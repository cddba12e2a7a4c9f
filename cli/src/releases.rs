//! `slipway release …` and `slipway env …`: releases, deployments, promotion, approvals.

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use slipway_model::release::{Board, DeployRequest, Deployment, Environment, NewRelease, PromotionDiff, Release, ReleasePage};

use crate::client::Client;
use crate::{print_json, table};

#[derive(Debug, Subcommand)]
pub enum ReleaseCmd {
    /// Create a release from a completed build.
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        build: String,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        version: Option<String>,
    },
    /// The release with this tag (or id): sha, build and image digests.
    Resolve {
        tag: String,
        #[arg(long)]
        project: String,
    },
    /// Releases, newest first, with where each is deployed.
    List {
        #[arg(long)]
        project: String,
    },
    /// One release.
    Show {
        tag: String,
        #[arg(long)]
        project: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnvCmd {
    /// The environments in promotion order, with what each runs.
    List {
        #[arg(long)]
        project: String,
    },
    /// One environment: current release, pending deployments, history.
    Show {
        env: String,
        #[arg(long)]
        project: String,
    },
    /// Deploy to an environment: a release, a sha (runs the pipeline), or an image tag.
    Deploy {
        env: String,
        #[arg(long)]
        project: String,
        /// A release tag or id.
        #[arg(long)]
        release: Option<String>,
        /// A git sha: runs the manifest's pipeline (build → release → deploy) unless --direct.
        #[arg(long = "ref")]
        git_ref: Option<String>,
        #[arg(long)]
        manifest_hash: Option<String>,
        /// Deploy the newest release of --ref directly, bypassing the pipeline.
        #[arg(long)]
        direct: bool,
        /// Deploy the release whose images carry this tag.
        #[arg(long)]
        image_tag: Option<String>,
        /// Extra inputs as JSON.
        #[arg(long)]
        inputs: Option<String>,
    },
    /// Deploy what runs in <from> to <to>: the same digests.
    Promote {
        from: String,
        to: String,
        #[arg(long)]
        project: String,
    },
    /// Deploy the previous release of an environment again.
    Rollback {
        env: String,
        #[arg(long)]
        project: String,
    },
    /// What changes if <from> is promoted to <to>.
    Diff {
        from: String,
        to: String,
        #[arg(long)]
        project: String,
    },
    /// Approve a deployment waiting at a gate.
    Approve { deployment: String },
    /// Reject a deployment waiting at a gate.
    Reject { deployment: String },
}

fn short(d: &str) -> String {
    d.strip_prefix("sha256:").unwrap_or(d).chars().take(12).collect()
}

fn print_release(r: &Release) {
    let mut facts = vec![
        ("Release", r.tag.clone().unwrap_or_else(|| r.id.clone())),
        ("Id", r.id.clone()),
        ("Commit", r.git_sha.clone()),
        ("Manifest hash", r.manifest_hash.clone()),
        ("Build", r.build_id.clone()),
        ("Deployed to", if r.deployed_to.is_empty() { "-".into() } else { r.deployed_to.join(", ") }),
    ];
    for (service, digest) in &r.image_digests {
        facts.push(("Image", format!("{service}@{digest}")));
    }
    table::print_facts(&facts);
}

fn print_deployment(d: &Deployment) {
    println!(
        "Deployment {} to {}: {} (release {}){}",
        d.id,
        d.environment,
        d.status.as_str(),
        d.release_tag.clone().unwrap_or_else(|| "-".into()),
        if d.approvals_needed > 0 { format!(", {} more approval(s) needed", d.approvals_needed) } else { String::new() }
    );
    if let Some(e) = &d.error_message {
        println!("  error: {e}");
    }
}

pub fn release(cmd: &ReleaseCmd, client: &Client, json_out: bool) -> anyhow::Result<()> {
    match cmd {
        ReleaseCmd::Create { project, build, tag, version } => {
            let r: Release = client.call(
                "releases/create",
                json!({ "input": NewRelease { project: project.clone(), build: build.clone(), tag: tag.clone(), version: version.clone(), notes: None } }),
            )?;
            if json_out {
                return print_json(&r);
            }
            print_release(&r);
        }
        ReleaseCmd::Resolve { tag, project } | ReleaseCmd::Show { tag, project } => {
            let r: Release = client.call("releases/show", json!({ "project": project, "release": tag }))?;
            if json_out {
                return print_json(&r);
            }
            print_release(&r);
        }
        ReleaseCmd::List { project } => {
            let page: ReleasePage = client.call("releases/list", json!({ "project": project }))?;
            if json_out {
                return print_json(&page);
            }
            let rows = page
                .items
                .iter()
                .map(|r| {
                    vec![
                        r.tag.clone().unwrap_or_else(|| r.id.clone()),
                        short(&r.git_sha),
                        r.image_digests.iter().map(|(s, d)| format!("{s}@{}", short(d))).collect::<Vec<_>>().join(" "),
                        if r.deployed_to.is_empty() { "-".into() } else { r.deployed_to.join(",") },
                        r.created_at.format("%Y-%m-%d %H:%M").to_string(),
                    ]
                })
                .collect::<Vec<_>>();
            table::print(&["TAG", "SHA", "IMAGES", "DEPLOYED", "CREATED"], &rows);
        }
    }
    Ok(())
}

pub fn env(cmd: &EnvCmd, client: &Client, json_out: bool) -> anyhow::Result<()> {
    match cmd {
        EnvCmd::List { project } => {
            let board: Board = client.call("deployments/board", json!({ "project": project }))?;
            if json_out {
                return print_json(&board);
            }
            let rows = board
                .environments
                .iter()
                .map(|c| {
                    vec![
                        c.environment.name.clone(),
                        c.current.as_ref().and_then(|d| d.release_tag.clone()).unwrap_or_else(|| "-".into()),
                        if c.environment.approval_required > 0 { format!("{} approval(s)", c.environment.approval_required) } else { "none".into() },
                        c.pending.iter().map(|d| format!("{} {}", d.id, d.status.as_str())).collect::<Vec<_>>().join(", "),
                    ]
                })
                .collect::<Vec<_>>();
            table::print(&["ENVIRONMENT", "CURRENT", "GATE", "PENDING"], &rows);
        }
        EnvCmd::Show { env, project } => {
            let board: Board = client.call("deployments/board", json!({ "project": project }))?;
            let col = board
                .environments
                .into_iter()
                .find(|c| &c.environment.name == env)
                .with_context(|| format!("environment `{env}` not found in project {project}"))?;
            if json_out {
                return print_json(&col);
            }
            let e: &Environment = &col.environment;
            println!("Environment {} (position {}, gate: {} approval(s))", e.name, e.position, e.approval_required);
            println!("  target: {}", e.deploy_target);
            match &col.current {
                Some(d) => print_deployment(d),
                None => println!("Nothing deployed"),
            }
            for d in col.pending.iter().chain(col.history.iter()) {
                print_deployment(d);
            }
        }
        EnvCmd::Deploy { env, project, release, git_ref, manifest_hash, direct, image_tag, inputs } => {
            let inputs = inputs.as_deref().map(serde_json::from_str).transpose().context("--inputs must be a JSON object")?;
            let req = DeployRequest {
                environment: env.clone(),
                release: release.clone(),
                image_digests: None,
                image_tag: image_tag.clone(),
                git_sha: git_ref.clone(),
                manifest_hash: manifest_hash.clone(),
                direct: *direct,
                inputs,
            };
            let d: Deployment = client.call("deployments/request", json!({ "project": project, "request": req }))?;
            if json_out {
                return print_json(&d);
            }
            print_deployment(&d);
        }
        EnvCmd::Promote { from, to, project } => {
            let d: Deployment = client.call("deployments/promote", json!({ "project": project, "from": from, "to": to }))?;
            if json_out {
                return print_json(&d);
            }
            print_deployment(&d);
        }
        EnvCmd::Rollback { env, project } => {
            let d: Deployment = client.call("deployments/rollback", json!({ "project": project, "environment": env }))?;
            if json_out {
                return print_json(&d);
            }
            print_deployment(&d);
        }
        EnvCmd::Diff { from, to, project } => {
            let d: PromotionDiff = client.call("deployments/diff", json!({ "project": project, "from": from, "to": to }))?;
            if json_out {
                return print_json(&d);
            }
            println!("{from} → {to}: {} replaces {}", d.from_release.clone().unwrap_or_else(|| "nothing".into()), d.to_release.clone().unwrap_or_else(|| "nothing".into()));
            for s in &d.services {
                println!(
                    "  {}{}: {} → {}",
                    if s.changed { "* " } else { "  " },
                    s.service,
                    s.to_digest.as_deref().map(short).unwrap_or_else(|| "-".into()),
                    s.from_digest.as_deref().map(short).unwrap_or_else(|| "-".into())
                );
            }
        }
        EnvCmd::Approve { deployment } | EnvCmd::Reject { deployment } => {
            let endpoint = if matches!(cmd, EnvCmd::Approve { .. }) { "deployments/approve" } else { "deployments/reject" };
            let d: Deployment = client.call(endpoint, json!({ "deployment": deployment }))?;
            if json_out {
                return print_json(&d);
            }
            print_deployment(&d);
        }
    }
    Ok(())
}
