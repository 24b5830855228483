//! Audit events carry who, how, from where and why, and logs never carry secrets.

use guichet_tests::{logs, GatewayOptions, TestGateway};

fn correlation_id(page: &guichet_tests::Page) -> String {
    page.headers["x-request-id"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn login_success_failure_and_logout_are_audited_without_secrets() {
    let log = logs::Scope::begin();
    let gw = TestGateway::start(GatewayOptions::default());
    let wrong_password = "Wr0ng-p4ssw0rd-audit-test";

    let mut browser = gw.browser();
    let failed = browser.login(&gw, "/", ("alice", wrong_password)).await;
    assert_eq!(failed.status, 401);
    let id = correlation_id(&failed);
    assert!(
        failed.body.contains(&id),
        "the page shows the correlation id"
    );
    let events = log.audit_of(&failed);
    let event = &events
        .first()
        .unwrap_or_else(|| panic!("no audit event for {id}"))["fields"];
    assert_eq!(event["event"], "login_failure");
    assert_eq!(event["reason"], "invalid credentials");
    assert_eq!(event["provider"], "local");
    assert_eq!(event["login"], "alice");
    assert_eq!(event["app"], "main");
    assert!(event["client_ip"].as_str().unwrap().contains("127.0.0.1"));

    let mut browser = gw.browser();
    let done = browser.login(&gw, "/", ("bob", "bob")).await;
    let event = &log.audit_of(&done)[0]["fields"];
    assert_eq!(event["event"], "login_success");
    assert_eq!(event["subject"], "bob");
    let cookie = browser.cookie("guichet_session").unwrap().to_owned();

    let bye = browser.send(browser.get(&gw.url("/.guichet/logout"))).await;
    let event = &log.audit_of(&bye)[0]["fields"];
    assert_eq!(event["event"], "logout");
    assert_eq!(event["subject"], "bob");

    let everything = log.text();
    assert!(
        !everything.contains(wrong_password),
        "a password was logged"
    );
    assert!(!everything.contains(&cookie), "a session cookie was logged");
}

#[tokio::test]
async fn csrf_failures_are_audited_with_their_reason() {
    let log = logs::Scope::begin();
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    browser.send(browser.get(&gw.url("/"))).await;
    let page = browser
        .send(browser.post_form(
            &gw.url("/.guichet/login"),
            &[("username", "alice"), ("password", "alice")],
        ))
        .await;
    assert_eq!(page.status, 403);
    let event = &log.audit_of(&page)[0]["fields"];
    assert_eq!(event["event"], "login_failure");
    assert_eq!(event["reason"], "CSRF check failed (token or Origin)");
}
