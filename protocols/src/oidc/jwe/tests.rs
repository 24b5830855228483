//! Tokens encrypted by josekit (OpenSSL underneath), an implementation this crate does not
//! share code with, to the public JWKs this module publishes.

// RSA1_5 is deprecated: it is used only to show it is refused.
#![allow(deprecated)]

use josekit::jwe::{JweHeader, ECDH_ES, ECDH_ES_A256KW, RSA1_5, RSA_OAEP, RSA_OAEP_256};
use josekit::jwk::Jwk;
use p256::pkcs8::EncodePrivateKey;

use super::*;

const RSA_PEM: &str = include_str!("../../../../tests/keys/op-rsa-1.pem");
const OTHER_RSA_PEM: &str = include_str!("../../../../tests/keys/op-rsa-2.pem");
const INNER_JWS: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";

fn ec_pem() -> String {
    p256::SecretKey::random(&mut rand::thread_rng())
        .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
        .expect("pem")
        .to_string()
}

fn ec_key(kid: &str) -> DecryptionKey {
    DecryptionKey::from_pem(&ec_pem(), Some(kid.into()), None, true).expect("EC key")
}

fn jwk(key: &DecryptionKey) -> Jwk {
    Jwk::from_bytes(key.public_jwk().to_string().as_bytes()).expect("a JWK josekit reads")
}

fn header(kid: Option<&str>, enc: &str) -> JweHeader {
    let mut header = JweHeader::new();
    header.set_content_encryption(enc);
    header.set_content_type("JWT");
    if let Some(kid) = kid {
        header.set_key_id(kid);
    }
    header
}

/// Encrypts `INNER_JWS` to `key`'s published JWK with josekit.
fn encrypt_to(key: &DecryptionKey, kid: Option<&str>) -> String {
    let jwk = jwk(key);
    let header = header(kid, "A256GCM");
    match key.alg() {
        KeyAlg::EcdhEs => josekit::jwe::serialize_compact(
            INNER_JWS.as_bytes(),
            &header,
            &ECDH_ES.encrypter_from_jwk(&jwk).unwrap(),
        ),
        KeyAlg::RsaOaep => josekit::jwe::serialize_compact(
            INNER_JWS.as_bytes(),
            &header,
            &RSA_OAEP.encrypter_from_jwk(&jwk).unwrap(),
        ),
        KeyAlg::RsaOaep256 => josekit::jwe::serialize_compact(
            INNER_JWS.as_bytes(),
            &header,
            &RSA_OAEP_256.encrypter_from_jwk(&jwk).unwrap(),
        ),
    }
    .expect("josekit encrypts")
}

#[test]
fn ecdh_es_from_an_independent_implementation_decrypts() {
    let key = ec_key("enc-1");
    let token = encrypt_to(&key, Some("enc-1"));
    assert!(is_jwe(&token));
    assert_eq!(decrypt_nested(&token, &[key]).unwrap(), INNER_JWS);
}

#[test]
fn rsa_oaep_and_rsa_oaep_256_decrypt() {
    for alg in [KeyAlg::RsaOaep, KeyAlg::RsaOaep256] {
        let key = DecryptionKey::from_pem(RSA_PEM, None, Some(alg), true).unwrap();
        let token = encrypt_to(&key, Some(key.kid()));
        assert_eq!(
            decrypt_nested(&token, &[key]).unwrap(),
            INNER_JWS,
            "{alg:?}"
        );
    }
}

#[test]
fn a_token_without_kid_is_tried_against_each_key_of_its_algorithm() {
    let (old, new) = (ec_key("old"), ec_key("new"));
    let token = encrypt_to(&old, None);
    assert_eq!(decrypt_nested(&token, &[new, old]).unwrap(), INNER_JWS);
}

#[test]
fn rotation_keeps_both_keys_decrypting_and_finds_each_by_kid() {
    let (old, new) = (ec_key("2026-01"), ec_key("2026-07"));
    let keys = [new.clone(), old.clone()];
    assert_eq!(
        decrypt_nested(&encrypt_to(&old, Some("2026-01")), &keys).unwrap(),
        INNER_JWS
    );
    assert_eq!(
        decrypt_nested(&encrypt_to(&new, Some("2026-07")), &keys).unwrap(),
        INNER_JWS
    );
}

#[test]
fn a_token_encrypted_to_a_foreign_key_is_refused() {
    let ours = ec_key("enc-1");
    let theirs = ec_key("enc-1");
    // Same kid, another key: the agreement gives another content key and the tag fails.
    assert_eq!(
        decrypt(
            &encrypt_to(&theirs, Some("enc-1")),
            std::slice::from_ref(&ours)
        ),
        Err(JweError::Undecryptable)
    );
    // A kid we do not hold.
    assert_eq!(
        decrypt(
            &encrypt_to(&theirs, Some("elsewhere")),
            std::slice::from_ref(&ours)
        ),
        Err(JweError::UnknownKey(Some("elsewhere".into())))
    );
    // RSA: encrypted to another RSA key.
    let rsa = DecryptionKey::from_pem(RSA_PEM, Some("r".into()), None, true).unwrap();
    let other = DecryptionKey::from_pem(OTHER_RSA_PEM, Some("r".into()), None, true).unwrap();
    assert_eq!(
        decrypt(&encrypt_to(&other, Some("r")), &[rsa]),
        Err(JweError::Undecryptable)
    );
}

#[test]
fn algorithms_outside_the_list_are_refused() {
    let key = ec_key("k");
    let jwk = jwk(&key);
    // A128GCM content encryption.
    let token = josekit::jwe::serialize_compact(
        INNER_JWS.as_bytes(),
        &header(Some("k"), "A128GCM"),
        &ECDH_ES.encrypter_from_jwk(&jwk).unwrap(),
    )
    .unwrap();
    assert_eq!(
        decrypt(&token, std::slice::from_ref(&key)),
        Err(JweError::DisallowedEnc("A128GCM".into()))
    );
    // CBC-HMAC content encryption.
    let token = josekit::jwe::serialize_compact(
        INNER_JWS.as_bytes(),
        &header(Some("k"), "A128CBC-HS256"),
        &ECDH_ES.encrypter_from_jwk(&jwk).unwrap(),
    )
    .unwrap();
    assert_eq!(
        decrypt(&token, std::slice::from_ref(&key)),
        Err(JweError::DisallowedEnc("A128CBC-HS256".into()))
    );
    // ECDH-ES+A256KW key wrapping.
    let mut wrap_jwk = jwk.clone();
    wrap_jwk.set_algorithm("ECDH-ES+A256KW");
    let token = josekit::jwe::serialize_compact(
        INNER_JWS.as_bytes(),
        &header(Some("k"), "A256GCM"),
        &ECDH_ES_A256KW.encrypter_from_jwk(&wrap_jwk).unwrap(),
    )
    .unwrap();
    assert_eq!(
        decrypt(&token, &[key]),
        Err(JweError::DisallowedAlg("ECDH-ES+A256KW".into()))
    );
    // RSA1_5 (padding-oracle prone), even to our own RSA key.
    let rsa = DecryptionKey::from_pem(RSA_PEM, Some("r".into()), None, true).unwrap();
    let mut rsa_jwk = Jwk::from_bytes(rsa.public_jwk().to_string().as_bytes()).unwrap();
    rsa_jwk.set_algorithm("RSA1_5");
    let token = josekit::jwe::serialize_compact(
        INNER_JWS.as_bytes(),
        &header(Some("r"), "A256GCM"),
        &RSA1_5.encrypter_from_jwk(&rsa_jwk).unwrap(),
    )
    .unwrap();
    assert_eq!(
        decrypt(&token, std::slice::from_ref(&rsa)),
        Err(JweError::DisallowedAlg("RSA1_5".into()))
    );
    // RSA-OAEP to a key configured for RSA-OAEP-256: the key's algorithm is fixed.
    let oaep =
        DecryptionKey::from_pem(RSA_PEM, Some("r".into()), Some(KeyAlg::RsaOaep), true).unwrap();
    let token = encrypt_to(&oaep, Some("r"));
    assert!(matches!(
        decrypt(&token, &[rsa]),
        Err(JweError::UnknownKey(_))
    ));
}

#[test]
fn an_altered_token_is_refused() {
    let key = ec_key("k");
    let token = encrypt_to(&key, Some("k"));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut ciphertext = URL_SAFE_NO_PAD.decode(&parts[3]).unwrap();
    ciphertext[0] ^= 1;
    parts[3] = URL_SAFE_NO_PAD.encode(ciphertext);
    assert_eq!(
        decrypt(&parts.join("."), std::slice::from_ref(&key)),
        Err(JweError::Undecryptable)
    );
    // A header changed after encryption (it is the authenticated data).
    let mut header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    header["cty"] = json!("json");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[0] = URL_SAFE_NO_PAD.encode(header.to_string());
    assert_eq!(
        decrypt(&parts.join("."), &[key]),
        Err(JweError::Undecryptable)
    );
}

#[test]
fn an_ephemeral_key_off_the_curve_is_refused_before_any_agreement() {
    let key = ec_key("k");
    let token = encrypt_to(&key, Some("k"));
    let mut header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    // (1, 1) is not on P-256: the invalid-curve attack sends such points.
    let mut one = [0u8; 32];
    one[31] = 1;
    header["epk"]["x"] = json!(URL_SAFE_NO_PAD.encode(one));
    header["epk"]["y"] = json!(URL_SAFE_NO_PAD.encode(one));
    let header: Header = serde_json::from_value(header).unwrap();
    assert!(matches!(
        key.content_key(&header, &[]),
        Err(JweError::Undecryptable)
    ));
}

#[test]
fn malformed_compressed_and_critical_tokens_are_refused() {
    let key = ec_key("k");
    assert_eq!(
        decrypt("a.b.c", std::slice::from_ref(&key)),
        Err(JweError::Malformed)
    );
    assert_eq!(
        decrypt(&"a".repeat(MAX_JWE_BYTES + 1), std::slice::from_ref(&key)),
        Err(JweError::Malformed)
    );
    let token = encrypt_to(&key, Some("k"));
    for (name, value) in [("zip", json!("DEF")), ("crit", json!(["exp"]))] {
        let mut header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        header[name] = value;
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[0] = URL_SAFE_NO_PAD.encode(header.to_string());
        assert_eq!(
            decrypt(&parts.join("."), std::slice::from_ref(&key)),
            Err(JweError::Unsupported),
            "{name}"
        );
    }
    // A plaintext that is not a JWS.
    let jwk = jwk(&key);
    let token = josekit::jwe::serialize_compact(
        b"{\"sub\":\"x\"}",
        &header(Some("k"), "A256GCM"),
        &ECDH_ES.encrypter_from_jwk(&jwk).unwrap(),
    )
    .unwrap();
    assert_eq!(decrypt_nested(&token, &[key]), Err(JweError::Malformed));
}

#[test]
fn keys_load_from_pem_with_their_algorithm_checked() {
    let ec = ec_key("k");
    assert_eq!(ec.alg(), KeyAlg::EcdhEs);
    let sec1 = p256::SecretKey::random(&mut rand::thread_rng())
        .to_sec1_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    assert!(DecryptionKey::from_pem(&sec1, None, None, true).is_ok());
    assert_eq!(
        DecryptionKey::from_pem(&ec_pem(), None, Some(KeyAlg::RsaOaep), true).unwrap_err(),
        KeyError::EcAlg("RSA-OAEP")
    );
    assert_eq!(
        DecryptionKey::from_pem(RSA_PEM, None, Some(KeyAlg::EcdhEs), true).unwrap_err(),
        KeyError::RsaAlg
    );
    assert_eq!(
        DecryptionKey::from_pem(RSA_PEM, None, None, true)
            .unwrap()
            .alg(),
        KeyAlg::RsaOaep256
    );
    assert_eq!(
        DecryptionKey::from_pem("-----BEGIN NONSENSE-----", None, None, true).unwrap_err(),
        KeyError::NotAKey
    );
    let small = RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
    let small_pem = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&small, Default::default())
        .unwrap()
        .to_string();
    assert_eq!(
        DecryptionKey::from_pem(&small_pem, None, None, true).unwrap_err(),
        KeyError::RsaTooSmall
    );
}

#[test]
fn the_default_kid_is_the_rfc_7638_thumbprint() {
    let key = DecryptionKey::from_pem(RSA_PEM, None, None, true).unwrap();
    let jwk = jwk(&key);
    let members = format!(
        r#"{{"e":{},"kty":"RSA","n":{}}}"#,
        jwk.parameter("e").unwrap(),
        jwk.parameter("n").unwrap()
    );
    let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(members.as_bytes()));
    assert_eq!(key.kid(), expected);
    assert_eq!(key.public_jwk()["use"], "enc");
    assert!(key.public_jwk().get("d").is_none(), "no private member");
    // The same key gives the same kid on every start.
    assert_eq!(
        DecryptionKey::from_pem(RSA_PEM, None, None, true)
            .unwrap()
            .kid(),
        key.kid()
    );
}
