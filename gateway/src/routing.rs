//! Request routing: which app a request is for, and the path its policy is decided on.
//!
//! Path confusion is the classic way around an authenticating proxy (a rule checks one path, the
//! application serves another). Guichet decides on the percent-decoded path and refuses, with
//! 400, every path whose meaning could differ between the gateway and the application: dot
//! segments, empty segments, encoded or back slashes, encoded NUL or control characters, and
//! double-encoded separators. What is left decodes to the same path everywhere, so forwarding
//! the original bytes is forwarding the path the policy saw.

use std::collections::HashMap;

use guichet_policies::prefix_matches;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path must start with '/'")]
    NotAbsolute,
    #[error("ambiguous path: {0}")]
    Ambiguous(&'static str),
}

/// Returns the percent-decoded path, or why it is refused.
pub fn normalize_path(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if raw.contains('\\') {
        return Err(PathError::Ambiguous("backslash"));
    }
    let lower = raw.to_ascii_lowercase();
    for (needle, why) in [
        ("%2f", "encoded slash"),
        ("%5c", "encoded backslash"),
        ("%00", "encoded NUL"),
        ("%25", "double encoding"),
    ] {
        if lower.contains(needle) {
            return Err(PathError::Ambiguous(why));
        }
    }
    let decoded = percent_encoding::percent_decode_str(raw).collect::<Vec<u8>>();
    if decoded.iter().any(|b| b.is_ascii_control()) {
        return Err(PathError::Ambiguous("control character"));
    }
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::Ambiguous("not UTF-8"))?;
    let segments: Vec<&str> = decoded[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => return Err(PathError::Ambiguous("dot segment")),
            // A trailing slash is fine; `//x` or `/a//b` is not.
            "" if i != last => return Err(PathError::Ambiguous("empty segment")),
            _ => {}
        }
    }
    Ok(decoded)
}

/// The host name a request is for: lowercase, without port or trailing dot.
pub fn request_host(host_header: &str) -> Option<String> {
    let host = host_header.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // IPv6 literal: [::1]:8080
        let end = rest.find(']')?;
        &host[..end + 2]
    } else {
        host.split(':').next()?
    };
    let name = name.trim_end_matches('.');
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| name.to_ascii_lowercase())
}

/// Host and path-prefix lookup of app indexes.
#[derive(Debug, Default)]
pub struct Router {
    /// For each host, (prefix, app index) with the longest prefix first.
    by_host: HashMap<String, Vec<(String, usize)>>,
}

impl Router {
    pub fn add(&mut self, host: &str, prefix: &str, app: usize) {
        let routes = self.by_host.entry(host.to_ascii_lowercase()).or_default();
        routes.push((prefix.to_owned(), app));
        routes.sort_by_key(|route| std::cmp::Reverse(route.0.len()));
    }

    /// `path` is the normalized path. No match means 404: never fall through to another app.
    pub fn route(&self, host: &str, path: &str) -> Option<usize> {
        self.by_host
            .get(host)?
            .iter()
            .find(|(prefix, _)| prefix_matches(prefix, path))
            .map(|(_, app)| *app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambiguous_paths_are_refused() {
        for path in [
            "/admin/../",
            "/x/..%2fadmin",
            "/%2e%2e/admin",
            "/%2E%2E/admin",
            "//admin",
            "/admin%2f",
            "/a//b",
            "/a/./b",
            "/\\evil",
            "/%5Cevil",
            "/a%00b",
            "/a%0d%0ab",
            "/%252e%252e/admin",
            "/%09/evil.example",
        ] {
            assert!(normalize_path(path).is_err(), "{path} should be refused");
        }
    }

    #[test]
    fn ordinary_paths_decode_once() {
        assert_eq!(normalize_path("/").unwrap(), "/");
        assert_eq!(normalize_path("/a/b/").unwrap(), "/a/b/");
        assert_eq!(normalize_path("/%61dmin").unwrap(), "/admin");
        assert_eq!(normalize_path("/caf%C3%A9").unwrap(), "/café");
        assert_eq!(normalize_path("/a.b/..c").unwrap(), "/a.b/..c");
    }

    #[test]
    fn hosts_ignore_port_and_case() {
        assert_eq!(
            request_host("App.Example.org:8080").as_deref(),
            Some("app.example.org")
        );
        assert_eq!(request_host("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(request_host("example.org.").as_deref(), Some("example.org"));
        assert_eq!(request_host(""), None);
    }

    #[test]
    fn longest_prefix_wins_and_unknown_hosts_match_nothing() {
        let mut router = Router::default();
        router.add("portal.example", "", 0);
        router.add("portal.example", "/library", 1);
        assert_eq!(router.route("portal.example", "/library/x"), Some(1));
        assert_eq!(router.route("portal.example", "/libraryx"), Some(0));
        assert_eq!(router.route("other.example", "/"), None);
    }
}
