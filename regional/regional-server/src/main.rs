//! `regional-server`: one region's commerce service.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use regional_server::{Region, config, run, storage};

/// mimalloc: glibc malloc spent about 30 % of a bulk import's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(about = "Meridian's regional service: one region's commerce API and workers")]
struct Cli {
    /// The region's config file.
    #[arg(long, default_value = "infra/local/regions/us-east.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Write the deterministic demo catalog and its stock, then exit.
    Seed {
        #[arg(long, default_value_t = 10_000)]
        products: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 200)]
        max_stock: i64,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tantivy=warn,lsm_tree=warn,fjall=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let loaded = config::load(&cli.config, |name| std::env::var(name).ok())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let shards = storage::open(&loaded.config.storage, &loaded.topology)?;
        let gateway = storage::open_gateway(
            &loaded.config.payments,
            storage::default_gateway_dir(&loaded.config.storage).as_deref(),
        )?;
        let region = Region::from_config(&loaded, shards, gateway)?;
        match cli.command.unwrap_or(Command::Serve) {
            Command::Seed { products, seed, max_stock } => {
                let options = commerce::seed::SeedOptions { products, seed, max_stock };
                let report = region
                    .commerce
                    .seed_demo(options, |done| {
                        if done % 2_000 == 0 || done == products {
                            tracing::info!(done, of = products, "seeding");
                        }
                    })
                    .await?;
                println!(
                    "seeded {} categories, {} products, {} units of stock",
                    report.categories, report.products, report.stock_units
                );
                Ok(())
            }
            Command::Serve => {
                let listener = tokio::net::TcpListener::bind(loaded.config.listen)
                    .await
                    .with_context(|| format!("binding {}", loaded.config.listen))?;
                // Listening before "up": a SIGTERM from then on drains.
                let signals = shutdown::listen();
                tracing::info!(region = %loaded.config.region, listen = %listener.local_addr()?, served = ?loaded.served, "regional service up");
                let (tx, rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    match signals {
                        Ok(signals) => {
                            let signal = signals.requested().await;
                            tracing::info!(signal, "stopping: finishing the requests in flight");
                            let _ = tx.send(true);
                        }
                        // Without a handler the default action still stops
                        // the process; never stop on the error alone.
                        Err(err) => {
                            tracing::error!(%err, "no signal handler");
                            std::future::pending::<()>().await;
                            drop(tx);
                        }
                    }
                });
                run(region, listener, rx).await
            }
        }
    })
}
