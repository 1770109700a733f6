//! The routing table's helpers: failover order, nearest region, distance.

use topology::routing::{Health, RegionStatus, RoutingTable, ShardRoute, great_circle_km};

fn region(name: &str, lat: f64, lon: f64, health: Health) -> RegionStatus {
    RegionStatus {
        name: name.parse().expect("valid name"),
        latitude: lat,
        longitude: lon,
        health,
        base_url: format!("http://{name}"),
        addresses: vec![],
        probe_latency_ms: None,
    }
}

fn table(us: Health, eu: Health, ap: Health) -> RoutingTable {
    RoutingTable {
        version: 1,
        regions: vec![
            region("us-east", 39.0, -77.5, us),
            region("eu-west", 53.3, -6.3, eu),
            region("ap-southeast", 1.35, 103.8, ap),
        ],
        shards: vec![ShardRoute {
            shard: "us".parse().expect("valid name"),
            home: "us-east".parse().expect("valid name"),
            standbys: vec![
                "eu-west".parse().expect("valid name"),
                "ap-southeast".parse().expect("valid name"),
            ],
            active: Some("us-east".parse().expect("valid name")),
        }],
        pops: Vec::new(),
    }
}

#[test]
fn distances_are_plausible() {
    // Dublin to Ashburn is about 5,500 km; a point to itself is 0.
    let d = great_circle_km(53.3, -6.3, 39.0, -77.5);
    assert!((5_300.0..5_800.0).contains(&d), "{d}");
    assert!(great_circle_km(1.0, 2.0, 1.0, 2.0).abs() < 1e-9);
}

#[test]
fn nearest_prefers_healthy_then_degraded_and_skips_the_rest() {
    let t = table(Health::Healthy, Health::Healthy, Health::Healthy);
    assert_eq!(
        t.nearest_serving(51.5, -0.1).unwrap().name.as_str(),
        "eu-west"
    );
    let t = table(Health::Healthy, Health::Drained, Health::Healthy);
    assert_eq!(
        t.nearest_serving(51.5, -0.1).unwrap().name.as_str(),
        "us-east"
    );
    let t = table(Health::Degraded, Health::Down, Health::Healthy);
    assert_eq!(
        t.nearest_serving(51.5, -0.1).unwrap().name.as_str(),
        "ap-southeast"
    );
    let t = table(Health::Down, Health::Drained, Health::Down);
    assert!(t.nearest_serving(51.5, -0.1).is_none());
}

#[test]
fn next_after_skips_regions_that_do_not_serve() {
    let shard = "us".parse().expect("valid name");
    let t = table(Health::Down, Health::Down, Health::Healthy);
    assert_eq!(
        t.next_after(&shard, &"us-east".parse().expect("valid name"))
            .unwrap()
            .name
            .as_str(),
        "ap-southeast"
    );
    assert!(
        t.next_after(&shard, &"ap-southeast".parse().expect("valid name"))
            .is_none()
    );
    assert_eq!(t.active_region(&shard).unwrap().name.as_str(), "us-east");
}

#[test]
fn table_round_trips_through_serde() {
    let t = table(Health::Healthy, Health::Degraded, Health::Drained);
    let text = toml::to_string(&t).unwrap();
    let back: RoutingTable = toml::from_str(&text).unwrap();
    assert_eq!(back, t);
}
