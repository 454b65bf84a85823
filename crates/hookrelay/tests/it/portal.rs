//! The portal's links, sessions and routes through the real binary and HTTP API, on both
//! backends (docs/portal.md). The pages themselves are driven in Chromium by
//! tests/browser/.

use std::time::Duration;

use crate::common::receiver::{eventually, Receiver, Reply};
use crate::common::*;
use serde_json::{json, Value};

/// The `code` of a plain HTTP error answer (`{"error": {"code", "message"}}`).
fn http_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// `portal link` through the CLI, for links to this server: the URL and its secret.
fn link(server: &Server, args: &[&str]) -> (String, String) {
    let mut all = vec!["portal", "link", "--public-url", &server.base];
    all.extend_from_slice(args);
    let out: Value = serde_json::from_str(&server.cli(&all)).expect("link json");
    let url = out["url"].as_str().expect("url").to_owned();
    assert!(out["expiresAt"].as_str().is_some(), "{out}");
    let secret = url
        .rsplit_once("/portal/open/")
        .expect("an /portal/open/ link")
        .1
        .to_owned();
    (url, secret)
}

/// `POST /portal/api/session`: status and body.
async fn exchange(server: &Server, secret: &str) -> (u16, Value) {
    let resp = server
        .http
        .post(format!("{}/portal/api/session", server.base))
        .json(&json!({ "link": secret }))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A session opened from a fresh link with `args`.
async fn session(server: &Server, args: &[&str]) -> Token {
    let (_, secret) = link(server, args);
    let (status, body) = exchange(server, &secret).await;
    assert_eq!(status, 201, "{body}");
    Token {
        client_id: body["clientId"].as_str().unwrap_or("portal").to_owned(),
        token: body["session"].as_str().expect("session").to_owned(),
    }
}

async fn get(server: &Server, path: &str) -> reqwest::Response {
    server
        .http
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .expect("request")
}

async fn create_subscription(server: &Server, token: &Token, path: &str, url: &str) -> String {
    let (status, body) = server
        .gql_at(
            path,
            token,
            r#"mutation($url: String!) { createEventSubscription(input: {
                destination: { webhook: { url: $url, method: POST } }, eventType: "ORDER_CONFIRMED" })
                { subscriptionId } }"#,
            json!({ "url": url }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["createEventSubscription"]["subscriptionId"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

async fn subscription_ids(server: &Server, token: &Token, path: &str) -> Vec<String> {
    let (_, body) = server
        .gql_at(
            path,
            token,
            "{ eventSubscriptions { edges { node { subscriptionId } } } }",
            json!({}),
        )
        .await;
    let mut ids: Vec<String> = body["data"]["eventSubscriptions"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| e["node"]["subscriptionId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_link_opens_one_session_then_says_it_was_used() {
    let server = Server::start().await;
    server.cli(&["store", "create", "s1"]);
    let (url, secret) = link(&server, &["--store", "s1"]);
    assert!(url.starts_with(&server.base), "{url} under {}", server.base);

    // Opening it shows the app, with the portal's headers; it is not used up yet (a link
    // preview that fetches it leaves it working).
    for _ in 0..2 {
        let page = get(&server, &format!("/portal/open/{secret}")).await;
        assert_eq!(page.status(), 200);
        let headers = page.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        for part in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{csp}");
        }
        assert!(
            !csp.contains("unsafe-eval") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert!(page.text().await.unwrap().contains("/portal/assets/"));
    }

    let (status, opened) = exchange(&server, &secret).await;
    assert_eq!(status, 201, "{opened}");
    assert_eq!(opened["role"], "store-admin");
    assert_eq!(opened["store"], "s1");
    assert_eq!(opened["idleTimeoutSeconds"], 3600);
    let session = opened["session"].as_str().unwrap();
    assert!(session.starts_with("hrp_"));

    // Used: both the page and the exchange say so, with 410 and no data.
    let page = get(&server, &format!("/portal/open/{secret}")).await;
    assert_eq!(page.status(), 410);
    let text = page.text().await.unwrap();
    assert!(text.contains("already been used"), "{text}");
    assert!(!text.contains("s1"), "no data of the store: {text}");
    let (status, body) = exchange(&server, &secret).await;
    assert_eq!((status, http_code(&body)), (410, "LinkUsed"), "{body}");

    // Forged: 401.
    let page = get(&server, "/portal/open/hrl_forged").await;
    assert_eq!(page.status(), 401);
    assert!(page.text().await.unwrap().contains("not valid"));
    let (status, body) = exchange(&server, "hrl_forged").await;
    assert_eq!((status, http_code(&body)), (401, "LinkInvalid"), "{body}");

    // The session is a store admin's through the public API, on its own store only.
    let token = Token {
        client_id: "portal".into(),
        token: session.to_owned(),
    };
    let (status, body) = server
        .gql_at(
            "/stores/s1/graphql",
            &token,
            "{ storeHash: store { storeHash } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let me: Value = server
        .http
        .get(format!("{}/portal/api/me", server.base))
        .bearer_auth(session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "store-admin");
    assert_eq!(me["store"], "s1");

    // Neither secret reaches a log line.
    let logs = server.logs.lock().unwrap().join("\n");
    assert!(!logs.contains(&secret) && !logs.contains(session), "{logs}");
}

#[tokio::test]
async fn an_expired_link_is_refused_and_ttls_are_bounded() {
    let server = Server::start().await;
    server.cli(&["store", "create", "s1"]);
    let (_, secret) = link(&server, &["--store", "s1", "--ttl", "1s"]);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let page = get(&server, &format!("/portal/open/{secret}")).await;
    assert_eq!(page.status(), 410);
    assert!(page.text().await.unwrap().contains("expired"));
    let (status, body) = exchange(&server, &secret).await;
    assert_eq!((status, http_code(&body)), (410, "LinkExpired"), "{body}");

    // Without a public URL, links start with http:// and the listen address.
    let out = server.cli(&[
        "portal",
        "link",
        "--store",
        "s1",
        "--listen",
        "127.0.0.1:9000",
    ]);
    assert!(
        out.contains(r#""url":"http://127.0.0.1:9000/portal/open/hrl_"#),
        "{out}"
    );

    for (args, says) in [
        (vec!["--store", "s1", "--ttl", "25h"], "at most 24h"),
        (vec!["--store", "s1", "--ttl", "soon"], "not a duration"),
        (vec!["--store", "nope"], "unknown store"),
        (
            vec!["--store", "s1", "--client-id", "ghost"],
            "not an active client",
        ),
    ] {
        let mut all = vec!["portal", "link"];
        all.extend(args);
        let err = server.cli_fails(&all);
        assert!(err.contains(says), "{all:?}: {err}");
    }
}

#[tokio::test]
async fn a_client_link_sees_what_the_clients_token_sees_and_no_other_store() {
    let server = Server::start().await;
    let receiver = Receiver::ok().await;
    let c1 = server.client("s1");
    let c2 = server.client("s1");
    let other = server.client("s2");
    let mine = create_subscription(&server, &c1, "/graphql", &format!("{}/a", receiver.url)).await;
    let theirs =
        create_subscription(&server, &c2, "/graphql", &format!("{}/b", receiver.url)).await;
    let foreign =
        create_subscription(&server, &other, "/graphql", &format!("{}/c", receiver.url)).await;

    let as_c1 = session(&server, &["--store", "s1", "--client-id", &c1.client_id]).await;
    let as_store = session(&server, &["--store", "s1"]).await;
    for path in ["/graphql", "/stores/s1/graphql"] {
        assert_eq!(
            subscription_ids(&server, &as_c1, path).await,
            subscription_ids(&server, &c1, path).await
        );
        assert_eq!(
            subscription_ids(&server, &as_c1, path).await,
            vec![mine.clone()]
        );
    }
    let mut all = vec![mine.clone(), theirs.clone()];
    all.sort();
    assert_eq!(subscription_ids(&server, &as_store, "/graphql").await, all);

    // Another client's and another store's ids are refused, as for the client's token.
    for (token, id) in [(&as_c1, &theirs), (&as_c1, &foreign), (&as_store, &foreign)] {
        for query in [
            "query($id: String!) { eventSubscription(subscriptionId: $id) { subscriptionId } }",
            "query($id: String!) { deliveries(subscriptionId: $id) { edges { node { id } } } }",
            "query($id: ID!) { deliveryStats(subscriptionId: $id) { succeeded } }",
            "mutation($id: String!) { deleteEventSubscription(subscriptionId: $id) { subscriptionId } }",
            "mutation($id: String!) { rotateSigningSecret(subscriptionId: $id) { subscriptionId } }",
        ] {
            let (_, body) = server
                .gql_at("/graphql", token, query, json!({ "id": id }))
                .await;
            assert_eq!(classification(&body), "AccessDeniedError", "{query}: {body}");
        }
    }
    // Another store's path: refused before anything runs.
    let (status, body) = server
        .gql_at("/stores/s2/graphql", &as_store, "{ eventTypes }", json!({}))
        .await;
    assert_eq!(status, 403, "{body}");
    // What was refused is still there.
    assert_eq!(
        subscription_ids(&server, &other, "/graphql").await,
        vec![foreign]
    );
    // A store session cannot reach the operator console.
    let resp = server
        .http
        .get(format!("{}/portal/api/console", server.base))
        .bearer_auth(&as_store.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn revoking_the_client_ends_its_session_at_once() {
    let server = Server::start().await;
    let c1 = server.client("s1");
    let as_c1 = session(&server, &["--store", "s1", "--client-id", &c1.client_id]).await;
    let (status, _) = server
        .gql_at("/graphql", &as_c1, "{ eventTypes }", json!({}))
        .await;
    assert_eq!(status, 200);
    let (_, pending) = link(&server, &["--store", "s1", "--client-id", &c1.client_id]);
    server.cli(&["token", "revoke", "--client-id", &c1.client_id]);
    let (status, body) = server
        .gql_at("/graphql", &as_c1, "{ eventTypes }", json!({}))
        .await;
    assert_eq!((status, http_code(&body)), (401, "SessionEnded"), "{body}");
    let (status, _) = exchange(&server, &pending).await;
    assert_eq!(status, 401, "a revoked client's link opens nothing");
}

#[tokio::test]
async fn create_portal_link_for_store_admins_and_admins_under_the_public_url() {
    let server = Server::start_with(Options {
        args: vec![
            "--allow-http".into(),
            "--public-url".into(),
            "https://hooks.example.com/".into(),
        ],
        envs: Vec::new(),
    })
    .await;
    let admin_of_store = server.token("store-admin", Some("s1"));
    let c1 = server.client("s1");
    let foreign = server.client("s2");
    let admin = server.token("admin", None);
    let create = r#"mutation($input: CreatePortalLinkInput) { createPortalLink(input: $input) { url expiresAt } }"#;

    let (_, body) = server
        .gql_at("/graphql", &admin_of_store, create, json!({}))
        .await;
    let url = body["data"]["createPortalLink"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(
        url.starts_with("https://hooks.example.com/portal/open/hrl_"),
        "{url}"
    );
    let expires = unix_of(
        body["data"]["createPortalLink"]["expiresAt"]
            .as_str()
            .unwrap(),
    );
    assert!(
        (expires - unix_now() - 900).abs() <= 5,
        "15 minutes by default"
    );

    let (_, body) = server
        .gql_at(
            "/stores/s1/graphql",
            &admin,
            create,
            json!({ "input": { "clientId": c1.client_id, "ttl": "2h" } }),
        )
        .await;
    let secret = body["data"]["createPortalLink"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .rsplit_once('/')
        .unwrap()
        .1
        .to_owned();
    let (status, opened) = exchange(&server, &secret).await;
    assert_eq!(status, 201);
    assert_eq!(opened["clientId"], c1.client_id.as_str());
    assert_eq!(opened["role"], "client");

    // Refused, with nothing made: a client's token, a too long ttl, another store's client.
    let (_, body) = server.gql_at("/graphql", &c1, create, json!({})).await;
    assert_eq!(classification(&body), "AccessDeniedError", "{body}");
    for (input, says) in [
        (json!({ "ttl": "25h" }), "/createPortalLink/ttl"),
        (json!({ "ttl": "a while" }), "/createPortalLink/ttl"),
        (
            json!({ "clientId": foreign.client_id }),
            "/createPortalLink/clientId",
        ),
    ] {
        let (_, body) = server
            .gql_at(
                "/graphql",
                &admin_of_store,
                create,
                json!({ "input": input }),
            )
            .await;
        assert_eq!(classification(&body), "ValidationError", "{body}");
        assert!(message(&body).contains(says), "{body}");
    }
}

#[tokio::test]
async fn cross_origin_requests_are_refused_and_change_nothing() {
    let server = Server::start().await;
    server.cli(&["store", "create", "s1"]);
    let (_, secret) = link(&server, &["--store", "s1"]);
    // A page of another site posting the link (as a form or fetch would): refused, and the
    // link still works afterwards.
    for (name, value) in [
        ("Origin", "http://localhost:9999"),
        ("Origin", "null"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let resp = server
            .http
            .post(format!("{}/portal/api/session", server.base))
            .header(name, value)
            .header("Content-Type", "text/plain")
            .body(json!({ "link": secret }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{name}: {value}");
    }
    let page = get(&server, &format!("/portal/open/{secret}")).await;
    assert_eq!(
        page.status(),
        200,
        "the refused requests did not use the link"
    );
    let (status, opened) = exchange(&server, &secret).await;
    assert_eq!(status, 201);
    let session = opened["session"].as_str().unwrap();
    // The session itself is refused from another origin, on GraphQL and on logout.
    let resp = server
        .http
        .post(format!("{}/stores/s1/graphql", server.base))
        .bearer_auth(session)
        .header("Origin", "http://localhost:9999")
        .json(&json!({ "query": "{ eventTypes }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = server
        .http
        .post(format!("{}/portal/api/logout", server.base))
        .bearer_auth(session)
        .header("Origin", "http://localhost:9999")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // From its own origin it works, and logout ends it.
    let own = server.base.clone();
    let resp = server
        .http
        .post(format!("{}/portal/api/logout", server.base))
        .bearer_auth(session)
        .header("Origin", own)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = server
        .http
        .get(format!("{}/portal/api/me", server.base))
        .bearer_auth(session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn frame_ancestors_come_from_the_option() {
    let server = Server::start_with(Options {
        args: vec![
            "--portal-frame-ancestors".into(),
            "http://localhost:3000, https://dash.example.com".into(),
        ],
        envs: Vec::new(),
    })
    .await;
    let page = get(&server, "/portal/").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors http://localhost:3000 https://dash.example.com"),
        "{csp}"
    );
    assert!(page.headers().get("x-frame-options").is_none());

    let dir = tempfile::tempdir().unwrap();
    let err = cli_fails(&[
        "serve",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--portal-frame-ancestors",
        "https://a.example.com; script-src *",
    ]);
    assert!(err.contains("portal_frame_ancestors"), "{err}");
}

#[tokio::test]
async fn delivery_stats_and_the_operator_console() {
    let server = Server::start().await;
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let failing = fail.clone();
    let receiver = Receiver::start(move |_, _| {
        if failing.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::status(500).body("down for maintenance")
        } else {
            Reply::status(200)
        }
    })
    .await;
    let c1 = server.client("s1");
    let publisher = server.token("publisher", None);
    let sub =
        create_subscription(&server, &c1, "/graphql", &format!("{}/hook", receiver.url)).await;
    server
        .publish(&publisher, "s1", "ORDER_CONFIRMED", json!({"orderId": "1"}))
        .await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    server
        .publish(&publisher, "s1", "ORDER_CONFIRMED", json!({"orderId": "2"}))
        .await;
    let stats_query = "query($id: ID!) { deliveryStats(subscriptionId: $id) { buckets { start succeeded failed } succeeded failed successRate lastError { at statusCode error } } }";
    let stats = eventually("both attempts counted", Duration::from_secs(15), || async {
        let (_, body) = server
            .gql_at("/graphql", &c1, stats_query, json!({ "id": sub }))
            .await;
        let stats = body["data"]["deliveryStats"].clone();
        (stats["succeeded"].as_u64() >= Some(1) && stats["failed"].as_u64() >= Some(1))
            .then_some(stats)
    })
    .await;
    assert_eq!(stats["buckets"].as_array().unwrap().len(), 24);
    let rate = stats["successRate"].as_f64().unwrap();
    assert!(rate > 0.0 && rate < 1.0, "{stats}");
    assert_eq!(stats["lastError"]["statusCode"], 500, "{stats}");
    let (_, body) = server
        .gql_at(
            "/graphql",
            &c1,
            "query($id: ID!) { deliveryStats(subscriptionId: $id, hours: 0) { succeeded } }",
            json!({ "id": sub }),
        )
        .await;
    assert_eq!(classification(&body), "ValidationError", "{body}");

    // The log's time filter (the portal's "from / to" fields).
    let in_window = |since: String, until: String| {
        let server = &server;
        let c1 = &c1;
        async move {
            let (_, body) = server
                .gql_at(
                    "/graphql",
                    c1,
                    "query($s: DateTime, $u: DateTime) { deliveries(since: $s, until: $u) { edges { node { id } } } }",
                    json!({ "s": since, "u": until }),
                )
                .await;
            body["data"]["deliveries"]["edges"]
                .as_array()
                .unwrap_or_else(|| panic!("{body}"))
                .len()
        }
    };
    let at = |offset: i64| (chrono::Utc::now() + chrono::Duration::seconds(offset)).to_rfc3339();
    assert_eq!(in_window(at(-600), at(600)).await, 2);
    assert_eq!(in_window(at(60), at(600)).await, 0);
    assert_eq!(in_window(at(-600), at(-300)).await, 0);
    let (_, body) = server
        .gql_at(
            "/graphql",
            &c1,
            "query($s: DateTime, $u: DateTime) { deliveries(since: $s, until: $u) { edges { node { id } } } }",
            json!({ "s": at(600), "u": at(-600) }),
        )
        .await;
    assert_eq!(classification(&body), "ValidationError", "{body}");

    // Newest first, paging towards older ones.
    let page = |after: Option<String>| {
        let server = &server;
        let c1 = &c1;
        async move {
            let (_, body) = server
                .gql_at(
                    "/graphql",
                    c1,
                    "query($after: String) { deliveries(newestFirst: true, first: 1, after: $after) { edges { cursor node { id createdAt } } pageInfo { hasNextPage } } }",
                    json!({ "after": after }),
                )
                .await;
            body["data"]["deliveries"].clone()
        }
    };
    let oldest_first = server
        .gql_at(
            "/graphql",
            &c1,
            "{ deliveries { edges { node { id } } } }",
            json!({}),
        )
        .await
        .1["data"]["deliveries"]["edges"]
        .clone();
    let first = page(None).await;
    assert_eq!(
        first["edges"][0]["node"]["id"], oldest_first[1]["node"]["id"],
        "{first}"
    );
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let cursor = first["edges"][0]["cursor"].as_str().unwrap().to_owned();
    let second = page(Some(cursor)).await;
    assert_eq!(
        second["edges"][0]["node"]["id"], oldest_first[0]["node"]["id"],
        "{second}"
    );
    assert_eq!(second["pageInfo"]["hasNextPage"], false);

    let admin = session(&server, &["--admin"]).await;
    let console: Value = server
        .http
        .get(format!("{}/portal/api/console", server.base))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stores: Vec<&str> = console["stores"]
        .as_array()
        .unwrap_or_else(|| panic!("{console}"))
        .iter()
        .map(|s| s["storeHash"].as_str().unwrap())
        .collect();
    assert_eq!(stores, ["s1"], "{console}");
    assert_eq!(console["stores"][0]["subscriptions"], 1);
    assert_eq!(console["deliveriesPerMinute"].as_array().unwrap().len(), 60);
    let attempts: u64 = console["deliveriesPerMinute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["succeeded"].as_u64().unwrap() + m["failed"].as_u64().unwrap())
        .sum();
    assert!(attempts >= 2, "{console}");
    for key in ["due", "scheduled", "parked", "inFlight"] {
        assert!(console["backlog"][key].is_u64(), "{console}");
    }
    assert!(console["breakers"].is_array() && console["deactivated"].is_array());
    assert!(console["nodes"].is_array());
}
