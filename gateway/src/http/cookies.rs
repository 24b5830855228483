//! Reading and writing the gateway's cookies.

use http::HeaderMap;

/// Attributes for a cookie the gateway sets.
pub struct CookieSpec<'a> {
    pub name: &'a str,
    pub path: &'a str,
    pub domain: Option<&'a str>,
    pub secure: bool,
    /// `None`: a browser-session cookie.
    pub max_age: Option<u64>,
}

impl CookieSpec<'_> {
    pub fn set(&self, value: &str) -> String {
        let mut cookie = format!(
            "{}={}; Path={}; HttpOnly; SameSite=Lax",
            self.name, value, self.path
        );
        if let Some(domain) = self.domain {
            cookie.push_str("; Domain=");
            cookie.push_str(domain);
        }
        if self.secure {
            cookie.push_str("; Secure");
        }
        if let Some(max_age) = self.max_age {
            cookie.push_str(&format!("; Max-Age={max_age}"));
        }
        cookie
    }

    pub fn clear(&self) -> String {
        CookieSpec {
            max_age: Some(0),
            ..*self
        }
        .set("")
    }
}

/// Every value of cookie `name` in the request, in order.
pub fn values<'h>(headers: &'h HeaderMap, name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(move |pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key.trim() == name).then(|| value.trim())
        })
}

/// Whether any of the named cookies is in the request (cheap: no allocation).
pub fn contains_any(headers: &HeaderMap, names: &[&str]) -> bool {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('=').map(|(k, _)| k.trim()))
        .any(|key| names.contains(&key))
}

/// The Cookie header without the named cookies, or `None` if nothing is left.
/// The gateway's own cookies are none of the application's business.
pub fn without(headers: &HeaderMap, names: &[&str]) -> Option<String> {
    let kept: Vec<&str> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let key = pair.split_once('=').map(|(k, _)| k.trim()).unwrap_or(pair);
            !names.contains(&key)
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_removes_named_cookies() {
        let mut headers = HeaderMap::new();
        headers.append("cookie", "a=1; guichet_session=abc".parse().unwrap());
        headers.append("cookie", "b=2".parse().unwrap());
        assert_eq!(
            values(&headers, "guichet_session").collect::<Vec<_>>(),
            ["abc"]
        );
        assert_eq!(
            without(&headers, &["guichet_session"]).as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(without(&headers, &["a", "b", "guichet_session"]), None);
    }

    #[test]
    fn cookie_attributes() {
        let spec = CookieSpec {
            name: "s",
            path: "/",
            domain: None,
            secure: true,
            max_age: None,
        };
        assert_eq!(spec.set("v"), "s=v; Path=/; HttpOnly; SameSite=Lax; Secure");
        assert!(spec.clear().ends_with("Max-Age=0"));
    }
}
