//! NXDOMAIN, NODATA and REFUSED where a correct authority gives them.

use crate::harness::TestServer;

#[test]
fn unknown_names_in_the_zone_are_nxdomain() {
    let server = TestServer::start();
    for name in [
        "nope.shop.example.",
        "mars.api.shop.example.",
        "zz.shard.shop.example.",
        "deep.us-east.api.shop.example.",
        "a.eu.shard.shop.example.",
        "x.ns1.shop.example.",
    ] {
        server.dig(&[name, "A"]).assert_negative("NXDOMAIN");
    }
}

#[test]
fn known_names_with_other_types_are_nodata() {
    let server = TestServer::start();
    for (name, qtype) in [
        ("api.shop.example.", "TXT"),
        ("api.shop.example.", "MX"),
        ("us-east.api.shop.example.", "MX"),
        ("eu.shard.shop.example.", "CNAME"),
        ("shop.example.", "A"),
        ("ns1.shop.example.", "TXT"),
        // Empty non-terminals: names exist below them (RFC 8020), so they
        // are not NXDOMAIN.
        ("shard.shop.example.", "A"),
        ("dns.shop.example.", "A"),
    ] {
        server.dig(&[name, qtype]).assert_negative("NOERROR");
    }
}

#[test]
fn names_outside_the_zone_are_refused() {
    let server = TestServer::start();
    for args in [
        &["example.com.", "A"][..],
        &["shop.example.org.", "A"],
        &["example.", "SOA"],
        &[".", "NS"],
        // A name in the zone but another class: not ours either.
        &["api.shop.example.", "CH", "TXT"],
    ] {
        let dig = server.dig(args);
        assert_eq!(dig.status, "REFUSED", "{args:?}:\n{}", dig.raw);
        assert!(!dig.has_flag("aa"), "{}", dig.raw);
        assert!(
            dig.answer.is_empty() && dig.authority.is_empty(),
            "{}",
            dig.raw
        );
    }
}

#[test]
fn zone_transfers_are_refused() {
    let server = TestServer::start();
    // dig sends AXFR over TCP.
    let dig = server.dig(&["shop.example.", "AXFR"]);
    assert_eq!(dig.status, "REFUSED", "{}", dig.raw);
    assert!(dig.answer.is_empty(), "{}", dig.raw);
}
