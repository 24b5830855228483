//! OpenID Connect logouts: RP-initiated (to the provider's end-session endpoint and back) and
//! back-channel (the provider tells Guichet a session ended), on one gateway and across two
//! replicas sharing Redis.

use guichet_tests::oidc::{self, Alg, MockOp, CLIENT_ID};
use guichet_tests::{logs, Browser, GatewayOptions, RedisServer, Store, TestGateway};
use serde_json::{json, Map, Value};

fn options(op: &MockOp, store: Store) -> GatewayOptions {
    GatewayOptions {
        store,
        extra_providers: vec![oidc::provider_yaml("oidc", "op", &op.issuer, "")],
        extra_apps: vec![oidc::app_yaml("rp", "/rp", &["op"])],
        ..GatewayOptions::default()
    }
}

async fn signed_in(gw: &TestGateway) -> Browser {
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, gw, "/rp/", None).await;
    assert_eq!(trip.page.status, 302, "{}", trip.page.body);
    browser
}

async fn is_signed_in(browser: &mut Browser, gw: &TestGateway) -> bool {
    let status = browser.send(browser.get_json(&gw.url("/rp/"))).await.status;
    assert!(matches!(status, 200 | 401), "{status}");
    status == 200
}

async fn backchannel(gw: &TestGateway, token: &str) -> u16 {
    let mut client = gw.browser();
    client
        .send(client.post_form(
            &gw.url("/.guichet/backchannel-logout/op"),
            &[("logout_token", token)],
        ))
        .await
        .status
}

fn changes(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("an object")
}

#[tokio::test]
async fn rp_initiated_logout_goes_to_the_provider_and_back() {
    let op = MockOp::start().await;
    let gw = TestGateway::start(options(&op, Store::Memory));
    let mut browser = signed_in(&gw).await;
    // Someone else signs in after: the provider's latest id_token is not this session's.
    let _other = signed_in(&gw).await;
    let own_id_token = op.state().id_tokens[0].clone();

    let out = browser
        .send(browser.get(&gw.url("/.guichet/logout?return_to=%2Frp%2Fbye")))
        .await;
    assert_eq!(out.status, 302);
    assert!(
        !is_signed_in(&mut browser, &gw).await,
        "the local session is over at once"
    );
    let end = url::Url::parse(out.location().unwrap()).unwrap();
    assert!(end
        .as_str()
        .starts_with(&format!("{}/session/end?", op.issuer)));
    let q: std::collections::HashMap<String, String> = end.query_pairs().into_owned().collect();
    assert_eq!(
        q["id_token_hint"], own_id_token,
        "id_token_hint is the id_token this session was signed in with"
    );
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(
        q["post_logout_redirect_uri"],
        format!("http://app.test:{}/.guichet/logout/done", gw.port)
    );
    assert!(q["state"].len() >= 32, "a random state: {}", q["state"]);

    let back = browser.send(browser.get(end.as_str())).await;
    let done = back
        .location()
        .expect("the provider sends the browser back")
        .to_owned();
    let landed = browser.send(browser.get(&done)).await;
    assert_eq!(landed.status, 302);
    assert_eq!(
        landed.location(),
        Some("/rp/bye"),
        "lands where the user asked"
    );

    // The state is single use: a replay only shows the signed-out page.
    let again = browser.send(browser.get(&done)).await;
    assert_eq!(again.status, 200);
    assert!(again.location().is_none());
}

/// rp-init-logout with another or no state, while a logout is pending: the signed-out page,
/// no error loop, no redirect chosen by whoever crafted the link, and the pending logout is
/// neither taken nor spent by the wrong state.
#[tokio::test]
async fn rp_init_logout_other_or_no_state() {
    let log = logs::Scope::begin();
    let op = MockOp::start().await;
    let gw = TestGateway::start(options(&op, Store::Memory));
    // A logout is pending: the user went to the provider, asking to land on /rp/bye.
    let mut user = signed_in(&gw).await;
    let out = user
        .send(user.get(&gw.url("/.guichet/logout?return_to=%2Frp%2Fbye")))
        .await;
    assert_eq!(out.status, 302);
    let end = url::Url::parse(out.location().unwrap()).unwrap();
    let state = guichet_tests::query_value(&end, "state").expect("a state");

    let mut browser = gw.browser();
    for query in [
        "?state=forged".to_owned(),
        String::new(),
        "?state=&return_to=https://evil.example".to_owned(),
        format!("?state={}", "A".repeat(state.len())),
        format!("?state={}", &state[..state.len() - 1]),
        format!("?state={}x", state),
    ] {
        let page = browser
            .send(browser.get(&gw.url(&format!("/.guichet/logout/done{query}"))))
            .await;
        assert_eq!(page.status, 200, "{query}");
        assert!(page.location().is_none(), "{query}: no redirect");
        assert!(
            page.body.contains("déconnecté") || page.body.contains("signed out"),
            "{}",
            page.body
        );
        assert!(
            log.audit_of(&page)
                .iter()
                .any(|e| e["fields"]["event"] == "request_refused"
                    && e["fields"]["reason"]
                        == "return from provider logout with an unknown or missing state"),
            "{query}: refused as an unknown state"
        );
    }
    // The pending logout is still there for its own state, and lands where the user asked.
    let back = user.send(user.get(end.as_str())).await;
    let done = back.location().expect("back from the provider").to_owned();
    assert!(done.contains(&state));
    let landed = user.send(user.get(&done)).await;
    assert_eq!(landed.status, 302);
    assert_eq!(landed.location(), Some("/rp/bye"));
}

#[tokio::test]
async fn backchannel_logout_ends_the_sessions_of_that_sid() {
    let op = MockOp::start().await;
    let gw = TestGateway::start(options(&op, Store::Memory));
    let mut first = signed_in(&gw).await;
    let first_sid = op.state().sids.last().cloned().unwrap();
    let mut second = signed_in(&gw).await;

    let token = op.logout_token(&first_sid, Map::new(), Alg::Rs256);
    assert_eq!(backchannel(&gw, &token).await, 200);
    assert!(
        !is_signed_in(&mut first, &gw).await,
        "that sid's session ended"
    );
    assert!(
        is_signed_in(&mut second, &gw).await,
        "another provider session is untouched"
    );

    // An unknown sid: 200, and nothing changes.
    let token = op.logout_token("sid-unknown", Map::new(), Alg::Rs256);
    assert_eq!(backchannel(&gw, &token).await, 200);
    assert!(is_signed_in(&mut second, &gw).await);

    // Without sid, the subject's every session at this provider ends.
    let token = op.logout_token("", changes(json!({"sid": null})), Alg::Es256);
    assert_eq!(backchannel(&gw, &token).await, 200);
    assert!(!is_signed_in(&mut second, &gw).await);
}

#[tokio::test]
async fn backchannel_logout_malformed_tokens_are_400_and_change_nothing() {
    let op = MockOp::start().await;
    let gw = TestGateway::start(options(&op, Store::Memory));
    let mut browser = signed_in(&gw).await;
    let sid = op.state().sids.last().cloned().unwrap();
    let event = "http://schemas.openid.net/event/backchannel-logout";
    let cases: Vec<(&str, Map<String, Value>, Alg)> = vec![
        ("alg none", Map::new(), Alg::None),
        ("wrong alg (HS256 not allowed)", Map::new(), Alg::Hs256),
        (
            "wrong aud",
            changes(json!({"aud": "another-client"})),
            Alg::Rs256,
        ),
        ("no aud", changes(json!({"aud": null})), Alg::Rs256),
        (
            "wrong iss",
            changes(json!({"iss": "https://evil.example"})),
            Alg::Rs256,
        ),
        ("no events", changes(json!({"events": null})), Alg::Rs256),
        (
            "wrong event",
            changes(json!({"events": {"http://schemas.openid.net/event/other": {}}})),
            Alg::Rs256,
        ),
        (
            "event not an object",
            changes(json!({"events": {event: "yes"}})),
            Alg::Rs256,
        ),
        ("with nonce", changes(json!({"nonce": "n-1"})), Alg::Rs256),
        ("no iat", changes(json!({"iat": null})), Alg::Rs256),
        ("no jti", changes(json!({"jti": null})), Alg::Rs256),
        (
            "expired",
            changes(json!({"exp": 1_000_000_000})),
            Alg::Rs256,
        ),
        (
            "neither sid nor sub",
            changes(json!({"sid": null, "sub": null})),
            Alg::Rs256,
        ),
    ];
    for (name, claims, alg) in cases {
        let token = op.logout_token(&sid, claims, alg);
        assert_eq!(backchannel(&gw, &token).await, 400, "{name}");
        assert!(
            is_signed_in(&mut browser, &gw).await,
            "{name}: session kept"
        );
    }
    // A corrupted signature, garbage, and no token at all.
    op.behave(|b| b.corrupt_signature = true);
    let token = op.logout_token(&sid, Map::new(), Alg::Rs256);
    op.behave(|b| b.corrupt_signature = false);
    assert_eq!(backchannel(&gw, &token).await, 400, "bad signature");
    assert_eq!(backchannel(&gw, "not.a.jwt").await, 400);
    let mut client = gw.browser();
    let page = client
        .send(client.post_form(&gw.url("/.guichet/backchannel-logout/op"), &[]))
        .await;
    assert_eq!(page.status, 400);
    // A provider that declares no back-channel endpoint (the local one): the generic 404 page
    // of unknown endpoints, with its correlation id.
    let token = op.logout_token(&sid, Map::new(), Alg::Rs256);
    let page = client
        .send(client.post_form(
            &gw.url("/.guichet/backchannel-logout/local"),
            &[("logout_token", &token)],
        ))
        .await;
    assert_eq!(page.status, 404);
    let correlation_id = page.headers["x-request-id"].to_str().unwrap();
    assert!(page.body.contains(correlation_id), "{}", page.body);
    assert!(
        is_signed_in(&mut browser, &gw).await,
        "still signed in after all that"
    );
}

#[tokio::test]
async fn backchannel_logout_reaches_every_replica() {
    let redis = RedisServer::start();
    let op = MockOp::start().await;
    let store = || Store::Redis { url: redis.url() };
    let a = TestGateway::start(options(&op, store()));
    let b = TestGateway::start_with_echo(options(&op, store()), a.echo.clone());
    let mut browser = signed_in(&a).await;
    let sid = op.state().sids.last().cloned().unwrap();
    // The same cookie works on both replicas (same host name, another port).
    let mut on_b = Browser::new(b.port);
    on_b.cookies = browser.cookies.clone();
    assert!(is_signed_in(&mut on_b, &b).await);

    // The provider tells replica B; replica A's user is signed out too.
    let token = op.logout_token(&sid, Map::new(), Alg::Rs256);
    assert_eq!(backchannel(&b, &token).await, 200);
    assert!(!is_signed_in(&mut on_b, &b).await);
    // Replica A drops its local copy when the announcement arrives.
    let (page, took) = browser
        .until_signed_out(&a.url("/rp/"), std::time::Duration::from_secs(3))
        .await;
    assert_eq!(page.status, 401);
    assert!(took < guichet_tests::CROSS_REPLICA_BOUND, "{took:?}");
}

/// The generic guard of server-to-server provider endpoints, configured for an OpenID
/// provider: a back-channel logout from outside its allowed sources is refused before the
/// token is even read, and the session stays.
#[tokio::test]
async fn backchannel_logout_from_outside_the_allowed_sources_is_refused() {
    let op = MockOp::start().await;
    let gw = TestGateway::start(GatewayOptions {
        extra_providers: vec![oidc::provider_yaml(
            "oidc",
            "op",
            &op.issuer,
            "server_endpoints: { allowed_sources: [10.0.0.0/8], max_per_minute: 100 }",
        )],
        extra_apps: vec![oidc::app_yaml("rp", "/rp", &["op"])],
        ..GatewayOptions::default()
    });
    let mut browser = signed_in(&gw).await;
    let sid = op.state().sids.last().cloned().unwrap();
    let token = op.logout_token(&sid, Map::new(), Alg::Rs256);
    assert_eq!(backchannel(&gw, &token).await, 403);
    assert!(is_signed_in(&mut browser, &gw).await, "session kept");
}
