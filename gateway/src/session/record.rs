use std::fmt;

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
}

impl SessionRecord {
    /// Whether the record is still valid at `now` for this idle timeout.
    pub fn is_live(&self, now: i64, idle_secs: i64) -> bool {
        now < self.expires_at && now - self.last_seen < idle_secs
    }
}
