//! Entry points for the fuzz targets in `fuzz/` (hidden from the documentation: not an API).
//!
//! The id_token check of `finish` needs the provider's private client and verifier; these thin
//! wrappers let the fuzzers run that production code, not a copy of it. Nothing here is used
//! by the provider itself.

use std::collections::BTreeMap;

use openidconnect::core::{CoreIdToken, CoreJsonWebKeySet};
use openidconnect::Nonce;
use url::Url;

use super::discovery::{Discovered, Metadata};
use super::{access_token_hash, attributes, payload, OidcProvider, OidcSettings};

/// A discovery document as `discovery` reads it: its issuer, or why it is refused.
pub fn parse_metadata(json: &[u8]) -> Result<String, String> {
    serde_json::from_slice::<Metadata>(json)
        .map(|metadata| metadata.issuer().to_string())
        .map_err(|e| e.to_string())
}

/// The id_token check of `finish`: a provider with its discovered metadata and JWKS.
pub struct IdTokenCheck {
    provider: OidcProvider,
    discovered: Discovered,
    redirect: Url,
}

impl IdTokenCheck {
    pub fn new(
        settings: OidcSettings,
        metadata_json: &[u8],
        jwks_json: &[u8],
        redirect: &str,
    ) -> Result<IdTokenCheck, String> {
        let metadata: Metadata =
            serde_json::from_slice(metadata_json).map_err(|e| e.to_string())?;
        let jwks: CoreJsonWebKeySet =
            serde_json::from_slice(jwks_json).map_err(|e| e.to_string())?;
        Ok(IdTokenCheck {
            provider: OidcProvider::new(settings).map_err(|e| e.to_string())?,
            discovered: Discovered::loaded(metadata.set_jwks(jwks)),
            redirect: Url::parse(redirect).map_err(|e| e.to_string())?,
        })
    }

    /// Verifies `id_token` as `finish` does (signature, issuer, audience, times, nonce), then
    /// reads its claims, `at_hash` and attributes: the attributes, or why it is refused.
    pub fn verify(
        &self,
        id_token: &str,
        nonce: &str,
        access_token: &str,
    ) -> Result<BTreeMap<String, Vec<String>>, String> {
        let token: CoreIdToken = id_token.parse().map_err(|e| format!("{e}"))?;
        let client = self
            .provider
            .client(&self.discovered, &self.redirect)
            .map_err(|e| e.to_string())?;
        self.provider
            .verify_id_token(&client, &token, &Nonce::new(nonce.to_owned()))
            .map_err(|e| e.to_string())?;
        let claims = payload(&token.to_string()).map_err(|e| e.to_string())?;
        let alg = token.signing_alg().map_err(|e| e.to_string())?;
        if let Some(expected) = claims.get("at_hash") {
            if access_token_hash(access_token, alg).as_deref() != expected.as_str() {
                return Err("at_hash does not match".into());
            }
        }
        Ok(attributes(&claims, &self.provider.settings.attributes))
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::json;

    use super::*;
    use crate::oidc::{ClientAuth, SigningAlg};

    /// The `oidc` fuzz target's crash, through `finish`'s id_token check: an HS256 id_token
    /// whose signature is not 32 bytes made openidconnect panic.
    #[test]
    fn an_hmac_id_token_signature_of_the_wrong_length_is_refused_not_a_panic() {
        let issuer = "https://op.example";
        let mut settings = OidcSettings::new(
            "op",
            issuer,
            "rp",
            ClientAuth::SecretBasic("the client secret".into()),
        );
        settings.allowed_algs = vec![SigningAlg::HmacSha256];
        let discovery = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["HS256"],
        });
        let check = IdTokenCheck::new(
            settings,
            discovery.to_string().as_bytes(),
            br#"{"keys": []}"#,
            "https://rp.example/callback",
        )
        .unwrap();
        let part = |value: serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
        let input = format!(
            "{}.{}",
            part(json!({"alg": "HS256"})),
            part(
                json!({"iss": issuer, "aud": "rp", "sub": "u", "exp": 4_102_444_800i64,
                "iat": 1_700_000_000i64, "nonce": "n"})
            )
        );
        for length in [0, 31, 35, 64] {
            let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(vec![7u8; length]));
            let refused = check.verify(&token, "n", "").unwrap_err();
            assert!(
                refused.contains("Signature verification failed"),
                "{length} bytes: {refused}"
            );
        }
    }
}
