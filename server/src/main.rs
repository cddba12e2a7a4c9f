//! `slipway-server`: parse the configuration, start, serve.

use std::process::ExitCode;

use clap::Parser;
use slipway_server::config::{AdminCommand, Cli, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,bollard=warn,hyper=warn"));
    if cli.log_format == "json" {
        tracing_subscriber::fmt().json().with_current_span(true).with_span_list(true).with_env_filter(filter).with_writer(std::io::stderr).init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => slipway_server::run(cli.common, cli.serve).await,
        Command::Services => slipway_server::run_services(cli.common).await,
        Command::Admin(AdminCommand::Create { username }) => slipway_server::run_admin_create(cli.common, cli.serve, username).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line a person can act on; the chain of causes follows on it.
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}
