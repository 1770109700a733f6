//! `meridian`: the operator's CLI. Today it opens the storage of every geo
//! shard of the configured topology and proves each one takes a
//! transaction; the regional services, edges and routing layer join `up` as
//! they are built.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use db::Subspace;
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
    /// Start the platform on this machine (today: the storage of every shard).
    Up {
        /// The platform config.
        #[arg(long, default_value = "infra/local/meridian.toml")]
        config: PathBuf,
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
        Command::Up { config } => up(config),
        Command::NewId { shard } => {
            println!("{}", ShardedId::new(shard, ulid::Ulid::new()));
            Ok(())
        }
    }
}

fn up(config: PathBuf) -> anyhow::Result<()> {
    let loaded = meridian::config::load(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let shards = meridian::open_storage(&loaded.storage, &loaded.topology)?;
        println!("meridian: {} regions, {} shards", loaded.topology.regions().len(), shards.len());
        let boots = Subspace::from_bytes(b"\x02meridian".to_vec()).subspace(&("boots",));
        for shard in loaded.topology.shards() {
            let db = shards.get(shard.id())?;
            let key = boots.pack(&(shard.id().as_str(),));
            let (count, info) = db
                .run_with_info(|tx, _| {
                    let key = key.clone();
                    async move {
                        tx.add_i64(&key, 1)?;
                        tx.get(&key).await
                    }
                })
                .await
                .with_context(|| format!("smoke transaction on shard {}", shard.id()))?;
            let count = count
                .and_then(|v| <[u8; 8]>::try_from(v).ok())
                .map_or(0, i64::from_le_bytes);
            let standbys: Vec<&str> = shard.standbys().iter().map(|r| r.as_str()).collect();
            println!(
                "  shard {:<4} engine {:<12} home {:<14} standbys [{}]  commit version {}  boots {}",
                shard.id().as_str(),
                db.engine(),
                shard.home().as_str(),
                standbys.join(", "),
                info.version.unwrap_or_default(),
                count
            );
        }
        println!(
            "storage is up. The regional services, edges and routing layer are not built yet; \
             see README.md for what works today."
        );
        Ok(())
    })
}
