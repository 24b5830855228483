//! A mock OpenID provider (wiremock on an ephemeral loopback port), told per test how to
//! misbehave.
//!
//! It serves discovery, a JWKS (RS256 and ES256 keys, rotation, keys of unknown types), an
//! /authorize that signs the user in at once and redirects back with a code, a /token endpoint
//! that checks client authentication (basic, post or private_key_jwt), the code, the
//! redirect_uri and PKCE, a /userinfo answering JSON or a signed JWT, and /session/end. It also
//! mints back-channel `logout_token`s. Every request it received is kept for assertions.
//!
//! Keys and signatures come from the `rsa`, `p256` and `hmac` crates directly, not from the
//! `openidconnect` crate Guichet verifies with, so a bug there cannot hide itself here. RSA
//! signatures are computed by OpenSSL (see [`rsa_sign`]): RSASSA-PKCS1-v1_5 is deterministic,
//! so they are the very bytes the `rsa` crate gives, an order of magnitude faster (the load
//! benchmark `benches/oidc_logins.rs` signs hundreds of id_tokens a second).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The client Guichet is registered as, by default.
pub const CLIENT_ID: &str = "guichet-rp";
/// A secret with characters that must be encoded in HTTP Basic (RFC 6749 §2.3.1).
pub const CLIENT_SECRET: &str = "s3cr%t:with/reserved+chars&=";

const OP_RSA_KEYS: [&str; 3] = [
    include_str!("../keys/op-rsa-1.pem"),
    include_str!("../keys/op-rsa-2.pem"),
    include_str!("../keys/op-rsa-3.pem"),
];
/// Guichet's `private_key_jwt` key (the OP knows its public half).
pub const CLIENT_KEY_PEM: &str = include_str!("../keys/client-rsa.pem");

pub fn client_key_path() -> String {
    format!("{}/keys/client-rsa.pem", env!("CARGO_MANIFEST_DIR"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
    Hs256,
    None,
}

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::Hs256 => "HS256",
            Alg::None => "none",
        }
    }
}

pub enum KeyMaterial {
    Rsa(Box<RsaPrivateKey>),
    Ec(p256::ecdsa::SigningKey),
}

pub struct OpKey {
    pub kid: Option<String>,
    pub material: KeyMaterial,
}

impl OpKey {
    /// The n-th committed RSA test key.
    pub fn rsa(n: usize, kid: Option<&str>) -> OpKey {
        OpKey {
            kid: kid.map(str::to_owned),
            material: KeyMaterial::Rsa(Box::new(
                RsaPrivateKey::from_pkcs8_pem(OP_RSA_KEYS[n]).expect("test RSA key"),
            )),
        }
    }

    /// A fresh P-256 key.
    pub fn ec(kid: Option<&str>) -> OpKey {
        OpKey {
            kid: kid.map(str::to_owned),
            material: KeyMaterial::Ec(p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng)),
        }
    }

    fn alg(&self) -> Alg {
        match self.material {
            KeyMaterial::Rsa(_) => Alg::Rs256,
            KeyMaterial::Ec(_) => Alg::Es256,
        }
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        let mut jwk = match &self.material {
            KeyMaterial::Rsa(key) => json!({
                "kty": "RSA", "use": "sig", "alg": "RS256",
                "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
            }),
            KeyMaterial::Ec(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                json!({
                    "kty": "EC", "use": "sig", "alg": "ES256", "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(point.x().expect("x")),
                    "y": URL_SAFE_NO_PAD.encode(point.y().expect("y")),
                })
            }
        };
        if let Some(kid) = &self.kid {
            jwk["kid"] = Value::String(kid.clone());
        }
        jwk
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        match &self.material {
            KeyMaterial::Rsa(key) => rsa_sign(key, input),
            KeyMaterial::Ec(key) => {
                let signature: p256::ecdsa::Signature = key.sign(input);
                signature.to_bytes().to_vec()
            }
        }
    }
}

/// RS256 (RSASSA-PKCS1-v1_5 with SHA-256) of `input` with `key`, by OpenSSL: the same bytes as
/// `rsa::pkcs1v15::SigningKey::<Sha256>` (the signature scheme is deterministic; checked by a
/// unit test below), about ten times faster than its pure-Rust big integers. The OpenSSL form
/// of each key is made once (its PKCS#8 encoding computes the CRT coefficient: not cheap) and
/// kept, found again by the key's modulus and exponents.
fn rsa_sign(key: &RsaPrivateKey, input: &[u8]) -> Vec<u8> {
    use openssl::pkey::{PKey, Private};
    use rsa::pkcs8::EncodePrivateKey;
    use rsa::traits::PrivateKeyParts;
    use std::sync::OnceLock;
    type Keys = HashMap<[Vec<u8>; 3], PKey<Private>>;
    static KEYS: OnceLock<Mutex<Keys>> = OnceLock::new();
    let id = [key.n(), key.e(), key.d()].map(|v| v.to_bytes_be());
    let pkey = KEYS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(id)
        .or_insert_with(|| {
            let der = key.to_pkcs8_der().expect("an RSA key encodes");
            PKey::private_key_from_der(der.as_bytes()).expect("OpenSSL reads it")
        })
        .clone();
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &pkey)
        .expect("an RSA signer");
    signer.sign_oneshot_to_vec(input).expect("RSA signature")
}

/// How the provider behaves; `Default` is a correct provider.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// Algorithm of id_tokens (and signed userinfo unless `userinfo_alg`).
    pub alg: Alg,
    /// Sign with this key (index into `keys`) instead of the first one of the right type.
    pub signing_key: Option<usize>,
    /// Leave `kid` out of the JWS header.
    pub omit_kid: bool,
    /// Flip a bit of the signature of every token (id_tokens, signed userinfo, logout tokens).
    pub corrupt_signature: bool,
    /// Flip a bit of the signature of signed userinfo responses only: the id_token stays good,
    /// so a login gets as far as the userinfo verification.
    pub corrupt_userinfo_signature: bool,
    /// Changes to the id_token claims; `null` removes the claim.
    pub id_token_claims: Map<String, Value>,
    /// Put a wrong `at_hash` in the id_token.
    pub bad_at_hash: bool,
    /// Answer userinfo as a signed JWT.
    pub signed_userinfo: bool,
    pub userinfo_alg: Option<Alg>,
    /// Changes to the userinfo claims; `null` removes the claim.
    pub userinfo_claims: Map<String, Value>,
    /// The `issuer` written in the discovery document, when it should lie.
    pub discovery_issuer: Option<String>,
    /// Add RFC 9207 `iss` to authorization responses (and say so in discovery).
    pub callback_iss: bool,
    /// The `iss` value sent back instead of the real one.
    pub callback_iss_value: Option<String>,
    /// Answer /authorize with this `error` (and a description).
    pub authorize_error: Option<String>,
    /// Also publish keys of a type nobody knows.
    pub jwks_unknown_keys: bool,
    /// The client authentication the token endpoint demands.
    pub client_auth: ClientAuth,
    /// Answer the token endpoint this late.
    pub token_delay: Option<std::time::Duration>,
    /// `form_post` pages wait for a click instead of submitting themselves.
    pub form_post_manual: bool,
    /// The origin browsers reach the provider's pages at (`http://op.example:PORT`), when it
    /// must be another site than the gateway's; servers keep using the issuer.
    pub browser_origin: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Post,
    PrivateKeyJwt,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            alg: Alg::Rs256,
            signing_key: None,
            omit_kid: false,
            corrupt_signature: false,
            corrupt_userinfo_signature: false,
            id_token_claims: Map::new(),
            bad_at_hash: false,
            signed_userinfo: false,
            userinfo_alg: None,
            userinfo_claims: Map::new(),
            discovery_issuer: None,
            callback_iss: false,
            callback_iss_value: None,
            authorize_error: None,
            jwks_unknown_keys: false,
            form_post_manual: false,
            browser_origin: None,
            client_auth: ClientAuth::Basic,
            token_delay: None,
        }
    }
}

struct Grant {
    nonce: Option<String>,
    redirect_uri: String,
    code_challenge: Option<String>,
    acr_values: Option<String>,
    sid: String,
}

/// What the provider saw and holds.
pub struct OpState {
    pub behaviour: Behaviour,
    pub keys: Vec<OpKey>,
    /// The signed-in user's claims (besides `sub`).
    pub user_claims: Map<String, Value>,
    pub subject: String,
    pub client_secret: String,
    pub authorize_requests: Vec<url::Url>,
    pub token_requests: Vec<Request>,
    pub end_session_requests: Vec<url::Url>,
    pub jwks_fetches: usize,
    pub userinfo_fetches: usize,
    /// The `sid` of each login, in order.
    pub sids: Vec<String>,
    /// Every id_token the token endpoint issued, in order.
    pub id_tokens: Vec<String>,
    /// Set by [`MockOp::franceconnect`]: every endpoint then follows FranceConnect v2's rules
    /// (see [`crate::franceconnect`]) instead of the generic provider's.
    pub franceconnect: Option<crate::franceconnect::Platform>,
    /// Every `response_mode=form_post` answer served: the form's action and fields.
    pub form_posts: Vec<(String, Vec<(String, String)>)>,
    codes: HashMap<String, Grant>,
    access_tokens: HashMap<String, ()>,
    pub(crate) counter: usize,
}

pub struct MockOp {
    pub server: MockServer,
    /// `http://127.0.0.1:PORT` + base path.
    pub issuer: String,
    state: Arc<Mutex<OpState>>,
}

type Responder = Box<dyn Fn(&Request) -> ResponseTemplate + Send + Sync>;

pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

pub(crate) fn apply(claims: &mut Map<String, Value>, changes: &Map<String, Value>) {
    for (name, value) in changes {
        if value.is_null() {
            claims.remove(name);
        } else {
            claims.insert(name.clone(), value.clone());
        }
    }
}

fn query_map(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

pub(crate) fn form_map(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub(crate) fn oauth_error(status: u16, error: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": error }))
}

impl MockOp {
    /// A provider at the root of its server, with an RS256 key (`rsa-1`) and an ES256 key
    /// (`ec-1`).
    pub async fn start() -> MockOp {
        Self::start_at("").await
    }

    /// A provider whose issuer has a path (`/api/v2` for FranceConnect's shape).
    pub async fn start_at(base: &str) -> MockOp {
        let server = MockServer::start().await;
        let issuer = format!("{}{base}", server.uri());
        let mut user_claims = Map::new();
        for (name, value) in [
            ("given_name", "Grégory"),
            ("family_name", "Françoise"),
            ("email", "gregory.francoise@example.org"),
            ("preferred_username", "Françoise"),
            ("birthdate", "1980-01-01"),
            ("gender", "male"),
            ("birthplace", "75056"),
            ("birthcountry", "99100"),
        ] {
            user_claims.insert(name.into(), Value::String(value.into()));
        }
        let state = Arc::new(Mutex::new(OpState {
            behaviour: Behaviour::default(),
            keys: vec![OpKey::rsa(0, Some("rsa-1")), OpKey::ec(Some("ec-1"))],
            user_claims,
            subject: "op-user-1".into(),
            client_secret: CLIENT_SECRET.into(),
            authorize_requests: Vec::new(),
            token_requests: Vec::new(),
            end_session_requests: Vec::new(),
            jwks_fetches: 0,
            userinfo_fetches: 0,
            sids: Vec::new(),
            id_tokens: Vec::new(),
            franceconnect: None,
            form_posts: Vec::new(),
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            counter: 0,
        }));
        let op = MockOp {
            server,
            issuer,
            state,
        };
        op.mount(base).await;
        op
    }

    /// The provider's state, to change its behaviour or read what it saw.
    pub fn state(&self) -> MutexGuard<'_, OpState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn behave(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.state().behaviour);
    }

    async fn mount(&self, base: &str) {
        let routes: Vec<(&str, &str, Responder)> = vec![
            ("GET", "/.well-known/openid-configuration", {
                let (state, issuer) = (self.state.clone(), self.issuer.clone());
                Box::new(move |_req: &Request| discovery(&state.lock().unwrap(), &issuer))
            }),
            ("GET", "/jwks", {
                let state = self.state.clone();
                Box::new(move |_req: &Request| {
                    let mut state = state.lock().unwrap();
                    state.jwks_fetches += 1;
                    jwks(&state)
                })
            }),
            ("GET", "/authorize", {
                let (state, issuer) = (self.state.clone(), self.issuer.clone());
                Box::new(move |req: &Request| authorize(&mut state.lock().unwrap(), &issuer, req))
            }),
            // FranceConnect takes /authorize by POST too (§1.1 of the fact sheet); the generic
            // provider answers 405 there.
            ("POST", "/authorize", {
                let (state, issuer) = (self.state.clone(), self.issuer.clone());
                Box::new(move |req: &Request| authorize(&mut state.lock().unwrap(), &issuer, req))
            }),
            ("POST", "/token", {
                let (state, issuer) = (self.state.clone(), self.issuer.clone());
                Box::new(move |req: &Request| token(&mut state.lock().unwrap(), &issuer, req))
            }),
            ("GET", "/userinfo", {
                let (state, issuer) = (self.state.clone(), self.issuer.clone());
                Box::new(move |req: &Request| userinfo(&mut state.lock().unwrap(), &issuer, req))
            }),
            ("GET", "/session/end", {
                let state = self.state.clone();
                Box::new(move |req: &Request| end_session(&mut state.lock().unwrap(), req))
            }),
        ];
        for (verb, route, responder) in routes {
            Mock::given(method(verb))
                .and(path(format!("{base}{route}")))
                .respond_with(move |req: &Request| responder(req))
                .mount(&self.server)
                .await;
        }
    }

    /// A signed JWT from this provider with the current behaviour's algorithm and key.
    pub fn sign(&self, claims: &Map<String, Value>, alg: Alg) -> String {
        sign(&self.state(), claims, alg, false)
    }

    /// A back-channel `logout_token` for `sid` (and the user's `sub`), with `changes` applied.
    pub fn logout_token(&self, sid: &str, changes: Map<String, Value>, alg: Alg) -> String {
        let state = self.state();
        let mut claims = json!({
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now(),
            "exp": now() + 120,
            "jti": format!("jti-{}", rand::random::<u64>()),
            "sub": state.subject,
            "sid": sid,
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        })
        .as_object()
        .cloned()
        .expect("object");
        apply(&mut claims, &changes);
        sign(&state, &claims, alg, false)
    }
}

fn discovery(state: &OpState, issuer: &str) -> ResponseTemplate {
    if state.franceconnect.is_some() {
        return crate::franceconnect::discovery(state, issuer);
    }
    let b = &state.behaviour;
    ResponseTemplate::new(200).set_body_json(json!({
        "issuer": b.discovery_issuer.clone().unwrap_or_else(|| issuer.to_owned()),
        "authorization_endpoint": match &b.browser_origin {
            Some(origin) => format!("{origin}/authorize"),
            None => format!("{issuer}/authorize"),
        },
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/session/end"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "userinfo_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": b.callback_iss,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    }))
}

fn jwks(state: &OpState) -> ResponseTemplate {
    let mut keys: Vec<Value> = state.keys.iter().map(OpKey::jwk).collect();
    if state.behaviour.jwks_unknown_keys {
        keys.insert(
            0,
            json!({"kty": "PQC", "kid": "pq-1", "alg": "ML-DSA-65", "pub": "AAAA"}),
        );
        keys.insert(
            0,
            json!({"kty": "RSA", "kid": "broken-1", "alg": "RS256", "n": 12, "e": false}),
        );
    }
    ResponseTemplate::new(200).set_body_json(json!({ "keys": keys }))
}

/// A compact JWS of `claims`; the signature is corrupted when the behaviour says so for every
/// token, or when `corrupt` (the caller's own switch) is set. HS256 is keyed with the client
/// secret.
fn sign(state: &OpState, claims: &Map<String, Value>, alg: Alg, corrupt: bool) -> String {
    sign_keyed(state, claims, alg, corrupt, state.client_secret.as_bytes())
}

/// [`sign`] with the HS256 key given (the secret of the client the token is for).
pub(crate) fn sign_keyed(
    state: &OpState,
    claims: &Map<String, Value>,
    alg: Alg,
    corrupt: bool,
    hmac_key: &[u8],
) -> String {
    let b = &state.behaviour;
    let mut header = json!({"alg": alg.name(), "typ": "JWT"});
    let key = match alg {
        Alg::Rs256 | Alg::Es256 => Some(match b.signing_key {
            Some(index) => &state.keys[index],
            None => state
                .keys
                .iter()
                .find(|k| k.alg() == alg)
                .expect("a key of that type"),
        }),
        _ => None,
    };
    if let Some(kid) = key.and_then(|k| k.kid.as_ref()) {
        if !b.omit_kid {
            header["kid"] = Value::String(kid.clone());
        }
    }
    let input = format!(
        "{}.{}",
        b64(header.to_string()),
        b64(Value::Object(claims.clone()).to_string())
    );
    let mut signature = match (alg, key) {
        (Alg::None, _) => Vec::new(),
        (Alg::Hs256, _) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(hmac_key).expect("any key");
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        (_, Some(key)) => key.sign(input.as_bytes()),
        (_, None) => unreachable!(),
    };
    if b.corrupt_signature || corrupt {
        if let Some(byte) = signature.get_mut(10) {
            *byte ^= 0x01;
        }
    }
    format!("{input}.{}", b64(signature))
}

fn authorize(state: &mut OpState, issuer: &str, req: &Request) -> ResponseTemplate {
    if state.franceconnect.is_some() {
        return crate::franceconnect::authorize(state, req);
    }
    if req.method.as_str() != "GET" {
        return ResponseTemplate::new(405);
    }
    state.authorize_requests.push(req.url.clone());
    let q = query_map(&req.url);
    let Some(redirect_uri) = q.get("redirect_uri") else {
        return ResponseTemplate::new(400).set_body_string("no redirect_uri");
    };
    let mut back = url::Url::parse(redirect_uri).expect("redirect_uri is a URL");
    let form_post = q.get("response_mode").map(String::as_str) == Some("form_post");
    {
        let mut pairs = back.query_pairs_mut();
        if let Some(error) = &state.behaviour.authorize_error {
            pairs.append_pair("error", error);
            pairs.append_pair("error_description", "L'usager a annulé <script>");
        } else {
            state.counter += 1;
            let code = format!("code-{}-{}", state.counter, rand::random::<u64>());
            let sid = format!("sid-{}", state.counter);
            state.sids.push(sid.clone());
            state.codes.insert(
                code.clone(),
                Grant {
                    nonce: q.get("nonce").cloned(),
                    redirect_uri: redirect_uri.clone(),
                    code_challenge: q.get("code_challenge").cloned(),
                    acr_values: q.get("acr_values").cloned(),
                    sid,
                },
            );
            pairs.append_pair("code", &code);
        }
        if let Some(s) = q.get("state") {
            pairs.append_pair("state", s);
        }
        if state.behaviour.callback_iss {
            let iss = state
                .behaviour
                .callback_iss_value
                .clone()
                .unwrap_or_else(|| issuer.to_owned());
            pairs.append_pair("iss", &iss);
        }
    }
    if form_post {
        return form_post_page(state, &back);
    }
    ResponseTemplate::new(302).insert_header("location", back.as_str())
}

/// OAuth 2.0 Form Post Response Mode: the response parameters in a form the browser posts to
/// the redirect URI, submitted by script (or by a click, with `form_post_manual`).
fn form_post_page(state: &mut OpState, back: &url::Url) -> ResponseTemplate {
    let fields: Vec<(String, String)> = back.query_pairs().into_owned().collect();
    let mut action = back.clone();
    action.set_query(None);
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                escape(k),
                escape(v)
            )
        })
        .collect();
    let script = if state.behaviour.form_post_manual {
        ""
    } else {
        "<script>document.forms[0].submit()</script>"
    };
    state.form_posts.push((action.to_string(), fields));
    ResponseTemplate::new(200).set_body_raw(
        format!(
            r#"<!DOCTYPE html><html><head><title>Submit</title></head><body><form method="post" action="{}">{inputs}<button type="submit" id="continue">Continue</button></form>{script}</body></html>"#,
            escape(action.as_str())
        ),
        "text/html; charset=utf-8",
    )
}

/// Whether the client authenticated the way the provider demands.
fn authenticate_client(
    state: &OpState,
    issuer: &str,
    req: &Request,
    form: &HashMap<String, String>,
) -> bool {
    let basic = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let ok = match state.behaviour.client_auth {
        ClientAuth::Basic => basic.is_some_and(|pair| {
            let (id, secret) = pair.split_once(':').unwrap_or(("", ""));
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            decode(id) == CLIENT_ID && decode(secret) == state.client_secret
        }),
        ClientAuth::Post => {
            basic.is_none()
                && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && form.get("client_secret") == Some(&state.client_secret)
        }
        ClientAuth::PrivateKeyJwt => {
            form.get("client_assertion_type").map(String::as_str)
                == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                && form.get("client_assertion").is_some_and(|jwt| {
                    client_assertion_ok(jwt, &format!("{issuer}/token"), CLIENT_ID)
                })
        }
    };
    ok
}

/// A `private_key_jwt` client assertion by `client_id`, signed with [`CLIENT_KEY_PEM`].
pub(crate) fn client_assertion_ok(jwt: &str, token_endpoint: &str, client_id: &str) -> bool {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return false;
    }
    let public = RsaPublicKey::from(&RsaPrivateKey::from_pkcs8_pem(CLIENT_KEY_PEM).expect("key"));
    let verifier = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public);
    let Ok(sig_bytes) = URL_SAFE_NO_PAD.decode(parts[2]) else {
        return false;
    };
    let Ok(signature) = rsa::pkcs1v15::Signature::try_from(sig_bytes.as_slice()) else {
        return false;
    };
    if verifier
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .is_err()
    {
        return false;
    }
    let claims: Value = URL_SAFE_NO_PAD
        .decode(parts[1])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    claims["iss"] == client_id
        && claims["sub"] == client_id
        && claims["aud"] == token_endpoint
        && claims["exp"].as_i64().is_some_and(|exp| exp > now())
        && claims["jti"].is_string()
}

fn token(state: &mut OpState, issuer: &str, req: &Request) -> ResponseTemplate {
    let response = token_response(state, issuer, req);
    match state.behaviour.token_delay {
        Some(delay) => response.set_delay(delay),
        None => response,
    }
}

fn token_response(state: &mut OpState, issuer: &str, req: &Request) -> ResponseTemplate {
    if state.franceconnect.is_some() {
        return crate::franceconnect::token(state, issuer, req);
    }
    state.token_requests.push(req.clone());
    let form = form_map(&req.body);
    if !authenticate_client(state, issuer, req, &form) {
        return oauth_error(401, "invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(400, "unsupported_grant_type");
    }
    // Single use: a code is gone once presented.
    let Some(grant) = form.get("code").and_then(|c| state.codes.remove(c)) else {
        return oauth_error(400, "invalid_grant");
    };
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error(400, "invalid_grant");
    }
    if let Some(challenge) = &grant.code_challenge {
        let verified = form
            .get("code_verifier")
            .is_some_and(|v| &b64(Sha256::digest(v.as_bytes())) == challenge);
        if !verified {
            return oauth_error(400, "invalid_grant");
        }
    }
    let access_token = format!("at-{}", rand::random::<u128>());
    state.access_tokens.insert(access_token.clone(), ());
    let b = state.behaviour.clone();
    let at_hash = if b.bad_at_hash {
        b64(&Sha256::digest(b"another token")[..16])
    } else {
        b64(&Sha256::digest(access_token.as_bytes())[..16])
    };
    let mut claims = json!({
        "iss": issuer,
        "sub": state.subject,
        "aud": CLIENT_ID,
        "exp": now() + 300,
        "iat": now(),
        "auth_time": now() - 5,
        "at_hash": at_hash,
        "sid": grant.sid,
    })
    .as_object()
    .cloned()
    .expect("object");
    if let Some(nonce) = grant.nonce {
        claims.insert("nonce".into(), Value::String(nonce));
    }
    if let Some(acr) = grant
        .acr_values
        .as_deref()
        .and_then(|a| a.split(' ').next())
    {
        claims.insert("acr".into(), Value::String(acr.to_owned()));
    }
    apply(&mut claims, &b.id_token_claims);
    let id_token = sign(state, &claims, b.alg, false);
    state.id_tokens.push(id_token.clone());
    ResponseTemplate::new(200)
        .insert_header("cache-control", "no-store")
        .set_body_json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 60,
            "id_token": id_token,
        }))
}

fn userinfo(state: &mut OpState, issuer: &str, req: &Request) -> ResponseTemplate {
    state.userinfo_fetches += 1;
    if state.franceconnect.is_some() {
        return crate::franceconnect::userinfo(state, issuer, req);
    }
    let token = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !token.is_some_and(|t| state.access_tokens.contains_key(t)) {
        return ResponseTemplate::new(401)
            .insert_header("www-authenticate", "Bearer error=\"invalid_token\"");
    }
    let mut claims = state.user_claims.clone();
    claims.insert("sub".into(), Value::String(state.subject.clone()));
    let b = state.behaviour.clone();
    if b.signed_userinfo {
        claims.insert("iss".into(), Value::String(issuer.to_owned()));
        claims.insert("aud".into(), Value::String(CLIENT_ID.into()));
        claims.insert("iat".into(), json!(now()));
    }
    apply(&mut claims, &b.userinfo_claims);
    if b.signed_userinfo {
        let jwt = sign(
            state,
            &claims,
            b.userinfo_alg.unwrap_or(b.alg),
            b.corrupt_userinfo_signature,
        );
        ResponseTemplate::new(200).set_body_raw(jwt, "application/jwt")
    } else {
        ResponseTemplate::new(200).set_body_json(Value::Object(claims))
    }
}

fn end_session(state: &mut OpState, req: &Request) -> ResponseTemplate {
    state.end_session_requests.push(req.url.clone());
    if state.franceconnect.is_some() {
        return crate::franceconnect::end_session(state, req);
    }
    let q = query_map(&req.url);
    match q.get("post_logout_redirect_uri") {
        Some(target) => {
            let mut back = url::Url::parse(target).expect("a URL");
            if let Some(s) = q.get("state") {
                back.query_pairs_mut().append_pair("state", s);
            }
            ResponseTemplate::new(302).insert_header("location", back.as_str())
        }
        None => ResponseTemplate::new(200).set_body_string("signed out"),
    }
}

/// A provider entry for a test gateway's configuration; `extra` is more YAML lines for it
/// (unindented, one setting a line).
pub fn provider_yaml(kind: &str, id: &str, issuer: &str, extra: &str) -> String {
    let mut yaml = format!(
        "  - kind: {kind}\n    id: {id}\n    issuer: \"{issuer}\"\n    client_id: {CLIENT_ID}\n    client_secret: \"{CLIENT_SECRET}\"\n"
    );
    // Tests rotate keys at once; production waits between refetches.
    for (key, default) in [("jwks_refresh_interval", "0s"), ("timeout", "3s")] {
        if !extra.contains(key) {
            yaml.push_str(&format!("    {key}: {default}\n"));
        }
    }
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        yaml.push_str("    ");
        yaml.push_str(line);
        yaml.push('\n');
    }
    yaml
}

/// An app at `http://app.test:PORT{prefix}` in front of the echo app, signing in with
/// `providers`, passing the usual claims as headers (raw UTF-8 for names).
pub fn app_yaml(id: &str, prefix: &str, providers: &[&str]) -> String {
    format!(
        r#"  - id: {id}
    url: "{{origin}}{prefix}"
    upstream: "http://{{echo}}"
    providers: [{providers}]
    identity_headers:
      headers:
        - {{ name: X-Remote-User, value: subject }}
        - {{ name: X-Remote-Provider, value: provider }}
        - {{ name: X-Remote-Given-Name, value: "attribute:given_name", encoding: utf8 }}
        - {{ name: X-Remote-Family-Name, value: "attribute:family_name", encoding: percent }}
        - {{ name: X-Remote-Email, value: "attribute:email" }}
        - {{ name: X-Remote-Level, value: auth_level }}
"#,
        providers = providers.join(", ")
    )
}

/// The hops of one login through an external provider.
pub struct Trip {
    /// Where the gateway sent the browser to sign in (the provider's /authorize).
    pub authorize: Option<url::Url>,
    /// Where the provider sent the browser back (the gateway's callback).
    pub callback: Option<String>,
    /// The gateway's answer to the callback (a redirect to the original page on success), or
    /// the answer that stopped the trip.
    pub page: crate::Page,
}

/// Walks a browser through a login: the protected page, the gateway's login endpoint (with an
/// `idp` hint when given), the provider, the callback.
pub async fn login(
    browser: &mut crate::Browser,
    gateway: &impl crate::Reachable,
    path: &str,
    idp: Option<&str>,
) -> Trip {
    let first = browser.send(browser.get(&gateway.url(path))).await;
    assert_eq!(first.status, 302, "{path} needs a login: {}", first.body);
    assert_eq!(first.location(), Some("/.guichet/login"));
    let login_url = match idp {
        Some(idp) => gateway.url(&format!("/.guichet/login?idp={idp}")),
        None => gateway.url("/.guichet/login"),
    };
    let start = browser.send(browser.get(&login_url)).await;
    if start.status != 302 {
        return Trip {
            authorize: None,
            callback: None,
            page: start,
        };
    }
    let authorize = url::Url::parse(start.location().expect("location")).expect("absolute URL");
    let at_op = browser.send(browser.get(authorize.as_str())).await;
    // FranceConnect sends its errors back with 303 (fact sheet §1.8, §1.9).
    if at_op.status != 302 && at_op.status != 303 {
        return Trip {
            authorize: Some(authorize),
            callback: None,
            page: at_op,
        };
    }
    let callback = at_op.location().expect("redirect back").to_owned();
    let page = browser.send(browser.get(&callback)).await;
    Trip {
        authorize: Some(authorize),
        callback: Some(callback),
        page,
    }
}

/// The claims FranceConnect releases, each requested as a scope.
pub const FRANCECONNECT_CLAIMS: &[&str] = guichet_protocols::oidc::FRANCECONNECT_SCOPES;

/// The independent OpenID provider of the interop test (panva/node-oidc-provider), run with
/// Node.js from `tests/interop/oidc-provider` (its packages installed by `scripts/test.sh`).
pub struct NodeOidcProvider {
    pub issuer: String,
    child: std::process::Child,
}

impl NodeOidcProvider {
    pub const CLIENT_ID: &'static str = "guichet";
    pub const CLIENT_SECRET: &'static str = "interop secret: with reserved & chars";

    pub fn start(redirect_uri: &str, post_logout_redirect_uri: &str) -> NodeOidcProvider {
        Self::start_with(redirect_uri, post_logout_redirect_uri, &[])
    }

    /// With more environment variables for `server.mjs`: `ENC_ALG` (`ECDH-ES`, `RSA-OAEP` or
    /// `RSA-OAEP-256`) and `CLIENT_JWKS` (the client's public keys, a JWK Set in JSON) turn on
    /// its encryption mode, id_tokens and userinfo signed with ES256 then encrypted (A256GCM).
    pub fn start_with(
        redirect_uri: &str,
        post_logout_redirect_uri: &str,
        extra_env: &[(&str, String)],
    ) -> NodeOidcProvider {
        Self::start_on(
            crate::free_port(),
            redirect_uri,
            post_logout_redirect_uri,
            extra_env,
        )
    }

    /// The issuer of a provider listening on `port`, to configure the gateway before the
    /// provider starts (when the provider needs something of the gateway's, its JWKS).
    pub fn issuer_on(port: u16) -> String {
        format!("http://127.0.0.1:{port}")
    }

    /// [`NodeOidcProvider::start_with`] on a port chosen beforehand (see
    /// [`NodeOidcProvider::issuer_on`]).
    pub fn start_on(
        port: u16,
        redirect_uri: &str,
        post_logout_redirect_uri: &str,
        extra_env: &[(&str, String)],
    ) -> NodeOidcProvider {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/oidc-provider");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "oidc-provider is not installed: run scripts/test.sh (it runs npm ci in {})",
            dir.display()
        );
        let mut command = std::process::Command::new("node");
        command
            .arg("server.mjs")
            .current_dir(&dir)
            .env("PORT", port.to_string())
            .env("REDIRECT_URI", redirect_uri)
            .env("POST_LOGOUT_REDIRECT_URI", post_logout_redirect_uri)
            .env("CLIENT_SECRET", Self::CLIENT_SECRET);
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node runs");
        assert!(
            crate::wait_for_port(port, std::time::Duration::from_secs(20)),
            "oidc-provider did not listen"
        );
        NodeOidcProvider {
            issuer: Self::issuer_on(port),
            child,
        }
    }
}

impl Drop for NodeOidcProvider {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::signature::SignatureEncoding;

    /// OpenSSL's RS256 signatures are the `rsa` crate's, byte for byte, for every test key.
    #[test]
    fn openssl_signs_rs256_like_the_rsa_crate() {
        for (n, pem) in OP_RSA_KEYS.iter().enumerate() {
            let key = RsaPrivateKey::from_pkcs8_pem(pem).expect("test RSA key");
            for input in [
                &b""[..],
                b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0",
                &[0xff; 300],
            ] {
                let reference = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone())
                    .sign(input)
                    .to_vec();
                assert_eq!(rsa_sign(&key, input), reference, "key {n}");
            }
        }
    }
}
