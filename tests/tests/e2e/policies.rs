//! Role policies at the gateway: the 403 page, roles from provider attributes, and path tricks
//! that must never reach a protected area without the role.

use guichet_tests::oidc::{self, MockOp};
use guichet_tests::{logs, raw_request, GatewayOptions, TestGateway, ALICE, BOB};
use serde_json::json;

#[tokio::test]
async fn a_user_without_the_role_gets_a_403_page_naming_the_app_and_whom_to_contact() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut bob = gw.browser();
    bob.login(&gw, "/", BOB).await;
    let page = bob.send(bob.get(&gw.url("/admin/settings"))).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("Accès refusé") && page.body.contains("Access denied"));
    assert!(page.body.contains("« main »"), "names the application");
    assert!(
        page.body.contains("helpdesk@example.org"),
        "says whom to contact"
    );
    let id = page.headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(page.body.contains(&id));
    let events = logs::audit_events(&id);
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["event"] == "access_denied"
                && e["fields"]["subject"] == "bob"
                && e["fields"]["rule"].as_str().unwrap().contains("admin area")),
        "{events:?}"
    );
    // Scripts get JSON.
    let json = bob.send(bob.get_json(&gw.url("/admin/settings"))).await;
    assert_eq!(json.status, 403);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json.body).unwrap()["error"],
        "forbidden"
    );
    // The rest of the app is open to bob; the admin area to alice.
    assert_eq!(bob.send(bob.get_json(&gw.url("/"))).await.status, 200);
    let mut alice = gw.browser();
    alice.login(&gw, "/", ALICE).await;
    assert_eq!(
        alice
            .send(alice.get_json(&gw.url("/admin/settings")))
            .await
            .status,
        200
    );
}

/// With `/admin` requiring a role, none of these reach `/admin` content for a user without it.
#[tokio::test]
async fn path_tricks_never_reach_the_protected_area() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut bob = gw.browser();
    bob.login(&gw, "/", BOB).await;
    let cookie = bob
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    for target in [
        "/admin",
        "/admin/../admin",
        "/x/..%2fadmin",
        "/%2e%2e/admin",
        "//admin",
        "/admin%2f",
        "/public/../admin",
        "/public?x=/admin",
        "/ADMIN/../admin",
        "/admin;x=1",
        "/./admin",
        "/public/%2e%2e/admin",
        "/public/..%5cadmin",
        "/admin%3F.css",
        "/admin%23x",
        "/%u0061dmin",
        "/adm%in",
    ] {
        let (status, response) = raw_request(
            gw.port,
            &format!(
                "GET {target} HTTP/1.1\r\nHost: app.test:{}\r\nAccept: application/json\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
                gw.port
            ),
        );
        match status {
            400 | 403 | 404 => {}
            200 => {
                let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
                let echo: serde_json::Value =
                    serde_json::from_str(body.trim()).unwrap_or_else(|_| {
                        // Chunked bodies: take the JSON object inside.
                        let start = body.find('{').unwrap();
                        let end = body.rfind('}').unwrap();
                        serde_json::from_str(&body[start..=end]).unwrap()
                    });
                let path = echo["target"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                assert!(!path.starts_with("/admin"), "{target} reached {path}");
            }
            other => panic!("{target}: unexpected status {other}"),
        }
    }
    // Methods the rules cannot name, spelled in lowercase (which many frameworks uppercase),
    // are refused; a method override header never reaches the app.
    let (status, _) = raw_request(
        gw.port,
        &format!(
            "delete /admin HTTP/1.1\r\nHost: app.test:{}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
            gw.port
        ),
    );
    assert_eq!(status, 400);
    let page = bob
        .send(
            bob.get_json(&gw.url("/public/x"))
                .header("x-http-method-override", "DELETE")
                .header("X_HTTP_Method", "DELETE"),
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(page.upstream_header("x-http-method-override").is_empty());
    assert!(page.upstream_header("x-http-method").is_empty());
}

/// Applications that ignore case (IIS): paths Windows would read differently are refused.
#[tokio::test]
async fn windows_path_equivalences_are_refused_on_case_insensitive_apps() {
    let gw = TestGateway::start(GatewayOptions::default());
    for target in [
        "/partners/admin./x",
        "/partners/admin%20/x",
        "/partners/ADMIN~1/x",
        "/partners/adm%C4%B1n/x",
        "/partners/a.txt::$DATA",
    ] {
        let (status, _) = guichet_tests::raw_get(gw.port, "app.test", target);
        assert_eq!(status, 400, "{target}");
    }
    let (status, _) = guichet_tests::raw_get(gw.port, "app.test", "/partners/catalogue");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn roles_from_provider_attributes_through_the_apps_mapping() {
    let op = MockOp::start().await;
    op.state()
        .user_claims
        .insert("groups".into(), json!(["staff", "other"]));
    let app = r#"  - id: staff
    url: "{origin}/staff"
    upstream: "http://{echo}"
    providers: [op]
    contact: "it@example.org"
    roles:
      attributes:
        - attribute: groups
          values: { staff: agent, boss: [agent, admin] }
    rules:
      - { path: /staff/admin, any_role: [admin] }
      - { path: /staff, any_role: [agent] }
    identity_headers:
      headers:
        - { name: X-Remote-Roles, value: roles }
"#;
    let gw = TestGateway::start(GatewayOptions {
        extra_providers: vec![oidc::provider_yaml(
            "oidc",
            "op",
            &op.issuer,
            "userinfo: fetch",
        )],
        extra_apps: vec![app.to_owned()],
        ..GatewayOptions::default()
    });
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, &gw, "/staff/", None).await;
    assert_eq!(trip.page.status, 302, "{}", trip.page.body);
    let page = browser.send(browser.get_json(&gw.url("/staff/"))).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.upstream_header("x-remote-roles"), vec!["agent"]);
    let admin = browser.send(browser.get(&gw.url("/staff/admin"))).await;
    assert_eq!(admin.status, 403);
    assert!(admin.body.contains("it@example.org"));

    // A provider's own `roles` claim is not taken as roles without a mapping.
    op.state()
        .user_claims
        .insert("roles".into(), json!(["admin"]));
    op.state()
        .user_claims
        .insert("groups".into(), json!(["visitor"]));
    let mut other = gw.browser();
    let trip = oidc::login(&mut other, &gw, "/staff/", None).await;
    assert_eq!(trip.page.status, 302);
    let page = other.send(other.get(&gw.url("/staff/"))).await;
    assert_eq!(page.status, 403, "no mapped role: refused");
}

#[test]
fn an_invalid_rule_is_a_startup_error_naming_it() {
    let app = r#"  - id: broken
    url: "{origin}/broken"
    upstream: "http://{echo}"
    providers: [local]
    rules:
      - { path: /broken/a, access: public }
      - { regex: "/broken/(unclosed", any_role: [x] }
"#;
    let yaml = guichet_tests::config_yaml(
        &GatewayOptions {
            extra_apps: vec![app.to_owned()],
            ..GatewayOptions::default()
        },
        1,
        2,
        "127.0.0.1:3".parse().unwrap(),
    )
    .replace("{origin}", "http://app.test:1")
    .replace("{echo}", "127.0.0.1:3");
    let error = guichet_gateway::config::Config::from_yaml(&yaml).unwrap_err();
    assert_eq!(error.path, "apps[3].rules[1]");
    assert!(error.message.contains("invalid pattern"), "{error}");
}

/// `guichet policy explain`: the roles, the decision and the rule, for administrators.
#[test]
fn policy_explain_says_why() {
    let yaml = guichet_tests::config_yaml(
        &GatewayOptions {
            extra_apps: vec![r#"
  - id: demarches
    url: "{origin}/demarches"
    upstream: "http://{echo}"
    providers: [local]
    rules:
      - { name: strong sign-in, path: /demarches, min_auth_level: eidas2 }
"#
            .to_owned()],
            ..GatewayOptions::default()
        },
        18099,
        18098,
        "127.0.0.1:3".parse().unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guichet.yaml");
    std::fs::write(&path, yaml).unwrap();
    let guichet = guichet_tests::guichet_binary();
    let explain = |user: &str, url: &str| {
        let output = std::process::Command::new(&guichet)
            .args(["policy", "explain", "--config"])
            .arg(&path)
            .args(["--user", user, "--url", url])
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, out, err) = explain("bob@example.org", "http://app.test:18099/admin/users");
    assert!(ok, "{err}");
    assert!(out.contains("application: main"), "{out}");
    assert!(out.contains("roles for main: [\"reader\"]"), "{out}");
    assert!(out.contains("decision: deny (403)"), "{out}");
    assert!(out.contains("\"admin area\" path /admin"), "{out}");

    let (_, out, _) = explain("alice", "http://app.test:18099/admin/users");
    assert!(out.contains("decision: allow"), "{out}");
    assert!(
        out.contains("roles for main: [\"admin\", \"agent\"]"),
        "{out}"
    );

    let (_, out, _) = explain("bob", "http://app.test:18099/public/x");
    assert!(
        out.contains("decision: allow") && out.contains("rules[0]"),
        "{out}"
    );

    // The level the provider would assert decides `min_auth_level` rules.
    let (_, out, _) = explain("bob", "http://app.test:18099/demarches/x");
    assert!(out.contains("decision: deny (403)"), "{out}");
    let output = std::process::Command::new(&guichet)
        .args(["policy", "explain", "--config"])
        .arg(&path)
        .args([
            "--user",
            "bob",
            "--url",
            "http://app.test:18099/demarches/x",
        ])
        .args(["--auth-level", "eidas2"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains("decision: allow"), "{out}");

    let (ok, _, err) = explain("nobody", "http://app.test:18099/");
    assert!(!ok);
    assert!(err.contains("no local account"), "{err}");
    let (ok, _, err) = explain("bob", "http://unknown.test/");
    assert!(!ok && err.contains("no application"), "{err}");
}
