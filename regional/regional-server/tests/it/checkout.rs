//! Checkout: no oversell under concurrency, every saga ends completed or
//! compensated after a crash at any step, a retried payment charges once.

use commerce::SimulatedGatewayConfig;
use commerce::checkout::{CrashPoint, SagaState};
use commerce::orders::OrderStatus;
use commerce::outbox::{MessageKind, Topic};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use topology::ShardedId;

use crate::fixture::{Fixture, Options, shard};

/// Checks the inventory invariant and the event-log rebuild of `sku`
/// everywhere, and returns the live level in `warehouse`.
async fn audit(fx: &Fixture, warehouse: &str, sku: &str) -> Value {
    for w in ["us", "eu", "ap"] {
        let r = fx
            .admin(Method::GET, &format!("/v1/admin/stock/{w}/{sku}"), None)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::OK);
        let audit: Value = r.json().await.expect("json");
        assert_eq!(audit["consistent"], true, "{audit}");
        assert_eq!(audit["live"], audit["rebuilt"], "{audit}");
    }
    let r = fx
        .admin(
            Method::GET,
            &format!("/v1/admin/stock/{warehouse}/{sku}"),
            None,
        )
        .send()
        .await
        .expect("send");
    let audit: Value = r.json().await.expect("json");
    audit["live"].clone()
}

#[tokio::test]
async fn two_hundred_checkouts_of_fifty_units_sell_exactly_fifty() {
    let fx = Fixture::start().await;
    fx.catalog(&[("HOT-1", "Flash sale lamp", 2500)]).await;
    fx.restock("us", "HOT-1", 50).await;
    let mut carts = Vec::new();
    for i in 0..200 {
        let shard = ["us", "eu", "ap"][i % 3];
        carts.push(fx.cart_with(shard, "HOT-1", 1).await);
    }
    let mut tasks = Vec::new();
    for (i, (token, cart)) in carts.iter().enumerate() {
        let request = fx
            .signed(
                Method::POST,
                "/v1/checkout",
                Some(&serde_json::json!({ "cart_id": cart })),
                Some(token),
            )
            .header("idempotency-key", format!("flash-{i}"));
        tasks.push(tokio::spawn(async move {
            let r = request.send().await.expect("send");
            let status = r.status();
            (status, r.json::<Value>().await.expect("json"))
        }));
    }
    let (mut confirmed, mut failed) = (Vec::new(), 0);
    for task in tasks {
        let (status, body) = task.await.expect("task");
        match status {
            StatusCode::CREATED => {
                assert_eq!(body["status"], "confirmed");
                confirmed.push(body["id"].as_str().expect("id").to_owned());
            }
            StatusCode::CONFLICT => {
                assert_eq!(
                    body["type"], "urn:meridian:problem:checkout-failed",
                    "{body}"
                );
                assert!(
                    body["detail"]
                        .as_str()
                        .expect("detail")
                        .contains("out of stock"),
                    "{body}"
                );
                failed += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(confirmed.len(), 50);
    assert_eq!(failed, 150);
    let live = audit(&fx, "us", "HOT-1").await;
    assert_eq!(live["available"], 0);
    assert_eq!(live["reserved"], 0);
    assert_eq!(live["sold"], 50);
    assert_eq!(live["received"], 50);
    assert_eq!(fx.gateway.stats().captures, 50);
    assert_eq!(fx.gateway.stats().authorizations, 50);
    for s in ["us", "eu", "ap"] {
        assert!(
            fx.region
                .commerce
                .open_sagas(&shard(s), 10)
                .await
                .expect("open")
                .is_empty()
        );
    }
    // Every acknowledged order is there, confirmed, for its owner: read
    // back by id and listed among the owner's orders.
    let mut listed = std::collections::BTreeSet::new();
    for (token, _) in &carts {
        let r = fx
            .signed(Method::GET, "/v1/orders?limit=100", None, Some(token))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::OK);
        let page: Value = r.json().await.expect("json");
        for order in page["orders"].as_array().expect("orders") {
            if order["status"] == "confirmed" {
                let id = order["id"].as_str().expect("id").to_owned();
                let one = fx
                    .signed(Method::GET, &format!("/v1/orders/{id}"), None, Some(token))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(one.status(), StatusCode::OK);
                let one: Value = one.json().await.expect("json");
                assert_eq!(one["status"], "confirmed", "{one}");
                listed.insert(id);
            }
        }
    }
    let acknowledged: std::collections::BTreeSet<String> = confirmed.iter().cloned().collect();
    assert_eq!(
        listed, acknowledged,
        "confirmed orders listed == acknowledged"
    );
    for id in &confirmed {
        let id: ShardedId = id.parse().expect("id");
        let saga = fx.region.commerce.saga(&id).await.expect("saga");
        assert_eq!(saga.state, SagaState::Completed);
    }
    // The provider's books: exactly one charge per acknowledged order, of
    // its amount, and none for any other.
    let ledger = fx.gateway.ledger(10_000).await.expect("ledger");
    let charged: std::collections::BTreeSet<String> =
        ledger.captured().map(|c| c.reference.clone()).collect();
    assert_eq!(charged, acknowledged, "charges == confirmed orders");
    assert_eq!(ledger.captured().count(), 50);
    assert!(ledger.captured().all(|c| c.amount_minor == 2500));
}

/// Crash points along the happy path: every one ends completed.
const HAPPY_CRASHES: &[CrashPoint] = &[
    CrashPoint {
        state: SagaState::Created,
        persisted: true,
    },
    CrashPoint {
        state: SagaState::Reserved,
        persisted: false,
    },
    CrashPoint {
        state: SagaState::Reserved,
        persisted: true,
    },
    CrashPoint {
        state: SagaState::Authorized,
        persisted: false,
    },
    CrashPoint {
        state: SagaState::Authorized,
        persisted: true,
    },
    CrashPoint {
        state: SagaState::StockCommitted,
        persisted: false,
    },
    CrashPoint {
        state: SagaState::StockCommitted,
        persisted: true,
    },
    CrashPoint {
        state: SagaState::Completed,
        persisted: false,
    },
];

#[tokio::test]
async fn a_saga_crashed_after_any_step_is_completed_by_recovery() {
    let fx = Fixture::start_with(Options {
        workers: false,
        ..Default::default()
    })
    .await;
    fx.catalog(&[("LAMP-1", "Desk lamp", 4000)]).await;
    fx.restock("eu", "LAMP-1", 100).await;
    let lease_ms = fx.region.commerce.settings().saga_lease_ms;
    for (n, point) in HAPPY_CRASHES.iter().enumerate() {
        let (token, cart) = fx.cart_with("us", "LAMP-1", 2).await;
        fx.region.commerce.faults().arm_crash(*point);
        let (status, body) = fx.checkout(&token, &cart, &format!("crash-{n}")).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{point:?}: {body}"
        );
        // Nothing resumes it while the crashed runner's lease holds.
        assert_eq!(
            fx.region
                .commerce
                .recover_sagas(&shard("us"))
                .await
                .expect("recover"),
            0
        );
        fx.clock.advance_ms(lease_ms + 1);
        assert_eq!(
            fx.region
                .commerce
                .recover_sagas(&shard("us"))
                .await
                .expect("recover"),
            1,
            "{point:?}"
        );
        assert!(
            fx.region
                .commerce
                .open_sagas(&shard("us"), 10)
                .await
                .expect("open")
                .is_empty(),
            "{point:?}"
        );
        // The shopper's retry finds the same, confirmed order.
        let (status, order) = fx.checkout(&token, &cart, &format!("crash-{n}")).await;
        assert_eq!(status, StatusCode::CREATED, "{point:?}: {order}");
        assert_eq!(order["status"], "confirmed");
    }
    let live = audit(&fx, "eu", "LAMP-1").await;
    let orders = HAPPY_CRASHES.len() as i64;
    assert_eq!(live["sold"], 2 * orders);
    assert_eq!(live["reserved"], 0);
    assert_eq!(live["available"], 100 - 2 * orders);
    let stats = fx.gateway.stats();
    assert_eq!(stats.authorizations, orders as u64);
    assert_eq!(stats.captures, orders as u64);
    assert_eq!(stats.voids, 0);
}

#[tokio::test]
async fn a_failing_saga_crashed_while_compensating_is_compensated_by_recovery() {
    let fx = Fixture::start_with(Options {
        workers: false,
        payments: SimulatedGatewayConfig {
            decline_rate: 1.0,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    fx.catalog(&[("LAMP-1", "Desk lamp", 4000)]).await;
    fx.restock("us", "LAMP-1", 10).await;
    let lease_ms = fx.region.commerce.settings().saga_lease_ms;
    let points = [
        CrashPoint {
            state: SagaState::Compensating,
            persisted: false,
        },
        CrashPoint {
            state: SagaState::Compensating,
            persisted: true,
        },
        CrashPoint {
            state: SagaState::Compensated,
            persisted: false,
        },
    ];
    for (n, point) in points.iter().enumerate() {
        let (token, cart) = fx.cart_with("eu", "LAMP-1", 3).await;
        fx.region.commerce.faults().arm_crash(*point);
        let (status, body) = fx.checkout(&token, &cart, &format!("decline-{n}")).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{point:?}: {body}"
        );
        fx.clock.advance_ms(lease_ms + 1);
        assert_eq!(
            fx.region
                .commerce
                .recover_sagas(&shard("eu"))
                .await
                .expect("recover"),
            1
        );
        let (status, problem) = fx.checkout(&token, &cart, &format!("decline-{n}")).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .expect("detail")
                .contains("declined"),
            "{problem}"
        );
        let order_id: ShardedId = problem["order_id"]
            .as_str()
            .expect("order id")
            .parse()
            .expect("id");
        let saga = fx.region.commerce.saga(&order_id).await.expect("saga");
        assert_eq!(saga.state, SagaState::Compensated);
    }
    // All stock is back, nothing sold, nothing charged.
    let live = audit(&fx, "us", "LAMP-1").await;
    assert_eq!(live["available"], 10);
    assert_eq!(live["sold"], 0);
    assert_eq!(live["reserved"], 0);
    assert_eq!(fx.gateway.stats().captures, 0);
    assert!(
        fx.region
            .commerce
            .open_sagas(&shard("eu"), 10)
            .await
            .expect("open")
            .is_empty()
    );
}

#[tokio::test]
async fn a_checkout_retried_five_times_after_a_payment_timeout_charges_once() {
    let fx = Fixture::start_with(Options {
        workers: false,
        ..Default::default()
    })
    .await;
    fx.catalog(&[("LAMP-1", "Desk lamp", 4000)]).await;
    fx.restock("us", "LAMP-1", 5).await;
    let (token, cart) = fx.cart_with("us", "LAMP-1", 1).await;
    // Every gateway call of the first attempt takes effect but times out.
    let attempts = fx.region.commerce.settings().payment_attempts;
    fx.gateway.force_timeouts(attempts);
    let (status, first) = fx.checkout(&token, &cart, "pay-once").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["status"], "pending");
    let mut ids = vec![first["id"].clone()];
    for _ in 0..4 {
        let (status, order) = fx.checkout(&token, &cart, "pay-once").await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        ids.push(order["id"].clone());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let stats = fx.gateway.stats();
    assert_eq!(stats.authorizations, 1, "{stats:?}");
    assert_eq!(stats.captures, 1, "{stats:?}");
    assert_eq!(stats.timeouts, u64::from(attempts));
    let live = audit(&fx, "us", "LAMP-1").await;
    assert_eq!(live["sold"], 1);
    // The same key for another cart is refused, and charges nothing.
    let other = fx.new_cart(&token).await;
    let (status, problem) = fx.checkout(&token, &other, "pay-once").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(fx.gateway.stats().authorizations, 1);
    // The order is listed for its shopper.
    let r = fx
        .signed(Method::GET, "/v1/orders", None, Some(&token))
        .send()
        .await
        .expect("send");
    let page: Value = r.json().await.expect("json");
    assert_eq!(page["orders"].as_array().expect("orders").len(), 1);
    assert_eq!(page["orders"][0]["id"], ids[0]);
}

#[tokio::test]
async fn confirmed_orders_reach_the_outbox_consumers_once() {
    let fx = Fixture::start_with(Options {
        workers: false,
        ..Default::default()
    })
    .await;
    fx.catalog(&[("LAMP-1", "Desk lamp", 4000)]).await;
    fx.restock("ap", "LAMP-1", 5).await;
    let (token, cart) = fx.cart_with("ap", "LAMP-1", 2).await;
    let (status, order) = fx.checkout(&token, &cart, "outbox-1").await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let ap = shard("ap");
    let c = &fx.region.commerce;
    assert_eq!(
        c.outbox_backlog(&ap, Topic::Notifications, 10)
            .await
            .expect("backlog"),
        1
    );
    assert_eq!(
        c.drain_outbox(&ap, Topic::Notifications)
            .await
            .expect("drain"),
        1
    );
    assert_eq!(
        c.drain_outbox(&ap, Topic::Analytics).await.expect("drain"),
        1
    );
    assert_eq!(
        c.drain_outbox(&ap, Topic::Analytics).await.expect("drain"),
        0
    );
    let id = order["id"].as_str().expect("id");
    let note = c
        .notification(&ap, id, MessageKind::OrderConfirmed)
        .await
        .expect("read");
    assert!(note.is_some());
    let counters = c.analytics(&ap).await.expect("analytics");
    assert_eq!(counters.get("order_confirmed"), Some(&1));
    assert_eq!(counters.get("revenue_minor_USD"), Some(&8000));
    // The cart was emptied by the confirming transaction.
    let r = fx
        .signed(
            Method::GET,
            &format!("/v1/carts/{cart}"),
            None,
            Some(&token),
        )
        .send()
        .await
        .expect("send");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["lines"], serde_json::json!([]));
}

#[tokio::test]
async fn a_shoppers_orders_page_newest_first() {
    let fx = Fixture::start_with(Options {
        workers: false,
        ..Default::default()
    })
    .await;
    fx.catalog(&[("PEN-1", "Pen", 150)]).await;
    fx.restock("eu", "PEN-1", 100).await;
    let (token, _) = fx.session("eu").await;
    let mut placed = Vec::new();
    for n in 0..7 {
        let cart = fx.new_cart(&token).await;
        let r = fx
            .signed(
                Method::POST,
                &format!("/v1/carts/{cart}/items"),
                Some(&serde_json::json!({ "sku": "PEN-1", "qty": 1 })),
                Some(&token),
            )
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::OK);
        // Ids are ulids: a later millisecond sorts after.
        fx.clock.advance_ms(5);
        let (status, order) = fx.checkout(&token, &cart, &format!("page-{n}")).await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        placed.push(order["id"].as_str().expect("id").to_owned());
    }
    let mut listed = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..10 {
        let path = match &before {
            Some(b) => format!("/v1/orders?limit=3&before={b}"),
            None => "/v1/orders?limit=3".to_owned(),
        };
        let page: Value = fx
            .signed(Method::GET, &path, None, Some(&token))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        for order in page["orders"].as_array().expect("orders") {
            assert_eq!(order["status"], "confirmed");
            listed.push(order["id"].as_str().expect("id").to_owned());
        }
        match page["next"].as_str() {
            Some(next) => before = Some(next.to_owned()),
            None => break,
        }
    }
    placed.reverse();
    assert_eq!(listed, placed);
    // Another shopper sees none of them.
    let (other, _) = fx.session("eu").await;
    let page: Value = fx
        .signed(Method::GET, "/v1/orders", None, Some(&other))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(page["orders"], serde_json::json!([]));
    let r = fx
        .signed(
            Method::GET,
            &format!("/v1/orders/{}", placed[0]),
            None,
            Some(&other),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let _ = OrderStatus::Confirmed;
}

#[tokio::test]
async fn a_cart_in_checkout_cannot_be_checked_out_again_under_another_key() {
    let fx = Fixture::start_with(Options {
        workers: false,
        payments: SimulatedGatewayConfig {
            decline_rate: 0.0,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    fx.catalog(&[("LAMP-1", "Desk lamp", 4000), ("FREE-1", "Sticker", 0)])
        .await;
    fx.restock("us", "LAMP-1", 5).await;
    fx.restock("us", "FREE-1", 5).await;
    let (token, cart) = fx.cart_with("us", "LAMP-1", 1).await;
    // The first checkout stays pending (payment outcome unknown)...
    fx.gateway
        .force_timeouts(fx.region.commerce.settings().payment_attempts);
    let (status, first) = fx.checkout(&token, &cart, "key-a").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    // ...so a double submit under a new key is refused, naming the order.
    let (status, problem) = fx.checkout(&token, &cart, "key-b").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["type"], "urn:meridian:problem:cart-in-checkout");
    assert_eq!(problem["order_id"], first["id"]);
    // A line added meanwhile survives the checkout's completion.
    let r = fx
        .signed(
            Method::POST,
            &format!("/v1/carts/{cart}/items"),
            Some(&serde_json::json!({ "sku": "FREE-1", "qty": 2 })),
            Some(&token),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let (status, done) = fx.checkout(&token, &cart, "key-a").await;
    assert_eq!(status, StatusCode::CREATED, "{done}");
    let cart_now: Value = fx
        .signed(
            Method::GET,
            &format!("/v1/carts/{cart}"),
            None,
            Some(&token),
        )
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        cart_now["lines"],
        serde_json::json!([{ "sku": "FREE-1", "qty": 2 }])
    );
    // And the cart checks out again: a free order needs no payment.
    let (status, free) = fx.checkout(&token, &cart, "key-c").await;
    assert_eq!(status, StatusCode::CREATED, "{free}");
    assert_eq!(free["total"]["amount_minor"], 0);
    assert_eq!(fx.gateway.stats().authorizations, 1);
    assert_eq!(fx.gateway.stats().captures, 1);
}

#[tokio::test]
async fn recovery_backs_off_from_a_saga_whose_payment_stays_unknown() {
    let fx = Fixture::start_with(Options {
        workers: false,
        ..Default::default()
    })
    .await;
    fx.catalog(&[("LAMP-1", "Desk lamp", 4000)]).await;
    fx.restock("us", "LAMP-1", 5).await;
    let (token, cart) = fx.cart_with("us", "LAMP-1", 1).await;
    let attempts = fx.region.commerce.settings().payment_attempts;
    fx.gateway.force_timeouts(attempts * 3);
    let (status, _) = fx.checkout(&token, &cart, "unknown").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let us = shard("us");
    let c = &fx.region.commerce;
    // Parked: recovery waits before trying again, and a try that learns
    // nothing new does not count as progress.
    assert_eq!(c.recover_sagas(&us).await.expect("recover"), 0);
    assert_eq!(fx.gateway.stats().timeouts, u64::from(attempts));
    fx.clock.advance_ms(250);
    assert_eq!(c.recover_sagas(&us).await.expect("recover"), 0);
    assert_eq!(fx.gateway.stats().timeouts, u64::from(attempts) * 2);
    assert_eq!(c.recover_sagas(&us).await.expect("recover"), 0);
    assert_eq!(
        fx.gateway.stats().timeouts,
        u64::from(attempts) * 2,
        "retried without waiting"
    );
    // Once the gateway answers, recovery completes it.
    fx.clock.advance_ms(60_000);
    assert_eq!(
        c.recover_sagas(&us).await.expect("recover"),
        0,
        "still timing out"
    );
    fx.clock.advance_ms(60_000);
    assert_eq!(c.recover_sagas(&us).await.expect("recover"), 1);
    assert!(c.open_sagas(&us, 10).await.expect("open").is_empty());
    assert_eq!(fx.gateway.stats().authorizations, 1);
    assert_eq!(fx.gateway.stats().captures, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_whose_client_hung_up_completes_and_its_retry_gets_the_outcome() {
    // No workers: nothing but the saga itself may finish the order.
    let fx = Fixture::start_with(Options {
        workers: false,
        ..Default::default()
    })
    .await;
    fx.catalog(&[("LAMP-1", "Desk lamp", 4000)]).await;
    fx.restock("us", "LAMP-1", 5).await;
    let (token, cart) = fx.cart_with("us", "LAMP-1", 1).await;
    // The saga reaches the gateway and waits there; then the client hangs up.
    fx.gateway.pause();
    let first = tokio::spawn({
        let request = fx
            .signed(
                Method::POST,
                "/v1/checkout",
                Some(&serde_json::json!({ "cart_id": cart })),
                Some(&token),
            )
            .header("idempotency-key", "hung-up");
        async move { request.send().await }
    });
    fx.gateway.held_calls(1).await;
    first.abort();
    let _ = first.await;
    // The shopper retries with the same key while the saga is still held:
    // the retry waits for it instead of answering pending.
    let retry = tokio::spawn({
        let request = fx
            .signed(
                Method::POST,
                "/v1/checkout",
                Some(&serde_json::json!({ "cart_id": cart })),
                Some(&token),
            )
            .header("idempotency-key", "hung-up");
        async move { request.send().await }
    });
    fx.gateway.resume();
    let response = retry.await.expect("join").expect("send");
    let status = response.status();
    let order: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["status"], "confirmed");
    let stats = fx.gateway.stats();
    assert_eq!(stats.authorizations, 1, "{stats:?}");
    assert_eq!(stats.captures, 1, "{stats:?}");
    assert_eq!(audit(&fx, "us", "LAMP-1").await["sold"], 1);
}

/// The provider keeps its books in a store of its own: a platform that
/// crashes and re-sends an authorization with the same key is answered
/// from the books, not charged again.
#[tokio::test]
async fn the_payment_provider_remembers_keys_and_charges_across_a_platform_restart() {
    use commerce::payments::{AuthorizeRequest, PaymentGateway};
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        commerce::SimulatedGateway::new(
            SimulatedGatewayConfig::default(),
            db_embedded::EmbeddedDatabase::open_database(
                dir.path(),
                db_embedded::EmbeddedOptions::default(),
                db::RetryPolicy::default(),
            )
            .expect("store"),
        )
    };
    let request = AuthorizeRequest {
        idempotency_key: "us.01ARZ3NDEKTSV4RRFFQ69G5FAV/authorize".into(),
        amount_minor: 1200,
        currency: "USD".into(),
        reference: "us.01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
    };
    let first = {
        let gateway = open();
        let id = gateway.authorize(&request).await.expect("authorize");
        gateway.capture(&id, "capture-1").await.expect("capture");
        id
        // The platform (and with it this handle) goes away here.
    };
    let gateway = open();
    assert_eq!(gateway.authorize(&request).await.expect("replay"), first);
    gateway
        .capture(&first, "capture-1")
        .await
        .expect("capture replay");
    let ledger = gateway.ledger(100).await.expect("ledger");
    assert_eq!(ledger.authorizations.len(), 1, "{ledger:?}");
    assert_eq!(ledger.captured().count(), 1);
    assert_eq!(
        gateway.stats().authorizations,
        0,
        "nothing new after restart"
    );
    assert_eq!(gateway.stats().replays, 2);
}

/// A capture the provider keeps refusing does not park its saga forever:
/// after `MAX_CAPTURE_REFUSALS` runs it compensates (stock back, the
/// authorization voided, the order failed with the provider's reason).
#[tokio::test]
async fn a_capture_the_provider_keeps_refusing_ends_compensated() {
    let fx = Fixture::start_with(Options {
        workers: false,
        ..Default::default()
    })
    .await;
    fx.catalog(&[("LAMP-1", "Desk lamp", 4000)]).await;
    fx.restock("us", "LAMP-1", 5).await;
    let (token, cart) = fx.cart_with("us", "LAMP-1", 1).await;
    fx.gateway.refuse_captures(u32::MAX);
    let (status, order) = fx.checkout(&token, &cart, "refused").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{order}");
    let id: ShardedId = order["id"].as_str().expect("id").parse().expect("id");
    // Recovery passes, each after the saga's back-off has passed: bounded.
    let max = commerce::checkout::MAX_CAPTURE_REFUSALS;
    for _ in 0..max {
        fx.clock.advance_ms(120_000);
        fx.region
            .commerce
            .recover_sagas(&shard("us"))
            .await
            .expect("recover");
    }
    let saga = fx.region.commerce.saga(&id).await.expect("saga");
    assert_eq!(saga.state, SagaState::Compensated, "{saga:?}");
    assert_eq!(saga.capture_refusals, max);
    let (status, order) = fx.checkout(&token, &cart, "refused").await;
    assert_eq!(status, StatusCode::CONFLICT, "{order}");
    assert!(
        order["detail"]
            .as_str()
            .expect("detail")
            .contains("refused the capture"),
        "{order}"
    );
    let live = audit(&fx, "us", "LAMP-1").await;
    assert_eq!(live["available"], 5, "{live}");
    assert_eq!(live["sold"], 0, "{live}");
    let ledger = fx.gateway.ledger(100).await.expect("ledger");
    assert_eq!(ledger.captured().count(), 0);
    assert!(
        ledger
            .authorizations
            .iter()
            .all(|a| a.state == commerce::payments::AuthState::Voided),
        "{ledger:?}"
    );
    assert!(
        fx.region
            .commerce
            .open_sagas(&shard("us"), 10)
            .await
            .expect("open")
            .is_empty()
    );
}

/// The recovery worker's own loop (not a hand-called pass) completes a
/// saga whose runner crashed, once its lease has run out.
#[tokio::test]
async fn the_recovery_worker_completes_a_crashed_saga_on_its_own() {
    let fx = Fixture::start().await;
    fx.catalog(&[("LAMP-1", "Desk lamp", 4000)]).await;
    fx.restock("us", "LAMP-1", 10).await;
    let (token, cart) = fx.cart_with("us", "LAMP-1", 1).await;
    fx.region.commerce.faults().arm_crash(CrashPoint {
        state: SagaState::Reserved,
        persisted: true,
    });
    let (status, body) = fx.checkout(&token, &cart, "worker-loop").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let open = fx
        .region
        .commerce
        .open_sagas(&shard("us"), 10)
        .await
        .expect("open");
    assert_eq!(open.len(), 1);
    let id: ShardedId = open[0].order_id.parse().expect("id");
    // The lease runs out (on the saga's clock); the worker, which passes
    // every 50 ms, takes it from there. Wait for that event, bounded.
    fx.clock
        .advance_ms(fx.region.commerce.settings().saga_lease_ms + 1);
    let mut state = SagaState::Reserved;
    for _ in 0..400 {
        state = fx.region.commerce.saga(&id).await.expect("saga").state;
        if state.is_terminal() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(state, SagaState::Completed);
    assert_eq!(
        fx.gateway
            .ledger(10)
            .await
            .expect("ledger")
            .captured()
            .count(),
        1
    );
}
