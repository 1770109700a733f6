//! `meridian`: the operator's CLI. `up` starts the local platform in one
//! process: every region's commerce service over the embedded engine, the
//! demo catalog, the routing layer (health checks, API, DNS) and the edge
//! POPs running the Spin component (which it builds first). The `meridian`
//! binary is `main` here and nothing else, so the end-to-end tests run the
//! same CLI as a process of their own (`tests/e2e`).

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
        /// Every server on an ephemeral port of its configured address
        /// (a second stack beside a running one); the banner prints them.
        #[arg(long)]
        ephemeral_ports: bool,
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
        routing: RoutingTargets,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Put a drained region back into traffic.
    Undrain {
        /// The region, e.g. `eu-west`.
        region: RegionId,
        #[command(flatten)]
        routing: RoutingTargets,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Rehearse a failure: start the platform (on ephemeral ports, over a
    /// fresh store), drive shopper load through its POPs, inject the fault
    /// into one region, and write a report; exits non-zero when an
    /// invariant breaks.
    Drill {
        /// What fails.
        #[arg(value_enum)]
        scenario: crate::drill::Scenario,
        /// The region it happens to.
        #[arg(long, default_value = "eu-west")]
        region: RegionId,
        /// Seconds of shopper load.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(5..=3600))]
        duration: u64,
        /// Seconds into the load the fault starts.
        #[arg(long, default_value_t = 8)]
        fault_at: u64,
        /// Seconds the fault lasts.
        #[arg(long, default_value_t = 10)]
        fault_for: u64,
        /// Requests per second over all shoppers.
        #[arg(long, default_value_t = 60.0)]
        rate: f64,
        /// Shoppers (each with a session and a client address of its own).
        #[arg(long, default_value_t = 24)]
        shoppers: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// In a region outage, milliseconds the dead region's shard's
        /// cluster takes to recover in its remote DC (unreachable
        /// meanwhile).
        #[arg(long, default_value_t = 0)]
        cluster_recovery_ms: u64,
        /// Catalog changes timed to every POP after the load (0: none).
        #[arg(long, default_value_t = 20)]
        catalog_changes: usize,
        /// Products in the demo catalog.
        #[arg(long, default_value_t = 1_000)]
        products: usize,
        /// The platform config.
        #[arg(long, default_value = "infra/local/meridian.toml")]
        config: PathBuf,
        /// Where the report goes (report.md and report.html).
        #[arg(long, default_value = "drill-report")]
        out: PathBuf,
        /// Drill a running `meridian up` instead of a stack of its own: its
        /// control API, e.g. `http://127.0.0.1:7001` (the banner prints
        /// it). The drill runs there, on its data; `--products` and
        /// `--config` are then not used.
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Compute the recommendations (bought together, popular now) from the
    /// sales logs and publish them to the regions: `meridian-recommend`
    /// with these arguments (`meridian recommend --help` lists them).
    #[command(disable_help_flag = true)]
    Recommend {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
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

/// Every routing instance a drain must reach: each region runs its own
/// routing (and several replicas), each with its own table.
#[derive(Debug, clap::Args)]
struct RoutingTargets {
    /// A routing API; repeat for every routing instance (production: each
    /// replica in each region).
    #[arg(long = "routing", default_value = "http://127.0.0.1:7000", action = clap::ArgAction::Append)]
    routing: Vec<String>,
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

/// Parses the command line and runs the command.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Up {
            config,
            no_build,
            products,
            ephemeral_ports,
        } => up(config, no_build, products, ephemeral_ports),
        Command::Recommend { args } => crate::recommend::run_cli(args),
        Command::Status { routing, json } => block_on(async move {
            let client = http_client()?;
            let table =
                routing::client::table(&client, routing.routing.trim_end_matches('/')).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&table)?);
            } else {
                print!("{}", crate::status::render(&table));
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
        Command::Drill {
            scenario,
            region,
            duration,
            fault_at,
            fault_for,
            rate,
            shoppers,
            seed,
            cluster_recovery_ms,
            catalog_changes,
            products,
            config,
            out,
            target,
            admin,
        } => drill(
            config,
            products,
            out,
            target
                .map(|t| admin.token().map(|token| (t, token)))
                .transpose()?,
            crate::drill::DrillOptions {
                scenario,
                region,
                duration: std::time::Duration::from_secs(duration),
                fault_at: std::time::Duration::from_secs(fault_at),
                fault_for: std::time::Duration::from_secs(fault_for),
                rate,
                shoppers,
                seed,
                cluster_recovery: std::time::Duration::from_millis(cluster_recovery_ms),
                catalog_changes,
            },
        ),
        Command::NewId { shard } => {
            println!("{}", ShardedId::new(shard, ulid::Ulid::new()));
            Ok(())
        }
    }
}

fn block_on<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
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

/// Drains (or undrains) `region` at every routing instance given, each in
/// turn, printing each one's table; fails naming every instance that did
/// not take it (the others did: run it again once they are back).
fn set_drained(
    region: RegionId,
    routing: RoutingTargets,
    admin: AdminArgs,
    drained: bool,
) -> anyhow::Result<()> {
    let token = admin.token()?;
    block_on(async move {
        let client = http_client()?;
        let mut failed = Vec::new();
        for url in &routing.routing {
            let url = url.trim_end_matches('/');
            match routing::client::set_drained(&client, url, region.as_str(), &token, drained).await
            {
                Ok(table) => {
                    println!("{url}:");
                    print!("{}", crate::status::render(&table));
                }
                Err(err) => failed.push(format!("{url}: {err:#}")),
            }
        }
        anyhow::ensure!(
            failed.is_empty(),
            "{} of {} routing instances did not take the change (the others did; repeat once they answer):\n{}",
            failed.len(),
            routing.routing.len(),
            failed.join("\n")
        );
        Ok(())
    })
}

fn drill(
    config: PathBuf,
    products: usize,
    out: PathBuf,
    target: Option<(String, String)>,
    options: crate::drill::DrillOptions,
) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .init();
    options.validate()?;
    if let Some((target, token)) = target {
        println!(
            "drill: {:?} of {} at {target} under {} shoppers at {}/s for {} s (follow it at the routing API's /v1/drills)",
            options.scenario,
            options.region,
            options.shoppers,
            options.rate,
            options.duration.as_secs()
        );
        let answer = block_on(crate::control::request_drill(&target, &token, &options))?;
        let [md, html] = crate::drill::report::write_texts(&out, &answer.markdown, &answer.html)?;
        println!("{}", answer.markdown);
        if let Some(id) = &answer.drill_id {
            println!("posted to the routing layer as drill {id}");
        }
        println!("report: {} and {}", md.display(), html.display());
        anyhow::ensure!(answer.passed, "the drill broke an invariant");
        return Ok(());
    }
    let mut loaded = crate::config::load(&config)?;
    anyhow::ensure!(
        loaded.geography,
        "a drill needs geography = true in {}",
        config.display()
    );
    loaded.seed.products = products;
    let data = tempfile::tempdir().context("a data directory for the drill")?;
    if let regional_server::storage::StorageConfig::Embedded { dir, .. } = &mut loaded.storage {
        *dir = data.path().to_path_buf();
    }
    loaded.payments.store = Some(data.path().join("payments"));
    let component = crate::build::edge_component()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = runtime.block_on(async move {
        let mut platform = crate::platform::start(
            &loaded,
            crate::platform::StartOptions {
                ephemeral_ports: true,
                component,
            },
        )
        .await?;
        println!(
            "drill: {:?} of {} under {} shoppers at {}/s for {} s",
            options.scenario,
            options.region,
            options.shoppers,
            options.rate,
            options.duration.as_secs()
        );
        let (posted, id) = tokio::sync::oneshot::channel();
        if let Some(api) = platform.routing_api {
            tokio::spawn(async move {
                if let Ok(id) = id.await {
                    println!(
                        "follow it live: http://{api}{} (or http://{api}/v1/drills/{id}/watch?since=0)",
                        routing::dashboard::PATH
                    );
                }
            });
        }
        let outcome = crate::drill::run(&mut platform, options, Some(posted)).await;
        platform.stop().await?;
        outcome
    })?;
    let [md, html] = crate::drill::report::write(&outcome, &out)?;
    println!("{}", crate::drill::report::markdown(&outcome));
    println!("report: {} and {}", md.display(), html.display());
    anyhow::ensure!(outcome.passed(), "the drill broke an invariant");
    Ok(())
}

fn up(
    config: PathBuf,
    no_build: bool,
    products: Option<usize>,
    ephemeral_ports: bool,
) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,meridian=info,regional_server=info".into()),
        )
        .init();
    let mut loaded = crate::config::load(&config)?;
    if let Some(products) = products {
        loaded.seed.products = products;
    }
    let component = match (&loaded.edge, no_build) {
        (Some(_), false) => crate::build::edge_component()?,
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut platform = crate::platform::start(
            &loaded,
            crate::platform::StartOptions {
                ephemeral_ports,
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
        // The control API: drills against this stack, run here.
        let (jobs, mut queue) = tokio::sync::mpsc::channel::<crate::control::Job>(1);
        let control_addr = if ephemeral_ports {
            std::net::SocketAddr::new(loaded.control_listen.ip(), 0)
        } else {
            loaded.control_listen
        };
        let control = tokio::net::TcpListener::bind(control_addr)
            .await
            .with_context(|| format!("binding the control API on {control_addr}"))?;
        let control_addr = control.local_addr().context("the control API's address")?;
        let (stop_control, control_stopped) = tokio::sync::oneshot::channel::<()>();
        let control_app = crate::control::app(platform.routing_admin_token.clone(), jobs);
        let control_server = tokio::spawn(async move {
            axum::serve(control, control_app)
                .with_graceful_shutdown(async move {
                    let _ = control_stopped.await;
                })
                .await
        });
        println!(
            "  control API    http://{control_addr}  (drills: meridian drill <scenario> --target http://{control_addr})"
        );
        if let (Some(api), Some(dns)) = (platform.routing_api, platform.dns) {
            println!("  routing API    http://{api}/v1/table");
            println!(
                "  dashboard      http://{api}{}  (regions, shards, events, drills; drain with the admin token)",
                routing::dashboard::PATH
            );
            println!(
                "  DNS            {dns} (udp+tcp)  try: dig @{} -p {} www.shop.example  (the nearest POP; api.shop.example: the nearest region)",
                dns.ip(),
                dns.port()
            );
        }
        match platform.pops.first() {
            Some((_, pop)) => println!(
                "Try: open http://{pop}/ in a browser (the storefront), or curl 'http://{pop}/v1/search?q=wool&limit=3'   (Ctrl-C stops)"
            ),
            None => println!(
                "Try: curl 'http://{}/v1/search?q=wool&limit=3'   (Ctrl-C stops)",
                platform.regions[0].1
            ),
        }
        // The recommendations, computed now and every `every_s` after.
        let region_token = platform.regions[0]
            .2
            .state
            .admin_tokens
            .first()
            .map(|t| t.to_string());
        let _recommendations = match (platform.routing_api, region_token) {
            (Some(api), Some(token)) => {
                let schedule = crate::recommend::Schedule::start(
                    &loaded.recommend,
                    &format!("http://{api}"),
                    &token,
                    None,
                );
                if schedule.is_some() {
                    println!(
                        "  recommendations computed now and every {} s ({}; `meridian recommend` runs it by hand)",
                        loaded.recommend.every_s, loaded.recommend.engine
                    );
                }
                schedule
            }
            _ => None,
        };
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                result = platform.wait() => {
                    result?;
                    break;
                }
                _ = &mut ctrl_c => break,
                Some(job) = queue.recv() => {
                    let crate::control::Job { options, reply, busy } = job;
                    tracing::info!(scenario = ?options.scenario, region = %options.region, "a drill against this stack");
                    let answer = tokio::select! {
                        outcome = crate::drill::run(&mut platform, options, None) => outcome,
                        _ = &mut ctrl_c => break,
                    };
                    let answer = answer.and_then(|outcome| {
                        Ok(crate::control::DrillAnswer {
                            passed: outcome.passed(),
                            markdown: crate::drill::report::markdown(&outcome),
                            html: crate::drill::html::page(&outcome)?,
                            drill_id: outcome.posted_as.clone(),
                        })
                    });
                    let _ = reply.send(answer);
                    drop(busy);
                }
            }
        }
        println!("stopping");
        let _ = stop_control.send(());
        let _ = control_server.await;
        platform.stop().await
    })
}
