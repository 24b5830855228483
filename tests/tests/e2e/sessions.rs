//! The session suite, run against both stores.

use std::time::{Duration, Instant};

use guichet_tests::poll::Deadline;
use guichet_tests::{GatewayOptions, Store, TestGateway, ALICE};

async fn expect_signed_in(browser: &mut guichet_tests::Browser, gw: &TestGateway, yes: bool) {
    assert_eq!(is_signed_in(browser, gw).await, yes);
}

async fn is_signed_in(browser: &mut guichet_tests::Browser, gw: &TestGateway) -> bool {
    let page = browser.send(browser.get_json(&gw.url("/"))).await;
    match page.status {
        200 => {
            assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);
            true
        }
        401 => false,
        other => panic!("neither a session nor none: {other} {}", page.body),
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
    // Activity (a request a second, well under the idle timeout) keeps the session alive past
    // the idle timeout...
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(4500) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        expect_signed_in(&mut browser, &gw, true).await;
    }
    // ...and inactivity ends it. This sleep is the idle time under test (no request may be
    // made meanwhile: a request is activity): 3 s, plus up to 1 s of whole-second timestamps,
    // plus a margin.
    tokio::time::sleep(Duration::from_millis(5000)).await;
    expect_signed_in(&mut browser, &gw, false).await;
}

/// A session kept busy (a request every 500 ms, far under the 3 s idle timeout) is still alive
/// well after the idle timeout has passed since login, and ends at the absolute timeout all the
/// same.
async fn absolute_expiry(store: Store) {
    let idle = Duration::from_secs(3);
    let absolute = Duration::from_secs(7);
    let gw = TestGateway::start(GatewayOptions {
        store,
        idle_timeout: "3s",
        absolute_timeout: "7s",
        ..Default::default()
    });
    let mut browser = gw.browser();
    let login = Instant::now();
    browser.login(&gw, "/", ALICE).await;
    // The server counts whole seconds: the session ends between 6 and 8 s after login.
    let deadline = Deadline::after(
        absolute + Duration::from_secs(4),
        "the end of a busy session at its absolute timeout",
    );
    let mut last_alive = Duration::ZERO;
    while is_signed_in(&mut browser, &gw).await {
        last_alive = login.elapsed();
        deadline.tick_every(Duration::from_millis(500)).await;
    }
    let ended = login.elapsed();
    assert!(
        last_alive > idle + Duration::from_secs(2),
        "alive well past the idle timeout since login (last seen alive at {last_alive:?})"
    );
    assert!(
        ended > absolute - Duration::from_millis(1500),
        "ended at the absolute timeout, not before ({ended:?})"
    );
    // Ended for good.
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
