//! Bad input gets a clear, classified error and changes nothing.

use crate::common::*;
use serde_json::{json, Value};

const COUNTS: &str = "{ authProfiles { totalCount } eventSubscriptions { totalCount } store { webhooks { totalCount } } }";

fn zero() -> Value {
    json!({"authProfiles": {"totalCount": 0}, "eventSubscriptions": {"totalCount": 0}, "store": {"webhooks": {"totalCount": 0}}})
}

fn subscription(url: &str) -> String {
    format!(
        r#"mutation {{ createEventSubscription(input: {{ destination: {{ webhook: {{ url: "{url}", method: POST }} }}, eventType: "ORDER_CONFIRMED" }}) {{ subscriptionId }} }}"#
    )
}

fn webhook(url: &str) -> String {
    format!(
        r#"mutation {{ webhook {{ createHttpsWebhook(input: {{ scope: "store/order/created", destination: "{url}" }}) {{ webhook {{ id }} }} }} }}"#
    )
}

fn oauth_profile(endpoint: &str) -> String {
    format!(
        r#"mutation {{ createAuthProfile(input: {{ authConfig: {{ oAuthConfig: {{ clientParameters: {{ clientId: "c", clientSecret: "s" }}, authEndpoint: "{endpoint}", httpMethod: POST }} }} }}) {{ authProfileId }} }}"#
    )
}

/// With the defaults (https only, no allowed networks), as in production.
#[tokio::test]
async fn destinations_must_be_https_and_public() {
    let server = Server::start_with(Options {
        args: vec![],
        envs: vec![],
    })
    .await;
    let alice = server.client("storea");

    let body = server
        .gql(&alice, &subscription("http://example.com/hook"))
        .await;
    assert_eq!(classification(&body), "ValidationError");
    assert_eq!(
        message(&body),
        "/createEventSubscription/input/destination/webhook/url must be an https URL"
    );
    assert_eq!(
        only_error(&body)["extensions"]["errorType"],
        "ValidationException"
    );
    assert_eq!(only_error(&body)["extensions"]["errorCode"], 400);

    let body = server
        .gql(&alice, &webhook("http://example.com/hook"))
        .await;
    assert_eq!(
        message(&body),
        "/webhook/createHttpsWebhook/input/destination must be an https URL"
    );

    let body = server
        .gql(&alice, &oauth_profile("http://auth.example.com/token"))
        .await;
    assert_eq!(
        message(&body),
        "/createAuthProfile/input/authConfig/oAuthConfig/authEndpoint must be an https URL"
    );

    for (url, what) in [
        ("https://127.0.0.1:8443/hook", "loopback"),
        ("https://10.0.0.7/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://100.64.1.1/", "CGNAT"),
        ("https://[::1]/hook", "loopback"),
        ("https://[::ffff:192.168.1.1]/hook", "private"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://224.0.0.1/", "multicast"),
        // 6to4 (here around 169.254.169.254), and IPv6 ranges outside global unicast.
        ("https://[2002:a9fe:a9fe::]/hook", "6to4"),
        ("https://[3fff::1]/", "documentation"),
        ("https://[5f00::1]/", "reserved"),
    ] {
        let body = server.gql(&alice, &subscription(url)).await;
        assert_eq!(classification(&body), "ValidationError", "{url}: {body}");
        assert!(message(&body).contains(what), "{url}: {body}");
        let body = server.gql(&alice, &webhook(url)).await;
        assert!(message(&body).contains(what), "{url}: {body}");
        let body = server.gql(&alice, &oauth_profile(url)).await;
        assert!(message(&body).contains(what), "{url}: {body}");
    }
    for url in ["https://localhost/hook", "https://api.localhost:8443/x"] {
        let body = server.gql(&alice, &subscription(url)).await;
        assert!(
            message(&body).ends_with("must not point to localhost"),
            "{body}"
        );
    }
    for url in [
        "not a url",
        "https://user:pw@example.com/",
        "ftp://example.com/",
    ] {
        let body = server.gql(&alice, &subscription(url)).await;
        assert_eq!(classification(&body), "ValidationError", "{url}: {body}");
    }
    assert_eq!(server.gql_ok(&alice, COUNTS).await, zero());

    // A public name is accepted at creation (it is checked again, after DNS, on delivery).
    server
        .gql_ok(&alice, &subscription("https://hooks.example.com/in"))
        .await;
}

#[tokio::test]
async fn event_types_and_shapes_are_checked() {
    let server = Server::start().await;
    let alice = server.client("storea");
    let cases = [
        (
            r#"mutation { createEventSubscription(input: { destination: { webhook: { url: "http://127.0.0.1:9/" } }, eventType: "ORDER_EXPLODED" }) { subscriptionId } }"#,
            "/createEventSubscription/input/eventType \"ORDER_EXPLODED\" is not a known event type",
        ),
        (
            r#"mutation { createEventSubscription(input: { destination: { webhook: { url: "http://127.0.0.1:9/" } }, eventTypes: ["ORDER_CONFIRMED", "nope"] }) { subscriptionId } }"#,
            "/createEventSubscription/input/eventTypes/1 \"nope\" is not a known event type",
        ),
        (
            r#"mutation { createEventSubscription(input: { destination: { webhook: { url: "http://127.0.0.1:9/" } }, eventType: "ORDER_CONFIRMED", eventTypes: ["ORDER_CONFIRMED"] }) { subscriptionId } }"#,
            "/createEventSubscription/input must have one of eventType or eventTypes, not both",
        ),
        (
            r#"mutation { createEventSubscription(input: { destination: { webhook: { url: "http://127.0.0.1:9/" } } }) { subscriptionId } }"#,
            "/createEventSubscription/input must have eventType or eventTypes",
        ),
        (
            r#"mutation { createEventSubscription(input: { destination: { }, eventType: "ORDER_CONFIRMED" }) { subscriptionId } }"#,
            "/createEventSubscription/input/destination must have one of webhook, eventBridge, sqs, sns, rabbitmq or nats",
        ),
        (
            r#"mutation { createEventSubscription(input: { destination: { webhook: { url: "http://127.0.0.1:9/" }, nats: { url: "nats://127.0.0.1:4222", subject: "a" } }, eventType: "ORDER_CONFIRMED" }) { subscriptionId } }"#,
            "/createEventSubscription/input/destination must have only one of webhook, eventBridge, sqs, sns, rabbitmq or nats, not webhook and nats",
        ),
        (
            r#"mutation { createEventSubscription(input: { destination: { rabbitmq: { url: "http://127.0.0.1:5672/", exchange: "x", routingKey: "k" } }, eventType: "ORDER_CONFIRMED" }) { subscriptionId } }"#,
            "/createEventSubscription/input/destination/rabbitmq/url must be a URL with the scheme amqp:// or amqps://",
        ),
        (
            r#"mutation { createEventSubscription(input: { destination: { rabbitmq: { url: "amqp://127.0.0.1/", exchange: "no spaces", routingKey: "k" } }, eventType: "ORDER_CONFIRMED" }) { subscriptionId } }"#,
            "/createEventSubscription/input/destination/rabbitmq/exchange must be at most 255 letters, digits, '-', '_', '.' or ':', got \"no spaces\"",
        ),
        (
            r#"mutation { createEventSubscription(input: { destination: { nats: { url: "nats://127.0.0.1:4222", subject: "orders.*" } }, eventType: "ORDER_CONFIRMED" }) { subscriptionId } }"#,
            "/createEventSubscription/input/destination/nats/subject must be dot-separated tokens without spaces or wildcards (orders.created), at most 255 bytes, got \"orders.*\"",
        ),
        (
            r#"mutation { createEventSubscription(input: { destination: { webhook: { url: "http://127.0.0.1:9/", method: POST, httpMethod: PUT } }, eventType: "ORDER_CONFIRMED" }) { subscriptionId } }"#,
            "/createEventSubscription/input/destination/webhook/method and /createEventSubscription/input/destination/webhook/httpMethod disagree; give one of them",
        ),
        (
            r#"mutation { createEventSubscription(input: { destination: { webhook: { url: "http://127.0.0.1:9/", headers: [{ key: "Authorization", value: "x" }] } }, eventType: "ORDER_CONFIRMED" }) { subscriptionId } }"#,
            "/createEventSubscription/input/destination/webhook/headers/0/key \"Authorization\" is set by hookrelay and cannot be a custom header",
        ),
        (
            r#"mutation { webhook { createHttpsWebhook(input: { scope: "store/nothing/*", destination: "http://127.0.0.1:9/" }) { webhook { id } } } }"#,
            "/webhook/createHttpsWebhook/input/scope \"store/nothing/*\" is a wildcard that matches no known event type",
        ),
        (
            r#"mutation { webhook { createHttpsWebhook(input: { scope: "store/order/created", destination: "http://127.0.0.1:9/", headers: [{ key: "webhook-id", value: "x" }] }) { webhook { id } } } }"#,
            "/webhook/createHttpsWebhook/input/headers/0/key \"webhook-id\" is set by hookrelay and cannot be a custom header",
        ),
        (
            r#"mutation { createAuthProfile(input: { authConfig: { } }) { authProfileId } }"#,
            "/createAuthProfile/input/authConfig must have one of oAuthConfig or basicAuthConfig",
        ),
        (
            r#"mutation { createAuthProfile(input: { authConfig: { basicAuthConfig: { username: "a", password: "b" }, oAuthConfig: { clientParameters: { clientId: "c", clientSecret: "d" }, authEndpoint: "http://127.0.0.1:9/t" } } }) { authProfileId } }"#,
            "/createAuthProfile/input/authConfig must have exactly one of oAuthConfig or basicAuthConfig, not both",
        ),
        (
            r#"mutation { createAuthProfile(input: { authProfileAliasId: "has spaces", authConfig: { basicAuthConfig: { username: "a", password: "b" } } }) { authProfileId } }"#,
            "/createAuthProfile/input/authProfileAliasId must be 1 to 128 characters of letters, digits, '.', '_', ':' or '-'",
        ),
        (
            r#"mutation { createAuthProfile(input: { authConfig: { basicAuthConfig: { username: "", password: "b" } } }) { authProfileId } }"#,
            "/createAuthProfile/input/authConfig/basicAuthConfig/username must not be empty",
        ),
        (
            "{ eventSubscriptions(first: 1001) { totalCount } }",
            "/eventSubscriptions/first must be between 1 and 1000, got 1001",
        ),
        (
            r#"{ store { webhooks(after: "garbage") { totalCount } } }"#,
            "/store/webhooks/after is not a cursor this API gave out",
        ),
    ];
    for (query, expected) in cases {
        let body = server.gql(&alice, query).await;
        assert_eq!(classification(&body), "ValidationError", "{query}: {body}");
        assert_eq!(message(&body), expected, "{query}");
    }
    // Wrong GraphQL types and unknown fields are classified as validation errors too.
    for query in [
        r#"{ eventSubscriptions(first: "ten") { totalCount } }"#,
        r#"mutation { createEventSubscription(input: { destination: { webhook: { url: "http://127.0.0.1:9/", method: DELETE } }, eventType: "ORDER_CONFIRMED" }) { subscriptionId } }"#,
        r#"mutation { createAuthProfile(input: { authConfig: { basicAuthConfig: { username: "a" } } }) { authProfileId } }"#,
        "{ noSuchField }",
    ] {
        let body = server.gql(&alice, query).await;
        assert_eq!(classification(&body), "ValidationError", "{query}: {body}");
        assert_eq!(body["data"], Value::Null, "{query}: {body}");
    }
    assert_eq!(server.gql_ok(&alice, COUNTS).await, zero());
}

#[tokio::test]
async fn malformed_and_oversized_requests() {
    let server = Server::start().await;
    let alice = server.client("storea");
    let url = format!("{}/graphql", server.base);
    let post = |body: Vec<u8>| {
        server
            .http
            .post(&url)
            .header("X-Auth-Token", &alice.token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    for bad in [&b"{not json"[..], b"[]", b"{\"variables\": {}}", b""] {
        let resp = post(bad.to_vec()).await.unwrap();
        assert_eq!(resp.status(), 400, "{}", String::from_utf8_lossy(bad));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(classification(&body), "ValidationError");
    }
    // Just over the 1 MiB limit, on a client of its own: the server closes the connection
    // after a 413 (the rest of the body is never read), so it must not be reused.
    let query = format!("{{ eventTypes }} #{}", "x".repeat((1 << 20) + 1024));
    let resp = reqwest::Client::new()
        .post(&url)
        .header("X-Auth-Token", &alice.token)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(classification(&body), "ValidationError");
    assert!(message(&body).contains("larger than"), "{body}");

    // Too deep: refused before it runs.
    let mut deep = String::from("{ __schema { types { fields { type ");
    for _ in 0..20 {
        deep.push_str("{ ofType ");
    }
    deep.push_str("{ name }");
    deep.push_str(&"}".repeat(20));
    deep.push_str(" } } } }");
    let body = server.gql(&alice, &deep).await;
    assert_eq!(classification(&body), "ValidationError", "{body}");
    assert!(message(&body).to_lowercase().contains("depth"), "{body}");

    // The introspection query GraphiQL sends is within the limits.
    let introspection = r#"query IntrospectionQuery { __schema { queryType { name } mutationType { name }
      types { ...FullType } directives { name locations args { ...InputValue } } } }
    fragment FullType on __Type { kind name description
      fields(includeDeprecated: true) { name args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
      inputFields { ...InputValue } interfaces { ...TypeRef }
      enumValues(includeDeprecated: true) { name isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
    fragment InputValue on __InputValue { name type { ...TypeRef } defaultValue }
    fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType {
      kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }"#;
    let body = server.gql_ok(&alice, introspection).await;
    let types = body["__schema"]["types"].as_array().unwrap();
    for name in [
        "EventSubscription",
        "HttpsWebhook",
        "EventBridgeWebhook",
        "AuthProfile",
        "HttpMethod",
    ] {
        assert!(
            types.iter().any(|t| t["name"] == name),
            "{name} missing from the schema"
        );
    }
}

/// GraphQL requests weigh what they make the database do (docs/api.md#limits): a count
/// or a list is a round trip, and a request may make `graphql_max_round_trips` of them.
#[tokio::test]
async fn graphql_requests_weigh_their_database_round_trips() {
    let server = Server::start().await;
    let alice = server.client("storea");
    let aliases = |n: usize| {
        let fields: Vec<String> = (0..n)
            .map(|i| format!("a{i}: eventSubscriptions {{ totalCount }}"))
            .collect();
        format!("{{ {} }}", fields.join(" "))
    };
    // 1,000 counts in one request: refused before any runs, with the limit in words.
    let body = server.gql(&alice, &aliases(1000)).await;
    assert_eq!(classification(&body), "ValidationError", "{body}");
    assert!(body["data"].is_null(), "nothing ran: {body}");
    let text = message(&body);
    assert!(
        text.contains("too many database round trips") && text.contains("60 round trips"),
        "{text}"
    );
    // 20 (40 round trips) are fine.
    let body = server.gql_ok(&alice, &aliases(20)).await;
    assert_eq!(body["a19"]["totalCount"], 0);
    // Attempts on every delivery of a page come in one more round trip, not one each.
    server
        .gql_ok(
            &alice,
            "{ deliveries(first: 1000) { edges { node { id attempts { error } } } } }",
        )
        .await;

    // The operator sets the limit, and may turn introspection off.
    let mut options = crate::common::Options::default();
    options.args.extend([
        "--graphql-max-round-trips".into(),
        "5".into(),
        "--graphql-introspection".into(),
        "false".into(),
    ]);
    let strict = Server::start_with(options).await;
    let bob = strict.client("storeb");
    let body = strict.gql(&bob, &aliases(3)).await;
    assert!(message(&body).contains("5 round trips"), "{body}");
    strict.gql_ok(&bob, &aliases(2)).await;
    let body = strict.gql(&bob, "{ __schema { types { name } } }").await;
    assert!(body.get("errors").is_some(), "introspection is off: {body}");
    assert!(body.to_string().contains("__schema"), "{body}");
    // On by default.
    server
        .gql_ok(&alice, "{ __schema { types { name } } }")
        .await;
}

/// `allowed_ports` (docs/security.md#destination-address-policy): a webhook URL on any
/// other port is refused at creation, and a webhook made before the setting changed gets
/// no request: its attempts fail with the reason.
#[tokio::test]
async fn allowed_ports_hold_at_creation_and_before_each_request() {
    let hook = crate::common::receiver::Receiver::ok().await;
    let port = hook
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    // Made while any port is allowed.
    let server = Server::start().await;
    let client = server.client("shop");
    let id = crate::common::hooks::webhook(&server, &client, &hook.url, "store/order/*").await;
    let (_, dir) = server.terminate();

    let mut options = crate::common::Options::default();
    options
        .args
        .extend(["--allowed-ports".into(), "443, 8443".into()]);
    let server = Server::start_in(dir, options);
    // The same client (its token is in the database), so that it owns the webhook.
    let publisher = server.token("publisher", None);
    for (url, ok) in [
        ("https://hooks.example.com/in", true),
        ("https://hooks.example.com:8443/in", true),
        ("https://hooks.example.com:8080/in", false),
    ] {
        let body = server
            .gql(
                &client,
                &format!(r#"mutation {{ webhook {{ createHttpsWebhook(input: {{ scope: "store/cart/*", destination: "{url}" }}) {{ webhook {{ id }} }} }} }}"#),
            )
            .await;
        if ok {
            assert!(body.get("errors").is_none(), "{url}: {body}");
        } else {
            assert_eq!(
                message(&body),
                "/webhook/createHttpsWebhook/input/destination must use an allowed port (443, 8443), not 8080",
                "{body}"
            );
        }
    }
    server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 1}))
        .await;
    let attempt = crate::common::receiver::eventually(
        "a refused attempt",
        crate::common::hooks::WAIT,
        || async {
            let log = crate::common::hooks::deliveries(&server, &client, &id).await;
            log.first()
                .and_then(|d| d["attempts"].as_array()?.first().cloned())
        },
    )
    .await;
    let error = attempt["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("must use an allowed port (443, 8443), not {port}")),
        "{attempt}"
    );
    assert_eq!(hook.count(), 0, "nothing was sent");
}

/// Every forbidden address (docs/security.md#destination-address-policy), in one table,
/// judged twice: written literally in a webhook URL, refused at creation; behind a name
/// that resolves to it (`--dns-pins`), refused at connect time, the attempt saying why
/// and nothing sent. A name pinned to an allowed address is the control: it delivers.
#[tokio::test]
async fn every_forbidden_address_is_refused_at_creation_and_at_connect_time() {
    const FORBIDDEN: &[&str] = &[
        // IPv4
        "0.0.0.1",
        "127.0.0.2",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "192.0.0.1",
        "192.0.2.1",
        "198.51.100.1",
        "203.0.113.1",
        "198.18.0.1",
        "192.88.99.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        // IPv6
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd00::1",
        "fec0::1",
        "ff02::1",
        "2001:db8::1",
        "3fff::1",
        "100::1",
        "2002:a9fe:a9fe::",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "5f00::1",
        "2001::1",
        "4000::1",
        // IPv4-mapped, -translated and -compatible forms of a loopback address
        "::ffff:127.0.0.2",
        "::ffff:0:7f00:2",
        "::7f00:2",
    ];
    let hook = crate::common::receiver::Receiver::ok().await;
    let mut pins: Vec<String> = FORBIDDEN
        .iter()
        .enumerate()
        .map(|(i, ip)| format!("case-{i}.ssrf.test={ip}"))
        .collect();
    pins.push("allowed.ssrf.test=127.0.0.1".into());
    let options = Options {
        args: vec![
            "--allow-http".into(),
            // Only the receiver's address: every loopback case above is another one.
            "--allowed-networks".into(),
            "127.0.0.1/32".into(),
            "--dns-pins".into(),
            pins.join(","),
            "--retry-schedule".into(),
            "60".into(),
        ],
        ..Options::default()
    };
    let server = Server::start_with(options).await;
    let publisher = server.token("publisher", None);
    let create = |client: &Token, url: String| {
        let query = format!(
            r#"mutation {{ webhook {{ createHttpsWebhook(input: {{ scope: "store/order/*", destination: "{url}" }}) {{ webhook {{ id }} }} }} }}"#
        );
        let (server, client) = (&server, client.clone());
        async move { server.gql(&client, &query).await }
    };
    let mut made = Vec::new();
    for (i, ip) in FORBIDDEN.iter().enumerate() {
        let client = server.client("shop");
        let literal = match ip.contains(':') {
            true => format!("https://[{ip}]/hook"),
            false => format!("https://{ip}/hook"),
        };
        let body = create(&client, literal.clone()).await;
        assert!(
            message(&body).contains("/destination must not point to"),
            "{literal} at creation: {body}"
        );
        let body = create(&client, format!("https://case-{i}.ssrf.test/hook")).await;
        let id = body["data"]["webhook"]["createHttpsWebhook"]["webhook"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("a name is not judged at creation: {body}"))
            .to_owned();
        made.push((ip, client, id));
    }
    let control = server.client("shop");
    let port = hook.url.rsplit(':').next().unwrap().to_owned();
    let body = create(&control, format!("http://allowed.ssrf.test:{port}/")).await;
    assert!(body.get("errors").is_none(), "{body}");

    server
        .publish(&publisher, "shop", "store/order/created", json!({"id": 1}))
        .await;
    hook.wait_for(1, crate::common::hooks::WAIT).await;
    for (ip, client, id) in &made {
        let attempt = crate::common::receiver::eventually(
            &format!("the attempt to {ip}"),
            crate::common::hooks::WAIT,
            || async {
                let log = crate::common::hooks::deliveries(&server, client, id).await;
                log.first()
                    .and_then(|d| d["attempts"].as_array()?.first().cloned())
            },
        )
        .await;
        let error = attempt["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("forbidden address"),
            "{ip} at connect time: {attempt}"
        );
    }
    assert_eq!(hook.count(), 1, "only the control was delivered");
}
