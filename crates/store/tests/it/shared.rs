//! Many nodes on one PostgreSQL database (always PostgreSQL, whatever backend the rest
//! of the suite runs on): claims never overlap, a dead node's leases pass to the living,
//! and signals reach the other nodes but not their sender.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hookrelay_core::{
    Destination, HttpMethod, Sealed, Style, SubscriptionRecord, SubscriptionStatus,
};
use hookrelay_store::{
    Claim, DeliveryStore, NewEvent, Owned, PgStore, Signal, Store, SubscriptionLimits,
};

async fn two_nodes() -> (Arc<PgStore>, Arc<PgStore>) {
    let url = crate::backend::new_postgres_database().await;
    let a = Arc::new(PgStore::connect(&url).await.unwrap());
    let b = Arc::new(PgStore::connect(&url).await.unwrap());
    (a, b)
}

fn subscription(id: &str) -> SubscriptionRecord {
    let now = Utc::now();
    SubscriptionRecord {
        store: "s1".into(),
        id: id.into(),
        owner_client_id: "c1".into(),
        style: Style::BuyWithPrime,
        event_types: vec!["A".into()],
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

fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| NewEvent {
            id: format!("evt_{i}"),
            store: "s1".into(),
            event_type: "A".into(),
            data: "{}".into(),
            resources: Vec::new(),
            idempotency_key: None,
            time: Utc::now(),
            patterns: vec!["A".into()],
            only_subscription: None,
            except_subscriptions: Vec::new(),
            ordering_key: None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_claiming_at_once_never_get_the_same_delivery() {
    let (a, b) = two_nodes().await;
    a.create_store("s1").await.unwrap();
    for i in 0..4 {
        a.insert_subscription(
            subscription(&format!("sub_{i}")),
            Owned::default(),
            SubscriptionLimits::default(),
        )
        .await
        .unwrap();
    }
    // 250 events × 4 subscriptions, written unclaimed (due now).
    a.ingest(events(250), Claim::default()).await.unwrap();
    for (node, db) in [("node_a", &a), ("node_b", &b)] {
        db.heartbeat(node, Duration::from_secs(60)).await.unwrap();
    }
    let claimer = |db: Arc<PgStore>, node: &'static str| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = db.claim_due(node, 37, Vec::new()).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|d| d.seq));
            }
        })
    };
    let (ta, tb, tc) = (
        claimer(a.clone(), "node_a"),
        claimer(b.clone(), "node_b"),
        claimer(b.clone(), "node_b"),
    );
    let (ca, cb, cc) = (ta.await.unwrap(), tb.await.unwrap(), tc.await.unwrap());
    let all: Vec<i64> = ca.iter().chain(&cb).chain(&cc).copied().collect();
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 1000, "every delivery claimed");
    assert_eq!(distinct.len(), 1000, "no delivery claimed twice");
    assert!(
        !ca.is_empty() && cb.len() + cc.len() > 0,
        "both nodes claimed some"
    );
    assert_eq!(a.backlog().await.unwrap().in_flight, 1000);
}

#[tokio::test]
async fn a_silent_nodes_leases_pass_to_the_living() {
    let (a, b) = two_nodes().await;
    a.create_store("s1").await.unwrap();
    a.insert_subscription(
        subscription("sub_1"),
        Owned::default(),
        SubscriptionLimits::default(),
    )
    .await
    .unwrap();
    a.heartbeat("node_a", Duration::from_secs(60))
        .await
        .unwrap();
    a.ingest(
        events(10),
        Claim {
            node: Some("node_a".into()),
            ..Claim::default()
        },
    )
    .await
    .unwrap();
    // node_a stays within a long timeout: nothing is taken.
    assert_eq!(
        b.heartbeat("node_b", Duration::from_secs(60))
            .await
            .unwrap(),
        0
    );
    assert!(b
        .claim_due("node_b", 100, Vec::new())
        .await
        .unwrap()
        .is_empty());
    // node_a has been silent for longer than a short one: its 10 come back to node_b.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        b.heartbeat("node_b", Duration::from_millis(20))
            .await
            .unwrap(),
        10
    );
    assert_eq!(
        b.claim_due("node_b", 100, Vec::new()).await.unwrap().len(),
        10
    );
}

#[tokio::test]
async fn signals_reach_the_other_nodes_but_not_the_sender() {
    let (a, b) = two_nodes().await;
    let mut at_a = a
        .listen("node_a")
        .await
        .unwrap()
        .expect("PostgreSQL listens");
    let mut at_b = b
        .listen("node_b")
        .await
        .unwrap()
        .expect("PostgreSQL listens");
    let sent = [
        Signal::Subscription("sub_1".into()),
        Signal::AuthProfile {
            store: "s1".into(),
            id: "ap_1".into(),
        },
        Signal::Wake,
    ];
    for signal in &sent {
        a.broadcast("node_a", signal.clone()).await.unwrap();
    }
    for signal in &sent {
        let got = tokio::time::timeout(Duration::from_secs(10), at_b.recv())
            .await
            .expect("a signal within 10 s")
            .expect("listening");
        assert_eq!(&got, signal);
    }
    // node_a heard nothing of its own; a signal from b reaches it.
    b.broadcast("node_b", Signal::Wake).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), at_a.recv())
        .await
        .expect("a signal within 10 s")
        .expect("listening");
    assert_eq!(got, Signal::Wake);
}
