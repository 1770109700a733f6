//! The routing server: the checker, the API and the DNS authority over one
//! region table, as the `routing` binary runs them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use dns_authority::{Authority, DnsConfig};
use topology::Topology;

use crate::api::ApiState;
use crate::checker::{Checker, HttpProber, Prober};
use crate::config::{ADMIN_TOKEN_ENV, ADMIN_TOKEN_SECONDARY_ENV, RoutingConfig};
use crate::table::RegionTable;

/// A routing config with the files it names read and validated.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: RoutingConfig,
    pub topology: Topology,
    pub dns: DnsConfig,
}

/// Reads `routing.toml` and the topology and DNS files it names (relative
/// to its directory).
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let config = RoutingConfig::from_toml_str(&config_file::read(path)?)
        .with_context(|| format!("parsing {}", path.display()))?;
    let base: PathBuf = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let topology_path = base.join(&config.topology);
    let topology = Topology::from_toml_str(&config_file::read(&topology_path)?)
        .with_context(|| format!("in {}", topology_path.display()))?;
    let dns_path = base.join(&config.dns);
    let mut dns = DnsConfig::from_toml_str(&config_file::read(&dns_path)?)
        .with_context(|| format!("in {}", dns_path.display()))?;
    if let Some(geoip) = &mut dns.geoip {
        let dns_dir = dns_path.parent().unwrap_or(Path::new("."));
        for database in &mut geoip.databases {
            *database = dns_dir.join(&*database);
        }
    }
    Ok(Loaded {
        config,
        topology,
        dns,
    })
}

/// Sockets the server runs on, bound by the caller (tests bind port 0).
#[derive(Debug)]
pub struct Sockets {
    pub api: tokio::net::TcpListener,
    /// Several sockets on one port (SO_REUSEPORT), see
    /// `dns_authority::bind_udp`.
    pub dns_udp: Vec<tokio::net::UdpSocket>,
    pub dns_tcp: tokio::net::TcpListener,
}

impl Sockets {
    /// Binds the addresses `config` names.
    pub async fn bind(config: &RoutingConfig) -> anyhow::Result<Self> {
        Ok(Sockets {
            api: tokio::net::TcpListener::bind(config.api_listen)
                .await
                .with_context(|| format!("binding the API on {}", config.api_listen))?,
            dns_udp: dns_authority::bind_udp(config.dns_listen, dns_authority::udp_parallelism())
                .with_context(|| format!("binding DNS (UDP) on {}", config.dns_listen))?,
            dns_tcp: tokio::net::TcpListener::bind(config.dns_listen)
                .await
                .with_context(|| format!("binding DNS (TCP) on {}", config.dns_listen))?,
        })
    }

    /// Binds the API on an ephemeral port of `ip`, and DNS (UDP and TCP) on
    /// one ephemeral port free for both: for tests and benchmarks.
    pub async fn bind_ephemeral(ip: std::net::IpAddr) -> anyhow::Result<Self> {
        let api = tokio::net::TcpListener::bind((ip, 0))
            .await
            .context("binding the API")?;
        // Bounded: a port free for UDP is nearly always free for TCP.
        for _ in 0..50 {
            let dns_udp = dns_authority::bind_udp((ip, 0).into(), dns_authority::udp_parallelism())
                .context("binding DNS (UDP)")?;
            let port = dns_udp
                .first()
                .map(|s| s.local_addr())
                .transpose()?
                .map_or(0, |a| a.port());
            if let Ok(dns_tcp) = tokio::net::TcpListener::bind((ip, port)).await {
                return Ok(Sockets {
                    api,
                    dns_udp,
                    dns_tcp,
                });
            }
        }
        anyhow::bail!("no port on {ip} was free for both UDP and TCP")
    }

    /// Where the routing API listens.
    pub fn api_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.api.local_addr()
    }

    /// The DNS port (UDP and TCP).
    pub fn dns_port(&self) -> std::io::Result<u16> {
        Ok(self.dns_tcp.local_addr()?.port())
    }
}

/// The admin token the API takes: `MERIDIAN_ROUTING_ADMIN_TOKEN`, else the
/// config's `admin_token`; `None` when neither is set.
pub fn admin_token(loaded: &Loaded) -> Option<String> {
    std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
        .or(loaded.config.admin_token.clone())
}

/// The token the API also takes during a rotation:
/// `MERIDIAN_ROUTING_ADMIN_TOKEN_SECONDARY`, else the config's
/// `admin_token_secondary`; never without a primary.
pub fn admin_token_secondary(loaded: &Loaded) -> Option<String> {
    admin_token(loaded)?;
    std::env::var(ADMIN_TOKEN_SECONDARY_ENV)
        .ok()
        .filter(|t| !t.is_empty())
        .or(loaded.config.admin_token_secondary.clone())
        .filter(|t| !t.is_empty())
}

/// Runs the checker, the API and the DNS authority until `shutdown`.
pub async fn run(
    loaded: Loaded,
    sockets: Sockets,
    prober: Option<Arc<dyn Prober>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let table = RegionTable::new(
        &loaded.topology,
        loaded.config.endpoints(),
        loaded.config.health.clone(),
    )
    .context("building the region table")?
    .with_pops(loaded.config.pop_endpoints())
    .context("adding the POPs to the region table")?;
    let prober = match prober {
        Some(p) => p,
        None => Arc::new(HttpProber::new().context("building the HTTP prober")?),
    };
    let _checker = Checker::spawn(table.clone(), prober);
    let admin_token = admin_token(&loaded).map(Arc::from);
    let admin_token_secondary = admin_token_secondary(&loaded).map(Arc::from);
    let geoip_config = loaded.dns.geoip.clone();
    let mut authority =
        Authority::new(loaded.dns, table.subscribe()).context("building the DNS authority")?;
    // GeoIP databases load before DNS serves; a change to a file reloads it.
    let mut reloader = None;
    if let Some(config) = &geoip_config {
        let geoip = Arc::new(
            dns_authority::GeoIp::open(config)
                .map_err(anyhow::Error::msg)
                .context("loading the GeoIP databases ([geoip] in the DNS config)")?,
        );
        reloader = Some(geoip.spawn_reloader());
        authority = authority.with_geoip(geoip);
    }

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let api = tokio::spawn(crate::api::run(
        sockets.api,
        ApiState {
            table,
            admin_token,
            admin_token_secondary,
            drills: crate::drills::Drills::default(),
        },
        wait(stopped.clone()),
    ));
    let dns = tokio::spawn(dns_authority::serve_sockets(
        authority,
        sockets.dns_udp,
        sockets.dns_tcp,
        wait(stopped),
    ));
    shutdown.await;
    let _ = stop.send(true);
    api.await.context("API task")?.context("API server")?;
    dns.await.context("DNS task")?.context("DNS server")?;
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    Ok(())
}
