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
    // Discovery read afresh each time, so that the provider can vanish between sign-in and
    // sign-out.
    let gw = TestGateway::start(GatewayOptions {
        extra_providers: vec![oidc::provider_yaml(
            "franceconnect",
            "fc",
            &op.issuer,
            "metadata_ttl: 0s",
        )],
        extra_apps: vec![oidc::app_yaml("citizens", "/demarches", &["fc"])],
        ..GatewayOptions::default()
    });
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, &gw, "/demarches/", None).await;
    assert_eq!(trip.page.status, 302, "{}", trip.page.body);

    // FranceConnect can no longer be trusted to be itself: its discovery names another issuer.
    op.behave(|b| b.discovery_issuer = Some("https://elsewhere.example/api/v2".into()));
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
                    .is_some_and(|r| r.contains("end session: "))),
        "{events:?}"
    );
    // The Guichet session is over all the same.
    let after = browser.send(browser.get_json(&gw.url("/demarches/"))).await;
    assert_eq!(after.status, 401);
}
