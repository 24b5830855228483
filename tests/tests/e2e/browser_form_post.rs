//! Callbacks that arrive by cross-site POST (OpenID Connect `response_mode=form_post`, and the
//! SAML HTTP-POST binding to come), in a real browser: headless Chromium applies SameSite
//! rules, which the e2e HTTP client does not. The provider's pages are on another site
//! (`op.example`) than the gateway (`app.test`), both mapped to loopback; 127.0.0.1 to
//! 127.0.0.1 would be same-site and hide the problem.

use guichet_tests::chromium::Chromium;
use guichet_tests::oidc::{self, MockOp};
use guichet_tests::tls::TestPki;
use guichet_tests::{GatewayOptions, TestGateway};

const OP_HOST: &str = "op.example";

/// A provider answering with `form_post`, its pages at `http://op.example:PORT`.
async fn form_post_provider(manual: bool) -> MockOp {
    let op = MockOp::start().await;
    let port = url::Url::parse(&op.issuer).unwrap().port().unwrap();
    {
        let mut state = op.state();
        state.behaviour.browser_origin = Some(format!("http://{OP_HOST}:{port}"));
        state.behaviour.form_post_manual = manual;
    }
    op
}

/// The gateway asking `op` for `form_post`, on https when `pki` is given.
fn gateway(op: &MockOp, pki: Option<&TestPki>) -> TestGateway {
    let listener_tls = pki.map(|pki| {
        let leaf = pki.leaf(&["app.test"]);
        (leaf.cert_file.clone(), leaf.key_file.clone())
    });
    TestGateway::start(GatewayOptions {
        listener_tls,
        extra_providers: vec![oidc::provider_yaml(
            "oidc",
            "op",
            &op.issuer,
            "authorize_params: { response_mode: form_post }",
        )],
        extra_apps: vec![oidc::app_yaml("rp", "/rp", &["op"])],
        ..GatewayOptions::default()
    })
}

/// Opens the app in `browser` and follows the login to the app's page, through the provider's
/// auto-submitted form (a cross-site POST to the gateway).
async fn sign_in(browser: &Chromium, gw: &TestGateway) -> String {
    browser.goto(&gw.url("/rp/hello")).await;
    let landed = browser
        .wait_for_url(|url| url.host_str() == Some("app.test") && url.path() == "/rp/hello")
        .await;
    assert_eq!(landed.path(), "/rp/hello");
    browser.text().await
}

async fn journey(pki: Option<&TestPki>) {
    let op = form_post_provider(false).await;
    let gw = gateway(&op, pki);
    let browser = Chromium::start(&["app.test", OP_HOST]).await;
    let page = sign_in(&browser, &gw).await;
    let subject = op.state().subject.clone();
    assert!(
        page.contains(&format!("x-remote-user {subject}")),
        "the app sees the user: {page}"
    );
    // The provider really answered by form_post, to the gateway's callback.
    let form_posts = op.state().form_posts.clone();
    assert_eq!(form_posts.len(), 1);
    assert!(
        form_posts[0].0.ends_with("/.guichet/callback/op"),
        "{form_posts:?}"
    );
    let cookies = browser.client().get_all_cookies().await.unwrap();
    assert!(
        cookies
            .iter()
            .any(|c| c.name().ends_with("guichet_session")),
        "a session: {cookies:?}"
    );
    browser.close().await;
}

#[tokio::test]
async fn a_form_post_login_completes_in_chromium_over_http() {
    journey(None).await;
}

#[tokio::test]
async fn a_form_post_login_completes_in_chromium_over_https() {
    journey(Some(&TestPki::new())).await;
}

#[tokio::test]
async fn a_form_post_replayed_from_another_browser_is_refused() {
    let op = form_post_provider(true).await;
    let gw = gateway(&op, None);
    // The user's browser stops at the provider's form, not yet submitted.
    let user = Chromium::start(&["app.test", OP_HOST]).await;
    user.goto(&gw.url("/rp/hello")).await;
    user.wait_for_url(|url| url.host_str() == Some(OP_HOST))
        .await;
    let (action, fields) = op.state().form_posts[0].clone();

    // Another browser (another profile: none of the user's cookies) posts the same answer.
    let attacker = Chromium::start(&["app.test", OP_HOST]).await;
    attacker.goto("about:blank").await;
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
    attacker
        .client()
        .execute(
            script,
            vec![serde_json::json!(action), serde_json::json!(fields)],
        )
        .await
        .unwrap();
    attacker
        .wait_for_url(|url| url.host_str() == Some("app.test"))
        .await;
    // Relayed once, then refused: the generic page with a correlation id, no session.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let refused = loop {
        let text = attacker.text().await;
        if text.contains("Reference") || text.contains("Référence") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        refused.contains("expired") || refused.contains("expiré"),
        "{refused}"
    );
    let cookies = attacker.client().get_all_cookies().await.unwrap();
    assert!(
        !cookies
            .iter()
            .any(|c| c.name().ends_with("guichet_session")),
        "no session: {cookies:?}"
    );
    attacker.close().await;

    // The user's own browser still completes the login: the replay consumed nothing.
    user.click("#continue").await;
    let landed = user
        .wait_for_url(|url| url.host_str() == Some("app.test") && url.path() == "/rp/hello")
        .await;
    assert_eq!(landed.path(), "/rp/hello");
    let page = user.text().await;
    let subject = op.state().subject.clone();
    assert!(page.contains(&format!("x-remote-user {subject}")), "{page}");
    user.close().await;
}

/// The same journey through the shipped binary (`guichet run`, sessions in Redis), as
/// deployments run it.
#[tokio::test]
async fn a_form_post_login_completes_in_chromium_through_the_binary() {
    let redis = guichet_tests::RedisServer::start();
    let op = form_post_provider(false).await;
    let echo = guichet_gateway::echo::start_on_loopback().unwrap();
    let options = GatewayOptions {
        store: guichet_tests::Store::Redis { url: redis.url() },
        extra_providers: vec![oidc::provider_yaml(
            "oidc",
            "op",
            &op.issuer,
            "authorize_params: { response_mode: form_post }",
        )],
        extra_apps: vec![oidc::app_yaml("rp", "/rp", &["op"])],
        ..GatewayOptions::default()
    };
    let mut process = guichet_tests::binary::GuichetProcess::start(&options, echo.address);
    process.wait_ready().await;
    let browser = Chromium::start(&["app.test", OP_HOST]).await;
    browser
        .goto(&format!("http://app.test:{}/rp/hello", process.port))
        .await;
    browser
        .wait_for_url(|url| url.host_str() == Some("app.test") && url.path() == "/rp/hello")
        .await;
    let page = browser.text().await;
    let subject = op.state().subject.clone();
    assert!(
        page.contains(&format!("x-remote-user {subject}")),
        "{page}\n{}",
        process.output()
    );
    assert_eq!(op.state().form_posts.len(), 1, "answered by form_post");
    assert!(
        redis.command(&["KEYS", "*"]).contains(":s:"),
        "the session is in Redis"
    );
    browser.close().await;
}
