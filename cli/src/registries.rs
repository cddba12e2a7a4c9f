//! `slipway registries add|list|remove --project p`: the registries a
//! project's builds may push to and the secrets each may receive.

use clap::Subcommand;
use serde_json::json;
use slipway_model::registry::{AllowedRegistry, NewAllowedRegistry};

use crate::client::Client;
use crate::{print_json, table};

#[derive(Debug, Subcommand)]
pub enum RegistryCmd {
    /// List a registry (or change its listing): builds may then push to it,
    /// sending it only the two secrets named here as credentials.
    Add {
        /// `host[:port]`, e.g. registry.example.com:5000.
        host: String,
        #[arg(long)]
        project: String,
        /// Secret holding the user name sent to this registry.
        #[arg(long, requires = "token_secret")]
        username_secret: Option<String>,
        /// Secret holding the password or token sent to this registry.
        #[arg(long, requires = "username_secret")]
        token_secret: Option<String>,
        /// A host its token service may be on besides its own (repeatable).
        #[arg(long = "auth-host")]
        auth_hosts: Vec<String>,
    },
    /// The registries a project's builds may push to.
    List {
        #[arg(long)]
        project: String,
    },
    /// Take a registry off the list.
    Remove {
        host: String,
        #[arg(long)]
        project: String,
    },
}

pub fn run(cmd: &RegistryCmd, client: &Client, json_out: bool) -> anyhow::Result<()> {
    match cmd {
        RegistryCmd::Add { host, project, username_secret, token_secret, auth_hosts } => {
            let registry = NewAllowedRegistry {
                host: host.clone(),
                username_secret: username_secret.clone(),
                token_secret: token_secret.clone(),
                auth_hosts: auth_hosts.clone(),
            };
            let listed: AllowedRegistry = client.call("registries/add", json!({ "project": project, "registry": registry }))?;
            if json_out {
                return print_json(&listed);
            }
            println!("Listed registry {} in {project} (credentials: {})", listed.host, credentials(&listed));
        }
        RegistryCmd::List { project } => {
            let list: Vec<AllowedRegistry> = client.call("registries/list", json!({ "project": project }))?;
            if json_out {
                return print_json(&list);
            }
            let rows = list
                .iter()
                .map(|r| vec![r.host.clone(), credentials(r), r.auth_hosts.join(","), r.created_at.to_rfc3339()])
                .collect::<Vec<_>>();
            table::print(&["HOST", "CREDENTIALS", "AUTH HOSTS", "LISTED"], &rows);
        }
        RegistryCmd::Remove { host, project } => {
            client.call::<bool>("registries/remove", json!({ "project": project, "host": host }))?;
            println!("Removed registry {host} from {project}");
        }
    }
    Ok(())
}

fn credentials(r: &AllowedRegistry) -> String {
    match (&r.username_secret, &r.token_secret) {
        (Some(u), Some(t)) => format!("{u}/{t}"),
        _ => "none".into(),
    }
}
