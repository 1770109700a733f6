//! `meridian up`'s whole topology on the local config: regions, POPs,
//! routing and DNS, edge signatures required, the SRE's commands.

use crate::support::{active_is, cli, dig, local_platform, meridian, signed_call};

/// `meridian up` on the local config (with ephemeral ports, each server on
/// its own configured loopback address, and a fresh data directory): the
/// edge component is built, every region serves the seeded catalog through
/// the POPs, the regions refuse unsigned, forged and replayed calls, the
/// routing layer sees every region and POP healthy, and DNS answers the
/// storefront's name with the nearest POP and `api` with the nearest
/// region, at the addresses that really serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_starts_regions_pops_routing_and_dns() {
    let dir = tempfile::tempdir().unwrap();
    let platform = local_platform(&dir, 2_000).await;
    assert_eq!(platform.regions.len(), 3);
    assert_eq!(platform.pops.len(), 4);
    // Each region and POP on its own configured loopback address.
    let addresses: std::collections::BTreeSet<std::net::IpAddr> = platform
        .regions
        .iter()
        .map(|(_, a, _)| a.ip())
        .chain(platform.pops.iter().map(|(_, a)| a.ip()))
        .collect();
    assert_eq!(addresses.len(), 7, "{addresses:?}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let api = platform.routing_api.unwrap();
    // The routing layer finds every region and POP healthy (followed by
    // the table's long poll, not a clock).
    let table = routing::client::table_when(&client, &format!("http://{api}"), 40, |table| {
        use topology::routing::Health::Healthy;
        table.regions.iter().all(|r| r.health == Healthy)
            && table.pops.len() == 4
            && table.pops.iter().all(|p| p.health == Healthy)
    })
    .await
    .unwrap();
    for (name, addr, region) in &platform.regions {
        assert_eq!(region.commerce.search_index().num_docs(), 2_000, "{name}");
        let row = table.region(name).unwrap();
        assert_eq!(
            row.addresses,
            [addr.ip()],
            "{name}: DNS gives out where it listens"
        );
    }
    // Through every POP: the catalog and search answer (signed by the POP).
    for (name, addr) in &platform.pops {
        let product = client
            .get(format!("http://{addr}/v1/products/MRD-001999"))
            .send()
            .await
            .unwrap();
        assert_eq!(product.status().as_u16(), 200, "{name}");
        let product: serde_json::Value = product.json().await.unwrap();
        assert_eq!(product["sku"], "MRD-001999", "{name}: {product}");
        let found: serde_json::Value = client
            .get(format!("http://{addr}/v1/search?q=wool&limit=5"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(found["total"].as_u64().unwrap() > 0, "{name}: {found}");
    }
    // The regions require edge signatures: unsigned and forged calls are
    // refused, and so is a replayed write (a replayed read is bounded by the
    // signature's time window alone: it returns what was already seen).
    let (_, region_addr, _) = &platform.regions[0];
    let unsigned = client
        .get(format!("http://{region_addr}/v1/products/MRD-000001"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let body = br#"{}"#;
    let signed = |key: &str, nonce: &str| {
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let signature = regional_server::auth::sign_edge_request(
            key.as_bytes(),
            "POST",
            "/v1/sessions",
            now_s,
            nonce,
            body,
        );
        client
            .post(format!("http://{region_addr}/v1/sessions"))
            .header("content-type", "application/json")
            .header(topology::signing::TIMESTAMP_HEADER, now_s.to_string())
            .header(topology::signing::NONCE_HEADER, nonce)
            .header(topology::signing::SIGNATURE_HEADER, signature)
            .body(&body[..])
    };
    let forged = signed("not-the-edge-key-at-all", "0123456789abcdef0001")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    let first = signed("local-dev-edge-key-change-me", "0123456789abcdef0002")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status().as_u16(), 201, "the local edge key signs");
    let replayed = signed("local-dev-edge-key-change-me", "0123456789abcdef0002")
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status().as_u16(), 401, "a replayed write");
    // Geography: each region reaches every shard's cluster over a link, of
    // the modelled round trip to the shards homed elsewhere (zero time to
    // its own), and a call that crosses one pays it.
    assert_eq!(platform.links.len(), 9, "{:?}", platform.links);
    let link = |region: &str, shard: &str| {
        platform
            .links
            .iter()
            .find(|l| l.region.as_str() == region && l.shard.as_str() == shard)
            .map(|l| l.link.clone())
    };
    let us_to_eu = link("us-east", "eu").expect("us-east reaches eu over a link");
    assert_eq!(
        link("eu-west", "eu").unwrap().rtt(),
        std::time::Duration::ZERO
    );
    let rtt = platform
        .topology()
        .region_rtt(&"us-east".parse().unwrap(), &"eu-west".parse().unwrap())
        .unwrap();
    assert_eq!(us_to_eu.rtt(), rtt);
    let region_url = |name: &str| {
        let addr = platform
            .regions
            .iter()
            .find(|(n, _, _)| n.as_str() == name)
            .unwrap()
            .1;
        format!("http://{addr}")
    };
    let session = signed_call(
        &client,
        &region_url("us-east"),
        "POST",
        "/v1/sessions",
        br#"{"shard":"eu"}"#,
        None,
    )
    .await;
    let token = session["token"].as_str().unwrap().to_owned();
    let before = us_to_eu.trips();
    let started = std::time::Instant::now();
    let cart = signed_call(
        &client,
        &region_url("us-east"),
        "POST",
        "/v1/carts",
        b"",
        Some(&token),
    )
    .await;
    assert!(cart["id"].as_str().unwrap().starts_with("eu."), "{cart}");
    assert!(
        us_to_eu.trips() > before,
        "the eu cart's writes crossed no link"
    );
    // A lower bound only: the modelled time is paid.
    assert!(
        started.elapsed() >= rtt,
        "{:?} < {rtt:?}",
        started.elapsed()
    );
    // The routing layer's probes pay the round trip from where it runs (the
    // first region, us-east) and judge each region against it: the far
    // region is healthy (checked above) though its probes take longer.
    let ap = table.region(&"ap-southeast".parse().unwrap()).unwrap();
    let ap_rtt = platform
        .topology()
        .region_rtt(
            &"us-east".parse().unwrap(),
            &"ap-southeast".parse().unwrap(),
        )
        .unwrap();
    assert!(
        ap.probe_latency_ms.unwrap() >= ap_rtt.as_secs_f64() * 1_000.0,
        "{ap:?}"
    );
    // An edge's miss pays its POP's round trip to the region it calls: San
    // Francisco's nearest region is us-east.
    let sfo = platform.pops.iter().find(|(n, _)| n == "sfo").unwrap().1;
    let sfo_rtt = platform
        .pop_rtt("sfo", &"us-east".parse().unwrap())
        .unwrap();
    let started = std::time::Instant::now();
    let miss = client
        .get(format!("http://{sfo}/v1/products/MRD-000777"))
        .send()
        .await
        .unwrap();
    assert_eq!(miss.headers()["x-cache"], "MISS");
    assert!(
        started.elapsed() >= sfo_rtt,
        "{:?} < {sfo_rtt:?}",
        started.elapsed()
    );
    // At the shard's home the same write crosses a zero-time link.
    let local = signed_call(
        &client,
        &region_url("eu-west"),
        "POST",
        "/v1/carts",
        b"",
        Some(&token),
    )
    .await;
    assert!(local["id"].as_str().unwrap().starts_with("eu."), "{local}");
    // DNS: from this machine (located near Ashburn by the local DNS
    // config) the storefront is the Ashburn POP and `api` us-east, at the
    // addresses they listen on.
    // A POP or region that missed probes while the machine was loaded
    // (fall/rise hysteresis) is out of DNS until it is back: wait for the
    // whole table healthy again before asking.
    routing::client::table_when(&client, &format!("http://{api}"), 40, |table| {
        use topology::routing::Health::Healthy;
        table.regions.iter().all(|r| r.health == Healthy)
            && table.pops.iter().all(|p| p.health == Healthy)
    })
    .await
    .unwrap();
    let dns = platform.dns.unwrap();
    let iad = platform.pops.iter().find(|(n, _)| n == "iad").unwrap().1;
    let us_east = platform
        .regions
        .iter()
        .find(|(n, _, _)| n.as_str() == "us-east")
        .unwrap()
        .1;
    assert_eq!(dig(dns, "www.shop.example."), [iad.ip().to_string()]);
    assert_eq!(dig(dns, "api.shop.example."), [us_east.ip().to_string()]);
    assert_eq!(dig(dns, "sin.pop.shop.example."), ["127.0.2.3"]);
    // The SRE's commands: status shows the table; drain takes us-east out
    // (its shard fails over, `api` answers the next nearest region), and
    // undrain puts it back.
    let routing_url = format!("http://{api}");
    let status = meridian(&["status", "--routing", &routing_url]).await;
    for expected in ["us-east", "healthy", "iad", "127.0.2.2", "SHARD"] {
        assert!(status.contains(expected), "{status}");
    }
    let drained = meridian(&[
        "drain",
        "us-east",
        "--routing",
        &routing_url,
        "--token",
        "local-dev-admin-token",
    ])
    .await;
    assert!(drained.contains("drained"), "{drained}");
    let table = routing::client::table_when(&client, &routing_url, 10, active_is("us", "eu-west"))
        .await
        .unwrap();
    let eu_west = table.region(&"eu-west".parse().unwrap()).unwrap().addresses[0];
    assert_eq!(dig(dns, "api.shop.example."), [eu_west.to_string()]);
    meridian(&[
        "undrain",
        "us-east",
        "--routing",
        &routing_url,
        "--token",
        "local-dev-admin-token",
    ])
    .await;
    assert_eq!(dig(dns, "api.shop.example."), [us_east.ip().to_string()]);
    // A wrong token is refused, with the routing layer's reason.
    let (ok, _, stderr) = cli(&[
        "drain",
        "us-east",
        "--routing",
        &routing_url,
        "--token",
        "wrong",
    ])
    .await;
    assert!(!ok);
    assert!(stderr.contains("401"), "{stderr}");
    // A drain goes to every routing instance named; one that does not take
    // it fails the command, by name, and the others keep the change.
    let (ok, stdout, stderr) = cli(&[
        "drain",
        "us-east",
        "--routing",
        &routing_url,
        "--routing",
        "http://127.0.0.1:9",
        "--token",
        "local-dev-admin-token",
    ])
    .await;
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("1 of 2") && stderr.contains("127.0.0.1:9"),
        "{stderr}"
    );
    assert!(
        stdout.contains(&routing_url) && stdout.contains("drained"),
        "{stdout}"
    );
    routing::client::table_when(&client, &routing_url, 10, active_is("us", "eu-west"))
        .await
        .unwrap();
    meridian(&[
        "undrain",
        "us-east",
        "--routing",
        &routing_url,
        "--token",
        "local-dev-admin-token",
    ])
    .await;
    routing::client::table_when(&client, &routing_url, 10, active_is("us", "us-east"))
        .await
        .unwrap();
    // Every service in the process serves its own metrics, labelled: each
    // region only its own series, the routing layer its own.
    let names: Vec<String> = platform
        .regions
        .iter()
        .map(|(n, _, _)| n.as_str().to_owned())
        .collect();
    for (name, addr, _) in &platform.regions {
        let r = client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{name}");
        let text = r.text().await.unwrap();
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("regional_"))
            .collect();
        assert!(!series.is_empty(), "{name}: {text}");
        for line in series {
            assert!(
                line.contains(&format!("region=\"{name}\"")),
                "{name}: {line}"
            );
            for other in names.iter().filter(|o| *o != name.as_str()) {
                assert!(
                    !line.contains(&format!("region=\"{other}\"")),
                    "{name}: {line}"
                );
            }
        }
        assert!(!text.contains("routing_"), "{name} serves routing's series");
    }
    let text = client
        .get(format!("http://{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("routing_region_health{"), "{text}");
    assert!(
        !text.contains("regional_http"),
        "routing serves the regions' series"
    );
    platform.stop().await.unwrap();
}
