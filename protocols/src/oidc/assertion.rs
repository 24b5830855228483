//! `private_key_jwt` (RFC 7523): the service proves who it is at the token endpoint with a
//! short-lived JWT signed by its own key, RS256 with an RSA key or ES256 with a P-256 key
//! (FranceConnect+ takes ES256 only). The public half is published in the service's JWKS.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::PrivateSigningKey;
use p256::ecdsa::signature::Signer;
use p256::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::random_param;
use crate::{ProviderError, SetupError};

/// The setting a bad key is reported under.
fn bad_key(reason: String) -> SetupError {
    SetupError::Setting {
        setting: "private_key",
        reason,
    }
}

/// The service's client-assertion signing key.
pub enum AssertionKey {
    Rsa {
        signing: Box<CoreRsaPrivateSigningKey>,
        public: rsa::RsaPublicKey,
    },
    Ec(p256::ecdsa::SigningKey),
}

impl AssertionKey {
    /// RSA (PKCS#8 or PKCS#1 PEM) or P-256 (PKCS#8 or SEC1 PEM).
    pub fn from_pem(pem: &str) -> Result<AssertionKey, SetupError> {
        if let Ok(key) = p256::SecretKey::from_pkcs8_pem(pem) {
            return Ok(AssertionKey::Ec(key.into()));
        }
        if let Ok(key) = p256::SecretKey::from_sec1_pem(pem) {
            return Ok(AssertionKey::Ec(key.into()));
        }
        let public = rsa_public(pem)?;
        let signing = CoreRsaPrivateSigningKey::from_pem(&pkcs1_pem(pem)?, None)
            .map_err(|e| bad_key(format!("not an RSA or P-256 private key in PEM ({e})")))?;
        Ok(AssertionKey::Rsa {
            signing: Box::new(signing),
            public,
        })
    }

    pub fn alg(&self) -> &'static str {
        match self {
            AssertionKey::Rsa { .. } => "RS256",
            AssertionKey::Ec(_) => "ES256",
        }
    }

    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, openidconnect::SigningError> {
        match self {
            AssertionKey::Rsa { signing, .. } => {
                signing.sign(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, input)
            }
            // JWS ES256 is the raw r‖s pair, 64 bytes, not DER.
            AssertionKey::Ec(key) => {
                let signature: p256::ecdsa::Signature = key.sign(input);
                Ok(signature.to_bytes().to_vec())
            }
        }
    }

    /// The assertion for `token_endpoint` (its audience), valid one minute.
    pub fn assertion(
        &self,
        client_id: &str,
        key_id: Option<&str>,
        token_endpoint: &str,
    ) -> Result<String, ProviderError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut header = json!({"alg": self.alg(), "typ": "JWT"});
        if let Some(kid) = key_id {
            header["kid"] = Value::String(kid.to_owned());
        }
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": token_endpoint,
            "jti": random_param(),
            "iat": now,
            "exp": now + 60,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .sign(input.as_bytes())
            .map_err(|e| ProviderError::Rejected(format!("cannot sign client assertion: {e}")))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// The public key, for the service's JWKS.
    pub fn public_jwk(&self, key_id: Option<&str>) -> Value {
        let mut jwk = match self {
            AssertionKey::Rsa { public, .. } => json!({
                "kty": "RSA",
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
                "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            }),
            AssertionKey::Ec(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(point.x().map(|x| x.as_slice()).unwrap_or(&[])),
                    "y": URL_SAFE_NO_PAD.encode(point.y().map(|y| y.as_slice()).unwrap_or(&[])),
                })
            }
        };
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(self.alg());
        if let Some(kid) = key_id {
            jwk["kid"] = json!(kid);
        }
        jwk
    }
}

fn rsa_public(pem: &str) -> Result<rsa::RsaPublicKey, SetupError> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|_| {
            bad_key("not an RSA or P-256 private key in PEM (PKCS#8, PKCS#1 or SEC1)".into())
        })?;
    Ok(key.to_public_key())
}

/// The crate reads PKCS#1 (`RSA PRIVATE KEY`) only; `openssl genpkey` writes PKCS#8.
fn pkcs1_pem(pem: &str) -> Result<String, SetupError> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    if !pem.contains("-----BEGIN PRIVATE KEY-----") {
        return Ok(pem.to_owned());
    }
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .map_err(|e| bad_key(format!("not an RSA private key in PKCS#8 PEM ({e})")))?;
    key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| bad_key(e.to_string()))
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::EncodePrivateKey;

    use super::*;

    #[test]
    fn an_es256_assertion_verifies_with_the_published_key() {
        let pem = p256::SecretKey::random(&mut rand::thread_rng())
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        let key = AssertionKey::from_pem(&pem).unwrap();
        assert_eq!(key.alg(), "ES256");
        let jwt = key
            .assertion("client", Some("sig-1"), "https://op.example/token")
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "sig-1");
        let jwk = key.public_jwk(Some("sig-1"));
        assert_eq!(jwk["use"], "sig");
        // p256 reads only the key members.
        let members =
            serde_json::json!({"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"]});
        let public = p256::PublicKey::from_jwk_str(&members.to_string()).unwrap();
        let signature =
            p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        p256::ecdsa::VerifyingKey::from(&public)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://op.example/token");
        assert_eq!(claims["iss"], "client");
    }

    #[test]
    fn rsa_keys_still_sign_rs256() {
        let pem = include_str!("../../../tests/keys/client-rsa.pem");
        let key = AssertionKey::from_pem(pem).unwrap();
        assert_eq!(key.alg(), "RS256");
        assert_eq!(key.public_jwk(None)["kty"], "RSA");
        assert!(AssertionKey::from_pem("nonsense").is_err());
    }
}
