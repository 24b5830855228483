//! OpenID Connect logouts: the RP-initiated redirect to the provider's end-session endpoint,
//! and the checks on a back-channel `logout_token` (OpenID Connect Back-Channel Logout 1.0 §2.6).

use serde_json::{Map, Value};
use url::Url;

/// The event a logout token must carry.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Which sessions a valid logout token ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutSubject {
    /// The provider's session id: every Guichet session opened from it.
    pub sid: Option<String>,
    /// The user: every Guichet session of that subject at this provider (used when no `sid`).
    pub sub: Option<String>,
}

/// Why a logout token whose signature holds is still refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogoutTokenError {
    #[error("logout_token iss is not the provider's issuer")]
    Issuer,
    #[error("logout_token aud does not name this client")]
    Audience,
    #[error("logout_token has no iat")]
    NoIssuedAt,
    #[error("logout_token iat is in the future")]
    IssuedInTheFuture,
    #[error("logout_token expired")]
    Expired,
    #[error("logout_token has no jti")]
    NoId,
    /// A nonce would make it usable as an id_token: forbidden by the specification.
    #[error("logout_token carries a nonce")]
    Nonce,
    #[error("logout_token lacks the back-channel logout event")]
    NoEvent,
    #[error("logout_token names neither sid nor sub")]
    NoSubject,
}

/// Checks the claims of a logout token whose signature already holds.
pub fn check_logout_claims(
    claims: &Map<String, Value>,
    issuer: &str,
    client_id: &str,
    now: i64,
    skew: i64,
) -> Result<LogoutSubject, LogoutTokenError> {
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(LogoutTokenError::Issuer);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == client_id,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !audience_ok {
        return Err(LogoutTokenError::Audience);
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(LogoutTokenError::NoIssuedAt)?;
    if iat > now + skew {
        return Err(LogoutTokenError::IssuedInTheFuture);
    }
    if let Some(exp) = claims.get("exp") {
        if exp.as_i64().is_none_or(|exp| exp + skew < now) {
            return Err(LogoutTokenError::Expired);
        }
    }
    if claims.get("jti").and_then(Value::as_str).is_none() {
        return Err(LogoutTokenError::NoId);
    }
    if claims.contains_key("nonce") {
        return Err(LogoutTokenError::Nonce);
    }
    let event_ok = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|events| events.get(BACKCHANNEL_LOGOUT_EVENT))
        .is_some_and(Value::is_object);
    if !event_ok {
        return Err(LogoutTokenError::NoEvent);
    }
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let subject = LogoutSubject {
        sid: text("sid"),
        sub: text("sub"),
    };
    if subject.sid.is_none() && subject.sub.is_none() {
        return Err(LogoutTokenError::NoSubject);
    }
    Ok(subject)
}

/// The RP-initiated logout URL (OpenID Connect RP-Initiated Logout 1.0).
pub fn end_session_url(
    endpoint: &Url,
    id_token: &str,
    client_id: &str,
    post_logout_redirect_uri: &Url,
    state: &str,
) -> Url {
    let mut url = endpoint.clone();
    url.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("client_id", client_id)
        .append_pair(
            "post_logout_redirect_uri",
            post_logout_redirect_uri.as_str(),
        )
        .append_pair("state", state);
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Map<String, Value> {
        json!({
            "iss": "https://op", "aud": "rp", "iat": 1000, "jti": "j1", "sid": "s1",
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}}
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn check(claims: &Map<String, Value>) -> Result<LogoutSubject, LogoutTokenError> {
        check_logout_claims(claims, "https://op", "rp", 1010, 60)
    }

    #[test]
    fn a_valid_token_names_its_sid() {
        assert_eq!(check(&valid()).unwrap().sid.as_deref(), Some("s1"));
    }

    #[test]
    fn each_missing_or_wrong_claim_is_refused() {
        let cases: Vec<(&str, Value)> = vec![
            ("iss", json!("https://evil")),
            ("aud", json!("other")),
            ("aud", json!(["other"])),
            ("iat", Value::Null),
            ("iat", json!(99999)),
            ("jti", Value::Null),
            ("events", Value::Null),
            (
                "events",
                json!({"http://schemas.openid.net/event/other": {}}),
            ),
            ("nonce", json!("n")),
            ("sid", Value::Null),
        ];
        for (name, value) in cases {
            let mut claims = valid();
            if value.is_null() {
                claims.remove(name);
            } else {
                claims.insert(name.into(), value.clone());
            }
            assert!(check(&claims).is_err(), "{name} = {value}");
        }
    }
}
