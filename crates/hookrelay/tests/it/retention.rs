//! Retention (docs/operations.md, "Retention"): with `--retention 2s`, events older than that are pruned in the
//! background with their deliveries and attempts, on either backend; never while one of
//! their deliveries is in flight or waiting for a retry; parked deliveries of a
//! deactivated subscription go too.
//!
//! Each test publishes its events first and a control event after them: once the control
//! event is gone, the pruner has looked at everything older, so what is still there was
//! kept on purpose.

use std::time::{Duration, Instant};

use crate::common::hooks::{deliveries, subscribe, webhook, WAIT};
use crate::common::receiver::{eventually, Receiver, Reply};
use crate::common::{classification, Options, Server, Token};
use serde_json::{json, Value};

const RETENTION: Duration = Duration::from_secs(2);
/// Long enough for the pruner to get to what it may prune, well under the test's budget.
const PRUNED_WITHIN: Duration = Duration::from_secs(12);

fn with_retention(retry_schedule: &str) -> Options {
    let mut options = Options::default();
    options.args.extend([
        "--retention".into(),
        "2s".into(),
        "--retry-schedule".into(),
        retry_schedule.into(),
    ]);
    options
}

/// Whether the delivery `id` is answered as not existing, by the log and by retryDelivery.
async fn gone(server: &Server, client: &Token, id: &str) -> bool {
    let body = server
        .gql(client, &format!(r#"{{ delivery(id: "{id}") {{ id }} }}"#))
        .await;
    if body.get("errors").is_none() {
        return false;
    }
    assert_eq!(classification(&body), "AccessDeniedError", "{body}");
    let retry = server
        .gql(
            client,
            &format!(r#"mutation {{ retryDelivery(id: "{id}") {{ id }} }}"#),
        )
        .await;
    assert_eq!(classification(&retry), "AccessDeniedError", "{retry}");
    true
}

/// The newest delivery of `subscription`, once there is one.
async fn delivery_of(server: &Server, client: &Token, subscription: &str) -> Value {
    eventually("the delivery is in the log", WAIT, || async {
        deliveries(server, client, subscription).await.pop()
    })
    .await
}

/// A subscription to `store/order/created` at a healthy receiver, one event for it, and
/// the id of its delivery once it succeeded: published after the events under test, it
/// is pruned after them.
async fn control_event(server: &Server, client: &Token, publisher: &Token) -> (Receiver, String) {
    let hook = Receiver::ok().await;
    let sub = webhook(server, client, &hook.url, "store/order/created").await;
    server
        .publish(
            publisher,
            "shop",
            "store/order/created",
            json!({"control": true}),
        )
        .await;
    hook.wait_for(1, WAIT).await;
    let id = delivery_of(server, client, &sub).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (hook, id)
}

#[tokio::test]
async fn delivered_events_are_pruned_after_the_retention() {
    let server = Server::start_with(with_retention("60")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::ok().await;
    let sub = subscribe(&server, &client, &hook.url, "ORDER_CONFIRMED", "").await;
    let total = |status: &'static str| {
        let (server, client, sub) = (&server, &client, &sub);
        async move {
            let filter = if status.is_empty() {
                String::new()
            } else {
                format!(", status: {status}")
            };
            server
                .gql_ok(
                    client,
                    &format!(
                        r#"{{ deliveries(subscriptionId: "{sub}"{filter}) {{ totalCount }} }}"#
                    ),
                )
                .await["deliveries"]["totalCount"]
                .as_i64()
                .expect("totalCount")
        }
    };

    // More events than the pruner takes in one batch (500).
    const EVENTS: usize = 600;
    let published = Instant::now();
    let events: Vec<Value> = (0..EVENTS)
        .map(|i| json!({"store": "shop", "type": "ORDER_CONFIRMED", "data": {"i": i}}))
        .collect();
    let (status, body) = server
        .post_json("/v1/events/batch", &publisher, &json!({ "events": events }))
        .await;
    assert_eq!(status, 202, "{body}");
    let got = hook.wait_for(EVENTS, WAIT).await;
    let delivered_after = published.elapsed();
    if delivered_after < RETENTION - Duration::from_millis(500) {
        // Young events are not pruned.
        assert_eq!(total("").await, EVENTS as i64);
    }
    let stored = server.storage();

    eventually("the events are pruned", PRUNED_WITHIN, || async {
        (total("").await == 0).then_some(())
    })
    .await;
    let pruned_after = published.elapsed();
    assert!(
        pruned_after >= RETENTION - Duration::from_millis(100),
        "pruned after {pruned_after:?}, before the retention"
    );
    for r in [&got[0], &got[EVENTS - 1]] {
        let id = r.header("webhook-id").expect("webhook-id");
        assert!(
            gone(&server, &client, id).await,
            "delivery {id} still there"
        );
    }
    // Gone from the database, with their deliveries and attempts.
    let mut left = Vec::new();
    for table in ["events", "deliveries", "attempts"] {
        left.push((table, stored.count_rows(table).await));
    }
    assert!(left.iter().all(|(_, n)| *n == 0), "left: {left:?}");

    // Life goes on: a new event is delivered and in the log.
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"i": "new"}))
        .await;
    hook.wait_for(EVENTS + 1, WAIT).await;
    eventually("the new delivery in the log", WAIT, || async {
        (total("SUCCEEDED").await == 1).then_some(())
    })
    .await;
    println!(
        "{EVENTS} events delivered {delivered_after:?} and pruned {pruned_after:?} after publishing"
    );
}

#[tokio::test]
async fn an_event_being_retried_outlives_the_retention_until_it_is_final() {
    // Retries a second apart; the receiver fails six times, then recovers.
    let server = Server::start_with(with_retention("1,1,1,1,1,1,1,1")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let flaky = Receiver::start(|n, _| {
        if n < 6 {
            Reply::status(503)
        } else {
            Reply::status(204)
        }
    })
    .await;
    let steady = Receiver::ok().await;
    let retried = subscribe(&server, &client, &flaky.url, "ORDER_CONFIRMED", "").await;
    let done = subscribe(&server, &client, &steady.url, "ORDER_CONFIRMED", "").await;
    let published = Instant::now();
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"n": 1}))
        .await;
    steady.wait_for(1, WAIT).await;
    let retried_id = delivery_of(&server, &client, &retried).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done_id = delivery_of(&server, &client, &done).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_control_hook, control) = control_event(&server, &client, &publisher).await;

    // The control event (younger) is pruned; the event being retried stays whole, its
    // delivery that already succeeded included.
    eventually("the control event is pruned", PRUNED_WITHIN, || async {
        assert!(
            !gone(&server, &client, &retried_id).await && !gone(&server, &client, &done_id).await,
            "an event was pruned while one of its deliveries was being retried"
        );
        gone(&server, &client, &control).await.then_some(())
    })
    .await;
    assert!(published.elapsed() > RETENTION);
    assert!(
        flaky.count() < 7,
        "the retried delivery is final already: the test proves little"
    );
    let d = delivery_of(&server, &client, &retried).await;
    assert!(
        d["status"] == "PENDING" || d["status"] == "IN_FLIGHT",
        "still being retried: {d}"
    );
    assert_eq!(
        delivery_of(&server, &client, &done).await["status"],
        "SUCCEEDED"
    );

    // Every retry was made, of the same delivery, up to the success.
    let got = flaky.wait_for(7, WAIT).await;
    assert!(got
        .iter()
        .all(|r| r.header("webhook-id") == Some(retried_id.as_str())));
    // Final now, and older than the retention: pruned.
    eventually("the event is pruned once final", PRUNED_WITHIN, || async {
        (gone(&server, &client, &retried_id).await && gone(&server, &client, &done_id).await)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn failed_and_parked_deliveries_are_pruned_but_not_scheduled_ones() {
    // One retry. Event 2 is told to come back in 30 s (Retry-After): it waits, scheduled,
    // past the retention. Event 1 then fails for good and deactivates the webhook, which
    // parks event 2.
    let server = Server::start_with(with_retention("0.2")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::start(|_, r| {
        if r.json()["data"]["id"] == 2 {
            Reply::status(500).header("Retry-After", "30")
        } else {
            Reply::status(500)
        }
    })
    .await;
    let id = webhook(&server, &client, &hook.url, "store/order/updated").await;
    server
        .publish(&publisher, "shop", "store/order/updated", json!({"id": 2}))
        .await;
    let waiting = eventually("event 2 waits for its retry", WAIT, || async {
        deliveries(&server, &client, &id)
            .await
            .into_iter()
            .find(|d| d["attemptCount"] == 1 && d["status"] == "PENDING")
    })
    .await;
    let waiting_id = waiting["id"].as_str().unwrap().to_owned();
    let (_control_hook, control) = control_event(&server, &client, &publisher).await;
    eventually("the control event is pruned", PRUNED_WITHIN, || async {
        assert!(
            !gone(&server, &client, &waiting_id).await,
            "an event was pruned while its delivery was scheduled for a retry"
        );
        gone(&server, &client, &control).await.then_some(())
    })
    .await;

    server
        .publish(&publisher, "shop", "store/order/updated", json!({"id": 1}))
        .await;
    let failed = eventually("event 1 FAILED", WAIT, || async {
        deliveries(&server, &client, &id)
            .await
            .into_iter()
            .find(|d| d["status"] == "FAILED")
    })
    .await;
    let failed_id = failed["id"].as_str().unwrap().to_owned();
    // Event 2 is parked (it may already be pruned: it is older than the retention).
    if let Some(parked) = deliveries(&server, &client, &id)
        .await
        .into_iter()
        .find(|d| d["id"] == waiting_id.as_str())
    {
        assert_eq!(parked["status"], "PENDING", "{parked}");
        assert_eq!(parked["nextAttemptAt"], Value::Null, "parked: {parked}");
    }
    eventually(
        "the failed and the parked deliveries are pruned",
        PRUNED_WITHIN,
        || async {
            (gone(&server, &client, &waiting_id).await && gone(&server, &client, &failed_id).await)
                .then_some(())
        },
    )
    .await;
    assert_eq!(hook.count(), 3, "event 2 once, event 1 twice");
}
