//! A private PostgreSQL cluster for the benchmarks' reference runs:
//! initdb in a tempdir (as the `postgres` user when running as root), then
//! `postgres` on a free 127.0.0.1 port with no Unix socket, fsync and
//! synchronous commit on; stopped and deleted when dropped. Included by
//! `regional-server`'s and `recommend`'s benchmarks (`#[path]`).

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

const PG_INITDB_TIMEOUT: Duration = Duration::from_secs(120);
const PG_START_TIMEOUT: Duration = Duration::from_secs(30);
const PG_STOP_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The newest PostgreSQL under Debian's `/usr/lib/postgresql/<version>/bin`.
pub fn postgres_bin() -> anyhow::Result<(u32, PathBuf)> {
    let root = Path::new("/usr/lib/postgresql");
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in std::fs::read_dir(root).with_context(|| {
        format!(
            "no {} (Debian's postgresql; `cargo xtask bench-regional` installs it)",
            root.display()
        )
    })? {
        let entry = entry?;
        let Some(version) = entry
            .file_name()
            .to_str()
            .and_then(|v| v.parse::<u32>().ok())
        else {
            continue;
        };
        let bin = entry.path().join("bin");
        if bin.join("postgres").exists()
            && bin.join("initdb").exists()
            && best.as_ref().is_none_or(|(v, _)| version > *v)
        {
            best = Some((version, bin));
        }
    }
    best.with_context(|| format!("no postgres and initdb under {}/*/bin", root.display()))
}

pub fn output_of(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    ensure!(
        out.status.success(),
        "`{program} {}` failed",
        args.join(" ")
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The user to run PostgreSQL as: `postgres` when we are root (PostgreSQL
/// refuses to run as root), else ourselves.
pub fn postgres_user() -> anyhow::Result<Option<(u32, u32)>> {
    if output_of("id", &["-u"])? != "0" {
        return Ok(None);
    }
    let uid = output_of("id", &["-u", "postgres"])
        .context("running as root needs the postgres user (Debian's postgresql creates it)")?;
    let gid = output_of("id", &["-g", "postgres"])?;
    Ok(Some((uid.parse()?, gid.parse()?)))
}

pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A private PostgreSQL cluster, stopped and deleted when dropped.
#[derive(Debug)]
pub struct PgCluster {
    pub child: Child,
    pub port: u16,
    pub version: u32,
    pub log: PathBuf,
    // Dropped after `drop` has stopped the server.
    _dir: tempfile::TempDir,
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // A fast shutdown (SIGINT): roll back, checkpoint, exit. Then kill
        // if it has not gone in time.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + PG_STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl PgCluster {
    /// initdb in a tempdir, then `postgres` on a free 127.0.0.1 port
    /// (durable: fsync and synchronous commit on), waiting until it
    /// accepts connections.
    /// `settings`: more `-c name=value` server settings (memory for a
    /// batch query, say).
    pub async fn start(
        max_connections: usize,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<PgCluster> {
        let (version, bin) = postgres_bin()?;
        let user = postgres_user()?;
        let dir = tempfile::tempdir().context("creating the cluster's tempdir")?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        if let Some((uid, gid)) = user {
            // The postgres user must reach its data directory, which it owns.
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
            std::os::unix::fs::chown(&data, Some(uid), Some(gid))?;
        }
        let command = |program: &str| {
            let mut cmd = Command::new(bin.join(program));
            // Its own working directory: it must be readable as postgres.
            cmd.current_dir(dir.path()).stdin(Stdio::null());
            if let Some((uid, gid)) = user {
                cmd.uid(uid).gid(gid);
            }
            cmd
        };
        let init_log = dir.path().join("initdb.log");
        let mut initdb = command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "bench", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .stdout(File::create(&init_log)?)
            .stderr(File::create(dir.path().join("initdb.err"))?)
            .spawn()
            .context("running initdb")?;
        let deadline = Instant::now() + PG_INITDB_TIMEOUT;
        let status = loop {
            if let Some(status) = initdb.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = initdb.kill();
                let _ = initdb.wait();
                bail!("initdb did not finish within {PG_INITDB_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        ensure!(
            status.success(),
            "initdb failed with {status}: {}",
            log_tail(&dir.path().join("initdb.err"))
        );

        let port = free_port()?;
        let log = dir.path().join("postgres.log");
        let log_file = File::create(&log)?;
        let child = command("postgres")
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            // TCP on loopback only: no Unix socket anywhere.
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "fsync=on", "-c", "synchronous_commit=on"])
            .args(["-c", &format!("max_connections={max_connections}")])
            .args(
                settings
                    .iter()
                    .flat_map(|(k, v)| ["-c".to_owned(), format!("{k}={v}")]),
            )
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .context("running postgres")?;
        let mut cluster = PgCluster {
            child,
            port,
            version,
            log,
            _dir: dir,
        };
        // `cluster` stops the server when dropped, on every early return.
        let deadline = Instant::now() + PG_START_TIMEOUT;
        loop {
            if let Some(status) = cluster.child.try_wait()? {
                bail!("postgres exited with {status}:\n{}", log_tail(&cluster.log));
            }
            if cluster.connect().await.is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "postgres did not accept connections within {PG_START_TIMEOUT:?}:\n{}",
                    log_tail(&cluster.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(cluster)
    }

    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        let config = format!(
            "host=127.0.0.1 port={} user=bench dbname=postgres connect_timeout=5",
            self.port
        );
        let (client, connection) = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_postgres::connect(&config, tokio_postgres::NoTls),
        )
        .await
        .context("connecting to postgres timed out")??;
        tokio::spawn(connection);
        Ok(client)
    }
}
