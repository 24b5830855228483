//! Several providers at once, and providers that are down, slow or misconfigured.

use std::time::{Duration, Instant};

use guichet_tests::oidc::{self, MockOp};
use guichet_tests::{GatewayOptions, TestGateway, ALICE};

fn two_providers(a: &MockOp, b: &MockOp) -> TestGateway {
    TestGateway::start(GatewayOptions {
        extra_providers: vec![
            oidc::provider_yaml("oidc", "op-a", &a.issuer, "display_name: \"Fournisseur A\""),
            oidc::provider_yaml("oidc", "op-b", &b.issuer, "display_name: \"Fournisseur B\""),
        ],
        extra_apps: vec![oidc::app_yaml("rp", "/rp", &["op-a", "op-b"])],
        ..GatewayOptions::default()
    })
}

#[tokio::test]
async fn the_chooser_offers_both_providers_and_each_login_works() {
    let (a, b) = (MockOp::start().await, MockOp::start().await);
    b.state().subject = "user-at-b".into();
    let gw = two_providers(&a, &b);
    let mut browser = gw.browser();
    let first = browser.send(browser.get(&gw.url("/rp/"))).await;
    assert_eq!(first.status, 302);
    let chooser = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    assert_eq!(chooser.status, 200);
    assert!(
        chooser.body.contains("/.guichet/login?idp=op-a"),
        "{}",
        chooser.body
    );
    assert!(chooser.body.contains("/.guichet/login?idp=op-b"));
    assert!(chooser.body.contains("Fournisseur A") && chooser.body.contains("Fournisseur B"));

    for (idp, op, subject) in [("op-a", &a, "op-user-1"), ("op-b", &b, "user-at-b")] {
        let mut browser = gw.browser();
        let trip = oidc::login(&mut browser, &gw, "/rp/", Some(idp)).await;
        assert_eq!(trip.page.status, 302, "{idp}: {}", trip.page.body);
        assert!(trip.authorize.unwrap().as_str().starts_with(&op.issuer));
        let page = browser.send(browser.get_json(&gw.url("/rp/"))).await;
        assert_eq!(page.upstream_header("x-remote-user"), vec![subject]);
        assert_eq!(page.upstream_header("x-remote-provider"), vec![idp]);
    }
}

/// A code from provider B delivered to provider A's callback (or the reverse) is refused:
/// the login transaction is bound to the provider it was started with.
#[tokio::test]
async fn a_callback_for_one_provider_with_a_code_from_another_fails() {
    let (a, b) = (MockOp::start().await, MockOp::start().await);
    let gw = two_providers(&a, &b);
    let mut browser = gw.browser();
    // Start with B and let B answer...
    browser.send(browser.get(&gw.url("/rp/"))).await;
    let start = browser
        .send(browser.get(&gw.url("/.guichet/login?idp=op-b")))
        .await;
    let at_b = browser.send(browser.get(start.location().unwrap())).await;
    let callback_b = at_b.location().unwrap().to_owned();
    assert!(callback_b.contains("/.guichet/callback/op-b?"));
    // ...but deliver B's code and state to A's callback.
    let to_a = callback_b.replace("/.guichet/callback/op-b?", "/.guichet/callback/op-a?");
    let page = browser.send(browser.get(&to_a)).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page
        .set_cookies()
        .iter()
        .all(|c| !c.starts_with("guichet_session=")));
    assert!(a.state().token_requests.is_empty(), "A never saw B's code");
    assert!(b.state().token_requests.is_empty());
    assert_eq!(
        browser.send(browser.get_json(&gw.url("/rp/"))).await.status,
        401
    );

    // Mix-up defence with RFC 9207: B's answer naming B's issuer fails at A even when the
    // transaction was started with A (the attacker swapped the code into A's flow).
    a.behave(|x| x.callback_iss = true);
    b.behave(|x| x.callback_iss = true);
    let mut victim = gw.browser();
    victim.send(victim.get(&gw.url("/rp/"))).await;
    let start = victim
        .send(victim.get(&gw.url("/.guichet/login?idp=op-a")))
        .await;
    let at_a = victim.send(victim.get(start.location().unwrap())).await;
    let mut callback = url::Url::parse(at_a.location().unwrap()).unwrap();
    let state: String = callback
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    callback
        .query_pairs_mut()
        .clear()
        .append_pair("code", "code-from-b")
        .append_pair("state", &state)
        .append_pair("iss", &b.issuer);
    let page = victim.send(victim.get(callback.as_str())).await;
    assert_eq!(page.status, 403);
    assert!(
        a.state().token_requests.is_empty(),
        "refused before redeeming anything"
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_an_error_page_and_a_metric_and_nothing_else() {
    let dead = format!("http://127.0.0.1:{}", guichet_tests::free_port());
    let gw = TestGateway::start(GatewayOptions {
        extra_providers: vec![oidc::provider_yaml("oidc", "down", &dead, "timeout: 2s")],
        extra_apps: vec![oidc::app_yaml("rp", "/rp", &["down"])],
        ..GatewayOptions::default()
    });
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, &gw, "/rp/", None).await;
    assert_eq!(trip.page.status, 502);
    assert!(trip
        .page
        .body
        .contains("identity provider is not responding"));
    let metrics = reqwest::get(gw.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"provider="down""#) && metrics.contains(r#"outcome="unavailable""#),
        "{metrics}"
    );
    // Other apps and providers are unaffected.
    let mut other = gw.browser();
    let page = other.login(&gw, "/", ALICE).await;
    assert_eq!(page.status, 302);
}

#[tokio::test]
async fn a_slow_token_endpoint_is_cut_off_by_the_timeout() {
    let op = MockOp::start().await;
    op.behave(|b| b.token_delay = Some(Duration::from_secs(10)));
    let gw = TestGateway::start(GatewayOptions {
        extra_providers: vec![oidc::provider_yaml("oidc", "op", &op.issuer, "timeout: 1s")],
        extra_apps: vec![oidc::app_yaml("rp", "/rp", &["op"])],
        ..GatewayOptions::default()
    });
    let mut browser = gw.browser();
    let started = Instant::now();
    let trip = oidc::login(&mut browser, &gw, "/rp/", None).await;
    assert_eq!(trip.page.status, 502, "{}", trip.page.body);
    // Not a timing assertion on the gateway's speed: only that it did not wait 10 s.
    assert!(started.elapsed() < Duration::from_secs(9));
    assert_eq!(
        browser.send(browser.get_json(&gw.url("/rp/"))).await.status,
        401
    );
}

#[test]
fn provider_configuration_errors_name_the_field() {
    let cases = [
        ("kind: oidc\n    id: x\n    client_id: c\n    client_secret: s", "providers[2].issuer"),
        (
            "kind: oidc\n    id: x\n    issuer: \"http://idp.example.org\"\n    client_id: c\n    client_secret: s",
            "providers[2].issuer",
        ),
        (
            "kind: oidc\n    id: x\n    issuer: \"https://idp.example.org\"\n    client_id: c\n    client_secret: s\n    allowed_algs: [none]",
            "providers[2].allowed_algs",
        ),
        (
            "kind: oidc\n    id: x\n    issuer: \"https://idp.example.org\"\n    client_id: c",
            "providers[2].client_secret",
        ),
        (
            "kind: franceconnect\n    id: x\n    client_id: c\n    client_secret: s",
            "providers[2].environment",
        ),
        (
            "kind: franceconnect\n    id: x\n    environment: integration\n    client_id: c\n    client_secret: s\n    userinfo: fetch",
            "providers[2].userinfo",
        ),
        (
            "kind: oidc\n    id: x\n    issuer: \"https://idp.example.org\"\n    client_id: c\n    client_secret: s\n    authorize_params: { state: fixed }",
            "providers[2].authorize_params.state",
        ),
        (
            "kind: oidc\n    id: x\n    issuer: \"https://idp.example.org\"\n    client_id: c\n    client_auth: private_key_jwt",
            "providers[2].private_key_file",
        ),
        (
            "kind: oidc\n    id: x\n    issuer: \"https://idp.example.org\"\n    client_id: c\n    client_secret: s\n    discovery: false",
            "providers[2].endpoints",
        ),
    ];
    for (provider, path) in cases {
        let yaml = guichet_tests::config_yaml(
            &GatewayOptions {
                extra_providers: vec![format!("  - {provider}\n")],
                ..GatewayOptions::default()
            },
            1,
            2,
            "127.0.0.1:3".parse().unwrap(),
        );
        let error = guichet_gateway::config::Config::from_yaml(&yaml).unwrap_err();
        assert_eq!(error.path, path, "{provider}: {error}");
    }
    // The production FranceConnect needs nothing but its environment and credentials.
    let yaml = guichet_tests::config_yaml(
        &GatewayOptions {
            extra_providers: vec!["  - kind: franceconnect\n    id: fc\n    environment: production\n    client_id: c\n    client_secret: s\n".into()],
            ..GatewayOptions::default()
        },
        1,
        2,
        "127.0.0.1:3".parse().unwrap(),
    );
    let config = guichet_gateway::config::Config::from_yaml(&yaml).unwrap();
    assert_eq!(
        config.oidc["fc"].issuer,
        "https://oidc.franceconnect.gouv.fr/api/v2"
    );
}
