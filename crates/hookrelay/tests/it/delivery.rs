//! Webhook delivery through the real binary: payloads of both styles, Standard Webhooks
//! signatures checked with the reference `standardwebhooks` library, headers, methods.

use std::time::Duration;

use crate::common::hooks::create_subscription;
use crate::common::receiver::{eventually, Receiver};
use crate::common::Server;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

const WAIT: Duration = Duration::from_secs(20);

/// Verifies a request with the reference library, as a receiver would.
pub fn verify(secret: &str, r: &crate::common::receiver::Received) {
    let wh = standardwebhooks::Webhook::new(secret).expect("secret");
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, r.header(name).expect(name).parse().unwrap());
    }
    wh.verify(&r.body, &headers)
        .unwrap_or_else(|e| panic!("signature does not verify: {e:?}"));
}

#[tokio::test]
async fn both_styles_arrive_signed_with_their_payloads() {
    let server = Server::start().await;
    let client = server.client("shop1");
    let publisher = server.token("publisher", None);
    let bwp = Receiver::ok().await;
    let bc = Receiver::ok().await;

    let data = server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ createEventSubscription(input: {{ destination: {{ webhook: {{ url: "{}/bwp", method: PUT, headers: [{{key: "X-Team", value: "blue"}}] }} }}, eventType: "ORDER_CONFIRMED" }}) {{ subscriptionId }} }}"#,
                bwp.url
            ),
        )
        .await;
    let bwp_id = data["createEventSubscription"]["subscriptionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let data = server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ webhook {{ createHttpsWebhook(input: {{ scope: "store/category/*", destination: "{}/bc", isActive: true, headers: [{{key: "X-Shop", value: "one"}}] }}) {{ webhook {{ id }} }} }} }}"#,
                bc.url
            ),
        )
        .await;
    let bc_id = data["webhook"]["createHttpsWebhook"]["webhook"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secrets = server
        .gql_ok(
            &client,
            &format!(
                r#"{{ eventSubscription(subscriptionId: "{bwp_id}") {{ signingSecret }} store {{ webhooks {{ edges {{ node {{ id ... on HttpsWebhook {{ signingSecret }} }} }} }} }} }}"#
            ),
        )
        .await;
    let bwp_secret = secrets["eventSubscription"]["signingSecret"]
        .as_str()
        .unwrap()
        .to_owned();
    let bc_secret = secrets["store"]["webhooks"]["edges"][0]["node"]["signingSecret"]
        .as_str()
        .unwrap()
        .to_owned();

    let order = server
        .publish(
            &publisher,
            "shop1",
            "ORDER_CONFIRMED",
            json!({"orderId": "o-1", "total": 12.5}),
        )
        .await;
    let category = server
        .publish(
            &publisher,
            "shop1",
            "store/category/updated",
            json!({"type": "category", "id": 42}),
        )
        .await;

    let got = bwp.wait_for(1, WAIT).await;
    let r = &got[0];
    verify(&bwp_secret, r);
    assert_eq!(r.method, "PUT");
    assert_eq!(r.path, "/bwp");
    assert_eq!(r.header("x-team"), Some("blue"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("user-agent").unwrap().starts_with("hookrelay/"));
    let body = r.json();
    assert_eq!(body["eventId"], order.as_str());
    assert_eq!(body["eventDescriptor"], "ORDER_CONFIRMED");
    assert_eq!(body["subscriptionId"], bwp_id.as_str());
    assert_eq!(body["idempotencyKey"], r.header("webhook-id").unwrap());
    assert_eq!(body["data"], json!({"orderId": "o-1", "total": 12.5}));
    assert!(body["eventTime"].as_str().is_some() && body["apiVersion"].as_str().is_some());

    let got = bc.wait_for(1, WAIT).await;
    let r = &got[0];
    verify(&bc_secret, r);
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("x-shop"), Some("one"));
    let body = r.json();
    assert_eq!(body["scope"], "store/category/updated");
    assert_eq!(body["store_id"], "shop1");
    assert_eq!(body["producer"], "stores/shop1");
    assert!(body["created_at"].as_i64().unwrap() > 1_600_000_000);
    // hash = SHA-1 hex of the JSON-encoded data.
    let encoded = serde_json::to_string(&body["data"]).unwrap();
    let hash: String = Sha1::digest(encoded.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(body["hash"], hash.as_str());

    // Exactly one delivery each; the ORDER event did not go to the category webhook.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bwp.count(), 1);
    assert_eq!(bc.count(), 1);

    // The delivery log shows both as SUCCEEDED with one attempt.
    let log = eventually("deliveries succeeded", WAIT, || async {
        let d = server
            .gql_ok(
                &client,
                &format!(
                    r#"{{ deliveries(subscriptionId: "{bc_id}") {{ edges {{ node {{ id eventId status attemptCount eventType attempts {{ statusCode durationMs error }} }} }} }} }}"#
                ),
            )
            .await;
        let node = d["deliveries"]["edges"][0]["node"].clone();
        (node["status"] == "SUCCEEDED").then_some(node)
    })
    .await;
    assert_eq!(log["eventId"], category.as_str());
    assert_eq!(log["eventType"], "store/category/updated");
    assert_eq!(log["attemptCount"], 1);
    assert_eq!(log["attempts"][0]["statusCode"], 204);
    assert_eq!(log["attempts"][0]["error"], Value::Null);
}

/// Verifies a `v1a` (ed25519) signature against `public_key` (`whpk_…`) with
/// ed25519-dalek, over the spec's `{id}.{timestamp}.{body}`: no reference library
/// verifies `v1a` yet. True when one of the header's signatures verifies.
fn verifies_v1a(public_key: &str, r: &crate::common::receiver::Received) -> bool {
    use base64::Engine as _;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    let b64 = base64::engine::general_purpose::STANDARD;
    let key: [u8; 32] = b64
        .decode(public_key.strip_prefix("whpk_").expect("whpk_ prefix"))
        .expect("base64")
        .try_into()
        .expect("32 bytes");
    let key = VerifyingKey::from_bytes(&key).expect("a public key");
    let mut signed = Vec::new();
    signed.extend_from_slice(r.header("webhook-id").expect("webhook-id").as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(
        r.header("webhook-timestamp")
            .expect("webhook-timestamp")
            .as_bytes(),
    );
    signed.push(b'.');
    signed.extend_from_slice(&r.body);
    r.header("webhook-signature")
        .expect("webhook-signature")
        .split(' ')
        .any(|s| {
            let sig = s.strip_prefix("v1a,").expect("only v1a signatures");
            let sig = Signature::from_slice(&b64.decode(sig).expect("base64")).expect("64 bytes");
            key.verify(&signed, &sig).is_ok()
        })
}

/// `signatureScheme: ED25519` on both styles' create inputs: the owner reads the public
/// key and never the secret key; deliveries carry `v1a` signatures that verify with it;
/// rotation signs with both keys; an EventBridge destination refuses the scheme.
#[tokio::test]
async fn ed25519_subscriptions_sign_v1a_with_a_readable_public_key() {
    let server = Server::start().await;
    let client = server.client("shop1");
    let publisher = server.token("publisher", None);
    let bwp = Receiver::ok().await;
    let bc = Receiver::ok().await;

    let bwp_id = create_subscription(
        &server,
        &client,
        &format!(
            r#"destination: {{ webhook: {{ url: "{}/bwp" }} }}, eventType: "ORDER_CONFIRMED", signatureScheme: ED25519"#,
            bwp.url
        ),
    )
    .await;
    let data = server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ webhook {{ createHttpsWebhook(input: {{ scope: "store/category/*", destination: "{}/bc", signatureScheme: ED25519 }}) {{ webhook {{ id ... on HttpsWebhook {{ signingSecret signingPublicKey signatureScheme }} }} }} }} }}"#,
                bc.url
            ),
        )
        .await;
    let bc_hook = &data["webhook"]["createHttpsWebhook"]["webhook"];
    assert!(bc_hook["signingSecret"].is_null(), "{data}");
    assert_eq!(bc_hook["signatureScheme"], "ED25519");
    let bc_key = bc_hook["signingPublicKey"]
        .as_str()
        .expect("key")
        .to_owned();
    let shown = server
        .gql_ok(
            &client,
            &format!(
                r#"{{ eventSubscription(subscriptionId: "{bwp_id}") {{ signingSecret signingPublicKey signatureScheme }} }}"#
            ),
        )
        .await;
    let sub = &shown["eventSubscription"];
    assert!(sub["signingSecret"].is_null(), "{shown}");
    assert_eq!(sub["signatureScheme"], "ED25519");
    let bwp_key = sub["signingPublicKey"].as_str().expect("key").to_owned();
    assert!(
        bwp_key.starts_with("whpk_") && bwp_key != bc_key,
        "{bwp_key}"
    );

    server
        .publish(&publisher, "shop1", "ORDER_CONFIRMED", json!({"n": 1}))
        .await;
    server
        .publish(
            &publisher,
            "shop1",
            "store/category/updated",
            json!({"id": 2}),
        )
        .await;
    let got = bwp.wait_for(1, WAIT).await;
    let signature = got[0].header("webhook-signature").unwrap();
    assert!(
        signature.starts_with("v1a,") && !signature.contains(' '),
        "{signature}"
    );
    assert!(verifies_v1a(&bwp_key, &got[0]), "the public key verifies");
    assert!(!verifies_v1a(&bc_key, &got[0]), "another key does not");
    let got = bc.wait_for(1, WAIT).await;
    assert!(verifies_v1a(&bc_key, &got[0]));

    // Rotation: a new key of the same scheme; both keys sign for the overlap.
    let rotated = server
        .gql_ok(
            &client,
            &format!(
                r#"mutation {{ rotateSigningSecret(subscriptionId: "{bwp_id}") {{ signingSecret signingPublicKey }} }}"#
            ),
        )
        .await;
    assert!(rotated["rotateSigningSecret"]["signingSecret"].is_null());
    let new_key = rotated["rotateSigningSecret"]["signingPublicKey"]
        .as_str()
        .expect("new key")
        .to_owned();
    assert_ne!(new_key, bwp_key);
    server
        .publish(&publisher, "shop1", "ORDER_CONFIRMED", json!({"n": 3}))
        .await;
    let got = bwp.wait_for(2, WAIT).await;
    let signature = got[1].header("webhook-signature").unwrap();
    assert_eq!(signature.split(' ').count(), 2, "{signature}");
    assert!(verifies_v1a(&new_key, &got[1]), "the new key verifies");
    assert!(
        verifies_v1a(&bwp_key, &got[1]),
        "the old key still verifies"
    );

    // Only webhooks are signed: the scheme is refused for EventBridge.
    let errors = server
        .gql(
            &client,
            r#"mutation { createEventSubscription(input: { destination: { eventBridge: { partnerEventSource: { account: "123456789012", name: "orders" }, region: "us-east-1" } }, eventType: "ORDER_CONFIRMED", signatureScheme: ED25519 }) { subscriptionId } }"#,
        )
        .await;
    let message = errors["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("/createEventSubscription/input/signatureScheme")
            && message.contains("webhook"),
        "{errors}"
    );
}
