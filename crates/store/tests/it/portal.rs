//! Portal links, sessions and figures on both stores (docs/portal.md).

use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use hookrelay_core::{
    Destination, HttpMethod, Role, Sealed, Style, SubscriptionRecord, SubscriptionStatus,
};
use hookrelay_store::portal::{Grant, LinkState, NewPortalLink, NewPortalSession, Redeemed};
use hookrelay_store::{
    AttemptRecord, Claim, Ingested, NewClient, NewEvent, Next, Outcome, Owned, Store,
    SubscriptionLimits,
};

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

fn store_grant() -> Grant {
    Grant {
        role: Role::StoreAdmin,
        store: Some("s1".into()),
        client_id: None,
    }
}

async fn link(db: &dyn Store, hash: &str, grant: Grant, expires_in: chrono::Duration) {
    let now = Utc::now();
    db.insert_portal_link(NewPortalLink {
        link_hash: hash.into(),
        grant,
        created_at: now,
        expires_at: now + expires_in,
    })
    .await
    .unwrap();
}

fn session(hash: &str) -> NewPortalSession {
    let now = Utc::now();
    NewPortalSession {
        session_hash: hash.into(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(12),
    }
}

async fn live(db: &dyn Store, hash: &str, idle_since: DateTime<Utc>) -> Option<Grant> {
    db.portal_session(hash, Utc::now(), idle_since)
        .await
        .unwrap()
        .map(|s| s.grant)
}

#[tokio::test]
async fn a_link_opens_one_session_once_and_expired_or_unknown_ones_none() {
    let test = crate::backend::open().await;
    let db = test.db.as_ref();
    db.create_store("s1").await.unwrap();
    link(db, "l1", store_grant(), minutes(15)).await;
    link(db, "old", store_grant(), minutes(-1)).await;

    let now = Utc::now();
    assert_eq!(
        db.portal_link_state("l1", now).await.unwrap(),
        LinkState::Valid
    );
    assert_eq!(
        db.portal_link_state("old", now).await.unwrap(),
        LinkState::Expired
    );
    assert_eq!(
        db.portal_link_state("nope", now).await.unwrap(),
        LinkState::Unknown
    );

    match db.redeem_portal_link("l1", session("s-1")).await.unwrap() {
        Redeemed::Session(g) => assert_eq!(g, store_grant()),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        db.portal_link_state("l1", now).await.unwrap(),
        LinkState::Used
    );
    for (hash, why) in [
        ("l1", LinkState::Used),
        ("old", LinkState::Expired),
        ("nope", LinkState::Unknown),
    ] {
        match db.redeem_portal_link(hash, session("s-x")).await.unwrap() {
            Redeemed::Refused(state) => assert_eq!(state, why, "{hash}"),
            other => panic!("{hash}: {other:?}"),
        }
    }
    assert!(live(db, "s-x", now - minutes(60)).await.is_none());
    assert_eq!(
        live(db, "s-1", now - minutes(60)).await,
        Some(store_grant())
    );
}

#[tokio::test]
async fn of_many_redeeming_one_link_at_once_exactly_one_gets_a_session() {
    let test = crate::backend::open().await;
    let db = test.db.clone();
    db.create_store("s1").await.unwrap();
    link(db.as_ref(), "l1", store_grant(), minutes(15)).await;
    let tries = (0..8).map(|i| {
        let db = db.clone();
        tokio::spawn(async move {
            db.redeem_portal_link("l1", session(&format!("s-{i}")))
                .await
        })
    });
    let mut sessions = 0;
    for t in tries {
        match t.await.unwrap().unwrap() {
            Redeemed::Session(_) => sessions += 1,
            Redeemed::Refused(state) => assert_eq!(state, LinkState::Used),
        }
    }
    assert_eq!(sessions, 1);
}

#[tokio::test]
async fn sessions_end_idle_at_logout_and_with_their_client() {
    let test = crate::backend::open().await;
    let db = test.db.as_ref();
    db.create_store("s1").await.unwrap();
    db.create_client(NewClient {
        client_id: "app1".into(),
        token_hash: "t1".into(),
        role: Role::Client,
        store: Some("s1".into()),
    })
    .await
    .unwrap();
    let client = Grant {
        role: Role::Client,
        store: Some("s1".into()),
        client_id: Some("app1".into()),
    };
    link(db, "l1", client.clone(), minutes(15)).await;
    link(db, "l2", store_grant(), minutes(15)).await;
    link(db, "l3", client.clone(), minutes(15)).await;
    assert!(matches!(
        db.redeem_portal_link("l1", session("client"))
            .await
            .unwrap(),
        Redeemed::Session(_)
    ));
    assert!(matches!(
        db.redeem_portal_link("l2", session("store")).await.unwrap(),
        Redeemed::Session(_)
    ));
    let now = Utc::now();
    assert_eq!(live(db, "client", now - minutes(60)).await, Some(client));

    // Idle: last seen before the idle limit.
    assert!(live(db, "store", now + minutes(1)).await.is_none());
    db.touch_portal_session("store", now + minutes(2))
        .await
        .unwrap();
    assert!(live(db, "store", now + minutes(1)).await.is_some());

    // Logout.
    db.end_portal_session("store").await.unwrap();
    assert!(live(db, "store", now - minutes(60)).await.is_none());

    // Revoking the client ends its sessions at once, and its links open none.
    db.revoke_client("app1").await.unwrap();
    assert!(live(db, "client", now - minutes(60)).await.is_none());
    match db.redeem_portal_link("l3", session("late")).await.unwrap() {
        Redeemed::Refused(LinkState::Unknown) => {}
        other => panic!("{other:?}"),
    }

    // A session past its end is gone, and pruning drops ended rows.
    let ended = NewPortalSession {
        session_hash: "ended".into(),
        created_at: now - chrono::Duration::hours(13),
        expires_at: now - chrono::Duration::hours(1),
    };
    link(db, "l4", store_grant(), minutes(15)).await;
    // Redeemed "in the past" so that its 12 h are over.
    db.redeem_portal_link("l4", ended).await.unwrap();
    assert!(live(db, "ended", now - chrono::Duration::hours(14))
        .await
        .is_none());
    assert!(db.prune_portal(now).await.unwrap() >= 1);
}

fn subscription(id: &str, status: SubscriptionStatus) -> SubscriptionRecord {
    let now = Utc::now();
    SubscriptionRecord {
        store: "s1".into(),
        id: id.into(),
        owner_client_id: "c1".into(),
        style: Style::BuyWithPrime,
        event_types: vec![format!("T{id}")],
        destination: Destination::Webhook {
            url: format!("https://example.com/{id}"),
            method: HttpMethod::Post,
            auth_profile_id: None,
            inline_auth: false,
            headers: Vec::new(),
        },
        status,
        signing_secret: Sealed(vec![1]),
        previous_secret: None,
        ordered: false,
        rate_limit: None,
        created_at: now,
        updated_at: now,
    }
}

async fn delivery_seq(db: &dyn Store, event_id: &str, event_type: &str) -> i64 {
    let written = db
        .ingest(
            vec![NewEvent {
                id: event_id.into(),
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
            }],
            Claim {
                node: Some("n1".into()),
                ..Claim::default()
            },
        )
        .await
        .unwrap();
    match &written[0] {
        Ingested::Created { deliveries, .. } => deliveries[0].seq,
        other => panic!("not created: {other:?}"),
    }
}

#[tokio::test]
async fn attempts_are_counted_per_hour_with_the_last_error_and_deactivated_subscriptions() {
    let test = crate::backend::open().await;
    let db = test.db.as_ref();
    db.create_store("s1").await.unwrap();
    for (id, status) in [
        ("a", SubscriptionStatus::Active),
        ("gone", SubscriptionStatus::Deactivated),
    ] {
        db.insert_subscription(
            subscription(id, status),
            Owned::default(),
            SubscriptionLimits::default(),
        )
        .await
        .unwrap();
    }
    db.heartbeat("n1", Duration::from_secs(60)).await.unwrap();

    let hour = Utc::now()
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap();
    let since = hour - chrono::Duration::hours(23);
    // Now: two successes and a 500; two hours ago: a refused connection.
    let attempts = [
        (hour + minutes(1), Some(200), None),
        (hour + minutes(1), Some(204), None),
        (hour + minutes(2), Some(500), Some("HTTP 500")),
        // An EventBridge entry refused in a 200 answer: failed.
        (
            hour + minutes(3),
            Some(200),
            Some("entry refused: ThrottlingException"),
        ),
        (hour - minutes(119), None, Some("connection refused")),
    ];
    let mut outcomes = Vec::new();
    for (i, (at, code, error)) in attempts.iter().enumerate() {
        let seq = delivery_seq(db, &format!("e{i}"), "Ta").await;
        outcomes.push(Outcome {
            seq,
            subscription_id: "a".into(),
            store: "s1".into(),
            ordering_key: None,
            attempt: Some(AttemptRecord {
                started_at: *at,
                duration_ms: 5,
                status_code: *code,
                error: error.map(str::to_owned),
                response_body: None,
            }),
            next: Next::Succeeded,
            failed: None,
        });
    }
    db.record_outcomes("n1", outcomes, Claim::default())
        .await
        .unwrap();

    let buckets = db
        .attempt_buckets("s1", "a", since, Duration::from_secs(3600), 24)
        .await
        .unwrap();
    assert_eq!(buckets.len(), 24);
    assert_eq!(buckets[0].start, since);
    assert_eq!((buckets[23].succeeded, buckets[23].failed), (2, 2));
    assert_eq!((buckets[21].succeeded, buckets[21].failed), (0, 1));
    let total: u64 = buckets.iter().map(|b| b.succeeded + b.failed).sum();
    assert_eq!(total, 5);
    // Another store's view of the same id sees nothing.
    let other = db
        .attempt_buckets("s2", "a", since, Duration::from_secs(3600), 24)
        .await
        .unwrap();
    assert!(other.iter().all(|b| b.succeeded + b.failed == 0));

    let last = db.last_error("s1", "a").await.unwrap().expect("an error");
    assert_eq!(last.status_code, Some(200));
    assert_eq!(
        last.error.as_deref(),
        Some("entry refused: ThrottlingException")
    );
    assert!(db.last_error("s1", "gone").await.unwrap().is_none());

    let minute = Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap();
    let per_minute = db
        .all_attempt_buckets(minute - minutes(59), Duration::from_secs(60), 60)
        .await
        .unwrap();
    assert_eq!(per_minute.len(), 60);
    let recent: u64 = per_minute.iter().map(|b| b.succeeded + b.failed).sum();
    // The attempts of this hour that fall in the last 60 minutes (the window ends with the
    // current minute: in an hour's first minutes, some of the attempts above lie later).
    let expected = attempts
        .iter()
        .filter(|(at, ..)| *at >= minute - minutes(59) && *at < minute + minutes(1))
        .count() as u64;
    assert_eq!(recent, expected);

    let deactivated = db.deactivated_subscriptions(10).await.unwrap();
    assert_eq!(
        deactivated
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        ["gone"]
    );
    let nodes = db.nodes().await.unwrap();
    assert_eq!(
        nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        ["n1"]
    );
    assert_eq!(
        db.subscription_counts().await.unwrap(),
        vec![("s1".to_owned(), 2)]
    );
}
