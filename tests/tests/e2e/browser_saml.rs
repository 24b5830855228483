//! The SAML HTTP-POST binding to the assertion consumer service, in a real browser: headless
//! Chromium applies SameSite rules, which the e2e HTTP client does not. The gateway is on
//! `app.test`, the IdPs on `127.0.0.1` (another site): the IdP's auto-submitted form is a
//! cross-site POST, which carries no `SameSite=Lax` cookie, so Guichet's login transaction is
//! only found once its relay page has posted the response again from its own site.
//!
//! The test kit's IdP answers at once (`set_auto_login`); SimpleSAMLphp has the user type a
//! password into its own form first.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use guichet_tests::chromium::Chromium;
use guichet_tests::saml_idp::{ResponseSpec, SamlIdp};
use guichet_tests::simplesamlphp::ALICE;
use guichet_tests::{Store, TestGateway};

use super::interop_saml as ssp;
use super::saml::{options, sp_keys, SpKeys};

/// Guichet's entityID (as in `saml.rs`, whose `options` configure the provider `idp`).
const SP_ENTITY: &str = "https://guichet.test/saml";
const PAGE: &str = "/bib/catalogue?q=1";

struct Setup {
    idp: SamlIdp,
    gw: TestGateway,
    _keys: SpKeys,
}

/// The test kit's IdP logging alice in without a page, the gateway in front of `bib`.
async fn setup() -> Setup {
    let idp = SamlIdp::start().await;
    let keys = sp_keys();
    let gw = TestGateway::start(options(&idp, &keys, "", Store::Memory));
    idp.set_auto_login(Some(ResponseSpec::for_sp(
        &gw.url("/.guichet/callback/idp"),
        SP_ENTITY,
    )));
    Setup {
        idp,
        gw,
        _keys: keys,
    }
}

/// The browser is on the app's page that was first asked for.
async fn landed_on_the_app(browser: &Chromium) -> String {
    let landed = browser
        .wait_for_url(|url| url.host_str() == Some("app.test") && url.path() == "/bib/catalogue")
        .await;
    assert_eq!(landed.query(), Some("q=1"), "{landed}");
    browser.text().await
}

async fn has_session(browser: &Chromium) -> bool {
    let cookies = browser.client().get_all_cookies().await.unwrap();
    cookies
        .iter()
        .any(|c| c.name().ends_with("guichet_session"))
}

/// Posts `fields` to `action` from the browser's current page, as an IdP's form would.
async fn post_form(browser: &Chromium, action: &str, fields: &[(String, String)]) {
    let script = r#"
        const [action, fields] = arguments;
        const form = document.createElement('form');
        form.method = 'post';
        form.action = action;
        for (const [name, value] of fields) {
            const input = document.createElement('input');
            input.type = 'hidden';
            input.name = name;
            input.value = value;
            form.appendChild(input);
        }
        document.body.appendChild(form);
        form.submit();
    "#;
    browser
        .client()
        .execute(
            script,
            vec![serde_json::json!(action), serde_json::json!(fields)],
        )
        .await
        .unwrap();
}

/// Waits for Guichet's refusal page (the generic one, with its correlation reference).
async fn refusal(browser: &Chromium) -> String {
    browser
        .wait_for_url(|url| url.host_str() == Some("app.test"))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = browser.text().await;
        if text.contains("Reference") || text.contains("Référence") {
            return text;
        }
        assert!(Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_saml_post_to_the_acs_from_another_site_signs_in_in_chromium() {
    let setup = setup().await;
    let browser = Chromium::start(&["app.test"]).await;
    browser.goto(&setup.gw.url(PAGE)).await;
    let page = landed_on_the_app(&browser).await;
    assert!(
        page.contains("x-remote-user alice@corp.example"),
        "the app sees the user: {page}"
    );
    assert!(page.contains("x-remote-given-name Hélène"), "{page}");
    assert!(page.contains("x-remote-affiliation member,staff"), "{page}");
    assert!(has_session(&browser).await);
    // Guichet's cookies are SameSite=Lax: the IdP's cross-site POST carried none of them, so
    // it was Guichet's relay page, on app.test, that posted the response again with them.
    let cookies = browser.client().get_all_cookies().await.unwrap();
    let ours: Vec<_> = cookies
        .iter()
        .filter(|c| c.name().contains("guichet"))
        .collect();
    assert!(!ours.is_empty(), "{cookies:?}");
    for cookie in ours {
        assert_eq!(format!("{:?}", cookie.same_site()), "Some(Lax)", "{cookie}");
    }

    // The IdP really was on another site, and answered by a POST to the ACS the request named.
    let requests = setup.idp.received_authn_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].acs_url.as_deref(),
        Some(setup.gw.url("/.guichet/callback/idp").as_str())
    );
    assert!(setup.idp.sso_url().starts_with("http://127.0.0.1:"));
    let posts = setup.idp.auto_login_posts();
    assert_eq!(posts.len(), 1, "answered by one HTTP-POST");
    assert_eq!(posts[0].url, setup.gw.url("/.guichet/callback/idp"));
    browser.close().await;
}

#[tokio::test]
async fn a_saml_response_replayed_from_another_chromium_profile_is_refused() {
    let setup = setup().await;
    setup.idp.set_auto_login_manual(true);
    // The user's browser stops on the IdP's form, not yet submitted.
    let user = Chromium::start(&["app.test"]).await;
    user.goto(&setup.gw.url(PAGE)).await;
    user.wait_for_url(|url| url.host_str() == Some("127.0.0.1"))
        .await;
    let sent = setup.idp.auto_login_posts()[0].clone();

    // Another browser (another profile: none of the user's cookies) posts the same response
    // with the same RelayState.
    let attacker = Chromium::start(&["app.test"]).await;
    attacker.goto("about:blank").await;
    post_form(&attacker, &sent.url, &sent.fields).await;
    // Relayed once by Guichet's page, then refused: no login transaction in that browser.
    let refused = refusal(&attacker).await;
    assert!(
        refused.contains("expired") || refused.contains("expiré"),
        "{refused}"
    );
    assert!(!has_session(&attacker).await, "no session");

    // The user's own browser still completes the login: the replay consumed nothing.
    user.click("#continue").await;
    let page = landed_on_the_app(&user).await;
    assert!(page.contains("x-remote-user alice@corp.example"), "{page}");
    assert!(has_session(&user).await);

    // Once used, the same response from the other browser again: refused all the same.
    attacker.goto("about:blank").await;
    post_form(&attacker, &sent.url, &sent.fields).await;
    refusal(&attacker).await;
    assert!(!has_session(&attacker).await, "no session");
    attacker.close().await;
    user.close().await;
}

/// The same journey against SimpleSAMLphp, the user typing into its login form (a same-site
/// POST on 127.0.0.1, which its `SameSite=Lax` session cookie rides); its response page
/// submits itself by script to Guichet's ACS, cross-site.
#[tokio::test]
async fn simplesamlphp_login_form_then_a_cross_site_post_signs_in_in_chromium() {
    let setup = ssp::setup(false, "", Store::Memory).await;
    let browser = Chromium::start(&["app.test"]).await;
    browser.goto(&setup.gw.url(PAGE)).await;
    // Guichet's AuthnRequest went by HTTP-Redirect (a top-level GET): SimpleSAMLphp shows its
    // login form.
    let at_idp = browser
        .wait_for_url(|url| url.host_str() == Some("127.0.0.1"))
        .await;
    assert!(
        at_idp.as_str().starts_with(&setup.idp.base_url()),
        "{at_idp}"
    );
    let client = browser.client();
    let deadline = Instant::now() + Duration::from_secs(15);
    let username = loop {
        match client.find(Locator::Css("input[name='username']")).await {
            Ok(input) => break input,
            Err(e) => assert!(
                Instant::now() < deadline,
                "no login form ({e}): {}\n{}",
                browser.text().await,
                setup.idp.log_tail(30)
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    username.send_keys(ALICE.0).await.unwrap();
    client
        .find(Locator::Css("input[name='password']"))
        .await
        .unwrap()
        .send_keys(ALICE.1)
        .await
        .unwrap();
    client
        .find(Locator::XPath(
            "//form[.//input[@name='password']]//*[(self::button or self::input) and @type='submit']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    let landed = browser
        .wait_for_url(|url| url.host_str() == Some("app.test") && url.path() == "/bib/catalogue")
        .await;
    assert_eq!(landed.query(), Some("q=1"), "{landed}");
    let page = browser.text().await;
    assert!(
        page.lines()
            .any(|line| line.trim() == "x-remote-user alice"),
        "the app sees alice: {page}\n{}",
        setup.idp.log_tail(30)
    );
    assert!(page.contains("x-remote-given-name Hélène"), "{page}");
    assert!(page.contains("x-remote-sn Dupré"), "{page}");
    assert!(page.contains("x-remote-affiliation member,staff"), "{page}");
    assert!(has_session(&browser).await);
    // The provider that signed alice in.
    browser.goto(&setup.gw.url("/.guichet/whoami")).await;
    let me = browser.text().await;
    let me: serde_json::Value = serde_json::from_str(&me).unwrap_or_else(|e| panic!("{e}: {me}"));
    assert_eq!(me["provider"], ssp::PROVIDER, "{me}");
    browser.close().await;
}
