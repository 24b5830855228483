//! Redis high availability with real servers on loopback: Sentinel (a master, a replica, three
//! sentinels) followed through a failover under traffic, TLS with a private CA, ACL users, and
//! a rotation of the session key.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guichet_directory_client::cache::RemoteInvalidator;
use guichet_directory_client::redis_link::{
    RedisLink, RedisSettings, RedisTarget, SentinelSettings,
};
use guichet_directory_client::{
    CacheSettings, CachedDirectory, Directory, DirectoryError, DirectoryUser, PivotQuery,
    SharedRedis,
};
use guichet_gateway::config::Config;
use guichet_tests::logs;
use guichet_tests::poll::{eventually, Deadline};
use guichet_tests::redis_ha::{
    acl_node, config_with_store, gateway_with_store, tls_node, write_file, RedisNode,
    SentinelCluster, TlsFiles, KEY_A, KEY_B, MASTER_NAME,
};
use guichet_tests::tls::TestPki;
use guichet_tests::{Browser, GatewayOptions, Page, TestGateway, ALICE, BOB};

/// When a login of the load was tried, the statuses it met, whether it signed in.
type LoginAttempt = (Instant, Vec<u16>, bool);

/// `GET /` as JSON with the browser's session: 200 and the user when signed in.
async fn whoami(browser: &mut Browser, gateway: &TestGateway) -> Page {
    browser.send(browser.get_json(&gateway.url("/"))).await
}

async fn readyz(gateway: &TestGateway) -> u16 {
    reqwest::Client::new()
        .get(gateway.admin_url("/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn wait_ready(gateway: &TestGateway, status: u16, within: Duration) {
    eventually(within, &format!("/readyz answering {status}"), || async {
        (readyz(gateway).await == status).then_some(())
    })
    .await;
}

/// A signed-in browser for `gateway`, and one for `other` sharing its session cookie.
async fn sign_in(
    gateway: &TestGateway,
    other: &TestGateway,
    user: (&str, &str),
) -> (Browser, Browser) {
    let mut browser = gateway.browser();
    let done = browser.login(gateway, "/", user).await;
    assert_eq!(done.status, 302, "signed in: {}", done.body);
    let mut twin = other.browser();
    twin.cookies = browser.cookies.clone();
    (browser, twin)
}

/// One full local login that never panics: the statuses it met, and whether it signed in.
async fn try_login(port: u16, user: (&str, &str)) -> (Vec<u16>, bool) {
    let mut browser = Browser::new(port);
    let url = |path: &str| format!("http://{}:{port}{path}", guichet_tests::APP_HOST);
    let mut statuses = Vec::new();
    let first = browser.send(browser.get(&url("/"))).await;
    statuses.push(first.status);
    if first.status != 302 {
        return (statuses, false);
    }
    let form = browser.send(browser.get(&url("/.guichet/login"))).await;
    statuses.push(form.status);
    if form.status != 200 {
        return (statuses, false);
    }
    let token = form.csrf_token();
    let done = browser
        .send(browser.post_form(
            &url("/.guichet/login"),
            &[
                ("csrf_token", &token),
                ("username", user.0),
                ("password", user.1),
            ],
        ))
        .await;
    statuses.push(done.status);
    (statuses, done.status == 302 && done.location() == Some("/"))
}

/// A new browser for `gateway` with `browser`'s cookies.
fn reopen(browser: &Browser, gateway: &TestGateway) -> Browser {
    let mut new = gateway.browser();
    new.cookies = browser.cookies.clone();
    new
}

fn key_line(key: &str) -> String {
    format!("encryption_key: \"{key}\"")
}

#[tokio::test]
async fn sessions_are_shared_through_sentinel_by_two_gateways() {
    let logs = logs::Scope::begin();
    let cluster = SentinelCluster::start(Some("sentinel-secret")).await;
    let store = cluster.store_lines(&[]);
    let a = gateway_with_store(GatewayOptions::default(), guichet_echo(), &store);
    let b = gateway_with_store(GatewayOptions::default(), a.echo.clone(), &store);
    wait_ready(&a, 200, Duration::from_secs(10)).await;
    wait_ready(&b, 200, Duration::from_secs(10)).await;

    let (_on_a, mut on_b) = sign_in(&a, &b, ALICE).await;
    let page = whoami(&mut on_b, &b).await;
    assert_eq!(page.status, 200, "the session is shared: {}", page.body);
    assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);

    // Written on the master the sentinels name, and replicated.
    let master_port = cluster.master.port.to_string();
    logs.wait_for_line(
        &["Redis master found through Sentinel", &master_port],
        Duration::from_secs(5),
    )
    .await;
    let keys = cluster.master.cli(&["KEYS", "guichet:s:*"]);
    assert!(keys.contains("guichet:s:"), "{keys}");
    cluster.wait_replicated().await;
    let replicated = cluster.replica.cli(&["KEYS", "guichet:s:*"]);
    assert_eq!(
        replicated.lines().count(),
        keys.lines().count(),
        "{replicated}"
    );

    // A planned failover: the old master lives on as a replica (reads still answer there),
    // its first refused write (READONLY) sends the gateways to the new master.
    let answer = cluster.sentinels[0].cli(&["SENTINEL", "FAILOVER", MASTER_NAME]);
    assert!(answer.contains("OK"), "{answer}");
    cluster.wait_promoted(Duration::from_secs(30)).await;
    eventually(
        Duration::from_secs(30),
        "the old master reconfigured as a replica",
        || async {
            (cluster.master.cli(&["ROLE"]).lines().next().map(str::trim) == Some("slave"))
                .then_some(())
        },
    )
    .await;
    for gateway in [&a, &b] {
        let deadline = Deadline::after(Duration::from_secs(15), "a login after the switch");
        loop {
            let (statuses, ok) = try_login(gateway.port, BOB).await;
            if ok {
                break;
            }
            assert!(
                statuses.iter().all(|s| matches!(s, 200 | 302 | 503)),
                "{statuses:?}"
            );
            deadline.tick_every(Duration::from_millis(200)).await;
        }
    }
    let page = whoami(&mut on_b, &b).await;
    assert_eq!(page.status, 200, "{}", page.body);
    logs.wait_for_line(
        &[
            "Redis master found through Sentinel",
            &cluster.replica.port.to_string(),
        ],
        Duration::from_secs(5),
    )
    .await;

    // The sentinels' password is checked: a wrong one gets no master.
    let mut wrong = cluster.store_lines(&[]);
    for line in &mut wrong {
        if line.contains("password") {
            *line = "  password: \"not-the-sentinel-secret\"".into();
        }
    }
    let c = gateway_with_store(GatewayOptions::default(), a.echo.clone(), &wrong);
    wait_ready(&c, 503, Duration::from_secs(10)).await;
}

/// The failover under traffic: signed-in users keep their sessions, no request gets a 500
/// (503s while no master is known are counted), and logins resume by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sentinel_failover_under_traffic_loses_no_session_and_answers_no_500() {
    let mut cluster = SentinelCluster::start(None).await;
    let store = cluster.store_lines(&[]);
    let options = GatewayOptions {
        login_starts_per_minute: 100_000,
        ..Default::default()
    };
    let a = gateway_with_store(options.clone(), guichet_echo(), &store);
    let b = gateway_with_store(options, a.echo.clone(), &store);
    wait_ready(&a, 200, Duration::from_secs(10)).await;
    wait_ready(&b, 200, Duration::from_secs(10)).await;

    // Eight sessions, half opened on each gateway, each usable on both.
    let mut users = Vec::new();
    for i in 0..8 {
        let user = if i % 2 == 0 { ALICE } else { BOB };
        let (on_a, on_b) = if i % 4 < 2 {
            sign_in(&a, &b, user).await
        } else {
            let (on_b, on_a) = sign_in(&b, &a, user).await;
            (on_a, on_b)
        };
        users.push((if i % 2 == 0 { "alice" } else { "bob" }, on_a, on_b));
    }
    for (name, on_a, on_b) in &mut users {
        for (browser, gateway) in [(&mut *on_a, &a), (&mut *on_b, &b)] {
            let page = whoami(browser, gateway).await;
            assert_eq!(page.status, 200, "{}", page.body);
            assert_eq!(page.upstream_header("x-remote-user"), [*name]);
        }
    }
    // Every session reached the replica before the master dies.
    cluster.wait_replicated().await;

    let ports = (a.port, b.port);
    let started = Instant::now();
    let load_for = Duration::from_secs(10);
    // (when, status, what): every answer of the load.
    let answers: Arc<Mutex<Vec<(Instant, u16, String)>>> = Arc::default();

    // 4 clients, each with 2 of the sessions, asking both gateways in turn.
    let mut clients = Vec::new();
    let mut users = users.into_iter();
    for _ in 0..4 {
        let mine: Vec<_> = users.by_ref().take(2).collect();
        let answers = answers.clone();
        clients.push(tokio::spawn(async move {
            let mut mine = mine;
            let mut requests = 0usize;
            while started.elapsed() < load_for {
                for (name, on_a, on_b) in &mut mine {
                    for (browser, port) in [(&mut *on_a, ports.0), (&mut *on_b, ports.1)] {
                        let url = format!("http://{}:{port}/", guichet_tests::APP_HOST);
                        let page = browser.send(browser.get_json(&url)).await;
                        let what = if page.status == 200 {
                            let user = page.upstream_header("x-remote-user");
                            if user != [*name] {
                                format!("signed in as {user:?}, not {name}")
                            } else {
                                String::new()
                            }
                        } else {
                            format!(
                                "session of {name}: {}",
                                page.body.chars().take(200).collect::<String>()
                            )
                        };
                        answers
                            .lock()
                            .unwrap()
                            .push((Instant::now(), page.status, what));
                        requests += 1;
                    }
                }
            }
            (mine, requests)
        }));
    }
    // One client signing in again and again, on both gateways in turn.
    let logins: Arc<Mutex<Vec<LoginAttempt>>> = Arc::default();
    let login_client = {
        let logins = logins.clone();
        tokio::spawn(async move {
            let mut turn = 0;
            while started.elapsed() < load_for {
                let port = if turn % 2 == 0 { ports.0 } else { ports.1 };
                turn += 1;
                let (statuses, ok) = try_login(port, ALICE).await;
                logins.lock().unwrap().push((Instant::now(), statuses, ok));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(2500)).await;
    cluster.wait_replicated().await;
    cluster.master.kill();
    let kill = Instant::now();

    let mut users = Vec::new();
    let mut total = 0;
    for client in clients {
        let (mine, requests) = client.await.unwrap();
        users.extend(mine);
        total += requests;
    }
    login_client.await.unwrap();
    cluster.wait_promoted(Duration::from_secs(30)).await;

    // No 500, nothing but 200 (the right user) or 503 for a signed-in user.
    let answers = answers.lock().unwrap().clone();
    let unexpected: Vec<_> = answers
        .iter()
        .filter(|(_, status, what)| !(*status == 200 && what.is_empty()) && *status != 503)
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} unexpected answers during the failover, e.g. {:?}",
        unexpected.len(),
        unexpected.iter().take(5).collect::<Vec<_>>()
    );
    let unavailable: Vec<&Instant> = answers
        .iter()
        .filter(|(_, status, _)| *status == 503)
        .map(|(when, _, _)| when)
        .collect();
    let logins = logins.lock().unwrap().clone();
    let bad_logins: Vec<_> = logins
        .iter()
        .filter(|(_, statuses, _)| statuses.iter().any(|s| !matches!(s, 200 | 302 | 503)))
        .collect();
    assert!(bad_logins.is_empty(), "logins answered {bad_logins:?}");
    let logins_after_kill = logins
        .iter()
        .filter(|(when, _, ok)| *ok && *when > kill)
        .count();
    let window = match (unavailable.first(), unavailable.last()) {
        (Some(first), Some(last)) => format!(
            "503s from {:?} to {:?} after the kill",
            first.saturating_duration_since(kill),
            last.saturating_duration_since(kill)
        ),
        _ => "no 503".into(),
    };
    eprintln!(
        "failover under traffic: {total} requests from signed-in users, {} answered 503 ({window}); {} logins, {} after the kill succeeded",
        unavailable.len(),
        logins.len(),
        logins_after_kill
    );

    // Every session opened before the kill is still there, on both gateways.
    for (name, on_a, on_b) in &mut users {
        for (browser, gateway) in [(&mut *on_a, &a), (&mut *on_b, &b)] {
            let deadline = Deadline::after(Duration::from_secs(15), "the gateways recovered");
            loop {
                let page = whoami(browser, gateway).await;
                if page.status == 200 {
                    assert_eq!(page.upstream_header("x-remote-user"), [*name]);
                    break;
                }
                assert_eq!(page.status, 503, "session of {name} lost: {}", page.body);
                deadline.tick_every(Duration::from_millis(200)).await;
            }
        }
    }
    // And signing in works again without a restart, on both.
    for gateway in [&a, &b] {
        wait_ready(gateway, 200, Duration::from_secs(15)).await;
        let deadline = Deadline::after(Duration::from_secs(15), "a login after the failover");
        loop {
            let (statuses, ok) = try_login(gateway.port, BOB).await;
            if ok {
                break;
            }
            assert!(
                statuses.iter().all(|s| matches!(s, 200 | 302 | 503)),
                "{statuses:?}"
            );
            deadline.tick_every(Duration::from_millis(200)).await;
        }
    }
    // Written to the new master.
    assert!(cluster
        .replica
        .cli(&["KEYS", "guichet:s:*"])
        .contains("guichet:s:"));
}

/// Sentinel with `tls: true` and a private CA: sentinels and master over TLS only, and a
/// failover followed there too.
#[tokio::test]
async fn sentinel_over_tls_follows_a_failover() {
    let pki = TestPki::new();
    let mut cluster = SentinelCluster::start_with(None, Some(TlsFiles::new(&pki))).await;
    let store = cluster.store_lines(&[]);
    let a = gateway_with_store(GatewayOptions::default(), guichet_echo(), &store);
    wait_ready(&a, 200, Duration::from_secs(10)).await;
    let mut browser = a.browser();
    let done = browser.login(&a, "/", ALICE).await;
    assert_eq!(done.status, 302, "{}", done.body);

    cluster.wait_replicated().await;
    cluster.master.kill();
    cluster.wait_promoted(Duration::from_secs(30)).await;
    let deadline = Deadline::after(Duration::from_secs(15), "the session after the failover");
    loop {
        let page = whoami(&mut browser, &a).await;
        if page.status == 200 {
            assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);
            break;
        }
        assert_eq!(page.status, 503, "{}", page.body);
        deadline.tick_every(Duration::from_millis(200)).await;
    }
    let (_, ok) = try_login(a.port, BOB).await;
    assert!(ok, "a login on the new master");
}

fn guichet_echo() -> Arc<guichet_gateway::echo::EchoServer> {
    Arc::new(guichet_gateway::echo::start_on_loopback().expect("echo app"))
}

/// A directory counting its calls.
#[derive(Default)]
struct Counting {
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Directory for Counting {
    async fn find(&self, _pivot: &PivotQuery) -> Result<Option<DirectoryUser>, DirectoryError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Some(DirectoryUser {
            id: "p-dave".into(),
            ..Default::default()
        }))
    }

    fn describe(&self) -> String {
        "counting".into()
    }
}

/// The directory's invalidation channel moves to the new master after a failover, and the
/// shared cache and invalidations work there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_invalidations_follow_a_sentinel_failover() {
    let mut cluster = SentinelCluster::start(None).await;
    let settings = RedisSettings {
        target: RedisTarget::Sentinel(SentinelSettings {
            master_name: MASTER_NAME.into(),
            nodes: cluster
                .sentinels
                .iter()
                .map(|s| ("127.0.0.1".to_string(), s.port))
                .collect(),
            password: None,
            tls: false,
            db: 0,
        }),
        username: None,
        password: None,
        ca_pem: None,
    };
    let shared = || SharedRedis {
        link: RedisLink::new(&settings).unwrap(),
        encryption_key: [9; 32],
        previous_encryption_keys: Vec::new(),
        key_prefix: "ha:".into(),
    };
    let backend = Arc::new(Counting::default());
    let replica = Arc::new(CachedDirectory::with_shared(
        backend.clone(),
        CacheSettings::default(),
        Some(shared()),
    ));
    let listener = {
        let replica = replica.clone();
        tokio::spawn(async move { replica.run_invalidation_listener().await })
    };
    let invalidator = RemoteInvalidator::with_shared(shared());
    let pivot = PivotQuery::new("email", "dave@example.org", false);
    let calls = || backend.calls.load(Ordering::SeqCst);

    // Heard before the failover...
    let heard = |when: &'static str| {
        let (replica, invalidator, pivot) = (replica.clone(), &invalidator, pivot.clone());
        async move {
            eventually(Duration::from_secs(20), when, || async {
                replica.is_listening().then_some(())
            })
            .await;
            replica.find(&pivot).await.unwrap();
            let before = calls();
            replica.find(&pivot).await.unwrap();
            assert_eq!(calls(), before, "the second lookup is cached");
            eventually(Duration::from_secs(20), when, || async {
                // (Fails while no master is known: tried again.)
                invalidator.invalidate(Some(&pivot)).await.ok()?;
                tokio::time::sleep(Duration::from_millis(100)).await;
                replica.find(&pivot).await.unwrap();
                (calls() > before).then_some(())
            })
            .await;
        }
    };
    heard("an invalidation heard before the failover").await;

    cluster.wait_replicated().await;
    cluster.master.kill();
    cluster.wait_promoted(Duration::from_secs(30)).await;
    // ...and after it, on the new master.
    heard("an invalidation heard after the failover").await;
    listener.abort();
}

#[tokio::test]
async fn rediss_with_a_private_ca_signs_in_and_a_wrong_ca_is_a_clear_readiness_failure() {
    let pki = TestPki::new();
    let node = tls_node(&pki);
    let url = format!("url: \"rediss://127.0.0.1:{}/\"", node.port);
    let store = |ca: &std::path::Path| {
        vec![
            "kind: redis".to_string(),
            url.clone(),
            format!("ca_file: \"{}\"", ca.display()),
            key_line(KEY_A),
        ]
    };
    let gw = gateway_with_store(
        GatewayOptions::default(),
        guichet_echo(),
        &store(&pki.ca_file()),
    );
    wait_ready(&gw, 200, Duration::from_secs(10)).await;
    let mut browser = gw.browser();
    let done = browser.login(&gw, "/", ALICE).await;
    assert_eq!(done.status, 302, "{}", done.body);
    let page = whoami(&mut browser, &gw).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(node.cli(&["KEYS", "guichet:s:*"]).contains("guichet:s:"));

    // Another CA: the certificate is refused, readiness says so and the log says why.
    let logs = logs::Scope::begin();
    let other = TestPki::new();
    let wrong = gateway_with_store(
        GatewayOptions::default(),
        gw.echo.clone(),
        &store(&other.ca_file()),
    );
    wait_ready(&wrong, 503, Duration::from_secs(10)).await;
    logs.wait_for_line(
        &[
            "session store unreachable",
            &format!("rediss://127.0.0.1:{}/", node.port),
            "invalid peer certificate",
        ],
        Duration::from_secs(10),
    )
    .await;
    let mut browser = wrong.browser();
    let page = browser.send(browser.get(&wrong.url("/private"))).await;
    assert_eq!(page.status, 503, "{}", page.body);

    // A CA file that holds no certificate is refused at start, naming the field.
    let dir = tempfile::tempdir().unwrap();
    let junk = write_file(dir.path(), "ca.crt", "not a certificate\n");
    let yaml = config_with_store(
        &GatewayOptions::default(),
        1,
        2,
        gw.echo.address,
        &store(&junk),
    );
    let error = Config::from_yaml(&yaml).unwrap_err().to_string();
    assert!(error.starts_with("session.store.ca_file:"), "{error}");
}

#[tokio::test]
async fn an_acl_user_signs_in_and_a_wrong_password_is_a_clear_readiness_failure() {
    let node = acl_node("admin-secret", "guichet", "guichet-secret");
    // The URL's user and password are overridden by username / password.
    let url = format!("url: \"redis://nobody:nothing@127.0.0.1:{}/\"", node.port);
    let store = |password: &str| {
        vec![
            "kind: redis".to_string(),
            url.clone(),
            "username: guichet".into(),
            format!("password: \"{password}\""),
            key_line(KEY_A),
        ]
    };
    let gw = gateway_with_store(
        GatewayOptions::default(),
        guichet_echo(),
        &store("guichet-secret"),
    );
    wait_ready(&gw, 200, Duration::from_secs(10)).await;
    let mut browser = gw.browser();
    let done = browser.login(&gw, "/", ALICE).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(whoami(&mut browser, &gw).await.status, 200);
    let clients = node.cli(&["CLIENT", "LIST"]);
    assert!(clients.contains("user=guichet"), "{clients}");

    let logs = logs::Scope::begin();
    let wrong_password = format!("wrong-{}", rand::random::<u64>());
    let wrong = gateway_with_store(
        GatewayOptions::default(),
        gw.echo.clone(),
        &store(&wrong_password),
    );
    wait_ready(&wrong, 503, Duration::from_secs(10)).await;
    logs.wait_for_line(
        &[
            "session store unreachable",
            &format!("redis://127.0.0.1:{}/", node.port),
            "authentication failed",
        ],
        Duration::from_secs(10),
    )
    .await;
    assert!(
        !logs::text().contains(&wrong_password),
        "the password was logged"
    );

    // A user name needs a password.
    let yaml = config_with_store(
        &GatewayOptions::default(),
        1,
        2,
        gw.echo.address,
        &[
            "kind: redis".to_string(),
            format!("url: \"redis://127.0.0.1:{}/\"", node.port),
            "username: guichet".into(),
            key_line(KEY_A),
        ],
    );
    let error = Config::from_yaml(&yaml).unwrap_err().to_string();
    assert!(error.starts_with("session.store.username:"), "{error}");
}

#[tokio::test]
async fn sessions_sealed_with_the_previous_key_still_work_after_a_rotation() {
    let node = RedisNode::plain();
    let store = |key: &str, previous: &[&str]| {
        let mut lines = vec![
            "kind: redis".to_string(),
            format!("url: \"redis://127.0.0.1:{}/\"", node.port),
            key_line(key),
        ];
        if !previous.is_empty() {
            lines.push(format!(
                "previous_encryption_keys: [{}]",
                previous
                    .iter()
                    .map(|k| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        lines
    };
    let session_keys = || node.cli(&["KEYS", "guichet:s:*"]).lines().count();

    // Key A.
    let mut first = gateway_with_store(
        GatewayOptions::default(),
        guichet_echo(),
        &store(KEY_A, &[]),
    );
    let mut alice = first.browser();
    alice.login(&first, "/", ALICE).await;
    assert_eq!(whoami(&mut alice, &first).await.status, 200);
    let options = first.options.clone();
    let echo = first.echo.clone();
    first.stop();
    drop(first);
    assert_eq!(session_keys(), 1);

    // Key B, A as the previous one: Alice is still signed in, new sessions use B. (New
    // browsers with the same cookies: the old ones keep connections to the stopped gateway.)
    let mut second = gateway_with_store(options.clone(), echo.clone(), &store(KEY_B, &[KEY_A]));
    let mut alice = reopen(&alice, &second);
    let page = whoami(&mut alice, &second).await;
    assert_eq!(page.status, 200, "the session sealed with A: {}", page.body);
    assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);
    // Written again in place (its name came from A), not copied.
    assert_eq!(session_keys(), 1);
    let mut bob = second.browser();
    bob.login(&second, "/", BOB).await;
    assert_eq!(whoami(&mut bob, &second).await.status, 200);
    assert_eq!(session_keys(), 2);
    second.stop();
    drop(second);

    // Key B alone (the rotation is over): sessions of key B go on; those named by key A end,
    // which is why A stays listed for at least absolute_timeout after the switch.
    let third = gateway_with_store(options, echo, &store(KEY_B, &[]));
    let (mut alice, mut bob) = (reopen(&alice, &third), reopen(&bob, &third));
    let page = whoami(&mut bob, &third).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-remote-user"), ["bob"]);
    assert_eq!(whoami(&mut alice, &third).await.status, 401);

    // A previous key must be a key too.
    let yaml = config_with_store(
        &GatewayOptions::default(),
        1,
        2,
        third.echo.address,
        &store(KEY_B, &["c2hvcnQ="]),
    );
    let error = Config::from_yaml(&yaml).unwrap_err().to_string();
    assert!(
        error.starts_with("session.store.previous_encryption_keys[0]:"),
        "{error}"
    );
}

#[test]
fn redis_settings_errors_name_the_field() {
    let echo: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let error = |lines: &[&str]| {
        let mut store = vec!["kind: redis".to_string(), key_line(KEY_A)];
        store.extend(lines.iter().map(|l| l.to_string()));
        let yaml = config_with_store(&GatewayOptions::default(), 1, 2, echo, &store);
        Config::from_yaml(&yaml).unwrap_err().to_string()
    };
    let named = |name: &str, nodes: &str| {
        vec![
            "sentinel:".to_string(),
            format!("  master_name: \"{name}\""),
            format!("  nodes: {nodes}"),
        ]
    };
    let sentinel = |nodes: &str| named("guichet", nodes);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![], "session.store.url: required"),
        (
            [vec!["url: \"redis://127.0.0.1:6379/\"".to_string()], sentinel("[\"127.0.0.1:26379\"]")].concat(),
            "session.store: give either url or sentinel, not both",
        ),
        (sentinel("[]"), "session.store.sentinel.nodes: list at least one"),
        (
            sentinel("[\"10.0.0.1:26379\", \"sentinel-1.redis\"]"),
            "session.store.sentinel.nodes[1]: \"sentinel-1.redis\": expected host:port",
        ),
        (
            sentinel("[\"10.0.0.1:26379\", \"[::1]:0\"]"),
            "session.store.sentinel.nodes[1]:",
        ),
        (
            named("", "[\"10.0.0.1:26379\"]"),
            "session.store.sentinel.master_name",
        ),
        (
            [sentinel("[\"10.0.0.1:26379\"]"), vec!["  password: { env: GUICHET_TEST_UNSET_VARIABLE }".into()]].concat(),
            "session.store.sentinel.password: environment variable GUICHET_TEST_UNSET_VARIABLE is not set",
        ),
        (
            vec!["url: \"rediss://127.0.0.1:6379/#insecure\"".into()],
            "session.store.url: #insecure is not supported",
        ),
        (
            vec!["url: \"http://127.0.0.1:6379/\"".into()],
            "session.store.url: scheme must be redis or rediss",
        ),
    ];
    for (lines, expected) in cases {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let message = error(&lines);
        assert!(message.starts_with(expected), "{lines:?}: {message}");
    }
}
