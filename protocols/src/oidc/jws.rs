//! Compact JWS verification for the tokens the `openidconnect` crate does not verify for us:
//! signed userinfo responses (the crate only accepts RS256 there, FranceConnect signs with
//! ES256) and back-channel logout tokens.
//!
//! The header's `alg` must be one the provider allows (never `none`); the key is chosen by `kid`
//! among the keys compatible with that algorithm, or is the only compatible key when the token
//! names none. Claims are only returned once the signature holds.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyUse, JwsSigningAlgorithm};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Longest compact JWS accepted (userinfo and logout tokens are a few kilobytes).
pub const MAX_JWS_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwsError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("signing algorithm {0} is not allowed")]
    DisallowedAlg(String),
    #[error("no key in the provider's JWKS matches the token")]
    NoMatchingKey,
    #[error("several keys match a token without kid")]
    AmbiguousKey,
    #[error("bad signature")]
    BadSignature,
}

#[derive(Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub typ: Option<String>,
}

/// A token whose signature was checked: its header and claims.
pub struct Verified {
    pub header: Header,
    pub claims: Map<String, Value>,
}

/// Splits and decodes without verifying: for choosing how to verify only.
pub fn peek_header(token: &str) -> Result<Header, JwsError> {
    let (header, _, _) = split(token)?;
    decode_json(header)
}

fn split(token: &str) -> Result<(&str, &str, &str), JwsError> {
    if token.len() > MAX_JWS_BYTES {
        return Err(JwsError::Malformed);
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Ok((h, p, s)),
        _ => Err(JwsError::Malformed),
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, JwsError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwsError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwsError::Malformed)
}

/// Verifies `token` with `keys`, accepting only `allowed` algorithms. Symmetric algorithms use
/// `shared_secret` (the client secret) and are refused without one.
pub fn verify(
    token: &str,
    keys: &CoreJsonWebKeySet,
    allowed: &[CoreJwsSigningAlgorithm],
    shared_secret: Option<&str>,
) -> Result<Verified, JwsError> {
    let (header_part, payload_part, signature_part) = split(token)?;
    let header: Header = decode_json(header_part)?;
    let alg: CoreJwsSigningAlgorithm =
        serde_plain_alg(&header.alg).ok_or_else(|| JwsError::DisallowedAlg(header.alg.clone()))?;
    if alg == CoreJwsSigningAlgorithm::None || !allowed.contains(&alg) {
        return Err(JwsError::DisallowedAlg(header.alg.clone()));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_part)
        .map_err(|_| JwsError::Malformed)?;
    let signing_input = &token.as_bytes()[..header_part.len() + 1 + payload_part.len()];

    let symmetric;
    let key = if alg.uses_shared_secret() {
        let secret = shared_secret.ok_or_else(|| JwsError::DisallowedAlg(header.alg.clone()))?;
        symmetric = CoreJsonWebKey::new_symmetric(secret.as_bytes().to_vec());
        &symmetric
    } else {
        select_key(keys, header.kid.as_deref(), &alg)?
    };
    if !hmac_length_fits(&alg, &signature) {
        return Err(JwsError::BadSignature);
    }
    key.verify_signature(&alg, signing_input, &signature)
        .map_err(|_| JwsError::BadSignature)?;
    let claims = decode_json(payload_part)?;
    Ok(Verified { header, claims })
}

/// Whether an HMAC signature has its algorithm's length (every other signature passes).
/// openidconnect 4.1 turns an HMAC signature of another length into a fixed-size array with
/// `into()`, which panics (found by the `oidc` fuzz target): such a signature is simply bad,
/// and is refused before it gets there.
pub(crate) fn hmac_length_fits(alg: &CoreJwsSigningAlgorithm, signature: &[u8]) -> bool {
    let expected = match alg {
        CoreJwsSigningAlgorithm::HmacSha256 => 32,
        CoreJwsSigningAlgorithm::HmacSha384 => 48,
        CoreJwsSigningAlgorithm::HmacSha512 => 64,
        _ => return true,
    };
    signature.len() == expected
}

/// The key a token must be verified with: the one with its `kid` (and compatible with its
/// algorithm), or, without `kid`, the only compatible key. Several candidates without `kid` is
/// an error rather than "try each": OpenID Connect Core 10.1 requires a `kid` then.
pub fn select_key<'k>(
    keys: &'k CoreJsonWebKeySet,
    kid: Option<&str>,
    alg: &CoreJwsSigningAlgorithm,
) -> Result<&'k CoreJsonWebKey, JwsError> {
    let candidates: Vec<&CoreJsonWebKey> = keys
        .keys()
        .iter()
        .filter(|key| kid.is_none() || key.key_id().map(|k| k.as_str()) == kid)
        .filter(|key| compatible(key, alg))
        .collect();
    match candidates.as_slice() {
        [] => Err(JwsError::NoMatchingKey),
        [key] => Ok(key),
        _ => Err(JwsError::AmbiguousKey),
    }
}

fn compatible(key: &CoreJsonWebKey, alg: &CoreJwsSigningAlgorithm) -> bool {
    if key.key_use().is_some_and(|u| !u.allows_signature()) {
        return false;
    }
    if alg.key_type().as_ref() != Some(key.key_type()) {
        return false;
    }
    match key.signing_alg() {
        JsonWebKeyAlgorithm::Unspecified => true,
        JsonWebKeyAlgorithm::Algorithm(key_alg) => key_alg == alg,
        JsonWebKeyAlgorithm::Unsupported => false,
    }
}

/// Parses an `alg` header value; unknown names are `None`.
pub fn serde_plain_alg(name: &str) -> Option<CoreJwsSigningAlgorithm> {
    serde_json::from_value(Value::String(name.to_owned())).ok()
}

#[cfg(test)]
mod tests {
    //! Every check of [`verify`] and [`select_key`], each with a token that passes all the
    //! others: RS256 and HS256 tokens signed here, ES256 from the RFC 7515 (A.3) example.

    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    use rsa::traits::PublicKeyParts;
    use serde_json::json;
    use sha2::{Digest, Sha256};

    use CoreJwsSigningAlgorithm::{
        EcdsaP256Sha256 as ES256, HmacSha256 as HS256, RsaSsaPkcs1V15Sha256 as RS256,
        RsaSsaPkcs1V15Sha384 as RS384,
    };

    const RSA_1: &str = include_str!("../../../tests/keys/op-rsa-1.pem");
    const RSA_2: &str = include_str!("../../../tests/keys/op-rsa-2.pem");

    /// RFC 7515 A.3: an ES256 JWS (header `{"alg":"ES256"}`, no kid) and its key.
    const RFC_ES256_JWS: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

    fn ec_jwk() -> Value {
        json!({
            "kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        })
    }

    fn rsa_key(pem: &str) -> rsa::RsaPrivateKey {
        rsa::RsaPrivateKey::from_pkcs8_pem(pem).expect("test RSA key")
    }

    /// The public JWK of `pem`, with `extra` members (kid, use, alg...).
    fn rsa_jwk(pem: &str, extra: Value) -> Value {
        let key = rsa_key(pem);
        let mut jwk = json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        });
        for (name, value) in extra.as_object().expect("object") {
            jwk[name] = value.clone();
        }
        jwk
    }

    fn jwks(keys: Vec<Value>) -> CoreJsonWebKeySet {
        serde_json::from_value(json!({ "keys": keys })).expect("a JWKS")
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn input(header: &Value, claims: &Value) -> String {
        format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
    }

    /// `header.claims` signed RS256 with `pem`, whatever the header says.
    fn rs256(pem: &str, header: Value, claims: Value) -> String {
        let input = input(&header, &claims);
        let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(rsa_key(pem));
        format!("{input}.{}", b64(signer.sign(input.as_bytes()).to_vec()))
    }

    fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize()
            .to_vec()
    }

    fn hs256(secret: &str, claims: Value) -> String {
        let input = input(&json!({"alg": "HS256", "typ": "JWT"}), &claims);
        let mac = hmac_sha256(secret.as_bytes(), input.as_bytes());
        format!("{input}.{}", b64(mac))
    }

    fn claims() -> Value {
        json!({"iss": "https://op.example", "sub": "u-1", "aud": "rp"})
    }

    fn kid(kid: &str) -> Value {
        json!({"alg": "RS256", "kid": kid})
    }

    /// Flips one bit of the signature part.
    fn corrupt(token: &str) -> String {
        let (rest, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[10] ^= 0x01;
        format!("{rest}.{}", b64(bytes))
    }

    fn two_rsa_keys() -> CoreJsonWebKeySet {
        jwks(vec![
            rsa_jwk(RSA_1, json!({"kid": "rsa-1", "use": "sig", "alg": "RS256"})),
            rsa_jwk(RSA_2, json!({"kid": "rsa-2", "use": "sig", "alg": "RS256"})),
        ])
    }

    #[test]
    fn a_good_rs256_signature_with_kid_gives_the_claims() {
        let token = rs256(RSA_2, kid("rsa-2"), claims());
        let verified = verify(&token, &two_rsa_keys(), &[RS256], None).unwrap();
        assert_eq!(Value::Object(verified.claims), claims());
        assert_eq!(verified.header.kid.as_deref(), Some("rsa-2"));
        assert_eq!(verified.header.alg, "RS256");
    }

    #[test]
    fn a_good_es256_signature_without_kid_uses_the_only_ec_key() {
        let keys = jwks(vec![rsa_jwk(RSA_1, json!({"kid": "rsa-1"})), ec_jwk()]);
        let verified = verify(RFC_ES256_JWS, &keys, &[RS256, ES256], None).unwrap();
        assert_eq!(verified.claims["iss"], "joe");
        assert_eq!(verified.claims["exp"], 1300819380);
    }

    #[test]
    fn a_bad_signature_is_refused() {
        let keys = two_rsa_keys();
        let token = rs256(RSA_1, kid("rsa-1"), claims());
        assert!(verify(&token, &keys, &[RS256], None).is_ok());
        assert_eq!(
            verify(&corrupt(&token), &keys, &[RS256], None).err(),
            Some(JwsError::BadSignature)
        );
        let ec = jwks(vec![ec_jwk()]);
        assert_eq!(
            verify(&corrupt(RFC_ES256_JWS), &ec, &[ES256], None).err(),
            Some(JwsError::BadSignature)
        );
        // An empty signature.
        let (unsigned, _) = token.rsplit_once('.').unwrap();
        assert_eq!(
            verify(&format!("{unsigned}."), &keys, &[RS256], None).err(),
            Some(JwsError::BadSignature)
        );
    }

    #[test]
    fn claims_changed_after_signing_are_refused() {
        let token = rs256(RSA_1, kid("rsa-1"), claims());
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims =
            b64(json!({"iss": "https://op.example", "sub": "admin", "aud": "rp"}).to_string());
        let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        assert_eq!(
            verify(&forged, &two_rsa_keys(), &[RS256], None).err(),
            Some(JwsError::BadSignature)
        );
    }

    #[test]
    fn a_signature_by_another_key_than_the_kid_names_is_refused() {
        // Signed with key 1, claiming key 2.
        let token = rs256(RSA_1, kid("rsa-2"), claims());
        assert_eq!(
            verify(&token, &two_rsa_keys(), &[RS256], None).err(),
            Some(JwsError::BadSignature)
        );
    }

    #[test]
    fn alg_none_is_refused_even_when_listed() {
        let token = format!(
            "{}.",
            input(&json!({"alg": "none", "typ": "JWT"}), &claims())
        );
        for allowed in [vec![RS256], vec![RS256, CoreJwsSigningAlgorithm::None]] {
            assert_eq!(
                verify(&token, &two_rsa_keys(), &allowed, Some("secret")).err(),
                Some(JwsError::DisallowedAlg("none".into()))
            );
        }
    }

    #[test]
    fn an_algorithm_outside_the_allowed_list_or_unknown_is_refused() {
        let token = rs256(RSA_1, kid("rsa-1"), claims());
        assert_eq!(
            verify(&token, &two_rsa_keys(), &[ES256], None).err(),
            Some(JwsError::DisallowedAlg("RS256".into()))
        );
        assert_eq!(
            verify(RFC_ES256_JWS, &jwks(vec![ec_jwk()]), &[RS256], None).err(),
            Some(JwsError::DisallowedAlg("ES256".into()))
        );
        let made_up = rs256(RSA_1, json!({"alg": "XS999", "kid": "rsa-1"}), claims());
        assert_eq!(
            verify(&made_up, &two_rsa_keys(), &[RS256], None).err(),
            Some(JwsError::DisallowedAlg("XS999".into()))
        );
    }

    #[test]
    fn an_algorithm_the_key_is_not_for_finds_no_key() {
        // The header says ES256 and names an RSA key: wrong key type.
        let token = rs256(RSA_1, json!({"alg": "ES256", "kid": "rsa-1"}), claims());
        assert_eq!(
            verify(&token, &two_rsa_keys(), &[RS256, ES256], None).err(),
            Some(JwsError::NoMatchingKey)
        );
        // RS384 on a key published for RS256 only: same type, another algorithm.
        let token = rs256(RSA_1, json!({"alg": "RS384", "kid": "rsa-1"}), claims());
        assert_eq!(
            verify(&token, &two_rsa_keys(), &[RS256, RS384], None).err(),
            Some(JwsError::NoMatchingKey)
        );
        // The ES256 example against a JWKS with only RSA keys.
        assert_eq!(
            verify(RFC_ES256_JWS, &two_rsa_keys(), &[ES256], None).err(),
            Some(JwsError::NoMatchingKey)
        );
    }

    #[test]
    fn an_encryption_key_is_not_a_signing_key() {
        let keys = jwks(vec![rsa_jwk(RSA_1, json!({"kid": "rsa-1", "use": "enc"}))]);
        let token = rs256(RSA_1, kid("rsa-1"), claims());
        assert_eq!(
            verify(&token, &keys, &[RS256], None).err(),
            Some(JwsError::NoMatchingKey)
        );
    }

    #[test]
    fn a_key_published_for_an_encryption_alg_is_not_used() {
        let keys = jwks(vec![rsa_jwk(
            RSA_1,
            json!({"kid": "rsa-1", "alg": "A128GCM"}),
        )]);
        assert_eq!(keys.keys().len(), 1, "the key is in the set");
        let token = rs256(RSA_1, kid("rsa-1"), claims());
        assert_eq!(
            verify(&token, &keys, &[RS256], None).err(),
            Some(JwsError::NoMatchingKey)
        );
        // The same key without alg is usable for any RSA algorithm.
        let keys = jwks(vec![rsa_jwk(RSA_1, json!({"kid": "rsa-1"}))]);
        assert!(verify(&token, &keys, &[RS256], None).is_ok());
    }

    #[test]
    fn an_unknown_kid_finds_no_key() {
        let token = rs256(RSA_1, kid("rsa-9"), claims());
        assert_eq!(
            verify(&token, &two_rsa_keys(), &[RS256], None).err(),
            Some(JwsError::NoMatchingKey)
        );
        assert_eq!(
            verify(&token, &jwks(vec![]), &[RS256], None).err(),
            Some(JwsError::NoMatchingKey)
        );
    }

    #[test]
    fn without_kid_only_a_single_candidate_key_is_used() {
        let token = rs256(RSA_1, json!({"alg": "RS256"}), claims());
        assert_eq!(
            verify(&token, &two_rsa_keys(), &[RS256], None).err(),
            Some(JwsError::AmbiguousKey)
        );
        // One RSA key among keys of other types: that one.
        let keys = jwks(vec![ec_jwk(), rsa_jwk(RSA_1, json!({"kid": "rsa-1"}))]);
        assert!(verify(&token, &keys, &[RS256], None).is_ok());
        // Two keys with the same kid are ambiguous too.
        let keys = jwks(vec![
            rsa_jwk(RSA_1, json!({"kid": "same"})),
            rsa_jwk(RSA_2, json!({"kid": "same"})),
        ]);
        let token = rs256(RSA_1, kid("same"), claims());
        assert_eq!(
            verify(&token, &keys, &[RS256], None).err(),
            Some(JwsError::AmbiguousKey)
        );
    }

    #[test]
    fn hs256_needs_it_allowed_and_a_shared_secret_and_checks_it() {
        let secret = "the client secret";
        let token = hs256(secret, claims());
        let keys = two_rsa_keys();
        let verified = verify(&token, &keys, &[RS256, HS256], Some(secret)).unwrap();
        assert_eq!(verified.claims["sub"], "u-1");
        assert_eq!(
            verify(&token, &keys, &[RS256, HS256], Some("another secret")).err(),
            Some(JwsError::BadSignature)
        );
        assert_eq!(
            verify(&token, &keys, &[RS256, HS256], None).err(),
            Some(JwsError::DisallowedAlg("HS256".into()))
        );
        assert_eq!(
            verify(&token, &keys, &[RS256], Some(secret)).err(),
            Some(JwsError::DisallowedAlg("HS256".into()))
        );
    }

    #[test]
    fn an_hmac_signature_of_the_wrong_length_is_bad_not_a_panic() {
        // The `oidc` fuzz target's crash: a 35-byte HS256 signature made openidconnect panic.
        let secret = "the client secret";
        let token = hs256(secret, claims());
        let input = token.rsplit_once('.').unwrap().0;
        for length in [0, 31, 33, 35, 64] {
            let forged = format!("{input}.{}", b64(vec![7u8; length]));
            assert_eq!(
                verify(&forged, &two_rsa_keys(), &[HS256], Some(secret)).err(),
                Some(JwsError::BadSignature),
                "{length} bytes"
            );
        }
    }

    #[test]
    fn an_hs256_token_keyed_with_a_public_key_is_refused() {
        // The classic confusion: the RSA public key, which anyone has, used as an HMAC secret.
        let public = rsa_jwk(RSA_1, json!({})).to_string();
        let token = hs256(&public, claims());
        assert_eq!(
            verify(
                &token,
                &two_rsa_keys(),
                &[RS256, HS256],
                Some("the client secret")
            )
            .err(),
            Some(JwsError::BadSignature)
        );
        assert_eq!(
            verify(&token, &two_rsa_keys(), &[RS256], None).err(),
            Some(JwsError::DisallowedAlg("HS256".into()))
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let keys = two_rsa_keys();
        let good = rs256(RSA_1, kid("rsa-1"), claims());
        let parts: Vec<&str> = good.split('.').collect();
        let not_json = rs256(RSA_1, kid("rsa-1"), json!(null));
        let signed_garbage = {
            // A correct signature over a payload that is not base64url JSON.
            let input = format!("{}.{}", b64(kid("rsa-1").to_string()), b64("not json"));
            let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(rsa_key(RSA_1));
            format!("{input}.{}", b64(signer.sign(input.as_bytes()).to_vec()))
        };
        let cases = [
            ("empty", String::new()),
            ("two parts", format!("{}.{}", parts[0], parts[1])),
            ("four parts", format!("{good}.x")),
            (
                "header not base64url",
                format!("{{.{}.{}", parts[1], parts[2]),
            ),
            (
                "header not JSON",
                format!("{}.{}.{}", b64("alg"), parts[1], parts[2]),
            ),
            (
                "header without alg",
                format!("{}.{}.{}", b64("{}"), parts[1], parts[2]),
            ),
            (
                "signature not base64url",
                format!("{}.{}.%%%", parts[0], parts[1]),
            ),
            ("claims not an object", not_json),
            ("claims not JSON", signed_garbage),
            (
                "too long",
                rs256(
                    RSA_1,
                    kid("rsa-1"),
                    json!({"pad": "x".repeat(MAX_JWS_BYTES)}),
                ),
            ),
        ];
        for (name, token) in cases {
            assert_eq!(
                verify(&token, &keys, &[RS256], None).err(),
                Some(JwsError::Malformed),
                "{name}"
            );
        }
    }

    #[test]
    fn peek_header_reads_without_verifying() {
        let token = corrupt(&rs256(
            RSA_1,
            json!({"alg": "RS256", "kid": "rsa-1", "typ": "logout+jwt"}),
            claims(),
        ));
        let header = peek_header(&token).unwrap();
        assert_eq!(header.alg, "RS256");
        assert_eq!(header.kid.as_deref(), Some("rsa-1"));
        assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
        assert_eq!(peek_header("a.b").err(), Some(JwsError::Malformed));
    }
}
