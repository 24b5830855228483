use std::fmt;
use std::sync::{Arc, RwLock};

use guichet_directory_client::DirectoryUser;

use base64::Engine;
use guichet_protocols::Principal;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// An opaque session id: 256 random bits, base64url in the cookie.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

const ID_BYTES: usize = 32;
/// base64url without padding of 32 bytes.
const ID_CHARS: usize = 43;

impl SessionId {
    pub fn generate() -> Self {
        let mut bytes = [0u8; ID_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SessionId(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts only the exact shape we issue; anything else is "no session".
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == ID_CHARS
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .is_ok_and(|b| b.len() == ID_BYTES))
        .then(|| SessionId(text.to_owned()))
    }

    /// The cookie value. Only the cookie writer should call this.
    pub fn as_cookie_value(&self) -> &str {
        &self.0
    }

    /// What stores use as a key: a hash, so a dump of the store yields no usable cookie.
    pub fn storage_key(&self) -> String {
        crate::session::crypto::digest_hex(self.0.as_bytes())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// What the gateway remembers about a signed-in browser.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub principal: Principal,
    pub roles: Vec<String>,
    /// The app the user signed in through.
    pub app: String,
    /// Unix seconds.
    pub created_at: i64,
    pub last_seen: i64,
    /// Unix seconds after which the session is over, however active.
    pub expires_at: i64,
    /// The directory person this login is linked to (pivot identity), when the provider has
    /// a pivot and a directory is configured.
    #[serde(default)]
    pub pivot: Option<Pivot>,
    /// What each request of the session needs for the app that asked first (roles,
    /// encoded identity headers), computed once. Never stored.
    #[serde(skip)]
    pub views: ViewCache<AppView>,
}

/// Which directory attribute and (normalized) value name the person.
pub use guichet_directory_client::PivotQuery as Pivot;

/// What one app sees of a session: the person's roles for that app, the attributes its rules
/// and headers read (provider attributes, completed by the directory's), and the identity
/// headers it gets, encoded. Computed once per session, app and directory entry, and cached in
/// the session's [`ViewCache`] (built by `crate::identity`).
#[derive(Debug)]
pub struct AppView {
    pub roles: Vec<String>,
    pub attributes: std::collections::BTreeMap<String, Vec<String>>,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// A value computed once per session, app and directory entry, then reused by every request
/// of the session while the in-memory store hands out the same record. Not part of the
/// record's value: a clone, a record read from Redis or a changed record starts empty and is
/// computed again; a directory entry refreshed by the cache (another `Arc`) recomputes it. So
/// it can never be stale.
pub struct ViewCache<T>(RwLock<Option<CachedView<T>>>);

struct CachedView<T> {
    /// The app's configuration generation and index (a reload builds new apps).
    app: (u64, usize),
    /// What the directory said (known, unknown, unavailable...): a view built for one state
    /// never serves another.
    state: u8,
    /// The directory entry the value was computed from, held so that the comparison by
    /// address below cannot be fooled by a freed and reused allocation.
    person: Option<Arc<DirectoryUser>>,
    value: Arc<T>,
}

impl<T> Default for ViewCache<T> {
    fn default() -> Self {
        Self(RwLock::new(None))
    }
}

fn same_person(a: &Option<Arc<DirectoryUser>>, b: Option<&Arc<DirectoryUser>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

impl<T> ViewCache<T> {
    /// The value for app `app` and directory entry `person`, computed when the cache holds
    /// another (sessions are normally used by one app, so it rarely changes).
    pub fn get_or_build(
        &self,
        app: (u64, usize),
        state: u8,
        person: Option<&Arc<DirectoryUser>>,
        build: impl FnOnce() -> T,
    ) -> Arc<T> {
        if let Some(cached) = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            if cached.app == app && cached.state == state && same_person(&cached.person, person) {
                return cached.value.clone();
            }
        }
        let value = Arc::new(build());
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(CachedView {
            app,
            state,
            person: person.cloned(),
            value: value.clone(),
        });
        value
    }
}

impl<T> Clone for ViewCache<T> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<T> PartialEq for ViewCache<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for ViewCache<T> {}

impl<T> fmt::Debug for ViewCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ViewCache")
    }
}

impl SessionRecord {
    /// Whether the record is still valid at `now` for this idle timeout.
    pub fn is_live(&self, now: i64, idle_secs: i64) -> bool {
        now < self.expires_at && now - self.last_seen < idle_secs
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A session created at 0 with an 8-hour absolute limit, last seen at `last_seen`.
    pub(crate) fn record(last_seen: i64) -> SessionRecord {
        SessionRecord {
            principal: Principal {
                provider: "local".into(),
                subject: "alice".into(),
                attributes: Default::default(),
                auth_time: time::OffsetDateTime::UNIX_EPOCH,
                auth_level: None,
                logout: Default::default(),
            },
            roles: Vec::new(),
            app: "main".into(),
            created_at: 0,
            last_seen,
            expires_at: 8 * 3600,
            pivot: None,
            views: Default::default(),
        }
    }

    #[test]
    fn a_session_in_use_still_ends_at_its_absolute_limit() {
        let idle = 30 * 60;
        // Seen a second ago, well within the idle timeout, at and after the absolute limit.
        for now in [8 * 3600, 8 * 3600 + 1] {
            assert!(!record(now - 1).is_live(now, idle), "at {now}");
        }
        assert!(record(8 * 3600 - 2).is_live(8 * 3600 - 1, idle));
    }

    #[test]
    fn an_idle_session_ends_at_its_idle_limit() {
        let idle = 30 * 60;
        assert!(record(100).is_live(100 + idle - 1, idle));
        assert!(!record(100).is_live(100 + idle, idle));
    }
}
