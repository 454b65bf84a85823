//! EventBridge event sources in both stores: names are unique across stores, a source
//! cannot go while a subscription delivers to it, a subscription's own source goes with
//! it, and a subscription may only deliver to a source that exists in its store.

use hookrelay_core::ids::{EventSourceId, StoreHash, SubscriptionId};
use hookrelay_core::{
    Destination, EventSourceRecord, Sealed, Style, SubscriptionRecord, SubscriptionStatus,
};
use hookrelay_store::{Conflict, Owned, PageRequest, Scope, Store, StoreError, SubscriptionLimits};

fn source(store: &str, id: &str, name: &str, subscription: Option<&str>) -> EventSourceRecord {
    let source_name = format!("aws.partner/test/{store}/{name}");
    EventSourceRecord {
        store: store.into(),
        id: id.into(),
        owner_client_id: "c1".into(),
        aws_account: "111122223333".into(),
        name: name.into(),
        arn: format!("arn:aws:events:us-east-1::event-source/{source_name}"),
        source_name,
        region: "us-east-1".into(),
        subscription_id: subscription.map(str::to_owned),
        created_at: hookrelay_core::now(),
    }
}

fn subscription(store: &str, id: &str, destination: Destination) -> SubscriptionRecord {
    let now = hookrelay_core::now();
    SubscriptionRecord {
        store: store.into(),
        id: id.into(),
        owner_client_id: "c1".into(),
        style: Style::BigCommerce,
        event_types: vec!["store/order/created".into()],
        destination,
        status: SubscriptionStatus::Active,
        signing_secret: Sealed(vec![1]),
        previous_secret: None,
        ordered: false,
        rate_limit: None,
        created_at: now,
        updated_at: now,
    }
}

fn all() -> PageRequest {
    PageRequest {
        first: 100,
        after: None,
        count_total: true,
    }
}

async fn open() -> (crate::backend::TestDb, std::sync::Arc<dyn Store>) {
    let test = crate::backend::open().await;
    let db = test.db.clone();
    for store in ["s1", "s2"] {
        db.create_store(store).await.unwrap();
    }
    (test, db)
}

#[tokio::test]
async fn names_are_unique_and_sources_are_found_by_arn_within_their_store() {
    let (_dir, db) = open().await;
    let a = source("s1", "es_a", "orders", None);
    db.insert_event_source(a.clone()).await.unwrap();
    assert!(db.event_source_name_taken(&a.source_name).await.unwrap());
    assert!(!db
        .event_source_name_taken("aws.partner/test/s1/other")
        .await
        .unwrap());
    let mut again = source("s1", "es_b", "orders", None);
    again.arn.push_str("-different");
    assert!(matches!(
        db.insert_event_source(again).await,
        Err(StoreError::Conflict(Conflict::EventSource))
    ));
    assert_eq!(
        db.event_source_by_arn(StoreHash("s1"), &a.arn)
            .await
            .unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        db.event_source_by_arn(StoreHash("s2"), &a.arn)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.get_event_source(StoreHash("s2"), EventSourceId("es_a"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_source_in_use_cannot_be_deleted_until_its_subscriptions_are_gone() {
    let (_dir, db) = open().await;
    let a = source("s1", "es_a", "orders", None);
    db.insert_event_source(a.clone()).await.unwrap();
    db.insert_subscription(
        subscription("s1", "wh_1", a.destination()),
        Owned::default(),
        SubscriptionLimits::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        db.event_source_users(StoreHash("s1"), EventSourceId("es_a"))
            .await
            .unwrap(),
        vec!["wh_1".to_owned()]
    );
    match db
        .delete_event_source(StoreHash("s1"), EventSourceId("es_a"))
        .await
    {
        Err(StoreError::InUse(users)) => assert_eq!(users, vec!["wh_1".to_owned()]),
        other => panic!("expected InUse, got {other:?}"),
    }
    // Another store cannot delete it at all.
    assert!(matches!(
        db.delete_event_source(StoreHash("s2"), EventSourceId("es_a"))
            .await,
        Err(StoreError::NotFound)
    ));
    db.delete_subscription(StoreHash("s1"), SubscriptionId("wh_1"))
        .await
        .unwrap();
    db.delete_event_source(StoreHash("s1"), EventSourceId("es_a"))
        .await
        .unwrap();
    assert_eq!(
        db.get_event_source(StoreHash("s1"), EventSourceId("es_a"))
            .await
            .unwrap(),
        None
    );
    assert!(!db.event_source_name_taken(&a.source_name).await.unwrap());
}

#[tokio::test]
async fn a_subscription_delivers_only_to_a_source_of_its_store() {
    let (_dir, db) = open().await;
    let theirs = source("s2", "es_t", "theirs", None);
    db.insert_event_source(theirs.clone()).await.unwrap();
    assert!(matches!(
        db.insert_subscription(
            subscription("s1", "wh_1", theirs.destination()),
            Owned::default(),
            SubscriptionLimits::default(),
        )
        .await,
        Err(StoreError::NotFound)
    ));
    // An event bus needs no source.
    let bus = Destination::EventBridge {
        arn: "arn:aws:events:us-east-1:111122223333:event-bus/b".into(),
        region: "us-east-1".into(),
        partner_source: None,
    };
    db.insert_subscription(
        subscription("s1", "wh_2", bus),
        Owned::default(),
        SubscriptionLimits::default(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_subscriptions_own_source_is_unlisted_and_goes_with_it() {
    let (_dir, db) = open().await;
    let listed = source("s1", "es_l", "listed", None);
    db.insert_event_source(listed).await.unwrap();
    let own = source("s1", "es_o", "own", Some("sub_1"));
    let mut sub = subscription("s1", "sub_1", own.destination());
    sub.style = Style::BuyWithPrime;
    db.insert_subscription(
        sub,
        Owned {
            event_source: Some(own.clone()),
            ..Owned::default()
        },
        SubscriptionLimits::default(),
    )
    .await
    .unwrap();
    let page = db
        .list_event_sources(
            Scope {
                store: "s1".into(),
                owner: None,
            },
            all(),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = page.items.iter().map(|(_, s)| s.id.as_str()).collect();
    assert_eq!(ids, vec!["es_l"]);
    assert_eq!(page.total, Some(1));
    // Not deletable on its own; gone with its subscription.
    assert!(matches!(
        db.delete_event_source(StoreHash("s1"), EventSourceId("es_o"))
            .await,
        Err(StoreError::NotFound)
    ));
    db.delete_subscription(StoreHash("s1"), SubscriptionId("sub_1"))
        .await
        .unwrap();
    assert_eq!(
        db.get_event_source(StoreHash("s1"), EventSourceId("es_o"))
            .await
            .unwrap(),
        None
    );
    assert!(!db.event_source_name_taken(&own.source_name).await.unwrap());
}
