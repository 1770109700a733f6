//! Test harness: an authority serving on 127.0.0.1 (UDP and TCP on one
//! port) from a routing table the test holds the sender of, and `dig` — the
//! real client — to query it, with its output parsed.

use std::net::{IpAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::thread::JoinHandle;

use dns_authority::{Authority, DnsConfig, ServeError};
use tokio::sync::{oneshot, watch};
use topology::routing::{Health, RegionStatus, RoutingTable, ShardRoute};
use topology::{RegionId, ShardId};

/// The test zone: 127/8 sits near ap-southeast and the default near
/// us-east, so an ECS-free query from loopback proves the mapping is used.
pub const CONFIG: &str = r#"
zone = "shop.example."
default_location = { latitude = 39.0, longitude = -77.5 }

[ttl]
api_s = 5
region_s = 6
shard_s = 7
ns_s = 3600
soa_s = 3600

[soa]
mname = "ns1.shop.example."
rname = "hostmaster.shop.example."
serial = 42
refresh_s = 3600
retry_s = 600
expire_s = 604800
minimum_s = 30

[[name_servers]]
name = "ns1.shop.example."
address = "127.0.0.1"

[[name_servers]]
name = "ns1.shop.example."
address = "::1"

[[name_servers]]
name = "ns2.dns.shop.example."
address = "127.0.0.2"

[[name_servers]]
name = "ns.elsewhere.example."

[[locations]]
cidr = "10.1.0.0/16"
latitude = 39.0
longitude = -77.5

[[locations]]
cidr = "10.2.0.0/16"
latitude = 53.3
longitude = -6.3

[[locations]]
cidr = "10.3.0.0/16"
latitude = 1.35
longitude = 103.8

[[locations]]
cidr = "127.0.0.0/8"
latitude = 1.35
longitude = 103.8
"#;

/// Negative answers' TTL: min(ttl.soa_s, soa.minimum_s) in [`CONFIG`].
pub const NEGATIVE_TTL_S: u32 = 30;

pub const US_EAST_V4: &str = "192.0.2.1";
pub const US_EAST_V6: &str = "2001:db8:1::1";
pub const EU_WEST_V4: &str = "198.51.100.1";
pub const EU_WEST_V6: &str = "2001:db8:2::1";
pub const AP_SOUTHEAST_V4: &str = "203.0.113.1";

fn region(name: &str, latitude: f64, longitude: f64, addresses: &[&str]) -> RegionStatus {
    RegionStatus {
        name: name.parse().unwrap(),
        latitude,
        longitude,
        health: Health::Healthy,
        base_url: format!("http://{name}.invalid"),
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        probe_latency_ms: Some(1.0),
    }
}

fn shard(id: &str, home: &str, standbys: [&str; 2]) -> ShardRoute {
    ShardRoute {
        shard: id.parse().unwrap(),
        home: home.parse().unwrap(),
        standbys: standbys.iter().map(|s| s.parse().unwrap()).collect(),
        active: Some(home.parse().unwrap()),
    }
}

/// Three healthy regions and the local topology's shards.
pub fn table() -> RoutingTable {
    RoutingTable {
        version: 1,
        regions: vec![
            region("us-east", 39.04, -77.49, &[US_EAST_V4, US_EAST_V6]),
            region("eu-west", 53.35, -6.26, &[EU_WEST_V4, EU_WEST_V6]),
            region("ap-southeast", 1.35, 103.82, &[AP_SOUTHEAST_V4]),
        ],
        shards: vec![
            shard("us", "us-east", ["eu-west", "ap-southeast"]),
            shard("eu", "eu-west", ["us-east", "ap-southeast"]),
            shard("ap", "ap-southeast", ["us-east", "eu-west"]),
        ],
        pops: Vec::new(),
    }
}

/// Sets a region's health and recomputes every shard's active region the
/// way the routing layer does: home if it serves, else the first serving
/// standby.
pub fn set_health(table: &mut RoutingTable, name: &str, health: Health) {
    let name: RegionId = name.parse().unwrap();
    for r in &mut table.regions {
        if r.name == name {
            r.health = health;
        }
    }
    let serves =
        |table: &RoutingTable, r: &RegionId| table.region(r).is_some_and(|r| r.health.serves());
    let actives: Vec<Option<RegionId>> = table
        .shards
        .iter()
        .map(|s| {
            std::iter::once(&s.home)
                .chain(&s.standbys)
                .find(|r| serves(table, r))
                .cloned()
        })
        .collect();
    for (s, active) in table.shards.iter_mut().zip(actives) {
        s.active = active;
    }
    table.version += 1;
}

/// The shard's active region in `table`, for assertions.
pub fn active(table: &RoutingTable, shard: &str) -> Option<String> {
    let shard: ShardId = shard.parse().unwrap();
    table.active_region(&shard).map(|r| r.name.to_string())
}

/// A running authority. Dropping it shuts the server down.
pub struct TestServer {
    pub port: u16,
    table: watch::Sender<Arc<RoutingTable>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ServeError>>>,
}

impl TestServer {
    /// Serves [`CONFIG`] with [`table`].
    pub fn start() -> Self {
        Self::with(CONFIG, table())
    }

    pub fn with(config: &str, table: RoutingTable) -> Self {
        let config = DnsConfig::from_toml_str(config).expect("test config parses");
        let (sender, receiver) = watch::channel(Arc::new(table));
        let authority = Authority::new(config, receiver).expect("authority builds");
        let (udp, tcp) = bind_same_port();
        let port = udp.local_addr().unwrap().port();
        let (shutdown, shutdown_rx) = oneshot::channel();
        // The server gets its own runtime on its own thread, so tests stay
        // plain synchronous code that runs `dig` as a child process.
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let udp = tokio::net::UdpSocket::from_std(udp).expect("tokio udp socket");
                let tcp = tokio::net::TcpListener::from_std(tcp).expect("tokio tcp listener");
                dns_authority::serve(authority, udp, tcp, async {
                    let _ = shutdown_rx.await;
                })
                .await
            })
        });
        Self {
            port,
            table: sender,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Changes the routing table, as the routing layer would.
    pub fn update(&self, change: impl FnOnce(&mut RoutingTable)) {
        self.table.send_modify(|table| {
            let mut next = RoutingTable::clone(table);
            change(&mut next);
            *table = Arc::new(next);
        });
    }

    /// Runs `dig` against this server over UDP.
    pub fn dig(&self, args: &[&str]) -> Dig {
        dig(self.port, args)
    }

    /// Runs `dig` against this server over TCP.
    pub fn dig_tcp(&self, args: &[&str]) -> Dig {
        let mut all = vec!["+tcp"];
        all.extend_from_slice(args);
        dig(self.port, &all)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            // Don't turn a failing test's panic into an abort.
            if !std::thread::panicking() {
                result
                    .expect("server thread panicked")
                    .expect("server stopped cleanly");
            }
        }
    }
}

/// UDP and TCP sockets on the same ephemeral port of 127.0.0.1. The UDP
/// port is picked by the OS; TCP may already use it, so retry a few times.
pub fn bind_same_port() -> (UdpSocket, TcpListener) {
    const ATTEMPTS: usize = 32;
    for _ in 0..ATTEMPTS {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("udp address").port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            udp.set_nonblocking(true).expect("nonblocking udp");
            tcp.set_nonblocking(true).expect("nonblocking tcp");
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP after {ATTEMPTS} attempts");
}

/// One resource record as `dig` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rr {
    pub name: String,
    pub ttl: u32,
    pub class: String,
    pub rtype: String,
    pub data: String,
}

/// `dig`'s answer, parsed.
#[derive(Debug, Clone)]
pub struct Dig {
    pub status: String,
    pub flags: Vec<String>,
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
    pub additional: Vec<Rr>,
    /// The CLIENT-SUBNET option echoed back (`10.2.0.0/24/16`).
    pub client_subnet: Option<String>,
    pub raw: String,
}

impl Dig {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The answer section's record data of one type (addresses, names…).
    pub fn answers(&self, rtype: &str) -> Vec<String> {
        self.answer
            .iter()
            .filter(|r| r.rtype == rtype)
            .map(|r| r.data.clone())
            .collect()
    }

    /// An authoritative NOERROR or NXDOMAIN with no answer and only the
    /// zone's SOA, at the negative TTL, in the authority section.
    pub fn assert_negative(&self, status: &str) {
        assert_eq!(self.status, status, "{}", self.raw);
        assert!(self.has_flag("aa"), "not authoritative:\n{}", self.raw);
        assert!(self.answer.is_empty(), "unexpected answer:\n{}", self.raw);
        assert_eq!(self.authority.len(), 1, "{}", self.raw);
        let soa = &self.authority[0];
        assert_eq!(
            (soa.name.as_str(), soa.rtype.as_str()),
            ("shop.example.", "SOA"),
            "{}",
            self.raw
        );
        assert_eq!(soa.ttl, NEGATIVE_TTL_S, "{}", self.raw);
    }
}

/// Runs `dig @127.0.0.1 -p PORT +norecurse … ARGS` and parses its output.
/// Fails, rather than skips, when `dig` is missing: CI installs it.
pub fn dig(port: u16, args: &[&str]) -> Dig {
    let port = port.to_string();
    let output = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port,
            "+norecurse",
            "+tries=1",
            "+time=3",
        ])
        .args([
            "+noall",
            "+comments",
            "+answer",
            "+authority",
            "+additional",
        ])
        .args(args)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`dig` is not installed. The DNS authority's tests query it with the real client: \
             install Debian's dnsutils (`apt-get install dnsutils`; `cargo xtask test` does)"
        ),
        Err(e) => panic!("could not run dig: {e}"),
    };
    let raw = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "dig {args:?} failed ({}):\n{raw}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    parse(raw)
}

fn parse(raw: String) -> Dig {
    let mut dig = Dig {
        status: String::new(),
        flags: Vec::new(),
        answer: Vec::new(),
        authority: Vec::new(),
        additional: Vec::new(),
        client_subnet: None,
        raw: String::new(),
    };
    #[derive(Clone, Copy)]
    enum Section {
        None,
        Answer,
        Authority,
        Additional,
    }
    let mut section = Section::None;
    for line in raw.lines() {
        if let Some(rest) = line.split_once("status: ").map(|(_, r)| r) {
            dig.status = rest.split(',').next().unwrap_or_default().trim().to_owned();
        } else if let Some(rest) = line.strip_prefix(";; flags:") {
            let flags = rest.split(';').next().unwrap_or_default();
            dig.flags = flags.split_whitespace().map(str::to_owned).collect();
        } else if let Some(rest) = line.strip_prefix("; CLIENT-SUBNET:") {
            dig.client_subnet = Some(rest.trim().to_owned());
        } else if line.starts_with(";; ANSWER SECTION") {
            section = Section::Answer;
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = Section::Authority;
        } else if line.starts_with(";; ADDITIONAL SECTION") {
            section = Section::Additional;
        } else if line.trim().is_empty() || line.starts_with(';') {
            if line.trim().is_empty() {
                section = Section::None;
            }
        } else {
            let mut fields = line.split_whitespace();
            let (Some(name), Some(ttl), Some(class), Some(rtype)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                panic!("unexpected dig line {line:?} in:\n{raw}");
            };
            let rr = Rr {
                name: name.to_owned(),
                ttl: ttl
                    .parse()
                    .unwrap_or_else(|_| panic!("bad TTL in {line:?}")),
                class: class.to_owned(),
                rtype: rtype.to_owned(),
                data: fields.collect::<Vec<_>>().join(" "),
            };
            match section {
                Section::Answer => dig.answer.push(rr),
                Section::Authority => dig.authority.push(rr),
                Section::Additional => dig.additional.push(rr),
                Section::None => panic!("record outside a section: {line:?} in:\n{raw}"),
            }
        }
    }
    dig.raw = raw;
    dig
}

/// Parses an address from dig's output, for comparisons that ignore
/// formatting.
pub fn ip(text: &str) -> IpAddr {
    text.parse()
        .unwrap_or_else(|_| panic!("{text:?} is not an address"))
}
