//! What only the shared Redis store can show: restarts, several replicas, data at rest, outages.

use std::time::{Duration, Instant};

use guichet_tests::{GatewayOptions, RedisServer, Store, TestGateway, ALICE, CROSS_REPLICA_BOUND};

fn redis_options(redis: &RedisServer) -> GatewayOptions {
    GatewayOptions {
        store: Store::Redis { url: redis.url() },
        ..Default::default()
    }
}

#[tokio::test]
async fn a_session_in_redis_survives_a_gateway_restart() {
    let redis = RedisServer::start();
    let mut first = TestGateway::start(redis_options(&redis));
    let mut browser = first.browser();
    browser.login(&first, "/", ALICE).await;
    let options = first.options.clone();
    let echo = first.echo.clone();
    first.stop();
    drop(first);

    let second = TestGateway::start_with_echo(options, echo);
    let mut browser2 = second.browser();
    browser2.cookies = browser.cookies.clone();
    let page = browser2.send(browser2.get_json(&second.url("/"))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);
}

#[tokio::test]
async fn logout_on_one_replica_is_effective_on_the_other_within_a_second() {
    let redis = RedisServer::start();
    let a = TestGateway::start(redis_options(&redis));
    let b = TestGateway::start_with_echo(redis_options(&redis), a.echo.clone());
    let mut on_a = a.browser();
    on_a.login(&a, "/", ALICE).await;
    let mut on_b = b.browser();
    on_b.cookies = on_a.cookies.clone();
    let page = on_b.send(on_b.get_json(&b.url("/"))).await;
    assert_eq!(page.status, 200, "the session is shared");

    let logout = on_a.send(on_a.get(&a.url("/.guichet/logout"))).await;
    assert_eq!(logout.status, 200);
    let (page, took) = on_b
        .until_signed_out(&b.url("/"), Duration::from_secs(3))
        .await;
    assert_eq!(
        page.status, 401,
        "replica B still accepts the session after logout on A"
    );
    assert!(
        took < CROSS_REPLICA_BOUND,
        "replica B served the session {took:?} after the logout on A"
    );
}

#[tokio::test]
async fn a_redis_dump_yields_no_cookie_and_no_personal_data() {
    let redis = RedisServer::start();
    let gw = TestGateway::start(redis_options(&redis));
    let mut browser = gw.browser();
    browser.login(&gw, "/private?name=alice", ALICE).await;
    let cookie = browser.cookie("guichet_session").unwrap().to_owned();
    // Leave a login transaction in the store too.
    let mut other = gw.browser();
    other
        .send(other.get(&gw.url("/private?secret=alice")))
        .await;

    let keys = redis.command(&["KEYS", "*"]);
    assert!(keys.contains("guichet:s:"), "a session key exists: {keys}");
    assert!(!keys.contains(&cookie), "the cookie is a key");
    let mut dump = keys.clone();
    for key in keys.lines().filter(|l| l.starts_with("guichet:")) {
        dump.push_str(&redis.command(&["GET", key]));
    }
    assert!(keys.contains("guichet:c:"), "counters are there: {keys}");
    for secret in [
        cookie.as_str(),
        "alice",
        "Alice Martin",
        "agent",
        "secret=",
        "127.0.0.1",
        "fail:",
    ] {
        assert!(!dump.contains(secret), "{secret:?} readable in Redis");
    }
}

#[tokio::test]
async fn redis_outage_at_start_and_at_runtime() {
    let mut redis = RedisServer::start();
    redis.stop();
    let gw = TestGateway::start(redis_options(&redis));
    let client = reqwest::Client::new();

    let ready = client.get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready without the store");
    // And the log says so clearly, naming the store (without credentials).
    let location = format!("redis://127.0.0.1:{}/", redis.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !guichet_tests::logs::text()
        .lines()
        .any(|l| l.contains("session store unreachable") && l.contains(&location))
    {
        assert!(
            Instant::now() < deadline,
            "no clear log line about the unreachable store"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = client.get(gw.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "alive all the same");

    let mut browser = gw.browser();
    let page = browser.send(browser.get(&gw.url("/private"))).await;
    assert_eq!(page.status, 503, "a login needs the store: {}", page.body);
    assert!(page.body.contains("Incident reference"));
    let page = browser.send(browser.get_json(&gw.url("/public/x"))).await;
    assert_eq!(page.status, 200, "public pages need no store");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = client.get(gw.admin_url("/readyz")).send().await.unwrap();
        if ready.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not recover when Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let done = browser.login(&gw, "/private", ALICE).await;
    assert_eq!(done.status, 302);

    // Redis goes away while users are signed in: their sessions go on working from the local
    // copy until it ages out, then 503 (never a wrong identity, never a panic), and recovery
    // afterwards.
    redis.stop();
    let started = Instant::now();
    let page = loop {
        let page = browser.send(browser.get_json(&gw.url("/private"))).await;
        if page.status != 200 {
            break page;
        }
        assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "served without Redis beyond the local copy's lifetime"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(page.status, 503, "{}", page.body);
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let page = browser.send(browser.get(&gw.url("/private"))).await;
        // Redis lost its data (no persistence): recovered means "back to the login redirect".
        if page.status == 302 {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", page.status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn redis_requiring_a_password() {
    let redis = RedisServer::start_with_password(Some("p@ss:w/rd"));
    assert!(
        unauthenticated_reply(redis.port, "DBSIZE").starts_with("-NOAUTH"),
        "the server refuses clients that do not authenticate"
    );
    let gw = TestGateway::start(redis_options(&redis));
    let readyz = gw.admin_url("/readyz");
    guichet_tests::poll::eventually(Duration::from_secs(10), "ready with the password", || {
        let readyz = readyz.clone();
        async move { (reqwest::get(readyz).await.ok()?.status() == 200).then_some(()) }
    })
    .await;
    let mut browser = gw.browser();
    assert_eq!(browser.login(&gw, "/", ALICE).await.status, 302);
    let page = browser.send(browser.get_json(&gw.url("/"))).await;
    assert_eq!(page.status, 200);
    // The gateway wrote the session into this server, so it authenticated...
    let keys = redis.command(&["KEYS", "guichet:s:*"]);
    let session_keys: Vec<&str> = keys
        .lines()
        .filter(|line| line.starts_with("guichet:s:"))
        .collect();
    assert_eq!(session_keys.len(), 1, "one session in Redis: {keys}");
    // ...and reads it from there: deleted in Redis, the session is gone for the gateway (once
    // its short-lived local copy has aged out).
    assert!(redis.command(&["DEL", session_keys[0]]).contains(":1"));
    let (page, _) = browser
        .until_signed_out(&gw.url("/"), Duration::from_secs(3))
        .await;
    assert_eq!(page.status, 401, "the session lived in Redis only");

    // A wrong password: the store is unreachable, readiness says so, nothing is served.
    let wrong = RedisServer::start_with_password(Some("other"));
    let url = wrong.url().replace("other", "nope");
    let gw = TestGateway::start(GatewayOptions {
        store: Store::Redis { url },
        ..Default::default()
    });
    let ready = reqwest::get(gw.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    let mut browser = gw.browser();
    assert_eq!(browser.send(browser.get(&gw.url("/"))).await.status, 503);
}

/// What the Redis server on `port` answers `command` from a client that did not authenticate.
fn unauthenticated_reply(port: u16, command: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream
        .write_all(format!("*1\r\n${}\r\n{command}\r\n", command.len()).as_bytes())
        .unwrap();
    let mut reply = [0u8; 256];
    let n = stream.read(&mut reply).unwrap();
    String::from_utf8_lossy(&reply[..n]).into_owned()
}

#[tokio::test]
async fn only_failed_logins_count_against_an_account_in_redis() {
    let redis = RedisServer::start();
    let options = GatewayOptions {
        max_failures_per_account_and_address: 3,
        ..redis_options(&redis)
    };
    let gw = TestGateway::start(options.clone());
    // Successes are taken back: they never bring the account nearer its cap.
    for _ in 0..5 {
        let mut browser = gw.browser();
        assert_eq!(browser.login(&gw, "/", ALICE).await.status, 302);
    }
    for expected in [401, 401, 401, 429] {
        let mut browser = gw.browser();
        assert_eq!(
            browser.login(&gw, "/", ("alice", "wrong")).await.status,
            expected
        );
    }
    // A second replica on the same Redis sees the same count.
    let other = TestGateway::start_with_echo(options, gw.echo.clone());
    let mut browser = other.browser();
    assert_eq!(browser.login(&other, "/", ALICE).await.status, 429);
}
