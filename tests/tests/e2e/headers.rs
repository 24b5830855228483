use guichet_tests::{canonical, GatewayOptions, TestGateway, ALICE, BOB};

/// Every value the app received under a header whose name means `x-remote-user` to it.
fn remote_user_values(page: &guichet_tests::Page) -> Vec<String> {
    page.echo()["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| canonical(pair[0].as_str().unwrap()).starts_with("x-remote-"))
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_app() {
    let gw = TestGateway::start(GatewayOptions::default());
    let spoofs = [
        ("X-Remote-User", "admin"),
        ("x-remote-user", "admin"),
        ("X_Remote_User", "admin"),
        ("X-REMOTE-ROLES", "admin"),
        ("x_remote_email", "admin"),
        ("X-Remote-Anything-Else", "admin"),
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Original-URL", "/admin"),
    ];
    let mut anonymous = gw.browser();
    let mut signed_in = gw.browser();
    signed_in.login(&gw, "/", ALICE).await;
    for (signed, path) in [
        (false, "/public/page"),
        (true, "/public/page"),
        (true, "/private"),
    ] {
        let browser = if signed {
            &mut signed_in
        } else {
            &mut anonymous
        };
        let mut request = browser.get_json(&gw.url(path));
        for (name, value) in spoofs {
            request = request.header(name, value);
        }
        let page = browser.send(request).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let values = remote_user_values(&page);
        assert!(
            !values.iter().any(|v| v == "admin"),
            "{path}: spoof delivered: {values:?}"
        );
        assert!(!page.body.contains("6.6.6.6"));
        assert!(page.upstream_header("x-original-url").is_empty());
        if signed {
            assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);
        } else {
            assert!(
                values.is_empty(),
                "anonymous request carries identity: {values:?}"
            );
        }
    }
}

#[tokio::test]
async fn identity_headers_carry_the_user() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    let page = browser.send(browser.get_json(&gw.url("/"))).await;
    assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);
    assert_eq!(
        page.upstream_header("x-remote-email"),
        ["alice@example.org"]
    );
    assert_eq!(page.upstream_header("x-remote-roles"), ["admin,agent"]);
    assert_eq!(page.upstream_header("x-remote-name"), ["Alice Martin"]);
    // The gateway's cookies are not the app's business.
    assert!(page
        .upstream_header("cookie")
        .iter()
        .all(|c| !c.contains("guichet_session")));
}

#[tokio::test]
async fn non_ascii_values_are_encoded_as_configured() {
    let gw = TestGateway::start(GatewayOptions {
        extra_headers: vec![
            r#"{ name: X-Remote-Name-Utf8, value: "attribute:display_name", encoding: utf8 }"#
                .into(),
            r#"{ name: X-Remote-Name-Latin1, value: "attribute:display_name", encoding: latin1 }"#
                .into(),
            r#"{ name: X-Remote-Name-Ascii, value: "attribute:display_name", encoding: ascii }"#
                .into(),
            r#"{ name: X-Remote-Name-B64, value: "attribute:display_name", encoding: base64 }"#
                .into(),
            r#"{ name: X-Remote-Name-Mime, value: "attribute:display_name", encoding: rfc2047 }"#
                .into(),
            r#"{ name: X-Remote-Evil, value: "attribute:evil", encoding: utf8 }"#.into(),
        ],
        ..Default::default()
    });
    let mut browser = gw.browser();
    browser.login(&gw, "/", BOB).await;
    let page = browser.send(browser.get_json(&gw.url("/"))).await;
    let bytes = |name: &str| {
        page.upstream_header_bytes(name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(bytes("x-remote-name"), b"Gr%C3%A9gory Fran%C3%A7oise");
    assert_eq!(bytes("x-remote-name-utf8"), "Grégory Françoise".as_bytes());
    assert_eq!(bytes("x-remote-name-latin1"), b"Gr\xe9gory Fran\xe7oise");
    assert_eq!(bytes("x-remote-name-ascii"), b"Gregory Francoise");
    assert_eq!(bytes("x-remote-name-b64"), b"R3LDqWdvcnkgRnJhbsOnb2lzZQ==");
    assert_eq!(
        bytes("x-remote-name-mime"),
        b"=?UTF-8?B?R3LDqWdvcnkgRnJhbsOnb2lzZQ==?="
    );
    // bob's `evil` attribute holds "x\r\nX-Injected: 1": no control character reaches the app
    // and no header is injected.
    assert_eq!(bytes("x-remote-evil"), b"xX-Injected: 1");
    assert!(page.upstream_header("x-injected").is_empty());
}

#[tokio::test]
async fn forwarded_headers_are_set_by_the_gateway() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    let page = browser
        .send(
            browser
                .get_json(&gw.url("/"))
                .header("x-forwarded-for", "6.6.6.6")
                .header("x-forwarded-proto", "https")
                .header("x-forwarded-host", "evil.example"),
        )
        .await;
    assert_eq!(page.upstream_header("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(page.upstream_header("x-forwarded-proto"), ["http"]);
    assert_eq!(
        page.upstream_header("x-forwarded-host"),
        [format!("app.test:{}", gw.port)]
    );
    assert_eq!(
        page.upstream_header("host"),
        [format!("app.test:{}", gw.port)]
    );
    assert_eq!(page.upstream_header("x-request-id").len(), 1);
}

#[tokio::test]
async fn forwarded_headers_from_a_trusted_proxy_are_kept() {
    let gw = TestGateway::start(GatewayOptions {
        trusted_proxies: vec!["127.0.0.0/8".into(), "10.0.0.0/8".into()],
        ..Default::default()
    });
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    let page = browser
        .send(
            browser
                .get_json(&gw.url("/"))
                .header("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.2.3")
                .header("x-forwarded-proto", "https"),
        )
        .await;
    // The first untrusted address from the right is the client; what it claims before is dropped.
    assert_eq!(
        page.upstream_header("x-forwarded-for"),
        ["203.0.113.7, 10.1.2.3, 127.0.0.1"]
    );
    assert_eq!(page.upstream_header("x-forwarded-proto"), ["https"]);
}

#[tokio::test]
async fn an_unparseable_forwarded_entry_stops_the_walk_at_the_last_trusted_hop() {
    let gw = TestGateway::start(GatewayOptions {
        trusted_proxies: vec!["127.0.0.0/8".into(), "10.0.0.0/8".into()],
        ..Default::default()
    });
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    let page = browser
        .send(
            browser
                .get_json(&gw.url("/"))
                .header("x-forwarded-for", "6.6.6.6, 203.0.113.9:4711, 10.1.2.3"),
        )
        .await;
    assert_eq!(
        page.upstream_header("x-forwarded-for"),
        ["10.1.2.3, 127.0.0.1"]
    );
}

#[tokio::test]
async fn a_separator_inside_a_value_does_not_split_it() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    let done = browser
        .login(&gw, "/partners/admin/", ("guest", "guest"))
        .await;
    assert_eq!(done.status, 302, "{}", done.body);
    let page = browser
        .send(browser.get_json(&gw.url("/partners/admin/")))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    // groups: ["a,b", "c"] → two values for the app, not three.
    assert_eq!(page.upstream_header("x-remote-groups"), ["a%2Cb,c"]);
}

/// Encoded identity headers are cached per session for speed; a session used by two apps still
/// gets each app's own headers.
#[tokio::test]
async fn two_apps_sharing_a_session_each_get_their_own_headers() {
    let second = r#"  - id: second
    url: "{origin}/second"
    upstream: "http://{echo}"
    providers: [local]
    identity_headers:
      headers:
        - { name: X-Second-Login, value: "attribute:email", encoding: base64 }
"#;
    let gw = guichet_tests::TestGateway::start(guichet_tests::GatewayOptions {
        extra_apps: vec![second.to_owned()],
        ..Default::default()
    });
    let mut browser = gw.browser();
    browser.login(&gw, "/", guichet_tests::ALICE).await;
    for _ in 0..2 {
        let main = browser.send(browser.get_json(&gw.url("/"))).await;
        assert_eq!(main.upstream_header("x-remote-user"), vec!["alice"]);
        assert!(main.upstream_header("x-second-login").is_empty());
        let other = browser.send(browser.get_json(&gw.url("/second/"))).await;
        assert_eq!(other.status, 200);
        assert_eq!(
            other.upstream_header("x-second-login"),
            vec!["YWxpY2VAZXhhbXBsZS5vcmc="]
        );
        assert!(other.upstream_header("x-remote-user").is_empty());
    }
}

/// Every value the app received under a header whose name means `canonical_name` to it.
fn values_named(page: &guichet_tests::Page, canonical_name: &str) -> Vec<String> {
    page.echo()["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| canonical(pair[0].as_str().unwrap()) == canonical_name)
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}

/// Sends every spoofed header to each (signed in?, path), anonymously or as alice (signed in
/// at `login_path`); asserts each answer is the app's (200) and returns them.
async fn send_spoofed<'p>(
    gw: &TestGateway,
    login_path: &str,
    targets: [(bool, &'p str); 3],
    spoofs: &[(&str, &str)],
) -> Vec<(bool, &'p str, guichet_tests::Page)> {
    let mut anonymous = gw.browser();
    let mut signed_in = gw.browser();
    signed_in.login(gw, login_path, ALICE).await;
    let mut pages = Vec::new();
    for (signed, path) in targets {
        let browser = if signed {
            &mut signed_in
        } else {
            &mut anonymous
        };
        let mut request = browser.get_json(&gw.url(path));
        for (name, value) in spoofs {
            request = request.header(*name, *value);
        }
        let page = browser.send(request).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        pages.push((signed, path, page));
    }
    pages
}

/// Configured identity headers whose names are outside the `X-Remote-` prefix are stripped too,
/// in every spelling, on public and private pages, signed in or not.
#[tokio::test]
async fn spoofed_identity_headers_outside_the_prefix_never_reach_the_app() {
    let gw = TestGateway::start(GatewayOptions {
        extra_headers: vec![
            "{ name: Auth-User, value: subject }".into(),
            r#"{ name: Remote_Email, value: "attribute:email" }"#.into(),
        ],
        ..Default::default()
    });
    let spoofs = [
        ("Auth-User", "admin"),
        ("auth_user", "admin"),
        ("AUTH-USER", "admin"),
        ("Remote-Email", "admin"),
        ("remote_email", "admin"),
        ("REMOTE-EMAIL", "admin"),
    ];
    let pages = send_spoofed(
        &gw,
        "/",
        [
            (false, "/public/page"),
            (true, "/public/page"),
            (true, "/private"),
        ],
        &spoofs,
    )
    .await;
    for (signed, path, page) in pages {
        let user = values_named(&page, "auth-user");
        let email = values_named(&page, "remote-email");
        if signed {
            assert_eq!(user, ["alice"], "{path}");
            assert_eq!(email, ["alice@example.org"], "{path}");
        } else {
            assert!(user.is_empty(), "{path}: spoof delivered: {user:?}");
            assert!(email.is_empty(), "{path}: spoof delivered: {email:?}");
        }
    }
}

/// An app with an empty prefix: no prefix stripping, but its configured names are still
/// stripped in every spelling, whether or not they look like `X-Remote-`.
#[tokio::test]
async fn an_app_with_an_empty_prefix_still_strips_its_configured_names() {
    let bare = r#"  - id: bare
    url: "{origin}/bare"
    upstream: "http://{echo}"
    providers: [local]
    rules:
      - path_prefix: /bare/public
        access: public
    identity_headers:
      prefix: ""
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: Login, value: "attribute:email" }
"#;
    let gw = TestGateway::start(GatewayOptions {
        extra_apps: vec![bare.to_owned()],
        ..Default::default()
    });
    let spoofs = [
        ("X-Remote-User", "admin"),
        ("x_remote_user", "admin"),
        ("Login", "admin"),
        ("LOGIN", "admin"),
        ("X-Remote-Unconfigured", "kept"),
    ];
    let pages = send_spoofed(
        &gw,
        "/bare/",
        [
            (false, "/bare/public/page"),
            (true, "/bare/public/page"),
            (true, "/bare/private"),
        ],
        &spoofs,
    )
    .await;
    for (signed, path, page) in pages {
        let user = values_named(&page, "x-remote-user");
        let login = values_named(&page, "login");
        if signed {
            assert_eq!(user, ["alice"], "{path}");
            assert_eq!(login, ["alice@example.org"], "{path}");
        } else {
            assert!(user.is_empty(), "{path}: spoof delivered: {user:?}");
            assert!(login.is_empty(), "{path}: spoof delivered: {login:?}");
        }
        // Without a prefix, a name the app does not use passes (documented behaviour).
        assert_eq!(values_named(&page, "x-remote-unconfigured"), ["kept"]);
        assert!(!page.body.contains("admin"), "{path}: {}", page.body);
    }
}

/// An application cannot set Guichet's own cookies (session, login, known device) through the
/// gateway, under any case or prefix: it could fixate them. Its own cookies pass.
#[tokio::test]
async fn an_app_cannot_set_guichets_cookies() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    let page = browser
        .send(browser.get(&gw.url("/page?echo=set-cookies")))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let cookies = page.set_cookies();
    assert_eq!(cookies, ["app_pref=dark; Path=/"], "{cookies:?}");
    // The session is still alice's.
    let page = browser.send(browser.get_json(&gw.url("/"))).await;
    assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);
}
