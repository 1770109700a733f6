//! Failover rules of the region table: active region, drains, versions,
//! timeline.

use routing::health::{HealthPolicy, ProbeOutcome};
use routing::table::EventKind;
use std::time::Duration;
use topology::routing::Health;

use crate::{region, table_with};

const OK: ProbeOutcome = ProbeOutcome::Ready {
    latency: Duration::from_millis(1),
};

fn policy() -> HealthPolicy {
    HealthPolicy {
        fall: 2,
        rise: 2,
        ..HealthPolicy::default()
    }
}

fn all_up(table: &routing::table::RegionTable) {
    for name in ["us-east", "eu-west", "ap-southeast"] {
        for _ in 0..2 {
            table.observe(&region(name), OK).unwrap();
        }
    }
}

fn active(table: &routing::table::RegionTable, shard: &str) -> Option<String> {
    table
        .snapshot()
        .shard(&shard.parse().unwrap())
        .unwrap()
        .active
        .as_ref()
        .map(|r| r.as_str().to_owned())
}

#[test]
fn shard_moves_to_first_serving_standby_and_back() {
    let table = table_with(policy());
    assert_eq!(
        active(&table, "us"),
        None,
        "nothing serves before probes pass"
    );
    all_up(&table);
    assert_eq!(active(&table, "us").as_deref(), Some("us-east"));
    for _ in 0..2 {
        table
            .observe(&region("us-east"), ProbeOutcome::Failed)
            .unwrap();
    }
    assert_eq!(active(&table, "us").as_deref(), Some("eu-west"));
    // eu-west also goes: the next standby takes the shard.
    for _ in 0..2 {
        table
            .observe(&region("eu-west"), ProbeOutcome::Failed)
            .unwrap();
    }
    assert_eq!(active(&table, "us").as_deref(), Some("ap-southeast"));
    assert_eq!(active(&table, "eu").as_deref(), Some("ap-southeast"));
    for _ in 0..2 {
        table.observe(&region("us-east"), OK).unwrap();
    }
    assert_eq!(active(&table, "us").as_deref(), Some("us-east"));
    assert_eq!(
        active(&table, "eu").as_deref(),
        Some("us-east"),
        "eu's first standby is us-east"
    );
}

#[test]
fn drained_region_gets_no_shard_and_is_not_nearest() {
    let table = table_with(policy());
    all_up(&table);
    table.set_drained(&region("eu-west"), true).unwrap();
    let snapshot = table.snapshot();
    assert_eq!(
        snapshot.region(&region("eu-west")).unwrap().health,
        Health::Drained
    );
    assert_eq!(active(&table, "eu").as_deref(), Some("us-east"));
    // Dublin's coordinates: eu-west would be nearest, but it is drained.
    assert_ne!(
        snapshot.nearest_serving(53.3, -6.3).unwrap().name.as_str(),
        "eu-west"
    );
    // Probes keep succeeding: still drained.
    table.observe(&region("eu-west"), OK).unwrap();
    assert_eq!(active(&table, "eu").as_deref(), Some("us-east"));
    table.set_drained(&region("eu-west"), false).unwrap();
    assert_eq!(active(&table, "eu").as_deref(), Some("eu-west"));
}

#[test]
fn version_increases_on_every_change_only() {
    let table = table_with(policy());
    let v0 = table.snapshot().version;
    table.observe(&region("us-east"), OK).unwrap();
    assert_eq!(table.snapshot().version, v0, "no change, same version");
    table.observe(&region("us-east"), OK).unwrap();
    let v1 = table.snapshot().version;
    assert!(v1 > v0);
    table.set_drained(&region("us-east"), true).unwrap();
    table.set_drained(&region("us-east"), true).unwrap();
    assert_eq!(table.snapshot().version, v1 + 1);
}

#[test]
fn timeline_records_region_and_shard_changes_and_is_bounded() {
    let table = table_with(policy());
    all_up(&table);
    for _ in 0..2 {
        table
            .observe(&region("us-east"), ProbeOutcome::Failed)
            .unwrap();
    }
    let events = table.events(10);
    let last = &events[events.len() - 2..];
    assert!(
        matches!(&last[0].kind, EventKind::RegionHealth { region, to: Health::Down, .. } if region.as_str() == "us-east")
    );
    assert!(
        matches!(&last[1].kind, EventKind::ShardMoved { shard, to: Some(to), .. } if shard.as_str() == "us" && to.as_str() == "eu-west")
    );
    for _ in 0..(routing::table::MAX_EVENTS) {
        table.set_drained(&region("ap-southeast"), true).unwrap();
        table.set_drained(&region("ap-southeast"), false).unwrap();
    }
    assert_eq!(table.events(usize::MAX).len(), routing::table::MAX_EVENTS);
}

#[test]
fn unknown_region_is_an_error() {
    let table = table_with(policy());
    assert!(table.set_drained(&region("mars"), true).is_err());
}
