//! The signed-in user of a request: finding the session, enforcing its timeouts, and reading
//! identity values for headers.

use std::time::Duration;

use http::HeaderMap;
use pingora::http::RequestHeader;

use crate::cookies;
use crate::headers::ValueSource;
use crate::session::{SessionId, SessionRecord, StoreError};
use crate::state::Gateway;

pub struct Identity {
    pub id: SessionId,
    pub record: SessionRecord,
}

impl Identity {
    /// The value for a header, or `None` when the user has none (the header is then omitted).
    pub fn value(&self, source: &ValueSource, separator: &str) -> Option<String> {
        let principal = &self.record.principal;
        let joined = |values: &[String]| (!values.is_empty()).then(|| values.join(separator));
        match source {
            ValueSource::Subject => Some(principal.subject.clone()),
            ValueSource::Provider => Some(principal.provider.clone()),
            ValueSource::Roles => joined(&self.record.roles),
            ValueSource::AuthLevel => principal.auth_level.as_ref().map(|l| l.0.clone()),
            ValueSource::Attribute(name) => joined(principal.attribute_values(name)),
            ValueSource::Constant(value) => Some(value.clone()),
        }
    }
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The session id from the request's cookie, if it has a well-formed one.
pub fn session_id(gateway: &Gateway, headers: &HeaderMap) -> Option<SessionId> {
    cookies::values(headers, &gateway.sessions.cookie_name).find_map(SessionId::parse)
}

/// Loads the request's session. A malformed, unknown or expired cookie is no session; only a
/// store failure is an error (the caller decides whether that denies).
pub async fn current(
    gateway: &Gateway,
    request: &RequestHeader,
) -> Result<Option<Identity>, StoreError> {
    let Some(id) = session_id(gateway, &request.headers) else {
        return Ok(None);
    };
    let Some(mut record) = gateway.store.load_session(&id).await? else {
        return Ok(None);
    };
    let settings = &gateway.sessions;
    let idle = settings.idle_timeout.as_secs() as i64;
    let now = now();
    if !record.is_live(now, idle) {
        gateway.store.delete_session(&id).await.ok();
        return Ok(None);
    }
    // Sliding idle timeout without a write per request: refresh once the record is a little old.
    let refresh_after = (idle / 10).clamp(1, 60);
    if now - record.last_seen >= refresh_after {
        record.last_seen = now;
        let ttl = remaining_ttl(&record, settings.idle_timeout, now);
        if let Err(e) = gateway.store.save_session(&id, &record, ttl).await {
            tracing::warn!(error = %e, "could not refresh session activity");
        }
    }
    Ok(Some(Identity { id, record }))
}

/// How long the store should keep a record: until idle expiry, never past absolute expiry.
pub fn remaining_ttl(record: &SessionRecord, idle: Duration, now: i64) -> Duration {
    let absolute_left = (record.expires_at - now).max(1) as u64;
    idle.min(Duration::from_secs(absolute_left))
}
