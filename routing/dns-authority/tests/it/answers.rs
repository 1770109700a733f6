//! Positive answers: SOA, NS and glue, `api` by client location,
//! `<region>.api`, `<shard>.shard`, `www` (the nearest POP) and `<pop>.pop`.

use topology::routing::{Health, RegionStatus, RoutingTable};

use crate::harness::{
    AP_SOUTHEAST_V4, CONFIG, EU_WEST_V4, EU_WEST_V6, TestServer, US_EAST_V4, US_EAST_V6, ip, table,
};

#[test]
fn apex_soa() {
    let server = TestServer::start();
    let dig = server.dig(&["shop.example.", "SOA"]);
    assert_eq!(dig.status, "NOERROR", "{}", dig.raw);
    assert!(dig.has_flag("aa"), "{}", dig.raw);
    assert_eq!(dig.answer.len(), 1, "{}", dig.raw);
    let soa = &dig.answer[0];
    assert_eq!(
        (soa.name.as_str(), soa.rtype.as_str(), soa.ttl),
        ("shop.example.", "SOA", 3600)
    );
    assert_eq!(
        soa.data,
        "ns1.shop.example. hostmaster.shop.example. 42 3600 600 604800 30"
    );
}

#[test]
fn apex_ns_with_glue_for_in_zone_servers() {
    let server = TestServer::start();
    let dig = server.dig(&["shop.example.", "NS"]);
    assert_eq!(dig.status, "NOERROR", "{}", dig.raw);
    assert!(dig.has_flag("aa"), "{}", dig.raw);
    let mut ns = dig.answers("NS");
    ns.sort();
    // ns1 is configured twice (IPv4 and IPv6) but is one NS record.
    assert_eq!(
        ns,
        [
            "ns.elsewhere.example.",
            "ns1.shop.example.",
            "ns2.dns.shop.example."
        ]
    );
    let glue: Vec<(&str, &str, &str)> = dig
        .additional
        .iter()
        .map(|r| (r.name.as_str(), r.rtype.as_str(), r.data.as_str()))
        .collect();
    assert!(
        glue.contains(&("ns1.shop.example.", "A", "127.0.0.1")),
        "{}",
        dig.raw
    );
    assert!(
        glue.contains(&("ns1.shop.example.", "AAAA", "::1")),
        "{}",
        dig.raw
    );
    assert!(
        glue.contains(&("ns2.dns.shop.example.", "A", "127.0.0.2")),
        "{}",
        dig.raw
    );
    // The out-of-zone server has no glue.
    assert_eq!(glue.len(), 3, "{}", dig.raw);
}

#[test]
fn name_server_hosts_answer_their_addresses() {
    let server = TestServer::start();
    let a = server.dig(&["ns1.shop.example.", "A"]);
    assert!(a.has_flag("aa"), "{}", a.raw);
    assert_eq!(a.answers("A"), ["127.0.0.1"], "{}", a.raw);
    let aaaa = server.dig(&["ns1.shop.example.", "AAAA"]);
    assert_eq!(aaaa.answers("AAAA"), ["::1"], "{}", aaaa.raw);
}

#[test]
fn api_follows_the_client_subnet() {
    let server = TestServer::start();

    let near_us = server.dig(&["api.shop.example.", "A", "+subnet=10.1.0.0/24"]);
    assert_eq!(near_us.status, "NOERROR", "{}", near_us.raw);
    assert!(near_us.has_flag("aa"), "{}", near_us.raw);
    assert_eq!(near_us.answers("A"), [US_EAST_V4], "{}", near_us.raw);
    assert_eq!(near_us.answer[0].ttl, 5);
    // The option comes back with the scope the answer holds for: the /16
    // location block.
    assert_eq!(
        near_us.client_subnet.as_deref(),
        Some("10.1.0.0/24/16"),
        "{}",
        near_us.raw
    );

    let near_eu = server.dig(&["api.shop.example.", "A", "+subnet=10.2.0.0/24"]);
    assert_eq!(near_eu.answers("A"), [EU_WEST_V4], "{}", near_eu.raw);
    assert_eq!(
        near_eu.client_subnet.as_deref(),
        Some("10.2.0.0/24/16"),
        "{}",
        near_eu.raw
    );

    let near_ap = server.dig(&["api.shop.example.", "A", "+subnet=10.3.7.0/24"]);
    assert_eq!(near_ap.answers("A"), [AP_SOUTHEAST_V4], "{}", near_ap.raw);

    let near_eu_v6 = server.dig(&["api.shop.example.", "AAAA", "+subnet=10.2.0.0/24"]);
    assert_eq!(
        near_eu_v6
            .answers("AAAA")
            .iter()
            .map(|a| ip(a))
            .collect::<Vec<_>>(),
        [ip(EU_WEST_V6)]
    );
}

#[test]
fn api_without_a_subnet_uses_the_source_address() {
    let server = TestServer::start();
    // 127.0.0.0/8 is configured near ap-southeast; the default is near
    // us-east, so this only passes if the source address was mapped.
    let dig = server.dig(&["api.shop.example.", "A"]);
    assert_eq!(dig.status, "NOERROR", "{}", dig.raw);
    assert!(dig.has_flag("aa"), "{}", dig.raw);
    assert_eq!(dig.answers("A"), [AP_SOUTHEAST_V4], "{}", dig.raw);
    assert_eq!(
        dig.client_subnet, None,
        "no ECS asked, none echoed:\n{}",
        dig.raw
    );

    let plain = server.dig(&["api.shop.example.", "A", "+noedns"]);
    assert_eq!(plain.answers("A"), [AP_SOUTHEAST_V4], "{}", plain.raw);
}

#[test]
fn api_for_an_unmapped_subnet_uses_the_default_location() {
    let server = TestServer::start();
    let dig = server.dig(&["api.shop.example.", "A", "+subnet=192.0.2.0/24"]);
    assert_eq!(dig.answers("A"), [US_EAST_V4], "{}", dig.raw);
}

#[test]
fn region_names_answer_that_region() {
    let server = TestServer::start();
    let a = server.dig(&["us-east.api.shop.example.", "A"]);
    assert_eq!(a.status, "NOERROR", "{}", a.raw);
    assert!(a.has_flag("aa"), "{}", a.raw);
    assert_eq!(a.answers("A"), [US_EAST_V4], "{}", a.raw);
    assert_eq!(a.answer[0].ttl, 6);

    let aaaa = server.dig(&["us-east.api.shop.example.", "AAAA"]);
    assert_eq!(
        aaaa.answers("AAAA")
            .iter()
            .map(|a| ip(a))
            .collect::<Vec<_>>(),
        [ip(US_EAST_V6)]
    );

    // A region with no IPv6 address: NODATA for AAAA, not an error.
    server
        .dig(&["ap-southeast.api.shop.example.", "AAAA"])
        .assert_negative("NOERROR");

    // The answer doesn't depend on where the client is, so an ECS scope of 0.
    let scoped = server.dig(&["eu-west.api.shop.example.", "A", "+subnet=10.1.0.0/24"]);
    assert_eq!(scoped.answers("A"), [EU_WEST_V4], "{}", scoped.raw);
    assert_eq!(
        scoped.client_subnet.as_deref(),
        Some("10.1.0.0/24/0"),
        "{}",
        scoped.raw
    );
}

#[test]
fn names_match_case_insensitively() {
    let server = TestServer::start();
    let dig = server.dig(&["US-East.API.Shop.Example.", "A"]);
    assert_eq!(dig.status, "NOERROR", "{}", dig.raw);
    assert_eq!(dig.answers("A"), [US_EAST_V4], "{}", dig.raw);
    let shard = server.dig(&["EU.SHARD.shop.EXAMPLE.", "A"]);
    assert_eq!(shard.answers("A"), [EU_WEST_V4], "{}", shard.raw);
}

#[test]
fn shard_names_answer_the_home_region_while_it_serves() {
    let server = TestServer::start();
    for (shard, addr) in [
        ("us", US_EAST_V4),
        ("eu", EU_WEST_V4),
        ("ap", AP_SOUTHEAST_V4),
    ] {
        let name = format!("{shard}.shard.shop.example.");
        let dig = server.dig(&[&name, "A"]);
        assert_eq!(dig.status, "NOERROR", "{}", dig.raw);
        assert!(dig.has_flag("aa"), "{}", dig.raw);
        assert_eq!(dig.answers("A"), [addr], "{}", dig.raw);
        assert_eq!(dig.answer[0].ttl, 7);
    }
}

/// Four POPs, one in each client area and one more far from all of them.
fn with_pops(table: &mut RoutingTable) {
    let pop = |name: &str, latitude: f64, longitude: f64, address: &str| RegionStatus {
        name: name.parse().unwrap(),
        latitude,
        longitude,
        health: Health::Healthy,
        base_url: format!("http://{name}.invalid"),
        addresses: vec![address.parse().unwrap()],
        probe_latency_ms: Some(1.0),
    };
    table.pops = vec![
        pop("dub", 53.35, -6.26, "192.0.2.21"),
        pop("iad", 39.04, -77.49, "192.0.2.22"),
        pop("sin", 1.35, 103.99, "192.0.2.23"),
        pop("sfo", 37.62, -122.38, "192.0.2.24"),
    ];
}

/// `www` (the storefront) answers the nearest serving POP to the client,
/// `<pop>.pop` that POP while it serves; a POP that goes down leaves the
/// storefront's answers at once.
#[test]
fn the_storefront_answers_the_nearest_serving_pop() {
    let mut pops = table();
    with_pops(&mut pops);
    let server = TestServer::with(CONFIG, pops);
    let near = |subnet: &str| {
        let dig = server.dig(&["www.shop.example.", "A", &format!("+subnet={subnet}")]);
        assert_eq!(dig.status, "NOERROR", "{}", dig.raw);
        assert!(dig.has_flag("aa"), "{}", dig.raw);
        dig.answers("A")
    };
    assert_eq!(near("10.1.0.0/24"), ["192.0.2.22"]);
    assert_eq!(near("10.2.0.0/24"), ["192.0.2.21"]);
    assert_eq!(near("10.3.0.0/24"), ["192.0.2.23"]);
    let sfo = server.dig(&["sfo.pop.shop.example.", "A"]);
    assert_eq!(sfo.answers("A"), ["192.0.2.24"], "{}", sfo.raw);
    // `pop.<zone>` exists only because names below it do.
    server
        .dig(&["pop.shop.example.", "A"])
        .assert_negative("NOERROR");
    server
        .dig(&["nosuch.pop.shop.example.", "A"])
        .assert_negative("NXDOMAIN");

    server.update(|t| {
        for p in &mut t.pops {
            if p.name.as_str() == "dub" {
                p.health = Health::Down;
            }
        }
    });
    // Dublin's clients go to the next nearest serving POP (Ashburn), and
    // Dublin's own name stops answering.
    assert_eq!(near("10.2.0.0/24"), ["192.0.2.22"]);
    let dub = server.dig(&["dub.pop.shop.example.", "A"]);
    assert_eq!(dub.status, "NOERROR", "{}", dub.raw);
    assert!(dub.answers("A").is_empty(), "{}", dub.raw);
}
