//! The service's public keys for one provider, at the URL the operator registers in the
//! provider's partner space (FranceConnect+ fetches it to encrypt id_tokens and userinfo).
//!
//! Public keys only, so no session and no secret: the same document on every app host and every
//! replica. Cached for five minutes, which bounds how long a rotation takes to be seen.

use crate::pages::text;
use crate::respond::Reply;
use crate::state::Gateway;

/// How long clients may cache the JWKS.
const MAX_AGE_SECS: u64 = 300;

pub fn publish(gateway: &Gateway, provider_id: &str, correlation_id: &str) -> Reply {
    let jwks = gateway
        .providers
        .get(provider_id)
        .and_then(|entry| entry.oidc.as_ref())
        .and_then(|oidc| oidc.published_jwks());
    match jwks {
        Some(jwks) => Reply::json(200, &jwks)
            .with_header("cache-control", format!("public, max-age={MAX_AGE_SECS}")),
        None => Reply::error(404, text::NOT_FOUND, text::NO_APP, correlation_id),
    }
}
