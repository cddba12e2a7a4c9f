//! `slipway clusters add|list|remove|check`: the Kubernetes clusters
//! environments deploy to (global administrators). A kubeconfig is read
//! from a file (`-` for standard input), sent once, stored encrypted, and
//! never shown again.

use std::io::Read;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use slipway_model::cluster::{Cluster, ClusterCheck, NewCluster};

use crate::client::Client;
use crate::{print_json, table};

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Every registered cluster (never its kubeconfig).
    List,
    /// Register a cluster from a kubeconfig file (its current context), or in-cluster.
    Add {
        /// What environments name in `target.cluster` (`default` when they name none).
        name: String,
        /// Kubeconfig file; `-` reads standard input.
        #[arg(long, conflicts_with = "in_cluster", required_unless_present = "in_cluster")]
        kubeconfig: Option<String>,
        /// Use the service account of the pod Slipway runs in.
        #[arg(long)]
        in_cluster: bool,
    },
    /// Remove a cluster.
    Remove { name: String },
    /// Whether a cluster answers (GET /version).
    Check { name: String },
}

fn read_kubeconfig(path: &str) -> anyhow::Result<String> {
    if path == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading the kubeconfig from standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading the kubeconfig {path}"))
}

pub fn run(cmd: &ClusterCmd, client: &Client, json_out: bool) -> anyhow::Result<()> {
    match cmd {
        ClusterCmd::List => {
            let list: Vec<Cluster> = client.call("clusters/list", json!({}))?;
            if json_out {
                return print_json(&list);
            }
            let rows = list
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        c.source.as_str().to_string(),
                        c.server.clone().unwrap_or_else(|| "-".into()),
                        c.created_by.clone().unwrap_or_else(|| "-".into()),
                        c.created_at.to_rfc3339(),
                    ]
                })
                .collect::<Vec<_>>();
            table::print(&["NAME", "ACCESS", "API SERVER", "ADDED BY", "ADDED"], &rows);
        }
        ClusterCmd::Add { name, kubeconfig, in_cluster } => {
            let kubeconfig = kubeconfig.as_deref().map(read_kubeconfig).transpose()?;
            let input = NewCluster { name: name.clone(), kubeconfig, in_cluster: *in_cluster };
            let c: Cluster = client.call("clusters/add", json!({ "input": input }))?;
            if json_out {
                return print_json(&c);
            }
            match &c.server {
                Some(server) => println!("Registered cluster {} ({server}); check it with `slipway clusters check {}`", c.name, c.name),
                None => println!("Registered cluster {} (in-cluster)", c.name),
            }
        }
        ClusterCmd::Remove { name } => {
            let c: Cluster = client.call("clusters/remove", json!({ "name": name }))?;
            if json_out {
                return print_json(&c);
            }
            println!("Removed cluster {}", c.name);
        }
        ClusterCmd::Check { name } => {
            let c: ClusterCheck = client.call("clusters/check", json!({ "name": name }))?;
            if json_out {
                return print_json(&c);
            }
            if c.reachable {
                println!("{} answers: Kubernetes {}", c.name, c.version.unwrap_or_default());
            } else {
                anyhow::bail!("{} is unreachable: {}", c.name, c.message.unwrap_or_default());
            }
        }
    }
    Ok(())
}
