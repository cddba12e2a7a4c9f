//! `slipway login|logout|whoami`, `tokens`, `members`, `secrets`, `audit`.

use std::io::{BufRead, Read};

use anyhow::{anyhow, bail};
use clap::Subcommand;
use serde_json::json;
use slipway_model::auth::{AuditPage, AuditQuery, CreatedToken, Member, NewToken, Role, TokenInfo, User};
use slipway_model::secret::SecretMeta;

use crate::client::Client;
use crate::{config, print_json, table};

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Your API tokens (never their values).
    List,
    /// Create a token; its value is printed once.
    Create {
        name: String,
        /// Limit the token to one project.
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke a token by id (`tok_…`).
    Revoke {
        /// Not named `token`: clap would merge it with the global `--token`,
        /// and the request would be sent with the id as its credential.
        #[arg(value_name = "TOKEN_ID")]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// Members of a project and their roles.
    List {
        #[arg(long)]
        project: String,
    },
    /// Add a member or change their role (viewer, developer, approver, admin).
    Set {
        username: String,
        role: Role,
        #[arg(long)]
        project: String,
    },
    /// Remove a member.
    Remove {
        username: String,
        #[arg(long)]
        project: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretCmd {
    /// Set a secret; the value comes from --value or standard input.
    Set {
        name: String,
        #[arg(long)]
        project: String,
        #[arg(long)]
        value: Option<String>,
    },
    /// Names and timestamps of a project's secrets.
    List {
        #[arg(long)]
        project: String,
    },
    /// Delete a secret.
    Delete {
        name: String,
        #[arg(long)]
        project: String,
    },
}

fn read_line(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `slipway login`: with `--token`, stores that token after checking it; else
/// logs in with a username and password (from standard input) and stores a
/// new API token made for this machine. The config file is written 0600.
pub fn login(client: &Client, username: Option<&str>, token: Option<&str>, json_out: bool) -> anyhow::Result<()> {
    let (token, token_id, user) = match token {
        Some(t) => {
            let checked = Client::new(client.base(), Some(t.to_string()));
            let user: Option<User> = checked.call("auth/me", json!({}))?;
            let user = user.ok_or_else(|| anyhow!("the token was not accepted"))?;
            (t.to_string(), None, user)
        }
        None => {
            let username = match username {
                Some(u) => u.to_string(),
                None => read_line("Username: ")?,
            };
            let password = read_line("Password: ")?;
            let (user, cookie): (User, Option<String>) =
                client.call_with_cookie("auth/login", json!({ "username": username, "password": password }), None)?;
            let cookie = cookie.ok_or_else(|| anyhow!("the server did not start a session"))?;
            let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "cli".into());
            let (created, _): (CreatedToken, _) = client.call_with_cookie(
                "tokens/create",
                json!({ "input": NewToken { name: format!("cli@{host}"), project: None, expires_in_days: Some(90) } }),
                Some(&cookie),
            )?;
            let _: Result<((), _), _> = client.call_with_cookie("auth/logout", json!({}), Some(&cookie));
            (created.token, Some(created.info.id), user)
        }
    };
    let path = config::save(&config::Config { server: Some(client.base().to_string()), token: Some(token), token_id })?;
    if json_out {
        return print_json(&user);
    }
    println!("Logged in to {} as {} (token stored in {}, mode 0600)", client.base(), user.username, path.display());
    Ok(())
}

/// `slipway logout`: revokes the stored token (when Slipway made it) and removes the config.
pub fn logout(client: &Client) -> anyhow::Result<()> {
    let cfg = config::load();
    if let (Some(id), Some(_)) = (&cfg.token_id, client.token()) {
        if let Err(e) = client.call::<()>("tokens/revoke", json!({ "token": id })) {
            eprintln!("warning: could not revoke the token on the server: {e}");
        }
    }
    if config::remove()? {
        println!("Logged out (removed {})", config::path().display());
    } else {
        println!("Not logged in");
    }
    Ok(())
}

pub fn whoami(client: &Client, json_out: bool) -> anyhow::Result<()> {
    let me: Option<User> = client.call("auth/me", json!({}))?;
    match me {
        Some(u) if json_out => print_json(&u),
        Some(u) => {
            println!("{} ({}){}", u.username, u.id, if u.is_admin { ", administrator" } else { "" });
            Ok(())
        }
        None => bail!("not logged in (run `slipway login`)"),
    }
}

pub fn tokens(cmd: &TokenCmd, client: &Client, json_out: bool) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::List => {
            let list: Vec<TokenInfo> = client.call("tokens/list", json!({}))?;
            if json_out {
                return print_json(&list);
            }
            let rows = list
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.name.clone(),
                        t.project_id.clone().unwrap_or_else(|| "all".into()),
                        t.expires_at.map(|e| e.to_rfc3339()).unwrap_or_else(|| "never".into()),
                        if t.revoked_at.is_some() { "revoked".into() } else { "active".into() },
                    ]
                })
                .collect::<Vec<_>>();
            table::print(&["ID", "NAME", "SCOPE", "EXPIRES", "STATE"], &rows);
        }
        TokenCmd::Create { name, project, expires_in_days } => {
            let created: CreatedToken = client.call(
                "tokens/create",
                json!({ "input": NewToken { name: name.clone(), project: project.clone(), expires_in_days: *expires_in_days } }),
            )?;
            if json_out {
                return print_json(&created);
            }
            eprintln!("Token {} created; it is shown once:", created.info.id);
            println!("{}", created.token);
        }
        TokenCmd::Revoke { id } => {
            client.call::<()>("tokens/revoke", json!({ "token": id }))?;
            println!("Revoked {id}");
        }
    }
    Ok(())
}

fn print_members(members: &[Member]) {
    let rows = members.iter().map(|m| vec![m.user.username.clone(), m.role.as_str().to_string()]).collect::<Vec<_>>();
    table::print(&["USER", "ROLE"], &rows);
}

pub fn members(cmd: &MemberCmd, client: &Client, json_out: bool) -> anyhow::Result<()> {
    let members: Vec<Member> = match cmd {
        MemberCmd::List { project } => client.call("members/list", json!({ "project": project }))?,
        MemberCmd::Set { username, role, project } => {
            client.call("members/set", json!({ "project": project, "username": username, "role": role }))?
        }
        MemberCmd::Remove { username, project } => {
            client.call("members/remove", json!({ "project": project, "username": username }))?
        }
    };
    if json_out {
        return print_json(&members);
    }
    print_members(&members);
    Ok(())
}

pub fn secrets(cmd: &SecretCmd, client: &Client, json_out: bool) -> anyhow::Result<()> {
    match cmd {
        SecretCmd::Set { name, project, value } => {
            let value = match value {
                Some(v) => v.clone(),
                None => {
                    let mut v = String::new();
                    std::io::stdin().read_to_string(&mut v)?;
                    v.trim_end_matches(['\n', '\r']).to_string()
                }
            };
            let meta: SecretMeta = client.call("secrets/set", json!({ "project": project, "name": name, "value": value }))?;
            if json_out {
                return print_json(&meta);
            }
            println!("Set secret {} in {project}", meta.name);
        }
        SecretCmd::List { project } => {
            let list: Vec<SecretMeta> = client.call("secrets/list", json!({ "project": project }))?;
            if json_out {
                return print_json(&list);
            }
            let rows = list.iter().map(|s| vec![s.name.clone(), s.updated_at.to_rfc3339(), s.key_id.clone()]).collect::<Vec<_>>();
            table::print(&["NAME", "UPDATED", "KEY"], &rows);
        }
        SecretCmd::Delete { name, project } => {
            client.call::<bool>("secrets/delete", json!({ "project": project, "name": name }))?;
            println!("Deleted secret {name} from {project}");
        }
    }
    Ok(())
}

pub fn audit(client: &Client, query: AuditQuery, json_out: bool) -> anyhow::Result<()> {
    let page: AuditPage = client.call("audit/list", json!({ "query": query }))?;
    if json_out {
        return print_json(&page);
    }
    let rows = page
        .events
        .iter()
        .map(|e| {
            vec![
                e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                e.actor_label.clone(),
                e.action.clone(),
                e.target_id.clone().unwrap_or_default(),
                e.change().unwrap_or_default(),
                e.ip.clone().unwrap_or_default(),
            ]
        })
        .collect::<Vec<_>>();
    table::print(&["WHEN", "WHO", "ACTION", "TARGET", "CHANGE", "FROM"], &rows);
    Ok(())
}
