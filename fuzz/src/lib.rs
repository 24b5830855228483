//! The bodies of Guichet's fuzz targets, as plain functions.
//!
//! Each `fuzz_targets/<name>.rs` is one line calling the function of the same name here, so the
//! same code runs under libFuzzer (`cargo +nightly fuzz run <name>`) and under a stable
//! `cargo test` that replays the committed corpus (`tests/replay.rs`). Every function calls the
//! production parsers (no copy of them) and panics when one of Guichet's invariants breaks: a
//! panic is what libFuzzer records as a crash. See docs/fuzzing.md.
//!
//! Inputs that are not UTF-8 stop early where the production code only ever sees text (HTTP
//! header values, form fields, configuration files).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use base64::Engine;
use guichet_gateway::config::{Config, IdentityHeadersConfig};
use guichet_gateway::cookies;
use guichet_gateway::headers::{self, Encoding, IdentityHeaders};
use guichet_gateway::identity::join_values;
use guichet_gateway::routing::{self, Router};
use guichet_gateway::session::SessionId;
use guichet_protocols::cas::{logout_request, response as cas_response};
use guichet_protocols::oidc::fuzzing::{parse_metadata, IdTokenCheck};
use guichet_protocols::oidc::jwe::{self, DecryptionKey, KeyAlg};
use guichet_protocols::oidc::{attributes, check_logout_claims, jws, ClientAuth, OidcSettings};
use guichet_protocols::oidc::{SigningAlg, UserinfoMode};
use guichet_protocols::saml::fuzzing::{self as saml_fuzzing, AcsCheck};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use openidconnect::core::CoreJsonWebKeySet;
use serde_json::{Map, Value};

pub mod fixtures;

/// A target's body: one input, a panic when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `fuzz_targets/` file and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("cas", cas),
    ("cookies", cookies),
    ("routing", routing),
    ("headers", headers),
    ("config", config),
    ("oidc", oidc),
    ("saml", saml),
];

/// CAS: `serviceValidate` / `p3/serviceValidate` answers (one parser for CAS 2.0 and 3.0) and
/// the server's single logout requests, back channel (the XML as posted) and front channel
/// (`base64(deflate(xml))` in the query).
pub fn cas(data: &[u8]) {
    if let Ok(Ok(success)) = cas_response::parse(data) {
        assert!(!success.user.is_empty(), "a CAS success names a user");
        assert_eq!(success.user.trim(), success.user, "the user is trimmed");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_cas_logout_request(text);
    if let Ok(xml) = logout_request::decode_front_channel(text) {
        assert!(xml.len() <= logout_request::MAX_LOGOUT_REQUEST_BYTES);
        check_cas_logout_request(&xml);
    }
}

fn check_cas_logout_request(xml: &str) {
    if let Ok(ticket) = logout_request::session_index(xml) {
        // The ticket becomes a session tag: never empty, never a control or space character.
        assert!(!ticket.is_empty() && ticket.len() <= 256);
        assert!(ticket.bytes().all(|b| b.is_ascii_graphic()), "{ticket:?}");
    }
}

/// The gateway's cookie names for the default `session.cookie_name` (state.rs derives them).
const OUR_COOKIES: [&str; 4] = [
    "guichet_session",
    "__Host-guichet_session",
    "guichet_session_login",
    "guichet_session_device",
];

/// Cookies and session ids: each input line is one `Cookie` header. The session id is read
/// from the cookie, and what is forwarded to the application carries none of our cookies.
pub fn cookies(data: &[u8]) {
    let mut request = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            request.append(COOKIE, value);
        }
    }
    for value in cookies::values(&request, OUR_COOKIES[0]) {
        check_session_id(value);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_session_id(text);
    }
    let ours = cookies::contains_any(&request, &OUR_COOKIES);
    if !ours {
        for name in OUR_COOKIES {
            assert_eq!(cookies::values(&request, name).count(), 0, "{name}");
        }
    }
    if let Some(rest) = cookies::without(&request, &OUR_COOKIES) {
        let value = HeaderValue::from_str(&rest).unwrap_or_else(|e| {
            panic!("the forwarded Cookie header {rest:?} is not a header value: {e}")
        });
        let mut forwarded = HeaderMap::new();
        forwarded.insert(COOKIE, value);
        assert!(
            !cookies::contains_any(&forwarded, &OUR_COOKIES),
            "our cookie forwarded in {rest:?}"
        );
        for name in OUR_COOKIES {
            assert_eq!(
                cookies::values(&forwarded, name).count(),
                0,
                "{name} in {rest:?}"
            );
        }
    }
}

fn check_session_id(text: &str) {
    if let Some(id) = SessionId::parse(text) {
        // Only the exact shape the gateway issues: 43 base64url characters, kept as received.
        assert_eq!(id.as_cookie_value(), text);
        assert_eq!(text.len(), 43);
        assert_eq!(id.storage_key().len(), 64);
    }
}

/// Request targets: the path the policy decides on, the one forwarded, and the app chosen.
pub fn routing(data: &[u8]) {
    if let Ok(target) = routing::parse_target(data) {
        // upstream_request_filter sends `origin_form` upstream: the client's own bytes for an
        // origin-form target, or a URI parsed from it for an absolute-form one. `http::Uri`
        // refuses some characters the gateway accepts (`<` for one): that request then fails,
        // closed. Whenever it parses, it is the origin form byte for byte and decides to the
        // very path the policy saw.
        if let Ok(uri) = target.origin_form.parse::<http::Uri>() {
            assert_eq!(
                uri.path_and_query().map(|p| p.as_str()),
                Some(target.origin_form.as_str())
            );
            assert_eq!(
                routing::normalize_path(uri.path()).as_deref(),
                Ok(target.decision_path.as_str()),
                "forwarded {:?}",
                target.origin_form
            );
        }
        if data.first() == Some(&b'/') {
            assert_eq!(
                target.origin_form.as_bytes(),
                data,
                "origin-form is forwarded as is"
            );
        }
        let path = &target.decision_path;
        assert!(path.starts_with('/'));
        assert!(!path.chars().any(|c| c.is_ascii_control()), "{path:?}");
        let _ = routing::ambiguous_for_windows(path);
        let app = router().route("app.example", path);
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        let expected = if under("/admin/users") {
            2
        } else if under("/admin") {
            1
        } else {
            0
        };
        assert_eq!(app, Some(expected), "{path:?}");
        assert_eq!(router().route("other.example", path), None);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = routing::normalize_path(text) {
        assert!(path.starts_with('/'));
    }
    if let Some(host) = routing::request_host(text) {
        assert!(!host.is_empty() && !host.ends_with('.'), "{host:?}");
        assert_eq!(host, host.to_ascii_lowercase());
    }
}

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let mut router = Router::default();
        router.add("app.example", "", 0);
        router.add("app.example", "/admin", 1);
        router.add("App.Example", "/admin/users", 2);
        router
    })
}

const ENCODINGS: [Encoding; 6] = [
    Encoding::Percent,
    Encoding::Utf8,
    Encoding::Latin1,
    Encoding::Ascii,
    Encoding::Base64,
    Encoding::Rfc2047,
];

/// Identity header values and names. A value, whatever the user or provider put in it, never
/// carries CR, LF or NUL (nor any other control byte) once encoded; a multi-valued one is
/// joined first, as the gateway joins it. An incoming header named like ours is scrubbed.
pub fn headers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for encoding in ENCODINGS {
        assert_no_control(&text, encoding);
    }
    // The first line is the separator (`,` in the default configuration), the others values.
    let mut lines = text.split('\n');
    let separator = lines.next().unwrap_or(",");
    let values: Vec<String> = lines.map(str::to_owned).collect();
    if let Some(joined) = join_values(&values, separator) {
        for encoding in ENCODINGS {
            assert_no_control(&joined, encoding);
        }
    }
    let plan = default_plan();
    let canonical = headers::canonical_name(&text);
    if canonical.starts_with("x-remote-") || canonical == "x-forwarded-for" {
        assert!(plan.must_strip(&text), "{text:?} is not scrubbed");
    }
}

fn assert_no_control(value: &str, encoding: Encoding) {
    let encoded = headers::encode(value, encoding);
    assert!(
        !encoded
            .as_bytes()
            .iter()
            .any(|&b| b == b'\r' || b == b'\n' || b == 0 || b.is_ascii_control()),
        "{encoding:?} of {value:?} is {encoded:?}"
    );
}

fn default_plan() -> &'static IdentityHeaders {
    static PLAN: OnceLock<IdentityHeaders> = OnceLock::new();
    PLAN.get_or_init(|| {
        IdentityHeaders::from_config(&IdentityHeadersConfig::default())
            .unwrap_or_else(|e| panic!("the default identity headers are valid: {e}"))
    })
}

/// The configuration loader, from YAML text (what `guichet check` and every start read).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Secrets, users files and CA bundles may name files, which the loader reads: keep the
    // fuzzer off devices and kernel files that never end or block (`/dev/zero`, `/dev/stdin`).
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    if let Ok(config) = Config::from_yaml(text) {
        assert_eq!(config.apps.len(), config.file.apps.len());
    }
}

/// OpenID Connect and FranceConnect: id_tokens checked as `finish` checks them, signed JWTs
/// (userinfo, back-channel logout tokens), encrypted tokens (JWE, FranceConnect+), and JSON
/// documents from the provider (JWKS, discovery, claims).
pub fn oidc(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let f = oidc_fixture();
    let token = text.trim();
    check_jwt(token, f);
    if jwe::is_jwe(token) {
        if let Ok(inner) = jwe::decrypt_nested(token, &f.decryption_keys) {
            assert_eq!(inner.split('.').count(), 3, "a nested JWT is a JWS");
            check_jwt(&inner, f);
        }
    }
    if !token.starts_with('{') {
        return;
    }
    if let Ok(keys) = serde_json::from_str::<CoreJsonWebKeySet>(token) {
        for alg in ALL_ALGS {
            let _ = jws::select_key(&keys, None, &alg);
            let _ = jws::select_key(&keys, Some(fixtures::OIDC_RSA_KID), &alg);
        }
        let _ = jws::verify(fixtures::OIDC_SIGNED_TOKEN, &keys, &ALL_ALGS, None);
    }
    let _ = parse_metadata(token.as_bytes());
    if let Ok(claims) = serde_json::from_str::<Map<String, Value>>(token) {
        check_claims(&claims);
    }
}

const ALL_ALGS: [SigningAlg; 13] = [
    SigningAlg::HmacSha256,
    SigningAlg::HmacSha384,
    SigningAlg::HmacSha512,
    SigningAlg::RsaSsaPkcs1V15Sha256,
    SigningAlg::RsaSsaPkcs1V15Sha384,
    SigningAlg::RsaSsaPkcs1V15Sha512,
    SigningAlg::EcdsaP256Sha256,
    SigningAlg::EcdsaP384Sha384,
    SigningAlg::EcdsaP521Sha512,
    SigningAlg::RsaSsaPssSha256,
    SigningAlg::RsaSsaPssSha384,
    SigningAlg::RsaSsaPssSha512,
    SigningAlg::EdDsa,
];

fn check_jwt(token: &str, f: &OidcFixture) {
    let _ = jws::peek_header(token);
    if let Ok(verified) = jws::verify(
        token,
        &f.jwks,
        &ALL_ALGS,
        Some(fixtures::OIDC_CLIENT_SECRET),
    ) {
        check_claims(&verified.claims);
    }
    let _ = f
        .id_token
        .verify(token, fixtures::OIDC_NONCE, fixtures::OIDC_ACCESS_TOKEN);
}

fn check_claims(claims: &Map<String, Value>) {
    let _ = check_logout_claims(
        claims,
        fixtures::OIDC_ISSUER,
        fixtures::OIDC_CLIENT_ID,
        fixtures::NOW,
        60,
    );
    let everything = attributes(claims, &BTreeMap::new());
    for name in everything.keys() {
        assert!(
            !["iss", "aud", "nonce", "sid"].contains(&name.as_str()),
            "{name}"
        );
    }
    let mapping = BTreeMap::from([
        ("mail".to_owned(), "email".to_owned()),
        ("city".to_owned(), "address.locality".to_owned()),
    ]);
    let mapped = attributes(claims, &mapping);
    assert!(mapped.keys().all(|name| mapping.contains_key(name)));
}

/// The `oidc` target's id_token check alone (the replay test checks the recorded seeds with it).
pub fn oidc_id_token(token: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    oidc_fixture()
        .id_token
        .verify(token, fixtures::OIDC_NONCE, fixtures::OIDC_ACCESS_TOKEN)
}

/// The `oidc` target's decryption alone, with the fixture's keys.
pub fn oidc_decrypt(token: &str) -> Result<String, String> {
    jwe::decrypt_nested(token, &oidc_fixture().decryption_keys).map_err(|e| e.to_string())
}

struct OidcFixture {
    jwks: CoreJsonWebKeySet,
    decryption_keys: Vec<DecryptionKey>,
    id_token: IdTokenCheck,
}

fn oidc_fixture() -> &'static OidcFixture {
    static FIXTURE: OnceLock<OidcFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut settings = OidcSettings::new(
            "op",
            fixtures::OIDC_ISSUER,
            fixtures::OIDC_CLIENT_ID,
            ClientAuth::SecretBasic(fixtures::OIDC_CLIENT_SECRET.to_owned()),
        );
        settings.allowed_algs = vec![
            SigningAlg::RsaSsaPkcs1V15Sha256,
            SigningAlg::EcdsaP256Sha256,
            SigningAlg::HmacSha256,
        ];
        settings.userinfo = UserinfoMode::Skip;
        let key = |pem: &str, alg| {
            DecryptionKey::from_pem(pem, None, Some(alg), true)
                .unwrap_or_else(|e| panic!("fixture decryption key: {e}"))
        };
        OidcFixture {
            jwks: serde_json::from_str(fixtures::OIDC_JWKS)
                .unwrap_or_else(|e| panic!("fixture JWKS: {e}")),
            decryption_keys: vec![
                key(fixtures::OIDC_ENC_EC_KEY, KeyAlg::EcdhEs),
                key(fixtures::OIDC_ENC_RSA_KEY, KeyAlg::RsaOaep),
                key(fixtures::OIDC_ENC_RSA_KEY, KeyAlg::RsaOaep256),
            ],
            id_token: IdTokenCheck::new(
                settings,
                fixtures::OIDC_DISCOVERY.as_bytes(),
                fixtures::OIDC_JWKS.as_bytes(),
                fixtures::OIDC_REDIRECT,
            )
            .unwrap_or_else(|e| panic!("fixture provider: {e}")),
        }
    })
}

/// SAML: the strict pre-scan (`xml_guard`) and the assertion consumer service's whole check of
/// a `SAMLResponse`, signatures included (xmlsec), against the fixture IdP at the instant its
/// recorded responses were made. An input starting with `<` is the XML itself, sent to the ACS
/// base64-encoded as the HTTP-POST binding does, so that mutations keep the XML structure;
/// anything else is the form value as posted (the base64 decoding is fuzzed then).
pub fn saml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let acs = acs_fixture();
    if text.trim_start().starts_with('<') {
        let _ = saml_fuzzing::xml_guard(text);
        let _ = saml_fuzzing::idp_metadata(text, fixtures::NOW);
        let _ = acs.verify(&base64::engine::general_purpose::STANDARD.encode(text));
    } else {
        if let Some(xml) = saml_fuzzing::decode_form_value(text) {
            if let Ok(xml) = std::str::from_utf8(&xml) {
                let _ = saml_fuzzing::xml_guard(xml);
            }
        }
        let _ = acs.verify(text);
    }
}

fn acs_fixture() -> &'static AcsCheck {
    static FIXTURE: OnceLock<AcsCheck> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        AcsCheck::new(
            fixtures::SAML_IDP_METADATA,
            fixtures::SAML_SP_ENTITY_ID,
            fixtures::SAML_ACS_URL,
            None,
            fixtures::NOW,
            Some(fixtures::SAML_SP_KEY),
        )
        .unwrap_or_else(|e| panic!("fixture IdP: {e}"))
    })
}
