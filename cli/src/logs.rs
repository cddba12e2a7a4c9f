//! `slipway build logs <build> [--run <id>] [--follow]`: prints a run's log
//! with `[HH:MM:SS]` prefixes; `--follow` streams it over the same websocket
//! the dashboard uses, resuming from the last line after a disconnect.

use anyhow::{anyhow, bail};
use serde::Deserialize;
use slipway_model::logs::{text_line, LogLine, LogPage};

use crate::client::Client;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Message {
    Lines { lines: Vec<LogLine> },
    End { status: String, error_code: Option<String>, error_message: Option<String> },
}

/// Prints every stored line (paged), then returns.
pub fn print_all(client: &Client, build: &str, run: Option<&str>) -> anyhow::Result<()> {
    let mut after: Option<i64> = None;
    loop {
        let mut path = format!("/api/builds/{build}/logs?limit=5000");
        if let Some(run) = run {
            path.push_str(&format!("&run={run}"));
        }
        if let Some(a) = after {
            path.push_str(&format!("&after={a}"));
        }
        let page: LogPage = client.get(&path)?;
        for l in &page.lines {
            println!("{}", text_line(l));
        }
        match page.next_after {
            Some(n) if !page.lines.is_empty() => after = Some(n),
            _ => return Ok(()),
        }
    }
}

/// Follows the run live until it ends; exits non-zero unless it completed.
pub fn follow(client: &Client, build: &str, run: Option<&str>) -> anyhow::Result<()> {
    let mut after: Option<i64> = None;
    let mut retries = 0;
    loop {
        let mut url = format!("{}/ws/builds/{build}/logs?", client.ws_base());
        if let Some(run) = run {
            url.push_str(&format!("run={run}&"));
        }
        if let Some(a) = after {
            url.push_str(&format!("after={a}"));
        }
        let request = ws_request(client, &url)?;
        let (mut socket, _) = match tungstenite::connect(request) {
            Ok(s) => s,
            Err(tungstenite::Error::Http(resp)) => {
                let body = resp.body().as_deref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                let msg = serde_json::from_str::<slipway_model::AppError>(&body).map(|e| e.message).unwrap_or(body);
                bail!("{msg}");
            }
            Err(e) if retries < 5 => {
                retries += 1;
                eprintln!("log stream: {e}; reconnecting");
                std::thread::sleep(std::time::Duration::from_secs(1));
                continue;
            }
            Err(e) => return Err(anyhow!("cannot follow the log: {e}")),
        };
        loop {
            match socket.read() {
                Ok(tungstenite::Message::Text(text)) => match serde_json::from_str::<Message>(&text) {
                    Ok(Message::Lines { lines }) => {
                        for l in lines {
                            if after.is_none_or(|a| l.seq > a) {
                                println!("{}", text_line(&l));
                                after = Some(l.seq);
                            }
                        }
                    }
                    Ok(Message::End { status, error_code, error_message }) => {
                        eprintln!("run {status}{}", error_code.map(|c| format!(" ({c}): {}", error_message.unwrap_or_default())).unwrap_or_default());
                        return if status == "completed" { Ok(()) } else { Err(anyhow!("the run ended {status}")) };
                    }
                    Err(_) => {}
                },
                Ok(tungstenite::Message::Close(frame)) => {
                    if let Some(f) = &frame {
                        eprintln!("log stream closed: {}; resuming", f.reason);
                    }
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("log stream: {e}; resuming");
                    break;
                }
            }
        }
        retries += 1;
        if retries > 20 {
            bail!("the log stream kept closing; giving up");
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// The websocket upgrade request, carrying the same bearer token as every
/// other call of this CLI (a token from `slipway login`, `--token` or
/// `SLIPWAY_TOKEN`).
fn ws_request(client: &Client, url: &str) -> anyhow::Result<tungstenite::handshake::client::Request> {
    use tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().map_err(|e| anyhow!("bad log stream address {url}: {e}"))?;
    if let Some(token) = client.token() {
        let value = format!("Bearer {token}").parse().map_err(|_| anyhow!("the API token contains characters a header cannot carry"))?;
        request.headers_mut().insert("Authorization", value);
    }
    Ok(request)
}
