//! FranceConnect+ through Guichet's `franceconnect_plus` preset, against the strict mock in its
//! FranceConnect+ mode: eidas2/eidas3, ES256, id_tokens and userinfo encrypted (with josekit,
//! not Guichet's code) to the keys Guichet publishes at `/.guichet/jwks/{provider}`.

use std::path::PathBuf;

use guichet_tests::franceconnect::Sealing;
use guichet_tests::franceconnect::{assert_refused as refused, assert_signed_in as signed_in};
use guichet_tests::keys::KeyFiles;
use guichet_tests::oidc::{self, MockOp, CLIENT_ID};
use guichet_tests::{logs, Browser, GatewayOptions, TestGateway};
use serde_json::Value;

const PROVIDER: &str = "fcplus";

/// `encryption_keys` entries: (file, kid, extra settings such as `alg: RSA-OAEP`).
fn keys_yaml(keys: &[(&PathBuf, &str, &str)]) -> String {
    let mut yaml = String::from("encryption_keys:\n");
    for (file, kid, extra) in keys {
        yaml.push_str(&format!(
            "  - {{ private_key: {{ file: \"{}\" }}, kid: {kid}{}{extra} }}\n",
            file.display(),
            if extra.is_empty() { "" } else { ", " }
        ));
    }
    yaml
}

/// The gateway with a FranceConnect+ provider, its callback and signed-out URIs registered at
/// the platform (not its JWKS).
fn unregistered_gateway(op: &MockOp, extra: &str) -> TestGateway {
    let gw = TestGateway::start(GatewayOptions {
        extra_providers: vec![oidc::provider_yaml(
            "franceconnect_plus",
            PROVIDER,
            &op.issuer,
            &format!("scopes: [identite_pivot]\n{extra}"),
        )],
        extra_apps: vec![oidc::app_yaml("citizens", "/demarches", &[PROVIDER])],
        ..GatewayOptions::default()
    });
    op.register_gateway(&format!("http://app.test:{}", gw.port), PROVIDER);
    gw
}

/// The gateway with a FranceConnect+ provider, registered at the platform: callback and
/// signed-out URIs, and its JWKS URL, which the platform fetches.
async fn gateway(op: &MockOp, extra: &str) -> TestGateway {
    let gw = unregistered_gateway(op, extra);
    op.register_gateway_jwks(&gw.url(&format!("/.guichet/jwks/{PROVIDER}")))
        .await;
    gw
}

async fn login(gw: &TestGateway) -> (Browser, oidc::Trip) {
    let mut browser = gw.browser();
    let trip = oidc::login(&mut browser, gw, "/demarches/", None).await;
    (browser, trip)
}

/// The kids of the JWKS the platform holds for the gateway, in order.
fn registered_kids(op: &MockOp) -> Vec<Value> {
    op.fc(|fc| {
        fc.clients[CLIENT_ID].jwks.as_ref().unwrap()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].clone())
            .collect()
    })
}

fn sealed_headers(op: &MockOp) -> Vec<Value> {
    op.fc(|fc| fc.sealed_headers.clone())
}

#[tokio::test]
async fn a_login_decrypts_the_id_token_and_the_userinfo() {
    let keys = KeyFiles::new();
    let key = keys.ec("current");
    let op = MockOp::franceconnect_plus().await;
    let gw = gateway(&op, &keys_yaml(&[(&key, "enc-2026", "")])).await;

    // The published JWKS: the public half only, for encryption, with its algorithm.
    let mut browser = gw.browser();
    let jwks = browser
        .send(browser.get(&gw.url("/.guichet/jwks/fcplus")))
        .await;
    let jwks: Value = serde_json::from_str(&jwks.body).unwrap();
    let published = jwks["keys"].as_array().unwrap();
    assert_eq!(published.len(), 1, "{jwks}");
    assert_eq!(published[0]["kid"], "enc-2026");
    assert_eq!(published[0]["use"], "enc");
    assert_eq!(published[0]["alg"], "ECDH-ES");
    assert_eq!(published[0]["crv"], "P-256");
    assert!(published[0].get("d").is_none(), "no private member");

    let (mut browser, trip) = login(&gw).await;
    signed_in(&op, &trip);
    // eIDAS substantial by default, and the platform encrypted both answers to our key.
    let authorize: Vec<(String, String)> = op.state().authorize_requests[0]
        .query_pairs()
        .into_owned()
        .collect();
    assert!(authorize.contains(&("acr_values".into(), "eidas2".into())));
    let headers = sealed_headers(&op);
    assert_eq!(headers.len(), 2, "id_token and userinfo: {headers:?}");
    for header in &headers {
        assert_eq!(header["alg"], "ECDH-ES");
        assert_eq!(header["enc"], "A256GCM");
        assert_eq!(header["kid"], "enc-2026");
    }
    // The claims (from the decrypted, verified userinfo) reach the application.
    let page = browser.send(browser.get_json(&gw.url("/demarches/"))).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.upstream_header_bytes("x-remote-given-name"),
        Some("Grégory Gaëtan".as_bytes().to_vec())
    );
    assert_eq!(
        page.upstream_header("x-remote-user"),
        vec![op.fc_sub(CLIENT_ID)]
    );

    // Logout: the hint is the signed token inside the JWE, which the platform recognises.
    let out = browser.send(browser.get(&gw.url("/.guichet/logout"))).await;
    assert_eq!(out.status, 302);
    let end = url::Url::parse(out.location().unwrap()).unwrap();
    let hint = end
        .query_pairs()
        .find(|(k, _)| k == "id_token_hint")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(hint.split('.').count(), 3, "a JWS, not the JWE");
    assert_eq!(hint, op.state().id_tokens[0]);
    let back = browser.send(browser.get(end.as_str())).await;
    assert_eq!(
        back.status,
        302,
        "{}: {:?}",
        back.body,
        op.fc(|fc| fc.refusals.clone())
    );
}

#[tokio::test]
async fn rsa_oaep_and_rsa_oaep_256_keys_work_too() {
    for alg in ["RSA-OAEP-256", "RSA-OAEP"] {
        let keys = KeyFiles::new();
        let key = keys.rsa("rsa", "op-rsa-3");
        let op = MockOp::franceconnect_plus().await;
        op.fc(|fc| fc.client_mut(CLIENT_ID).encryption_alg = alg.into());
        let gw = gateway(
            &op,
            &keys_yaml(&[(&key, "rsa-enc", &format!("alg: {alg}"))]),
        )
        .await;
        let (_, trip) = login(&gw).await;
        signed_in(&op, &trip);
        let headers = sealed_headers(&op);
        assert_eq!(headers.len(), 2);
        assert!(headers.iter().all(|h| h["alg"] == alg), "{headers:?}");
    }
}

#[tokio::test]
async fn keys_rotate_without_a_failed_login() {
    let keys = KeyFiles::new();
    let (old, new) = (keys.ec("old"), keys.ec("new"));
    let op = MockOp::franceconnect_plus().await;

    // Before: one key, registered at the platform.
    let before = gateway(&op, &keys_yaml(&[(&old, "2026-01", "")])).await;
    let (_, trip) = login(&before).await;
    signed_in(&op, &trip);
    drop(before);

    // Step 1: the new key is added in first place, the old one kept. The platform still holds
    // the JWKS it fetched before: what it encrypts to the old key still decrypts.
    let both = keys_yaml(&[(&new, "2026-07", ""), (&old, "2026-01", "")]);
    let gw = unregistered_gateway(&op, &both);
    let (_, trip) = login(&gw).await;
    signed_in(&op, &trip);
    assert_eq!(sealed_headers(&op).last().unwrap()["kid"], "2026-01");
    // The platform fetches the JWKS again: both keys, the new one first, which it now uses.
    let jwks_url = gw.url(&format!("/.guichet/jwks/{PROVIDER}"));
    op.register_gateway_jwks(&jwks_url).await;
    let kids = registered_kids(&op);
    assert_eq!(kids, ["2026-07", "2026-01"]);
    let (_, trip) = login(&gw).await;
    signed_in(&op, &trip);
    assert_eq!(sealed_headers(&op).last().unwrap()["kid"], "2026-07");
    drop(gw);

    // Step 2: the old key retired: no longer published, still decrypting what a platform with
    // a stale copy of the JWKS encrypts to it.
    let stale = op.fc(|fc| fc.clients[CLIENT_ID].jwks.clone().unwrap());
    let retired = keys_yaml(&[(&new, "2026-07", ""), (&old, "2026-01", "retired: true")]);
    let gw = gateway(&op, &retired).await;
    let kids = registered_kids(&op);
    assert_eq!(kids, ["2026-07"], "the retired key is not published");
    let mut only_old = stale.clone();
    only_old["keys"] = Value::Array(
        stale["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["kid"] == "2026-01")
            .cloned()
            .collect(),
    );
    op.fc(|fc| fc.client_mut(CLIENT_ID).jwks = Some(only_old));
    let (_, trip) = login(&gw).await;
    signed_in(&op, &trip);
    assert_eq!(sealed_headers(&op).last().unwrap()["kid"], "2026-01");
}

#[tokio::test]
async fn tokens_sealed_wrongly_are_refused_with_no_session() {
    let log = logs::Scope::begin();
    let keys = KeyFiles::new();
    let key = keys.ec("ours");
    let foreign = {
        // A key the service does not hold, published under the service's kid.
        let secret = p256::SecretKey::random(&mut rand::thread_rng());
        let mut jwk: Value = serde_json::from_str(&secret.public_key().to_jwk_string()).unwrap();
        jwk["kid"] = "enc-2026".into();
        jwk["use"] = "enc".into();
        jwk["alg"] = "ECDH-ES".into();
        jwk
    };
    let cases: Vec<(&str, Sealing, Sealing, &str)> = vec![
        (
            "id_token to a foreign key",
            Sealing::ForeignKey(foreign.clone()),
            Sealing::Registered,
            "encrypted id_token: cannot decrypt",
        ),
        (
            "id_token in A128GCM",
            Sealing::Enc("A128GCM".into()),
            Sealing::Registered,
            "content encryption \"A128GCM\" is not accepted",
        ),
        (
            "plain id_token",
            Sealing::Plain,
            Sealing::Registered,
            "the id_token is not encrypted",
        ),
        (
            "userinfo to a foreign key",
            Sealing::Registered,
            Sealing::ForeignKey(foreign.clone()),
            "encrypted userinfo: cannot decrypt",
        ),
        (
            "plain userinfo",
            Sealing::Registered,
            Sealing::Plain,
            "userinfo is not encrypted",
        ),
        (
            "userinfo in A128GCM",
            Sealing::Registered,
            Sealing::Enc("A128GCM".into()),
            "encrypted userinfo: content encryption",
        ),
    ];
    for (name, id_token, userinfo, reason) in cases {
        let op = MockOp::franceconnect_plus().await;
        let gw = gateway(&op, &keys_yaml(&[(&key, "enc-2026", "")])).await;
        op.fc(|fc| {
            fc.id_token_sealing = id_token;
            fc.userinfo_sealing = userinfo;
        });
        let (_, trip) = login(&gw).await;
        eprintln!("case: {name}");
        refused(&log, &trip, reason);
    }
}

#[tokio::test]
async fn a_key_management_algorithm_outside_the_list_is_refused() {
    let log = logs::Scope::begin();
    let keys = KeyFiles::new();
    let key = keys.rsa("rsa", "op-rsa-3");
    let op = MockOp::franceconnect_plus().await;
    op.fc(|fc| fc.client_mut(CLIENT_ID).encryption_alg = "RSA-OAEP-256".into());
    let gw = gateway(&op, &keys_yaml(&[(&key, "rsa-enc", "")])).await;
    // RSA1_5 to our own key: a padding-oracle-prone algorithm, never tried.
    op.fc(|fc| fc.id_token_sealing = Sealing::Alg("RSA1_5".into()));
    let (_, trip) = login(&gw).await;
    refused(
        &log,
        &trip,
        "key management algorithm \"RSA1_5\" is not accepted",
    );
}

#[tokio::test]
async fn eidas3_is_asked_for_and_checked() {
    let keys = KeyFiles::new();
    let key = keys.ec("k");
    let op = MockOp::franceconnect_plus().await;
    let gw = gateway(
        &op,
        &format!("acr_values: eidas3\n{}", keys_yaml(&[(&key, "k", "")])),
    )
    .await;
    let (_, trip) = login(&gw).await;
    signed_in(&op, &trip);
    assert!(op.state().authorize_requests[0]
        .query_pairs()
        .any(|(k, v)| k == "acr_values" && v == "eidas3"));

    // An id_token at a lower level than asked for is refused.
    let log = logs::Scope::begin();
    let op = MockOp::franceconnect_plus().await;
    let gw = gateway(
        &op,
        &format!("acr_values: eidas3\n{}", keys_yaml(&[(&key, "k", "")])),
    )
    .await;
    op.state()
        .behaviour
        .id_token_claims
        .insert("acr".into(), "eidas2".into());
    let (_, trip) = login(&gw).await;
    refused(
        &log,
        &trip,
        "acr \"eidas2\" is below the requested \"eidas3\"",
    );
}

#[tokio::test]
async fn the_jwks_of_a_provider_without_keys_is_not_found() {
    let keys = KeyFiles::new();
    let key = keys.ec("k");
    let op = MockOp::franceconnect_plus().await;
    let gw = gateway(&op, &keys_yaml(&[(&key, "k", "")])).await;
    let mut browser = gw.browser();
    // The local provider has no keys; an unknown provider neither.
    for path in ["/.guichet/jwks/local", "/.guichet/jwks/nobody"] {
        let response = browser.send(browser.get(&gw.url(path))).await;
        assert_eq!(response.status, 404, "{path}");
    }
    let response = browser
        .send(browser.get(&gw.url("/.guichet/jwks/fcplus")))
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.headers["cache-control"], "public, max-age=300",
        "cacheable, unlike every other gateway answer"
    );
    assert!(response.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
}

#[tokio::test]
async fn private_key_jwt_signs_es256_with_the_published_key() {
    let keys = KeyFiles::new();
    let (enc, sig) = (keys.ec("enc"), keys.ec("sig"));
    let op = MockOp::franceconnect_plus().await;
    op.fc(|fc| {
        fc.client_mut(CLIENT_ID).auth = guichet_tests::franceconnect::TokenAuth::PrivateKeyJwt
    });
    let settings = format!(
        "client_auth: private_key_jwt\nprivate_key_file: \"{}\"\nprivate_key_id: sig-2026\n{}",
        sig.display(),
        keys_yaml(&[(&enc, "enc-2026", "")])
    );
    let gw = gateway(&op, &settings).await;
    let jwks = op.fc(|fc| fc.clients[CLIENT_ID].jwks.clone().unwrap());
    let published: Vec<(Value, Value, Value)> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].clone(), k["use"].clone(), k["alg"].clone()))
        .collect();
    assert_eq!(
        published,
        [
            ("enc-2026".into(), "enc".into(), "ECDH-ES".into()),
            ("sig-2026".into(), "sig".into(), "ES256".into()),
        ]
    );
    let (_, trip) = login(&gw).await;
    signed_in(&op, &trip);
    let token = op.state().token_requests[0].clone();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&token.body)
        .into_owned()
        .collect();
    assert!(form.iter().any(|(k, _)| k == "client_assertion"));
    assert!(!form.iter().any(|(k, _)| k == "client_secret"));
}
