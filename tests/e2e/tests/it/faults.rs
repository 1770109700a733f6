//! The platform's fault layer on the local topology: a partitioned region
//! is cut off from its clusters, from the POPs and from the routing layer's
//! probes; its shard fails over, writes through the edge keep working, and
//! the region itself refuses promptly (503, nothing applied) rather than
//! hang or acknowledge a write the rest of the platform cannot see. A
//! latency fault slows the region's round trips, a brownout loses its
//! calls.

use topology::RegionId;
use topology::routing::{Health, RoutingTable};

use crate::support::{active_is, session, signed_call_status};

/// The local topology on ephemeral ports over a fresh store, small seed.
async fn local_platform(dir: &tempfile::TempDir) -> meridian::platform::Platform {
    crate::support::local_platform(dir, 200).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_region_fails_over_and_refuses_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let platform = local_platform(&dir).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let api = format!("http://{}", platform.routing_api.unwrap());
    routing::client::table_when(&client, &api, 40, RoutingTable::all_healthy)
        .await
        .unwrap();
    let eu_west: RegionId = "eu-west".parse().unwrap();
    let eu_west_url = {
        let addr = platform
            .regions
            .iter()
            .find(|(n, _, _)| n == &eu_west)
            .unwrap()
            .1;
        format!("http://{addr}")
    };
    let dub = platform.pops.iter().find(|(n, _)| n == "dub").unwrap().1;
    // A shopper of shard eu, by the Dublin POP.
    let token = session(&client, &format!("http://{dub}"), "eu").await;

    platform.partition(&eu_west, true).unwrap();
    // The routing layer's probes fail: eu-west goes down, shard eu moves.
    let table = routing::client::table_when(&client, &api, 20, active_is("eu", "us-east"))
        .await
        .unwrap();
    assert_eq!(table.region(&eu_west).unwrap().health, Health::Down);
    // The region itself reaches no cluster: a write there is refused at
    // once as not applied (503), never left hanging (504) or acknowledged.
    let (status, problem) = signed_call_status(
        &client,
        &eu_west_url,
        "POST",
        "/v1/carts",
        b"",
        Some(&token),
    )
    .await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(
        problem["type"], "urn:meridian:problem:unavailable",
        "{problem}"
    );
    let cut: u64 = platform
        .links
        .iter()
        .filter(|l| l.region == eu_west)
        .map(|l| l.link.failed())
        .sum();
    assert!(cut > 0);
    // Through the edge the shopper's write goes to the shard's active
    // region and succeeds.
    let cart = client
        .post(format!("http://{dub}/v1/carts"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        cart.status().as_u16(),
        201,
        "{}",
        cart.text().await.unwrap()
    );

    platform.partition(&eu_west, false).unwrap();
    let table = routing::client::table_when(&client, &api, 20, RoutingTable::all_healthy)
        .await
        .unwrap();
    assert_eq!(
        table
            .shard(&"eu".parse().unwrap())
            .unwrap()
            .active
            .as_ref()
            .unwrap(),
        &eu_west
    );
    let (status, _) = signed_call_status(
        &client,
        &eu_west_url,
        "POST",
        "/v1/carts",
        b"",
        Some(&token),
    )
    .await;
    assert_eq!(status, 201);

    // Latency: every round trip into and out of the region takes longer
    // (a lower bound only), until it is restored to the model's.
    let extra = std::time::Duration::from_millis(200);
    platform.slow(&eu_west, extra).unwrap();
    for link in platform.links.iter().filter(|l| l.region == eu_west) {
        assert_eq!(link.link.rtt(), link.base + extra);
    }
    let started = std::time::Instant::now();
    let (status, _) = signed_call_status(
        &client,
        &eu_west_url,
        "POST",
        "/v1/carts",
        b"",
        Some(&token),
    )
    .await;
    assert_eq!(status, 201);
    assert!(started.elapsed() >= extra, "{:?}", started.elapsed());
    platform.slow(&eu_west, std::time::Duration::ZERO).unwrap();
    for link in platform.links.iter().filter(|l| l.region == eu_west) {
        assert_eq!(link.link.rtt(), link.base);
    }
    // Brownout: every call lost refuses the write as not applied; none
    // lost, it goes through.
    platform.brownout(&eu_west, 1.0, 3).unwrap();
    let (status, _) = signed_call_status(
        &client,
        &eu_west_url,
        "POST",
        "/v1/carts",
        b"",
        Some(&token),
    )
    .await;
    assert_eq!(status, 503);
    platform.brownout(&eu_west, 0.0, 3).unwrap();
    let (status, _) = signed_call_status(
        &client,
        &eu_west_url,
        "POST",
        "/v1/carts",
        b"",
        Some(&token),
    )
    .await;
    assert_eq!(status, 201);
    platform.stop().await.unwrap();
}

/// A region outage: the region's service stops as a process dies (its
/// address refuses connections), its shard fails over and the shopper's
/// writes through the edge go on; restarted over the same shards, it takes
/// its shard back and what was written meanwhile is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_region_stops_serving_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut platform = local_platform(&dir).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let api = format!("http://{}", platform.routing_api.unwrap());
    routing::client::table_when(&client, &api, 40, RoutingTable::all_healthy)
        .await
        .unwrap();
    let us_east: RegionId = "us-east".parse().unwrap();
    let us_east_addr = platform
        .regions
        .iter()
        .find(|(n, _, _)| n == &us_east)
        .unwrap()
        .1;
    let iad = platform.pops.iter().find(|(n, _)| n == "iad").unwrap().1;
    let token = session(&client, &format!("http://{iad}"), "us").await;

    platform.kill_region(&us_east).await.unwrap();
    // Dead as a process is: nothing listens at its address.
    let refused = client
        .get(format!("http://{us_east_addr}/healthz"))
        .send()
        .await
        .expect_err("a killed region answers nothing");
    assert!(refused.is_connect(), "{refused:?}");
    let table = routing::client::table_when(&client, &api, 20, active_is("us", "eu-west"))
        .await
        .unwrap();
    assert_eq!(table.region(&us_east).unwrap().health, Health::Down);
    // The shopper's write goes to the shard's active region.
    let cart = client
        .post(format!("http://{iad}/v1/carts"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(cart.status().as_u16(), 201);
    let cart: serde_json::Value = cart.json().await.unwrap();
    let cart_id = cart["id"].as_str().unwrap().to_owned();
    assert!(cart_id.starts_with("us."), "{cart_id}");

    platform.restart_region(&us_east).await.unwrap();
    routing::client::table_when(&client, &api, 20, active_is("us", "us-east"))
        .await
        .unwrap();
    // Written during the outage, read at the home region again.
    let (status, read) = crate::support::signed_call_status(
        &client,
        &format!("http://{us_east_addr}"),
        "GET",
        &format!("/v1/carts/{cart_id}"),
        b"",
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["id"], cart_id.as_str());
    platform.stop().await.unwrap();
}
