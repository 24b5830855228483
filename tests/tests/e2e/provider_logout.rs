//! When a provider's own logout is due but cannot be reached, the local session still ends and
//! the user is told plainly that the provider's may not have (never a silently skipped step).

use guichet_tests::oidc::{self, Alg, ClientAuth, MockOp};
use guichet_tests::{logs, GatewayOptions, TestGateway};

#[tokio::test]
async fn franceconnect_logout_that_cannot_be_reached_is_said_not_skipped() {
    let op = MockOp::start_at("/api/v2").await;
    op.behave(|b| {
        b.alg = Alg::Es256;
        b.client_auth = ClientAuth::Post;
        b.signed_userinfo = true;
    });
    // Endpoints by hand, without an end-session endpoint: FranceConnect's logout is required,
    // so there is nowhere to send the browser.
    let i = &op.issuer;
    let endpoints = format!(
        "discovery: false\nendpoints:\n  authorization: \"{i}/authorize\"\n  token: \"{i}/token\"\n  jwks: \"{i}/jwks\"\n  userinfo: \"{i}/userinfo\""
    );
    let gw = TestGateway::start(GatewayOptions {
        extra_providers: vec![oidc::provider_yaml("franceconnect", "fc", i, &endpoints)],
        extra_apps: vec![oidc::app_yaml("citizens", "/demarches", &["fc"])],
        ..GatewayOptions::default()
    });
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, &gw, "/demarches/", None).await;
    assert_eq!(trip.page.status, 302, "{}", trip.page.body);

    let log = logs::Scope::begin();
    let page = browser
        .send(
            browser
                .post_form(&gw.url("/.guichet/logout"), &[])
                .header("origin", format!("http://app.test:{}", gw.port)),
        )
        .await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(
        page.body.contains("Déconnexion incomplète") && page.body.contains("Sign-out incomplete")
    );
    assert!(page.body.contains("FranceConnect") && page.body.contains("Close your browser"));
    let events = log.audit_of(&page);
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["event"] == "provider_logout_failed"
                && e["fields"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("end_session_endpoint"))),
        "{events:?}"
    );
    // The Guichet session is over all the same.
    let after = browser.send(browser.get_json(&gw.url("/demarches/"))).await;
    assert_eq!(after.status, 401);
}
