//! The strict FranceConnect mock itself (`guichet_tests::franceconnect`), driven with a plain
//! HTTP client, no gateway: each rule of the platform it enforces, and each refusal, the way
//! the platform answers it (an HTML page with its code, a redirect to the service with an
//! error, an OAuth error at /token). "§" refers to the fact sheet of issue #10.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use guichet_tests::franceconnect::{Client, TokenAuth, ENTITY_ID};
use guichet_tests::oidc::{KeyMaterial, MockOp, CLIENT_ID, CLIENT_SECRET};
use serde_json::{json, Value};

const REDIRECT: &str = "https://service.example.org/callback";
const SIGNED_OUT: &str = "https://service.example.org/signed-out";
const NONCE: &str = "nonceatleastthirtytwocharacterss";

/// The platform with the default client registered for [`REDIRECT`] and [`SIGNED_OUT`].
async fn platform() -> MockOp {
    let op = MockOp::franceconnect().await;
    op.fc(|fc| {
        let client = fc.client_mut(CLIENT_ID);
        client.redirect_uris.push(REDIRECT.into());
        client.post_logout_redirect_uris.push(SIGNED_OUT.into());
    });
    op
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A request FranceConnect accepts.
fn good() -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("scope", "openid given_name family_name"),
        ("acr_values", "eidas1"),
        ("state", "state-of-the-service"),
        ("nonce", NONCE),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `good()` with `changes`: `Some(value)` sets (or adds) a parameter, `None` removes it.
fn with(changes: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    let mut params = good();
    for (name, value) in changes {
        params.retain(|(k, _)| k != name);
        if let Some(value) = value {
            params.push((name.to_string(), value.to_string()));
        }
    }
    params
}

struct Answer {
    status: u16,
    content_type: String,
    location: Option<url::Url>,
    body: String,
}

impl Answer {
    fn query(&self) -> HashMap<String, String> {
        self.location
            .as_ref()
            .map(|l| l.query_pairs().into_owned().collect())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("JSON: {}", self.body))
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    let location = header("location").map(|l| url::Url::parse(&l).expect("absolute"));
    Answer {
        status,
        content_type,
        location,
        body: response.text().await.unwrap(),
    }
}

async fn authorize(op: &MockOp, params: &[(String, String)]) -> Answer {
    let mut url = url::Url::parse(&format!("{}/authorize", op.issuer)).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    answer(http().get(url).send().await.unwrap()).await
}

/// The code of an accepted /authorize.
async fn code(op: &MockOp, params: &[(String, String)]) -> String {
    let answer = authorize(op, params).await;
    assert_eq!(
        answer.status,
        302,
        "{}: {:?}",
        answer.body,
        op.fc(|fc| fc.refusals.clone())
    );
    let q = answer.query();
    assert_eq!(q["state"], "state-of-the-service");
    q["code"].clone()
}

fn exchange_form(code: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.into()),
        ("redirect_uri", REDIRECT.into()),
        ("client_id", CLIENT_ID.into()),
        ("client_secret", CLIENT_SECRET.into()),
    ]
}

async fn token(op: &MockOp, form: &[(&str, String)]) -> Answer {
    answer(
        http()
            .post(format!("{}/token", op.issuer))
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn userinfo(op: &MockOp, access_token: &str) -> Answer {
    answer(
        http()
            .get(format!("{}/userinfo", op.issuer))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn end_session(op: &MockOp, params: &[(&str, &str)]) -> Answer {
    let mut url = url::Url::parse(&format!("{}/session/end", op.issuer)).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    answer(http().get(url).send().await.unwrap()).await
}

/// Header and claims of a JWS whose ES256 signature is checked against the platform's key.
fn verified(op: &MockOp, jwt: &str) -> (Value, Value) {
    use p256::ecdsa::signature::Verifier;
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let header = decode(parts[0]);
    assert_eq!(header["alg"], "ES256");
    let state = op.state();
    let key = state
        .keys
        .iter()
        .find_map(|k| match &k.material {
            KeyMaterial::Ec(key) => Some(*key.verifying_key()),
            KeyMaterial::Rsa(_) => None,
        })
        .expect("an EC key");
    let signature =
        p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("a good ES256 signature");
    (header, decode(parts[1]))
}

/// A login at the platform: the token answer.
async fn sign_in(op: &MockOp, params: &[(String, String)]) -> Value {
    let code = code(op, params).await;
    let answer = token(op, &exchange_form(&code)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

fn refusals(op: &MockOp) -> Vec<String> {
    op.fc(|fc| fc.refusals.clone())
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

// --- What the platform does with a good request ------------------------------------------

#[tokio::test]
async fn a_good_login_gets_the_tokens_and_claims_the_platform_issues() {
    let op = platform().await;
    let tokens = sign_in(&op, &good()).await;
    // §2.1: exactly five properties, no refresh_token; §2.4: 60 seconds.
    assert_eq!(
        keys(&tokens),
        [
            "access_token",
            "expires_in",
            "id_token",
            "scope",
            "token_type"
        ]
    );
    assert_eq!(tokens["expires_in"], 60);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid given_name family_name");
    // §2.2: ES256, the claims FranceConnect puts in its id_tokens and no others.
    let (_, id_token) = verified(&op, tokens["id_token"].as_str().unwrap());
    assert_eq!(
        keys(&id_token),
        [
            "acr",
            "aud",
            "auth_time",
            "exp",
            "iat",
            "iss",
            "nonce",
            "sub"
        ]
    );
    assert_eq!(id_token["iss"], op.issuer);
    assert!(op.issuer.ends_with("/api/v2"));
    assert_eq!(id_token["aud"], CLIENT_ID);
    assert_eq!(id_token["nonce"], NONCE);
    assert_eq!(id_token["acr"], "eidas1");
    assert_eq!(
        id_token["exp"].as_i64().unwrap() - id_token["iat"].as_i64().unwrap(),
        60
    );
    // §4: 64 hex characters and "v1".
    let sub = id_token["sub"].as_str().unwrap();
    assert_eq!(sub, op.fc_sub(CLIENT_ID));
    assert_eq!(sub.len(), 66);
    assert!(sub.ends_with("v1"));
    // §2.3, §3.1, §7.6: a signed JWT with the claims of the granted scopes.
    let info = userinfo(&op, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info.status, 200);
    assert_eq!(info.content_type, "application/jwt");
    let (_, claims) = verified(&op, &info.body);
    assert_eq!(
        keys(&claims),
        [
            "aud",
            "exp",
            "family_name",
            "given_name",
            "given_name_array",
            "iat",
            "iss",
            "sub"
        ]
    );
    assert_eq!(claims["given_name"], "Grégory Gaëtan");
    assert_eq!(claims["given_name_array"], json!(["Grégory", "Gaëtan"]));
    assert_eq!(claims["sub"], sub);
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["iss"], op.issuer);
    assert!(refusals(&op).is_empty());
}

#[tokio::test]
async fn the_optional_parameters_are_accepted() {
    let op = platform().await;
    op.fc(|fc| fc.idp_hints.push("fip1-low".into()));
    for (name, value) in [
        ("prompt", "login"),
        ("prompt", "consent"),
        ("prompt", "login consent"),
        ("prompt", "consent login"),
        ("ui_locales", "fr"),
        ("idp_hint", "fip1-low"),
        ("claims", r#"{"id_token":{"acr":{"essential":true}}}"#),
        // §1.3: 22 characters is enough, any characters.
        ("nonce", "nonce-of-22-chars-@#&!"),
        // §1.4: state has no length rule.
        ("state", "s"),
    ] {
        let answer = authorize(&op, &with(&[(name, Some(value))])).await;
        assert_eq!(answer.status, 302, "{name}={value}: {}", answer.body);
        assert!(answer.query().contains_key("code"), "{name}={value}");
    }
    assert!(refusals(&op).is_empty());
}

#[tokio::test]
async fn the_discovery_document_is_franceconnects() {
    let op = platform().await;
    let doc: Value = http()
        .get(format!("{}/.well-known/openid-configuration", op.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], op.issuer);
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{}/authorize", op.issuer)
    );
    assert_eq!(
        doc["end_session_endpoint"],
        format!("{}/session/end", op.issuer)
    );
    assert_eq!(doc["acr_values_supported"], json!(["eidas1"]));
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["client_secret_post", "private_key_jwt"])
    );
    assert_eq!(doc["subject_types_supported"], json!(["pairwise"]));
    assert_eq!(doc["claims_parameter_supported"], true);
    let scopes = doc["scopes_supported"].as_array().unwrap();
    for scope in ["openid", "profile", "preferred_username", "idp_birthdate"] {
        assert!(scopes.contains(&json!(scope)), "{scope}");
    }
    for scope in ["address", "phone", "offline_access"] {
        assert!(!scopes.contains(&json!(scope)), "{scope}");
    }
    assert!(doc.get("backchannel_logout_supported").is_none());
}

// --- /authorize refusals ---------------------------------------------------------------

/// §1.2: FranceConnect's own HTML page with code Y030007, HTTP 400, no way back to the service.
async fn assert_y030007(op: &MockOp, params: &[(String, String)], why: &str) {
    let answer = authorize(op, params).await;
    assert_eq!(answer.status, 400, "{why}: {}", answer.body);
    assert!(answer.content_type.starts_with("text/html"), "{why}");
    assert!(answer.body.contains("Y030007"), "{why}: {}", answer.body);
    assert!(answer.location.is_none(), "{why}: not sent back");
    assert_eq!(
        refusals(op).last().map(String::as_str),
        Some(why),
        "the refusal's reason"
    );
}

#[tokio::test]
async fn pkce_parameters_are_refused_with_y030007() {
    let op = platform().await;
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    assert_y030007(
        &op,
        &with(&[("code_challenge", Some(challenge))]),
        "code_challenge is not an allowed parameter",
    )
    .await;
    assert_y030007(
        &op,
        &with(&[("code_challenge_method", Some("S256"))]),
        "code_challenge_method is not an allowed parameter",
    )
    .await;
}

#[tokio::test]
async fn parameters_outside_the_list_are_refused_with_y030007() {
    let op = platform().await;
    for name in [
        "response_mode",
        "login_hint",
        "max_age",
        "request",
        "request_uri",
        "foo",
    ] {
        assert_y030007(
            &op,
            &with(&[(name, Some("x"))]),
            &format!("{name} is not an allowed parameter"),
        )
        .await;
    }
    // A repeated parameter is an array to the platform's validator.
    let mut twice = good();
    twice.push(("scope".into(), "openid".into()));
    assert_y030007(&op, &twice, "scope is repeated").await;
}

#[tokio::test]
async fn missing_parameters_are_refused_with_y030007() {
    let op = platform().await;
    for name in [
        "state",
        "nonce",
        "acr_values",
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
    ] {
        assert_y030007(&op, &with(&[(name, None)]), &format!("{name} is missing")).await;
    }
}

#[tokio::test]
async fn a_nonce_shorter_than_22_characters_is_refused_with_y030007() {
    let op = platform().await;
    assert_y030007(
        &op,
        &with(&[("nonce", Some("nonce_trop_court"))]),
        "nonce has 16 characters, fewer than 22",
    )
    .await;
    assert_y030007(
        &op,
        &with(&[("nonce", Some("123456789012345678901"))]),
        "nonce has 21 characters, fewer than 22",
    )
    .await;
    assert_y030007(
        &op,
        &with(&[("nonce", Some(""))]),
        "nonce has 0 characters, fewer than 22",
    )
    .await;
}

#[tokio::test]
async fn prompts_other_than_login_and_consent_are_refused_with_y030007() {
    let op = platform().await;
    for prompt in ["", "none", "select_account", "login none"] {
        assert_y030007(
            &op,
            &with(&[("prompt", Some(prompt))]),
            &format!("prompt {prompt:?} is not allowed"),
        )
        .await;
    }
}

#[tokio::test]
async fn a_malformed_redirect_uri_is_refused_with_y030007() {
    let op = platform().await;
    assert_y030007(
        &op,
        &with(&[("redirect_uri", Some("example.com"))]),
        "redirect_uri is not a URL",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_client_or_unregistered_redirect_uri_gets_the_platforms_page() {
    let op = platform().await;
    // §1.9: Y04EA6EF and Y04C013C, HTTP 400, not sent back.
    for (params, code) in [
        (with(&[("client_id", Some("someone-else"))]), "Y04EA6EF"),
        (
            with(&[(
                "redirect_uri",
                Some("https://service.example.org/elsewhere"),
            )]),
            "Y04C013C",
        ),
    ] {
        let answer = authorize(&op, &params).await;
        assert_eq!(answer.status, 400, "{code}");
        assert!(answer.body.contains(code), "{code}: {}", answer.body);
        assert!(answer.location.is_none());
    }
}

/// A refusal the platform sends back to the service: a 303 to its redirect_uri with `error`,
/// `error_description` and the state, and no code.
async fn assert_sent_back(
    op: &MockOp,
    params: &[(String, String)],
    error: &str,
    description: &str,
) {
    let answer = authorize(op, params).await;
    assert_eq!(answer.status, 303, "{error}: {}", answer.body);
    let location = answer.location.as_ref().unwrap();
    assert!(location.as_str().starts_with(REDIRECT), "{location}");
    let q = answer.query();
    assert_eq!(q["error"], error);
    assert_eq!(q["error_description"], description);
    assert_eq!(q["state"], "state-of-the-service");
    assert!(!q.contains_key("code"));
}

#[tokio::test]
async fn a_scope_the_client_is_not_authorised_for_is_invalid_scope() {
    let op = platform().await;
    // §3.3: idp_id, amr, address are not in the default client's list.
    for scope in ["idp_id", "amr", "address", "phone"] {
        assert_sent_back(
            &op,
            &with(&[("scope", Some(&format!("openid given_name {scope}")))]),
            "invalid_scope",
            "requested scope is not allowed",
        )
        .await;
    }
    // Per client: without email, email is refused; given to it, it is released.
    op.fc(|fc| {
        fc.client_mut(CLIENT_ID).scopes.remove("email");
    });
    assert_sent_back(
        &op,
        &with(&[("scope", Some("openid email"))]),
        "invalid_scope",
        "requested scope is not allowed",
    )
    .await;
}

#[tokio::test]
async fn a_scope_without_openid_is_invalid_request() {
    let op = platform().await;
    assert_sent_back(
        &op,
        &with(&[("scope", Some("profile"))]),
        "invalid_request",
        "openid scope must be requested when using the acr_values parameter",
    )
    .await;
}

#[tokio::test]
async fn a_response_type_other_than_code_is_sent_back() {
    let op = platform().await;
    assert_sent_back(
        &op,
        &with(&[("response_type", Some(""))]),
        "invalid_request",
        "missing required parameter 'response_type'",
    )
    .await;
    for response_type in ["id_token", "code token", "inconnu"] {
        assert_sent_back(
            &op,
            &with(&[("response_type", Some(response_type))]),
            "unsupported_response_type",
            "unsupported response_type requested",
        )
        .await;
    }
}

#[tokio::test]
async fn eidas2_and_eidas3_are_invalid_acr_on_franceconnect_v2() {
    let op = platform().await;
    // §1.6, the platform's own test table.
    for (acr_values, got) in [
        ("eidas2", "eidas2"),
        ("eidas3", "eidas3"),
        ("eidas2 eidas3", "eidas2"),
        ("inconnu eidas3", "eidas3"),
    ] {
        assert_sent_back(
            &op,
            &with(&[("acr_values", Some(acr_values))]),
            "invalid_acr",
            &format!(
                "acr_value is not valid, should be equal one of these values, expected eidas1, got {got}"
            ),
        )
        .await;
    }
}

#[tokio::test]
async fn the_lowest_known_acr_is_picked_and_unknown_ones_fall_back_to_eidas1() {
    let op = platform().await;
    for acr_values in ["eidas1 eidas2 eidas3", "niveau_inconnu", "eidas3 eidas1"] {
        let tokens = sign_in(&op, &with(&[("acr_values", Some(acr_values))])).await;
        let (_, id_token) = verified(&op, tokens["id_token"].as_str().unwrap());
        assert_eq!(id_token["acr"], "eidas1", "{acr_values}");
    }
}

#[tokio::test]
async fn an_idp_hint_not_allowed_is_invalid_idp_hint() {
    let op = platform().await;
    assert_sent_back(
        &op,
        &with(&[("idp_hint", Some("somewhere"))]),
        "invalid_idp_hint",
        "An idp_hint was provided but is not allowed",
    )
    .await;
}

#[tokio::test]
async fn amr_needs_the_client_to_be_allowed_it() {
    let op = platform().await;
    let claims = r#"{"id_token":{"amr":{"essential":true}}}"#;
    // §1.7: not allowed → the Y100009 page.
    let answer = authorize(&op, &with(&[("claims", Some(claims))])).await;
    assert_eq!(answer.status, 400);
    assert!(answer.body.contains("Y100009"), "{}", answer.body);
    assert!(answer.location.is_none());
    // Allowed → amr in the id_token; not asked for → none.
    op.fc(|fc| fc.client_mut(CLIENT_ID).amr = true);
    let tokens = sign_in(&op, &with(&[("claims", Some(claims))])).await;
    let (_, id_token) = verified(&op, tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["amr"], json!(["fc", "pwd"]));
    let tokens = sign_in(&op, &good()).await;
    let (_, id_token) = verified(&op, tokens["id_token"].as_str().unwrap());
    assert!(id_token.get("amr").is_none());
}

#[tokio::test]
async fn authorize_by_post_follows_the_same_rules() {
    let op = platform().await;
    let post = |params: Vec<(String, String)>| {
        let op_issuer = op.issuer.clone();
        async move {
            answer(
                http()
                    .post(format!("{op_issuer}/authorize"))
                    .form(&params)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let refused = post(with(&[("code_challenge", Some("abc"))])).await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("Y030007"));
    let accepted = post(good()).await;
    assert_eq!(accepted.status, 302, "{}", accepted.body);
    assert!(accepted.query().contains_key("code"));
}

// --- Grouped scopes and userinfo -------------------------------------------------------

#[tokio::test]
async fn grouped_scopes_expand_at_userinfo() {
    let op = platform().await;
    // §3.1
    for (scope, claims) in [
        (
            "profile",
            &[
                "birthdate",
                "family_name",
                "gender",
                "given_name",
                "given_name_array",
                "preferred_username",
            ][..],
        ),
        ("birth", &["birthcountry", "birthplace"][..]),
        (
            "identite_pivot",
            &[
                "birthcountry",
                "birthdate",
                "birthplace",
                "family_name",
                "gender",
                "given_name",
                "given_name_array",
            ][..],
        ),
        ("email", &["email"][..]),
    ] {
        let tokens = sign_in(&op, &with(&[("scope", Some(&format!("openid {scope}")))])).await;
        let info = userinfo(&op, tokens["access_token"].as_str().unwrap()).await;
        let (_, got) = verified(&op, &info.body);
        let mut expected: Vec<&str> = claims.to_vec();
        expected.extend(["aud", "exp", "iat", "iss", "sub"]);
        expected.sort_unstable();
        assert_eq!(keys(&got), expected, "{scope}");
    }
}

#[tokio::test]
async fn the_sub_is_pairwise_per_entity_id() {
    let op = platform().await;
    // §4: another service (entity id) gets another sub; a second client_id of the same entity
    // gets the same one; the same service gets the same sub at every login.
    op.fc(|fc| {
        for (id, entity) in [
            ("other-service", "another-entity-id-0123456789abcdef"),
            ("same-entity", ENTITY_ID),
        ] {
            let mut client = Client::new("other secret", entity);
            client.redirect_uris.push(REDIRECT.into());
            fc.clients.insert(id.into(), client);
        }
    });
    let sub_at = |client_id: &'static str, secret: &'static str| {
        let op = &op;
        async move {
            let code = code(op, &with(&[("client_id", Some(client_id))])).await;
            let mut form = exchange_form(&code);
            form.retain(|(k, _)| *k != "client_id" && *k != "client_secret");
            form.push(("client_id", client_id.into()));
            form.push(("client_secret", secret.into()));
            let answer = token(op, &form).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            let (_, id_token) = verified(op, answer.json()["id_token"].as_str().unwrap());
            id_token["sub"].as_str().unwrap().to_owned()
        }
    };
    let first = sub_at(CLIENT_ID, CLIENT_SECRET).await;
    assert_eq!(sub_at(CLIENT_ID, CLIENT_SECRET).await, first);
    assert_eq!(sub_at("same-entity", "other secret").await, first);
    let other = sub_at("other-service", "other secret").await;
    assert_ne!(other, first);
    assert_eq!(other, op.fc_sub("other-service"));
}

// --- /token refusals -------------------------------------------------------------------

#[tokio::test]
async fn client_secret_basic_is_invalid_client() {
    let op = platform().await;
    let code = code(&op, &good()).await;
    // Good credentials, in the Authorization header (§2.1: not enabled).
    let answer = answer(
        http()
            .post(format!("{}/token", op.issuer))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["error"], "invalid_client");
    assert_eq!(
        refusals(&op),
        ["Authorization header at /token (client_secret_basic)"]
    );
    // A wrong secret in the body is no better.
    let mut form = exchange_form(&code);
    form.retain(|(k, _)| *k != "client_secret");
    form.push(("client_secret", "wrong".into()));
    let answer = token(&op, &form).await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.json()["error_description"],
        "client authentication failed (invalid secret provided)"
    );
}

#[tokio::test]
async fn private_key_jwt_is_the_other_method() {
    let op = platform().await;
    op.fc(|fc| fc.client_mut(CLIENT_ID).auth = TokenAuth::PrivateKeyJwt);
    let code = code(&op, &good()).await;
    // A client registered for private_key_jwt cannot use its secret.
    let answer = token(&op, &exchange_form(&code)).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["error"], "invalid_client");
}

#[tokio::test]
async fn a_code_is_single_use_and_its_reuse_revokes_its_access_token() {
    let op = platform().await;
    let code = code(&op, &good()).await;
    let first = token(&op, &exchange_form(&code)).await;
    assert_eq!(first.status, 200);
    let access_token = first.json()["access_token"].as_str().unwrap().to_owned();
    let again = token(&op, &exchange_form(&code)).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.json()["error"], "invalid_grant");
    assert_eq!(refusals(&op), ["code reused"]);
    assert_eq!(userinfo(&op, &access_token).await.status, 401);
}

#[tokio::test]
async fn a_code_older_than_30_seconds_is_invalid_grant() {
    let op = platform().await;
    let old = code(&op, &good()).await;
    op.fc(|fc| fc.clock_offset = 30);
    let answer = token(&op, &exchange_form(&old)).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"], "invalid_grant");
    assert_eq!(
        answer.json()["error_description"],
        "grant request is invalid (authorization code not found)"
    );
    assert_eq!(refusals(&op), ["code expired"]);
    // 25 seconds is still in time (a margin for the real clock's seconds between the calls).
    op.fc(|fc| fc.clock_offset = 0);
    let fresh = code(&op, &good()).await;
    op.fc(|fc| fc.clock_offset = 25);
    assert_eq!(token(&op, &exchange_form(&fresh)).await.status, 200);
}

#[tokio::test]
async fn other_token_requests_the_platform_refuses() {
    let op = platform().await;
    // A code_verifier (no code_challenge can have been sent).
    let code1 = code(&op, &good()).await;
    let mut form = exchange_form(&code1);
    form.push((
        "code_verifier",
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
    ));
    let answer = token(&op, &form).await;
    assert_eq!(
        (answer.status, answer.json()["error"].clone()),
        (400, json!("invalid_grant"))
    );
    // Another redirect_uri than the authorization request's.
    let code2 = code(&op, &good()).await;
    let mut form = exchange_form(&code2);
    form.retain(|(k, _)| *k != "redirect_uri");
    form.push(("redirect_uri", "https://service.example.org/other".into()));
    let answer = token(&op, &form).await;
    assert_eq!(
        (answer.status, answer.json()["error"].clone()),
        (400, json!("invalid_grant"))
    );
    // No code.
    let mut form = exchange_form("x");
    form.retain(|(k, _)| *k != "code");
    let answer = token(&op, &form).await;
    assert_eq!(
        (answer.status, answer.json()["error"].clone()),
        (400, json!("invalid_request"))
    );
    // A code nobody issued.
    let answer = token(&op, &exchange_form("forged")).await;
    assert_eq!(
        (answer.status, answer.json()["error"].clone()),
        (400, json!("invalid_grant"))
    );
    assert_eq!(
        refusals(&op),
        [
            "code_verifier without a code_challenge",
            "redirect_uri differs from the authorization request's",
            "no code",
            "unknown code",
        ]
    );
}

#[tokio::test]
async fn an_access_token_lives_60_seconds() {
    let op = platform().await;
    let tokens = sign_in(&op, &good()).await;
    let access_token = tokens["access_token"].as_str().unwrap();
    // 55 seconds (a margin for the real clock's seconds between the calls).
    op.fc(|fc| fc.clock_offset = 55);
    assert_eq!(userinfo(&op, access_token).await.status, 200);
    op.fc(|fc| fc.clock_offset = 60);
    assert_eq!(userinfo(&op, access_token).await.status, 401);
}

// --- /session/end ----------------------------------------------------------------------

#[tokio::test]
async fn logout_needs_an_id_token_hint_of_this_platform() {
    let op = platform().await;
    let tokens = sign_in(&op, &good()).await;
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    let refused = |answer: &Answer, why: &str| {
        assert_eq!(answer.status, 400, "{why}: {}", answer.body);
        assert!(answer.content_type.starts_with("text/html"), "{why}");
        assert!(answer.location.is_none(), "{why}: not sent back");
        assert_eq!(
            refusals(&op).last().map(String::as_str),
            Some(why),
            "the refusal's reason"
        );
    };
    // §5: id_token_hint is required.
    let answer = end_session(
        &op,
        &[("post_logout_redirect_uri", SIGNED_OUT), ("state", "st")],
    )
    .await;
    refused(&answer, "logout without id_token_hint");
    // Signed by the platform's key, but not an id_token it issued.
    let forged = op.sign(
        json!({"iss": op.issuer, "aud": CLIENT_ID, "sub": "x"})
            .as_object()
            .unwrap(),
        guichet_tests::oidc::Alg::Es256,
    );
    let answer = end_session(&op, &[("id_token_hint", &forged)]).await;
    refused(&answer, "id_token_hint is not an id_token of this platform");
    // §5: a post_logout_redirect_uri the service did not register.
    let answer = end_session(
        &op,
        &[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ],
    )
    .await;
    refused(
        &answer,
        "post_logout_redirect_uri https://evil.example/ is not registered",
    );
    // §5: a parameter outside the list.
    let answer = end_session(&op, &[("id_token_hint", &id_token), ("foo", "bar")]).await;
    refused(&answer, "foo is not an allowed logout parameter");
    // The good one, an hour later (an expired id_token is a good hint): back with the state.
    op.fc(|fc| fc.clock_offset = 3600);
    let answer = end_session(
        &op,
        &[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", SIGNED_OUT),
            ("state", "logout-state"),
        ],
    )
    .await;
    assert_eq!(answer.status, 302, "{}", answer.body);
    assert_eq!(
        answer.location.unwrap().as_str(),
        format!("{SIGNED_OUT}?state=logout-state")
    );
    // Without a post_logout_redirect_uri the user stays at FranceConnect (§5 step 4).
    let answer = end_session(&op, &[("id_token_hint", &id_token)]).await;
    assert_eq!(answer.status, 200);
    assert!(answer.body.contains("déconnecté"));
}
