//! Concurrent ingests, which PostgreSQL writes in shared transactions and SQLite in one
//! writer's (docs/operations.md#writes-on-postgresql): an error reaches only the caller
//! whose event caused it, and an idempotency key used by two callers at once gives one
//! event.

use std::sync::Arc;

use hookrelay_store::{Claim, Ingested, Store};

use crate::leases::{event, store_with_subscription};

/// Publishes `events` one per caller, all at once.
async fn at_once(
    db: &Arc<dyn Store>,
    events: Vec<hookrelay_store::NewEvent>,
) -> Vec<hookrelay_store::Result<Vec<Ingested>>> {
    let calls = events.into_iter().map(|e| {
        let db = db.clone();
        tokio::spawn(async move { db.ingest(vec![e], Claim::default()).await })
    });
    let mut out = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        out.push(call.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_event_fails_its_own_caller_only() {
    let (_dir, db) = store_with_subscription().await;
    db.ingest(vec![event("evt_taken")], Claim::default())
        .await
        .unwrap();
    for round in 0..5 {
        // 40 callers at once, one of them with an event id that is already taken (the
        // database refuses it): every other caller's event is written with its delivery.
        let mut events: Vec<_> = (0..40)
            .map(|i| event(&format!("evt_{round}_{i}")))
            .collect();
        events[17] = event("evt_taken");
        let results = at_once(&db, events).await;
        for (i, result) in results.iter().enumerate() {
            if i == 17 {
                assert!(result.is_err(), "round {round}: the taken id was accepted");
                continue;
            }
            match result.as_ref().map(|r| &r[..]) {
                Ok([Ingested::Created { deliveries, .. }]) => assert_eq!(deliveries.len(), 1),
                other => panic!("round {round}, caller {i}: {other:?}"),
            }
        }
    }
    let page = db
        .list_deliveries(
            hookrelay_core::ids::StoreHash("s1"),
            hookrelay_store::DeliveryFilter::default(),
            hookrelay_store::PageRequest {
                first: 1000,
                after: None,
                count_total: false,
            },
        )
        .await
        .unwrap();
    // The first event, and 39 per round.
    assert_eq!(page.items.len(), 1 + 5 * 39);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_sharing_an_idempotency_key_at_once_get_one_event() {
    let (_dir, db) = store_with_subscription().await;
    let events: Vec<_> = (0..30)
        .map(|i| {
            let mut e = event(&format!("evt_{i}"));
            e.idempotency_key = Some("order-42-paid".into());
            e
        })
        .collect();
    let results = at_once(&db, events).await;
    let mut created = Vec::new();
    let mut duplicates_of = Vec::new();
    for result in results {
        match &result.unwrap()[..] {
            [Ingested::Created { event_id, .. }] => created.push(event_id.clone()),
            [Ingested::Duplicate { event_id }] => duplicates_of.push(event_id.clone()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(duplicates_of.len(), 29);
    assert!(duplicates_of.iter().all(|id| *id == created[0]));
}
