//! Slipway's benchmarks. Each prints its numbers; none asserts a time.
//! Run them with `cargo xtask bench [NAME]`, which starts a private Postgres,
//! the Docker engine and a registry, and passes DATABASE_URL and
//! SLIPWAY_REGISTRY.

mod board;
mod builds;
mod logs;

use std::time::Duration;

/// Connection to a fresh database for one benchmark, and its name.
pub async fn fresh_store(tag: &str) -> anyhow::Result<slipway_engine::Store> {
    use sqlx::Connection;
    let admin = std::env::var("DATABASE_URL").map_err(|_| anyhow::anyhow!("DATABASE_URL is not set: run through `cargo xtask bench`"))?;
    let db = format!("slipway_bench_{tag}_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut conn).await?;
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin.clone());
    let store = slipway_engine::Store::connect(&format!("{base}/{db}")).await?;
    store.migrate().await?;
    Ok(store)
}

/// Median and the given percentile of a set of durations, in milliseconds.
pub fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    if samples.is_empty() {
        return f64::NAN;
    }
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[idx].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    match which.as_str() {
        "builds" => builds::run().await?,
        "logs" => logs::run().await?,
        "board" => board::run().await?,
        "all" => {
            builds::run().await?;
            logs::run().await?;
            board::run().await?;
        }
        other => anyhow::bail!("unknown benchmark `{other}` (known: builds, logs, board, all)"),
    }
    Ok(())
}
