//! Open redirects and path confusion (security catalogue, section 5).

use guichet_tests::{GatewayOptions, TestGateway, ALICE, OTHER_HOST};

const OFF_SITE: &[&str] = &[
    "//evil.example",
    "/\\evil.example",
    "/%09/evil.example",
    "/%5Cevil.example",
    "///evil.example",
    "https://evil.example",
    "https://app.test.evil.example/",
    "http://evil.example%0d%0aSet-Cookie:x=1",
    "javascript:alert(1)",
];

fn is_off_site(location: Option<&str>) -> bool {
    match location {
        None => false,
        Some(l) => {
            let same_host_path =
                l.starts_with('/') && !l.starts_with("//") && !l.starts_with("/\\");
            let app_host = l.starts_with("http://app.test:") || l.starts_with("http://other.test:");
            !same_host_path && !app_host
        }
    }
}

#[tokio::test]
async fn logout_never_redirects_off_site() {
    let gw = TestGateway::start(GatewayOptions::default());
    for target in OFF_SITE {
        let mut browser = gw.browser();
        browser.login(&gw, "/", ALICE).await;
        let url = format!(
            "{}?return_to={}",
            gw.url("/.guichet/logout"),
            urlencode(target)
        );
        let page = browser.send(browser.get(&url)).await;
        assert!(
            !is_off_site(page.location()),
            "{target}: redirected to {:?}",
            page.location()
        );
        assert_eq!(
            page.status, 200,
            "{target}: the signed-out page instead of a redirect"
        );
        assert!(page.body.contains("You are signed out"));
    }
    // Allowed targets: a path on this host, or an app's host.
    let mut browser = gw.browser();
    let page = browser
        .send(browser.get(&format!(
            "{}?return_to=%2Fbye%3Fx%3D1",
            gw.url("/.guichet/logout")
        )))
        .await;
    assert_eq!(page.location(), Some("/bye?x=1"));
    let other = gw.host_url(OTHER_HOST, "/other/");
    let page = browser
        .send(browser.get(&format!(
            "{}?return_to={}",
            gw.url("/.guichet/logout"),
            urlencode(&other)
        )))
        .await;
    assert_eq!(page.location(), Some(other.as_str()));
}

#[tokio::test]
async fn login_takes_no_return_url_from_the_request() {
    let gw = TestGateway::start(GatewayOptions::default());
    for target in OFF_SITE {
        for param in [
            "return_to",
            "next",
            "redirect",
            "url",
            "service",
            "RelayState",
        ] {
            let mut browser = gw.browser();
            let form = browser
                .send(browser.get(&format!(
                    "{}?{param}={}",
                    gw.url("/.guichet/login"),
                    urlencode(target)
                )))
                .await;
            assert_eq!(form.status, 200);
            let done = browser
                .send(browser.post_form(
                    &format!(
                        "{}?{param}={}",
                        gw.url("/.guichet/login"),
                        urlencode(target)
                    ),
                    &[
                        ("csrf_token", &form.csrf_token()),
                        ("username", ALICE.0),
                        ("password", ALICE.1),
                        (param, target),
                    ],
                ))
                .await;
            assert_eq!(done.status, 302);
            assert_eq!(done.location(), Some("/"), "{param}={target}");
        }
    }
}

#[tokio::test]
async fn protected_paths_with_off_site_shapes_are_refused_not_redirected() {
    let gw = TestGateway::start(GatewayOptions::default());
    for path in [
        "//evil.example",
        "/\\evil.example",
        "/%09/evil.example",
        "/%5Cevil.example",
        "///evil.example",
    ] {
        let (status, body) = guichet_tests::raw_get(gw.port, "app.test", path);
        assert_eq!(status, 400, "{path}");
        assert!(!body.to_ascii_lowercase().contains("location:"), "{path}");
    }
}

#[tokio::test]
async fn ambiguous_paths_are_refused_before_the_policy() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    // Anonymous: /public is public, everything else is protected. None of these may reach the
    // app as a public request.
    for path in [
        "/public/../private",
        "/public/..%2fprivate",
        "/public/%2e%2e/private",
        "/public/%2E%2E/private",
        "/public//private",
        "/public%2fprivate",
        "/public/%252e%252e/private",
        "/public/.%2e/private",
        "/public/..;/private",
        "/public/.;/private",
        "/public/..;x=1/private",
        "/public%3b/../private",
        "/;x/private",
    ] {
        // Sent raw: HTTP clients normalize dot segments themselves, attackers do not.
        let (status, body) = guichet_tests::raw_get(gw.port, "app.test", path);
        assert_eq!(status, 400, "{path}");
        assert!(body.contains("Incident reference"), "{path}");
    }
    // The query and fragment never decide: `?x=/public` is still the protected root.
    let page = browser
        .send(browser.get(&gw.url("/private?x=/public")))
        .await;
    assert_eq!(page.status, 302);
    // Percent-encoded letters are decided on their decoded form.
    let page = browser.send(browser.get(&gw.url("/%70rivate"))).await;
    assert_eq!(page.status, 302);
    let page = browser.send(browser.get_json(&gw.url("/%70ublic/x"))).await;
    assert_eq!(page.status, 200, "decoded /public/x is public");
}

#[tokio::test]
async fn unknown_hosts_get_404_never_another_app() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    for host in ["unknown.test", "app.test.evil", "127.0.0.1"] {
        let page = browser
            .send(
                browser
                    .get(&gw.url("/public/x"))
                    .header("host", format!("{host}:{}", gw.port)),
            )
            .await;
        assert_eq!(page.status, 404, "{host}");
        assert!(page
            .body
            .contains("No application is published at this address"));
    }
    // other.test publishes only /other: the rest of that host is nobody's.
    let page = browser
        .send(browser.get(&gw.host_url(OTHER_HOST, "/public/x")))
        .await;
    assert_eq!(page.status, 404);
    let page = browser
        .send(browser.get_json(&gw.host_url(OTHER_HOST, "/other/x")))
        .await;
    assert_eq!(page.status, 200);
}

#[tokio::test]
async fn gateway_endpoints_are_never_forwarded() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    for path in ["/.guichet/", "/.guichet/anything", "/.guichet/login/x"] {
        let page = browser.send(browser.get_json(&gw.url(path))).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(!page.body.contains("raw_headers"), "{path} reached the app");
    }
    let whoami = browser
        .send(browser.get_json(&gw.url("/.guichet/whoami")))
        .await;
    assert_eq!(whoami.status, 200);
    let me: serde_json::Value = serde_json::from_str(&whoami.body).unwrap();
    assert_eq!(me["subject"], "alice");
    assert_eq!(me["roles"], serde_json::json!(["admin", "agent"]));
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn path_parameters_are_decided_without_them() {
    let gw = TestGateway::start(GatewayOptions::default());
    // `/public;x` is `/public` for the policy (and for Tomcat); `/private;public` is protected.
    let (status, _) = guichet_tests::raw_get(gw.port, "app.test", "/private;jsessionid=x/public");
    assert_eq!(status, 302);
    let (status, body) = guichet_tests::raw_get(gw.port, "app.test", "/public;jsessionid=AB/page");
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn only_origin_form_and_http_absolute_form_targets_are_served() {
    let gw = TestGateway::start(GatewayOptions::default());
    let port = gw.port;
    for target in ["a:/private", "private/secret", "*", "/caf\u{e9}"] {
        let (status, _) = guichet_tests::raw_get(port, "app.test", target);
        assert_eq!(status, 400, "{target}");
    }
    // Absolute-form is decided and forwarded as the origin-form path.
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    let cookie = format!(
        "guichet_session={}",
        browser.cookie("guichet_session").unwrap()
    );
    let (status, text) = guichet_tests::raw_request(
        port,
        &format!(
            "GET http://app.test:{port}/private?q=1 HTTP/1.1\r\nHost: app.test:{port}\r\nAccept: application/json\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(r#""target":"/private?q=1""#), "{text}");
    // Anonymous absolute-form to a protected path: a login, not the page.
    let (status, _) = guichet_tests::raw_request(
        port,
        &format!("GET http://app.test:{port}/private HTTP/1.1\r\nHost: app.test:{port}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 302);
}

#[tokio::test]
async fn a_host_with_a_non_numeric_port_matches_no_app() {
    let gw = TestGateway::start(GatewayOptions::default());
    let (status, _) = guichet_tests::raw_request(
        gw.port,
        "GET /public/x HTTP/1.1\r\nHost: app.test:evil.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 404);
}
