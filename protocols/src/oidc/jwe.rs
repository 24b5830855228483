//! Compact JWE decryption (RFC 7516) for providers that encrypt what they send the service:
//! FranceConnect+ encrypts its id_tokens and userinfo responses to keys the service publishes.
//!
//! Only what such providers use is accepted, and nothing is guessed from the token:
//! - key management `ECDH-ES` (direct key agreement on P-256, Concat KDF of RFC 7518 §4.6),
//!   `RSA-OAEP` and `RSA-OAEP-256`, each key bound to one algorithm by configuration;
//! - content encryption `A256GCM` only;
//! - no compression (`zip`) and no critical extension (`crit`);
//! - the key is the one the header's `kid` names; a token that names none is tried against each
//!   key of its algorithm, and one encrypted to a key we do not hold fails to decrypt.
//!
//! The plaintext of a nested JWT is a JWS that the caller still verifies: decryption says who
//! may read the token, not who wrote it.

use std::fmt;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPrivateKey};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Longest compact JWE accepted: an encrypted id_token or userinfo is a few kilobytes.
pub const MAX_JWE_BYTES: usize = 128 * 1024;

/// The only content encryption accepted.
pub const CONTENT_ENCRYPTION: &str = "A256GCM";

/// Smallest RSA modulus accepted for a decryption key.
const MIN_RSA_BITS: usize = 2048;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JweError {
    #[error("not a compact JWE")]
    Malformed,
    #[error("key management algorithm {0:?} is not accepted")]
    DisallowedAlg(String),
    #[error("content encryption {0:?} is not accepted (only A256GCM)")]
    DisallowedEnc(String),
    #[error("compressed or critical-extension JWEs are not accepted")]
    Unsupported,
    #[error("encrypted to a key this service does not hold (kid {0:?})")]
    UnknownKey(Option<String>),
    #[error("cannot decrypt: not encrypted to this service's keys, or altered")]
    Undecryptable,
}

/// The key management algorithms a decryption key can be used with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlg {
    EcdhEs,
    RsaOaep,
    RsaOaep256,
}

impl KeyAlg {
    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::EcdhEs => "ECDH-ES",
            KeyAlg::RsaOaep => "RSA-OAEP",
            KeyAlg::RsaOaep256 => "RSA-OAEP-256",
        }
    }

    pub fn from_name(name: &str) -> Option<KeyAlg> {
        [KeyAlg::EcdhEs, KeyAlg::RsaOaep, KeyAlg::RsaOaep256]
            .into_iter()
            .find(|alg| alg.name() == name)
    }
}

#[derive(Clone)]
enum Secret {
    Ec(p256::SecretKey),
    Rsa(Box<RsaPrivateKey>),
}

/// One private key the provider may encrypt to, with its key id and algorithm.
#[derive(Clone)]
pub struct DecryptionKey {
    kid: String,
    alg: KeyAlg,
    secret: Secret,
    /// Listed in the published JWKS. A retired key is not (the provider stops encrypting to it)
    /// but still decrypts what was encrypted to it before.
    published: bool,
}

impl fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptionKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("published", &self.published)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not a P-256 EC or RSA private key in PEM (PKCS#8, SEC1 or PKCS#1)")]
    NotAKey,
    #[error("an EC P-256 key is used with ECDH-ES, not {0}")]
    EcAlg(&'static str),
    #[error("an RSA key is used with RSA-OAEP or RSA-OAEP-256, not ECDH-ES")]
    RsaAlg,
    #[error("RSA keys must have at least {MIN_RSA_BITS} bits")]
    RsaTooSmall,
}

impl DecryptionKey {
    /// A key from PEM. `alg` defaults to ECDH-ES for EC keys and RSA-OAEP-256 for RSA keys;
    /// `kid` to the key's RFC 7638 thumbprint, which stays the same across restarts.
    pub fn from_pem(
        pem: &str,
        kid: Option<String>,
        alg: Option<KeyAlg>,
        published: bool,
    ) -> Result<DecryptionKey, KeyError> {
        let secret = if let Ok(key) = p256::SecretKey::from_pkcs8_pem(pem) {
            Secret::Ec(key)
        } else if let Ok(key) = p256::SecretKey::from_sec1_pem(pem) {
            Secret::Ec(key)
        } else if let Ok(key) = RsaPrivateKey::from_pkcs8_pem(pem) {
            Secret::Rsa(Box::new(key))
        } else if let Ok(key) = RsaPrivateKey::from_pkcs1_pem(pem) {
            Secret::Rsa(Box::new(key))
        } else {
            return Err(KeyError::NotAKey);
        };
        let alg = match (&secret, alg) {
            (Secret::Ec(_), None | Some(KeyAlg::EcdhEs)) => KeyAlg::EcdhEs,
            (Secret::Ec(_), Some(other)) => return Err(KeyError::EcAlg(other.name())),
            (Secret::Rsa(_), Some(KeyAlg::EcdhEs)) => return Err(KeyError::RsaAlg),
            (Secret::Rsa(key), alg) => {
                if key.size() * 8 < MIN_RSA_BITS {
                    return Err(KeyError::RsaTooSmall);
                }
                alg.unwrap_or(KeyAlg::RsaOaep256)
            }
        };
        let mut key = DecryptionKey {
            kid: String::new(),
            alg,
            secret,
            published,
        };
        key.kid = kid.unwrap_or_else(|| key.thumbprint());
        Ok(key)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> KeyAlg {
        self.alg
    }

    /// The public key as a JWK members map (no `use`, `alg` or `kid`).
    fn public_members(&self) -> Value {
        match &self.secret {
            Secret::Ec(key) => {
                let point = key.public_key().to_encoded_point(false);
                json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(point.x().map(|x| x.as_slice()).unwrap_or(&[])),
                    "y": URL_SAFE_NO_PAD.encode(point.y().map(|y| y.as_slice()).unwrap_or(&[])),
                })
            }
            Secret::Rsa(key) => json!({
                "kty": "RSA",
                "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
                "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            }),
        }
    }

    /// RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace.
    /// Written out by hand: serde_json may keep insertion order (its `preserve_order` feature
    /// is on in this workspace through another crate).
    fn thumbprint(&self) -> String {
        let members = self.public_members();
        let member = |name: &str| members[name].as_str().unwrap_or_default().to_owned();
        let canonical = match &self.secret {
            Secret::Ec(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                member("x"),
                member("y")
            ),
            Secret::Rsa(_) => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                member("e"),
                member("n")
            ),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The public JWK the provider encrypts to.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.public_members();
        jwk["use"] = json!("enc");
        jwk["alg"] = json!(self.alg.name());
        jwk["kid"] = json!(self.kid);
        jwk
    }

    pub fn published(&self) -> bool {
        self.published
    }

    /// The content encryption key, from the JWE's encrypted key (RSA) or the agreement (ECDH-ES).
    fn content_key(&self, header: &Header, encrypted_key: &[u8]) -> Result<Vec<u8>, JweError> {
        match (&self.secret, self.alg) {
            (Secret::Rsa(key), KeyAlg::RsaOaep) => key
                .decrypt(Oaep::new::<sha1::Sha1>(), encrypted_key)
                .map_err(|_| JweError::Undecryptable),
            (Secret::Rsa(key), KeyAlg::RsaOaep256) => key
                .decrypt(Oaep::new::<Sha256>(), encrypted_key)
                .map_err(|_| JweError::Undecryptable),
            (Secret::Ec(key), KeyAlg::EcdhEs) => {
                // Direct key agreement: there is no encrypted key (RFC 7518 §4.6).
                if !encrypted_key.is_empty() {
                    return Err(JweError::Malformed);
                }
                ecdh_es_key(key, header)
            }
            _ => Err(JweError::Undecryptable),
        }
    }
}

/// The ephemeral public key the sender put in the header.
#[derive(Deserialize)]
struct EphemeralKey {
    kty: String,
    crv: String,
    x: String,
    y: String,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    enc: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    epk: Option<EphemeralKey>,
    #[serde(default)]
    apu: Option<String>,
    #[serde(default)]
    apv: Option<String>,
    #[serde(default)]
    zip: Option<Value>,
    #[serde(default)]
    crit: Option<Value>,
}

/// RFC 7518 §4.6.2: Concat KDF over the shared secret, for A256GCM used directly.
fn ecdh_es_key(key: &p256::SecretKey, header: &Header) -> Result<Vec<u8>, JweError> {
    let epk = header.epk.as_ref().ok_or(JweError::Malformed)?;
    if epk.kty != "EC" || epk.crv != "P-256" {
        return Err(JweError::Undecryptable);
    }
    let coordinate = |c: &str| {
        URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or(JweError::Malformed)
    };
    let (x, y) = (coordinate(&epk.x)?, coordinate(&epk.y)?);
    let point = p256::EncodedPoint::from_affine_coordinates(
        p256::FieldBytes::from_slice(&x),
        p256::FieldBytes::from_slice(&y),
        false,
    );
    // Refuses points off the curve (the invalid-curve attack that would leak our key).
    let their_key =
        p256::PublicKey::from_sec1_bytes(point.as_bytes()).map_err(|_| JweError::Undecryptable)?;
    let shared = p256::ecdh::diffie_hellman(key.to_nonzero_scalar(), their_key.as_affine());
    let party = |value: &Option<String>| -> Result<Vec<u8>, JweError> {
        match value {
            Some(v) => URL_SAFE_NO_PAD.decode(v).map_err(|_| JweError::Malformed),
            None => Ok(Vec::new()),
        }
    };
    let mut other_info = Vec::new();
    for field in [
        CONTENT_ENCRYPTION.as_bytes().to_vec(),
        party(&header.apu)?,
        party(&header.apv)?,
    ] {
        other_info.extend_from_slice(&(field.len() as u32).to_be_bytes());
        other_info.extend_from_slice(&field);
    }
    other_info.extend_from_slice(&256u32.to_be_bytes());
    let mut cek = vec![0u8; 32];
    concat_kdf::derive_key_into::<Sha256>(shared.raw_secret_bytes(), &other_info, &mut cek)
        .map_err(|_| JweError::Undecryptable)?;
    Ok(cek)
}

/// Whether `token` has the five parts of a compact JWE (a JWS has three).
pub fn is_jwe(token: &str) -> bool {
    token.split('.').count() == 5
}

/// Decrypts a compact JWE with one of `keys`; returns the plaintext.
pub fn decrypt(token: &str, keys: &[DecryptionKey]) -> Result<Vec<u8>, JweError> {
    if token.len() > MAX_JWE_BYTES {
        return Err(JweError::Malformed);
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [protected, encrypted_key, iv, ciphertext, tag] = parts[..] else {
        return Err(JweError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JweError::Malformed)
    };
    let header: Header =
        serde_json::from_slice(&decode(protected)?).map_err(|_| JweError::Malformed)?;
    let alg = KeyAlg::from_name(&header.alg).ok_or(JweError::DisallowedAlg(header.alg.clone()))?;
    if header.enc != CONTENT_ENCRYPTION {
        return Err(JweError::DisallowedEnc(header.enc.clone()));
    }
    if header.zip.is_some() || header.crit.is_some() {
        return Err(JweError::Unsupported);
    }
    let (encrypted_key, iv, ciphertext, tag) = (
        decode(encrypted_key)?,
        decode(iv)?,
        decode(ciphertext)?,
        decode(tag)?,
    );
    if iv.len() != 12 || tag.len() != 16 {
        return Err(JweError::Malformed);
    }
    let candidates: Vec<&DecryptionKey> = keys
        .iter()
        .filter(|k| k.alg == alg)
        .filter(|k| header.kid.as_deref().is_none_or(|kid| kid == k.kid))
        .collect();
    if candidates.is_empty() {
        return Err(match header.kid {
            Some(kid) => JweError::UnknownKey(Some(kid)),
            None => JweError::DisallowedAlg(header.alg),
        });
    }
    let mut sealed = ciphertext;
    sealed.extend_from_slice(&tag);
    for key in candidates {
        let Ok(cek) = key.content_key(&header, &encrypted_key) else {
            continue;
        };
        if cek.len() != 32 {
            continue;
        }
        let cipher = Aes256Gcm::new_from_slice(&cek).map_err(|_| JweError::Undecryptable)?;
        // The additional authenticated data is the protected header as sent (RFC 7516 §5.2).
        let payload = Payload {
            msg: &sealed,
            aad: protected.as_bytes(),
        };
        if let Ok(plaintext) = cipher.decrypt(Nonce::from_slice(&iv), payload) {
            return Ok(plaintext);
        }
    }
    Err(JweError::Undecryptable)
}

/// Decrypts a nested JWT: the plaintext must be a compact JWS (to verify next).
pub fn decrypt_nested(token: &str, keys: &[DecryptionKey]) -> Result<String, JweError> {
    let plaintext = decrypt(token, keys)?;
    let inner = String::from_utf8(plaintext).map_err(|_| JweError::Malformed)?;
    let inner = inner.trim().to_owned();
    if inner.split('.').count() != 3 {
        return Err(JweError::Malformed);
    }
    Ok(inner)
}

#[cfg(test)]
mod tests;
