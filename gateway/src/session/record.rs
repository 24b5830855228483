use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

use http::{HeaderName, HeaderValue};

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
    /// The identity headers already encoded, for the app that asked first. Never stored.
    #[serde(skip)]
    pub rendered: RenderedHeaders,
}

/// Identity headers encoded once per session and app, then reused by every request of the
/// session while the in-memory store hands out the same record. Not part of the record's
/// value: a clone, a record read from Redis or a changed record starts empty and is rendered
/// again, so it can never be stale.
#[derive(Default)]
pub struct RenderedHeaders(OnceLock<(usize, Vec<(HeaderName, HeaderValue)>)>);

impl RenderedHeaders {
    /// The headers for app `app`: rendered by the first request of the session and kept; an
    /// app other than the one that filled the cache renders its own each time (sessions are
    /// normally used by one app).
    pub fn for_app(
        &self,
        app: usize,
        render: impl Fn() -> Vec<(HeaderName, HeaderValue)>,
    ) -> Cow<'_, [(HeaderName, HeaderValue)]> {
        let (cached_app, headers) = self.0.get_or_init(|| (app, render()));
        if *cached_app == app {
            Cow::Borrowed(headers)
        } else {
            Cow::Owned(render())
        }
    }
}

impl Clone for RenderedHeaders {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for RenderedHeaders {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for RenderedHeaders {}

impl fmt::Debug for RenderedHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RenderedHeaders")
    }
}

impl SessionRecord {
    /// Whether the record is still valid at `now` for this idle timeout.
    pub fn is_live(&self, now: i64, idle_secs: i64) -> bool {
        now < self.expires_at && now - self.last_seen < idle_secs
    }
}
