//! Writing complete responses from the gateway itself (pages, redirects, JSON).

use bytes::Bytes;

use crate::http::pages::{self, Bilingual};

/// A response the gateway answers with instead of proxying.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
    pub headers: Vec<(&'static str, String)>,
    /// Content-Security-Policy, when the page needs more than the strict default.
    pub csp: Option<String>,
}

/// No script, no outside resource, forms only to the gateway itself, never framed.
pub const STRICT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

impl Reply {
    pub fn html(status: u16, body: String) -> Self {
        Self {
            status,
            content_type: HTML,
            body: Bytes::from(body),
            headers: Vec::new(),
            csp: None,
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: JSON,
            body: Bytes::from(value.to_string()),
            headers: Vec::new(),
            csp: None,
        }
    }

    /// A body of the given type, as a provider endpoint answered it.
    pub fn raw(status: u16, content_type: &'static str, body: String) -> Self {
        Self {
            status,
            content_type,
            body: Bytes::from(body),
            headers: Vec::new(),
            csp: None,
        }
    }

    pub fn text(status: u16, body: &'static str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: Bytes::from_static(body.as_bytes()),
            headers: Vec::new(),
            csp: None,
        }
    }

    pub fn error(status: u16, title: Bilingual, message: Bilingual, correlation_id: &str) -> Self {
        Self::html(status, pages::error_page(title, message, correlation_id))
    }

    /// 302 to a location the caller has already checked.
    pub fn redirect(location: &str) -> Self {
        Self {
            status: 302,
            content_type: HTML,
            body: Bytes::new(),
            headers: vec![("location", location.to_owned())],
            csp: None,
        }
    }

    /// An auto-submitting form to `action` (SAML POST binding): the one inline script allowed
    /// by its hash, and form submission allowed to that origin only.
    pub fn auto_post(action: &url::Url, fields: &[(String, String)], correlation_id: &str) -> Self {
        let mut reply = Self::html(
            200,
            pages::auto_post_page(action.as_str(), fields, correlation_id),
        );
        reply.csp = Some(format!(
            "default-src 'none'; style-src 'unsafe-inline'; script-src '{}'; form-action {}; frame-ancestors 'none'; base-uri 'none'",
            pages::AUTO_POST_SCRIPT_HASH,
            action.origin().ascii_serialization()
        ));
        reply
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}
