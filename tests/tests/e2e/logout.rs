//! Logout cannot be triggered by another site.

use guichet_tests::{GatewayOptions, TestGateway, ALICE};

#[tokio::test]
async fn a_cross_site_logout_link_only_asks_for_confirmation() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    let page = browser
        .send(
            browser
                .get(&format!("{}?return_to=%2Fbye", gw.url("/.guichet/logout")))
                .header("sec-fetch-site", "cross-site"),
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign out?"), "{}", page.body);
    assert!(page.body.contains(r#"name="return_to" value="/bye""#));
    assert!(page.set_cookies().is_empty(), "nothing changed");
    assert_eq!(
        browser.send(browser.get_json(&gw.url("/"))).await.status,
        200,
        "still signed in"
    );

    // The confirmation form posts from the same origin: signed out.
    let page = browser
        .send(
            browser
                .post_form(&gw.url("/.guichet/logout"), &[("return_to", "/bye")])
                .header("origin", format!("http://app.test:{}", gw.port)),
        )
        .await;
    assert_eq!(page.status, 302);
    assert_eq!(page.location(), Some("/bye"));
    assert_eq!(
        browser.send(browser.get_json(&gw.url("/"))).await.status,
        401
    );
}

#[tokio::test]
async fn a_cross_origin_logout_post_is_refused() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    let page = browser
        .send(
            browser
                .post_form(&gw.url("/.guichet/logout"), &[])
                .header("origin", "https://evil.example"),
        )
        .await;
    assert_eq!(page.status, 403);
    assert_eq!(
        browser.send(browser.get_json(&gw.url("/"))).await.status,
        200,
        "still signed in"
    );
    // Same-origin links in the app itself sign out directly.
    let page = browser
        .send(
            browser
                .get(&gw.url("/.guichet/logout"))
                .header("sec-fetch-site", "same-origin"),
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("You are signed out"));
    assert_eq!(
        browser.send(browser.get_json(&gw.url("/"))).await.status,
        401
    );
}
