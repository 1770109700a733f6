//! A bound at every socket of the edge host: a slow client's connection is
//! closed, connections per POP are capped, a full instance pool answers
//! 503 with Retry-After, and a POP survives running out of file
//! descriptors.

use std::io::{BufRead, BufReader};

use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::world::{Shopper, World, WorldOptions, component};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_too_slow_with_its_headers_is_cut_off_and_frees_its_slot() {
    // One connection per POP, and 300 ms to send a request's headers.
    let world = World::start_with(WorldOptions {
        max_connections_per_pop: Some(1),
        header_read_timeout_ms: Some(300),
        ..Default::default()
    })
    .await;
    let dub = world.pop("dub");
    let addr = dub.trim_start_matches("http://").to_owned();
    // A slow client takes the POP's only connection and never finishes
    // its headers.
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    // The next client is served only once the slow one's slot is free.
    // (A safety bound only: without the timeout the request never ends.)
    let next = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        world.client.get(format!("{dub}/healthz")).send(),
    )
    .await
    .expect("the slow client's slot was never freed")
    .expect("send");
    assert_eq!(next.status().as_u16(), 200);
    // By then the POP had closed the slow connection: on loopback its FIN
    // is already queued here, so a read that must not wait sees the end.
    let mut buf = [0u8; 256];
    match slow.try_read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {}
        other => {
            panic!("the second client was served while the first held the only slot: {other:?}")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_instance_pool_answers_503_with_retry_after() {
    let world = World::start_with(WorldOptions {
        max_instances: Some(1),
        ..Default::default()
    })
    .await;
    let dub = world.pop("dub");
    let Shopper { token, cart_id, .. } = world.session_and_cart(&dub).await;
    // The only instance waits on a write the home region holds.
    let home = &world.regions[0].front;
    let before = home.writes().len();
    home.hold_writes();
    let write = tokio::spawn({
        let request = world
            .client
            .post(format!("{dub}/v1/carts/{cart_id}/items"))
            .bearer_auth(&token)
            .json(&json!({ "sku": "PEN-1", "qty": 1 }));
        async move { request.send().await }
    });
    home.writes_arrived(before + 1).await;
    // A request that needs an instance (a search is a miss) finds none.
    let busy = world
        .client
        .get(format!("{dub}/v1/search?q=busy"))
        .send()
        .await
        .expect("send");
    assert_eq!(busy.status().as_u16(), 503);
    assert_eq!(busy.headers()["retry-after"], "1");
    assert_eq!(busy.headers()["content-type"], "application/problem+json");
    home.release();
    let write = write.await.expect("join").expect("send");
    assert_eq!(write.status().as_u16(), 200);
    // The slot is free again.
    let again = world
        .client
        .get(format!("{dub}/v1/search?q=busy"))
        .send()
        .await
        .expect("send");
    assert_eq!(again.status().as_u16(), 200);
}

/// The real `edge-host` binary with 64 file descriptors: a flood of
/// connections makes accept fail (EMFILE); the POP logs, backs off and
/// serves again once they close, instead of ending.
#[test]
fn a_pop_survives_running_out_of_file_descriptors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "component = {:?}\nrouting_url = \"http://127.0.0.1:9\"\nedge_key = \"edge-host-test-key-0123456789\"\n\
             [[pops]]\nname = \"dub\"\nlisten = \"127.0.0.1:0\"\nlatitude = 53.35\nlongitude = -6.26\n",
            component()
        ),
    )
    .expect("config");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64 && exec {:?} --config {:?}",
            env!("CARGO_BIN_EXE_edge-host"),
            config
        ))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("edge-host");
    // Its banner and its log both go to stdout: the banner line names the
    // POP's address; the rest is kept (and drained, so the child never
    // blocks on a full pipe).
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .and_then(Result::ok)
            .expect("edge-host printed its POPs");
        if line.starts_with("POP ") {
            break line
                .split_whitespace()
                .last()
                .map(|url| url.trim_start_matches("http://").to_owned())
                .expect("address");
        }
    };
    let log =
        std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    // More connections than the process has descriptors.
    let flood: Vec<std::net::TcpStream> = (0..100)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    assert!(flood.len() > 64, "only {} connections", flood.len());
    drop(flood);
    // Still alive and serving.
    let mut healthy = false;
    for _ in 0..50 {
        if let Ok(mut stream) = std::net::TcpStream::connect(&addr) {
            use std::io::{Read, Write};
            let _ =
                stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                healthy = true;
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let exited = child.try_wait().expect("status");
    let _ = child.kill();
    let _ = child.wait();
    let log = log.join().expect("log");
    assert!(exited.is_none(), "edge-host exited: {exited:?}\n{log}");
    assert!(healthy, "the POP never served again\n{log}");
    assert!(log.contains("accept failed"), "accept never failed:\n{log}");
}

/// A guest that loops forever is stopped at its CPU budget: the client
/// gets an answer, and the instance slot is free for the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_loops_is_stopped_at_its_budget() {
    let config = edge_host::HostConfig {
        component: crate::world::bad_guest(),
        routing_url: "http://127.0.0.1:9".into(),
        edge_key: "edge-host-test-key-0123456789".into(),
        max_instances: 1,
        max_kv_entries: 100,
        table_max_age_ms: 1_000,
        rate_limit: Default::default(),
        // Every request runs in an instance.
        fast_path: false,
        max_connections_per_pop: 16,
        header_read_timeout_ms: 10_000,
        guest_cpu_ms: 100,
        pops: vec![edge_host::PopConfig {
            name: "dub".into(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            latitude: 53.35,
            longitude: -6.26,
            variables: Default::default(),
            origin_rtt_ms: Default::default(),
        }],
    };
    let running = edge_host::start(&config, true).await.expect("edge host");
    let url = format!("http://{}/v1/products/ANY", running.pops[0].1);
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    for _ in 0..2 {
        // (A safety bound only: without the budget the guest never stops.)
        let answer =
            tokio::time::timeout(std::time::Duration::from_secs(60), client.get(&url).send())
                .await
                .expect("the looping guest was never stopped")
                .expect("send");
        // Stopped, not queued behind the first: the one slot came back.
        assert_eq!(answer.status().as_u16(), 502);
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
    }
    let write = client.post(&url).body("{}").send().await.expect("send");
    assert_eq!(
        write.status().as_u16(),
        504,
        "a write may have been forwarded"
    );
    running.stop().await;
}
