//! `slipway`: the command-line client. It calls the same HTTP endpoints as the
//! dashboard's server functions, prints human tables by default and JSON with
//! `--json`.

mod account;
mod base_images;
mod clusters;
mod builds;
mod config;
mod client;
mod logs;
mod registries;
mod releases;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;
use slipway_model::project::{NewProject, Project, ProjectSummary};

use client::Client;

#[derive(Debug, Parser)]
#[command(name = "slipway", version, about = "Command-line client for Slipway")]
struct Cli {
    /// Slipway server to talk to (default: the one `slipway login` stored, else http://127.0.0.1:3000).
    #[arg(long, global = true, env = "SLIPWAY_SERVER")]
    server: Option<String>,
    /// API token (default: the one `slipway login` stored).
    #[arg(long, global = true, env = "SLIPWAY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Projects: list, create, show.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Builds: create, run, list, show, runs, artifacts, cancel, logs, diagnose.
    #[command(subcommand)]
    Build(builds::BuildCmd),
    /// Releases: create, resolve, list, show.
    #[command(subcommand)]
    Release(releases::ReleaseCmd),
    /// Environments: list, show, deploy, promote, rollback, diff, approve, reject.
    #[command(subcommand)]
    Env(releases::EnvCmd),
    /// Store the server and an API token in the config file (mode 0600).
    Login {
        /// Log in with this username (the password is read from standard input).
        #[arg(long)]
        username: Option<String>,
        /// Store this existing API token instead.
        #[arg(long = "with-token")]
        with_token: Option<String>,
    },
    /// Revoke the stored token and forget it.
    Logout,
    /// Who the stored token belongs to.
    Whoami,
    /// API tokens: list, create, revoke.
    #[command(subcommand)]
    Tokens(account::TokenCmd),
    /// Project members and roles.
    #[command(subcommand)]
    Members(account::MemberCmd),
    /// Project secrets (names only are ever shown).
    #[command(subcommand)]
    Secrets(account::SecretCmd),
    /// Allowed images: base images builds may use, repositories shared with a project.
    #[command(subcommand, name = "base-images")]
    BaseImages(base_images::BaseImageCmd),
    /// Registries a project's builds may push to: add, list, remove.
    #[command(subcommand)]
    Registries(registries::RegistryCmd),
    /// Kubernetes clusters environments deploy to: add, list, remove, check (administrators).
    #[command(subcommand)]
    Clusters(clusters::ClusterCmd),
    /// The audit trail.
    Audit {
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        project: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectCmd {
    /// List every project.
    List,
    /// Create a project from a repository (absolute path on the server host, or git URL).
    Create {
        /// Project name.
        name: String,
        /// Repository: /path/to/repo or a git URL.
        #[arg(long = "repo")]
        repo_url: String,
        #[arg(long)]
        description: Option<String>,
        /// Branch builds use when no ref is given (default: main).
        #[arg(long)]
        branch: Option<String>,
    },
    /// Show one project (by id, slug or name).
    Show { project: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stored = config::load();
    let server = cli.server.clone().or(stored.server.clone()).unwrap_or_else(|| "http://127.0.0.1:3000".into());
    // A stored token belongs to the server it was made for.
    let stored_token = stored.token.filter(|_| stored.server.as_deref().map(|s| s.trim_end_matches('/')) == Some(server.trim_end_matches('/')));
    let client = Client::new(&server, cli.token.clone().or(stored_token));
    match run(&cli, &client) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli, client: &Client) -> anyhow::Result<()> {
    match &cli.command {
        Top::Build(cmd) => builds::run(cmd, client, cli.json)?,
        Top::Release(cmd) => releases::release(cmd, client, cli.json)?,
        Top::Env(cmd) => releases::env(cmd, client, cli.json)?,
        Top::Login { username, with_token } => account::login(client, username.as_deref(), with_token.as_deref(), cli.json)?,
        Top::Logout => account::logout(client)?,
        Top::Whoami => account::whoami(client, cli.json)?,
        Top::Tokens(cmd) => account::tokens(cmd, client, cli.json)?,
        Top::Members(cmd) => account::members(cmd, client, cli.json)?,
        Top::Secrets(cmd) => account::secrets(cmd, client, cli.json)?,
        Top::BaseImages(cmd) => base_images::run(cmd, client, cli.json)?,
        Top::Registries(cmd) => registries::run(cmd, client, cli.json)?,
        Top::Clusters(cmd) => clusters::run(cmd, client, cli.json)?,
        Top::Audit { actor, action, project, limit } => account::audit(
            client,
            slipway_model::auth::AuditQuery {
                actor: actor.clone(),
                action: action.clone(),
                project: project.clone(),
                limit: Some(*limit),
                ..Default::default()
            },
            cli.json,
        )?,
        Top::Project(ProjectCmd::List) => {
            let projects: Vec<ProjectSummary> = client.call("projects/list", json!({}))?;
            if cli.json {
                return print_json(&projects);
            }
            let rows = projects
                .iter()
                .map(|s| {
                    vec![
                        s.project.id.clone(),
                        s.project.name.clone(),
                        s.project.repo_url.clone(),
                        s.build_count.to_string(),
                        s.release_count.to_string(),
                    ]
                })
                .collect::<Vec<_>>();
            table::print(&["ID", "NAME", "REPOSITORY", "BUILDS", "RELEASES"], &rows);
        }
        Top::Project(ProjectCmd::Create { name, repo_url, description, branch }) => {
            let input = NewProject {
                name: name.clone(),
                repo_url: repo_url.clone(),
                description: description.clone(),
                default_branch: branch.clone(),
            };
            let project: Project = client.call("projects/create", json!({ "input": input }))?;
            if cli.json {
                return print_json(&project);
            }
            println!("Created project {} ({})", project.name, project.id);
        }
        Top::Project(ProjectCmd::Show { project }) => {
            let p: Project = client.call("projects/show", json!({ "project": project }))?;
            if cli.json {
                return print_json(&p);
            }
            table::print_facts(&[
                ("ID", p.id),
                ("Name", p.name),
                ("Slug", p.slug),
                ("Repository", p.repo_url),
                ("Default branch", p.default_branch),
                ("Description", p.description.unwrap_or_else(|| "-".into())),
                ("Created", p.created_at.to_rfc3339()),
            ]);
        }
    }
    Ok(())
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
