//! `slipway base-images add|list|remove`: the allowed-images list (base
//! images builds may use, repositories shared with a project).

use clap::Subcommand;
use serde_json::json;
use slipway_model::base_image::{AllowedImage, NewAllowedImage};

use crate::client::Client;
use crate::{print_json, table};

#[derive(Debug, Subcommand)]
pub enum BaseImageCmd {
    /// The entries that apply to your projects (administrators: all).
    List,
    /// Allow an image or pattern (`docker.io/library/*`) for every project, or one (administrators).
    Add {
        pattern: String,
        /// Only for this project (id, slug or name).
        #[arg(long)]
        project: Option<String>,
    },
    /// Remove an entry, named by its pattern and project (administrators).
    Remove {
        pattern: String,
        #[arg(long)]
        project: Option<String>,
    },
}

pub fn run(cmd: &BaseImageCmd, client: &Client, json_out: bool) -> anyhow::Result<()> {
    let scope = |e: &AllowedImage| e.project.clone().unwrap_or_else(|| "every project".into());
    match cmd {
        BaseImageCmd::List => {
            let list: Vec<AllowedImage> = client.call("base-images/list", json!({}))?;
            if json_out {
                return print_json(&list);
            }
            let rows = list
                .iter()
                .map(|e| vec![e.pattern.clone(), scope(e), e.created_by.clone().unwrap_or_else(|| "-".into()), e.created_at.to_rfc3339()])
                .collect::<Vec<_>>();
            table::print(&["IMAGE", "PROJECT", "ADDED BY", "ADDED"], &rows);
        }
        BaseImageCmd::Add { pattern, project } => {
            let input = NewAllowedImage { pattern: pattern.clone(), project: project.clone() };
            let e: AllowedImage = client.call("base-images/add", json!({ "input": input }))?;
            if json_out {
                return print_json(&e);
            }
            println!("Allowed {} for {}", e.pattern, scope(&e));
        }
        BaseImageCmd::Remove { pattern, project } => {
            let e: AllowedImage = client.call("base-images/remove", json!({ "pattern": pattern, "project": project }))?;
            if json_out {
                return print_json(&e);
            }
            println!("Removed {} for {}", e.pattern, scope(&e));
        }
    }
    Ok(())
}
