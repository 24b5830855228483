//! Faults injected around the shipped binary (`guichet run` as a child process): Redis killed
//! and restarted, an application's upstream down or hanging, the directory down. Each fault
//! must give the user a page in French and English with the correlation id (never a panic, a
//! hung connection or a 200 with the wrong identity), and everything must recover without
//! restarting the gateway. `bench/faults.sh` measures the same faults under load.

use std::time::{Duration, Instant};

use guichet_tests::binary::GuichetProcess;
use guichet_tests::faults::{closed_port, HangingUpstream, PersistentRedis};
use guichet_tests::poll::eventually;
use guichet_tests::scim::{self, MockScim, Mode};
use guichet_tests::{user_hash, Browser, GatewayOptions, Page, Reachable, Store, ALICE};

/// Asserts an error page as the gateway promises it: the status, both languages, and the
/// correlation id of the response's `x-request-id` written in the page.
fn assert_error_page(page: &Page, status: u16, french: &str, english: &str) -> String {
    assert_eq!(page.status, status, "{}", page.body);
    let id = page
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no x-request-id on the {status} page"))
        .to_owned();
    assert!(
        page.body.contains(&format!("<code>{id}</code>")),
        "the correlation id {id} is on the page: {}",
        page.body
    );
    assert!(
        page.body.contains(french),
        "French {french:?}: {}",
        page.body
    );
    assert!(
        page.body.contains(english),
        "English {english:?}: {}",
        page.body
    );
    id
}

fn assert_no_panic(process: &GuichetProcess) {
    assert!(
        !process.output().contains("panicked"),
        "the gateway panicked:\n{}",
        process.output()
    );
}

/// The identity the echo app received, from a JSON answer.
fn user_seen(page: &Page) -> Vec<String> {
    page.upstream_header("x-remote-user")
}

async fn json(browser: &mut Browser, process: &GuichetProcess, path: &str) -> Page {
    browser.send(browser.get_json(&process.url(path))).await
}

/// The same user (cookies) on new connections: after an upstream error page the gateway closes
/// the connection although the page said `Connection: keep-alive` (see
/// `after_an_upstream_error_page_the_connection_is_closed_or_still_usable`), so a client that
/// reuses it gets a reset instead of an answer.
fn fresh(browser: &Browser, process: &GuichetProcess) -> Browser {
    let mut fresh = process.browser();
    fresh.cookies = browser.cookies.clone();
    fresh
}

#[tokio::test]
async fn redis_killed_and_restarted_sessions_survive_logins_get_503_then_recover() {
    let mut redis = PersistentRedis::start();
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let options = GatewayOptions {
        store: Store::Redis { url: redis.url() },
        ..GatewayOptions::default()
    };
    let mut process = GuichetProcess::start(&options, echo.address);
    process.wait_ready().await;
    let mut alice = process.browser();
    assert_eq!(alice.login(&process, "/", ALICE).await.status, 302);
    let page = json(&mut alice, &process, "/").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(user_seen(&page), ["alice"]);
    assert_eq!(
        redis.count_keys("guichet:s:*"),
        1,
        "the session is in Redis"
    );

    // SIGKILL: no shutdown, no final save. The gateway keeps a short-lived copy of session
    // records, so alice's requests fail once it has aged out.
    redis.kill();
    let outage = Instant::now();
    let page = eventually(Duration::from_secs(10), "alice's session refused", || {
        let mut alice = alice.clone();
        let process = &process;
        async move {
            let page = alice.send(alice.get(&process.url("/"))).await;
            (page.status != 200).then_some(page)
        }
    })
    .await;
    assert_error_page(
        &page,
        503,
        "Le service de sessions ne répond pas",
        "The session service is not responding",
    );
    // A new login cannot start (its transaction cannot be stored): the same page.
    let mut newcomer = process.browser();
    let page = newcomer.send(newcomer.get(&process.url("/"))).await;
    let id = assert_error_page(
        &page,
        503,
        "Le service de sessions ne répond pas",
        "The session service is not responding",
    );
    // Not ready (a load balancer sends users elsewhere), and the log says why, with the id.
    process
        .wait_for_readiness(503, Duration::from_secs(20))
        .await;
    process.wait_for_output(&id, Duration::from_secs(10)).await;
    assert!(
        outage.elapsed() < Duration::from_secs(60),
        "nothing hung during the outage"
    );

    // Redis back with its data, the gateway untouched: ready again, alice's session intact.
    redis.restart();
    process.wait_ready().await;
    let page = eventually(Duration::from_secs(10), "alice served again", || {
        let mut alice = alice.clone();
        let process = &process;
        async move {
            let page = json(&mut alice, process, "/").await;
            (page.status == 200).then_some(page)
        }
    })
    .await;
    assert_eq!(
        user_seen(&page),
        ["alice"],
        "the same cookie, the same user"
    );
    // And logins work again.
    let mut newcomer = process.browser();
    let done = newcomer.login(&process, "/", ALICE).await;
    assert_eq!(done.status, 302, "{}", done.body);
    let page = json(&mut newcomer, &process, "/").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(user_seen(&page), ["alice"]);
    assert_eq!(redis.count_keys("guichet:s:*"), 2);
    assert_no_panic(&process);
}

/// The test kit's gateway plus two apps behind `local` logins: `down` (its upstream refuses
/// connections) and `slow` (its upstream never answers; read timeout 2 s).
fn upstream_options(slow: &HangingUpstream) -> GatewayOptions {
    let apps = format!(
        r#"
  - id: down
    url: {{origin}}/down
    upstream: http://127.0.0.1:{closed}
    upstream_connect_timeout: 1s
    providers: [local]
    identity_headers:
      headers:
        - {{ name: X-Remote-User, value: subject }}
  - id: slow
    url: {{origin}}/slow
    upstream: {slow}
    upstream_connect_timeout: 1s
    upstream_read_timeout: 2s
    providers: [local]
    identity_headers:
      headers:
        - {{ name: X-Remote-User, value: subject }}
"#,
        closed = closed_port(),
        slow = slow.url(),
    );
    GatewayOptions {
        extra_apps: vec![apps],
        ..GatewayOptions::default()
    }
}

const APP_DOWN_FR: &str = "application ne répond pas. Réessayez dans quelques instants.";
const APP_DOWN_EN: &str = "The application is not responding. Please try again in a moment.";
const APP_SLOW_FR: &str = "pas répondu à temps. Réessayez dans quelques instants.";
const APP_SLOW_EN: &str = "The application did not answer in time. Please try again in a moment.";

#[tokio::test]
async fn an_upstream_that_is_down_gets_the_502_page_and_the_other_apps_are_served() {
    let slow = HangingUpstream::start();
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let mut process = GuichetProcess::start(&upstream_options(&slow), echo.address);
    process.wait_ready().await;
    let mut alice = process.browser();
    assert_eq!(alice.login(&process, "/down/", ALICE).await.status, 302);

    let started = Instant::now();
    let mut browser = fresh(&alice, &process);
    let page = browser.send(browser.get(&process.url("/down/page"))).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a refused connection is answered, not waited on"
    );
    let id = assert_error_page(&page, 502, APP_DOWN_FR, APP_DOWN_EN);
    // Scripts get the same status.
    let page = json(&mut fresh(&alice, &process), &process, "/down/api").await;
    assert_eq!(page.status, 502);
    // The log has a line for it, with the correlation id the user was shown (even without
    // the access log).
    process
        .wait_for_output(
            "request failed before the application answered",
            Duration::from_secs(10),
        )
        .await;
    assert!(
        process.output().lines().any(|line| line
            .contains("request failed before the application answered")
            && line.contains(&id)),
        "no log line with {id}"
    );
    // The session and the other apps are unaffected.
    let page = json(&mut alice, &process, "/").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(user_seen(&page), ["alice"]);
    assert_no_panic(&process);
}

/// Requests to the hanging app, started at once; returns them as they end, with how long each
/// took, while the caller keeps using another app.
fn hanging_requests(
    browser: &Browser,
    process: &GuichetProcess,
    count: usize,
) -> Vec<tokio::task::JoinHandle<(Page, Duration)>> {
    (0..count)
        .map(|i| {
            // Each on a connection of its own, which the error page ends.
            let mut browser = fresh(browser, process);
            let url = process.url(&format!("/slow/report-{i}"));
            tokio::spawn(async move {
                let started = Instant::now();
                let page = browser.send(browser.get(&url)).await;
                (page, started.elapsed())
            })
        })
        .collect()
}

#[tokio::test]
async fn a_hanging_upstream_gets_the_error_page_after_its_timeout_while_another_app_is_served() {
    let slow = HangingUpstream::start();
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let mut process = GuichetProcess::start(&upstream_options(&slow), echo.address);
    process.wait_ready().await;
    let mut alice = process.browser();
    assert_eq!(alice.login(&process, "/slow/", ALICE).await.status, 302);

    let pending = hanging_requests(&alice, &process, 8);
    // While those wait on the hanging upstream, the main app answers, for the right user.
    let mut served_meanwhile = 0;
    while !pending.iter().all(|task| task.is_finished()) {
        let page = json(&mut alice, &process, "/").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(user_seen(&page), ["alice"]);
        if !pending.iter().all(|task| task.is_finished()) {
            served_meanwhile += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        served_meanwhile >= 1,
        "the main app was not served while the slow app's requests waited"
    );
    for task in pending {
        let (page, took) = task.await.expect("request task");
        // An error page at the read timeout (2 s), neither sooner nor hanging.
        assert!(
            took >= Duration::from_millis(1900),
            "answered after {took:?}, before the upstream's read timeout"
        );
        assert!(took < Duration::from_secs(30), "hung for {took:?}");
        // A gateway timeout: the application did not answer in time.
        assert_error_page(&page, 504, APP_SLOW_FR, APP_SLOW_EN);
    }
    assert!(slow.accepted() >= 1, "the upstream was reached");
    assert_no_panic(&process);
}

#[tokio::test]
async fn an_upstream_read_timeout_is_a_504() {
    let slow = HangingUpstream::start();
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let mut process = GuichetProcess::start(&upstream_options(&slow), echo.address);
    process.wait_ready().await;
    let mut alice = process.browser();
    assert_eq!(alice.login(&process, "/slow/", ALICE).await.status, 302);
    let page = alice.send(alice.get(&process.url("/slow/"))).await;
    assert_error_page(&page, 504, APP_SLOW_FR, APP_SLOW_EN);
}

/// Sends `request` on `stream` and reads one response: its status, whether it announced
/// `Connection: close`, and its body (by `Content-Length`).
fn exchange(stream: &mut std::net::TcpStream, request: &str) -> std::io::Result<(u16, bool)> {
    use std::io::{BufRead, BufReader, Read, Write};
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut status_line = String::new();
    if reader.read_line(&mut status_line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut length, mut close) = (0usize, false);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "connection" => close = value.trim().eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok((status, close))
}

#[tokio::test]
async fn after_an_upstream_error_page_the_connection_is_closed_or_still_usable() {
    let slow = HangingUpstream::start();
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let mut options = upstream_options(&slow);
    // Two public apps (no session needed on a raw connection): one served, one whose upstream
    // refuses connections.
    options.extra_apps.push(format!(
        "  - {{ id: open, url: \"{{origin}}/open\", upstream: \"http://{{echo}}\", providers: [local], access: public }}\n  - {{ id: gone, url: \"{{origin}}/gone\", upstream: \"http://127.0.0.1:{}\", providers: [local], access: public }}\n",
        closed_port()
    ));
    let mut process = GuichetProcess::start(&options, echo.address);
    process.wait_ready().await;
    let port = process.port;
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let request = |path: &str| {
            format!("GET {path} HTTP/1.1\r\nHost: app.test:{port}\r\nAccept: text/html\r\n\r\n")
        };
        let (status, close) = exchange(&mut stream, &request("/gone/")).expect("the 502 page");
        assert_eq!(status, 502);
        if !close {
            // Kept alive, so it must serve the next request.
            let next = exchange(&mut stream, &request("/open/"));
            assert!(
                matches!(next, Ok((200, _))),
                "the connection announced as kept alive after the 502 page was closed: {next:?}"
            );
        }
    })
    .await
    .expect("the exchange");
}

/// dave and erin sign in with `staff`, linked by e-mail to the SCIM directory, which gives both
/// the role `bip` requires.
fn directory_options(scim: &MockScim) -> GatewayOptions {
    let hash = user_hash("alice");
    let staff = format!(
        "  - kind: local\n    id: staff\n    pivot: {{ attribute: email, directory_attribute: email }}\n    users:\n      - {{ username: dave, email: dave@example.org, password_hash: '{hash}' }}\n      - {{ username: erin, email: erin@example.org, password_hash: '{hash}' }}\n"
    );
    let bip = r#"
  - id: bip
    url: {origin}/bip
    upstream: http://{echo}
    providers: [staff]
    rules:
      - { path_prefix: /bip, any_role: [utilisateur] }
    identity_headers:
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: X-Remote-Roles, value: roles }
"#;
    GatewayOptions {
        extra_providers: vec![staff],
        extra_apps: vec![bip.to_owned()],
        directory: Some(format!(
            "  backend: {{ kind: scim, url: \"{}\", timeout: 1s }}\n  cache: {{ l1_ttl: 1s, max_stale: 1h }}\n",
            scim.url()
        )),
        ..GatewayOptions::default()
    }
}

#[tokio::test]
async fn directory_down_known_people_are_served_stale_newcomers_get_the_503_page_then_recovery() {
    let scim = MockScim::start().await;
    for (id, email) in [
        ("u-dave", "dave@example.org"),
        ("u-erin", "erin@example.org"),
    ] {
        scim.put_user(scim::user(id, email, &["bip:utilisateur"]));
    }
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let mut process = GuichetProcess::start(&directory_options(&scim), echo.address);
    process.wait_ready().await;
    let mut dave = process.browser();
    assert_eq!(
        dave.login(&process, "/bip/", ("dave", "alice"))
            .await
            .status,
        302
    );
    let page = json(&mut dave, &process, "/bip/").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-remote-roles"), ["utilisateur"]);

    // The directory fails (5xx) past dave's entry's TTL: waiting for the TTL is what is
    // tested, so a sleep with a margin.
    scim.set_mode(Mode::Status(503));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // dave: the last answer stands in (max_stale), roles intact.
    let page = json(&mut dave, &process, "/bip/").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(user_seen(&page), ["dave"]);
    assert_eq!(page.upstream_header("x-remote-roles"), ["utilisateur"]);
    // erin, never looked up: she can sign in (the directory is read on requests, not at
    // login), but her rights cannot be checked: the 503 page, never "no roles".
    let mut erin = process.browser();
    assert_eq!(
        erin.login(&process, "/bip/", ("erin", "alice"))
            .await
            .status,
        302
    );
    let page = erin.send(erin.get(&process.url("/bip/"))).await;
    let id = assert_error_page(
        &page,
        503,
        "annuaire ne répond pas",
        "The directory is not responding",
    );
    process.wait_for_output(&id, Duration::from_secs(10)).await;
    assert!(
        process
            .output()
            .lines()
            .any(|line| line.contains(&id) && line.contains("directory lookup failed")),
        "the log names the failure with the id:\n{}",
        process.output()
    );

    // The directory back: erin is served (the failure is remembered for a second only).
    scim.set_mode(Mode::Normal);
    let page = eventually(Duration::from_secs(10), "erin served", || {
        let mut erin = erin.clone();
        let process = &process;
        async move {
            let page = json(&mut erin, process, "/bip/").await;
            (page.status == 200).then_some(page)
        }
    })
    .await;
    assert_eq!(user_seen(&page), ["erin"]);
    assert_eq!(page.upstream_header("x-remote-roles"), ["utilisateur"]);
    let page = json(&mut dave, &process, "/bip/").await;
    assert_eq!(page.status, 200);
    assert_eq!(user_seen(&page), ["dave"]);
    assert_no_panic(&process);
}
