//! `meridian up`, the whole local topology (three regions with geography,
//! the routing layer and DNS, four POPs running the Spin component, edge
//! signatures required), killed with SIGKILL in the middle of shopper load
//! through the POPs, then started again on the same data. Afterwards: no
//! acknowledged order is lost or changed, every checkout whose outcome was
//! unknown at the kill settles (confirmed or failed) when retried with its
//! Idempotency-Key (no saga left open), every acknowledged cart write is
//! present, the payment provider charged exactly the confirmed orders and
//! holds no open authorization, and every SKU's stock audits clean (live
//! equals the event log, nothing left reserved: no unit oversold).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::{
    ADMIN, PRODUCTS, Up, call, client, new_shopper, signed_call, until_healthy, write_config,
};

const SHOPPERS: usize = 30;
/// Cart writes one cart-writing shopper makes at most.
const MAX_ADDS: usize = 40;

#[derive(Debug, Clone)]
struct Shopper {
    shard: &'static str,
    token: String,
    cart: String,
    key: String,
}

/// What a checkout's first attempt got before the kill.
#[derive(Debug)]
enum First {
    Confirmed(String),
    Failed(String),
    Pending,
    Unknown,
}

async fn checkout(client: &reqwest::Client, base: &str, s: &Shopper) -> Option<(u16, Value)> {
    let response = client
        .post(format!("{base}/v1/checkout"))
        .bearer_auth(&s.token)
        .header("idempotency-key", &s.key)
        .json(&json!({ "cart_id": s.cart }))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

/// What a cart write got.
enum Added {
    /// Acknowledged at this version.
    At(u64),
    /// Answered, not applied (e.g. 429).
    Refused,
    /// No answer: the platform is gone.
    Gone,
}

/// Adds one unit of a SKU to the shopper's cart through its POP.
async fn add(client: &reqwest::Client, base: &str, s: &Shopper, n: usize) -> Added {
    let Ok(response) = client
        .post(format!("{base}/v1/carts/{}/items", s.cart))
        .bearer_auth(&s.token)
        .header("idempotency-key", format!("{}-add-{n}", s.key))
        .json(&json!({ "sku": format!("MRD-{:06}", n % PRODUCTS), "qty": 1 }))
        .send()
        .await
    else {
        return Added::Gone;
    };
    let version = response
        .headers()
        .get("x-cart-version")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    match (response.status().as_u16(), version) {
        (200, Some(version)) => Added::At(version),
        (status, _) if status >= 500 => Added::Gone,
        _ => Added::Refused,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_of_up_under_shopper_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let client = client();
    let up = Up::start(&config);
    until_healthy(up.routing).await;

    // Shoppers in every shard at their POP, each with a cart of one or two
    // SKUs. Even shoppers check out; odd ones keep writing to their cart.
    let mut shoppers = Vec::new();
    for i in 0..SHOPPERS {
        let shard = ["us", "eu", "ap"][i % 3];
        let base = up.pop(shard);
        let (token, cart) = new_shopper(&client, &base, shard, &format!("kill-{i}-cart")).await;
        let shopper = Shopper {
            shard,
            token,
            cart,
            key: format!("kill-{i}"),
        };
        for n in [i, i * 7 + 3] {
            assert!(matches!(
                add(&client, &base, &shopper, n).await,
                Added::At(_)
            ));
        }
        shoppers.push(shopper);
    }

    // Load: every checkout and every cart writer at once; the process dies
    // once a third of the checkouts have answered.
    let checkouts = SHOPPERS.div_ceil(2);
    let (answered_tx, mut answered) = tokio::sync::mpsc::channel(SHOPPERS);
    let mut buyers = Vec::new();
    let mut writers = Vec::new();
    for (i, s) in shoppers.iter().enumerate() {
        let (client, base, s) = (client.clone(), up.pop(s.shard), s.clone());
        if i % 2 == 0 {
            let answered = answered_tx.clone();
            buyers.push(tokio::spawn(async move {
                let outcome = checkout(&client, &base, &s).await;
                let _ = answered.send(i).await;
                outcome
            }));
        } else {
            writers.push(tokio::spawn(async move {
                // Paced under the edge's write limit for one session,
                // until the platform is gone (the kill), bounded.
                let mut acked = None;
                for n in 0..MAX_ADDS {
                    match add(&client, &base, &s, 100 + n).await {
                        Added::At(version) => acked = Some(version),
                        Added::Refused => {}
                        Added::Gone => break,
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(125)).await;
                }
                (s.cart.clone(), acked)
            }));
        }
    }
    for _ in 0..checkouts / 3 {
        answered.recv().await.expect("an answer");
    }
    up.kill();

    let mut first = Vec::new();
    for task in buyers {
        first.push(match task.await.expect("task") {
            Some((201, order)) => First::Confirmed(order["id"].as_str().expect("id").to_owned()),
            Some((409, problem)) => match problem["order_id"].as_str() {
                Some(id) => First::Failed(id.to_owned()),
                None => First::Unknown,
            },
            Some((202, _)) => First::Pending,
            // No answer (the process died), or a 5xx: unknown.
            _ => First::Unknown,
        });
    }
    let acknowledged = first
        .iter()
        .filter(|f| matches!(f, First::Confirmed(_) | First::Failed(_)))
        .count();
    assert!(acknowledged >= checkouts / 3, "{first:?}");
    let mut acked_carts = Vec::new();
    for task in writers {
        acked_carts.push(task.await.expect("task"));
    }

    // Start again on the same data.
    let up = Up::start(&config);
    until_healthy(up.routing).await;

    // Every acknowledged cart write is there, read through the POP.
    let cart_writers: Vec<&Shopper> = shoppers.iter().skip(1).step_by(2).collect();
    for (s, (cart, acked)) in cart_writers.iter().zip(&acked_carts) {
        assert_eq!(&s.cart, cart);
        let (status, _, read) = call(
            client
                .get(format!("{}/v1/carts/{cart}", up.pop(s.shard)))
                .bearer_auth(&s.token),
        )
        .await;
        assert_eq!(status, 200, "{read}");
        let version = read["version"].as_u64().expect("version");
        assert!(
            acked.is_none_or(|a| version >= a),
            "cart {cart} at v{version}, a write acknowledged v{acked:?}"
        );
    }

    // Every checkout, retried with its key, reaches its final outcome; no
    // acknowledged one changed.
    let mut confirmed = BTreeSet::new();
    for (s, before) in shoppers.iter().step_by(2).zip(&first) {
        let base = up.pop(s.shard);
        let mut last = None;
        // Each retry waits (server side) for a running saga; a few rounds
        // cover a payment whose answer was lost again.
        for _ in 0..10 {
            let (status, body) = checkout(&client, &base, s).await.expect("retry answered");
            if status != 202 {
                last = Some((status, body));
                break;
            }
        }
        let (status, body) = last.unwrap_or_else(|| panic!("{} never settled", s.key));
        let id = match status {
            201 => body["id"].as_str().expect("id").to_owned(),
            409 => body["order_id"].as_str().unwrap_or_default().to_owned(),
            other => panic!("{}: {other} {body}", s.key),
        };
        match before {
            First::Confirmed(was) => {
                assert_eq!(status, 201, "{}: acknowledged order lost: {body}", s.key);
                assert_eq!(&id, was, "{}", s.key);
            }
            First::Failed(was) => {
                assert_eq!(status, 409, "{}: {body}", s.key);
                assert_eq!(&id, was, "{}", s.key);
            }
            First::Pending | First::Unknown => {}
        }
        if status == 201 {
            // The order is in the shopper's list, through the POP.
            let (listed, _, page) = call(
                client
                    .get(format!("{base}/v1/orders/{id}"))
                    .bearer_auth(&s.token),
            )
            .await;
            assert_eq!(
                (listed, &page["status"]),
                (200, &json!("confirmed")),
                "{page}"
            );
            confirmed.insert(id);
        }
    }

    // Stock: live equals the event log in every warehouse, nothing left
    // reserved (signed as the edges sign, with the admin token).
    for sku in 0..PRODUCTS {
        for (warehouse, region) in [("us", "us-east"), ("eu", "eu-west"), ("ap", "ap-southeast")] {
            let audit = signed_call(
                &client,
                &up.regions[region],
                "GET",
                &format!("/v1/admin/stock/{warehouse}/MRD-{sku:06}"),
                b"",
                Some(ADMIN),
            )
            .await;
            assert_eq!(audit["consistent"], true, "{audit}");
            assert_eq!(audit["live"]["reserved"], 0, "{audit}");
        }
    }
    up.kill();

    // The provider's books, read from its own store: one charge per
    // confirmed order and no other, no authorization left open.
    let gateway = regional_server::storage::open_gateway(
        &commerce::SimulatedGatewayConfig::default(),
        Some(&dir.path().join("data/payments")),
    )
    .expect("provider store");
    let ledger = gateway.ledger(10_000).await.expect("ledger");
    let charged: BTreeSet<String> = ledger.captured().map(|c| c.reference.clone()).collect();
    assert_eq!(charged, confirmed, "charges == confirmed orders");
    let open: Vec<_> = ledger
        .authorizations
        .iter()
        .filter(|a| a.state == commerce::payments::AuthState::Open)
        .collect();
    assert!(open.is_empty(), "authorizations left open: {open:?}");
}
