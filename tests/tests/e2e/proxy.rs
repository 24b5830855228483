//! Proxying itself: bodies, upgrades, upstream failures.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use guichet_tests::{GatewayOptions, TestGateway, ALICE};

#[tokio::test]
async fn request_bodies_are_streamed_to_the_app() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    let body = vec![b'x'; 3 * 1024 * 1024];
    let page = browser
        .send(
            browser
                .raw()
                .post(gw.url("/upload"))
                .header("accept", "application/json")
                .body(body),
        )
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.echo()["body_bytes"], 3 * 1024 * 1024);
}

#[tokio::test]
async fn websocket_upgrades_pass_through() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    let cookie = format!(
        "guichet_session={}",
        browser.cookie("guichet_session").unwrap()
    );
    let port = gw.port;
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            stream,
            "GET /socket HTTP/1.1\r\nHost: app.test:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: {cookie}\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        stream.write_all(b"ping over the upgraded connection").unwrap();
        let mut echoed = [0u8; 33];
        stream.read_exact(&mut echoed).unwrap();
        assert_eq!(&echoed, b"ping over the upgraded connection");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn anonymous_upgrades_to_protected_paths_are_refused() {
    let gw = TestGateway::start(GatewayOptions::default());
    let mut browser = gw.browser();
    let page = browser
        .send(
            browser
                .get(&gw.url("/socket"))
                .header("connection", "Upgrade")
                .header("upgrade", "websocket")
                .header("sec-fetch-mode", "websocket"),
        )
        .await;
    assert_eq!(page.status, 401);
}

#[tokio::test]
async fn an_unreachable_upstream_gets_an_error_page() {
    let closed_port = guichet_tests::free_port();
    let gw = TestGateway::start(GatewayOptions {
        upstream_override: Some(format!("http://127.0.0.1:{closed_port}")),
        ..Default::default()
    });
    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    let page = browser.send(browser.get(&gw.url("/"))).await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(page.body.contains("The application is not responding"));
    assert!(page.body.contains("Incident reference"));
    assert!(page.headers.get("x-request-id").is_some());
}
