//! The same answers over TCP.

use topology::routing::Health;

use crate::harness::{EU_WEST_V4, TestServer, US_EAST_V4, set_health};

#[test]
fn soa_and_ns_over_tcp() {
    let server = TestServer::start();
    let soa = server.dig_tcp(&["shop.example.", "SOA"]);
    assert_eq!(soa.status, "NOERROR", "{}", soa.raw);
    assert!(soa.has_flag("aa"), "{}", soa.raw);
    assert_eq!(soa.answers("SOA").len(), 1, "{}", soa.raw);
    let ns = server.dig_tcp(&["shop.example.", "NS"]);
    assert_eq!(ns.answers("NS").len(), 3, "{}", ns.raw);
}

#[test]
fn api_by_client_subnet_over_tcp() {
    let server = TestServer::start();
    let near_us = server.dig_tcp(&["api.shop.example.", "A", "+subnet=10.1.0.0/24"]);
    assert!(near_us.has_flag("aa"), "{}", near_us.raw);
    assert_eq!(near_us.answers("A"), [US_EAST_V4], "{}", near_us.raw);
    let near_eu = server.dig_tcp(&["api.shop.example.", "A", "+subnet=10.2.0.0/24"]);
    assert_eq!(near_eu.answers("A"), [EU_WEST_V4], "{}", near_eu.raw);
    assert_eq!(
        near_eu.client_subnet.as_deref(),
        Some("10.2.0.0/24/16"),
        "{}",
        near_eu.raw
    );
}

#[test]
fn shard_failover_over_tcp() {
    let server = TestServer::start();
    let before = server.dig_tcp(&["eu.shard.shop.example.", "A"]);
    assert_eq!(before.answers("A"), [EU_WEST_V4], "{}", before.raw);
    server.update(|table| set_health(table, "eu-west", Health::Down));
    let after = server.dig_tcp(&["eu.shard.shop.example.", "A"]);
    assert_eq!(after.answers("A"), [US_EAST_V4], "{}", after.raw);
}

#[test]
fn negative_answers_over_tcp() {
    let server = TestServer::start();
    server
        .dig_tcp(&["nope.shop.example.", "A"])
        .assert_negative("NXDOMAIN");
    server
        .dig_tcp(&["api.shop.example.", "TXT"])
        .assert_negative("NOERROR");
    let refused = server.dig_tcp(&["example.com.", "A"]);
    assert_eq!(refused.status, "REFUSED", "{}", refused.raw);
}
