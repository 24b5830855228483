//! Interop with an OpenID provider nobody here wrote: panva/node-oidc-provider (OpenID
//! Certified), started on loopback. A full login through Guichet into the echo app, the user
//! typing into the provider's own login and consent pages.

use guichet_tests::oidc::NodeOidcProvider;
use guichet_tests::{free_port, GatewayOptions, TestGateway};

/// The `action` of the first form of an HTML page, and its hidden fields.
fn form(html: &str) -> (String, Vec<(String, String)>) {
    let action = attribute(html.split("<form").nth(1).expect("a form"), "action");
    let hidden = html
        .split("<input")
        .skip(1)
        .filter(|input| input.contains("type=\"hidden\""))
        .map(|input| (attribute(input, "name"), attribute(input, "value")))
        .collect();
    (action.replace("&amp;", "&"), hidden)
}

fn attribute(tag: &str, name: &str) -> String {
    let marker = format!("{name}=\"");
    let start = tag.find(&marker).map(|i| i + marker.len()).unwrap_or(0);
    let end = tag[start..].find('"').map(|i| i + start).unwrap_or(start);
    tag[start..end].to_owned()
}

#[tokio::test]
async fn a_login_through_node_oidc_provider_reaches_the_app() {
    let port = free_port();
    let origin = format!("http://app.test:{port}");
    let op = NodeOidcProvider::start(
        &format!("{origin}/.guichet/callback/node"),
        &format!("{origin}/.guichet/logout/done"),
    );
    let provider = format!(
        "  - kind: oidc\n    id: node\n    issuer: \"{}\"\n    client_id: {}\n    client_secret: \"{}\"\n    scopes: [profile, email]\n    userinfo: fetch\n    timeout: 5s\n",
        op.issuer,
        NodeOidcProvider::CLIENT_ID,
        NodeOidcProvider::CLIENT_SECRET
    );
    let gw = TestGateway::start(GatewayOptions {
        port,
        extra_providers: vec![provider],
        extra_apps: vec![guichet_tests::oidc::app_yaml("rp", "/rp", &["node"])],
        ..GatewayOptions::default()
    });
    let mut browser = gw.browser();
    let first = browser
        .send(browser.get(&gw.url("/rp/hello?lang=fr")))
        .await;
    assert_eq!(first.status, 302);
    let start = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    assert_eq!(start.status, 302, "{}", start.body);
    let authorize = start.location().unwrap().to_owned();
    assert!(
        authorize.starts_with(&format!("{}/auth?", op.issuer)),
        "{authorize}"
    );

    // At the provider: its own cookies, its own pages.
    let at_op = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let absolute = |location: &str| {
        if location.starts_with('/') {
            format!("{}{location}", op.issuer)
        } else {
            location.to_owned()
        }
    };
    let mut next = authorize;
    let mut callback = None;
    for _ in 0..12 {
        if next.starts_with(&origin) {
            callback = Some(next.clone());
            break;
        }
        let response = at_op.get(&next).send().await.unwrap();
        if response.status().is_redirection() {
            next = absolute(response.headers()["location"].to_str().unwrap());
            continue;
        }
        let html = response.text().await.unwrap();
        let (action, mut fields) = form(&html);
        if html.contains("name=\"login\"") {
            fields.push(("login".into(), "jeanne.dupont".into()));
            fields.push(("password".into(), "any".into()));
        }
        let response = at_op
            .post(absolute(&action))
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_redirection(), "{}", response.status());
        next = absolute(response.headers()["location"].to_str().unwrap());
    }
    let callback = callback.expect("the provider sent the browser back to Guichet");
    assert!(
        callback.contains("iss="),
        "RFC 9207 iss is sent (and checked): {callback}"
    );

    let done = browser.send(browser.get(&callback)).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location(), Some("/rp/hello?lang=fr"));
    let page = browser
        .send(browser.get_json(&gw.url("/rp/hello?lang=fr")))
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.upstream_header("x-remote-user"), vec!["jeanne.dupont"]);
    assert_eq!(
        page.upstream_header_bytes("x-remote-given-name"),
        Some("Grégory".as_bytes().to_vec())
    );
    assert_eq!(
        page.upstream_header("x-remote-email"),
        vec!["jeanne.dupont@example.org"]
    );

    // Logout continues to the provider's end-session endpoint with the id_token.
    let out = browser.send(browser.get(&gw.url("/.guichet/logout"))).await;
    assert_eq!(out.status, 302);
    assert!(out
        .location()
        .unwrap()
        .starts_with(&format!("{}/session/end?", op.issuer)));
    assert!(out.location().unwrap().contains("id_token_hint="));
}
