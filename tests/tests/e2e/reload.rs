//! Configuration reload and shutdown of the shipped binary: a valid change applied (by the
//! file watch and by SIGHUP) while a load loop runs without a single failed request, sessions
//! kept; an invalid change refused, reported in the log and the metrics, the running
//! configuration kept; SIGTERM turns readiness off at once and lets in-flight requests finish.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use guichet_tests::binary::GuichetProcess;
use guichet_tests::{config_yaml, poll, Browser, GatewayOptions, Reachable, ALICE};

/// Rewrites the process's configuration the way a ConfigMap update does: a new file renamed
/// over the old one (the content changes at once, never half-written).
fn rewrite(process: &GuichetProcess, options: &GatewayOptions, echo: std::net::SocketAddr) {
    let path = process
        .config_path
        .clone()
        .expect("the test kit wrote the config");
    let next = path.with_extension("next");
    std::fs::write(
        &next,
        config_yaml(options, process.port, process.admin_port, echo),
    )
    .unwrap();
    std::fs::rename(&next, &path).unwrap();
}

async fn metrics(process: &GuichetProcess) -> String {
    reqwest::get(process.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Authenticated requests from `clients` tasks until `stop`: (successes, failures).
fn load(
    process: &GuichetProcess,
    browser: &Browser,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> (
    Arc<AtomicU64>,
    Arc<AtomicU64>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let url = process.url("/");
    let cookie = browser.cookie_header().expect("signed in");
    let tasks = (0..clients)
        .map(|_| {
            let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
            let client = Browser::new(process.port).raw().clone();
            let (url, cookie) = (url.clone(), cookie.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let response = client
                        .get(&url)
                        .header("cookie", &cookie)
                        .header("accept", "application/json")
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::SeqCst),
                        Ok(r) => {
                            eprintln!("load: {}", r.status());
                            failed.fetch_add(1, Ordering::SeqCst)
                        }
                        Err(e) => {
                            eprintln!("load: {e}");
                            failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                }
            })
        })
        .collect();
    (ok, failed, tasks)
}

#[tokio::test]
async fn a_valid_change_is_applied_under_load_without_a_failed_request() {
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let mut options = GatewayOptions::default();
    let mut process = GuichetProcess::start(&options, echo.address);
    process.wait_ready().await;
    let mut browser = process.browser();
    assert_eq!(browser.login(&process, "/", ALICE).await.status, 302);

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, tasks) = load(&process, &browser, 4, stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A new identity header, through the file watch.
    options
        .extra_headers
        .push(r#"{ name: X-Remote-Reloaded, value: "constant:yes" }"#.into());
    rewrite(&process, &options, echo.address);
    poll::eventually(Duration::from_secs(15), "the new header", || {
        let mut browser = browser.clone();
        let url = process.url("/");
        async move {
            let page = browser.send(browser.get_json(&url)).await;
            (page.upstream_header("x-remote-reloaded") == ["yes"]).then_some(())
        }
    })
    .await;

    // And another change, by SIGHUP.
    options
        .extra_headers
        .push(r#"{ name: X-Remote-Again, value: "constant:1" }"#.into());
    let path = process.config_path.clone().unwrap();
    std::fs::write(
        &path,
        config_yaml(&options, process.port, process.admin_port, echo.address),
    )
    .unwrap();
    process.signal(libc::SIGHUP);
    poll::eventually(Duration::from_secs(15), "the SIGHUP reload", || {
        let mut browser = browser.clone();
        let url = process.url("/");
        async move {
            let page = browser.send(browser.get_json(&url)).await;
            (page.upstream_header("x-remote-again") == ["1"]).then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(ok > 50, "the load loop ran: {ok} requests");
    assert_eq!(
        failed, 0,
        "no request failed during the reloads ({ok} succeeded)"
    );

    // The session survived; the metrics say what runs.
    let page = browser.send(browser.get_json(&process.url("/"))).await;
    assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);
    let metrics = metrics(&process).await;
    assert!(
        metrics.contains("guichet_config_reload_total{result=\"success\"} 2"),
        "{metrics}"
    );
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.starts_with("guichet_config_info{"))
            .count(),
        1,
        "{metrics}"
    );
    assert!(process.terminate(Duration::from_secs(20)).success());
}

#[tokio::test]
async fn an_invalid_change_is_refused_reported_and_the_running_configuration_kept() {
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let options = GatewayOptions::default();
    let mut process = GuichetProcess::start(&options, echo.address);
    process.wait_ready().await;
    let mut browser = process.browser();
    assert_eq!(browser.login(&process, "/", ALICE).await.status, 302);
    let before = metrics(&process).await;
    let info = |metrics: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with("guichet_config_info{"))
            .map(str::to_owned)
    };
    let path = process.config_path.clone().unwrap();
    let good = std::fs::read_to_string(&path).unwrap();

    // Broken YAML, by the file watch.
    std::fs::write(&path, format!("{good}\n  - this is: [not valid")).unwrap();
    poll::eventually(Duration::from_secs(15), "the refusal", || {
        let output = process.output();
        async move {
            output
                .contains("configuration reload refused")
                .then_some(())
        }
    })
    .await;
    // A secret that is not there, by SIGHUP.
    std::fs::write(
        &path,
        good.replace(
            "kind: memory",
            "kind: redis\n    url: { env: GUICHET_NOT_SET }\n    encryption_key: { env: GUICHET_NOT_SET_EITHER }",
        ),
    )
    .unwrap();
    process.signal(libc::SIGHUP);
    poll::eventually(Duration::from_secs(15), "the second refusal", || {
        let process = &process;
        async move {
            metrics(process)
                .await
                .contains("guichet_config_reload_total{result=\"failure\"} 2")
                .then_some(())
        }
    })
    .await;
    let output = process.output();
    assert!(
        output.contains("GUICHET_NOT_SET"),
        "names what is missing:\n{output}"
    );

    // Still serving, with the session and the configuration it had.
    let page = browser.send(browser.get_json(&process.url("/"))).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.upstream_header("x-remote-user"), ["alice"]);
    assert_eq!(info(&metrics(&process).await), info(&before));
    assert!(process.terminate(Duration::from_secs(20)).success());
}

/// An upstream that answers after `delay`.
async fn slow_upstream(delay: Duration) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                tokio::time::sleep(delay).await;
                let body = "slow and done";
                let _ = socket
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    address
}

#[tokio::test]
async fn sigterm_turns_readiness_off_and_lets_in_flight_requests_finish() {
    let upstream = slow_upstream(Duration::from_millis(1500)).await;
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let options = GatewayOptions {
        upstream_override: Some(format!("http://{upstream}")),
        ..GatewayOptions::default()
    };
    let mut process = GuichetProcess::start(&options, echo.address);
    process.wait_ready().await;
    let browser = process.browser();
    let in_flight = {
        let client = browser.raw().clone();
        let url = process.url("/public/slow");
        tokio::spawn(async move { client.get(&url).send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    process.start_terminating();
    // Not ready at once (or no longer listening): the load balancer stops sending traffic.
    poll::eventually(Duration::from_secs(1), "readiness off", || {
        let url = process.admin_url("/readyz");
        async move {
            match reqwest::get(&url).await {
                Ok(r) if r.status() == 503 => Some(()),
                Ok(_) => None,
                Err(_) => Some(()),
            }
        }
    })
    .await;
    let answer = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "slow and done");
    assert!(process.wait_exit(Duration::from_secs(20)).success());
}
