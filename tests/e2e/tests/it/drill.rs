//! `meridian drill` on the whole platform: a short region outage under
//! shopper load through the POPs, with writes for the failed region's
//! shard issued during the fault, every invariant checked against the data,
//! and the reports (Markdown and HTML) written; a cluster recovery pause
//! that delays the first write.

use crate::support::{cli, local_platform};

/// A short region-outage drill on the whole platform under shopper load:
/// the outage is detected, writes for the region's shard succeed again,
/// every invariant holds against the data, and the report says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_outage_drill_keeps_every_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let mut platform = local_platform(&dir, 200).await;
    let api = format!("http://{}", platform.routing_api.expect("routing"));
    // An SRE follows the drill live at the routing layer: figures arrive
    // while the fault is still on (before the "fault removed" moment).
    let (posted, id) = tokio::sync::oneshot::channel::<String>();
    let follower = {
        let api = api.clone();
        tokio::spawn(async move {
            let id = id.await.expect("the drill's id at the routing layer");
            let client = crate::support::client();
            let mut version = 0;
            // Bounded: each long poll answers at a change or its timeout.
            for _ in 0..100 {
                let drill = routing::client::drill_watch(&client, &api, &id, version, 30_000)
                    .await
                    .expect("watch");
                if drill.summary.state != routing::drills::DrillState::Running
                    || drill.timeline.iter().any(|m| m.what == "fault removed")
                {
                    return false;
                }
                if !drill.seconds.is_empty() {
                    return true;
                }
                version = drill.summary.version;
            }
            false
        })
    };
    let outcome = meridian::drill::run(
        &mut platform,
        meridian::drill::DrillOptions {
            scenario: meridian::drill::Scenario::RegionOutage,
            region: "eu-west".parse().unwrap(),
            duration: std::time::Duration::from_secs(8),
            fault_at: std::time::Duration::from_secs(2),
            fault_for: std::time::Duration::from_secs(3),
            rate: 30.0,
            shoppers: 9,
            seed: 5,
            cluster_recovery: std::time::Duration::ZERO,
            catalog_changes: 3,
        },
        Some(posted),
    )
    .await
    .unwrap();
    assert!(
        follower.await.expect("follower"),
        "per-second figures reached the routing layer during the fault"
    );
    let report = meridian::drill::report::markdown(&outcome);
    assert!(outcome.passed(), "{report}");
    // Both reports, as `meridian drill --out` writes them.
    let out = dir.path().join("report");
    let [md, html] = meridian::drill::report::write(&outcome, &out).unwrap();
    assert_eq!(std::fs::read_to_string(md).unwrap(), report);
    let page = std::fs::read_to_string(html).unwrap();
    assert!(page.contains("PASSED") && page.matches("<svg").count() == 4);
    for pop in meridian::drill::report::pops(&outcome) {
        assert!(page.contains(&format!("\n{pop}\n</text>")), "{pop} charted");
    }
    // Posted to the routing layer as it ran: listed, its timeline, every
    // second's figures, its report.
    let id = outcome
        .posted_as
        .clone()
        .expect("posted to the routing layer");
    let client = crate::support::client();
    let listed = routing::client::drills(&client, &api).await.unwrap();
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].state, routing::drills::DrillState::Passed);
    let posted = routing::client::drill_watch(&client, &api, &id, 0, 1)
        .await
        .unwrap();
    assert!(
        posted
            .timeline
            .iter()
            .any(|m| m.what.starts_with("fault injected")),
        "{:?}",
        posted.timeline
    );
    assert_eq!(
        posted.timeline.len(),
        outcome.timeline.len(),
        "{:?}",
        posted.timeline
    );
    let all: u64 = posted
        .seconds
        .iter()
        .filter(|s| s.pop == meridian::drill::report::ALL_POPS)
        .map(|s| s.requests)
        .sum();
    assert_eq!(all, outcome.records.len() as u64);
    let served = client
        .get(format!("{api}/v1/drills/{id}/report.html"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(served, page);
    assert!(outcome.detection_ms.is_some(), "{report}");
    assert!(outcome.first_write_ms.is_some(), "{report}");
    // Writes for the failed region's shard were issued during the fault.
    let (fault, healed) = (2_000, 5_000);
    assert!(
        outcome.records.iter().any(|r| r.shard == "eu"
            && r.action.is_write()
            && r.at_ms >= fault
            && r.at_ms < healed),
        "{report}"
    );
    assert!(
        report.contains("PASSED") && report.contains("## Invariants"),
        "{report}"
    );
    platform.stop().await.unwrap();
}

/// With a cluster recovery pause, no write for the dead region's shard can
/// succeed before the shard's cluster is back (a lower bound from the
/// model), and every invariant still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_recovery_pause_delays_the_first_write_and_breaks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut platform = local_platform(&dir, 200).await;
    let pause = std::time::Duration::from_secs(2);
    let outcome = meridian::drill::run(
        &mut platform,
        meridian::drill::DrillOptions {
            scenario: meridian::drill::Scenario::RegionOutage,
            region: "eu-west".parse().unwrap(),
            duration: std::time::Duration::from_secs(9),
            fault_at: std::time::Duration::from_secs(2),
            fault_for: std::time::Duration::from_secs(4),
            rate: 30.0,
            shoppers: 9,
            seed: 6,
            cluster_recovery: pause,
            catalog_changes: 0,
        },
        None,
    )
    .await
    .unwrap();
    let report = meridian::drill::report::markdown(&outcome);
    assert!(outcome.passed(), "{report}");
    let first = outcome
        .first_write_ms
        .expect("a write succeeded after the pause");
    assert!(first >= pause.as_millis() as u64, "{first} ms: {report}");
    assert!(report.contains("recovered in its remote DC"), "{report}");
    platform.stop().await.unwrap();
}

/// `meridian drill --target`: a drill against a running `meridian up` (a
/// process of its own), run there on its data; the CLI writes both
/// reports and exits 0 with every invariant holding; the routing layer of
/// that stack lists the drill; a wrong token and bad options are refused
/// before anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_against_a_running_up_reports_and_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::write_config(dir.path());
    let up = crate::support::Up::start(&config);
    crate::support::until_healthy(up.routing).await;
    let out = dir.path().join("report");
    let out_arg = out.to_str().unwrap().to_owned();
    let target = up.control.clone();
    let common = [
        "drill",
        "region-outage",
        "--region",
        "eu-west",
        "--target",
        &target,
        "--duration",
        "8",
        "--fault-at",
        "2",
        "--fault-for",
        "3",
        "--rate",
        "30",
        "--shoppers",
        "9",
        "--catalog-changes",
        "2",
        "--out",
        &out_arg,
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        common
            .iter()
            .chain(extra)
            .map(|a| (*a).to_owned())
            .collect()
    };

    let (ok, _, stderr) = cli(&with(&["--token", "wrong"])).await;
    assert!(!ok && stderr.contains("401"), "{stderr}");
    let (ok, _, stderr) = cli(&[
        "drill",
        "latency",
        "--target",
        "http://127.0.0.1:1",
        "--token",
        "x",
        "--fault-at",
        "40",
    ])
    .await;
    assert!(
        !ok && stderr.contains("the fault must end before the load does"),
        "{stderr}"
    );

    let (ok, stdout, stderr) = cli(&with(&["--token", crate::support::ADMIN])).await;
    assert!(ok, "{stdout}\n{stderr}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        md.contains("— PASSED") && md.contains("## Invariants"),
        "{md}"
    );
    assert_eq!(html.matches("<svg").count(), 4);

    let api = format!("http://{}", up.routing);
    let listed = routing::client::drills(&crate::support::client(), &api)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].state, routing::drills::DrillState::Passed);
    assert!(stdout.contains(&listed[0].id), "{stdout}");
    up.kill();
}
