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
async fn assert_refused(
    log: &logs::Scope,
    gw: &TestGateway,
    trip: &oidc::Trip,
    reason: &str,
    browser: &mut Browser,
) {
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
    assert!(
        page.body.contains(&correlation),
        "the page shows the correlation id"
    );
    assert!(
        !page
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("guichet_session=") && !c.contains("Max-Age=0")),
        "no session cookie"
    );
    let events = log.audit_of(page);
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["event"] == "login_failure"
                && e["fields"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains(reason))),
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
    assert_eq!(
        trip.page.location(),
        Some("/rp/page?x=1"),
        "back to the exact URL"
    );

    let authorize = trip.authorize.expect("sent to the provider");
    assert!(authorize
        .as_str()
        .starts_with(&format!("{}/authorize?", op.issuer)));
    let q: std::collections::HashMap<String, String> =
        authorize.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert!(
        q["scope"].split(' ').any(|s| s == "openid"),
        "openid always in scope"
    );
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
        assert!(
            !url.contains("access_token") && !url.contains("id_token") && !url.contains("eyJ"),
            "{url}"
        );
    }

    let page = browser
        .send(browser.get_json(&gw.url("/rp/page?x=1")))
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.upstream_header("x-remote-user"), vec!["op-user-1"]);
    assert_eq!(page.upstream_header("x-remote-provider"), vec!["op"]);

    // Replaying the callback finds no transaction: nothing happens.
    let mut other = gw.browser();
    let replay = other.send(other.get(&callback)).await;
    assert_eq!(replay.status, 400);
    assert!(replay
        .set_cookies()
        .iter()
        .all(|c| !c.starts_with("guichet_session=")));
}

#[tokio::test]
async fn rp_token_endpoint_client_secret_basic() {
    let op = MockOp::start().await;
    let gw = gateway(&op, "client_auth: client_secret_basic");
    signed_in(&gw).await;
    let state = op.state();
    let request = state.token_requests.last().expect("token request");
    let basic = request
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(basic.starts_with("Basic "));
    let body = String::from_utf8_lossy(&request.body);
    assert!(
        !body.contains("client_secret"),
        "the secret is not also in the body"
    );
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
    let log = logs::Scope::begin();
    let op = MockOp::start().await;
    op.behave(|b| b.id_token_claims = changes(json!({"nonce": "not-the-nonce"})));
    let gw = gateway(&op, "");
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, &gw, "/rp/", None).await;
    assert_refused(&log, &gw, &trip, "nonce", &mut browser).await;
}

/// Runs a login against a provider misbehaving with `change` and asserts the catalogue's
/// refusal with `reason` in the audit log.
async fn refused_when(change: impl FnOnce(&mut oidc::Behaviour), extra: &str, reason: &str) {
    let log = logs::Scope::begin();
    let op = MockOp::start().await;
    op.behave(change);
    let gw = gateway(&op, extra);
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, &gw, "/rp/", None).await;
    assert_refused(&log, &gw, &trip, reason, &mut browser).await;
}

#[tokio::test]
async fn rp_id_token_aud() {
    refused_when(
        |b| b.id_token_claims = changes(json!({"aud": "another-client"})),
        "",
        "aud",
    )
    .await;
    // An extra audience nobody vouched for: that party could replay the token here.
    refused_when(
        |b| b.id_token_claims = changes(json!({"aud": [CLIENT_ID, "untrusted-client"]})),
        "",
        "audience",
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_aud_missing() {
    refused_when(
        |b| b.id_token_claims = changes(json!({"aud": null})),
        "",
        "id_token: Invalid audiences: must contain `guichet-rp` (found audiences: )",
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_iat() {
    refused_when(
        |b| b.id_token_claims = changes(json!({"iat": null})),
        "",
        "iat",
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_sub() {
    refused_when(
        |b| b.id_token_claims = changes(json!({"sub": null})),
        "",
        "sub",
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_issuer_mismatch() {
    refused_when(
        |b| b.id_token_claims = changes(json!({"iss": "https://evil.example"})),
        "",
        "issuer",
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_expired() {
    refused_when(
        |b| b.id_token_claims = changes(json!({"exp": 1_000_000_000})),
        "",
        "id_token",
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_kid_absent_single_jwks() {
    let op = MockOp::start().await;
    op.state().keys = vec![OpKey::rsa(0, Some("rsa-1"))];
    op.behave(|b| b.omit_kid = true);
    let gw = gateway(&op, "");
    signed_in(&gw).await;
}

/// Without `kid` and with several candidate keys, Guichet refuses rather than trying each key
/// (OpenID Connect Core 10.1 requires a `kid` then; documented in docs/oidc.md).
#[tokio::test]
async fn rp_id_token_kid_absent_multiple_jwks() {
    let log = logs::Scope::begin();
    let op = MockOp::start().await;
    op.state().keys = vec![OpKey::rsa(0, Some("rsa-1")), OpKey::rsa(1, Some("rsa-2"))];
    op.behave(|b| b.omit_kid = true);
    let gw = gateway(&op, "");
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, &gw, "/rp/", None).await;
    assert_refused(&log, &gw, &trip, "id_token", &mut browser).await;
}

#[tokio::test]
async fn rp_id_token_sig_none() {
    refused_when(|b| b.alg = Alg::None, "", "id_token").await;
}

#[tokio::test]
async fn rp_id_token_bad_sig_rs256() {
    refused_when(
        |b| {
            b.alg = Alg::Rs256;
            b.corrupt_signature = true;
        },
        "",
        "id_token",
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_bad_sig_es256() {
    refused_when(
        |b| {
            b.alg = Alg::Es256;
            b.corrupt_signature = true;
        },
        "",
        "id_token",
    )
    .await;
}

#[tokio::test]
async fn rp_id_token_sig_rs256() {
    let op = MockOp::start().await;
    op.behave(|b| b.alg = Alg::Rs256);
    signed_in(&gateway(&op, "")).await;
}

#[tokio::test]
async fn rp_id_token_sig_es256() {
    let op = MockOp::start().await;
    op.behave(|b| b.alg = Alg::Es256);
    signed_in(&gateway(&op, "")).await;
}

/// HS256 is refused unless configured, and then keyed with the client secret.
#[tokio::test]
async fn rp_id_token_sig_hs256_only_when_allowed() {
    refused_when(|b| b.alg = Alg::Hs256, "", "id_token").await;
    let op = MockOp::start().await;
    op.behave(|b| b.alg = Alg::Hs256);
    signed_in(&gateway(&op, "allowed_algs: [HS256]")).await;
}

#[tokio::test]
async fn rp_id_token_bad_at_hash() {
    refused_when(|b| b.bad_at_hash = true, "", "at_hash").await;
}

#[tokio::test]
async fn rp_userinfo_bad_sub_claim() {
    refused_when(
        |b| b.userinfo_claims = changes(json!({"sub": "someone-else"})),
        "userinfo: fetch",
        "userinfo sub",
    )
    .await;
}

#[tokio::test]
async fn rp_userinfo_sig() {
    for alg in [Alg::Rs256, Alg::Es256] {
        let op = MockOp::start().await;
        op.behave(|b| {
            b.signed_userinfo = true;
            b.userinfo_alg = Some(alg);
            b.userinfo_claims = changes(json!({"given_name": "Signée"}));
        });
        let gw = gateway(&op, "userinfo: fetch");
        let mut browser = signed_in(&gw).await;
        let page = browser.send(browser.get_json(&gw.url("/rp/"))).await;
        assert_eq!(
            page.upstream_header_bytes("x-remote-given-name"),
            Some("Signée".as_bytes().to_vec()),
            "claims of the signed userinfo reach the app ({alg:?})"
        );
        assert_eq!(op.state().userinfo_fetches, 1);
    }
    // Where signed userinfo is required, plain JSON is refused.
    refused_when(|_| {}, "userinfo: require_signed", "not signed").await;
}

/// A login whose id_token is good and whose signed userinfo is not (`change` spoils it): the
/// login gets as far as userinfo, and is refused there for `reason`.
async fn userinfo_refused(change: impl FnOnce(&mut oidc::Behaviour), reason: &str) {
    let log = logs::Scope::begin();
    let op = MockOp::start().await;
    op.behave(|b| {
        b.signed_userinfo = true;
        change(b);
    });
    let gw = gateway(&op, "userinfo: fetch");
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, &gw, "/rp/", None).await;
    assert_refused(&log, &gw, &trip, reason, &mut browser).await;
    assert_eq!(trip.page.status, 403, "{}", trip.page.body);
    assert!(
        trip.page.body.contains("could not be verified"),
        "the unverifiable-answer page: {}",
        trip.page.body
    );
    let state = op.state();
    assert_eq!(state.id_tokens.len(), 1, "an id_token was issued");
    assert_eq!(
        state.userinfo_fetches, 1,
        "the id_token passed, userinfo was read"
    );
}

#[tokio::test]
async fn rp_userinfo_sig_bad_signature() {
    for alg in [Alg::Rs256, Alg::Es256] {
        userinfo_refused(
            |b| {
                b.alg = alg;
                b.userinfo_alg = Some(alg);
                b.corrupt_userinfo_signature = true;
            },
            "JWS: bad signature",
        )
        .await;
    }
}

#[tokio::test]
async fn rp_userinfo_sig_none() {
    userinfo_refused(
        |b| b.userinfo_alg = Some(Alg::None),
        "JWS: signing algorithm none is not allowed",
    )
    .await;
}

#[tokio::test]
async fn rp_userinfo_signed_with_another_issuer() {
    userinfo_refused(
        |b| b.userinfo_claims = changes(json!({"iss": "https://evil.example"})),
        "userinfo iss is not the provider's",
    )
    .await;
}

#[tokio::test]
async fn rp_userinfo_signed_for_another_audience() {
    userinfo_refused(
        |b| b.userinfo_claims = changes(json!({"aud": "another-client"})),
        "userinfo aud does not name this client",
    )
    .await;
    userinfo_refused(
        |b| b.userinfo_claims = changes(json!({"aud": ["another-client", "a-third"]})),
        "userinfo aud does not name this client",
    )
    .await;
}

#[tokio::test]
async fn rp_userinfo_signed_with_another_sub() {
    userinfo_refused(
        |b| b.userinfo_claims = changes(json!({"sub": "someone-else"})),
        "userinfo sub differs from the id_token's",
    )
    .await;
}

#[tokio::test]
async fn rp_discovery_issuer_not_matching_config() {
    let log = logs::Scope::begin();
    let op = MockOp::start().await;
    op.behave(|b| b.discovery_issuer = Some("https://impostor.example".into()));
    let gw = gateway(&op, "");
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, &gw, "/rp/", None).await;
    assert!(trip.authorize.is_none(), "never sent to /authorize");
    assert_eq!(trip.page.status, 502);
    assert!(op.state().authorize_requests.is_empty());
    assert!(log
        .audit_of(&trip.page)
        .iter()
        .any(|e| e["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("discovery issuer"))));
}

#[tokio::test]
async fn rp_key_rotation_op_sign_key() {
    let op = MockOp::start().await;
    let gw = gateway(&op, "");
    signed_in(&gw).await;
    assert_eq!(op.state().jwks_fetches, 1);
    // The provider publishes a new key and signs with it from now on.
    {
        let mut state = op.state();
        state.keys.push(OpKey::rsa(1, Some("rsa-2")));
        state.behaviour.signing_key = Some(2);
    }
    signed_in(&gw).await;
    assert_eq!(op.state().jwks_fetches, 2, "the JWKS was fetched again");
    signed_in(&gw).await;
    assert_eq!(op.state().jwks_fetches, 2, "and then cached");
}

/// Unknown keys make Guichet refetch the JWKS at most once per `jwks_refresh_interval`: a
/// stream of tokens with made-up `kid`s cannot turn it into a load generator.
#[tokio::test]
async fn rp_key_rotation_refetch_is_rate_limited() {
    let op = MockOp::start().await;
    let gw = gateway(&op, "jwks_refresh_interval: 1h");
    signed_in(&gw).await;
    {
        let mut state = op.state();
        state.keys.push(OpKey::rsa(1, Some("rsa-2")));
        state.behaviour.signing_key = Some(2);
    }
    for _ in 0..3 {
        let mut browser = gw.browser();
        let trip = oidc::login(&mut browser, &gw, "/rp/", None).await;
        assert_eq!(trip.page.status, 403);
    }
    assert_eq!(op.state().jwks_fetches, 1, "no refetch within the interval");
}

#[tokio::test]
async fn rp_jwks_with_unparseable_keys() {
    let op = MockOp::start().await;
    op.behave(|b| b.jwks_unknown_keys = true);
    signed_in(&gateway(&op, "")).await;
}

#[tokio::test]
async fn rfc9207_iss_in_callback() {
    // The right iss is accepted.
    let op = MockOp::start().await;
    op.behave(|b| b.callback_iss = true);
    signed_in(&gateway(&op, "")).await;
    // Another issuer's name is a mix-up: refused.
    refused_when(
        |b| {
            b.callback_iss = true;
            b.callback_iss_value = Some("https://other-provider.example".into());
        },
        "",
        "iss",
    )
    .await;
}

#[tokio::test]
async fn an_error_callback_is_a_clear_page_after_state_is_checked() {
    let log = logs::Scope::begin();
    let op = MockOp::start().await;
    op.behave(|b| b.authorize_error = Some("access_denied".into()));
    let gw = gateway(&op, "");
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, &gw, "/rp/", None).await;
    assert_refused(&log, &gw, &trip, "access_denied", &mut browser).await;
    assert!(trip.page.body.contains("did not allow the sign-in"));
    assert!(
        !trip.page.body.contains("<script>"),
        "the provider's text is not echoed"
    );

    // The same error with a state that is not ours (the first browser's, brought by a second
    // browser with a login of its own pending): refused as a forgery, not as a denial.
    let foreign_callback = trip.callback.clone().expect("the provider answered");
    let mut browser = gw.browser();
    let first = browser.send(browser.get(&gw.url("/rp/"))).await;
    assert_eq!(first.status, 302);
    let start = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    assert_eq!(start.status, 302, "a login transaction is pending");
    let page = browser.send(browser.get(&foreign_callback)).await;
    let forged = oidc::Trip {
        authorize: None,
        callback: Some(foreign_callback),
        page,
    };
    assert_refused(&log, &gw, &forged, "state mismatch", &mut browser).await;
    assert_eq!(forged.page.status, 403);
    assert!(
        !forged.page.body.contains("did not allow the sign-in"),
        "not shown as the provider's denial: {}",
        forged.page.body
    );
    assert!(forged.page.body.contains("could not be verified"));
}

#[tokio::test]
async fn a_tampered_state_is_refused() {
    let log = logs::Scope::begin();
    let op = MockOp::start().await;
    let gw = gateway(&op, "");
    let mut browser = gw.browser();
    // Start a login but do not let the provider answer: forge the callback instead.
    let first = browser.send(browser.get(&gw.url("/rp/"))).await;
    assert_eq!(first.status, 302);
    let start = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    let authorize = url::Url::parse(start.location().unwrap()).unwrap();
    let at_op = browser.send(browser.get(authorize.as_str())).await;
    let callback = url::Url::parse(at_op.location().unwrap()).unwrap();
    let mut forged = callback.clone();
    forged.query_pairs_mut().clear();
    for (k, v) in callback.query_pairs() {
        let v = if k == "state" {
            "A".repeat(64)
        } else {
            v.into_owned()
        };
        forged.query_pairs_mut().append_pair(&k, &v);
    }
    let trip = oidc::Trip {
        authorize: Some(authorize),
        callback: Some(forged.to_string()),
        page: browser.send(browser.get(forged.as_str())).await,
    };
    assert_refused(&log, &gw, &trip, "state mismatch", &mut browser).await;
    assert!(
        op.state().token_requests.is_empty(),
        "the code was never redeemed"
    );
}

/// Discovery off: every endpoint from the configuration.
#[tokio::test]
async fn static_endpoints_without_discovery() {
    let op = MockOp::start().await;
    let i = &op.issuer;
    let gw = gateway(
        &op,
        &format!(
            "discovery: false\nendpoints:\n  authorization: \"{i}/authorize\"\n  token: \"{i}/token\"\n  jwks: \"{i}/jwks\"\n  userinfo: \"{i}/userinfo\"\n  end_session: \"{i}/session/end\"\nuserinfo: fetch"
        ),
    );
    let mut browser = signed_in(&gw).await;
    assert_eq!(op.state().userinfo_fetches, 1);
    let page = browser.send(browser.get_json(&gw.url("/rp/"))).await;
    assert_eq!(page.upstream_header("x-remote-user"), vec!["op-user-1"]);
    let requests = op.server.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .all(|r| !r.url.path().contains("well-known")),
        "discovery was never fetched"
    );
}

/// Codes, tokens and the client secret never reach the logs, whatever happens.
#[tokio::test]
async fn no_token_or_secret_in_the_logs() {
    let log = logs::Scope::begin();
    let op = MockOp::start().await;
    op.behave(|b| {
        b.signed_userinfo = true;
        b.alg = Alg::Es256;
    });
    let gw = gateway(&op, "userinfo: fetch");
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, &gw, "/rp/", None).await;
    assert_eq!(trip.page.status, 302);
    // A failing login too (the token exchange is refused).
    op.behave(|b| b.client_auth = ClientAuth::Post);
    let mut other = gw.browser();
    let failed = oidc::login(&mut other, &gw, "/rp/", None).await;
    assert_eq!(failed.page.status, 403);
    let logs = log.text();
    let callback = url::Url::parse(&trip.callback.unwrap()).unwrap();
    let code: String = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert!(!logs.contains(&code), "the code is not logged");
    assert!(
        !logs.contains(CLIENT_SECRET),
        "the client secret is not logged"
    );
    assert!(!logs.contains("eyJ"), "no JWT is logged");
    assert!(!logs.contains("\"at-"), "no access token is logged");
}
