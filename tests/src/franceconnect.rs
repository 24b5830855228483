//! A strict FranceConnect v2 mock: [`MockOp`] in a mode ([`MockOp::franceconnect`]) where every
//! endpoint follows the rules of the real platform (FranceConnect "low", eIDAS 1, the
//! `core-fcp-low` instance of github.com/france-connect/sources) and refuses what it refuses,
//! the way it refuses it: an HTML error page (no way back to the service) or a redirect to the
//! service with an `error`.
//!
//! Each rule cites its section of the fact sheet of issue #10 ("FranceConnect as the real
//! platform behaves"), written from the platform's code at `fbf65bf8` (`§1.2` and so on). Rules
//! marked *oidc-provider* are behaviour of the `oidc-provider` library FranceConnect runs on
//! (fact sheet §2), not written in the fact sheet itself.
//!
//! What stays from the generic provider: its keys, JWKS and signing code, the records of what it
//! received (`authorize_requests`, `token_requests`, `end_session_requests`, `id_tokens`,
//! `userinfo_fetches`), and these misbehaviour switches of [`crate::oidc::Behaviour`], for tests
//! of what Guichet refuses: `alg` and `userinfo_alg` (ES256 by default; HS256 is the platform's
//! default for a client that chose nothing, §2.2), `signed_userinfo` (always on at the real
//! platform, §2.3), `corrupt_signature`, `corrupt_userinfo_signature`, `signing_key`,
//! `omit_kid`, `id_token_claims`, `userinfo_claims`, `discovery_issuer`, `authorize_error`,
//! `token_delay`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use wiremock::{Request, ResponseTemplate};

use crate::oidc::{self, Alg, MockOp, OpState, CLIENT_ID, CLIENT_SECRET};

/// The entity id of the default client (§4: at least 32 characters).
pub const ENTITY_ID: &str = "guichet-test-entity-0123456789abcdef";

/// `/authorize` parameters that must be present (§1.1, `AuthorizeParamsDto`).
pub const AUTHORIZE_REQUIRED: [&str; 7] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "acr_values",
    "state",
    "nonce",
];
/// `/authorize` parameters that may be present (§1.1). Nothing else may (§1.2).
pub const AUTHORIZE_OPTIONAL: [&str; 4] = ["prompt", "claims", "idp_hint", "ui_locales"];
/// `/session/end` parameters (§5, `LogoutParamsDto`); nothing else may be sent.
const LOGOUT_PARAMS: [&str; 6] = [
    "id_token_hint",
    "post_logout_redirect_uri",
    "state",
    "client_id",
    "logout_hint",
    "ui_locales",
];

/// The eIDAS levels the platform knows, lowest first (§1.6, `knownAcrValues`).
const KNOWN_ACRS: [&str; 3] = ["eidas1", "eidas2", "eidas3"];

/// The identity scopes of FranceConnect (low) and the claims each releases (§3.1).
pub const SCOPES: [(&str, &[&str]); 15] = [
    ("openid", &["sub"]),
    ("given_name", &["given_name", "given_name_array"]),
    ("family_name", &["family_name"]),
    ("birthdate", &["birthdate"]),
    ("gender", &["gender"]),
    ("birthplace", &["birthplace"]),
    ("birthcountry", &["birthcountry"]),
    ("email", &["email"]),
    ("preferred_username", &["preferred_username"]),
    ("idp_birthdate", &["idp_birthdate"]),
    ("amr", &["amr"]),
    ("idp_id", &["idp_id"]),
    (
        "profile",
        &[
            "given_name",
            "given_name_array",
            "family_name",
            "birthdate",
            "gender",
            "preferred_username",
        ],
    ),
    ("birth", &["birthplace", "birthcountry"]),
    (
        "identite_pivot",
        &[
            "given_name",
            "given_name_array",
            "family_name",
            "birthdate",
            "gender",
            "birthplace",
            "birthcountry",
        ],
    ),
];

/// The claims a scope releases (§3.1); nothing for a scope the platform does not know.
pub fn scope_claims(scope: &str) -> &'static [&'static str] {
    SCOPES
        .iter()
        .find(|(name, _)| *name == scope)
        .map(|(_, claims)| *claims)
        .unwrap_or(&[])
}

/// The scopes a client may ask for unless a test says otherwise: `openid`, the six
/// identity-pivot claims, `email`, `preferred_username` and the grouped scopes (§3.1, §3.3).
pub const DEFAULT_CLIENT_SCOPES: [&str; 12] = [
    "openid",
    "given_name",
    "family_name",
    "birthdate",
    "gender",
    "birthplace",
    "birthcountry",
    "email",
    "preferred_username",
    "profile",
    "birth",
    "identite_pivot",
];

/// How a client authenticates at /token (§2.1: `client_secret_post` or `private_key_jwt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenAuth {
    SecretPost,
    /// Signed with [`crate::oidc::CLIENT_KEY_PEM`].
    PrivateKeyJwt,
}

/// A service provider (FS) registered at the platform.
#[derive(Clone, Debug)]
pub struct Client {
    pub secret: String,
    /// Subjects are pairwise per entity id, not per client_id (§4).
    pub entity_id: String,
    /// Exact matches only (§1.9: anything else is the Y04C013C page).
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// The scopes it may request (§3.3).
    pub scopes: BTreeSet<String>,
    /// Whether `amr` is in its configured claims (§1.7).
    pub amr: bool,
    pub auth: TokenAuth,
    /// FranceConnect+ (§2.2): the key management algorithm the service chose in the partner
    /// space (`ECDH-ES`, `RSA-OAEP` or `RSA-OAEP-256`; content always `A256GCM`), and the keys
    /// fetched from the JWKS URL it registered ([`MockOp::register_gateway_jwks`]).
    pub encryption_alg: String,
    pub jwks: Option<Value>,
}

impl Client {
    pub fn new(secret: &str, entity_id: &str) -> Client {
        Client {
            secret: secret.into(),
            entity_id: entity_id.into(),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            scopes: DEFAULT_CLIENT_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            amr: false,
            auth: TokenAuth::SecretPost,
            encryption_alg: "ECDH-ES".into(),
            jwks: None,
        }
    }
}

/// How the FranceConnect+ mock seals what it sends, when a test makes it misbehave.
#[derive(Clone, Debug, Default)]
pub enum Sealing {
    /// As the platform does: to the client's registered key, its algorithm, A256GCM.
    #[default]
    Registered,
    /// Not encrypted at all (a downgrade).
    Plain,
    /// To this public JWK instead (a key the service does not hold).
    ForeignKey(Value),
    /// With this content encryption instead of A256GCM.
    Enc(String),
    /// With this key management algorithm instead (to the client's key).
    Alg(String),
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    nonce: String,
    acr: String,
    scopes: Vec<String>,
    amr: bool,
    issued_at: i64,
}

struct Access {
    client_id: String,
    scopes: Vec<String>,
    expires_at: i64,
}

/// The platform: its registered clients, its rules' settings and what it issued.
pub struct Platform {
    /// By client_id; [`CLIENT_ID`] is registered (with [`CLIENT_SECRET`] and [`ENTITY_ID`]),
    /// without redirect URIs: see [`MockOp::register_gateway`].
    pub clients: BTreeMap<String, Client>,
    /// The levels this platform serves (§1.6: `eidas1` for FranceConnect v2).
    pub acr_values: Vec<String>,
    /// The level used when none of the requested ones is known (§1.6).
    pub default_acr: String,
    /// The `idp_hint` values allowed (§1.8); none by default.
    pub idp_hints: Vec<String>,
    /// Lifetimes in seconds (§2.4): code 30, access token 60, id_token 60.
    pub code_ttl: i64,
    pub access_token_ttl: i64,
    pub id_token_ttl: i64,
    /// Seconds added to the platform's clock, for expiry tests that do not wait.
    pub clock_offset: i64,
    /// The methods the id_token's `amr` lists when asked for (§1.7: "fc pwd").
    pub amr: Vec<String>,
    /// The platform's secret in the `sub` computation (§4).
    pub sub_secret: String,
    /// Why each refused request was refused, in order (the pages themselves only say the code).
    pub refusals: Vec<String>,
    /// FranceConnect+ (§2.2): id_tokens and userinfo encrypted to the client's keys.
    pub plus: bool,
    /// How id_tokens are sealed (FranceConnect+ only).
    pub id_token_sealing: Sealing,
    /// How userinfo responses are sealed (FranceConnect+ only).
    pub userinfo_sealing: Sealing,
    /// The protected header of every JWE sent, in order (id_tokens and userinfo).
    pub sealed_headers: Vec<Value>,
    grants: HashMap<String, Grant>,
    /// Codes already exchanged, with the access tokens they gave (*oidc-provider*: revoked when
    /// the code comes back).
    consumed: HashMap<String, Vec<String>>,
    access_tokens: HashMap<String, Access>,
    /// Every id_token issued, and the client it was for (logout's `id_token_hint`, §5).
    issued_id_tokens: HashMap<String, String>,
}

impl Default for Platform {
    fn default() -> Self {
        Self::new()
    }
}

impl Platform {
    pub fn new() -> Platform {
        let mut clients = BTreeMap::new();
        clients.insert(CLIENT_ID.to_owned(), Client::new(CLIENT_SECRET, ENTITY_ID));
        Platform {
            clients,
            acr_values: vec!["eidas1".into()],
            default_acr: "eidas1".into(),
            idp_hints: Vec::new(),
            code_ttl: 30,
            access_token_ttl: 60,
            id_token_ttl: 60,
            clock_offset: 0,
            amr: vec!["fc".into(), "pwd".into()],
            sub_secret: "mock-sub-secret".into(),
            refusals: Vec::new(),
            plus: false,
            id_token_sealing: Sealing::Registered,
            userinfo_sealing: Sealing::Registered,
            sealed_headers: Vec::new(),
            grants: HashMap::new(),
            consumed: HashMap::new(),
            access_tokens: HashMap::new(),
            issued_id_tokens: HashMap::new(),
        }
    }

    /// The platform's clock (Unix seconds).
    pub fn now(&self) -> i64 {
        oidc::now() + self.clock_offset
    }

    pub fn client_mut(&mut self, client_id: &str) -> &mut Client {
        self.clients
            .get_mut(client_id)
            .unwrap_or_else(|| panic!("no client {client_id}"))
    }

    /// The `sub` this platform gives `identity` at the service `client_id` (§4:
    /// `sha256(entityId + identityHash + secret)` in hex, then `v1`; `identityHash` is the
    /// base64 sha256 of the pivot identity, the birthplace only for people born in France).
    pub fn sub(&self, client_id: &str, identity: &Map<String, Value>) -> String {
        let field = |name: &str| identity.get(name).and_then(Value::as_str).unwrap_or("");
        let mut pivot = String::new();
        for name in ["given_name", "family_name", "birthdate", "gender"] {
            pivot.push_str(field(name));
        }
        if field("birthcountry") == "99100" {
            pivot.push_str(field("birthplace"));
        }
        pivot.push_str(field("birthcountry"));
        let identity_hash = STANDARD.encode(Sha256::digest(pivot.as_bytes()));
        let entity_id = &self.clients[client_id].entity_id;
        let digest = Sha256::digest(format!("{entity_id}{identity_hash}{}", self.sub_secret));
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{hex}v1")
    }

    fn refuse(&mut self, why: impl Into<String>) {
        self.refusals.push(why.into());
    }

    /// Keeps the protected header of a JWE it sends (a JWS passes unrecorded).
    fn record_sealed(&mut self, token: String) -> String {
        if token.split('.').count() == 5 {
            let header = token
                .split('.')
                .next()
                .and_then(|h| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(h)
                        .ok()
                })
                .and_then(|h| serde_json::from_slice(&h).ok())
                .unwrap_or(Value::Null);
            self.sealed_headers.push(header);
        }
        token
    }
}

impl MockOp {
    /// A strict FranceConnect v2 platform: issuer `http://127.0.0.1:PORT/api/v2` (§6), ES256
    /// tokens, signed userinfo, an RNIPP-shaped identity (§7), the rules of this module.
    pub async fn franceconnect() -> MockOp {
        let op = MockOp::start_at("/api/v2").await;
        {
            let mut state = op.state();
            state.franceconnect = Some(Platform::new());
            // ES256 is the recommended algorithm (§2.2); userinfo is always a JWT (§2.3).
            state.behaviour.alg = Alg::Es256;
            state.behaviour.signed_userinfo = true;
            // The RNIPP identity (§7.1): given names space-separated with their list (§7.6),
            // birth name in capitals, INSEE codes (§7.3, §7.4).
            let mut identity = Map::new();
            for (name, value) in [
                ("given_name", json!("Grégory Gaëtan")),
                ("given_name_array", json!(["Grégory", "Gaëtan"])),
                ("family_name", json!("FRANÇOISE")),
                ("preferred_username", json!("MARTIN")),
                ("birthdate", json!("1980-06-01")),
                ("idp_birthdate", json!("1980-06-00")),
                ("gender", json!("male")),
                ("birthplace", json!("2A004")),
                ("birthcountry", json!("99100")),
                ("email", json!("gregory.francoise@example.org")),
                ("idp_id", json!("fip1-low")),
            ] {
                identity.insert(name.into(), value);
            }
            state.user_claims = identity;
        }
        op
    }

    /// A strict FranceConnect+ platform (the `core-fcp-high` instance, §1.6, §2.2): eidas2 and
    /// eidas3 (eidas3 by default), ES256 only, id_tokens and userinfo encrypted to the keys the
    /// service registered, which [`MockOp::register_gateway_jwks`] fetches.
    pub async fn franceconnect_plus() -> MockOp {
        let op = MockOp::franceconnect().await;
        op.fc(|fc| {
            fc.plus = true;
            fc.acr_values = vec!["eidas2".into(), "eidas3".into()];
            fc.default_acr = "eidas3".into();
            fc.amr = vec!["fc".into(), "pop".into(), "mfa".into(), "pin".into()];
        });
        op
    }

    /// Fetches the service's JWKS from `url`, as the partner space does with the URL an
    /// operator registers, and keeps it for [`CLIENT_ID`].
    pub async fn register_gateway_jwks(&self, url: &str) {
        self.register_client_jwks(CLIENT_ID, url).await;
    }

    /// [`MockOp::register_gateway_jwks`] for another registered client.
    pub async fn register_client_jwks(&self, client_id: &str, url: &str) {
        // Test hosts (`app.test`) resolve to loopback, like the tests' browsers do it.
        let parsed = url::Url::parse(url).expect("a JWKS URL");
        let mut http = reqwest::Client::builder();
        if let (Some(url::Host::Domain(host)), Some(port)) =
            (parsed.host(), parsed.port_or_known_default())
        {
            http = http.resolve(host, std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        }
        let response = http
            .build()
            .expect("an HTTP client")
            .get(url)
            .send()
            .await
            .expect("the gateway's JWKS answers");
        assert_eq!(response.status(), 200, "JWKS at {url}");
        let jwks: Value = response.json().await.expect("a JWKS");
        self.fc(|fc| fc.client_mut(client_id).jwks = Some(jwks));
    }

    /// The FranceConnect platform of a [`MockOp::franceconnect`], to change or read.
    pub fn fc<R>(&self, f: impl FnOnce(&mut Platform) -> R) -> R {
        let mut state = self.state();
        f(state
            .franceconnect
            .as_mut()
            .expect("a MockOp::franceconnect()"))
    }

    /// Registers a gateway's callback and signed-out URIs for [`CLIENT_ID`], as an operator does
    /// in the partner space: `origin` is `http://app.test:PORT`.
    pub fn register_gateway(&self, origin: &str, provider_id: &str) {
        self.fc(|fc| {
            let client = fc.client_mut(CLIENT_ID);
            client
                .redirect_uris
                .push(format!("{origin}/.guichet/callback/{provider_id}"));
            client
                .post_logout_redirect_uris
                .push(format!("{origin}/.guichet/logout/done"));
        });
    }

    /// The `sub` the platform gives its user at `client_id` (§4).
    pub fn fc_sub(&self, client_id: &str) -> String {
        let state = self.state();
        let fc = state.franceconnect.as_ref().expect("FranceConnect mode");
        fc.sub(client_id, &state.user_claims)
    }
}

/// A FranceConnect login went through: the platform refused nothing, and the gateway sent the
/// browser back to its page with a session.
pub fn assert_signed_in(op: &MockOp, trip: &oidc::Trip) {
    let refusals = op.fc(|fc| fc.refusals.clone());
    assert_eq!(
        trip.page.status, 302,
        "{}\nthe platform refused: {refusals:?}",
        trip.page.body
    );
    assert!(refusals.is_empty(), "the platform refused: {refusals:?}");
    assert!(trip
        .page
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("guichet_session=")));
}

/// A login refused by Guichet: the generic page with its correlation id, `reason` in the audit
/// log, no session.
pub fn assert_refused(log: &crate::logs::Scope, trip: &oidc::Trip, reason: &str) {
    assert_eq!(trip.page.status, 403, "{}", trip.page.body);
    let correlation_id = trip.page.headers["x-request-id"].to_str().unwrap();
    assert!(trip.page.body.contains(correlation_id), "the page shows it");
    let events = log.audit_of(&trip.page);
    assert!(
        events.iter().any(|e| e["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(reason))),
        "{reason}: {events:?}"
    );
    assert!(trip
        .page
        .set_cookies()
        .iter()
        .all(|c| !c.starts_with("guichet_session=")));
}

fn fc(state: &mut OpState) -> &mut Platform {
    state.franceconnect.as_mut().expect("FranceConnect mode")
}

/// The platform's HTML error page (§1.2): the user stays at FranceConnect, the service gets
/// nothing back. `code` is the `Y…` code shown to the user.
fn error_page(status: u16, code: Option<&str>, error: &str, description: &str) -> ResponseTemplate {
    let code = code
        .map(|c| format!("<p>Code erreur : <strong>{c}</strong></p>"))
        .unwrap_or_default();
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\"><title>Erreur - FranceConnect</title></head>\n<body><h1>Une erreur s'est produite</h1>{code}<p>{error} : {description}</p></body></html>\n"
    );
    ResponseTemplate::new(status).set_body_raw(page, "text/html; charset=utf-8")
}

/// What a refused /authorize gets.
enum Refusal {
    /// The HTML error page with this code, HTTP 400.
    Page {
        code: &'static str,
        error: &'static str,
        description: String,
    },
    /// A 303 back to the service's redirect_uri with `error`, `error_description` and `state`
    /// (§1.8, §1.9).
    Redirect {
        error: &'static str,
        description: String,
    },
}

/// §1.2: a parameter the DTO does not validate is `Y030007`, HTTP 400, no redirect.
fn y030007(why: String) -> (Refusal, String) {
    (
        Refusal::Page {
            code: "Y030007",
            error: "invalid_request",
            description: "invalid parameter".into(),
        },
        why,
    )
}

fn params(req: &Request) -> Vec<(String, String)> {
    if req.method.as_str() == "POST" {
        url::form_urlencoded::parse(&req.body)
            .into_owned()
            .collect()
    } else {
        req.url.query_pairs().into_owned().collect()
    }
}

/// §1.6 `pickAcr`: the lowest of the known values asked for, else the default.
fn pick_acr(acr_values: &str, default: &str) -> String {
    KNOWN_ACRS
        .iter()
        .find(|known| acr_values.split(' ').any(|v| v == **known))
        .map(|v| v.to_string())
        .unwrap_or_else(|| default.to_owned())
}

/// `value.split(/[ ]+/)` as class-transformer's `@Split` does it: runs of spaces separate,
/// a leading or trailing space makes an empty item.
fn split_spaces(value: &str) -> Vec<&str> {
    let mut items: Vec<&str> = value.split(' ').collect();
    let last = items.len() - 1;
    let mut index = 0;
    items.retain(|item| {
        let keep = !item.is_empty() || index == 0 || index == last;
        index += 1;
        keep
    });
    items
}

pub(crate) fn authorize(state: &mut OpState, req: &Request) -> ResponseTemplate {
    let pairs = params(req);
    // Recorded as a URL with every parameter in its query, whichever the method.
    let mut seen = req.url.clone();
    if req.method.as_str() == "POST" {
        seen.query_pairs_mut().extend_pairs(&pairs);
    }
    state.authorize_requests.push(seen);
    match check_authorize(state, &pairs) {
        Ok((redirect_uri, q)) => grant_code(state, redirect_uri, q),
        Err((refusal, why)) => {
            fc(state).refuse(why);
            match refusal {
                Refusal::Page {
                    code,
                    error,
                    description,
                } => error_page(400, Some(code), error, &description),
                Refusal::Redirect { error, description } => {
                    let q: HashMap<&str, &str> = pairs
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let mut back = url::Url::parse(q["redirect_uri"]).expect("checked");
                    {
                        let mut out = back.query_pairs_mut();
                        out.append_pair("error", error);
                        out.append_pair("error_description", &description);
                        if let Some(s) = q.get("state") {
                            out.append_pair("state", s);
                        }
                    }
                    ResponseTemplate::new(303).insert_header("location", back.as_str())
                }
            }
        }
    }
}

/// The checks of /authorize in the platform's order: its DTO first (§1.1–§1.5), then
/// oidc-provider (client, redirect_uri, response_type, scope: §1.9, §3.3), then its own
/// middlewares (acr §1.6, amr §1.7, idp_hint §1.8).
#[allow(clippy::type_complexity)]
fn check_authorize(
    state: &mut OpState,
    pairs: &[(String, String)],
) -> Result<(String, HashMap<String, String>), (Refusal, String)> {
    // §1.2: whitelist + forbidNonWhitelisted; a repeated parameter arrives as an array, which
    // `@IsString()` refuses (inferred from the DTO).
    let mut q: HashMap<String, String> = HashMap::new();
    for (name, value) in pairs {
        if !AUTHORIZE_REQUIRED.contains(&name.as_str())
            && !AUTHORIZE_OPTIONAL.contains(&name.as_str())
        {
            return Err(y030007(format!("{name} is not an allowed parameter")));
        }
        if q.insert(name.clone(), value.clone()).is_some() {
            return Err(y030007(format!("{name} is repeated")));
        }
    }
    // §1.1, §1.9: each required parameter missing is Y030007.
    for name in AUTHORIZE_REQUIRED {
        if !q.contains_key(name) {
            return Err(y030007(format!("{name} is missing")));
        }
    }
    // §1.1: client_id `@MinLength(1)`.
    if q["client_id"].is_empty() {
        return Err(y030007("client_id is empty".into()));
    }
    // §1.3: nonce `@MinLength(22)`, any characters.
    if q["nonce"].chars().count() < 22 {
        return Err(y030007(format!(
            "nonce has {} characters, fewer than 22",
            q["nonce"].chars().count()
        )));
    }
    // §1.9: a malformed redirect_uri (`example.com`) is Y030007.
    let redirect_ok = url::Url::parse(&q["redirect_uri"])
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !redirect_ok {
        return Err(y030007("redirect_uri is not a URL".into()));
    }
    // §1.1: acr_values `@Split(/[ ]+/, { maxLength: 64 })`.
    if split_spaces(&q["acr_values"]).len() > 64 {
        return Err(y030007("more than 64 acr_values".into()));
    }
    // §1.5: prompt is login, consent or both; empty, none, select_account are Y030007.
    if let Some(prompt) = q.get("prompt") {
        let items = split_spaces(prompt);
        if items.len() > 64 || !items.iter().all(|p| matches!(*p, "login" | "consent")) {
            return Err(y030007(format!("prompt {prompt:?} is not allowed")));
        }
    }

    let platform = fc(state);
    // §1.9: unknown client → Y04EA6EF page; unregistered redirect_uri → Y04C013C page.
    let Some(client) = platform.clients.get(&q["client_id"]).cloned() else {
        return Err((
            Refusal::Page {
                code: "Y04EA6EF",
                error: "invalid_client",
                description: "client is invalid".into(),
            },
            format!("unknown client_id {}", q["client_id"]),
        ));
    };
    if !client.redirect_uris.contains(&q["redirect_uri"]) {
        return Err((
            Refusal::Page {
                code: "Y04C013C",
                error: "invalid_redirect_uri",
                description:
                    "redirect_uri did not match any of the client's registered redirect_uris".into(),
            },
            format!("redirect_uri {} is not registered", q["redirect_uri"]),
        ));
    }
    // From here the service gets the error back (§1.9).
    let redirect = |error: &'static str, description: &str, why: String| {
        Err((
            Refusal::Redirect {
                error,
                description: description.to_owned(),
            },
            why,
        ))
    };
    // §1.9: response_type empty → invalid_request; anything but `code` → unsupported.
    match q["response_type"].as_str() {
        "code" => {}
        "" => {
            return redirect(
                "invalid_request",
                "missing required parameter 'response_type'",
                "response_type is empty".into(),
            )
        }
        other => {
            return redirect(
                "unsupported_response_type",
                "unsupported response_type requested",
                format!("response_type {other}"),
            )
        }
    }
    // §1.9: scope without openid → invalid_request.
    let scopes: Vec<&str> = q["scope"].split_whitespace().collect();
    if !scopes.contains(&"openid") {
        return redirect(
            "invalid_request",
            "openid scope must be requested when using the acr_values parameter",
            "no openid scope".into(),
        );
    }
    // §3.3: a scope outside the client's list → invalid_scope.
    if let Some(scope) = scopes.iter().find(|s| !client.scopes.contains(**s)) {
        return redirect(
            "invalid_scope",
            "requested scope is not allowed",
            format!("scope {scope} is not allowed for this client"),
        );
    }
    // §1.7: `claims` asking for amr: the Y100009 page unless the client has amr. A `claims`
    // that is not a JSON object is invalid_request (*oidc-provider*).
    if let Some(claims) = q.get("claims") {
        let Ok(Value::Object(claims)) = serde_json::from_str::<Value>(claims) else {
            return redirect(
                "invalid_request",
                "could not parse the claims parameter JSON",
                "claims is not a JSON object".into(),
            );
        };
        let wants_amr = claims.values().any(|section| section.get("amr").is_some());
        if wants_amr && !client.amr {
            return Err((
                Refusal::Page {
                    code: "Y100009",
                    error: "server_error",
                    description: "the service provider is not allowed the amr claim".into(),
                },
                "amr asked for by a client without amr".into(),
            ));
        }
    }
    // §1.6: the lowest known level asked for, the default when none is known; a level this
    // platform does not serve → invalid_acr.
    let acr = pick_acr(&q["acr_values"], &platform.default_acr);
    if !platform.acr_values.contains(&acr) {
        let expected = platform.acr_values.join(",");
        return redirect(
            "invalid_acr",
            &format!(
                "acr_value is not valid, should be equal one of these values, expected {expected}, got {acr}"
            ),
            format!("acr {acr} is not served"),
        );
    }
    // §1.8: an idp_hint not allowed → invalid_idp_hint.
    if let Some(hint) = q.get("idp_hint") {
        if !platform.idp_hints.contains(hint) {
            return redirect(
                "invalid_idp_hint",
                "An idp_hint was provided but is not allowed",
                format!("idp_hint {hint} is not allowed"),
            );
        }
    }
    Ok((q["redirect_uri"].clone(), q))
}

/// The user signs in at once; the code goes back to the service (302).
fn grant_code(
    state: &mut OpState,
    redirect_uri: String,
    q: HashMap<String, String>,
) -> ResponseTemplate {
    let mut back = url::Url::parse(&redirect_uri).expect("checked");
    if let Some(error) = state.behaviour.authorize_error.clone() {
        // The user gave up at FranceConnect or its identity provider.
        back.query_pairs_mut()
            .append_pair("error", &error)
            .append_pair("error_description", "L'usager a annulé la connexion")
            .append_pair("state", &q["state"]);
        return ResponseTemplate::new(303).insert_header("location", back.as_str());
    }
    state.counter += 1;
    let code = format!("fc-code-{}-{}", state.counter, rand::random::<u64>());
    let platform = fc(state);
    let amr_requested = q
        .get("claims")
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .is_some_and(|c| {
            c.as_object()
                .is_some_and(|o| o.values().any(|s| s.get("amr").is_some()))
        });
    let grant = Grant {
        client_id: q["client_id"].clone(),
        redirect_uri,
        nonce: q["nonce"].clone(),
        acr: pick_acr(&q["acr_values"], &platform.default_acr),
        scopes: dedup(q["scope"].split_whitespace()),
        amr: amr_requested,
        issued_at: platform.now(),
    };
    platform.grants.insert(code.clone(), grant);
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q["state"]);
    ResponseTemplate::new(302).insert_header("location", back.as_str())
}

fn dedup<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.iter().any(|o| o == item) {
            out.push(item.to_owned());
        }
    }
    out
}

/// A /token error (§2.1: `invalid_client` 401, `invalid_request`/`invalid_grant` 400).
struct TokenRefusal {
    status: u16,
    error: &'static str,
    description: &'static str,
}

impl TokenRefusal {
    fn new(status: u16, error: &'static str, description: &'static str) -> TokenRefusal {
        TokenRefusal {
            status,
            error,
            description,
        }
    }

    fn response(&self) -> ResponseTemplate {
        ResponseTemplate::new(self.status)
            .insert_header("cache-control", "no-store")
            .set_body_json(json!({ "error": self.error, "error_description": self.description }))
    }
}

pub(crate) fn token(state: &mut OpState, issuer: &str, req: &Request) -> ResponseTemplate {
    state.token_requests.push(req.clone());
    match check_token(state, issuer, req) {
        Ok(response) => response,
        Err((refusal, why)) => {
            fc(state).refuse(why);
            refusal.response()
        }
    }
}

fn check_token(
    state: &mut OpState,
    issuer: &str,
    req: &Request,
) -> Result<ResponseTemplate, (TokenRefusal, String)> {
    let form = oidc::form_map(&req.body);
    let token_endpoint = format!("{issuer}/token");
    let identity = state.user_claims.clone();
    let platform = fc(state);
    // §2.1: client_secret_basic is not enabled: credentials in an Authorization header are
    // refused, whatever they are.
    if req.headers.contains_key("authorization") {
        return Err((
            TokenRefusal::new(
                401,
                "invalid_client",
                "client authentication failed (the provided authentication mechanism does not match the registered client authentication method)",
            ),
            "Authorization header at /token (client_secret_basic)".into(),
        ));
    }
    // §2.1: client_secret_post (every client in practice) or private_key_jwt.
    let invalid_client = |why: String| {
        Err((
            TokenRefusal::new(401, "invalid_client", "client authentication failed"),
            why,
        ))
    };
    let assertion = form.get("client_assertion");
    let client_id = match (form.get("client_id"), assertion) {
        (Some(id), _) => id.clone(),
        (None, Some(jwt)) => jwt
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|c| c["iss"].as_str().map(str::to_owned))
            .unwrap_or_default(),
        (None, None) => return invalid_client("no client authentication".into()),
    };
    let Some(client) = platform.clients.get(&client_id).cloned() else {
        return invalid_client(format!("unknown client {client_id}"));
    };
    match (client.auth, assertion) {
        (TokenAuth::SecretPost, None) => {
            if form.get("client_secret") != Some(&client.secret) {
                return Err((
                    TokenRefusal::new(
                        401,
                        "invalid_client",
                        "client authentication failed (invalid secret provided)",
                    ),
                    "wrong client_secret".into(),
                ));
            }
        }
        (TokenAuth::PrivateKeyJwt, Some(jwt)) => {
            let type_ok = form.get("client_assertion_type").map(String::as_str)
                == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
            // §2.1: FranceConnect+ checks ES256 assertions only, with the key the service
            // published in its JWKS; FranceConnect (low) as the generic provider does.
            let signature_ok = if platform.plus {
                es256_assertion_ok(jwt, client.jwks.as_ref(), &token_endpoint, &client_id)
            } else {
                oidc::client_assertion_ok(jwt, &token_endpoint, &client_id)
            };
            if !type_ok || form.contains_key("client_secret") || !signature_ok {
                return invalid_client("bad client assertion".into());
            }
        }
        (auth, _) => {
            return invalid_client(format!(
                "client registered for {auth:?} used another method"
            ))
        }
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {}
        None => {
            return Err((
                TokenRefusal::new(
                    400,
                    "invalid_request",
                    "missing required parameter 'grant_type'",
                ),
                "no grant_type".into(),
            ))
        }
        Some(other) => {
            return Err((
                TokenRefusal::new(
                    400,
                    "unsupported_grant_type",
                    "unsupported grant_type requested",
                ),
                format!("grant_type {other}"),
            ))
        }
    }
    // §2.1: missing code → invalid_request; unknown or expired → invalid_grant.
    let Some(code) = form.get("code") else {
        return Err((
            TokenRefusal::new(400, "invalid_request", "missing required parameter 'code'"),
            "no code".into(),
        ));
    };
    let not_found = |why: String| {
        Err((
            TokenRefusal::new(
                400,
                "invalid_grant",
                "grant request is invalid (authorization code not found)",
            ),
            why,
        ))
    };
    // §2.4: single use. A code presented again also revokes what it gave (*oidc-provider*).
    if let Some(tokens) = platform.consumed.get(code) {
        for token in tokens.clone() {
            platform.access_tokens.remove(&token);
        }
        return Err((
            TokenRefusal::new(
                400,
                "invalid_grant",
                "grant request is invalid (authorization code already consumed)",
            ),
            "code reused".into(),
        ));
    }
    let Some(grant) = platform.grants.remove(code) else {
        return not_found("unknown code".into());
    };
    platform.consumed.insert(code.clone(), Vec::new());
    if grant.client_id != client_id {
        return not_found(format!(
            "code of {} presented by {client_id}",
            grant.client_id
        ));
    }
    // §2.4: a code lives 30 seconds.
    if platform.now() >= grant.issued_at + platform.code_ttl {
        return not_found("code expired".into());
    }
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return Err((
            TokenRefusal::new(
                400,
                "invalid_grant",
                "grant request is invalid (authorization code redirect_uri mismatch)",
            ),
            "redirect_uri differs from the authorization request's".into(),
        ));
    }
    // No code_challenge can reach the platform (§1.2), so a code_verifier fails the PKCE check
    // (*oidc-provider*: a verifier without a challenge).
    if form.contains_key("code_verifier") {
        return Err((
            TokenRefusal::new(
                400,
                "invalid_grant",
                "grant request is invalid (PKCE verification failed)",
            ),
            "code_verifier without a code_challenge".into(),
        ));
    }

    let now = platform.now();
    let access_token = format!("fc-at-{}", rand::random::<u128>());
    platform.access_tokens.insert(
        access_token.clone(),
        Access {
            client_id: client_id.clone(),
            scopes: grant.scopes.clone(),
            expires_at: now + platform.access_token_ttl,
        },
    );
    platform
        .consumed
        .insert(code.clone(), vec![access_token.clone()]);
    let id_token_ttl = platform.id_token_ttl;
    let amr = platform.amr.clone();
    let sub = platform.sub(&client_id, &identity);
    // §2.2: sub, acr, amr (when asked for), auth_time, nonce, aud, exp, iat, iss; no at_hash,
    // no sid.
    let mut claims = json!({
        "iss": issuer,
        "sub": sub,
        "aud": client_id,
        "exp": now + id_token_ttl,
        "iat": now,
        "auth_time": grant.issued_at,
        "nonce": grant.nonce,
        "acr": grant.acr,
    })
    .as_object()
    .cloned()
    .expect("object");
    if grant.amr {
        claims.insert("amr".into(), json!(amr));
    }
    let b = state.behaviour.clone();
    oidc::apply(&mut claims, &b.id_token_claims);
    let id_token = oidc::sign_keyed(state, &claims, b.alg, false, client.secret.as_bytes());
    state.id_tokens.push(id_token.clone());
    let platform = fc(state);
    // The signed token is what logout's id_token_hint carries back (RP-Initiated Logout §2).
    platform
        .issued_id_tokens
        .insert(id_token.clone(), client_id.clone());
    let id_token = if platform.plus {
        match seal(&client, &id_token, &platform.id_token_sealing) {
            Ok(sealed) => platform.record_sealed(sealed),
            Err(why) => {
                return Err((
                    TokenRefusal::new(500, "server_error", "could not encrypt the id_token"),
                    why,
                ))
            }
        }
    } else {
        id_token
    };
    // §2.1: exactly these five properties; no refresh_token.
    Ok(ResponseTemplate::new(200)
        .insert_header("cache-control", "no-store")
        .set_body_json(json!({
            "access_token": access_token,
            "expires_in": platform.access_token_ttl,
            "id_token": id_token,
            "scope": grant.scopes.join(" "),
            "token_type": "Bearer",
        })))
}

pub(crate) fn userinfo(state: &mut OpState, issuer: &str, req: &Request) -> ResponseTemplate {
    // Bearer header, or `access_token` in the query (§2.1 acceptQueryParamAccessTokens).
    let token = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or_else(|| crate::query_value(&req.url, "access_token"));
    let identity = state.user_claims.clone();
    let platform = fc(state);
    let now = platform.now();
    let access = token.as_ref().and_then(|t| platform.access_tokens.get(t));
    // §2.4: the access token lives 60 seconds.
    let Some(access) = access.filter(|a| now < a.expires_at) else {
        platform.refuse("userinfo without a live access token");
        return ResponseTemplate::new(401)
            .insert_header("www-authenticate", "Bearer error=\"invalid_token\"");
    };
    let (client_id, scopes) = (access.client_id.clone(), access.scopes.clone());
    let client = platform.clients[&client_id].clone();
    let amr = platform.amr.clone();
    let sub = platform.sub(&client_id, &identity);
    // §3.1: the claims of the granted scopes, groups expanded; §2.3: iss, aud, iat with them.
    let mut claims = Map::new();
    for scope in &scopes {
        for claim in scope_claims(scope) {
            let value = match *claim {
                "sub" => Some(json!(sub)),
                "amr" => Some(json!(amr)),
                name => identity.get(name).cloned(),
            };
            if let Some(value) = value {
                claims.insert(claim.to_string(), value);
            }
        }
    }
    claims.insert("sub".into(), json!(sub));
    claims.insert("iss".into(), json!(issuer));
    claims.insert("aud".into(), json!(client_id));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + 60));
    let b = state.behaviour.clone();
    oidc::apply(&mut claims, &b.userinfo_claims);
    if !b.signed_userinfo {
        // Not the platform: a test of what Guichet does with unsigned userinfo.
        return ResponseTemplate::new(200).set_body_json(Value::Object(claims));
    }
    // §2.3: `application/jwt`, signed with the client's algorithm.
    let jwt = oidc::sign_keyed(
        state,
        &claims,
        b.userinfo_alg.unwrap_or(b.alg),
        b.corrupt_userinfo_signature,
        client.secret.as_bytes(),
    );
    let platform = fc(state);
    // §2.2: on FranceConnect+, a JWE around the JWS.
    let jwt = if platform.plus {
        match seal(&client, &jwt, &platform.userinfo_sealing) {
            Ok(sealed) => platform.record_sealed(sealed),
            Err(why) => {
                platform.refuse(why);
                return ResponseTemplate::new(500);
            }
        }
    } else {
        jwt
    };
    ResponseTemplate::new(200).set_body_raw(jwt, "application/jwt")
}

pub(crate) fn end_session(state: &mut OpState, req: &Request) -> ResponseTemplate {
    let platform = fc(state);
    match check_end_session(platform, req) {
        Ok(response) => response,
        Err((why, description)) => {
            platform.refuse(why);
            // §5: the exact code of this page is not known; HTTP 400 and no redirect are.
            error_page(400, None, "invalid_request", &description)
        }
    }
}

fn check_end_session(
    platform: &Platform,
    req: &Request,
) -> Result<ResponseTemplate, (String, String)> {
    let mut q: HashMap<String, String> = HashMap::new();
    for (name, value) in req.url.query_pairs().into_owned() {
        // §5: whitelist + forbidNonWhitelisted.
        if !LOGOUT_PARAMS.contains(&name.as_str()) {
            return Err((
                format!("{name} is not an allowed logout parameter"),
                format!("property {name} should not exist"),
            ));
        }
        if q.insert(name.clone(), value).is_some() {
            return Err((format!("{name} is repeated"), "Bad Request".into()));
        }
    }
    // §5: id_token_hint is required (`@IsNotEmpty() @IsString()`).
    let Some(hint) = q.get("id_token_hint").filter(|h| !h.is_empty()) else {
        return Err((
            "logout without id_token_hint".into(),
            "id_token_hint should not be empty".into(),
        ));
    };
    // *oidc-provider*: the hint must be one of this platform's id_tokens, for the client named
    // if any. Its expiry is not checked: FranceConnect's id_tokens live 60 seconds (§2.4), so
    // every real logout sends an expired one.
    let Some(client_id) = platform.issued_id_tokens.get(hint) else {
        return Err((
            "id_token_hint is not an id_token of this platform".into(),
            "could not validate id_token_hint".into(),
        ));
    };
    if q.get("client_id").is_some_and(|c| c != client_id) {
        return Err((
            "client_id is not the id_token_hint's audience".into(),
            "client_id does not match the provided id_token_hint".into(),
        ));
    }
    let Some(target) = q.get("post_logout_redirect_uri") else {
        // §5 step 4: without a post_logout_redirect_uri the user stays on this page.
        return Ok(ResponseTemplate::new(200).set_body_raw(
            "<!DOCTYPE html>\n<html lang=\"fr\"><body><p>Vous êtes bien déconnecté, vous pouvez fermer votre navigateur.</p></body></html>\n",
            "text/html; charset=utf-8",
        ));
    };
    // §5: it must be one the client registered.
    if !platform.clients[client_id]
        .post_logout_redirect_uris
        .contains(target)
    {
        return Err((
            format!("post_logout_redirect_uri {target} is not registered"),
            "post_logout_redirect_uri not registered".into(),
        ));
    }
    // §5 steps 1–3 (the auto-submitted form, the identity provider's logout) in one hop: back
    // to the service with the state.
    let mut back = url::Url::parse(target).expect("a registered URL");
    if let Some(s) = q.get("state") {
        back.query_pairs_mut().append_pair("state", s);
    }
    Ok(ResponseTemplate::new(302).insert_header("location", back.as_str()))
}

pub(crate) fn discovery(state: &OpState, issuer: &str) -> ResponseTemplate {
    let platform = state.franceconnect.as_ref().expect("FranceConnect mode");
    let scopes: Vec<&str> = SCOPES.iter().map(|(s, _)| *s).collect();
    let mut claims: Vec<&str> = SCOPES.iter().flat_map(|(_, c)| c.iter().copied()).collect();
    claims.push("acr");
    claims.sort_unstable();
    claims.dedup();
    let (signing, encryption_algs, encryption_encs) = if platform.plus {
        (
            json!(["ES256"]),
            json!(["ECDH-ES", "RSA-OAEP", "RSA-OAEP-256"]),
            json!(["A256GCM"]),
        )
    } else {
        (json!(["HS256", "ES256", "RS256"]), Value::Null, Value::Null)
    };
    let mut document = json!({
        "issuer": state.behaviour.discovery_issuer.clone().unwrap_or_else(|| issuer.to_owned()),
        // §6: every endpoint under /api/v2.
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/session/end"),
        // §2.1
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
        // §4
        "subject_types_supported": ["pairwise"],
        // §1.6
        "acr_values_supported": platform.acr_values,
        // §3.1, §1.7
        "scopes_supported": scopes,
        "claims_supported": claims,
        "claims_parameter_supported": true,
        // §2.2: HS256 is still advertised on FranceConnect (low); FranceConnect+ signs with
        // ES256 only and encrypts.
        "id_token_signing_alg_values_supported": signing,
        "userinfo_signing_alg_values_supported": signing,
        "id_token_encryption_alg_values_supported": encryption_algs,
        "id_token_encryption_enc_values_supported": encryption_encs,
        "userinfo_encryption_alg_values_supported": encryption_algs,
        "userinfo_encryption_enc_values_supported": encryption_encs,
        // §1.2, the trap: the library advertises PKCE and request objects, which /authorize
        // refuses all the same.
        "code_challenge_methods_supported": ["S256"],
        "request_parameter_supported": true,
        "request_uri_parameter_supported": true,
        // §5: no back-channel logout.
    });
    if let Some(map) = document.as_object_mut() {
        map.retain(|_, value| !value.is_null());
    }
    ResponseTemplate::new(200).set_body_json(document)
}

/// §2.2: FranceConnect+ wraps a signed token in a JWE (`cty` JWT, A256GCM) to the first key of
/// the client's JWKS for its algorithm (*oidc-provider*'s choice), encrypted with josekit.
#[allow(deprecated)] // RSA1_5, only to show it is refused
fn seal(client: &Client, jws: &str, sealing: &Sealing) -> Result<String, String> {
    use josekit::jwe::{JweHeader, ECDH_ES, RSA1_5, RSA_OAEP, RSA_OAEP_256};
    use josekit::jwk::Jwk;
    let (mut alg, mut enc) = (client.encryption_alg.clone(), "A256GCM".to_owned());
    let key: Value = match sealing {
        Sealing::Plain => return Ok(jws.to_owned()),
        Sealing::ForeignKey(jwk) => jwk.clone(),
        other => {
            match other {
                Sealing::Enc(e) => enc = e.clone(),
                Sealing::Alg(a) => alg = a.clone(),
                _ => {}
            }
            let jwks = client
                .jwks
                .as_ref()
                .ok_or("the client registered no JWKS")?;
            jwks["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|k| k["use"] == "enc" && k["alg"] == client.encryption_alg.as_str())
                .cloned()
                .ok_or_else(|| format!("no {} key in the client's JWKS", client.encryption_alg))?
        }
    };
    let mut jwk = Jwk::from_bytes(key.to_string().as_bytes()).map_err(|e| e.to_string())?;
    jwk.set_algorithm(&alg);
    let mut header = JweHeader::new();
    header.set_content_encryption(&enc);
    header.set_content_type("JWT");
    if let Some(kid) = key["kid"].as_str() {
        header.set_key_id(kid);
    }
    let payload = jws.as_bytes();
    #[allow(deprecated)]
    let sealed = match alg.as_str() {
        "ECDH-ES" => josekit::jwe::serialize_compact(
            payload,
            &header,
            &ECDH_ES
                .encrypter_from_jwk(&jwk)
                .map_err(|e| e.to_string())?,
        ),
        "RSA-OAEP" => josekit::jwe::serialize_compact(
            payload,
            &header,
            &RSA_OAEP
                .encrypter_from_jwk(&jwk)
                .map_err(|e| e.to_string())?,
        ),
        "RSA-OAEP-256" => josekit::jwe::serialize_compact(
            payload,
            &header,
            &RSA_OAEP_256
                .encrypter_from_jwk(&jwk)
                .map_err(|e| e.to_string())?,
        ),
        "RSA1_5" => josekit::jwe::serialize_compact(
            payload,
            &header,
            &RSA1_5.encrypter_from_jwk(&jwk).map_err(|e| e.to_string())?,
        ),
        other => return Err(format!("the mock cannot encrypt with {other}")),
    };
    sealed.map_err(|e| e.to_string())
}

/// An ES256 client assertion (RFC 7523) checked against the `sig` keys of the client's JWKS:
/// signature, `iss` = `sub` = client, `aud` = token endpoint, not expired.
fn es256_assertion_ok(
    jwt: &str,
    jwks: Option<&Value>,
    token_endpoint: &str,
    client_id: &str,
) -> bool {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use p256::ecdsa::signature::Verifier;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return false;
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
    let Some(header) = decode(header).and_then(|h| serde_json::from_slice::<Value>(&h).ok()) else {
        return false;
    };
    if header["alg"] != "ES256" {
        return false;
    }
    let Some(signature) =
        decode(signature).and_then(|s| p256::ecdsa::Signature::from_slice(&s).ok())
    else {
        return false;
    };
    let message = format!("{}.{payload}", parts[0]);
    let verified = jwks
        .and_then(|jwks| jwks["keys"].as_array())
        .into_iter()
        .flatten()
        .filter(|k| k["use"] == "sig" && k["kty"] == "EC")
        // p256 reads only the key members.
        .map(|k| json!({"kty": "EC", "crv": "P-256", "x": k["x"], "y": k["y"]}))
        .filter_map(|k| p256::PublicKey::from_jwk_str(&k.to_string()).ok())
        .any(|key| {
            p256::ecdsa::VerifyingKey::from(&key)
                .verify(message.as_bytes(), &signature)
                .is_ok()
        });
    let Some(claims) = decode(payload).and_then(|p| serde_json::from_slice::<Value>(&p).ok())
    else {
        return false;
    };
    verified
        && claims["iss"] == client_id
        && claims["sub"] == client_id
        && claims["aud"] == token_endpoint
        && claims["exp"].as_i64().is_some_and(|exp| exp > oidc::now())
}
