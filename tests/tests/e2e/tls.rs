//! TLS on both sides: https upstreams (verified by default, custom CA, SNI) and the gateway
//! terminating TLS itself.

use guichet_tests::tls::{TestPki, TlsFront};
use guichet_tests::{Browser, GatewayOptions, TestGateway, ALICE};

/// An https upstream named `upstream.test` (cert from the test CA) in front of an echo app.
fn https_upstream(pki: &TestPki) -> (TlsFront, std::sync::Arc<guichet_gateway::echo::EchoServer>) {
    let echo = std::sync::Arc::new(guichet_gateway::echo::start_on_loopback().unwrap());
    let front = TlsFront::start(echo.address, &pki.leaf(&["upstream.test"]));
    (front, echo)
}

async fn status_through(upstream_tls: &str, front: &TlsFront) -> u16 {
    let gw = TestGateway::start(GatewayOptions {
        upstream_override: Some(format!("https://127.0.0.1:{}", front.address.port())),
        upstream_tls: Some(upstream_tls.to_string()),
        ..Default::default()
    });
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    let page = browser.send(browser.get_json(&gw.url("/"))).await;
    if page.status == 200 {
        assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);
    }
    page.status
}

#[tokio::test]
async fn https_upstream_certificates_are_verified_by_default() {
    let pki = TestPki::new();
    let (front, _echo) = https_upstream(&pki);
    // The test CA is not a system root: refused.
    assert_eq!(status_through("{ sni: upstream.test }", &front).await, 502);
}

#[tokio::test]
async fn https_upstream_with_a_custom_ca_and_sni() {
    let pki = TestPki::new();
    let (front, _echo) = https_upstream(&pki);
    let ca = pki.ca_file().display().to_string();
    assert_eq!(
        status_through(
            &format!("{{ ca_file: \"{ca}\", sni: upstream.test }}"),
            &front
        )
        .await,
        200
    );
    assert_eq!(
        front.last_sni.lock().unwrap().as_deref(),
        Some("upstream.test")
    );
    // The right CA but a name the certificate does not carry: refused.
    assert_eq!(
        status_through(&format!("{{ ca_file: \"{ca}\", sni: wrong.test }}"), &front).await,
        502
    );
}

#[tokio::test]
async fn https_upstream_verification_can_be_turned_off() {
    let pki = TestPki::new();
    let (front, _echo) = https_upstream(&pki);
    assert_eq!(
        status_through("{ verify: false, sni: upstream.test }", &front).await,
        200
    );
}

#[tokio::test]
async fn the_gateway_terminates_tls_and_marks_cookies_secure() {
    let pki = TestPki::new();
    let leaf = pki.leaf(&["app.test", "other.test"]);
    let gw = TestGateway::start(GatewayOptions {
        listener_tls: Some((leaf.cert_file.clone(), leaf.key_file.clone())),
        ..Default::default()
    });
    let mut browser = Browser::with_roots(gw.port, Some(&pki.ca_pem));
    let done = browser.login(&gw, "/", ALICE).await;
    assert_eq!(done.status, 302);
    let cookie = done
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-guichet_session="))
        .unwrap_or_else(|| {
            panic!(
                "https app without cookie_domain: a __Host- cookie: {:?}",
                done.set_cookies()
            )
        });
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(
        cookie.contains("Path=/;") && !cookie.contains("Domain="),
        "{cookie}"
    );
    let page = browser.send(browser.get_json(&gw.url("/"))).await;
    assert_eq!(page.upstream_header("x-forwarded-proto"), ["https"]);
    assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);
    assert!(
        page.upstream_header("cookie")
            .iter()
            .all(|c| !c.contains("guichet_session")),
        "the gateway's cookies reach the app: {:?}",
        page.upstream_header("cookie")
    );
}
