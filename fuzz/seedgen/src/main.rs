//! Writes `fuzz/fixtures/` and the recorded seeds of `fuzz/corpus/saml` and `fuzz/corpus/oidc`:
//! SAML responses by the test kit's mock IdP (signed with xmlsec, encrypted with OpenSSL, and
//! the signature-wrapping attacks it makes), JWTs and JWEs by josekit, an implementation
//! Guichet shares no code with. Keys are made afresh on each run, so the fixtures and those
//! seeds are only ever replaced together. The other targets' seeds are written by hand.

use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{TimeZone, Utc};
use guichet_tests::saml_idp::{
    status, Attack, EncryptFor, ResponseSpec, SamlIdp, SignatureAlgorithm, Signing, TestKey,
};
use josekit::jwe::{JweHeader, ECDH_ES, RSA_OAEP, RSA_OAEP_256};
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jwk::KeyPair;
use josekit::jws::{JwsHeader, ES256, HS256, RS256};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

// The same values as fuzz/src/fixtures.rs.
const NOW: i64 = 1_893_456_000;
const SP_ENTITY_ID: &str = "https://guichet.example.org/saml";
const ACS_URL: &str = "https://app.example.org/.guichet/callback/idp";
const ISSUER: &str = "https://op.example.org";
const CLIENT_ID: &str = "guichet";
const CLIENT_SECRET: &str = "fuzz-client-secret-0123456789abcdef";
const NONCE: &str = "fuzz-nonce";
const ACCESS_TOKEN: &str = "fuzz-access-token";

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn write(path: &str, contents: impl AsRef<[u8]>) {
    let path = fuzz_dir().join(path);
    fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    fs::write(&path, contents).expect("write");
    println!("wrote {}", path.display());
}

#[tokio::main]
async fn main() {
    saml().await;
    oidc();
}

async fn saml() {
    let idp = SamlIdp::start().await;
    // Without its validUntil (a week from now): the fixture is read at NOW, years from now.
    let metadata = strip_valid_until(&idp.metadata_xml());
    write("fixtures/saml-idp-metadata.xml", &metadata);
    let sp = TestKey::sp();
    write("fixtures/saml-sp-key.pem", sp.private_key_pem());

    let base = ResponseSpec {
        now: Some(Utc.timestamp_opt(NOW, 0).single().expect("a time")),
        response_id: Some("_fuzz-response".into()),
        assertion_id: Some("_fuzz-assertion".into()),
        session_index: Some("_fuzz-session".into()),
        ..ResponseSpec::for_sp(ACS_URL, SP_ENTITY_ID)
    };
    let variants: Vec<(&str, ResponseSpec)> = vec![
        ("signed-both", base.clone()),
        (
            "signed-response",
            ResponseSpec {
                sign: Signing::Response,
                ..base.clone()
            },
        ),
        (
            "signed-assertion",
            ResponseSpec {
                sign: Signing::Assertion,
                ..base.clone()
            },
        ),
        (
            "unsigned",
            ResponseSpec {
                sign: Signing::None,
                ..base.clone()
            },
        ),
        (
            "encrypted",
            ResponseSpec {
                encrypt_for: Some(EncryptFor::new(&sp.cert_pem())),
                ..base.clone()
            },
        ),
        (
            "rsa-sha1",
            ResponseSpec {
                signature_algorithm: SignatureAlgorithm::RsaSha1,
                ..base.clone()
            },
        ),
        (
            "status-authn-failed",
            ResponseSpec {
                status: status::RESPONDER.into(),
                status_sub_code: Some(status::AUTHN_FAILED.into()),
                status_message: Some("wrong password".into()),
                ..base.clone()
            },
        ),
        (
            "no-audience",
            ResponseSpec {
                audience: None,
                ..base.clone()
            },
        ),
    ];
    for (name, spec) in &variants {
        write(&format!("corpus/saml/{name}.xml"), idp.response_xml(spec));
    }
    // The form value as posted, once: the base64 decoding is fuzzed from it.
    write("corpus/saml/signed-both.b64", idp.response(&base));
    for attack in Attack::ALL {
        let name = format!("{attack:?}").to_lowercase();
        write(
            &format!("corpus/saml/attack-{name}.xml"),
            idp.attack_xml(&base, attack),
        );
    }
    write("corpus/saml/metadata.xml", &metadata);
}

fn strip_valid_until(xml: &str) -> String {
    let Some(start) = xml.find(" validUntil=\"") else {
        return xml.to_owned();
    };
    let value = start + " validUntil=\"".len();
    let end = value + xml[value..].find('"').expect("a closing quote") + 1;
    format!("{}{}", &xml[..start], &xml[end..])
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn oidc() {
    let rsa_pem = fs::read(fuzz_dir().join("../tests/keys/op-rsa-1.pem")).expect("op-rsa-1.pem");
    let rsa = RsaKeyPair::from_pem(&rsa_pem).expect("RSA key");
    let ec = EcKeyPair::generate(EcCurve::P256).expect("EC key");
    let mut rsa_jwk = rsa.to_jwk_public_key();
    rsa_jwk.set_key_id("rsa-1");
    rsa_jwk.set_key_use("sig");
    rsa_jwk.set_algorithm("RS256");
    let mut ec_jwk = ec.to_jwk_public_key();
    ec_jwk.set_key_id("ec-1");
    ec_jwk.set_key_use("sig");
    ec_jwk.set_algorithm("ES256");
    let jwks = json!({ "keys": [
        serde_json::to_value(rsa_jwk.as_ref()).expect("JWK"),
        serde_json::to_value(ec_jwk.as_ref()).expect("JWK"),
    ]});
    write(
        "fixtures/oidc-jwks.json",
        serde_json::to_string_pretty(&jwks).expect("JSON"),
    );
    let discovery = json!({
        "issuer": ISSUER,
        "authorization_endpoint": format!("{ISSUER}/authorize"),
        "token_endpoint": format!("{ISSUER}/token"),
        "userinfo_endpoint": format!("{ISSUER}/userinfo"),
        "end_session_endpoint": format!("{ISSUER}/logout"),
        "jwks_uri": format!("{ISSUER}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "HS256"],
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
    });
    write(
        "fixtures/oidc-discovery.json",
        serde_json::to_string_pretty(&discovery).expect("JSON"),
    );

    let enc_ec = EcKeyPair::generate(EcCurve::P256).expect("EC key");
    let enc_rsa = RsaKeyPair::generate(2048).expect("RSA key");
    write("fixtures/oidc-enc-ec.pem", enc_ec.to_pem_private_key());
    write("fixtures/oidc-enc-rsa.pem", enc_rsa.to_pem_private_key());

    let digest = Sha256::digest(ACCESS_TOKEN);
    let claims = json!({
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "alice-sub",
        "exp": 4_102_444_800i64,
        "iat": 1_700_000_000i64,
        "nonce": NONCE,
        "at_hash": URL_SAFE_NO_PAD.encode(&digest[..16]),
        "acr": "eidas2",
        "sid": "fuzz-sid",
        "email": "alice@example.org",
        "email_verified": true,
        "given_name": "Hélène",
        "address": { "locality": "Paris", "postal_code": "75001" },
        "groups": ["agents", "admins"],
    });
    let sign = |alg: &str, kid: Option<&str>, typ: Option<&str>, claims: &Value| -> String {
        let mut header = JwsHeader::new();
        if let Some(kid) = kid {
            header.set_key_id(kid);
        }
        if let Some(typ) = typ {
            header.set_token_type(typ);
        }
        let payload = claims.to_string();
        match alg {
            "RS256" => josekit::jws::serialize_compact(
                payload.as_bytes(),
                &header,
                &RS256.signer_from_pem(&rsa_pem).expect("signer"),
            ),
            "ES256" => josekit::jws::serialize_compact(
                payload.as_bytes(),
                &header,
                &ES256
                    .signer_from_pem(ec.to_pem_private_key())
                    .expect("signer"),
            ),
            _ => josekit::jws::serialize_compact(
                payload.as_bytes(),
                &header,
                &HS256
                    .signer_from_bytes(CLIENT_SECRET.as_bytes())
                    .expect("signer"),
            ),
        }
        .expect("signed")
    };
    let id_token_rs256 = sign("RS256", Some("rsa-1"), Some("JWT"), &claims);
    let id_token_es256 = sign("ES256", Some("ec-1"), None, &claims);
    write("fixtures/oidc-signed-token.txt", &id_token_rs256);
    write("corpus/oidc/id-token-rs256.jwt", &id_token_rs256);
    write("corpus/oidc/id-token-es256.jwt", &id_token_es256);
    write(
        "corpus/oidc/id-token-hs256.jwt",
        sign("HS256", None, None, &claims),
    );
    let logout = json!({
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "iat": NOW,
        "jti": "fuzz-jti",
        "sid": "fuzz-sid",
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    write(
        "corpus/oidc/logout-token.jwt",
        sign("RS256", Some("rsa-1"), Some("logout+jwt"), &logout),
    );
    // alg none: refused, but the fuzzer should start from the shape.
    write(
        "corpus/oidc/alg-none.jwt",
        format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims)),
    );

    let seal = |alg: &str, inner: &str, kid: bool| -> String {
        let mut header = JweHeader::new();
        header.set_content_encryption("A256GCM");
        header.set_content_type("JWT");
        if kid {
            header.set_key_id("not-our-kid");
        }
        let payload = inner.as_bytes();
        match alg {
            "ECDH-ES" => josekit::jwe::serialize_compact(
                payload,
                &header,
                &ECDH_ES
                    .encrypter_from_jwk(&enc_ec.to_jwk_public_key())
                    .expect("encrypter"),
            ),
            "RSA-OAEP" => josekit::jwe::serialize_compact(
                payload,
                &header,
                &RSA_OAEP
                    .encrypter_from_jwk(&enc_rsa.to_jwk_public_key())
                    .expect("encrypter"),
            ),
            _ => josekit::jwe::serialize_compact(
                payload,
                &header,
                &RSA_OAEP_256
                    .encrypter_from_jwk(&enc_rsa.to_jwk_public_key())
                    .expect("encrypter"),
            ),
        }
        .expect("sealed")
    };
    write(
        "corpus/oidc/jwe-ecdh-es.jwt",
        seal("ECDH-ES", &id_token_es256, false),
    );
    write(
        "corpus/oidc/jwe-rsa-oaep.jwt",
        seal("RSA-OAEP", &id_token_rs256, false),
    );
    write(
        "corpus/oidc/jwe-rsa-oaep-256.jwt",
        seal("RSA-OAEP-256", &id_token_rs256, false),
    );
    write(
        "corpus/oidc/jwe-unknown-kid.jwt",
        seal("ECDH-ES", &id_token_es256, true),
    );
    write("corpus/oidc/jwks.json", jwks.to_string());
    write("corpus/oidc/discovery.json", discovery.to_string());
    write("corpus/oidc/claims.json", claims.to_string());
    write("corpus/oidc/logout-claims.json", logout.to_string());
}
