//! Lease rules of both stores: a silent node's deliveries go back to PENDING, and a node
//! that lost a lease cannot overwrite the new holder's outcome.

use hookrelay_core::ids::{DeliveryId, StoreHash, SubscriptionId};
use std::time::Duration;

use chrono::Utc;
use hookrelay_core::{
    Destination, HttpMethod, Sealed, Style, SubscriptionRecord, SubscriptionStatus,
};
use hookrelay_store::{
    Claim, DeliveryStatus, Ingested, NewEvent, Next, Outcome, Owned, SubscriptionLimits,
};

pub(crate) async fn store_with_subscription() -> (
    crate::backend::TestDb,
    std::sync::Arc<dyn hookrelay_store::Store>,
) {
    let test = crate::backend::open().await;
    let db = test.db.clone();
    db.create_store("s1").await.unwrap();
    let now = Utc::now();
    db.insert_subscription(
        SubscriptionRecord {
            store: "s1".into(),
            id: "sub_1".into(),
            owner_client_id: "c1".into(),
            style: Style::BuyWithPrime,
            event_types: vec!["ORDER_CONFIRMED".into()],
            destination: Destination::Webhook {
                url: "https://example.com/".into(),
                method: HttpMethod::Post,
                auth_profile_id: None,
                inline_auth: false,
                headers: Vec::new(),
            },
            status: SubscriptionStatus::Active,
            signing_secret: Sealed(vec![1, 2, 3]),
            previous_secret: None,
            ordered: false,
            rate_limit: None,
            created_at: now,
            updated_at: now,
        },
        Owned::default(),
        SubscriptionLimits::default(),
    )
    .await
    .unwrap();
    (test, db)
}

pub(crate) fn event(id: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        store: "s1".into(),
        event_type: "ORDER_CONFIRMED".into(),
        data: "{}".into(),
        resources: Vec::new(),
        idempotency_key: None,
        time: Utc::now(),
        patterns: vec!["ORDER_CONFIRMED".into()],
        only_subscription: None,
        except_subscriptions: Vec::new(),
        ordering_key: None,
    }
}

fn claim_for(node: &str) -> Claim {
    Claim {
        node: Some(node.into()),
        ..Claim::default()
    }
}

#[tokio::test]
async fn a_dead_nodes_deliveries_are_taken_back_and_its_late_outcome_is_ignored() {
    let (_dir, db) = store_with_subscription().await;
    db.heartbeat("node_a", Duration::from_secs(60))
        .await
        .unwrap();
    let written = db
        .ingest(vec![event("evt_1")], claim_for("node_a"))
        .await
        .unwrap();
    let Ingested::Created {
        deliveries,
        claimed,
        ..
    } = &written[0]
    else {
        panic!("not created: {written:?}");
    };
    assert_eq!((deliveries.len(), claimed.as_slice()), (1, &[0][..]));
    let seq = deliveries[0].seq;
    // Held by node_a: nothing is due for anyone else.
    assert!(db
        .claim_due("node_b", 10, Vec::new())
        .await
        .unwrap()
        .is_empty());

    // node_a goes silent; node_b's heartbeat (with a tiny lease timeout) takes it back.
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        db.heartbeat("node_b", Duration::from_millis(10))
            .await
            .unwrap(),
        1
    );
    let taken = db.claim_due("node_b", 10, Vec::new()).await.unwrap();
    assert_eq!(taken.len(), 1);

    // node_a's late outcome is not written; node_b's is.
    let outcome = |next| Outcome {
        seq,
        subscription_id: "sub_1".into(),
        store: "s1".into(),
        ordering_key: None,
        attempt: None,
        next,
        failed: None,
    };
    db.record_outcomes(
        "node_a",
        vec![outcome(Next::Drop {
            reason: "late".into(),
        })],
        Claim::default(),
    )
    .await
    .unwrap();
    let (d, attempts) = db
        .get_delivery(StoreHash("s1"), DeliveryId(&deliveries[0].id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::InFlight);
    assert!(attempts.is_empty());
    db.record_outcomes("node_b", vec![outcome(Next::Failed)], Claim::default())
        .await
        .unwrap();
    let (d, _) = db
        .get_delivery(StoreHash("s1"), DeliveryId(&deliveries[0].id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Failed);
    // Failing for good deactivated the subscription.
    let sub = db
        .get_subscription(StoreHash("s1"), SubscriptionId("sub_1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.status, SubscriptionStatus::Deactivated);
}

#[tokio::test]
async fn deferred_subscriptions_are_written_unclaimed_and_due_later() {
    let (_dir, db) = store_with_subscription().await;
    db.heartbeat("node_a", Duration::from_secs(60))
        .await
        .unwrap();
    let later = Utc::now() + chrono::Duration::seconds(60);
    let claim = Claim {
        node: Some("node_a".into()),
        deferred: std::sync::Arc::new([("sub_1".to_owned(), later)].into_iter().collect()),
    };
    let written = db.ingest(vec![event("evt_2")], claim).await.unwrap();
    let Ingested::Created {
        deliveries,
        claimed,
        ..
    } = &written[0]
    else {
        panic!("not created");
    };
    assert!(claimed.is_empty());
    let (d, _) = db
        .get_delivery(StoreHash("s1"), DeliveryId(&deliveries[0].id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Pending);
    assert_eq!(
        d.next_attempt_at.map(|t| t.timestamp()),
        Some(later.timestamp())
    );
    let backlog = db.backlog().await.unwrap();
    assert_eq!((backlog.due, backlog.scheduled), (0, 1));
}
