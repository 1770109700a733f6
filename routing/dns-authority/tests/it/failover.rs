//! Answers follow the routing table the moment it changes: failover to a
//! standby, recovery, drained and down regions.

use topology::routing::Health;

use crate::harness::{AP_SOUTHEAST_V4, EU_WEST_V4, TestServer, US_EAST_V4, active, set_health};

#[test]
fn shard_answer_moves_to_the_standby_when_its_home_goes_down_and_back() {
    let server = TestServer::start();
    let before = server.dig(&["eu.shard.shop.example.", "A"]);
    assert_eq!(before.answers("A"), [EU_WEST_V4], "{}", before.raw);

    server.update(|table| {
        set_health(table, "eu-west", Health::Down);
        assert_eq!(active(table, "eu").as_deref(), Some("us-east"));
    });
    let after = server.dig(&["eu.shard.shop.example.", "A"]);
    assert_eq!(after.status, "NOERROR", "{}", after.raw);
    assert!(after.has_flag("aa"), "{}", after.raw);
    assert_eq!(after.answers("A"), [US_EAST_V4], "{}", after.raw);

    // The down region itself has no answer, and Dublin's clients go to the
    // nearest region that serves.
    server
        .dig(&["eu-west.api.shop.example.", "A"])
        .assert_negative("NOERROR");
    let api = server.dig(&["api.shop.example.", "A", "+subnet=10.2.0.0/24"]);
    assert_eq!(api.answers("A"), [US_EAST_V4], "{}", api.raw);

    server.update(|table| set_health(table, "eu-west", Health::Healthy));
    let recovered = server.dig(&["eu.shard.shop.example.", "A"]);
    assert_eq!(recovered.answers("A"), [EU_WEST_V4], "{}", recovered.raw);
}

#[test]
fn a_drained_region_gets_no_answers_and_is_never_chosen() {
    let server = TestServer::start();
    let before = server.dig(&["api.shop.example.", "A", "+subnet=10.3.0.0/24"]);
    assert_eq!(before.answers("A"), [AP_SOUTHEAST_V4], "{}", before.raw);

    server.update(|table| set_health(table, "ap-southeast", Health::Drained));

    // Its own name exists but is empty: NOERROR, no answer, SOA.
    server
        .dig(&["ap-southeast.api.shop.example.", "A"])
        .assert_negative("NOERROR");
    // Singapore's clients, and loopback (mapped near Singapore), go to the
    // nearest region that serves: Dublin is nearer than Ashburn.
    for args in [
        &["api.shop.example.", "A", "+subnet=10.3.0.0/24"][..],
        &["api.shop.example.", "A"],
    ] {
        let api = server.dig(args);
        assert_eq!(api.answers("A"), [EU_WEST_V4], "{}", api.raw);
    }
    // Its shard is served by the first standby.
    let shard = server.dig(&["ap.shard.shop.example.", "A"]);
    assert_eq!(shard.answers("A"), [US_EAST_V4], "{}", shard.raw);
}

#[test]
fn a_degraded_region_serves_but_a_healthy_one_is_preferred() {
    let server = TestServer::start();
    server.update(|table| set_health(table, "eu-west", Health::Degraded));
    // Still serving, so its shard stays home and its name answers…
    let shard = server.dig(&["eu.shard.shop.example.", "A"]);
    assert_eq!(shard.answers("A"), [EU_WEST_V4], "{}", shard.raw);
    let region = server.dig(&["eu-west.api.shop.example.", "A"]);
    assert_eq!(region.answers("A"), [EU_WEST_V4], "{}", region.raw);
    // …but `api` sends even Dublin's clients to a healthy region.
    let api = server.dig(&["api.shop.example.", "A", "+subnet=10.2.0.0/24"]);
    assert_eq!(api.answers("A"), [US_EAST_V4], "{}", api.raw);
}

#[test]
fn nothing_serving_means_no_address_not_an_error() {
    let server = TestServer::start();
    server.update(|table| {
        for region in ["us-east", "eu-west", "ap-southeast"] {
            set_health(table, region, Health::Down);
        }
        assert_eq!(active(table, "us"), None);
    });
    server
        .dig(&["api.shop.example.", "A", "+subnet=10.1.0.0/24"])
        .assert_negative("NOERROR");
    server
        .dig(&["us.shard.shop.example.", "A"])
        .assert_negative("NOERROR");
}

#[test]
fn names_appear_and_disappear_with_the_table() {
    let server = TestServer::start();
    server.dig(&["eu.shard.shop.example.", "A"]);
    server.update(|table| {
        table.shards.retain(|s| s.shard.as_str() != "eu");
        table.regions.retain(|r| r.name.as_str() != "ap-southeast");
        table.version += 1;
    });
    server
        .dig(&["eu.shard.shop.example.", "A"])
        .assert_negative("NXDOMAIN");
    server
        .dig(&["ap-southeast.api.shop.example.", "A"])
        .assert_negative("NXDOMAIN");
}
