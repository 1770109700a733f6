//! `meridian`: the operator's CLI. `up` starts the local platform in one
//! process: every region's commerce service over the embedded engine, the
//! demo catalog, the routing layer (health checks, API, DNS) and the edge
//! POPs running the Spin component (which it builds first).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use topology::{ShardId, ShardedId};

#[derive(Debug, Parser)]
#[command(
    name = "meridian",
    about = "Meridian: multi-region, edge-first commerce platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the platform on this machine: regions, demo catalog, routing
    /// and DNS, edge POPs.
    Up {
        /// The platform config.
        #[arg(long, default_value = "infra/local/meridian.toml")]
        config: PathBuf,
        /// Run the edge component the edge config names instead of
        /// building it first (`cargo build -p edge-spin --target
        /// wasm32-wasip2 --release`, which `up` runs from a checkout).
        #[arg(long)]
        no_build: bool,
        /// Products in the demo catalog written into an empty catalog
        /// (the config's `[seed] products` when absent).
        #[arg(long)]
        products: Option<usize>,
    },
    /// Print a new shard-carrying id, e.g. `eu.01J…`.
    NewId {
        /// The shard the id's record lives in.
        shard: ShardId,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up {
            config,
            no_build,
            products,
        } => up(config, no_build, products),
        Command::NewId { shard } => {
            println!("{}", ShardedId::new(shard, ulid::Ulid::new()));
            Ok(())
        }
    }
}

fn up(config: PathBuf, no_build: bool, products: Option<usize>) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,meridian=info,regional_server=info".into()),
        )
        .init();
    let mut loaded = meridian::config::load(&config)?;
    if let Some(products) = products {
        loaded.seed.products = products;
    }
    let component = match (&loaded.edge, no_build) {
        (Some(_), false) => meridian::build::edge_component()?,
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut platform = meridian::platform::start(
            &loaded,
            meridian::platform::StartOptions {
                ephemeral_ports: false,
                component,
            },
        )
        .await?;
        println!(
            "meridian is up: {} regions, {} shards on the {} engine, {} edge POPs",
            platform.regions.len(),
            loaded.topology.shards().len(),
            platform.regions[0]
                .2
                .commerce
                .shards()
                .iter()
                .next()
                .map_or("?", |(_, db)| db.engine()),
            platform.pops.len(),
        );
        for (name, addr) in &platform.pops {
            println!("  pop    {name:<14} http://{addr}");
        }
        for (name, addr, region) in &platform.regions {
            let served: Vec<&str> = region
                .commerce
                .served()
                .iter()
                .map(|s| s.as_str())
                .collect();
            println!(
                "  region {:<14} http://{addr}  serves shards [{}]",
                name.as_str(),
                served.join(", ")
            );
        }
        if let (Some(api), Some(dns)) = (platform.routing_api, platform.dns) {
            println!("  routing API    http://{api}/v1/table");
            println!(
                "  DNS            {dns} (udp+tcp)  try: dig @{} -p {} www.shop.example  (the nearest POP; api.shop.example: the nearest region)",
                dns.ip(),
                dns.port()
            );
        }
        match platform.pops.first() {
            Some((_, pop)) => println!(
                "Try: curl 'http://{pop}/v1/search?q=wool&limit=3'   (Ctrl-C stops)"
            ),
            None => println!(
                "Try: curl 'http://{}/v1/search?q=wool&limit=3'   (Ctrl-C stops)",
                platform.regions[0].1
            ),
        }
        tokio::select! {
            result = platform.wait() => result?,
            _ = tokio::signal::ctrl_c() => {}
        }
        println!("stopping");
        platform.stop().await
    })
}
