//! The shipped binary in production shape: `guichet run` as a child process with Redis
//! sessions and the directory's L2 in Redis, two processes sharing one Redis, SIGTERM, Redis
//! down at start, OIDC and CAS logins, driven only over HTTP.

use std::sync::Arc;
use std::time::Duration;

use guichet_gateway::echo::EchoServer;
use guichet_tests::binary::GuichetProcess;
use guichet_tests::cas::MockCas;
use guichet_tests::oidc::{self, MockOp};
use guichet_tests::{
    user_hash, Browser, GatewayOptions, Reachable, RedisServer, Store, CROSS_REPLICA_BOUND,
};

/// dave is in the directory with role `utilisateur` on bip; his password is "alice".
const PEOPLE: &str = r#"
people:
  - id: p-dave
    attributes: { email: dave@example.org, displayName: Dave }
    structures: ["0750001A"]
    roles: { bip: [utilisateur] }
"#;

const BIP: &str = r#"
  - id: bip
    url: {origin}/bip
    upstream: http://{echo}
    providers: [staff]
    rules:
      - { path_prefix: /bip/admin, any_role: [admin] }
      - { path_prefix: /bip, any_role: [utilisateur, admin] }
    identity_headers:
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: X-Remote-Roles, value: roles }
        - { name: X-Remote-Structure, value: "attribute:structure" }
        - { name: X-Remote-Email, value: "attribute:email" }
        - { name: X-Remote-Name, value: "attribute:displayName" }
"#;

/// Production shape: Redis sessions, a directory (file backend, L2 in the same Redis) linked to
/// local logins by e-mail, role rules and five identity headers.
struct Production {
    redis: RedisServer,
    echo: Arc<EchoServer>,
    options: GatewayOptions,
    _people: tempfile::TempDir,
}

fn production() -> Production {
    let redis = RedisServer::start();
    let people = tempfile::tempdir().unwrap();
    let people_file = people.path().join("people.yaml");
    std::fs::write(&people_file, PEOPLE).unwrap();
    let staff = format!(
        "  - kind: local\n    id: staff\n    pivot: {{ attribute: email, directory_attribute: email }}\n    users:\n      - {{ username: dave, email: \"dave@example.org\", password_hash: '{}' }}\n",
        user_hash("alice")
    );
    let options = GatewayOptions {
        store: Store::Redis { url: redis.url() },
        extra_providers: vec![staff],
        extra_apps: vec![BIP.to_owned()],
        directory: Some(format!(
            "  backend: {{ kind: file, path: \"{}\" }}\n  cache: {{ l1_ttl: 1s, l2_ttl: 5m }}\n",
            people_file.display()
        )),
        ..GatewayOptions::default()
    };
    Production {
        redis,
        echo: Arc::new(guichet_gateway::echo::start_on_loopback().expect("echo app")),
        options,
        _people: people,
    }
}

impl Production {
    async fn process(&self) -> GuichetProcess {
        let mut process = GuichetProcess::start(&self.options, self.echo.address);
        process.wait_ready().await;
        process
    }
}

const DAVE: (&str, &str) = ("dave", "alice");

async fn sign_out(browser: &mut Browser, process: &GuichetProcess) -> u16 {
    browser
        .send(
            browser
                .post_form(&process.url("/.guichet/logout"), &[("return_to", "/bye")])
                .header("origin", format!("http://app.test:{}", process.port)),
        )
        .await
        .status
}

#[tokio::test]
async fn the_binary_with_redis_sessions_and_the_directory_serves_a_login() {
    let production = production();
    let process = production.process().await;
    let mut browser = process.browser();
    let done = browser.login(&process, "/bip/", DAVE).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location(), Some("/bip/"));

    let page = browser.send(browser.get_json(&process.url("/bip/"))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-remote-user"), ["dave"]);
    assert_eq!(page.upstream_header("x-remote-roles"), ["utilisateur"]);
    assert_eq!(page.upstream_header("x-remote-structure"), ["0750001A"]);
    assert_eq!(page.upstream_header("x-remote-name"), ["Dave"]);
    // The directory's role rules apply: no admin role.
    let admin = browser
        .send(browser.get_json(&process.url("/bip/admin")))
        .await;
    assert_eq!(admin.status, 403);

    // The session and the directory entry are in Redis (names are keyed hashes).
    let keys = production.redis.command(&["KEYS", "*"]);
    assert!(keys.contains("guichet:s:"), "a session in Redis: {keys}");
    assert!(
        keys.contains("guichet:d:"),
        "a directory entry in Redis: {keys}"
    );

    assert_eq!(sign_out(&mut browser, &process).await, 302);
    let after = browser.send(browser.get_json(&process.url("/bip/"))).await;
    assert_eq!(after.status, 401, "signed out");
}

#[tokio::test]
async fn two_processes_share_sessions_through_redis() {
    let production = production();
    let first = production.process().await;
    let second = production.process().await;

    let mut on_first = first.browser();
    assert_eq!(on_first.login(&first, "/bip/", DAVE).await.status, 302);
    // The same browser (same cookies) reaching the other replica.
    let mut on_second = second.browser();
    on_second.cookies = on_first.cookies.clone();
    let page = on_second
        .send(on_second.get_json(&second.url("/bip/")))
        .await;
    assert_eq!(page.status, 200, "the session works on the other process");
    assert_eq!(page.upstream_header("x-remote-user"), ["dave"]);

    // Signed out on the second: gone on the first within a second (at once when the
    // announcement arrives; the local copy's lifetime bounds it otherwise).
    assert_eq!(sign_out(&mut on_second, &second).await, 302);
    let (page, took) = on_first
        .until_signed_out(&first.url("/bip/"), Duration::from_secs(3))
        .await;
    assert_eq!(
        page.status, 401,
        "the logout on one process ends it on both"
    );
    assert!(
        took < CROSS_REPLICA_BOUND,
        "ended on the other after {took:?}"
    );
}

#[tokio::test]
async fn sigterm_ends_the_process_cleanly() {
    let production = production();
    let mut process = production.process().await;
    let mut browser = process.browser();
    assert_eq!(browser.login(&process, "/bip/", DAVE).await.status, 302);
    let status = process.terminate(Duration::from_secs(20));
    assert!(
        status.success(),
        "exit status 0 after SIGTERM, got {status}:\n{}",
        process.output()
    );
    assert!(
        !process.output().contains("panicked"),
        "{}",
        process.output()
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", process.port)).is_err());
}

#[tokio::test]
async fn redis_down_at_start_then_back() {
    let mut production = production();
    production.redis.stop();
    let mut process = GuichetProcess::start(&production.options, production.echo.address);
    // Up, listening, but not ready, and the log says why.
    process
        .wait_for_readiness(503, Duration::from_secs(30))
        .await;
    process
        .wait_for_output("session store unreachable", Duration::from_secs(10))
        .await;
    assert!(
        !process.output().contains("panicked"),
        "{}",
        process.output()
    );
    let mut browser = process.browser();
    let page = browser.send(browser.get(&process.url("/bip/"))).await;
    assert_eq!(page.status, 503, "{}", page.body);

    // Redis comes back: ready again without a restart, and logins work.
    production.redis.restart();
    process.wait_ready().await;
    let mut browser = process.browser();
    assert_eq!(browser.login(&process, "/bip/", DAVE).await.status, 302);
}

#[tokio::test]
async fn an_oidc_login_through_the_binary_gets_scope_claims_from_userinfo_by_default() {
    // The mock provider returns e-mail and names only at userinfo (OpenID Connect Core 5.4),
    // never in the id_token; the provider entry leaves `userinfo` at its default.
    let op = MockOp::start().await;
    let redis = RedisServer::start();
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let options = GatewayOptions {
        store: Store::Redis { url: redis.url() },
        extra_providers: vec![oidc::provider_yaml("oidc", "op", &op.issuer, "")],
        extra_apps: vec![oidc::app_yaml("rp", "/rp", &["op"])],
        ..GatewayOptions::default()
    };
    assert!(!options.extra_providers[0].contains("userinfo"));
    let mut process = GuichetProcess::start(&options, echo.address);
    process.wait_ready().await;
    let mut browser = process.browser();
    let trip = oidc::login(&mut browser, &process, "/rp/", None).await;
    assert_eq!(trip.page.status, 302, "{}", trip.page.body);
    assert_eq!(trip.page.location(), Some("/rp/"));
    let page = browser.send(browser.get_json(&process.url("/rp/"))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-remote-user"), ["op-user-1"]);
    assert_eq!(
        page.upstream_header("x-remote-email"),
        ["gregory.francoise@example.org"],
        "the e-mail, only at userinfo, reaches the app"
    );
    assert_eq!(page.upstream_header("x-remote-given-name"), ["Grégory"]);
    assert_eq!(op.state().userinfo_fetches, 1);
}

#[tokio::test]
async fn a_cas_login_through_the_binary() {
    let cas = MockCas::start().await;
    let redis = RedisServer::start();
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let options = GatewayOptions {
        store: Store::Redis { url: redis.url() },
        extra_providers: vec![format!(
            "  - kind: cas\n    id: ent\n    server_url: \"{}\"\n    protocol: \"3.0\"\n",
            cas.url()
        )],
        extra_apps: vec![r#"
  - id: bib
    url: {origin}/bib
    upstream: http://{echo}
    providers: [ent]
    identity_headers:
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: X-Remote-Mail, value: "attribute:mail" }
"#
        .to_owned()],
        ..GatewayOptions::default()
    };
    let mut process = GuichetProcess::start(&options, echo.address);
    process.wait_ready().await;
    let mut browser = process.browser();
    let first = browser.send(browser.get(&process.url("/bib/"))).await;
    assert_eq!(first.location(), Some("/.guichet/login"));
    let start = browser
        .send(browser.get(&process.url("/.guichet/login")))
        .await;
    let at_cas = url::Url::parse(start.location().expect("to the CAS server")).unwrap();
    let service = guichet_tests::query_value(&at_cas, "service").expect("service");
    let ticket = cas.issue(
        &service,
        "jdupont",
        "<cas:mail>jeanne.dupont@example.org</cas:mail>",
    );
    let mut callback = url::Url::parse(&service).unwrap();
    callback.query_pairs_mut().append_pair("ticket", &ticket);
    let back = browser.send(browser.get(callback.as_str())).await;
    assert_eq!(back.status, 302, "{}", back.body);
    let page = browser.send(browser.get_json(&process.url("/bib/"))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-remote-user"), ["jdupont"]);
    assert_eq!(
        page.upstream_header("x-remote-mail"),
        ["jeanne.dupont@example.org"]
    );
}

/// The SAML provider in production shape through the binary: two processes sharing Redis, a
/// login on one, the IdP's single logout delivered to the other, the session gone on both.
#[tokio::test]
async fn a_saml_login_and_the_idps_single_logout_through_two_processes() {
    use guichet_tests::saml_idp::{status, LogoutRequestSpec, ResponseSpec, SamlIdp, TestKey};

    let idp = SamlIdp::start().await;
    let keys = crate::saml::sp_keys();
    let redis = RedisServer::start();
    let echo = guichet_gateway::echo::start_on_loopback().expect("echo app");
    let options = crate::saml::options(&idp, &keys, "", Store::Redis { url: redis.url() });
    let mut first = GuichetProcess::start(&options, echo.address);
    let mut second = GuichetProcess::start(&options, echo.address);
    first.wait_ready().await;
    second.wait_ready().await;

    let mut browser = first.browser();
    let request = crate::saml::start_login(&first, &mut browser, &idp).await;
    let spec = ResponseSpec::answering(&request);
    let session_index = spec.session_index.clone().unwrap();
    let done = crate::saml::post_response(&mut browser, &request, &idp.response(&spec)).await;
    crate::saml::assert_signed_in(&done);
    let page = browser
        .send(browser.get_json(&first.url("/bib/catalogue?q=1")))
        .await;
    assert_eq!(page.status, 200, "{}\n{}", page.body, first.output());
    assert_eq!(
        page.upstream_header("x-remote-user"),
        ["alice@corp.example"]
    );

    let logout = idp.logout_request_redirect(&LogoutRequestSpec::new(
        &second.url("/.guichet/saml-slo/idp"),
        "alice@corp.example",
        Some(&session_index),
    ));
    let mut at_idp = second.browser();
    let answer = at_idp.send(at_idp.get(&logout.url)).await;
    assert_eq!(answer.status, 302, "{}\n{}", answer.body, second.output());
    let response = SamlIdp::read_logout_response_from_url(answer.location().unwrap());
    assert_eq!(response.status.as_deref(), Some(status::SUCCESS));
    assert!(SamlIdp::verify_redirect_signature(
        answer.location().unwrap(),
        &TestKey::sp().cert_pem()
    ));
    let (page, took) = browser
        .until_signed_out(&first.url("/bib/"), Duration::from_secs(3))
        .await;
    assert_eq!(page.status, 401, "ended on the other process too");
    assert!(
        took < CROSS_REPLICA_BOUND,
        "ended on the other after {took:?}"
    );
    assert!(first.terminate(Duration::from_secs(20)).success());
    assert!(second.terminate(Duration::from_secs(20)).success());
}

/// `guichet saml metadata` prints what the IdP's administrator needs, the same document the
/// gateway serves; `guichet check` reads the IdP's metadata and names the field when it
/// cannot.
#[tokio::test]
async fn the_saml_commands_print_the_sp_metadata_and_check_the_idp_metadata() {
    use guichet_tests::saml_idp::{SamlIdp, TestKey};

    let idp = SamlIdp::start().await;
    let keys = crate::saml::sp_keys();
    let options = crate::saml::options(&idp, &keys, "", Store::Memory);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("guichet.yaml");
    std::fs::write(
        &config,
        guichet_tests::config_yaml(&options, 8080, 9180, "127.0.0.1:8081".parse().unwrap()),
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(guichet_tests::guichet_binary())
            .args(args)
            .output()
            .unwrap()
    };
    let config_arg = config.display().to_string();
    let printed = run(&[
        "saml",
        "metadata",
        "--config",
        &config_arg,
        "--provider",
        "idp",
    ]);
    assert!(printed.status.success(), "{:?}", printed);
    let xml = String::from_utf8(printed.stdout).unwrap();
    assert!(
        xml.contains("entityID=\"https://guichet.test/saml\""),
        "{xml}"
    );
    assert!(xml.contains("/.guichet/callback/idp"), "{xml}");
    assert!(xml.contains("/.guichet/saml-slo/idp"), "{xml}");
    let cert: String = TestKey::sp()
        .cert_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(xml.replace(['\n', ' '], "").contains(&cert));

    let unknown = run(&[
        "saml",
        "metadata",
        "--config",
        &config_arg,
        "--provider",
        "nope",
    ]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--provider"), "{stderr}");

    let valid = run(&["check", "--config", &config_arg]);
    assert!(valid.status.success(), "{:?}", valid);

    // The IdP's metadata unreachable: one line naming the setting, non-zero exit.
    let unreachable = run(&[
        "check",
        "--config",
        &config_arg,
        "--set",
        "providers[2].idp_metadata.url=http://127.0.0.1:9/metadata",
    ]);
    assert!(!unreachable.status.success());
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("idp_metadata"), "{stderr}");
}
