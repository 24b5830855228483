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
    key.verify_signature(&alg, signing_input, &signature)
        .map_err(|_| JwsError::BadSignature)?;
    let claims = decode_json(payload_part)?;
    Ok(Verified { header, claims })
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
