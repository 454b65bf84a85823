//! Retention on both stores: old events go with their deliveries and attempts, oldest
//! first and in batches; an event whose delivery is in flight or scheduled stays until
//! that is final.

use hookrelay_core::ids::StoreHash;
use std::time::Duration;

use chrono::Utc;
use hookrelay_core::{
    Destination, HttpMethod, Sealed, Style, SubscriptionRecord, SubscriptionStatus,
};
use hookrelay_store::{
    Claim, DeliveryFilter, Ingested, NewEvent, Next, Outcome, Owned, PageRequest, Store,
    SubscriptionLimits,
};

fn subscription(id: &str, event_type: &str) -> SubscriptionRecord {
    let now = Utc::now();
    SubscriptionRecord {
        store: "s1".into(),
        id: id.into(),
        owner_client_id: "c1".into(),
        style: Style::BuyWithPrime,
        event_types: vec![event_type.into()],
        destination: Destination::Webhook {
            url: format!("https://example.com/{id}"),
            method: HttpMethod::Post,
            auth_profile_id: None,
            inline_auth: false,
            headers: Vec::new(),
        },
        status: SubscriptionStatus::Active,
        signing_secret: Sealed(vec![1]),
        previous_secret: None,
        ordered: false,
        rate_limit: None,
        created_at: now,
        updated_at: now,
    }
}

fn event(id: &str, event_type: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        store: "s1".into(),
        event_type: event_type.into(),
        data: "{}".into(),
        resources: Vec::new(),
        idempotency_key: None,
        time: Utc::now(),
        patterns: vec![event_type.into()],
        only_subscription: None,
        except_subscriptions: Vec::new(),
        ordering_key: None,
    }
}

async fn seqs(db: &dyn Store, event_id: &str) -> Vec<i64> {
    let written = db
        .ingest(
            vec![event(event_id, "A")],
            Claim {
                node: Some("n1".into()),
                ..Claim::default()
            },
        )
        .await
        .unwrap();
    match &written[0] {
        Ingested::Created { deliveries, .. } => deliveries.iter().map(|d| d.seq).collect(),
        other => panic!("not created: {other:?}"),
    }
}

fn outcome(seq: i64, next: Next) -> Outcome {
    Outcome {
        seq,
        subscription_id: "sub_a".into(),
        store: "s1".into(),
        ordering_key: None,
        attempt: None,
        next,
        failed: None,
    }
}

fn all() -> PageRequest {
    PageRequest {
        first: 100,
        after: None,
        count_total: true,
    }
}

#[tokio::test]
async fn old_final_events_go_in_batches_and_live_ones_stay() {
    let test = crate::backend::open().await;
    let db = test.db.as_ref();
    db.create_store("s1").await.unwrap();
    db.insert_subscription(
        subscription("sub_a", "A"),
        Owned::default(),
        SubscriptionLimits::default(),
    )
    .await
    .unwrap();
    db.heartbeat("n1", Duration::from_secs(60)).await.unwrap();

    // Five delivered, one waiting for a retry, one still in flight.
    let mut done = Vec::new();
    for i in 0..5 {
        done.extend(seqs(db, &format!("evt_done_{i}")).await);
    }
    let retrying = seqs(db, "evt_retrying").await;
    let in_flight = seqs(db, "evt_in_flight").await;
    let mut outcomes: Vec<Outcome> = done
        .iter()
        .map(|&seq| outcome(seq, Next::Succeeded))
        .collect();
    outcomes.push(outcome(
        retrying[0],
        Next::Retry {
            due_at: Utc::now() + chrono::Duration::hours(1),
        },
    ));
    db.record_outcomes("n1", outcomes, Claim::default())
        .await
        .unwrap();

    // Nothing is older than an hour ago.
    let hour_ago = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(db.prune(hour_ago, 100).await.unwrap(), 0);

    // Everything is older than a second from now: the final ones go, two at a time.
    let later = Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(db.prune(later, 2).await.unwrap(), 2);
    assert_eq!(db.prune(later, 2).await.unwrap(), 2);
    assert_eq!(db.prune(later, 2).await.unwrap(), 1);
    assert_eq!(db.prune(later, 2).await.unwrap(), 0);
    let left = db
        .list_deliveries(StoreHash("s1"), DeliveryFilter::default(), all())
        .await
        .unwrap();
    let mut events: Vec<String> = left.items.iter().map(|(_, d)| d.event_id.clone()).collect();
    events.sort();
    assert_eq!(events, ["evt_in_flight", "evt_retrying"]);

    // Once the delivery in flight is final, its event goes too.
    db.record_outcomes(
        "n1",
        vec![outcome(in_flight[0], Next::Succeeded)],
        Claim::default(),
    )
    .await
    .unwrap();
    assert_eq!(db.prune(later, 10).await.unwrap(), 1);
    let left = db
        .list_deliveries(StoreHash("s1"), DeliveryFilter::default(), all())
        .await
        .unwrap();
    assert_eq!(left.total, Some(1));
}

#[tokio::test]
async fn parked_deliveries_do_not_keep_an_old_event() {
    let test = crate::backend::open().await;
    let db = test.db.as_ref();
    db.create_store("s1").await.unwrap();
    db.insert_subscription(
        subscription("sub_a", "A"),
        Owned::default(),
        SubscriptionLimits::default(),
    )
    .await
    .unwrap();
    db.heartbeat("n1", Duration::from_secs(60)).await.unwrap();
    let seq = seqs(db, "evt_parked").await[0];
    // Not attempted and parked until the subscription is active again.
    db.record_outcomes(
        "n1",
        vec![outcome(seq, Next::Release { due_at: None })],
        Claim::default(),
    )
    .await
    .unwrap();
    assert_eq!(db.backlog().await.unwrap().parked, 1);
    let later = Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(db.prune(later, 10).await.unwrap(), 1);
    assert_eq!(db.backlog().await.unwrap().parked, 0);
}
