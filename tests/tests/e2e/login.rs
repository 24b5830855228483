use guichet_tests::{GatewayOptions, TestGateway, ALICE};

#[tokio::test]
async fn login_returns_to_the_original_url_with_its_query() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    let done = browser
        .login(
            &gw,
            "/reports/2026?year=2026&name=Gr%C3%A9gory&x=/public",
            ALICE,
        )
        .await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(
        done.location(),
        Some("/reports/2026?year=2026&name=Gr%C3%A9gory&x=/public")
    );
    let page = browser
        .send(browser.get_json(&gw.url("/reports/2026?year=2026")))
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);
    assert_eq!(page.echo()["target"], "/reports/2026?year=2026");
}

#[tokio::test]
async fn session_cookie_attributes_and_rotation_at_login() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    let done = browser.login(&gw, "/", ALICE).await;
    let cookie = done
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("guichet_session="))
        .expect("session cookie set");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain-http app: no Secure flag: {cookie}"
    );
    let first = browser.cookie("guichet_session").unwrap().to_owned();
    assert_eq!(first.len(), 43, "256-bit id, base64url");

    // A browser holding a valid session logs in again (a stale login tab): the new session
    // gets a new id and the old one is destroyed.
    let mut browser2 = gw.browser();
    browser2.send(browser2.get(&gw.url("/"))).await;
    let form = browser2
        .send(browser2.get(&gw.url("/.guichet/login")))
        .await;
    browser2
        .cookies
        .insert("guichet_session".into(), first.clone());
    let relog = browser2
        .send(browser2.post_form(
            &gw.url("/.guichet/login"),
            &[
                ("csrf_token", &form.csrf_token()),
                ("username", "bob"),
                ("password", "bob"),
            ],
        ))
        .await;
    assert_eq!(relog.status, 302);
    let rotated = browser2.cookie("guichet_session").unwrap().to_owned();
    assert_ne!(rotated, first, "session id rotated at login");
    let page = browser.send(browser.get_json(&gw.url("/"))).await;
    assert_eq!(page.status, 401, "the pre-login session id is dead");
    let page = browser2.send(browser2.get_json(&gw.url("/"))).await;
    assert_eq!(page.upstream_header("x-remote-user"), ["bob"]);
}

#[tokio::test]
async fn login_post_without_csrf_token_is_refused() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    browser.send(browser.get(&gw.url("/private"))).await;
    let form = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    let token = form.csrf_token();

    let no_token = browser
        .send(browser.post_form(
            &gw.url("/.guichet/login"),
            &[("username", ALICE.0), ("password", ALICE.1)],
        ))
        .await;
    assert_eq!(no_token.status, 403);
    assert!(browser.cookie("guichet_session").is_none());
    assert!(
        no_token.body.contains("Incident reference"),
        "error page with correlation id"
    );

    // The transaction was spent by the refused attempt: even the right token fails now.
    let replay = browser.submit_login(&gw, &token, ALICE).await;
    assert_eq!(replay.status, 403);
    assert!(browser.cookie("guichet_session").is_none());

    // A token without the browser's transaction cookie (forged cross-site POST) fails too.
    let form = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    let token = form.csrf_token();
    let mut attacker = gw.browser();
    let forged = attacker.submit_login(&gw, &token, ALICE).await;
    assert_eq!(forged.status, 403);
    assert!(attacker.cookie("guichet_session").is_none());

    // A wrong token fails.
    let wrong = browser
        .send(browser.post_form(
            &gw.url("/.guichet/login"),
            &[
                ("csrf_token", "x".repeat(43).as_str()),
                ("username", ALICE.0),
                ("password", ALICE.1),
            ],
        ))
        .await;
    assert_eq!(wrong.status, 403);

    // A cross-origin POST fails even with the right token.
    let form = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    let cross = browser
        .send(
            browser
                .post_form(
                    &gw.url("/.guichet/login"),
                    &[
                        ("csrf_token", &form.csrf_token()),
                        ("username", ALICE.0),
                        ("password", ALICE.1),
                    ],
                )
                .header("origin", "https://evil.example"),
        )
        .await;
    assert_eq!(cross.status, 403);
    assert!(browser.cookie("guichet_session").is_none());
}

#[tokio::test]
async fn a_login_transaction_is_single_use() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    browser.send(browser.get(&gw.url("/"))).await;
    let form = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    let token = form.csrf_token();
    let txn_cookie = browser.cookie("guichet_session_login").unwrap().to_owned();
    let ok = browser.submit_login(&gw, &token, ALICE).await;
    assert_eq!(ok.status, 302);
    let mut replayer = gw.browser();
    replayer
        .cookies
        .insert("guichet_session_login".into(), txn_cookie);
    let replay = replayer.submit_login(&gw, &token, ALICE).await;
    assert_eq!(replay.status, 403);
    assert!(replayer.cookie("guichet_session").is_none());
}

#[tokio::test]
async fn wrong_password_unknown_user_and_disabled_account_get_the_same_answer() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut bodies = Vec::new();
    for (user, password) in [("alice", "wrong"), ("nobody", "alice"), ("carol", "carol")] {
        let mut browser = gw.browser();
        let page = browser.login(&gw, "/", (user, password)).await;
        assert_eq!(page.status, 401, "{user}");
        assert!(browser.cookie("guichet_session").is_none());
        assert!(page.body.contains("Incorrect username or password"));
        assert!(page.body.contains("Identifiant ou mot de passe incorrect"));
        // The form is shown again with a fresh token, ready for another try.
        assert!(!page.csrf_token().is_empty());
        // Identical pages but for the per-request values (token, correlation id, typed login).
        let id = page.headers["x-request-id"].to_str().unwrap().to_owned();
        let normalized = page
            .body
            .replace(&page.csrf_token(), "TOKEN")
            .replace(&id, "ID")
            .replace(&format!("value=\"{user}\""), "value=\"LOGIN\"");
        bodies.push(normalized);
    }
    assert_eq!(
        bodies[0], bodies[1],
        "unknown user distinguishable from a wrong password"
    );
    assert_eq!(
        bodies[0], bodies[2],
        "disabled account distinguishable from a wrong password"
    );
}

#[tokio::test]
async fn scripts_get_401_instead_of_a_redirect() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    let json = browser.send(browser.get_json(&gw.url("/api/items"))).await;
    assert_eq!(json.status, 401);
    assert!(json.body.contains("authentication_required"));
    let xhr = browser
        .send(
            browser
                .get(&gw.url("/api/items"))
                .header("x-requested-with", "XMLHttpRequest"),
        )
        .await;
    assert_eq!(xhr.status, 401);
    let post = browser
        .send(browser.post_form(&gw.url("/api/items"), &[("a", "b")]))
        .await;
    assert_eq!(post.status, 401);
    let navigation = browser.send(browser.get(&gw.url("/api/items"))).await;
    assert_eq!(navigation.status, 302);
}

#[tokio::test]
async fn login_inputs_are_bounded() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    browser.send(browser.get(&gw.url("/"))).await;
    let form = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    let huge = "a".repeat(64 * 1024);
    let page = browser
        .send(browser.post_form(
            &gw.url("/.guichet/login"),
            &[
                ("csrf_token", &form.csrf_token()),
                ("username", &huge),
                ("password", "x"),
            ],
        ))
        .await;
    assert_eq!(page.status, 413);
    assert!(browser.cookie("guichet_session").is_none());

    let mut browser = gw.browser();
    let long = "a".repeat(300);
    let page = browser.login(&gw, "/", (&long, "alice")).await;
    assert_eq!(page.status, 401);

    let big_header = "v".repeat(40 * 1024);
    let page = browser
        .send(browser.get(&gw.url("/")).header("x-big", big_header))
        .await;
    assert_eq!(page.status, 431);
}

#[tokio::test]
async fn parallel_guesses_cannot_slip_under_the_account_limit() {
    let gw = TestGateway::start(GatewayOptions {
        max_failures_per_account_and_address: 3,
        ..Default::default()
    });
    // Ten browsers each hold a login form, then all post a guess at once.
    let mut browsers = Vec::new();
    for _ in 0..10 {
        let mut browser = gw.browser();
        browser.send(browser.get(&gw.url("/"))).await;
        let form = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
        let token = form.csrf_token();
        browsers.push((browser, token));
    }
    let guesses: Vec<_> = browsers
        .into_iter()
        .enumerate()
        .map(|(i, (mut browser, token))| {
            let url = gw.url("/.guichet/login");
            tokio::spawn(async move {
                let guess = format!("guess-{i}");
                let fields = [
                    ("csrf_token", token.as_str()),
                    ("username", "alice"),
                    ("password", &guess),
                ];
                browser.send(browser.post_form(&url, &fields)).await.status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        checked, 3,
        "exactly the allowed number of passwords were checked: {statuses:?}"
    );
    assert_eq!(refused, 7, "{statuses:?}");
}

#[tokio::test]
async fn anonymous_traffic_cannot_start_unlimited_logins() {
    let gw = TestGateway::start(GatewayOptions {
        login_starts_per_minute: 5,
        ..Default::default()
    });
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let mut browser = gw.browser();
        statuses.push(browser.send(browser.get(&gw.url("/private"))).await.status);
    }
    assert_eq!(statuses, [302, 302, 302, 302, 302, 429, 429, 429]);
    // A browser that already has a transaction reuses it instead of starting another.
    let gw = TestGateway::start(GatewayOptions {
        login_starts_per_minute: 2,
        ..Default::default()
    });
    let mut browser = gw.browser();
    for path in ["/a", "/b", "/c", "/d"] {
        assert_eq!(browser.send(browser.get(&gw.url(path))).await.status, 302);
    }
    // ...and the login returns to the last page asked for.
    let form = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    let done = browser.submit_login(&gw, &form.csrf_token(), ALICE).await;
    assert_eq!(done.location(), Some("/d"));
}
