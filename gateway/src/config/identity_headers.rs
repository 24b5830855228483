//! The identity headers' configuration: where each value comes from, how it is encoded, and
//! which header names the gateway keeps for itself. Runtime use is in `crate::http::headers`.

use std::fmt;

use serde::{de, Deserialize, Deserializer};

use super::{ConfigError, IdentityHeadersConfig};

/// Headers the gateway itself sets or never lets through from a client, on every app.
pub const GATEWAY_CONTROLLED: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-uri",
    "x-forwarded-prefix",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-url-scheme",
    "front-end-https",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "x-host",
    "forwarded",
    "x-request-id",
    // Method overrides (Rack, Express, Symfony...): a POST must not become the DELETE a
    // `methods:` rule was written for.
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The canonical form used to compare header names: lowercase, `_` as `-`.
pub fn canonical_name(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'_' => '-',
            b => b.to_ascii_lowercase() as char,
        })
        .collect()
}

/// A header value source the configuration cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueSourceError {
    #[error("attribute name missing after 'attribute:'")]
    NoAttributeName,
    #[error(
        "unknown value {0:?}: expected subject, provider, roles, auth_level, attribute:NAME or constant:TEXT"
    )]
    Unknown(String),
}

/// Where a header's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueSource {
    Subject,
    Provider,
    Roles,
    AuthLevel,
    Attribute(String),
    Constant(String),
}

impl<'de> Deserialize<'de> for ValueSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ValueSource::parse(&text).map_err(de::Error::custom)
    }
}

impl ValueSource {
    pub fn parse(text: &str) -> Result<Self, ValueSourceError> {
        Ok(match text {
            "subject" => ValueSource::Subject,
            "provider" => ValueSource::Provider,
            "roles" => ValueSource::Roles,
            "auth_level" => ValueSource::AuthLevel,
            _ => {
                if let Some(name) = text.strip_prefix("attribute:") {
                    if name.is_empty() {
                        return Err(ValueSourceError::NoAttributeName);
                    }
                    ValueSource::Attribute(name.to_string())
                } else if let Some(value) = text.strip_prefix("constant:") {
                    ValueSource::Constant(value.to_string())
                } else {
                    return Err(ValueSourceError::Unknown(text.to_owned()));
                }
            }
        })
    }
}

/// How a value is written into a header. HTTP header values are bytes; legacy applications
/// disagree on what to do with anything outside ASCII, so the operator chooses per header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// UTF-8, then percent-encoding of every byte outside printable ASCII and of `%`
    /// (`Grégory` → `Gr%C3%A9gory`). Pure ASCII, lossless, the default.
    #[default]
    Percent,
    /// Raw UTF-8 bytes (`Grégory` as `47 72 C3 A9 ...`). For apps that decode UTF-8 headers.
    Utf8,
    /// ISO-8859-1 bytes; characters outside Latin-1 become `?`. For old Java/PHP apps.
    Latin1,
    /// ASCII transliteration (`Grégory` → `Gregory`, `Françoise` → `Francoise`). Lossy.
    Ascii,
    /// Base64 of the UTF-8 bytes.
    Base64,
    /// RFC 2047 encoded word (`=?UTF-8?B?...?=`) when non-ASCII, else the plain value.
    Rfc2047,
}

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueSource::Subject => f.write_str("subject"),
            ValueSource::Provider => f.write_str("provider"),
            ValueSource::Roles => f.write_str("roles"),
            ValueSource::AuthLevel => f.write_str("auth_level"),
            ValueSource::Attribute(name) => write!(f, "attribute:{name}"),
            ValueSource::Constant(value) => write!(f, "constant:{value}"),
        }
    }
}

/// Checks an app's identity headers and returns their names, parsed once for good.
pub fn validate(
    config: &IdentityHeadersConfig,
    at: &str,
) -> Result<Vec<http::HeaderName>, ConfigError> {
    if config.separator.chars().any(char::is_control) {
        return Err(ConfigError::new(
            format!("{at}.separator"),
            "must not contain control characters",
        ));
    }
    let mut names = Vec::with_capacity(config.headers.len());
    for (i, mapping) in config.headers.iter().enumerate() {
        let Ok(name) = http::HeaderName::from_bytes(mapping.name.as_bytes()) else {
            return Err(ConfigError::new(
                format!("{at}.headers[{i}].name"),
                format!("{:?} is not a valid header name", mapping.name),
            ));
        };
        names.push(name);
        let canonical = canonical_name(&mapping.name);
        if GATEWAY_CONTROLLED.contains(&canonical.as_str())
            || matches!(
                canonical.as_str(),
                "host"
                    | "cookie"
                    | "connection"
                    | "content-length"
                    | "transfer-encoding"
                    | "upgrade"
            )
        {
            return Err(ConfigError::new(
                format!("{at}.headers[{i}].name"),
                format!("{} is reserved", mapping.name),
            ));
        }
        if let ValueSource::Constant(value) = &mapping.value {
            if value.chars().any(char::is_control) {
                return Err(ConfigError::new(
                    format!("{at}.headers[{i}].value"),
                    "must not contain control characters",
                ));
            }
        }
    }
    Ok(names)
}
