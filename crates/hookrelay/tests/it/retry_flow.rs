//! Retries through the real binary: the schedule, `Retry-After` (seconds or a date, only
//! when longer, capped), FAILED after the last retry with the subscription deactivated,
//! reactivation, replay (failed deliveries in a time window) and retryDelivery.

use std::time::Duration;

use crate::common::hooks::{deliveries, delivery_with_status, metrics, webhook, WAIT};
use crate::common::receiver::{eventually, Receiver, Reply};
use crate::common::{unix_now, unix_of, Options, Server, Token};
use serde_json::json;

fn with_schedule(schedule: &str) -> Options {
    let mut options = Options::default();
    options
        .args
        .extend(["--retry-schedule".into(), schedule.into()]);
    options
}

#[tokio::test]
async fn a_failure_is_retried_with_the_same_webhook_id() {
    let server = Server::start_with(with_schedule("0.2,0.2")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::start(|n, _| {
        if n == 0 {
            Reply::status(500).body("try later")
        } else {
            Reply::status(204)
        }
    })
    .await;
    let id = webhook(&server, &client, &hook.url, "store/order/*").await;
    server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 1}))
        .await;
    let got = hook.wait_for(2, WAIT).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(150),
        "waited the schedule: {gap:?}"
    );
    let d = delivery_with_status(&server, &client, &id, "SUCCEEDED").await;
    assert_eq!(d["attemptCount"], 2);
    assert_eq!(d["attempts"][0]["statusCode"], 500);
    assert_eq!(d["attempts"][0]["error"], "endpoint answered 500");
    assert_eq!(d["attempts"][0]["responseBody"], "try later");
    assert_eq!(d["attempts"][1]["statusCode"], 204);
}

#[tokio::test]
async fn retry_after_is_honoured_when_longer() {
    let gap = retry_gap(|| Reply::status(429).header("Retry-After", "2")).await;
    assert!(
        gap >= Duration::from_millis(1800),
        "Retry-After: 2 → {gap:?}"
    );
}

/// With a 0.1 s retry schedule: the time between the first request, answered as `first`
/// says when it arrives, and the retry.
async fn retry_gap(first: impl Fn() -> Reply + Send + 'static) -> Duration {
    let server = Server::start_with(with_schedule("0.1")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::start(
        move |n, _| {
            if n == 0 {
                first()
            } else {
                Reply::status(204)
            }
        },
    )
    .await;
    webhook(&server, &client, &hook.url, "store/order/*").await;
    server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 1}))
        .await;
    let got = hook.wait_for(2, WAIT).await;
    got[1].at - got[0].at
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) of Unix seconds.
fn http_date(unix: i64) -> String {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    // The civil date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{weekday}, {d:02} {month} {y} {:02}:{:02}:{:02} GMT",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    // The date is taken when the request arrives (starting the server takes a while).
    let gap =
        retry_gap(|| Reply::status(503).header("Retry-After", &http_date(unix_now() + 3))).await;
    // A date 3 s ahead, in whole seconds: at least about 2 s.
    assert!(
        gap >= Duration::from_millis(1900),
        "Retry-After: <now + 3 s> → {gap:?}"
    );
}

#[tokio::test]
async fn retry_after_shorter_than_the_schedule_is_ignored_and_a_huge_one_is_capped() {
    let server = Server::start_with(with_schedule("1")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let short = Receiver::start(|n, _| {
        if n == 0 {
            Reply::status(503).header("Retry-After", "0")
        } else {
            Reply::status(204)
        }
    })
    .await;
    let huge = Receiver::start(|_, _| Reply::status(503).header("Retry-After", "9999999")).await;
    webhook(&server, &client, &short.url, "store/order/*").await;
    let huge_id = webhook(&server, &client, &huge.url, "store/order/*").await;
    server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 1}))
        .await;
    let got = short.wait_for(2, WAIT).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(900),
        "the 1 s schedule wins over Retry-After: 0 → {gap:?}"
    );
    let d = eventually("the huge Retry-After is scheduled", WAIT, || async {
        deliveries(&server, &client, &huge_id)
            .await
            .into_iter()
            .find(|d| d["attemptCount"] == 1 && d["nextAttemptAt"].is_string())
    })
    .await;
    let wait = unix_of(d["nextAttemptAt"].as_str().unwrap()) - unix_now();
    assert!(
        (24 * 3600 - 120..=24 * 3600 + 5).contains(&wait),
        "Retry-After capped at 24 h: next attempt in {wait} s ({d})"
    );
}

#[tokio::test]
async fn a_long_error_answer_is_logged_up_to_4_kib() {
    let server = Server::start_with(with_schedule("")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let big = "x".repeat(10_000);
    let hook = Receiver::start(move |_, _| Reply::status(503).body(&big)).await;
    let id = webhook(&server, &client, &hook.url, "store/order/*").await;
    server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 1}))
        .await;
    let d = delivery_with_status(&server, &client, &id, "FAILED").await;
    assert_eq!(d["attempts"][0]["error"], "endpoint answered 503");
    let kept = d["attempts"][0]["responseBody"].as_str().expect("body");
    assert_eq!(kept, &"x".repeat(4096), "responseBody cut at 4 KiB");
}

#[tokio::test]
async fn last_failure_deactivates_then_reactivation_and_replay_deliver() {
    let server = Server::start_with(with_schedule("0.2,0.2")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::start(|_, _| Reply::status(503)).await;
    let id = webhook(&server, &client, &hook.url, "store/order/*").await;
    let first = server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 1}))
        .await;

    // 1 attempt + 2 retries, then FAILED and the webhook DEACTIVATED.
    let d = delivery_with_status(&server, &client, &id, "FAILED").await;
    assert_eq!(d["attemptCount"], 3);
    assert_eq!(hook.count(), 3);
    let status = server
        .gql_ok(
            &client,
            "{ store { webhooks { edges { node { id status isActive } } } } }",
        )
        .await;
    let node = &status["store"]["webhooks"]["edges"][0]["node"];
    assert_eq!(node["status"], "DEACTIVATED", "{status}");
    assert_eq!(node["isActive"], false);
    assert!(metrics(&server)
        .await
        .lines()
        .any(|l| l.starts_with("hookrelay_subscriptions_deactivated_total") && !l.ends_with(" 0")));

    // While deactivated, new events make no delivery for it.
    server
        .publish(&publisher, "shop", "store/order/updated", json!({"id": 2}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(deliveries(&server, &client, &id).await.len(), 1);

    // Reactivate, let the receiver recover, replay what failed.
    hook.set_plan(|_, _| Reply::status(204));
    server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ webhook {{ updateWebhook(input: {{ id: "{id}", data: {{ isActive: true }} }}) {{ webhook {{ status isActive }} }} }} }}"#
            ),
        )
        .await;
    let replay = server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ replayDeliveries(subscriptionId: "{id}", status: FAILED) {{ count }} }}"#
            ),
        )
        .await;
    assert_eq!(replay["replayDeliveries"]["count"], 1);
    let got = hook.wait_for(4, WAIT).await;
    assert_eq!(got[3].json()["data"]["id"], 1);
    let d = delivery_with_status(&server, &client, &id, "SUCCEEDED").await;
    assert_eq!(d["eventId"], first.as_str());
    assert_eq!(d["attemptCount"], 4);

    // retryDelivery sends a succeeded delivery again.
    let retried = server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ retryDelivery(id: "{}") {{ id status }} }}"#,
                d["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(retried["retryDelivery"]["status"], "PENDING");
    hook.wait_for(5, WAIT).await;
}

/// `410 Gone` (docs/delivery.md#outcome-of-an-attempt): FAILED after one attempt, no
/// retry even with retries left and a `Retry-After`, and that subscription DEACTIVATED at
/// once; another subscription to the same event is not touched.
#[tokio::test]
async fn gone_fails_at_once_and_deactivates_only_that_subscription() {
    let server = Server::start_with(with_schedule("0.2,0.2")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let gone = Receiver::start(|_, _| {
        Reply::status(410)
            .header("Retry-After", "1")
            .body("moved away")
    })
    .await;
    let fine = Receiver::start(|_, _| Reply::status(204)).await;
    let gone_id = webhook(&server, &client, &gone.url, "store/order/*").await;
    let fine_id = webhook(&server, &client, &fine.url, "store/order/*").await;
    server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 1}))
        .await;

    let d = delivery_with_status(&server, &client, &gone_id, "FAILED").await;
    assert_eq!(d["attemptCount"], 1, "{d}");
    assert_eq!(d["attempts"][0]["statusCode"], 410);
    assert_eq!(
        d["attempts"][0]["error"],
        "endpoint answered 410 (Gone): the subscription is deactivated"
    );
    assert_eq!(d["attempts"][0]["responseBody"], "moved away");
    assert!(d["nextAttemptAt"].is_null(), "{d}");
    delivery_with_status(&server, &client, &fine_id, "SUCCEEDED").await;

    let status = server
        .gql_ok(
            &client,
            "{ store { webhooks { edges { node { id status isActive } } } } }",
        )
        .await;
    let edges = status["store"]["webhooks"]["edges"]
        .as_array()
        .expect("edges");
    let of = |id: &str| {
        edges
            .iter()
            .map(|e| &e["node"])
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {status}"))
            .clone()
    };
    assert_eq!(of(&gone_id)["status"], "DEACTIVATED", "{status}");
    assert_eq!(of(&gone_id)["isActive"], false);
    assert_eq!(of(&fine_id)["status"], "ACTIVE", "{status}");

    // No retry came, though the schedule had two left and Retry-After asked for 1 s.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gone.count(), 1);
    assert!(metrics(&server)
        .await
        .lines()
        .any(|l| l.starts_with("hookrelay_destination_messages_total")
            && l.contains("result=\"gone\"")
            && !l.ends_with(" 0")));
}

#[tokio::test]
async fn deliveries_waiting_at_deactivation_go_out_after_reactivation() {
    // One retry. Event 2 is told to come back in 30 s (Retry-After), so it is still
    // waiting when event 1 fails for good and deactivates the webhook.
    let server = Server::start_with(with_schedule("0.2")).await;
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
    let id = webhook(&server, &client, &hook.url, "store/order/*").await;
    server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 2}))
        .await;
    eventually("event 2 waits for its retry", WAIT, || async {
        deliveries(&server, &client, &id)
            .await
            .into_iter()
            .find(|d| d["attemptCount"] == 1 && d["status"] == "PENDING")
    })
    .await;
    server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 1}))
        .await;
    delivery_with_status(&server, &client, &id, "FAILED").await;
    let parked = deliveries(&server, &client, &id)
        .await
        .into_iter()
        .find(|d| d["status"] == "PENDING")
        .expect("event 2 still waiting");
    assert_eq!(
        parked["nextAttemptAt"],
        serde_json::Value::Null,
        "parked: {parked}"
    );

    hook.set_plan(|_, _| Reply::status(204));
    server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ webhook {{ updateWebhook(input: {{ id: "{id}", data: {{ isActive: true }} }}) {{ webhook {{ status }} }} }} }}"#
            ),
        )
        .await;
    let d = eventually(
        "the parked delivery goes out after reactivation",
        WAIT,
        || async {
            deliveries(&server, &client, &id)
                .await
                .into_iter()
                .find(|d| d["id"] == parked["id"] && d["status"] == "SUCCEEDED")
        },
    )
    .await;
    assert_eq!(d["attemptCount"], 2);
}

/// Waits until the webhook `id` is DEACTIVATED, then reactivates it.
async fn reactivate(server: &Server, client: &Token, id: &str) {
    eventually("the webhook is deactivated", WAIT, || async {
        let data = server
            .gql_ok(
                client,
                "{ store { webhooks { edges { node { id status } } } } }",
            )
            .await;
        data["store"]["webhooks"]["edges"]
            .as_array()?
            .iter()
            .any(|e| e["node"]["id"] == id && e["node"]["status"] == "DEACTIVATED")
            .then_some(())
    })
    .await;
    server
        .gql_ok(
            client,
            &format!(
                r#"mutation {{ webhook {{ updateWebhook(input: {{ id: "{id}", data: {{ isActive: true }} }}) {{ webhook {{ id }} }} }} }}"#
            ),
        )
        .await;
}

#[tokio::test]
async fn replay_takes_only_the_failed_deliveries_in_the_window() {
    // No retries: a failure is FAILED at once (and deactivates the webhook).
    let server = Server::start_with(with_schedule("")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::start(|_, r| {
        if r.json()["data"]["n"] == 2 {
            Reply::status(204)
        } else {
            Reply::status(500)
        }
    })
    .await;
    let id = webhook(&server, &client, &hook.url, "store/order/*").await;
    server
        .publish(&publisher, "shop", "store/order/created", json!({"n": 2}))
        .await;
    delivery_with_status(&server, &client, &id, "SUCCEEDED").await;
    for (n, failed) in [(1, 1), (3, 2)] {
        server
            .publish(&publisher, "shop", "store/order/created", json!({"n": n}))
            .await;
        eventually(&format!("event {n} FAILED"), WAIT, || async {
            let all = deliveries(&server, &client, &id).await;
            (all.iter().filter(|d| d["status"] == "FAILED").count() == failed).then_some(())
        })
        .await;
        reactivate(&server, &client, &id).await;
    }
    assert_eq!(hook.count(), 3);

    hook.set_plan(|_, _| Reply::status(204));
    let replay = |window: &str| {
        format!(
            r#"mutation {{ replayDeliveries(subscriptionId: "{id}", {window} status: FAILED) {{ count }} }}"#
        )
    };
    // A window in the future holds nothing.
    let none = server
        .gql_ok(&client, &replay(r#"since: "2999-01-01T00:00:00Z","#))
        .await;
    assert_eq!(none["replayDeliveries"]["count"], 0, "{none}");
    let both = server
        .gql_ok(
            &client,
            &replay(r#"since: "2000-01-01T00:00:00Z", until: "2999-01-01T00:00:00Z","#),
        )
        .await;
    assert_eq!(both["replayDeliveries"]["count"], 2, "{both}");
    let got = hook.wait_for(5, WAIT).await;
    let mut again: Vec<i64> = got[3..]
        .iter()
        .map(|r| r.json()["data"]["n"].as_i64().unwrap())
        .collect();
    again.sort();
    assert_eq!(again, vec![1, 3], "only the failed ones are sent again");
}

/// A delivery waiting for its next retry goes now when retried (the receiver was fixed:
/// nobody should wait out the schedule), with a fresh round of retries.
#[tokio::test]
async fn retry_delivery_sends_a_waiting_delivery_now() {
    let server = Server::start_with(with_schedule("600")).await;
    let client = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::start(|n, _| Reply::status(if n == 0 { 500 } else { 200 })).await;
    let id = webhook(&server, &client, &hook.url, "store/order/*").await;
    server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 1}))
        .await;
    hook.wait_for(1, WAIT).await;
    let waiting = eventually("a delivery waiting for its retry", WAIT, || async {
        deliveries(&server, &client, &id)
            .await
            .into_iter()
            .find(|d| d["status"] == "PENDING" && d["attemptCount"] == 1)
    })
    .await;
    let next = unix_of(waiting["nextAttemptAt"].as_str().expect("a next attempt"));
    assert!(next - unix_now() > 500, "{waiting}");
    let retried = server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ retryDelivery(id: "{}") {{ status nextAttemptAt }} }}"#,
                waiting["id"].as_str().unwrap()
            ),
        )
        .await;
    let due = unix_of(
        retried["retryDelivery"]["nextAttemptAt"]
            .as_str()
            .unwrap_or("1970-01-01T00:00:00Z"),
    );
    assert!(due <= unix_now() + 1, "{retried}");
    hook.wait_for(2, WAIT).await;
    let done = delivery_with_status(&server, &client, &id, "SUCCEEDED").await;
    assert_eq!(done["attemptCount"], 2);
}

/// A Buy with Prime subscription deactivated by its last failure comes back with
/// setEventSubscriptionStatus (the vendor API has no update), and can be paused.
#[tokio::test]
async fn an_event_subscription_is_reactivated_and_paused_by_status() {
    let server = Server::start_with(with_schedule("0.2")).await;
    let client = server.client("shop");
    let other = server.client("shop");
    let publisher = server.token("publisher", None);
    let hook = Receiver::start(|_, _| Reply::status(503)).await;
    let id =
        crate::common::hooks::subscribe(&server, &client, &hook.url, "ORDER_CONFIRMED", "").await;
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"id": 1}))
        .await;
    delivery_with_status(&server, &client, &id, "FAILED").await;
    let status = |token: &Token| {
        let server = &server;
        let id = id.clone();
        let token = token.clone();
        async move {
            server
                .gql(
                    &token,
                    &format!(r#"{{ eventSubscription(subscriptionId: "{id}") {{ status }} }}"#),
                )
                .await["data"]["eventSubscription"]["status"]
                .clone()
        }
    };
    assert_eq!(status(&client).await, "DEACTIVATED");
    let set = |token: &Token, to: &str| {
        let server = &server;
        let query = format!(
            r#"mutation {{ setEventSubscriptionStatus(subscriptionId: "{id}", status: {to}) {{ subscriptionId status isActive }} }}"#
        );
        let token = token.clone();
        async move { server.gql(&token, &query).await }
    };

    // Refused: another client's, and DEACTIVATED by hand; nothing changes.
    let body = set(&other, "ACTIVE").await;
    assert_eq!(
        crate::common::classification(&body),
        "AccessDeniedError",
        "{body}"
    );
    let body = set(&client, "DEACTIVATED").await;
    assert_eq!(
        crate::common::classification(&body),
        "ValidationError",
        "{body}"
    );
    assert_eq!(status(&client).await, "DEACTIVATED");

    // Reactivated, with the receiver fixed: a replay of the failed delivery goes out.
    hook.set_plan(|_, _| Reply::status(204));
    let body = set(&client, "ACTIVE").await;
    assert_eq!(
        body["data"]["setEventSubscriptionStatus"]["status"], "ACTIVE",
        "{body}"
    );
    server
        .gql_ok(
            &client,
            &format!(r#"mutation {{ replayDeliveries(subscriptionId: "{id}") {{ count }} }}"#),
        )
        .await;
    delivery_with_status(&server, &client, &id, "SUCCEEDED").await;

    // Paused: new events make no delivery for it.
    let body = set(&client, "INACTIVE").await;
    assert_eq!(
        body["data"]["setEventSubscriptionStatus"]["isActive"], false,
        "{body}"
    );
    let before = hook.count();
    server
        .publish(&publisher, "shop", "ORDER_CONFIRMED", json!({"id": 2}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hook.count(), before);
    assert_eq!(deliveries(&server, &client, &id).await.len(), 1);
}
