//! The edge's other runtime, the Cloudflare Worker (`edge/edge-worker`),
//! run on this machine by `wrangler dev` (workerd from npm, no account),
//! the way a developer runs it beside the local platform. Tests start it
//! through here too. Its build is `cargo xtask build-worker`, which
//! wrangler runs itself (wrangler.toml's build command).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// What `wrangler dev` runs with.
#[derive(Debug, Clone)]
pub struct WranglerOptions {
    /// The repository's root (its `edge/edge-worker` is run).
    pub workspace: PathBuf,
    /// The routing API the Worker learns the regions from.
    pub routing_url: String,
    /// The key the Worker signs its calls to the regions with.
    pub edge_key: String,
    /// A wrangler.toml environment (`staging`, `production`); `None` runs
    /// its top-level (local) settings.
    pub stage: Option<String>,
    /// More `--var NAME:VALUE`s (e.g. `POP`, `SYNC_STALE_MS`).
    pub vars: Vec<(String, String)>,
    /// Where workerd keeps its state (caches, key-value).
    pub persist_to: PathBuf,
}

/// A running `wrangler dev`, in a process group of its own; dropped, the
/// group (wrangler and workerd) is stopped.
#[derive(Debug)]
pub struct Wrangler {
    child: Child,
    /// Where the Worker answers (`http://127.0.0.1:PORT`).
    pub url: String,
}

impl Drop for Wrangler {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        // Its grace period before the group is killed outright.
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// The Worker's crate in `workspace`.
pub fn worker_dir(workspace: &Path) -> PathBuf {
    workspace.join("edge/edge-worker")
}

/// Builds the Worker (`cargo xtask build-worker`: npm packages,
/// worker-build and wasm-bindgen where missing), once per process.
pub fn build(workspace: &Path) -> anyhow::Result<()> {
    static BUILT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if *built {
        return Ok(());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args(["xtask", "build-worker"])
        .status()
        .context("running cargo xtask build-worker")?;
    if !status.success() {
        bail!("building the Worker failed: {status}");
    }
    *built = true;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Wrangler {
    /// Builds the Worker and starts `wrangler dev` on a free 127.0.0.1
    /// port.
    pub fn start(options: &WranglerOptions) -> anyhow::Result<Wrangler> {
        use std::os::unix::process::CommandExt;
        build(&options.workspace)?;
        let dir = worker_dir(&options.workspace);
        let port = free_port()?;
        let inspector = free_port()?;
        let mut command = Command::new(dir.join("node_modules/.bin/wrangler"));
        command
            .current_dir(&dir)
            .args(["dev", "--local", "--ip", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(["--inspector-port", &inspector.to_string()])
            .arg("--persist-to")
            .arg(&options.persist_to)
            .args([
                "--show-interactive-dev-session=false",
                "--log-level",
                "warn",
            ])
            .args(["--var", &format!("ROUTING_URL:{}", options.routing_url)])
            .args(["--var", &format!("EDGE_KEY:{}", options.edge_key)]);
        if let Some(stage) = &options.stage {
            command.args(["--env", stage]);
        }
        for (name, value) in &options.vars {
            command.args(["--var", &format!("{name}:{value}")]);
        }
        let child = command
            .env("WRANGLER_SEND_METRICS", "false")
            // No internet here: miniflare would fetch `Request.cf` data.
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("CI", "true")
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| {
                format!(
                    "starting wrangler dev (npm ci in {} installs it)",
                    dir.display()
                )
            })?;
        Ok(Wrangler {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// Waits, at most `limit` (wrangler runs the build command first),
    /// until the Worker answers its health route; gives the POP it names.
    pub async fn ready(
        &mut self,
        client: &reqwest::Client,
        limit: Duration,
    ) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("wrangler dev exited early: {status}");
            }
            if let Ok(r) = client.get(format!("{}/healthz", self.url)).send().await
                && r.status().is_success()
            {
                let body: serde_json::Value =
                    serde_json::from_str(&r.text().await.context("the health answer")?)
                        .context("the health answer")?;
                return Ok(body["pop"].as_str().unwrap_or_default().to_owned());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!("wrangler dev never served {} within {limit:?}", self.url)
    }
}
