use guichet_tests::{GatewayOptions, TestGateway, ALICE};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let gw = TestGateway::start(GatewayOptions::default());
    let client = reqwest::Client::new();
    let health = client.get(gw.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let mut browser = gw.browser();
    browser.login(&gw, "/", ALICE).await;
    gw.browser().login(&gw, "/", ("alice", "wrong")).await;
    browser.send(browser.get_json(&gw.url("/"))).await;

    let metrics = client
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"guichet_logins_total{outcome="success",provider="local"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"guichet_logins_total{outcome="invalid_credentials",provider="local"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"guichet_requests_total{app="main",status="200"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"guichet_requests_total{app="main",status="302"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("guichet_request_duration_seconds_bucket"),
        "{metrics}"
    );
    // The admin port serves nothing else, and the proxy port does not serve admin paths.
    let other = client.get(gw.admin_url("/")).send().await.unwrap();
    assert_eq!(other.status(), 404);
}
