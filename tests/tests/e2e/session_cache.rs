//! Each replica's local copy of session records (L1, in front of Redis), through two real
//! `guichet run` processes sharing one Redis: a logout on one ends the session on the other
//! within a second, a lost announcement is bounded by the copy's lifetime, activity refreshes
//! are batched and never bring back a session that ended meanwhile.

use std::time::{Duration, Instant};

use guichet_tests::binary::GuichetProcess;
use guichet_tests::{
    Browser, GatewayOptions, Reachable, RedisServer, Store, ALICE, CROSS_REPLICA_BOUND,
};

struct TwoReplicas {
    redis: RedisServer,
    first: GuichetProcess,
    second: GuichetProcess,
    _echo: guichet_gateway::echo::EchoServer,
}

async fn two_replicas(idle_timeout: &'static str) -> TwoReplicas {
    let redis = RedisServer::start();
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let options = GatewayOptions {
        store: Store::Redis { url: redis.url() },
        idle_timeout,
        ..GatewayOptions::default()
    };
    let mut first = GuichetProcess::start(&options, echo.address);
    let mut second = GuichetProcess::start(&options, echo.address);
    first.wait_ready().await;
    second.wait_ready().await;
    TwoReplicas {
        redis,
        first,
        second,
        _echo: echo,
    }
}

/// A browser signed in on `first` and the same cookies on `second` (a load balancer's choice).
async fn signed_in_on_both(replicas: &TwoReplicas) -> (Browser, Browser) {
    let mut on_first = replicas.first.browser();
    let done = on_first.login(&replicas.first, "/", ALICE).await;
    assert_eq!(done.status, 302, "{}", done.body);
    let mut on_second = replicas.second.browser();
    on_second.cookies = on_first.cookies.clone();
    for (browser, replica) in [
        (&mut on_first, &replicas.first),
        (&mut on_second, &replicas.second),
    ] {
        let page = browser.send(browser.get_json(&replica.url("/"))).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);
    }
    (on_first, on_second)
}

/// The value of `guichet_session_cache_total{event=...}` on `replica`.
async fn cache_counter(replica: &GuichetProcess, event: &str) -> u64 {
    let metrics = reqwest::get(replica.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("guichet_session_cache_total{{event=\"{event}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |value| value.trim().parse().unwrap())
}

fn session_keys(redis: &RedisServer) -> Vec<String> {
    redis
        .command(&["KEYS", "guichet:s:*"])
        .lines()
        .filter(|line| line.starts_with("guichet:s:"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_logout_on_one_binary_ends_the_session_on_the_other_within_a_second() {
    let replicas = two_replicas("30m").await;
    for round in 0..3 {
        let (mut on_first, mut on_second) = signed_in_on_both(&replicas).await;
        // A burst on the second replica is served from its local copy.
        let hits_before = cache_counter(&replicas.second, "hit").await;
        for _ in 0..5 {
            let page = on_second
                .send(on_second.get_json(&replicas.second.url("/")))
                .await;
            assert_eq!(page.status, 200);
        }
        assert!(
            cache_counter(&replicas.second, "hit").await > hits_before,
            "the local copy served none of the burst"
        );

        let logout = on_first
            .send(on_first.get(&replicas.first.url("/.guichet/logout")))
            .await;
        assert_eq!(logout.status, 200, "{}", logout.body);
        let (page, took) = on_second
            .until_signed_out(&replicas.second.url("/"), Duration::from_secs(3))
            .await;
        assert_eq!(page.status, 401, "round {round}: {}", page.body);
        assert!(
            took < CROSS_REPLICA_BOUND,
            "round {round}: served {took:?} after the logout on the other replica"
        );
    }
    assert!(
        cache_counter(&replicas.second, "remote_invalidation").await >= 1,
        "the other replica's announcements were heard"
    );
}

/// A session ended without any announcement (as when the message is lost: here its record is
/// deleted from Redis behind Guichet's back) is served by a replica that holds a copy for the
/// copy's lifetime at most.
#[tokio::test]
async fn a_lost_announcement_is_bounded_by_the_local_copy_lifetime() {
    let replicas = two_replicas("30m").await;
    let (_, mut on_second) = signed_in_on_both(&replicas).await;
    let keys = session_keys(&replicas.redis);
    assert_eq!(keys.len(), 1, "{keys:?}");

    // The second replica has just read the record: its copy is fresh.
    let page = on_second
        .send(on_second.get_json(&replicas.second.url("/")))
        .await;
    assert_eq!(page.status, 200);
    let deleted_at = Instant::now();
    replicas.redis.command(&["DEL", &keys[0]]);
    let (page, _) = on_second
        .until_signed_out(&replicas.second.url("/"), Duration::from_secs(3))
        .await;
    let took = deleted_at.elapsed();
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(
        took < CROSS_REPLICA_BOUND,
        "served {took:?} after its record was gone (the local copy lives 750 ms)"
    );
}

/// With a 20 s idle timeout, activity is refreshed every 2 s at most and written in batches:
/// after 6 s of steady traffic the record's expiry in Redis has moved forward, with a handful
/// of writes for dozens of requests.
#[tokio::test]
async fn activity_refreshes_are_batched_and_keep_the_session_alive() {
    let replicas = two_replicas("20s").await;
    let (mut on_first, _) = signed_in_on_both(&replicas).await;
    let keys = session_keys(&replicas.redis);
    assert_eq!(keys.len(), 1, "{keys:?}");

    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_secs(6) {
        let page = on_first
            .send(on_first.get_json(&replicas.first.url("/")))
            .await;
        assert_eq!(page.status, 200);
        requests += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Written at the next batch (a second at most).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // An integer reply: `:<ms>`.
    let reply = replicas.redis.command(&["PTTL", &keys[0]]);
    let ttl_ms: i64 = reply
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap_or_else(|_| panic!("{reply:?}"));
    // Without refreshes the record would expire 20 s after the login, so at most 12.5 s from
    // now; a refresh in the last seconds puts it past 15 s.
    assert!(
        ttl_ms > 15_000,
        "the idle timeout was not extended: {ttl_ms} ms left"
    );
    let written = cache_counter(&replicas.first, "touch_written").await;
    assert!(
        (1..=8).contains(&written),
        "{written} refresh writes for {requests} requests"
    );
}

/// An activity refresh queued on one replica when the session ends (on it or on another) is
/// never written: the session does not come back.
#[tokio::test]
async fn a_queued_refresh_never_brings_back_an_ended_session() {
    let replicas = two_replicas("10s").await;
    for logout_on_other in [false, true] {
        let (mut on_first, mut on_second) = signed_in_on_both(&replicas).await;
        // Past the refresh interval (1 s for a 10 s idle timeout): the next request queues one.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let page = on_first
            .send(on_first.get_json(&replicas.first.url("/")))
            .await;
        assert_eq!(page.status, 200);
        let (browser, replica) = if logout_on_other {
            (&mut on_second, &replicas.second)
        } else {
            (&mut on_first, &replicas.first)
        };
        let logout = browser
            .send(browser.get(&replica.url("/.guichet/logout")))
            .await;
        assert_eq!(logout.status, 200);
        // Two batches later, nothing was written back.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(
            session_keys(&replicas.redis),
            Vec::<String>::new(),
            "logout on the other replica: {logout_on_other}"
        );
        let page = on_first
            .send(on_first.get_json(&replicas.first.url("/")))
            .await;
        assert_eq!(page.status, 401);
    }
}

/// A configuration asking for a copy that outlives its purpose is refused, naming the field.
#[tokio::test]
async fn a_local_copy_lifetime_over_ten_seconds_is_refused() {
    let redis = RedisServer::start();
    let options = GatewayOptions {
        store: Store::Redis { url: redis.url() },
        ..GatewayOptions::default()
    };
    let echo: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let config = guichet_tests::config_yaml(&options, 0, 0, echo).replacen(
        "kind: redis\n",
        "kind: redis\n    local_cache: { ttl: 30s }\n",
        1,
    );
    assert!(config.contains("local_cache"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guichet.yaml");
    std::fs::write(&path, config).unwrap();
    let output = std::process::Command::new(guichet_tests::guichet_binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("session.store.local_cache.ttl"),
        "the field is named: {stderr}"
    );
}
