//! The `regional-server` binary stops cleanly on SIGTERM, as Kubernetes
//! stops a pod: it drains and exits 0 instead of dying on the signal.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let topology = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../infra/local/topology.toml")
        .canonicalize()
        .expect("topology");
    let config = dir.path().join("region.toml");
    std::fs::write(
        &config,
        format!(
            "region = \"us-east\"\nlisten = \"127.0.0.1:0\"\ntopology = {:?}\ncatalog_shard = \"us\"\n\
             [storage]\nengine = \"embedded\"\ndir = \"data\"\n\
             [secrets]\nedge_key = \"process-test-edge-key\"\nsession_key = \"process-test-session-key\"\n",
            topology.display().to_string()
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_regional-server"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("MERIDIAN_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn regional-server");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // Up once it logs its address (the reader ends if it exits first).
    let up = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("regional service up"));
    assert!(up.is_some(), "regional-server exited before serving");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    // The log ends when the process exits; a bound (not a timing
    // assertion) keeps a process that ignores the signal from hanging CI.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(lines.map_while(Result::ok).collect::<Vec<String>>());
    });
    let Ok(rest) = rx.recv_timeout(std::time::Duration::from_secs(120)) else {
        let _ = child.kill();
        panic!("regional-server still running two minutes after SIGTERM");
    };
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "exit {exit:?}; log: {rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("SIGTERM")),
        "no stop logged: {rest:?}"
    );
}
