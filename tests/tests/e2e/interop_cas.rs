//! Interop with a CAS server nobody here wrote: django-cas-server (PyPI), run on loopback. A
//! browser signs in on its real login form and lands in the echo app through Guichet with the
//! server's attributes; the server's single logout then ends the session.

use std::time::Duration;

use guichet_tests::cas::{hidden_fields, DjangoCas};
use guichet_tests::{GatewayOptions, TestGateway};

#[tokio::test]
async fn a_login_through_django_cas_server_reaches_the_app_and_its_logout_ends_the_session() {
    let gateway_port = guichet_tests::free_port();
    // Logout requests from the server come to the gateway's loopback address (the test host
    // name only resolves in the test's client), which the app accepts as an alias.
    let cas = DjangoCas::start(&format!(
        "http://127.0.0.1:{gateway_port}/.guichet/callback/django-cas"
    ));
    let gw = TestGateway::start(GatewayOptions {
        port: gateway_port,
        extra_providers: vec![format!(
            "  - kind: cas\n    id: django-cas\n    display_name: \"django-cas-server\"\n    server_url: \"{}\"\n    protocol: \"3.0\"\n",
            cas.url()
        )],
        extra_apps: vec![r#"
  - id: bib
    url: {origin}/bib
    aliases: ["127.0.0.1"]
    upstream: http://{echo}
    providers: [django-cas]
    identity_headers:
      separator: ","
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: X-Remote-Mail, value: "attribute:email" }
        - { name: X-Remote-Alias, value: "attribute:alias" }
        - { name: X-Remote-Name, value: "attribute:displayName", encoding: utf8 }
"#
        .to_owned()],
        ..Default::default()
    });
    let mut browser = gw.browser();
    let first = browser
        .send(browser.get(&gw.url("/bib/notices?id=42")))
        .await;
    assert_eq!(first.location(), Some("/.guichet/login"));
    let start = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    let login_url = start.location().unwrap().to_owned();
    assert!(
        login_url.starts_with(&format!("{}/login?service=", cas.url())),
        "{login_url}"
    );

    // The server's own login form.
    let form = browser.send(browser.get(&login_url)).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let mut fields = hidden_fields(&form.body);
    assert!(fields.iter().any(|(name, _)| name == "lt"), "{}", form.body);
    fields.push(("username".into(), "test".into()));
    fields.push(("password".into(), "test".into()));
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let posted = browser.send(browser.post_form(&login_url, &fields)).await;
    assert_eq!(posted.status, 302, "{}", posted.body);
    let back = posted.location().unwrap().to_owned();
    assert!(
        back.starts_with(&gw.url("/.guichet/callback/django-cas?ticket=ST-")),
        "{back}"
    );

    // Back through Guichet, which validates the ticket with the server.
    let done = browser.send(browser.get(&back)).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location(), Some("/bib/notices?id=42"));
    let page = browser
        .send(browser.get_json(&gw.url("/bib/notices?id=42")))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.upstream_header("x-remote-user"), vec!["test"]);
    assert_eq!(
        page.upstream_header("x-remote-mail"),
        vec!["jeanne.dupont@example.org"]
    );
    assert_eq!(
        page.upstream_header("x-remote-alias"),
        vec!["jdupont,jeanne.d"]
    );
    assert_eq!(
        page.upstream_header("x-remote-name"),
        vec!["Jeanne Dupont-Lefèvre"]
    );

    // Logging out at the server sends its logout request to Guichet.
    let logout = browser
        .send(browser.get(&format!("{}/logout", cas.url())))
        .await;
    assert!(logout.status < 400, "{}", logout.status);
    let mut status = 0;
    for _ in 0..100 {
        status = browser
            .send(browser.get_json(&gw.url("/bib/notices?id=42")))
            .await
            .status;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 401, "the server's single logout ended the session");
}
