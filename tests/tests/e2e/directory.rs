//! The directory at the gateway: roles from a YAML file or a SCIM server (wiremock), account
//! states, unknown people, and the cache in front of it (real Redis): coalescing, sharing
//! between replicas, stale answers, invalidation.

use std::time::Duration;

use guichet_tests::logs;
use guichet_tests::poll::{eventually, Deadline};

use guichet_tests::scim::{self, MockScim, Mode};
use guichet_tests::{
    guichet_binary, user_hash, Browser, GatewayOptions, RedisServer, Store, TestGateway,
};
use serde_json::json;

/// A local provider whose logins are linked to the directory by e-mail.
fn staff_provider() -> String {
    let hash = user_hash("alice");
    let users: String = [
        ("dave", "Dave@Example.org"),
        ("erin", "erin@example.org"),
        ("frank", "frank@example.org"),
        ("gina", "gina@example.org"),
        ("hank", "hank@example.org"),
        ("ivy", "ivy@example.org"),
        ("jules", "jules@example.org"),
    ]
    .iter()
    .map(|(name, email)| {
        format!("      - {{ username: {name}, email: \"{email}\", password_hash: '{hash}' }}\n")
    })
    .collect();
    // kim's login carries no e-mail: linked to nobody.
    let users = format!("{users}      - {{ username: kim, password_hash: '{hash}' }}\n");
    format!(
        "  - kind: local\n    id: staff\n    pivot: {{ attribute: email, directory_attribute: email }}\n    users:\n{users}"
    )
}

/// `bip` needs a directory role; `cdi` admits people unknown to the directory as guests.
const APPS: &str = r#"
  - id: bip
    url: {origin}/bip
    upstream: http://{echo}
    providers: [staff]
    contact: "dsi@example.org"
    rules:
      - { name: bip public pages, path_prefix: /bip/public, access: public }
      - { name: bip admin, path_prefix: /bip/admin, any_role: [admin] }
      - { name: bip users, path_prefix: /bip, any_role: [utilisateur, admin] }
    identity_headers:
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: X-Remote-Roles, value: roles }
        - { name: X-Remote-Structure, value: "attribute:structure" }
  - id: cdi
    url: {origin}/cdi
    upstream: http://{echo}
    providers: [staff]
    unknown_person: guest
    guest_roles: [visiteur]
    rules:
      - { path_prefix: /cdi/catalogue, any_role: [visiteur, lecteur] }
      - { path_prefix: /cdi, any_role: [lecteur] }
    identity_headers:
      headers:
        - { name: X-Remote-Roles, value: roles }
"#;

const PEOPLE: &str = r#"
people:
  - id: p-dave
    attributes: { email: dave@example.org, displayName: Dave }
    structures: ["0750001A"]
    roles: { bip: [utilisateur], cdi: [lecteur] }
  - id: p-erin
    attributes: { email: erin@example.org }
    roles: { bip: [admin] }
  - id: p-gina
    attributes: { email: gina@example.org }
    roles: { bip: [utilisateur] }
    locked: true
  - id: p-hank
    attributes: { email: hank@example.org }
    roles: { bip: [utilisateur] }
    valid_until: 2020-01-01T00:00:00Z
  - id: p-ivy
    attributes: { email: ivy@example.org }
    roles: { bip: [utilisateur] }
    valid_from: 2999-01-01
  - id: p-jules-1
    attributes: { email: jules@example.org }
  - id: p-jules-2
    attributes: { email: JULES@example.org }
"#;

fn options(directory: String, store: Store) -> GatewayOptions {
    GatewayOptions {
        store,
        extra_providers: vec![staff_provider()],
        extra_apps: vec![APPS.to_owned()],
        directory: Some(directory),
        ..Default::default()
    }
}

fn file_directory(path: &std::path::Path, l1_ttl: &str) -> String {
    format!(
        "  backend: {{ kind: file, path: \"{}\" }}\n  cache: {{ l1_ttl: {l1_ttl}, negative_ttl: {l1_ttl} }}\n",
        path.display()
    )
}

fn scim_directory(scim: &MockScim, cache: &str) -> String {
    format!(
        "  backend:\n    kind: scim\n    url: \"{}\"\n    bearer_token: \"s3cret-token\"\n    timeout: 1s\n    page_size: 2\n  cache: {cache}\n",
        scim.url()
    )
}

async fn signed_in(gw: &TestGateway, user: &str) -> Browser {
    let mut browser = gw.browser();
    let done = browser.login(gw, "/bip/", (user, "alice")).await;
    assert_eq!(done.status, 302, "{user} signs in: {}", done.body);
    browser
}

async fn status(browser: &mut Browser, gw: &TestGateway, path: &str) -> u16 {
    browser.send(browser.get(&gw.url(path))).await.status
}

#[tokio::test]
async fn roles_account_states_and_unknown_people_come_from_the_directory_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.yaml");
    std::fs::write(&path, PEOPLE).unwrap();
    let gw = TestGateway::start(options(file_directory(&path, "30s"), Store::Memory));

    // dave: role utilisateur on bip (his login's e-mail differs in case from the directory's).
    let mut dave = signed_in(&gw, "dave").await;
    let page = dave.send(dave.get_json(&gw.url("/bip/documents"))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-remote-roles"), vec!["utilisateur"]);
    assert_eq!(page.upstream_header("x-remote-structure"), vec!["0750001A"]);
    let denied = dave.send(dave.get(&gw.url("/bip/admin/users"))).await;
    assert_eq!(denied.status, 403);
    assert!(denied.body.contains("« bip »") && denied.body.contains("dsi@example.org"));
    assert_eq!(status(&mut dave, &gw, "/cdi/anything").await, 200);

    // erin: admin.
    let mut erin = signed_in(&gw, "erin").await;
    assert_eq!(status(&mut erin, &gw, "/bip/admin/users").await, 200);
    // ...but no role on cdi, where she is known, so not a guest.
    assert_eq!(status(&mut erin, &gw, "/cdi/catalogue").await, 403);

    // frank is unknown: denied on bip with his own page, a guest on cdi.
    let mut frank = signed_in(&gw, "frank").await;
    let page = frank.send(frank.get(&gw.url("/bip/documents"))).await;
    assert_eq!(page.status, 403);
    assert!(
        page.body.contains("not known to this application"),
        "{}",
        page.body
    );
    let guest = frank
        .send(frank.get_json(&gw.url("/cdi/catalogue/books")))
        .await;
    assert_eq!(guest.status, 200, "{}", guest.body);
    assert_eq!(guest.upstream_header("x-remote-roles"), vec!["visiteur"]);
    assert_eq!(status(&mut frank, &gw, "/cdi/loans").await, 403);

    // A login without the pivot attribute is an unknown person, never a pass around the
    // directory.
    let mut kim = signed_in(&gw, "kim").await;
    let page = kim.send(kim.get(&gw.url("/bip/documents"))).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("not known to this application"));
    assert_eq!(status(&mut kim, &gw, "/cdi/catalogue").await, 200);

    // On public pages, people the directory stops are served anonymously, never as
    // themselves.
    let mut gina = signed_in(&gw, "gina").await;
    let page = gina.send(gina.get_json(&gw.url("/bip/public/news"))).await;
    assert_eq!(page.status, 200);
    assert!(
        page.upstream_header("x-remote-user").is_empty(),
        "locked: anonymous"
    );
    let page = dave.send(dave.get_json(&gw.url("/bip/public/news"))).await;
    assert_eq!(page.upstream_header("x-remote-user"), vec!["dave"]);

    // Account states, each with its own page.
    for (user, says) in [
        ("gina", "your account is locked"),
        ("hank", "your account has expired"),
        ("ivy", "your account is not open yet"),
        ("jules", "matches several people in the directory"),
    ] {
        let mut browser = signed_in(&gw, user).await;
        let page = browser.send(browser.get(&gw.url("/bip/documents"))).await;
        assert_eq!(page.status, 403, "{user}");
        assert!(page.body.contains(says), "{user}: {}", page.body);
        assert!(page.body.contains("dsi@example.org"), "{user}");
    }
}

#[tokio::test]
async fn the_directory_file_is_read_again_when_it_changes() {
    let log = logs::Scope::begin();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.yaml");
    std::fs::write(&path, PEOPLE).unwrap();
    let gw = TestGateway::start(options(file_directory(&path, "1s"), Store::Memory));
    let mut dave = signed_in(&gw, "dave").await;
    assert_eq!(status(&mut dave, &gw, "/bip/admin/").await, 403);

    std::fs::write(
        &path,
        PEOPLE.replace(
            "roles: { bip: [utilisateur], cdi",
            "roles: { bip: [admin], cdi",
        ),
    )
    .unwrap();
    // The file is checked at most once a second, and L1 keeps dave for l1_ttl.
    let deadline = Deadline::after(Duration::from_secs(10), "the new role is seen");
    while status(&mut dave, &gw, "/bip/admin/").await != 200 {
        deadline.tick_every(Duration::from_millis(200)).await;
    }

    // A broken edit keeps the people last read: every answer stays 200 until, and after, the
    // gateway has tried to read the broken file (its log line names this test's file).
    std::fs::write(&path, "people: [ {id: ").unwrap();
    let file = path.display().to_string();
    let deadline = Deadline::after(Duration::from_secs(10), "the broken file to be read");
    loop {
        assert_eq!(status(&mut dave, &gw, "/bip/admin/").await, 200);
        let tried = log
            .text()
            .lines()
            .any(|line| line.contains("directory file not reloaded") && line.contains(&file));
        if tried {
            break;
        }
        deadline.tick_every(Duration::from_millis(200)).await;
    }
    assert_eq!(status(&mut dave, &gw, "/bip/admin/").await, 200);
}

async fn scim_with_people() -> MockScim {
    let scim = MockScim::start().await;
    scim.state().expected_authorization = Some("Bearer s3cret-token".into());
    scim.put_user(scim::user(
        "u-dave",
        "dave@example.org",
        &["bip:utilisateur", "staff"],
    ));
    scim.put_user(scim::user("u-erin", "erin@example.org", &["bip:admin"]));
    scim
}

#[tokio::test]
async fn a_hundred_concurrent_first_requests_for_one_person_make_one_scim_call() {
    let redis = RedisServer::start();
    let scim = scim_with_people().await;
    let gw = TestGateway::start(options(
        scim_directory(&scim, "{ l1_ttl: 60s }"),
        Store::Redis { url: redis.url() },
    ));
    let dave = signed_in(&gw, "dave").await;
    assert_eq!(
        scim.user_lookups().await,
        0,
        "signing in does not read the directory"
    );
    // Every request arrives while the first lookup is in flight.
    scim.set_mode(Mode::Slow(Duration::from_millis(500)));
    let cookie = dave.cookie_header().unwrap();
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let client = dave.raw().clone();
            let request = client
                .get(gw.url("/bip/documents"))
                .header("cookie", cookie.clone())
                .header("accept", "application/json");
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(
        scim.user_lookups().await,
        1,
        "one SCIM call for 100 requests"
    );
    // The call carried the configured credential and an escaped `eq` filter.
    let request = &scim.requests().await[0];
    assert_eq!(request.headers["authorization"], "Bearer s3cret-token");
    let filter = guichet_tests::query_value(&request.url, "filter").unwrap();
    assert_eq!(filter, r#"emails.value eq "dave@example.org""#);
}

#[tokio::test]
async fn two_gateways_share_the_cache_in_redis_and_redis_holds_no_personal_data() {
    let redis = RedisServer::start();
    let scim = scim_with_people().await;
    let directory = scim_directory(&scim, "{ l1_ttl: 60s, l2_ttl: 5m }");
    let gw1 = TestGateway::start(options(
        directory.clone(),
        Store::Redis { url: redis.url() },
    ));
    let gw2 = TestGateway::start_with_echo(
        options(directory, Store::Redis { url: redis.url() }),
        gw1.echo.clone(),
    );
    let mut dave = signed_in(&gw1, "dave").await;
    let page = dave.send(dave.get_json(&gw1.url("/bip/documents"))).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.upstream_header("x-remote-roles"), vec!["utilisateur"]);
    assert_eq!(scim.user_lookups().await, 1);

    // The same session on the second replica: roles from the shared cache, no SCIM call.
    let mut on_gw2 = gw2.browser();
    on_gw2.cookies = dave.cookies.clone();
    let page = on_gw2
        .send(on_gw2.get_json(&gw2.url("/bip/documents")))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-remote-roles"), vec!["utilisateur"]);
    assert_eq!(
        scim.user_lookups().await,
        1,
        "the second instance made no SCIM call"
    );

    // A dump of Redis: directory entries are there, sealed, under hashed names.
    let keys = redis.command(&["KEYS", "*"]);
    assert!(keys.contains("d:"), "{keys}");
    let dump = redis_dump(&redis);
    for personal in ["dave", "u-dave", "utilisateur", "example.org", "Person"] {
        assert!(!dump.contains(personal), "{personal:?} readable in Redis");
    }
}

/// Every key and value in Redis, as text.
fn redis_dump(redis: &RedisServer) -> String {
    let keys = redis.command(&["KEYS", "*"]);
    let mut dump = keys.clone();
    for key in keys.lines().filter(|k| !k.is_empty()) {
        dump.push_str(&redis.command(&["GET", key]));
    }
    dump
}

#[tokio::test]
async fn a_failing_scim_directory_gets_stale_answers_within_the_bound_then_503() {
    let redis = RedisServer::start();
    let scim = scim_with_people().await;
    let gw = TestGateway::start(options(
        scim_directory(&scim, "{ l1_ttl: 1s, l2_ttl: 1s, max_stale: 4s }"),
        Store::Redis { url: redis.url() },
    ));
    let mut dave = signed_in(&gw, "dave").await;
    assert_eq!(status(&mut dave, &gw, "/bip/documents").await, 200);
    let fetched = std::time::Instant::now();
    scim.set_mode(Mode::Status(503));
    // Waiting for the TTLs (1 s) to pass is what is tested here: a sleep, with a margin.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Past every TTL, the directory down: the last answer stands in, roles intact.
    let page = dave.send(dave.get_json(&gw.url("/bip/documents"))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-remote-roles"), vec!["utilisateur"]);
    // Past max_stale: 503, never "no roles".
    let remaining = Duration::from_millis(4600).saturating_sub(fetched.elapsed());
    tokio::time::sleep(remaining).await;
    let page = dave.send(dave.get(&gw.url("/bip/documents"))).await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("The directory is not responding"));
    // The directory back: served again (once the failure, remembered for a second, is gone).
    // A sleep, not a poll: every request meanwhile would count in the metrics below.
    scim.set_mode(Mode::Normal);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(status(&mut dave, &gw, "/bip/documents").await, 200);
    // Operators see it in the metrics.
    let metrics = reqwest::get(gw.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"guichet_directory_lookups_total{source="directory"} 2"#,
        r#"guichet_directory_lookups_total{source="stale"} 1"#,
        r#"guichet_directory_lookups_total{source="failed"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn bad_scim_answers_are_outages_and_only_404_or_nothing_found_is_an_unknown_person() {
    let scim = scim_with_people().await;
    let gw = TestGateway::start(options(
        scim_directory(&scim, "{ l1_ttl: 60s }"),
        Store::Memory,
    ));
    let mut dave = signed_in(&gw, "dave").await;
    for mode in [
        Mode::Status(500),
        Mode::Status(401),
        Mode::Malformed,
        Mode::Slow(Duration::from_secs(3)),
        Mode::Huge,
        Mode::ForeignNotFound,
    ] {
        scim.set_mode(mode.clone());
        // The failure before is remembered for a second; forget it to ask the directory again.
        invalidate(&gw, "dave@example.org").await;
        let lookups = scim.user_lookups().await;
        let page = dave.send(dave.get(&gw.url("/bip/documents"))).await;
        assert_eq!(page.status, 503, "{mode:?}: {}", page.body);
        assert_eq!(scim.user_lookups().await, lookups + 1, "{mode:?} was asked");
        // Meanwhile, dave's next request gets the 503 at once, without a directory call.
        assert_eq!(status(&mut dave, &gw, "/bip/documents").await, 503);
        assert_eq!(scim.user_lookups().await, lookups + 1, "{mode:?}: backoff");
    }
    scim.set_mode(Mode::Normal);
    // A user whose `active` is not a boolean: unreadable, so an outage too.
    let mut erin = scim::user("u-erin", "erin@example.org", &["bip:admin"]);
    erin["active"] = json!("false");
    scim.put_user(erin);
    let mut erin_browser = signed_in(&gw, "erin").await;
    assert_eq!(status(&mut erin_browser, &gw, "/bip/documents").await, 503);
    // Two people with frank's e-mail (one on a later page): nobody is chosen.
    scim.put_user(scim::user("u-frank-1", "frank@example.org", &["bip:admin"]));
    scim.put_user(scim::user("u-frank-2", "FRANK@example.org", &[]));
    scim.put_user(scim::user("u-frank-3", "Frank@example.org", &[]));
    let mut frank = signed_in(&gw, "frank").await;
    let page = frank.send(frank.get(&gw.url("/bip/documents"))).await;
    assert_eq!(page.status, 403);
    assert!(
        page.body.contains("matches several people"),
        "{}",
        page.body
    );

    scim.set_mode(Mode::NotFound);
    invalidate(&gw, "dave@example.org").await;
    let page = dave.send(dave.get(&gw.url("/bip/documents"))).await;
    assert_eq!(page.status, 403, "404 is an unknown person");
    assert!(page.body.contains("not known to this application"));

    // Nobody found in a well-formed answer: unknown too (after invalidating the remembered
    // "unknown" through the admin endpoint, open to loopback without a token).
    scim.set_mode(Mode::Normal);
    scim.state().users.retain(|u| u["id"] != "u-dave");
    invalidate(&gw, "dave@example.org").await;
    let lookups = scim.user_lookups().await;
    let page = dave.send(dave.get(&gw.url("/bip/documents"))).await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("not known to this application"));
    assert_eq!(scim.user_lookups().await, lookups + 1);
}

/// Forgets a person through the admin endpoint (open to loopback without a token).
async fn invalidate(gw: &TestGateway, email: &str) {
    let invalidated = reqwest::Client::new()
        .post(gw.admin_url("/directory/invalidate"))
        .form(&[("attribute", "email"), ("value", email)])
        .send()
        .await
        .unwrap();
    assert_eq!(invalidated.status(), 200);
}

#[tokio::test]
async fn groups_are_read_page_by_page_when_the_user_resource_lacks_them() {
    let scim = scim_with_people().await;
    let mut dave = scim::user("u-dave", "dave@example.org", &[]);
    dave.as_object_mut().unwrap().remove("groups");
    scim.put_user(dave);
    scim.state().groups.push((
        "u-dave".into(),
        [
            "staff",
            "bip:lecteur",
            "cdi:lecteur",
            "bip:admin",
            "bip:utilisateur",
        ]
        .map(String::from)
        .to_vec(),
    ));
    let gw = TestGateway::start(options(
        scim_directory(&scim, "{ l1_ttl: 60s }"),
        Store::Memory,
    ));
    let mut browser = signed_in(&gw, "dave").await;
    let page = browser.send(browser.get_json(&gw.url("/bip/admin/"))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.upstream_header("x-remote-roles"),
        vec!["admin,lecteur,utilisateur"]
    );
    let pages = scim
        .requests()
        .await
        .iter()
        .filter(|r| r.url.path() == "/scim/v2/Groups")
        .count();
    assert_eq!(pages, 3, "5 groups, 2 per page");
}

#[tokio::test]
async fn an_invalidation_reaches_both_gateways() {
    let redis = RedisServer::start();
    let scim = scim_with_people().await;
    let directory = scim_directory(&scim, "{ l1_ttl: 10m, l2_ttl: 10m }");
    let gw1 = TestGateway::start(options(
        directory.clone(),
        Store::Redis { url: redis.url() },
    ));
    let gw2 = TestGateway::start_with_echo(
        options(directory.clone(), Store::Redis { url: redis.url() }),
        gw1.echo.clone(),
    );
    for gw in [&gw1, &gw2] {
        let cache = gw
            .running
            .as_ref()
            .unwrap()
            .gateway
            .directory
            .clone()
            .unwrap();
        let deadline = Deadline::after(
            Duration::from_secs(10),
            "the invalidation listener to subscribe",
        );
        while !cache.is_listening() {
            deadline.tick().await;
        }
    }
    let mut dave = signed_in(&gw1, "dave").await;
    let mut dave2 = gw2.browser();
    dave2.cookies = dave.cookies.clone();
    assert_eq!(status(&mut dave, &gw1, "/bip/admin/").await, 403);
    assert_eq!(status(&mut dave2, &gw2, "/bip/admin/").await, 403);

    // An administrator gives dave the admin role; the caches still hold the old roles.
    scim.put_user(scim::user("u-dave", "dave@example.org", &["bip:admin"]));
    assert_eq!(status(&mut dave2, &gw2, "/bip/admin/").await, 403);

    // Invalidated through gw1's admin endpoint: both replicas see the new role.
    let log = logs::Scope::begin();
    let invalidated = reqwest::Client::new()
        .post(gw1.admin_url("/directory/invalidate"))
        .form(&[("attribute", "email"), ("value", " Dave@example.org")])
        .send()
        .await
        .unwrap();
    assert_eq!(invalidated.status(), 200);
    // " Dave@example.org" (trimmed in the event) is this test's own spelling.
    let events = log.audit_events("directory_invalidated");
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["value"] == "Dave@example.org"
                && e["fields"]["attribute"] == "email"),
        "{events:?}"
    );
    assert_eq!(
        await_status(&mut dave2, &gw2, "/bip/admin/", 200).await,
        200
    );
    assert_eq!(status(&mut dave, &gw1, "/bip/admin/").await, 200);

    // And through the command, from a config file pointing at the same Redis.
    scim.put_user(scim::user(
        "u-dave",
        "dave@example.org",
        &["bip:utilisateur"],
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("guichet.yaml");
    std::fs::write(
        &config,
        guichet_tests::config_yaml(
            &options(directory, Store::Redis { url: redis.url() }),
            guichet_tests::free_port(),
            guichet_tests::free_port(),
            gw1.echo.address,
        ),
    )
    .unwrap();
    invalidate_command(&config, "dave@example.org");
    assert_eq!(await_status(&mut dave, &gw1, "/bip/admin/", 403).await, 403);
    assert_eq!(
        await_status(&mut dave2, &gw2, "/bip/admin/", 403).await,
        403
    );
}

/// Polls until the page answers `expected` (invalidations travel through Redis pub/sub); the
/// last status seen.
async fn await_status(browser: &mut Browser, gw: &TestGateway, path: &str, expected: u16) -> u16 {
    let deadline = Deadline::after(
        Duration::from_secs(5),
        format!("{path} to answer {expected}"),
    );
    loop {
        let last = status(browser, gw, path).await;
        if last == expected || deadline.passed() {
            return last;
        }
        deadline.tick().await;
    }
}

#[tokio::test]
async fn the_invalidation_endpoint_requires_the_admin_token_when_one_is_set() {
    let scim = scim_with_people().await;
    let directory = format!(
        "{}  admin_token: \"t0ken-for-admins\"\n",
        scim_directory(&scim, "{ l1_ttl: 60s }")
    );
    let gw = TestGateway::start(options(directory, Store::Memory));
    let client = reqwest::Client::new();
    let post = |token: Option<&str>| {
        let mut request = client
            .post(gw.admin_url("/directory/invalidate"))
            .form(&[("all", "true")]);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 403);
    assert_eq!(post(Some("wrong")).await.unwrap().status(), 403);
    let ok = post(Some("t0ken-for-admins")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.json::<serde_json::Value>().await.unwrap(),
        json!({"invalidated": "everyone"})
    );
    let bad = client
        .post(gw.admin_url("/directory/invalidate"))
        .bearer_auth("t0ken-for-admins")
        .form(&[("value", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let get = client
        .get(gw.admin_url("/directory/invalidate"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
}

#[test]
fn directory_configuration_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let echo: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let yaml = |options: &GatewayOptions| guichet_tests::config_yaml(options, 18080, 18081, echo);
    let load = |options: &GatewayOptions| {
        guichet_gateway::config::Config::from_yaml(&yaml(options))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    // A pivot without a directory.
    let mut no_directory = options(String::new(), Store::Memory);
    no_directory.directory = None;
    let error = load(&no_directory);
    assert!(error.starts_with("providers[2].pivot: "), "{error}");

    // A broken people file: the path to the bad entry.
    let path = dir.path().join("people.yaml");
    std::fs::write(
        &path,
        "people:\n  - id: a\n  - id: b\n    valid_until: someday\n",
    )
    .unwrap();
    let error = load(&options(file_directory(&path, "30s"), Store::Memory));
    assert!(
        error.starts_with("directory.backend.path: ") && error.contains("people[1].valid_until"),
        "{error}"
    );
    // SCIM credentials: both kinds at once, or half of basic.
    let scim = |extra: &str| {
        format!("  backend:\n    kind: scim\n    url: \"http://127.0.0.1:9/scim/v2\"\n{extra}")
    };
    let error = load(&options(
        scim("    bearer_token: a\n    basic_user: u\n    basic_password: p\n"),
        Store::Memory,
    ));
    assert!(
        error.starts_with("directory.backend.bearer_token: "),
        "{error}"
    );
    let error = load(&options(scim("    basic_user: u\n"), Store::Memory));
    assert!(
        error.starts_with("directory.backend.basic_password: "),
        "{error}"
    );
    let error = load(&options(
        format!("{}  cache: {{ l1_ttl: 0s }}\n", scim("")),
        Store::Memory,
    ));
    assert!(error.starts_with("directory.cache.l1_ttl: "), "{error}");
}

#[test]
fn policy_explain_reads_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let people = dir.path().join("people.yaml");
    std::fs::write(&people, PEOPLE).unwrap();
    let config = dir.path().join("guichet.yaml");
    let echo: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    std::fs::write(
        &config,
        guichet_tests::config_yaml(
            &options(file_directory(&people, "30s"), Store::Memory),
            18090,
            18091,
            echo,
        ),
    )
    .unwrap();
    let explain = |user: &str, path: &str| {
        let output = std::process::Command::new(guichet_binary())
            .args(["policy", "explain", "--config"])
            .arg(&config)
            .args(["--user", user, "--url"])
            .arg(format!("http://app.test:18090{path}"))
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    // A local login linked by its e-mail: the directory's roles and the rule that decided.
    let (ok, text) = explain("dave", "/bip/admin/users");
    assert!(ok, "{text}");
    assert!(text.contains("directory: p-dave (Active)"), "{text}");
    assert!(text.contains(r#"roles for bip: ["utilisateur"]"#), "{text}");
    assert!(
        text.contains("decision: deny (403)") && text.contains("bip admin"),
        "{text}"
    );
    // A pivot value directly, and an account state.
    let (_, text) = explain("gina@example.org", "/bip/documents");
    assert!(
        text.contains("Locked") && text.contains("403: account locked"),
        "{text}"
    );
    // Unknown on a guest app.
    let (_, text) = explain("nobody@example.org", "/cdi/catalogue");
    assert!(text.contains("unknown person"), "{text}");
    assert!(text.contains(r#"roles for cdi: ["visiteur"]"#), "{text}");
}

#[tokio::test]
async fn an_https_scim_directory_is_verified_against_the_configured_ca() {
    use guichet_tests::tls::{TestPki, TlsFront};
    let scim = scim_with_people().await;
    let pki = TestPki::new();
    let front = TlsFront::start(*scim.server.address(), &pki.leaf(&["127.0.0.1"]));
    let https_directory = |ca: &str| {
        format!(
            "  backend:\n    kind: scim\n    url: \"https://127.0.0.1:{}/scim/v2\"\n    bearer_token: \"s3cret-token\"\n    timeout: 2s\n{ca}",
            front.address.port()
        )
    };
    // The test CA is no system root: the directory cannot be trusted, so 503.
    let untrusted = TestGateway::start(options(https_directory(""), Store::Memory));
    let mut dave = signed_in(&untrusted, "dave").await;
    assert_eq!(status(&mut dave, &untrusted, "/bip/documents").await, 503);
    // With the CA configured: roles from the directory.
    let trusted = TestGateway::start(options(
        https_directory(&format!("    ca_file: \"{}\"\n", pki.ca_file().display())),
        Store::Memory,
    ));
    let mut dave = signed_in(&trusted, "dave").await;
    let page = dave
        .send(dave.get_json(&trusted.url("/bip/documents")))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-remote-roles"), vec!["utilisateur"]);
}

/// A directory that answers slowly with the roles it is told, counting its calls.
struct SlowDirectory {
    calls: std::sync::atomic::AtomicUsize,
    role: &'static str,
}

#[async_trait::async_trait]
impl guichet_directory_client::Directory for SlowDirectory {
    async fn find(
        &self,
        _pivot: &guichet_directory_client::PivotQuery,
    ) -> Result<
        Option<guichet_directory_client::DirectoryUser>,
        guichet_directory_client::DirectoryError,
    > {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Some(guichet_directory_client::DirectoryUser {
            id: "p-dave".into(),
            roles: [("bip".to_string(), vec![self.role.to_string()])].into(),
            ..Default::default()
        }))
    }

    fn describe(&self) -> String {
        "slow".into()
    }
}

#[tokio::test]
async fn a_read_in_flight_during_an_invalidation_is_not_shared_through_redis() {
    use guichet_directory_client::cache::RemoteInvalidator;
    use guichet_directory_client::{
        CacheSettings, CachedDirectory, PivotQuery, RedisCacheSettings,
    };
    use std::sync::Arc;
    let redis = RedisServer::start();
    let shared = RedisCacheSettings {
        url: redis.url(),
        encryption_key: [7; 32],
        key_prefix: "race:".into(),
    };
    // Replica A's directory read returns the old roles; by the time replica B asks, the
    // directory has the new ones.
    let old = Arc::new(SlowDirectory {
        calls: Default::default(),
        role: "utilisateur",
    });
    let new = Arc::new(SlowDirectory {
        calls: Default::default(),
        role: "admin",
    });
    let a = Arc::new(
        CachedDirectory::new(old.clone(), CacheSettings::default(), Some(shared.clone())).unwrap(),
    );
    let b =
        CachedDirectory::new(new.clone(), CacheSettings::default(), Some(shared.clone())).unwrap();
    let pivot = PivotQuery::new("email", "dave@example.org", false);

    let in_flight = {
        let (a, pivot) = (a.clone(), pivot.clone());
        tokio::spawn(async move { a.find(&pivot).await })
    };
    // Once A's read has reached the directory (which then takes 300 ms to answer)...
    eventually(Duration::from_secs(5), "replica A's directory read", || {
        let started = old.calls.load(std::sync::atomic::Ordering::SeqCst) > 0;
        async move { started.then_some(()) }
    })
    .await;
    // An administrator invalidates dave from elsewhere (the command) meanwhile.
    RemoteInvalidator::new(shared)
        .unwrap()
        .invalidate(Some(&pivot))
        .await
        .unwrap();
    let answered = in_flight.await.unwrap().unwrap().unwrap();
    assert_eq!(
        answered.roles["bip"],
        vec!["utilisateur"],
        "the waiting request is answered"
    );

    // Replica B must not be handed A's old answer through Redis.
    let user = b.find(&pivot).await.unwrap().unwrap();
    assert_eq!(user.roles["bip"], vec!["admin"]);
    assert_eq!(new.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_invalidate_command_calls_the_admin_endpoint_without_redis() {
    let dir = tempfile::tempdir().unwrap();
    let people = dir.path().join("people.yaml");
    std::fs::write(&people, PEOPLE).unwrap();
    let options = options(file_directory(&people, "10m"), Store::Memory);
    let gw = TestGateway::start(options.clone());
    let mut dave = signed_in(&gw, "dave").await;
    assert_eq!(status(&mut dave, &gw, "/bip/admin/").await, 403);
    std::fs::write(
        &people,
        PEOPLE.replace(
            "roles: { bip: [utilisateur], cdi",
            "roles: { bip: [admin], cdi",
        ),
    )
    .unwrap();
    // The file is read again, but dave's entry stays cached for l1_ttl (10 minutes)... This
    // sleep lets the file's once-a-second check interval pass (the read after the invalidation
    // must see the new file): a wait for an interval, with a margin.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(status(&mut dave, &gw, "/bip/admin/").await, 403);
    // ...until the command, given the running gateway's config, invalidates it there.
    let config = dir.path().join("guichet.yaml");
    std::fs::write(
        &config,
        guichet_tests::config_yaml(&options, gw.port, gw.admin_port, gw.echo.address),
    )
    .unwrap();
    let output = invalidate_command(&config, "Dave@Example.org");
    assert!(String::from_utf8_lossy(&output.stdout).contains("invalidated"));
    assert_eq!(status(&mut dave, &gw, "/bip/admin/").await, 200);
}

/// Runs `guichet directory invalidate` for an e-mail; its output, once it succeeded.
fn invalidate_command(config: &std::path::Path, email: &str) -> std::process::Output {
    let output = std::process::Command::new(guichet_binary())
        .args(["directory", "invalidate", "--config"])
        .arg(config)
        .args(["--attribute", "email", "--value", email])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `policy explain` and the request path make one decision: the same cases fed to both (every
/// kind of directory answer, public, rule-allowed, rule-denied and guest paths) agree, the
/// request's status being what the explanation announces.
#[tokio::test]
async fn policy_explain_and_the_request_path_decide_alike() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.yaml");
    std::fs::write(&path, PEOPLE).unwrap();
    let gw = TestGateway::start(options(file_directory(&path, "30s"), Store::Memory));
    let gateway = gw.running.as_ref().unwrap().gateway.clone();
    let paths = [
        "/bip/public/news",
        "/bip/documents",
        "/bip/admin/users",
        "/cdi/catalogue/books",
        "/cdi/loans",
    ];
    let mut compared = 0;
    for user in [
        "dave", "erin", "frank", "gina", "hank", "ivy", "jules", "kim",
    ] {
        let mut browser = signed_in(&gw, user).await;
        for path in paths {
            let explained =
                guichet_gateway::explain::explain(&gateway, user, &gw.url(path), "GET", None)
                    .await
                    .unwrap_or_else(|e| panic!("{user} {path}: {e}"));
            let decision = explained
                .lines()
                .find_map(|line| line.strip_prefix("decision: "))
                .unwrap_or_else(|| panic!("{explained}"));
            let expected = if decision.starts_with("allow") {
                200
            } else if decision.starts_with("deny (403") {
                403
            } else if decision.starts_with("deny (503") {
                503
            } else {
                panic!("{user} {path}: a signed-in person needs no login: {explained}")
            };
            let page = browser.send(browser.get_json(&gw.url(path))).await;
            assert_eq!(
                page.status, expected,
                "{user} GET {path}: the request path answered {}, explain said:\n{explained}",
                page.status
            );
            compared += 1;
        }
    }
    // Nobody signed in: the request asks for a login where explain's rules need someone.
    let mut anonymous = gw.browser();
    assert_eq!(
        anonymous
            .send(anonymous.get_json(&gw.url("/bip/documents")))
            .await
            .status,
        401
    );
    assert_eq!(compared, 40);
}
