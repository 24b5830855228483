//! The session suite, run against both stores.

use std::time::Duration;

use guichet_tests::{GatewayOptions, Store, TestGateway, ALICE};

async fn expect_signed_in(browser: &mut guichet_tests::Browser, gw: &TestGateway, yes: bool) {
    let page = browser.send(browser.get_json(&gw.url("/"))).await;
    if yes {
        assert_eq!(page.status, 200, "expected a live session: {}", page.body);
        assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);
    } else {
        assert_eq!(page.status, 401, "expected no session");
    }
}

async fn idle_expiry(store: Store) {
    let gw = TestGateway::start(GatewayOptions {
        store,
        idle_timeout: "3s",
        absolute_timeout: "1h",
        ..Default::default()
    });
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    expect_signed_in(&mut browser, &gw, true).await;
    // Activity keeps the session alive past the idle timeout...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        expect_signed_in(&mut browser, &gw, true).await;
    }
    // ...and inactivity ends it.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    expect_signed_in(&mut browser, &gw, false).await;
}

async fn absolute_expiry(store: Store) {
    let gw = TestGateway::start(GatewayOptions {
        store,
        idle_timeout: "3s",
        absolute_timeout: "4s",
        ..Default::default()
    });
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        expect_signed_in(&mut browser, &gw, true).await;
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    expect_signed_in(&mut browser, &gw, false).await;
}

async fn logout_destroys_the_server_record(store: Store) {
    let gw = TestGateway::start(GatewayOptions {
        store,
        ..Default::default()
    });
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    let stolen = browser.cookie("guichet_session").unwrap().to_owned();
    let page = browser
        .send(browser.post_form(&gw.url("/.guichet/logout"), &[]))
        .await;
    assert_eq!(page.status, 200);
    assert!(page
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("guichet_session=;") && c.contains("Max-Age=0")));
    assert!(browser.cookie("guichet_session").is_none());
    // Replaying the cookie after logout: the record is gone server-side.
    let mut thief = gw.browser();
    thief.cookies.insert("guichet_session".into(), stolen);
    expect_signed_in(&mut thief, &gw, false).await;
}

async fn malformed_or_unknown_cookies_are_no_session(store: Store) {
    let gw = TestGateway::start(GatewayOptions {
        store,
        ..Default::default()
    });
    for value in [
        "garbage",
        "",
        "%00%0d%0a",
        &"A".repeat(43),
        &"A".repeat(4000),
        "../../etc/passwd",
        "aGVsbG8=",
    ] {
        let mut browser = gw.browser();
        browser
            .cookies
            .insert("guichet_session".into(), value.to_string());
        let page = browser.send(browser.get(&gw.url("/"))).await;
        assert_eq!(page.status, 302, "{value:?}: treated as no session");
        let page = browser.send(browser.get_json(&gw.url("/public/x"))).await;
        assert_eq!(page.status, 200, "{value:?}");
    }
}

macro_rules! session_suite {
    ($($name:ident),*) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(guichet_tests::Store::Memory).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let redis = guichet_tests::RedisServer::start();
                    super::$name(guichet_tests::Store::Redis { url: redis.url() }).await;
                }
            )*
        }
    };
}

session_suite!(
    idle_expiry,
    absolute_expiry,
    logout_destroys_the_server_record,
    malformed_or_unknown_cookies_are_no_session
);
