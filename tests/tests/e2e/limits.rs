//! Resource bounds of the shipped binary against abusive clients (`limits:`): slow headers
//! (slowloris), slow bodies, idle keep-alive connections, the connection limit, oversized
//! heads, and logins piling up on a slow provider. Every test runs `guichet run` as a child
//! process with short limits and asserts "cut off before N seconds" with generous N.

use std::time::{Duration, Instant};

use guichet_gateway::echo::EchoServer;
use guichet_tests::binary::{GuichetProcess, Launch};
use guichet_tests::oidc::{self, MockOp};
use guichet_tests::{config_yaml, free_port, GatewayOptions, Reachable, APP_HOST};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `guichet run` with the test kit's configuration and this `limits:` section.
struct Limited {
    process: GuichetProcess,
    _echo: EchoServer,
    _dir: tempfile::TempDir,
}

async fn start(options: &GatewayOptions, limits: &str) -> Limited {
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let port = free_port();
    let admin_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guichet.yaml");
    let yaml = format!(
        "{}\nlimits:\n{limits}",
        config_yaml(options, port, admin_port, echo.address)
    );
    std::fs::write(&path, yaml).unwrap();
    let mut process = GuichetProcess::spawn(&path, port, admin_port, Launch::default());
    process.wait_ready().await;
    Limited {
        process,
        _echo: echo,
        _dir: dir,
    }
}

impl Limited {
    async fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.process.port))
            .await
            .expect("connect to guichet")
    }

    async fn metrics(&self) -> String {
        reqwest::get(self.process.admin_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// What the server sent until it closed the connection (or `within` passed: `None`).
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&received).into()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `bytes` one every `every`, stopping when the server has closed the connection;
/// returns how long the server kept it open, and what it answered.
async fn dribble(
    stream: TcpStream,
    bytes: &[u8],
    every: Duration,
    within: Duration,
) -> (Duration, Option<String>) {
    let started = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let bytes = bytes.to_vec();
    let sender = tokio::spawn(async move {
        for byte in bytes {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
        // Everything sent: keep the connection open, as an attacker would.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    let answer = loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            Err(_) => break None,
            Ok(Ok(0)) | Ok(Err(_)) => break Some(String::from_utf8_lossy(&received).into_owned()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    };
    sender.abort();
    (started.elapsed(), answer)
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn get(port: u16, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {APP_HOST}:{port}\r\nAccept: text/html\r\n\r\n")
}

/// Reads one response (head and Content-Length body) from a keep-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())
                        .flatten()
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_within_the_header_timeout() {
    let gateway = start(
        &GatewayOptions::default(),
        "  header_timeout: 1s\n  idle_timeout: 30s\n",
    )
    .await;
    let port = gateway.process.port;

    // A request line and headers, a byte every 200 ms: never whole within 1 s.
    let head = format!(
        "GET /public/ HTTP/1.1\r\nHost: {APP_HOST}:{port}\r\nX-Slow: {}\r\n\r\n",
        "x".repeat(200)
    );
    let (kept, answer) = dribble(
        gateway.connect().await,
        head.as_bytes(),
        Duration::from_millis(200),
        Duration::from_secs(10),
    )
    .await;
    let answer = answer.expect("the connection is closed by guichet");
    assert!(kept < Duration::from_secs(5), "cut off after {kept:?}");
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");

    // A connection that sends nothing is closed too (quietly).
    let mut silent = gateway.connect().await;
    let started = Instant::now();
    let answer = until_closed(&mut silent, Duration::from_secs(10)).await;
    assert_eq!(answer.as_deref(), Some(""), "closed without an answer");
    assert!(started.elapsed() < Duration::from_secs(5));

    // The second request of a keep-alive connection gets the same bound (pingora alone
    // waits for it without any timeout).
    let mut stream = gateway.connect().await;
    stream
        .write_all(get(port, "/public/").as_bytes())
        .await
        .unwrap();
    let first = read_response(&mut stream).await;
    assert_eq!(status_of(&first), 200, "{first}");
    let (kept, answer) = dribble(
        stream,
        head.as_bytes(),
        Duration::from_millis(200),
        Duration::from_secs(10),
    )
    .await;
    assert!(kept < Duration::from_secs(5), "cut off after {kept:?}");
    assert_eq!(status_of(&answer.expect("closed")), 408);

    // Normal clients are served all along.
    let (status, _) = guichet_tests::raw_get(port, APP_HOST, "/public/");
    assert_eq!(status, 200);
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("guichet_requests_cut_total{reason=\"header_timeout\"} 2"),
        "{metrics}"
    );
    gateway
        .process
        .wait_for_output("requests cut off", Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let gateway = start(&GatewayOptions::default(), "  idle_timeout: 1s\n").await;
    let port = gateway.process.port;
    let mut stream = gateway.connect().await;
    for _ in 0..2 {
        // Requests on the same connection within the idle timeout are served.
        stream
            .write_all(get(port, "/public/").as_bytes())
            .await
            .unwrap();
        assert_eq!(status_of(&read_response(&mut stream).await), 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let started = Instant::now();
    let answer = until_closed(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(answer.as_deref(), Some(""), "closed quietly");
    let idle = started.elapsed();
    assert!(
        idle >= Duration::from_millis(500) && idle < Duration::from_secs(5),
        "{idle:?}"
    );
}

#[tokio::test]
async fn a_slow_request_body_is_cut_off_at_the_login_form_and_before_an_app() {
    let gateway = start(
        &GatewayOptions::default(),
        "  body_timeout: 1s\n  body_min_rate: 1000\n",
    )
    .await;
    let port = gateway.process.port;
    for (path, what) in [
        ("/.guichet/login", "the login form"),
        ("/public/upload", "a proxied app"),
    ] {
        let mut stream = gateway.connect().await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {APP_HOST}:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // 5,000 bytes at 5 bytes a second: 1 s plus 5 ms a byte allowed, so cut off after
        // little more than a second.
        let (kept, _answer) = dribble(
            stream,
            &[b'a'; 5000],
            Duration::from_millis(200),
            Duration::from_secs(15),
        )
        .await;
        assert!(kept < Duration::from_secs(6), "{what}: held {kept:?}");
    }
    // The same body at a normal speed goes through.
    let browser = gateway.process.browser();
    let response = browser
        .raw()
        .post(gateway.process.url("/public/upload"))
        .body(vec![b'a'; 200_000])
        .send()
        .await;
    let response = response.expect("a fast body is served");
    assert_eq!(response.status(), 200);
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("guichet_requests_cut_total{reason=\"body_timeout\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn beyond_the_connection_limit_new_connections_get_503_and_the_others_are_served() {
    let gateway = start(
        &GatewayOptions::default(),
        "  max_connections: 4\n  header_timeout: 20s\n  idle_timeout: 20s\n",
    )
    .await;
    let port = gateway.process.port;
    // Four connections hold every slot: one in use, three idle.
    let mut busy = gateway.connect().await;
    busy.write_all(get(port, "/public/").as_bytes())
        .await
        .unwrap();
    assert_eq!(status_of(&read_response(&mut busy).await), 200);
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(gateway.connect().await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The fifth is answered 503 and closed at once.
    for _ in 0..3 {
        let mut extra = gateway.connect().await;
        extra.write_all(get(port, "/public/").as_bytes()).await.ok();
        let started = Instant::now();
        let answer = until_closed(&mut extra, Duration::from_secs(5))
            .await
            .expect("closed at once");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(status_of(&answer), 503, "{answer}");
        assert!(answer.contains("too many connections"), "{answer}");
    }

    // Connections already open are not affected.
    busy.write_all(get(port, "/public/again").as_bytes())
        .await
        .unwrap();
    assert_eq!(status_of(&read_response(&mut busy).await), 200);
    idle[0]
        .write_all(get(port, "/public/").as_bytes())
        .await
        .unwrap();
    assert_eq!(status_of(&read_response(&mut idle[0]).await), 200);

    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("guichet_connections_refused_total 3"),
        "{metrics}"
    );
    assert!(metrics.contains("guichet_connections_open 4"), "{metrics}");

    // A slot freed is a new client served.
    drop(idle.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut next = gateway.connect().await;
        next.write_all(get(port, "/public/").as_bytes()).await.ok();
        let answer = until_closed(&mut next, Duration::from_millis(1500)).await;
        // Served: the connection stays open after its answer (keep-alive), or answered 200.
        if answer.is_none() || answer.as_deref().is_some_and(|a| status_of(a) == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "no slot came free: {answer:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gateway
        .process
        .wait_for_output("connections refused", Duration::from_secs(5))
        .await;
}

/// Sends `request` at once (ignoring a write the server cut short) and reads the answer.
async fn send_whole(gateway: &Limited, request: &[u8]) -> (Duration, Option<String>) {
    let mut stream = gateway.connect().await;
    let started = Instant::now();
    stream.write_all(request).await.ok();
    let answer = until_closed(&mut stream, Duration::from_secs(10)).await;
    (started.elapsed(), answer)
}

#[tokio::test]
async fn oversized_request_heads_are_refused_quickly_with_414_or_431() {
    let gateway = start(
        &GatewayOptions::default(),
        "  max_header_bytes: 4096\n  max_headers: 20\n",
    )
    .await;
    let port = gateway.process.port;
    let host = format!("Host: {APP_HOST}:{port}\r\nConnection: close\r\n");

    let big_cookie = format!(
        "GET /public/ HTTP/1.1\r\n{host}Cookie: {}\r\n\r\n",
        "c".repeat(5000)
    );
    let (took, answer) = send_whole(&gateway, big_cookie.as_bytes()).await;
    let answer = answer.expect("answered and closed");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(status_of(&answer), 431, "{answer}");
    // The gateway's page, with the correlation id the audit line carries.
    assert!(answer.contains("Incident reference"), "{answer}");
    let id = answer
        .lines()
        .find_map(|line| line.strip_prefix("x-request-id: "))
        .expect("a correlation id")
        .trim()
        .to_owned();
    assert!(answer.contains(&format!("<code>{id}</code>")), "{answer}");

    let many: String = (0..25).map(|i| format!("X-Field-{i}: {i}\r\n")).collect();
    let (_, answer) = send_whole(
        &gateway,
        format!("GET /public/ HTTP/1.1\r\n{host}{many}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status_of(&answer.expect("closed")), 431);

    let long_target = format!("GET /public/{} HTTP/1.1\r\n{host}\r\n", "p".repeat(5000));
    let (_, answer) = send_whole(&gateway, long_target.as_bytes()).await;
    assert_eq!(status_of(&answer.expect("closed")), 414);

    // A megabyte of header: refused without reading it all, no hang, no crash.
    let huge = format!(
        "GET /public/ HTTP/1.1\r\n{host}X-Huge: {}\r\n\r\n",
        "h".repeat(1 << 20)
    );
    let (took, answer) = send_whole(&gateway, huge.as_bytes()).await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    if let Some(answer) = answer.filter(|a| !a.is_empty()) {
        assert_eq!(status_of(&answer), 431, "{answer}");
    }

    // Within the bounds: served.
    let fine: String = (0..17).map(|i| format!("X-Field-{i}: {i}\r\n")).collect();
    let (_, answer) = send_whole(
        &gateway,
        format!("GET /public/ HTTP/1.1\r\n{host}{fine}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status_of(&answer.expect("closed")), 200);

    gateway
        .process
        .wait_for_output(&id, Duration::from_secs(5))
        .await;
    let log = gateway.process.output();
    assert!(log.contains("request_refused"), "{log}");
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("guichet_requests_cut_total{reason=\"headers_too_large\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("guichet_requests_cut_total{reason=\"too_many_headers\"} 1"),
        "{metrics}"
    );
    assert!(
        guichet_tests::wait_for_port(port, Duration::from_secs(1)),
        "still up"
    );
}

/// A browser's trip to a provider up to the callback it is sent back to (not yet followed).
async fn callback_of(browser: &mut guichet_tests::Browser, gateway: &GuichetProcess) -> String {
    let first = browser.send(browser.get(&gateway.url("/rp/"))).await;
    assert_eq!(first.status, 302, "{}", first.body);
    let start = browser
        .send(browser.get(&gateway.url("/.guichet/login")))
        .await;
    assert_eq!(start.status, 302, "{}", start.body);
    let authorize = start.location().expect("to the provider").to_owned();
    let at_op = browser.send(browser.get(&authorize)).await;
    assert_eq!(at_op.status, 302, "{}", at_op.body);
    at_op.location().expect("back to guichet").to_owned()
}

#[tokio::test]
async fn logins_beyond_the_bound_get_a_503_page_while_a_provider_is_slow() {
    let op = MockOp::start().await;
    let options = GatewayOptions {
        extra_providers: vec![oidc::provider_yaml(
            "oidc",
            "op",
            &op.issuer,
            "timeout: 20s",
        )],
        extra_apps: vec![oidc::app_yaml("rp", "/rp", &["op"])],
        ..GatewayOptions::default()
    };
    let gateway = start(
        &options,
        "  max_concurrent_logins: 1\n  login_queue_timeout: 0s\n",
    )
    .await;
    let process = &gateway.process;
    let mut first = process.browser();
    let mut second = process.browser();
    let first_callback = callback_of(&mut first, process).await;
    let second_callback = callback_of(&mut second, process).await;

    // The provider's token endpoint now takes 6 s: the first login holds the only slot.
    op.behave(|b| b.token_delay = Some(Duration::from_secs(6)));
    let slow = tokio::spawn(async move {
        let page = first.send(first.get(&first_callback)).await;
        (page, first)
    });
    // Once the provider has the first login's code exchange, that login holds the slot.
    let deadline = Instant::now() + Duration::from_secs(10);
    while op.state().token_requests.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the first login reaches the provider"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let busy = second.send(second.get(&second_callback)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once"
    );
    assert_eq!(busy.status, 503, "{}", busy.body);
    assert!(
        busy.body.contains("Service momentanément indisponible"),
        "{}",
        busy.body
    );
    assert!(
        busy.body.contains("Service temporarily unavailable"),
        "{}",
        busy.body
    );
    let id = busy
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("a correlation id")
        .to_owned();
    assert!(
        busy.body.contains(&format!("<code>{id}</code>")),
        "{}",
        busy.body
    );
    assert_eq!(
        busy.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );

    let (done, _) = slow.await.unwrap();
    assert_eq!(done.status, 302, "the slow login completes: {}", done.body);
    assert_eq!(done.location(), Some("/rp/"));

    // The refused login was not used up: the same callback, once a slot is free, signs in.
    op.behave(|b| b.token_delay = None);
    let retried = second.send(second.get(&second_callback)).await;
    assert_eq!(retried.status, 302, "{}", retried.body);
    assert_eq!(retried.location(), Some("/rp/"));

    process.wait_for_output(&id, Duration::from_secs(5)).await;
    let log = process.output();
    let line = log.lines().find(|l| l.contains(&id)).unwrap_or_default();
    assert!(line.contains("login_failure"), "{line}");
    assert!(line.contains("limits.max_concurrent_logins"), "{line}");
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("guichet_logins_total{outcome=\"busy\",provider=\"op\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_bad_limit_is_one_line_naming_the_field_and_the_binary_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guichet.yaml");
    let echo: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let base = config_yaml(&GatewayOptions::default(), free_port(), free_port(), echo);
    for (section, expected) in [
        (
            "  max_connections: 0\n",
            "limits.max_connections: must be between 1 and 1000000",
        ),
        (
            "  header_timeout: 0s\n",
            "limits.header_timeout: must be between 100ms and 10m",
        ),
        (
            "  max_headers: 1000\n",
            "limits.max_headers: must be between 1 and 256",
        ),
    ] {
        std::fs::write(&path, format!("{base}\nlimits:\n{section}")).unwrap();
        let output = std::process::Command::new(guichet_tests::guichet_binary())
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        // The field, what is wrong, and where in the file: one line.
        assert!(
            stderr.starts_with(&format!("guichet: {expected} (line ")),
            "{section}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}
