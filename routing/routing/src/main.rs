//! `routing`: the global routing layer of one Meridian deployment: health
//! checks, the routing API and the DNS authority, from one config file.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "routing",
    about = "Meridian's routing layer: health checks, routing API, DNS authority"
)]
struct Cli {
    /// The routing config.
    #[arg(long, default_value = "infra/local/routing.toml")]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,hickory_server=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let loaded = routing::server::load(&cli.config)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(async move {
            let sockets = routing::server::Sockets::bind(&loaded.config).await?;
            // Listening before "up": a SIGTERM from then on stops cleanly.
            let signals = shutdown::listen();
            tracing::info!(api = %loaded.config.api_listen, dns = %loaded.config.dns_listen, "routing up");
            routing::server::run(loaded, sockets, None, async move {
                match signals {
                    Ok(signals) => {
                        let signal = signals.requested().await;
                        tracing::info!(signal, "stopping");
                    }
                    // Without a handler the default action still stops the
                    // process; never stop on this alone.
                    Err(err) => {
                        tracing::error!(%err, "no signal handler");
                        std::future::pending::<()>().await
                    }
                }
            })
            .await
        })
}
