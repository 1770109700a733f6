//! `meridian recommend` and `up`'s schedule. Both run
//! `meridian-recommend`, the recommendations job's own command (the
//! `recommend` crate: DataFusion and Ballista are linked there, never
//! here), which reaches the regions through the routing table and their
//! admin API. A running `up` holds the embedded stores locked, so the job
//! cannot open them itself; against FoundationDB the same API is used, so
//! there is one way a set is written.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;

/// The environment variable the job reads the regions' admin token from.
pub const TOKEN_ENV: &str = "MERIDIAN_ADMIN_TOKEN";

/// Where `meridian-recommend` is (built first when it must be).
pub fn command() -> anyhow::Result<PathBuf> {
    crate::build::recommend_command()?.context(
        "meridian-recommend is neither beside this executable nor buildable here \
         (build it with `cargo build -p recommend --bin meridian-recommend`)",
    )
}

/// `meridian recommend ARGS`: one run of the job (its own `--help` lists
/// ARGS). Without `--token` or the environment's token, the local
/// stack's (from `infra/local/meridian.toml` when it is here) is used.
pub fn run_cli(args: Vec<String>) -> anyhow::Result<()> {
    let mut job = Command::new(command()?);
    job.args(&args);
    let has_token = args
        .iter()
        .any(|a| a == "--token" || a.starts_with("--token="));
    if !has_token
        && std::env::var_os(TOKEN_ENV).is_none()
        && let Some(token) = local_admin_token()
    {
        job.env(TOKEN_ENV, token);
    }
    let status = job.status().context("running meridian-recommend")?;
    anyhow::ensure!(status.success(), "meridian-recommend failed ({status})");
    Ok(())
}

/// The admin token of the local stack's first region, when its config is
/// in this directory.
fn local_admin_token() -> Option<String> {
    let loaded = crate::config::load(std::path::Path::new("infra/local/meridian.toml")).ok()?;
    let region = regional_server::config::load(loaded.regions.first()?, |_| None).ok()?;
    Some(region.config.secrets.admin_token).filter(|t| !t.is_empty())
}

/// `up`'s schedule: `meridian-recommend --every S` as a child process
/// (built first when it must be), stopped when this is dropped.
#[derive(Debug)]
pub struct Schedule {
    child: Arc<Mutex<Option<Child>>>,
    stopped: Arc<AtomicBool>,
}

impl Schedule {
    /// Starts the schedule in the background against the routing API at
    /// `routing` with the regions' admin `token`, running `command` (or
    /// the one [`command`] finds); `None` when the config turns it off.
    pub fn start(
        config: &crate::config::RecommendConfig,
        routing: &str,
        token: &str,
        command: Option<PathBuf>,
    ) -> Option<Schedule> {
        if config.every_s == 0 {
            return None;
        }
        let schedule = Schedule {
            child: Arc::new(Mutex::new(None)),
            stopped: Arc::new(AtomicBool::new(false)),
        };
        let (child, stopped) = (schedule.child.clone(), schedule.stopped.clone());
        let mut args = vec![
            "--routing".to_owned(),
            routing.to_owned(),
            "--engine".to_owned(),
            config.engine.clone(),
            "--every".to_owned(),
            config.every_s.max(10).to_string(),
            "--exit-with-parent".to_owned(),
        ];
        if let Some(dir) = &config.dir {
            args.push("--dir".into());
            args.push(dir.display().to_string());
        }
        let token = token.to_owned();
        // Building the command can take minutes on a fresh clone: the
        // stack serves meanwhile.
        std::thread::spawn(move || {
            let path = match command {
                Some(path) => Ok(path),
                None => self::command(),
            };
            let started = path.and_then(|path| {
                let mut slot = child.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                if stopped.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let spawned = Command::new(path)
                    .args(&args)
                    .env(TOKEN_ENV, token)
                    .stdin(Stdio::null())
                    .spawn()
                    .context("starting meridian-recommend")?;
                *slot = Some(spawned);
                Ok(())
            });
            if let Err(e) = started {
                eprintln!("the recommendations' schedule is off: {e:#}");
            }
        });
        Some(schedule)
    }
}

impl Schedule {
    /// The job's process id, once it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().ok()?.as_ref().map(Child::id)
    }
}

impl Drop for Schedule {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Ok(mut slot) = self.child.lock()
            && let Some(mut child) = slot.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
