//! Login transactions: the server-side memory of a login in progress.
//!
//! A request for a protected page without a session stores where the user was going (path and
//! query, never taken from a request parameter) with a CSRF token and the provider's state, and
//! binds it to the browser with a short-lived cookie. The transaction is single use: finishing a
//! login takes it out of the store.

use base64::Engine;
use guichet_protocols::ProviderState;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// How long a user has to finish signing in.
pub const TRANSACTION_TTL_SECS: u64 = 600;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginTransaction {
    pub app: String,
    /// Path and query on the app's host, starting with a single `/`.
    pub return_to: String,
    pub csrf_token: String,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub provider_state: ProviderState,
}

impl LoginTransaction {
    pub fn new(app: &str, return_to: &str) -> Self {
        Self {
            app: app.to_owned(),
            return_to: safe_return_path(return_to).unwrap_or("/").to_owned(),
            csrf_token: random_token(),
            provider: None,
            provider_state: ProviderState::default(),
        }
    }

    #[allow(clippy::expect_used, reason = "a login transaction always serializes")]
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a login transaction always serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// 256 random bits, base64url: transaction ids and CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `text` has the shape of a [`random_token`] (checked before it names a store key).
pub fn is_token(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Store key of a transaction id, after checking its shape.
pub fn transaction_key(id: &str) -> Option<String> {
    is_token(id).then(|| format!("login:{id}"))
}

/// Returns `path` if it is a same-origin path a browser will not read as another host:
/// one leading `/`, no `//` or `/\` (protocol-relative), no backslash or control character
/// anywhere, even percent-encoded.
pub fn safe_return_path(path: &str) -> Option<&str> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') || matches!(bytes.get(1), Some(b'/') | Some(b'\\')) {
        return None;
    }
    if path.contains('\\') || path.chars().any(|c| c.is_control()) {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    if decoded.starts_with("//")
        || decoded.starts_with("/\\")
        || decoded.contains('\\')
        || decoded.chars().any(|c| c.is_control())
    {
        return None;
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_site_return_paths_are_refused() {
        for evil in [
            "//evil.example",
            "/\\evil.example",
            "/%09/evil.example",
            "/%5Cevil.example",
            "/%2F/evil.example",
            "///evil.example",
            "https://evil.example",
            "evil.example",
            "/ok\r\nLocation: https://evil.example",
            "",
        ] {
            assert_eq!(safe_return_path(evil), None, "{evil}");
        }
        assert_eq!(safe_return_path("/a/b?c=d&e=/f"), Some("/a/b?c=d&e=/f"));
        assert_eq!(LoginTransaction::new("app", "//evil").return_to, "/");
    }
}
