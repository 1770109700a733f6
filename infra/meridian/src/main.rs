//! `meridian`: the operator's CLI. `up` starts the local platform in one
//! process: every region's commerce service over the embedded engine, the
//! demo catalog, the routing layer (health checks, API, DNS) and the edge
//! POPs running the Spin component (which it builds first).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use topology::{RegionId, ShardId, ShardedId};

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
    /// The routing table: each region's health and probe latency, each
    /// shard's home and active region, each POP.
    Status {
        #[command(flatten)]
        routing: RoutingArgs,
        /// Print the table as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take a region out of traffic (its shards fail over to their
    /// standbys; DNS stops answering it).
    Drain {
        /// The region, e.g. `eu-west`.
        region: RegionId,
        #[command(flatten)]
        routing: RoutingArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Put a drained region back into traffic.
    Undrain {
        /// The region, e.g. `eu-west`.
        region: RegionId,
        #[command(flatten)]
        routing: RoutingArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Print a new shard-carrying id, e.g. `eu.01J…`.
    NewId {
        /// The shard the id's record lives in.
        shard: ShardId,
    },
}

#[derive(Debug, clap::Args)]
struct RoutingArgs {
    /// The routing API.
    #[arg(long, default_value = "http://127.0.0.1:7000")]
    routing: String,
}

#[derive(Debug, clap::Args)]
struct AdminArgs {
    /// The routing layer's admin token (default: the
    /// MERIDIAN_ROUTING_ADMIN_TOKEN environment variable).
    #[arg(long)]
    token: Option<String>,
}

impl AdminArgs {
    fn token(&self) -> anyhow::Result<String> {
        self.token
            .clone()
            .or_else(|| std::env::var(routing::config::ADMIN_TOKEN_ENV).ok())
            .filter(|t| !t.is_empty())
            .with_context(|| {
                format!(
                    "give the routing admin token with --token or {} (the local stack's is in infra/local/routing.toml)",
                    routing::config::ADMIN_TOKEN_ENV
                )
            })
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up {
            config,
            no_build,
            products,
        } => up(config, no_build, products),
        Command::Status { routing, json } => block_on(async move {
            let client = http_client()?;
            let table =
                routing::client::table(&client, routing.routing.trim_end_matches('/')).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&table)?);
            } else {
                print!("{}", meridian::status::render(&table));
            }
            Ok(())
        }),
        Command::Drain {
            region,
            routing,
            admin,
        } => set_drained(region, routing, admin, true),
        Command::Undrain {
            region,
            routing,
            admin,
        } => set_drained(region, routing, admin, false),
        Command::NewId { shard } => {
            println!("{}", ShardedId::new(shard, ulid::Ulid::new()));
            Ok(())
        }
    }
}

fn block_on(work: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(work)
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .context("an HTTP client")
}

fn set_drained(
    region: RegionId,
    routing: RoutingArgs,
    admin: AdminArgs,
    drained: bool,
) -> anyhow::Result<()> {
    let token = admin.token()?;
    block_on(async move {
        let client = http_client()?;
        let table = routing::client::set_drained(
            &client,
            routing.routing.trim_end_matches('/'),
            region.as_str(),
            &token,
            drained,
        )
        .await?;
        print!("{}", meridian::status::render(&table));
        Ok(())
    })
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
        if loaded.geography {
            let regions = loaded.topology.regions();
            let mut pairs = Vec::new();
            for (i, a) in regions.iter().enumerate() {
                for b in &regions[i + 1..] {
                    if let Some(rtt) = loaded.topology.region_rtt(a.name(), b.name()) {
                        pairs.push(format!("{}↔{} {:.0} ms", a.name(), b.name(), rtt.as_secs_f64() * 1e3));
                    }
                }
            }
            println!("  geography      round trips {}", pairs.join(", "));
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
