//! The CAS provider against a mock CAS server: CAS 2.0 and 3.0 logins with structured
//! attributes, ticket handling, untrustworthy answers, single logout (back- and front-channel,
//! two replicas sharing Redis) and logout at the server.

use std::time::Duration;

use guichet_tests::cas::{self, MockCas};
use guichet_tests::{logs, Browser, GatewayOptions, Page, RedisServer, Store, TestGateway};

fn provider(cas: &MockCas, protocol: &str, extra: &str) -> String {
    format!(
        "  - kind: cas\n    id: ent\n    display_name: \"ENT\"\n    server_url: \"{}\"\n    protocol: \"{protocol}\"\n    timeout: 1s\n{extra}",
        cas.url()
    )
}

const APP: &str = r#"
  - id: bib
    url: {origin}/bib
    upstream: http://{echo}
    providers: [ent]
    identity_headers:
      separator: ","
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: X-Remote-Mail, value: "attribute:mail" }
        - { name: X-Remote-Uai, value: "attribute:structure.UAI" }
        - { name: X-Remote-Name, value: "attribute:displayName", encoding: utf8 }
        - { name: X-Remote-Evil, value: "attribute:evil" }
"#;

const ATTRIBUTES: &str = r#"
  <cas:mail>jeanne.dupont@example.org</cas:mail>
  <cas:mail>j.dupont@example.org</cas:mail>
  <cas:displayName>Jeanne Dupont-Lefèvre</cas:displayName>
  <cas:structure><cas:UAI>0750001A</cas:UAI><cas:name>Lycée A</cas:name></cas:structure>
  <cas:structure><cas:UAI>0750002B</cas:UAI><cas:name>Collège B</cas:name></cas:structure>
  <cas:evil>x&#13;&#10;X-Injected: 1</cas:evil>
"#;

fn options(cas: &MockCas, protocol: &str, extra: &str, store: Store) -> GatewayOptions {
    GatewayOptions {
        store,
        extra_providers: vec![provider(cas, protocol, extra)],
        extra_apps: vec![APP.to_owned()],
        ..Default::default()
    }
}

/// From a protected page to the CAS server: the service URL the gateway asked for.
async fn start_login(gw: &TestGateway, browser: &mut Browser, cas: &MockCas, path: &str) -> String {
    let first = browser.send(browser.get(&gw.url(path))).await;
    assert_eq!(first.status, 302, "{}", first.body);
    assert_eq!(first.location(), Some("/.guichet/login"));
    let start = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    assert_eq!(start.status, 302, "{}", start.body);
    let location = url::Url::parse(start.location().unwrap()).unwrap();
    assert!(
        location
            .as_str()
            .starts_with(&format!("{}/login?", cas.url())),
        "{location}"
    );
    let service = guichet_tests::query_value(&location, "service").unwrap();
    assert_eq!(
        service,
        gw.url("/.guichet/callback/ent"),
        "service URL from config"
    );
    service
}

/// The browser's return from the CAS server with `ticket`.
async fn come_back(browser: &mut Browser, service: &str, ticket: &str) -> Page {
    let mut callback = url::Url::parse(service).unwrap();
    callback.query_pairs_mut().append_pair("ticket", ticket);
    browser.send(browser.get(callback.as_str())).await
}

async fn signed_in(gw: &TestGateway, cas: &MockCas, user: &str) -> (Browser, String) {
    let mut browser = gw.browser();
    let service = start_login(gw, &mut browser, cas, "/bib/").await;
    let ticket = cas.issue(&service, user, ATTRIBUTES);
    let done = come_back(&mut browser, &service, &ticket).await;
    assert_eq!(done.status, 302, "{}", done.body);
    (browser, ticket)
}

#[tokio::test]
async fn a_cas3_login_brings_multi_valued_and_structured_attributes_to_the_app() {
    let cas = MockCas::start().await;
    let gw = TestGateway::start(options(&cas, "3.0", "", Store::Memory));
    let mut browser = gw.browser();
    let service = start_login(&gw, &mut browser, &cas, "/bib/catalogue?q=verne&page=2").await;
    let ticket = cas.issue(&service, "jdupont", ATTRIBUTES);
    let done = come_back(&mut browser, &service, &ticket).await;
    assert_eq!(done.status, 302, "{}", done.body);
    // Back to exactly where the user was going, without the ticket.
    assert_eq!(done.location(), Some("/bib/catalogue?q=verne&page=2"));

    let page = browser
        .send(browser.get_json(&gw.url("/bib/catalogue?q=verne&page=2")))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-remote-user"), vec!["jdupont"]);
    assert_eq!(
        page.upstream_header("x-remote-mail"),
        vec!["jeanne.dupont@example.org,j.dupont@example.org"]
    );
    assert_eq!(
        page.upstream_header("x-remote-uai"),
        vec!["0750001A,0750002B"]
    );
    assert_eq!(
        page.upstream_header("x-remote-name"),
        vec!["Jeanne Dupont-Lefèvre"]
    );
    // CR/LF in an attribute never reaches the app raw.
    let evil = page.upstream_header("x-remote-evil");
    assert_eq!(evil.len(), 1);
    assert!(
        !evil[0].contains('\r') && !evil[0].contains('\n'),
        "{evil:?}"
    );
    assert!(page.upstream_header("x-injected").is_empty());

    let validations = cas.validations().await;
    assert_eq!(validations.len(), 1);
    assert_eq!(validations[0].0, "/cas/p3/serviceValidate");
    assert!(validations[0]
        .1
        .contains(&("ticket".into(), ticket.clone())));
    assert!(validations[0]
        .1
        .contains(&("service".into(), service.clone())));
    assert!(
        !validations[0].1.iter().any(|(k, _)| k == "pgtUrl"),
        "no proxy-granting ticket is ever asked for"
    );
}

#[tokio::test]
async fn a_cas2_login_validates_at_service_validate() {
    let cas = MockCas::start().await;
    let gw = TestGateway::start(options(&cas, "2.0", "", Store::Memory));
    let mut browser = gw.browser();
    let service = start_login(&gw, &mut browser, &cas, "/bib/").await;
    let ticket = cas.issue(&service, "pmartin", ATTRIBUTES);
    assert_eq!(come_back(&mut browser, &service, &ticket).await.status, 302);
    let page = browser.send(browser.get_json(&gw.url("/bib/"))).await;
    assert_eq!(page.upstream_header("x-remote-user"), vec!["pmartin"]);
    assert_eq!(
        page.upstream_header("x-remote-mail"),
        vec!["jeanne.dupont@example.org,j.dupont@example.org"]
    );
    assert_eq!(
        page.upstream_header("x-remote-uai"),
        vec!["0750001A,0750002B"]
    );
    assert_eq!(cas.validations().await[0].0, "/cas/serviceValidate");
}

#[tokio::test]
async fn replayed_invalid_and_foreign_tickets_get_a_clear_error_page() {
    let log = logs::Scope::begin();
    let cas = MockCas::start().await;
    let gw = TestGateway::start(options(&cas, "3.0", "", Store::Memory));
    let (_, ticket) = signed_in(&gw, &cas, "jdupont").await;

    // Replay: another browser starts a login and brings the used ticket.
    let mut replay = gw.browser();
    let service = start_login(&gw, &mut replay, &cas, "/bib/").await;
    let page = come_back(&mut replay, &service, &ticket).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body.contains("sign-in ticket is not valid"),
        "{}",
        page.body
    );
    let id = page.headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(page.body.contains(&id));
    let events = log.audit_of(&page);
    assert!(
        events.iter().any(|e| e["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("INVALID_TICKET"))),
        "{events:?}"
    );
    assert!(
        !log.text().contains(&ticket),
        "the ticket the server echoed is not logged"
    );

    // A ticket issued for another service.
    let mut other = gw.browser();
    let service = start_login(&gw, &mut other, &cas, "/bib/").await;
    let foreign = cas.issue("https://elsewhere.example/", "jdupont", "");
    let page = come_back(&mut other, &service, &foreign).await;
    assert_eq!(page.status, 403);
    assert!(log.audit_of(&page).iter().any(|e| e["fields"]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("INVALID_SERVICE"))));

    // A proxy ticket is refused before any validation.
    let mut proxy = gw.browser();
    let service = start_login(&gw, &mut proxy, &cas, "/bib/").await;
    let before = cas.validations().await.len();
    assert_eq!(
        come_back(&mut proxy, &service, "PT-1-abc").await.status,
        403
    );
    assert_eq!(cas.validations().await.len(), before);
}

#[tokio::test]
async fn untrustworthy_cas_answers_are_refused() {
    let cas = MockCas::start().await;
    let gw = TestGateway::start(options(&cas, "3.0", "", Store::Memory));
    let answers = [
        r#"<!DOCTYPE x [<!ENTITY u "admin">]><cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>&u;</cas:user></cas:authenticationSuccess></cas:serviceResponse>"#.to_owned(),
        r#"<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>a</cas:user></cas:authenticationSuccess><cas:authenticationSuccess><cas:user>admin</cas:user></cas:authenticationSuccess></cas:serviceResponse>"#.to_owned(),
        r#"<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationFailure code="INVALID_TICKET">Ticket ST-1<cas:authenticationSuccess><cas:user>admin</cas:user></cas:authenticationSuccess> not recognized</cas:authenticationFailure></cas:serviceResponse>"#.to_owned(),
        "<html>maintenance</html>".to_owned(),
        format!(
            r#"<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess><cas:user>a</cas:user><cas:attributes>{}</cas:attributes></cas:authenticationSuccess></cas:serviceResponse>"#,
            "<cas:x>y</cas:x>".repeat(50_000)
        ),
    ];
    for (i, answer) in answers.iter().enumerate() {
        cas.state().raw_answer = Some(answer.clone());
        let mut browser = gw.browser();
        let service = start_login(&gw, &mut browser, &cas, "/bib/").await;
        let page = come_back(&mut browser, &service, "ST-1-x").await;
        // The oversized answer is cut off by the bounded reader: an unusable provider (502).
        let expected = if i == answers.len() - 1 { 502 } else { 403 };
        assert_eq!(page.status, expected, "{}", &answer[..60.min(answer.len())]);
        assert!(browser.cookie("guichet_session").is_none(), "no session");
    }
}

/// A plain DOCTYPE before an otherwise valid success answer for a real ticket: refused for the
/// DOCTYPE (the same answer without it signs in).
#[tokio::test]
async fn a_plain_doctype_in_a_valid_success_answer_is_refused() {
    let log = logs::Scope::begin();
    let cas = MockCas::start().await;
    let gw = TestGateway::start(options(&cas, "3.0", "", Store::Memory));
    cas.state().doctype = Some("<!DOCTYPE x>".into());
    let mut browser = gw.browser();
    let service = start_login(&gw, &mut browser, &cas, "/bib/").await;
    let ticket = cas.issue(&service, "jdupont", "");
    let page = come_back(&mut browser, &service, &ticket).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("could not be verified"), "{}", page.body);
    assert!(browser.cookie("guichet_session").is_none(), "no session");
    let events = log.audit_of(&page);
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["event"] == "login_failure"
                && e["fields"]["reason"]
                    == "provider rejected the login: untrustworthy CAS answer: DOCTYPE refused"),
        "{events:?}"
    );

    cas.state().doctype = None;
    let mut browser = gw.browser();
    let service = start_login(&gw, &mut browser, &cas, "/bib/").await;
    let ticket = cas.issue(&service, "jdupont", "");
    let page = come_back(&mut browser, &service, &ticket).await;
    assert_eq!(page.status, 302, "without the DOCTYPE: {}", page.body);
}

#[tokio::test]
async fn tickets_with_ampersands_and_percent_signs_are_encoded_correctly() {
    let cas = MockCas::start().await;
    let gw = TestGateway::start(options(&cas, "3.0", "", Store::Memory));
    let mut browser = gw.browser();
    let service = start_login(&gw, &mut browser, &cas, "/bib/").await;
    let ticket = "ST-7&service=https://evil.example/%26x";
    cas.issue_named(ticket, &service, "jdupont");
    let done = come_back(&mut browser, &service, ticket).await;
    assert_eq!(done.status, 302, "{}", done.body);
    let validation = &cas.validations().await[0].1;
    assert!(
        validation.contains(&("ticket".into(), ticket.into())),
        "{validation:?}"
    );
    assert_eq!(
        validation.iter().filter(|(k, _)| k == "service").count(),
        1,
        "the ticket cannot add a parameter"
    );
}

#[tokio::test]
async fn a_cas_server_down_or_slow_gets_an_error_page_and_a_metric() {
    let cas = MockCas::start().await;
    let gw = TestGateway::start(options(&cas, "3.0", "", Store::Memory));
    for (status, delay) in [(Some(500), None), (None, Some(Duration::from_secs(3)))] {
        {
            let mut state = cas.state();
            state.status = status;
            state.delay = delay;
        }
        let mut browser = gw.browser();
        let service = start_login(&gw, &mut browser, &cas, "/bib/").await;
        let ticket = cas.issue(&service, "jdupont", "");
        let started = std::time::Instant::now();
        let page = come_back(&mut browser, &service, &ticket).await;
        assert_eq!(page.status, 502, "{}", page.body);
        assert!(
            started.elapsed() < Duration::from_millis(2900),
            "bounded by the 1s timeout"
        );
    }
    let metrics = reqwest::get(gw.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"guichet_logins_total{outcome="unavailable",provider="ent"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn back_channel_single_logout_ends_the_session_on_both_replicas() {
    let redis = RedisServer::start();
    let cas = MockCas::start().await;
    let gw1 = TestGateway::start(options(&cas, "3.0", "", Store::Redis { url: redis.url() }));
    let gw2 = TestGateway::start_with_echo(
        options(&cas, "3.0", "", Store::Redis { url: redis.url() }),
        gw1.echo.clone(),
    );
    let (mut on_gw1, ticket) = signed_in(&gw1, &cas, "jdupont").await;
    let mut on_gw2 = gw2.browser();
    on_gw2.cookies = on_gw1.cookies.clone();
    assert_eq!(bib_status(&mut on_gw1, &gw1).await, 200);
    assert_eq!(bib_status(&mut on_gw2, &gw2).await, 200);

    // Unknown tickets and malformed requests: 200, and nothing changes.
    for body in [
        cas::logout_request("ST-999-unknown"),
        format!("<!DOCTYPE x>{}", cas::logout_request(&ticket)),
        "<samlp:LogoutRequest".to_owned(),
    ] {
        let answer = post_to(&gw2, body).await;
        assert_eq!(answer, 200);
        assert_eq!(bib_status(&mut on_gw1, &gw1).await, 200);
    }

    // The real one, sent to the other replica: the session ends everywhere.
    assert_eq!(post_to(&gw2, cas::logout_request(&ticket)).await, 200);
    assert_eq!(bib_status(&mut on_gw2, &gw2).await, 401);
    // The other replica drops its local copy when the announcement arrives.
    let (page, took) = on_gw1
        .until_signed_out(&gw1.url("/bib/"), std::time::Duration::from_secs(3))
        .await;
    assert_eq!(page.status, 401);
    assert!(took < guichet_tests::CROSS_REPLICA_BOUND, "{took:?}");
    // Replayed: still 200.
    assert_eq!(post_to(&gw1, cas::logout_request(&ticket)).await, 200);
}

/// POSTs a back-channel logout request to the gateway's CAS callback; the status.
async fn post_to(gw: &TestGateway, body: String) -> u16 {
    gw.browser()
        .raw()
        .post(gw.url("/.guichet/callback/ent"))
        .form(&[("logoutRequest", body)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn front_channel_single_logout_ends_the_session() {
    let cas = MockCas::start().await;
    let gw = TestGateway::start(options(&cas, "3.0", "", Store::Memory));
    let (mut browser, ticket) = signed_in(&gw, &cas, "jdupont").await;
    assert_eq!(bib_status(&mut browser, &gw).await, 200);
    let page = browser
        .send(browser.get(&front_channel_url(&gw, &ticket)))
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(bib_status(&mut browser, &gw).await, 401);
}

#[tokio::test]
async fn back_channel_requests_from_outside_the_allowed_sources_change_nothing() {
    let cas = MockCas::start().await;
    let gw = TestGateway::start(options(
        &cas,
        "3.0",
        "    single_logout: { allowed_sources: [10.0.0.0/8] }\n",
        Store::Memory,
    ));
    let (mut browser, ticket) = signed_in(&gw, &cas, "jdupont").await;
    assert_eq!(post_to(&gw, cas::logout_request(&ticket)).await, 403);
    // Nor through the front channel, which anyone can use.
    let page = browser
        .send(browser.get(&front_channel_url(&gw, &ticket)))
        .await;
    assert_eq!(page.status, 403);

    assert_eq!(bib_status(&mut browser, &gw).await, 200);
}

#[tokio::test]
async fn logout_requests_are_rate_limited_per_address() {
    let cas = MockCas::start().await;
    let gw = TestGateway::start(options(
        &cas,
        "3.0",
        "    single_logout: { max_per_minute: 2 }\n",
        Store::Memory,
    ));
    let (mut browser, ticket) = signed_in(&gw, &cas, "jdupont").await;
    for _ in 0..2 {
        assert_eq!(post_to(&gw, cas::logout_request("ST-0-unknown")).await, 200);
    }
    assert_eq!(post_to(&gw, cas::logout_request(&ticket)).await, 429);
    assert_eq!(bib_status(&mut browser, &gw).await, 200, "nothing changed");
}

#[tokio::test]
async fn logout_continues_to_the_cas_server() {
    let log = logs::Scope::begin();
    let cas = MockCas::start().await;
    let gw = TestGateway::start(options(&cas, "3.0", "", Store::Memory));
    let (mut browser, _) = signed_in(&gw, &cas, "jdupont").await;
    let page = browser.send(browser.get(&gw.url("/.guichet/logout"))).await;
    assert_eq!(page.status, 302, "{}", page.body);
    let location = url::Url::parse(page.location().unwrap()).unwrap();
    assert!(
        location
            .as_str()
            .starts_with(&format!("{}/logout?service=", cas.url())),
        "{location}"
    );
    // The server sends the browser back to the service: the gateway's logout end, with its
    // single-use state.
    let service = guichet_tests::query_value(&location, "service").unwrap();
    assert!(
        service.starts_with(&gw.url("/.guichet/logout/done?state=")),
        "{service}"
    );
    let back = browser.send(browser.get(&service)).await;
    assert_eq!(back.status, 200);
    assert!(log.audit_of(&back).is_empty());
    assert_eq!(bib_status(&mut browser, &gw).await, 401);
}

/// The status of the app's page for this browser (401: no session).
async fn bib_status(browser: &mut Browser, gw: &TestGateway) -> u16 {
    browser
        .send(browser.get_json(&gw.url("/bib/")))
        .await
        .status
}

#[tokio::test]
async fn the_service_url_never_comes_from_the_request_host() {
    let cas = MockCas::start().await;
    let mut with_proxy = options(&cas, "3.0", "", Store::Memory);
    // Even a trusted load balancer's X-Forwarded-Host does not name the service.
    with_proxy.trusted_proxies = vec!["127.0.0.1/32".into()];
    let gw = TestGateway::start(with_proxy);
    let mut browser = gw.browser();
    let spoofed = |request: reqwest::RequestBuilder| {
        request
            .header("x-forwarded-host", "evil.example")
            .header("forwarded", "host=evil.example")
    };
    let first = browser.send(spoofed(browser.get(&gw.url("/bib/")))).await;
    assert_eq!(first.status, 302, "{}", first.body);
    let start = browser
        .send(spoofed(browser.get(&gw.url("/.guichet/login"))))
        .await;
    assert_eq!(start.status, 302, "{}", start.body);
    let location = url::Url::parse(start.location().unwrap()).unwrap();
    assert_eq!(
        guichet_tests::query_value(&location, "service").as_deref(),
        Some(gw.url("/.guichet/callback/ent").as_str())
    );
}

/// The ENT scenario: CAS logins linked to the library's directory by e-mail; staff get their
/// roles from the directory and from their ENT function codes; parents, unknown to the
/// directory, are admitted as visitors.
#[tokio::test]
async fn ent_logins_get_directory_roles_function_code_roles_or_guest_access() {
    let cas = MockCas::start().await;
    let dir = tempfile::tempdir().unwrap();
    let people = dir.path().join("people.yaml");
    std::fs::write(
        &people,
        "people:\n  - { id: p-1, attributes: { email: doc@example.org }, roles: { cdi: [lecteur] } }\n",
    )
    .unwrap();
    let gw = TestGateway::start(GatewayOptions {
        extra_providers: vec![provider(
            &cas,
            "3.0",
            "    pivot: { attribute: mail, directory_attribute: email }\n",
        )],
        extra_apps: vec![r#"
  - id: cdi
    url: {origin}/cdi
    upstream: http://{echo}
    providers: [ent]
    unknown_person: guest
    guest_roles: [visiteur]
    roles:
      attributes:
        - attribute: ENTPersonFonctions
          values: { DIR: direction, DOC: documentaliste }
    rules:
      - { path_prefix: /cdi/admin, any_role: [documentaliste, direction] }
      - { path_prefix: /cdi, any_role: [visiteur, lecteur, documentaliste] }
    identity_headers:
      headers:
        - { name: X-Remote-Roles, value: roles }
"#
        .to_owned()],
        directory: Some(format!(
            "  backend: {{ kind: file, path: \"{}\" }}\n",
            people.display()
        )),
        ..Default::default()
    });
    let login = |user: &'static str, attributes: &'static str| {
        let gw = &gw;
        let cas = &cas;
        async move {
            let mut browser = gw.browser();
            let first = browser.send(browser.get(&gw.url("/cdi/"))).await;
            assert_eq!(first.status, 302);
            let start = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
            let location = url::Url::parse(start.location().unwrap()).unwrap();
            let service = guichet_tests::query_value(&location, "service").unwrap();
            let ticket = cas.issue(&service, user, attributes);
            assert_eq!(come_back(&mut browser, &service, &ticket).await.status, 302);
            browser
        }
    };
    // The documentalist: directory role lecteur, ENT function DOC -> documentaliste.
    let mut staff = login(
        "doc",
        "<cas:mail>DOC@example.org</cas:mail><cas:ENTPersonFonctions>DOC</cas:ENTPersonFonctions>",
    )
    .await;
    let page = staff.send(staff.get_json(&gw.url("/cdi/admin/"))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.upstream_header("x-remote-roles"),
        vec!["documentaliste,lecteur"]
    );
    // A parent: known to the ENT, not to the library's directory.
    let mut parent = login("parent", "<cas:mail>parent@example.org</cas:mail>").await;
    let page = parent
        .send(parent.get_json(&gw.url("/cdi/catalogue")))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-remote-roles"), vec!["visiteur"]);
    assert_eq!(
        parent
            .send(parent.get_json(&gw.url("/cdi/admin/")))
            .await
            .status,
        403
    );
}

/// The callback URL carrying a front-channel logout request for `ticket`.
fn front_channel_url(gw: &TestGateway, ticket: &str) -> String {
    let mut url = url::Url::parse(&gw.url("/.guichet/callback/ent")).unwrap();
    url.query_pairs_mut().append_pair(
        "logoutRequest",
        &cas::front_channel(&cas::logout_request(ticket)),
    );
    url.to_string()
}
