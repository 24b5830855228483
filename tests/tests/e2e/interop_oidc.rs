//! Interop with an OpenID provider nobody here wrote: panva/node-oidc-provider (OpenID
//! Certified), started on loopback. A full login through Guichet into the echo app, the user
//! typing into the provider's own login and consent pages; then the same with the provider
//! encrypting id_tokens and userinfo (its own JOSE library, not Guichet's) to the keys Guichet
//! publishes.

use std::path::Path;

use guichet_tests::keys::KeyFiles;
use guichet_tests::oidc::NodeOidcProvider;
use guichet_tests::{free_port, logs, Browser, GatewayOptions, Page, TestGateway};
use serde_json::Value;

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

/// The `kind: oidc` provider `node`, with `extra` settings (indented YAML lines).
fn provider_yaml(issuer: &str, extra: &str) -> String {
    format!(
        "  - kind: oidc\n    id: node\n    issuer: \"{issuer}\"\n    client_id: {}\n    client_secret: \"{}\"\n    scopes: [profile, email]\n    userinfo: fetch\n    timeout: 5s\n{extra}",
        NodeOidcProvider::CLIENT_ID,
        NodeOidcProvider::CLIENT_SECRET
    )
}

/// The gateway on `port`, with the provider and an app `rp` it protects.
fn gateway(port: u16, provider: String) -> TestGateway {
    TestGateway::start(GatewayOptions {
        port,
        extra_providers: vec![provider],
        extra_apps: vec![guichet_tests::oidc::app_yaml("rp", "/rp", &["node"])],
        ..GatewayOptions::default()
    })
}

/// The redirect URI and post-logout redirect URI of the gateway on `port`.
fn client_uris(port: u16) -> (String, String) {
    let origin = format!("http://app.test:{port}");
    (
        format!("{origin}/.guichet/callback/node"),
        format!("{origin}/.guichet/logout/done"),
    )
}

/// From the app to the provider and back: the browser asks for the app, Guichet sends it to
/// the provider, where the user signs in (any password) and consents on the provider's own
/// pages. The URL the provider sends the browser back to, not followed yet.
async fn through_the_provider(browser: &mut Browser, gw: &TestGateway, issuer: &str) -> String {
    let origin = format!("http://app.test:{}", gw.port);
    let first = browser
        .send(browser.get(&gw.url("/rp/hello?lang=fr")))
        .await;
    assert_eq!(first.status, 302);
    let start = browser.send(browser.get(&gw.url("/.guichet/login"))).await;
    assert_eq!(start.status, 302, "{}", start.body);
    let authorize = start.location().unwrap().to_owned();
    assert!(
        authorize.starts_with(&format!("{issuer}/auth?")),
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
            format!("{issuer}{location}")
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
    callback
}

/// The callback accepted: back to the page first asked for, which the app serves to Jeanne
/// with the claims of the id_token and of userinfo.
async fn signed_in(browser: &mut Browser, gw: &TestGateway, done: &Page) {
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
}

#[tokio::test]
async fn a_login_through_node_oidc_provider_reaches_the_app() {
    let port = free_port();
    let (redirect_uri, post_logout_redirect_uri) = client_uris(port);
    let op = NodeOidcProvider::start(&redirect_uri, &post_logout_redirect_uri);
    let gw = gateway(port, provider_yaml(&op.issuer, ""));
    let mut browser = gw.browser();
    let callback = through_the_provider(&mut browser, &gw, &op.issuer).await;

    let done = browser.send(browser.get(&callback)).await;
    signed_in(&mut browser, &gw, &done).await;

    // Logout continues to the provider's end-session endpoint with the id_token.
    let out = browser.send(browser.get(&gw.url("/.guichet/logout"))).await;
    assert_eq!(out.status, 302);
    assert!(out
        .location()
        .unwrap()
        .starts_with(&format!("{}/session/end?", op.issuer)));
    assert!(out.location().unwrap().contains("id_token_hint="));
}

/// The `encryption_keys` setting with one key (`alg` given when not empty).
fn encryption_yaml(key: &Path, kid: &str, alg: &str) -> String {
    let alg = if alg.is_empty() {
        String::new()
    } else {
        format!(", alg: {alg}")
    };
    format!(
        "    encryption_keys:\n      - {{ private_key: {{ file: \"{}\" }}, kid: {kid}{alg} }}\n",
        key.display()
    )
}

/// The public keys the gateway publishes for `node`, as JSON.
async fn published_jwks(gw: &TestGateway) -> String {
    let mut browser = gw.browser();
    let jwks = browser
        .send(browser.get(&gw.url("/.guichet/jwks/node")))
        .await;
    assert_eq!(jwks.status, 200, "{}", jwks.body);
    jwks.body
}

#[tokio::test]
async fn node_oidc_provider_encrypts_id_tokens_and_userinfo_to_the_published_keys() {
    let keys = KeyFiles::new();
    let cases = [
        ("ECDH-ES", keys.ec("ec"), "enc-1", ""),
        (
            "RSA-OAEP-256",
            keys.rsa("rsa", "op-rsa-3"),
            "rsa-1",
            "RSA-OAEP-256",
        ),
    ];
    for (alg, key, kid, configured_alg) in cases {
        eprintln!("case: {alg}");
        // The gateway first (it fetches nothing from the provider before a login), whose
        // public keys the provider is then given as the client's inline `jwks`.
        let port = free_port();
        let op_port = free_port();
        let gw = gateway(
            port,
            provider_yaml(
                &NodeOidcProvider::issuer_on(op_port),
                &encryption_yaml(&key, kid, configured_alg),
            ),
        );
        let jwks = published_jwks(&gw).await;
        let parsed: Value = serde_json::from_str(&jwks).unwrap();
        let published = parsed["keys"].as_array().unwrap();
        assert_eq!(published.len(), 1, "{jwks}");
        assert_eq!(published[0]["kid"], kid, "{jwks}");
        assert_eq!(published[0]["use"], "enc", "{jwks}");
        assert_eq!(published[0]["alg"], alg, "{jwks}");
        assert!(published[0].get("d").is_none(), "no private member: {jwks}");

        let (redirect_uri, post_logout_redirect_uri) = client_uris(port);
        let op = NodeOidcProvider::start_on(
            op_port,
            &redirect_uri,
            &post_logout_redirect_uri,
            &[("ENC_ALG", alg.to_owned()), ("CLIENT_JWKS", jwks)],
        );
        let mut browser = gw.browser();
        let callback = through_the_provider(&mut browser, &gw, &op.issuer).await;
        // Guichet refuses plain id_tokens and userinfo from a provider it has keys for (see
        // the next test): signed in, both came encrypted, and were decrypted.
        let done = browser.send(browser.get(&callback)).await;
        signed_in(&mut browser, &gw, &done).await;
    }
}

#[tokio::test]
async fn a_plain_id_token_from_node_oidc_provider_is_refused_when_keys_are_configured() {
    let log = logs::Scope::begin();
    let keys = KeyFiles::new();
    let key = keys.ec("ec");
    let port = free_port();
    let op_port = free_port();
    let gw = gateway(
        port,
        provider_yaml(
            &NodeOidcProvider::issuer_on(op_port),
            &encryption_yaml(&key, "enc-1", ""),
        ),
    );
    // The provider in its usual mode: nothing encrypted.
    let (redirect_uri, post_logout_redirect_uri) = client_uris(port);
    let op = NodeOidcProvider::start_on(op_port, &redirect_uri, &post_logout_redirect_uri, &[]);
    let mut browser = gw.browser();
    let callback = through_the_provider(&mut browser, &gw, &op.issuer).await;

    let done = browser.send(browser.get(&callback)).await;
    assert_eq!(done.status, 403, "{}", done.body);
    assert!(
        done.set_cookies()
            .iter()
            .all(|c| !c.starts_with("guichet_session=")),
        "{:?}",
        done.set_cookies()
    );
    let events = log.audit_of(&done);
    assert!(
        events.iter().any(|e| e["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("the id_token is not encrypted"))),
        "{events:?}"
    );
    let page = browser
        .send(browser.get_json(&gw.url("/rp/hello?lang=fr")))
        .await;
    assert_ne!(page.status, 200, "no session: the app is not reached");
}
