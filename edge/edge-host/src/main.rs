//! `edge-host`: runs the edge component for every POP of the config.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    about = "Meridian's local edge host: the Spin edge component on wasmtime, one or more POPs"
)]
struct Cli {
    #[arg(long, default_value = "infra/local/edge.toml")]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let config = edge_host::HostConfig::load(&cli.config, |n| std::env::var(n).ok())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        // Listening before the POPs serve: a SIGTERM from then on drains.
        let signals = shutdown::listen()?;
        let mut running = edge_host::start(&config, false).await?;
        for (pop, addr) in &running.pops {
            println!("POP {:<12} http://{addr}", pop.name);
        }
        tokio::select! {
            result = running.wait() => result?,
            signal = signals.requested() => {
                tracing::info!(signal, "stopping: draining the POPs");
            }
        }
        running.stop().await;
        Ok(())
    })
}
