//! OpenID Connect relying party: one test per conformance case of the security catalogue
//! (section 1), against the mock provider of the test kit.

use guichet_tests::logs;
use guichet_tests::oidc::{self, Alg, ClientAuth, MockOp, OpKey, CLIENT_ID, CLIENT_SECRET};
use guichet_tests::{Browser, GatewayOptions, TestGateway};
use serde_json::{json, Map, Value};

/// A gateway with one OIDC provider `op` (extra provider settings in `extra`) and the app `rp`
/// at `/rp` signing in with it.
fn gateway(op: &MockOp, extra: &str) -> TestGateway {
    TestGateway::start(GatewayOptions {
        extra_providers: vec![oidc::provider_yaml("oidc", "op", &op.issuer, extra)],
        extra_apps: vec![oidc::app_yaml("rp", "/rp", &["op"])],
        ..GatewayOptions::default()
    })
}

fn changes(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("an object")
}

/// Logs in at `/rp/`; asserts success and returns the browser, signed in.
async fn signed_in(gw: &TestGateway) -> Browser {
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, gw, "/rp/", None).await;
    assert_eq!(trip.page.status, 302, "login succeeds: {}", trip.page.body);
    assert_eq!(trip.page.location(), Some("/rp/"));
    browser
}

/// Asserts a login was refused the catalogue's way: the generic page with a correlation id, no
/// session, the reason (containing `reason`) in the audit log, never the app.
async fn assert_refused(gw: &TestGateway, trip: &oidc::Trip, reason: &str, browser: &mut Browser) {
    let page = &trip.page;
    assert!(
        matches!(page.status, 400..=599),
        "refused, got {}: {}",
        page.status,
        page.body
    );
    assert!(page.body.contains("Connexion impossible") && page.body.contains("Sign-in failed"));
    let correlation = page
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("correlation id header")
        .to_owned();
    assert!(page.body.contains(&correlation), "the page shows the correlation id");
    assert!(
        !page.set_cookies().iter().any(|c| c.starts_with("guichet_session=") && !c.contains("Max-Age=0")),
        "no session cookie"
    );
    let events = logs::audit_events(&correlation);
    assert!(
        events.iter().any(|e| e["fields"]["event"] == "login_failure"
            && e["fields"]["reason"].as_str().is_some_and(|r| r.contains(reason))),
        "audit names the reason {reason:?}: {events:?}"
    );
    let after = browser.send(browser.get_json(&gw.url("/rp/"))).await;
    assert_eq!(after.status, 401, "not signed in");
}

#[tokio::test]
async fn rp_response_type_code() {
    let op = MockOp::start().await;
    let gw = gateway(&op, "");
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, &gw, "/rp/page?x=1", None).await;
    assert_eq!(trip.page.status, 302, "{}", trip.page.body);
    assert_eq!(trip.page.location(), Some("/rp/page?x=1"), "back to the exact URL");

    let authorize = trip.authorize.expect("sent to the provider");
    assert!(authorize.as_str().starts_with(&format!("{}/authorize?", op.issuer)));
    let q: std::collections::HashMap<String, String> =
        authorize.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert!(q["scope"].split(' ').any(|s| s == "openid"), "openid always in scope");
    assert_eq!(
        q["redirect_uri"],
        format!("http://app.test:{}/.guichet/callback/op", gw.port),
        "redirect_uri from configuration"
    );
    for name in ["state", "nonce"] {
        assert_eq!(q[name].len(), 64, "{name} has 64 characters");
        assert!(q[name].chars().all(|c| c.is_ascii_alphanumeric()));
    }
    assert_ne!(q["state"], q["nonce"]);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);

    // No token ever travels in a URL: the callback carries a code, the landing page nothing.
    let callback = trip.callback.expect("came back");
    for url in [callback.as_str(), trip.page.location().unwrap()] {
        assert!(!url.contains("access_token") && !url.contains("id_token") && !url.contains("eyJ"), "{url}");
    }

    let page = browser.send(browser.get_json(&gw.url("/rp/page?x=1"))).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.upstream_header("x-remote-user"), vec!["op-user-1"]);
    assert_eq!(page.upstream_header("x-remote-provider"), vec!["op"]);

    // Replaying the callback finds no transaction: nothing happens.
    let mut other = gw.browser();
    let replay = other.send(other.get(&callback)).await;
    assert_eq!(replay.status, 400);
    assert!(replay.set_cookies().iter().all(|c| !c.starts_with("guichet_session=")));
}

#[tokio::test]
async fn rp_token_endpoint_client_secret_basic() {
    let op = MockOp::start().await;
    let gw = gateway(&op, "client_auth: client_secret_basic");
    signed_in(&gw).await;
    let state = op.state();
    let request = state.token_requests.last().expect("token request");
    let basic = request.headers.get("authorization").unwrap().to_str().unwrap();
    assert!(basic.starts_with("Basic "));
    let body = String::from_utf8_lossy(&request.body);
    assert!(!body.contains("client_secret"), "the secret is not also in the body");
    assert!(!body.contains(&CLIENT_SECRET[..5]));
}

#[tokio::test]
async fn rp_token_endpoint_client_secret_post() {
    let op = MockOp::start().await;
    op.behave(|b| b.client_auth = ClientAuth::Post);
    let gw = gateway(&op, "client_auth: client_secret_post");
    signed_in(&gw).await;
    let state = op.state();
    let request = state.token_requests.last().expect("token request");
    assert!(request.headers.get("authorization").is_none());
}

#[tokio::test]
async fn rp_token_endpoint_private_key_jwt() {
    let op = MockOp::start().await;
    op.behave(|b| b.client_auth = ClientAuth::PrivateKeyJwt);
    let gw = gateway(
        &op,
        &format!(
            "client_auth: private_key_jwt\nprivate_key_file: \"{}\"\nprivate_key_id: guichet-1",
            oidc::client_key_path()
        ),
    );
    signed_in(&gw).await;
}

#[tokio::test]
async fn rp_nonce_invalid() {
    let op = MockOp::start().await;
    op.behave(|b| b.id_token_claims = changes(json!({"nonce": "not-the-nonce"})));
    let gw = gateway(&op, "");
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, &gw, "/rp/", None).await;
    assert_refused(&gw, &trip, "nonce", &mut browser).await;
}
