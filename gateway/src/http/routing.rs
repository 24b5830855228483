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
    #[error("request target is neither origin-form nor http(s) absolute-form")]
    BadTarget,
    #[error("ambiguous path: {0}")]
    Ambiguous(&'static str),
}

/// The request target as the application will get it: origin-form `path[?query]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Origin-form, exactly the client's bytes for path and query.
    pub origin_form: String,
    /// The path the policy decides on (see [`normalize_path`]).
    pub decision_path: String,
}

/// Reads the raw request target. Only printable ASCII is accepted (browsers percent-encode
/// everything else); absolute-form (`http://host/path`) is reduced to origin-form so the
/// application receives the same path the policy saw, and any other form is refused.
pub fn parse_target(raw: &[u8]) -> Result<Target, PathError> {
    if raw.iter().any(|b| !(0x21..=0x7e).contains(b)) {
        return Err(PathError::Ambiguous(
            "non-ASCII or control byte in the request target",
        ));
    }
    let raw = std::str::from_utf8(raw).map_err(|_| PathError::BadTarget)?;
    let origin_form = if raw.starts_with('/') {
        raw
    } else {
        let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
        let rest = if lower.starts_with("http://") {
            &raw[7..]
        } else if lower.starts_with("https://") {
            &raw[8..]
        } else {
            return Err(PathError::BadTarget);
        };
        match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
            _ => return Err(PathError::BadTarget),
        }
    };
    if origin_form.contains('#') {
        return Err(PathError::Ambiguous("fragment in the request target"));
    }
    let path = origin_form.split('?').next().unwrap_or(origin_form);
    Ok(Target {
        decision_path: normalize_path(path)?,
        origin_form: origin_form.to_owned(),
    })
}

/// Returns the percent-decoded path the policy decides on, or why it is refused.
///
/// Path parameters (`;jsessionid=...`, which Java containers strip before routing) are removed
/// from each segment for the decision, so `/admin;x=1` is decided as `/admin`; a segment that is
/// a dot segment once its parameters are removed (`..;`) is refused like `..`.
pub fn normalize_path(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    // Fast path for the common case: nothing encoded, no parameters, no dot or empty segment.
    if !raw
        .bytes()
        .any(|b| matches!(b, b'%' | b';' | b'\\') || b.is_ascii_control())
        && !raw.contains("/.")
        && !raw.contains("//")
    {
        return Ok(raw.to_owned());
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
        ("%3b", "encoded semicolon"),
        // Decoded, these end the path for whoever parses it again after us.
        ("%3f", "encoded question mark"),
        ("%23", "encoded number sign"),
    ] {
        if lower.contains(needle) {
            return Err(PathError::Ambiguous(why));
        }
    }
    // A `%` must start an escape (`%u0061`-style and broken escapes mean different things
    // to different servers).
    let bytes = raw.as_bytes();
    for (at, _) in raw.match_indices('%') {
        let escape = bytes.get(at + 1..at + 3);
        if !escape.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) {
            return Err(PathError::Ambiguous("malformed percent escape"));
        }
    }
    let decoded = percent_encoding::percent_decode_str(raw).collect::<Vec<u8>>();
    if decoded.iter().any(|b| b.is_ascii_control()) {
        return Err(PathError::Ambiguous("control character"));
    }
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::Ambiguous("not UTF-8"))?;
    let segments: Vec<&str> = decoded[1..].split('/').collect();
    let last = segments.len() - 1;
    let mut decision = String::with_capacity(decoded.len());
    for (i, segment) in segments.iter().enumerate() {
        let (name, parameters) = match segment.split_once(';') {
            Some((name, _)) => (name, true),
            None => (*segment, false),
        };
        match name {
            "." | ".." => return Err(PathError::Ambiguous("dot segment")),
            // A trailing slash is fine; `//x` or `/a//b` is not, nor `/;x/`.
            "" if i != last || parameters => return Err(PathError::Ambiguous("empty segment")),
            _ => {}
        }
        decision.push('/');
        decision.push_str(name);
    }
    Ok(decision)
}

/// For applications that ignore case (IIS, ASP.NET, Windows file systems): whether the
/// decided path has something such a server reads differently from the policy: non-ASCII
/// letters it may fold (`ı` to `I`), a segment ending in a dot or a space (dropped by Windows),
/// `~` (8.3 short names) or `::` (NTFS streams).
pub fn ambiguous_for_windows(path: &str) -> bool {
    !path.is_ascii()
        || path.contains('~')
        || path.contains("::")
        || path
            .split('/')
            .any(|segment| segment.ends_with('.') || segment.ends_with(' '))
}

/// The host name a request is for: lowercase, without port or trailing dot. `None` when the
/// header is not a host name with an optional numeric port.
pub fn request_host(host_header: &str) -> Option<String> {
    let host = host_header.trim();
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        // IPv6 literal: [::1]:8080
        let end = rest.find(']')?;
        (&host[..end + 2], &host[end + 2..])
    } else {
        match host.find(':') {
            Some(colon) => (&host[..colon], &host[colon..]),
            None => (host, ""),
        }
    };
    if !port.is_empty() {
        let digits = port.strip_prefix(':')?;
        if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let name = name.trim_end_matches('.');
    (!name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b)))
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
            "/admin/users%3F.css",
            "/admin%23.css",
            "/%u0061dmin",
            "/admin%2",
            "/admin%zz",
            "/admin%",
        ] {
            assert!(normalize_path(path).is_err(), "{path} should be refused");
        }
    }

    #[test]
    fn paths_windows_reads_differently_are_spotted() {
        for path in [
            "/adm\u{131}n",
            "/admin./x",
            "/admin /x",
            "/ADMIN~1/x",
            "/a.txt::$DATA",
        ] {
            assert!(ambiguous_for_windows(path), "{path}");
        }
        for path in ["/admin/x", "/a.b/c", "/"] {
            assert!(!ambiguous_for_windows(path), "{path}");
        }
    }

    #[test]
    fn path_parameters_are_not_a_way_around_the_policy() {
        assert_eq!(normalize_path("/admin;x=1").unwrap(), "/admin");
        assert_eq!(
            normalize_path("/app;jsessionid=AB12/page").unwrap(),
            "/app/page"
        );
        for path in [
            "/public/..;/admin",
            "/public/.;/admin",
            "/;x/admin",
            "/a%3bb",
            "/public/..;x=1/admin",
        ] {
            assert!(normalize_path(path).is_err(), "{path} should be refused");
        }
    }

    #[test]
    fn only_origin_and_http_absolute_form_targets_are_accepted() {
        let t = parse_target(b"/a/b?c=d").unwrap();
        assert_eq!(
            (t.origin_form.as_str(), t.decision_path.as_str()),
            ("/a/b?c=d", "/a/b")
        );
        let t = parse_target(b"http://app.example/x?y").unwrap();
        assert_eq!(t.origin_form, "/x?y");
        assert_eq!(
            parse_target(b"HTTPS://app.example/").unwrap().origin_form,
            "/"
        );
        for bad in [
            &b"a:/admin"[..],
            b"admin/secret",
            b"*",
            b"http://app.example",
            b"http://app.example?x",
            b"/caf\xc3\xa9",
            b"/a#b",
            b"/a\x01",
        ] {
            assert!(
                parse_target(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
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
        assert_eq!(request_host("app.example:evil.com"), None);
        assert_eq!(request_host("app.example:"), None);
        assert_eq!(request_host("[::1]x"), None);
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
