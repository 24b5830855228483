//! Identity headers: removing spoofed ones and writing the real ones.
//!
//! Legacy applications trust these headers blindly, so the gateway must be the only writer:
//! every incoming header the gateway controls, or that starts with the app's identity prefix,
//! is removed before anything else. Names are compared case-insensitively with `_` equal to `-`,
//! because many servers (CGI, PHP, some Java containers) map `X_Remote_User` and `X-Remote-User`
//! to the same variable.

use base64::Engine;
use http::HeaderValue;

pub use crate::config::identity_headers::{
    canonical_name, validate, Encoding, ValueSource, GATEWAY_CONTROLLED,
};
use crate::config::{ConfigError, IdentityHeadersConfig};

/// `name` equals `canonical` (already lowercase with `-`) once canonicalized.
fn canonical_eq(name: &[u8], canonical: &str) -> bool {
    name.len() == canonical.len()
        && name.iter().zip(canonical.bytes()).all(|(&a, b)| {
            let a = if a == b'_' {
                b'-'
            } else {
                a.to_ascii_lowercase()
            };
            a == b
        })
}

/// Writes a value as header bytes. Control characters (CR, LF, NUL, DEL, C1...) are removed
/// first, whatever the encoding, so a value can never split or smuggle a header.
#[allow(clippy::expect_used, reason = "control characters were removed")]
pub fn encode(value: &str, encoding: Encoding) -> HeaderValue {
    let clean: String = value.chars().filter(|c| !c.is_control()).collect();
    let bytes: Vec<u8> = match encoding {
        Encoding::Percent => {
            const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
            percent_encoding::utf8_percent_encode(&clean, SET)
                .to_string()
                .into_bytes()
        }
        Encoding::Utf8 => clean.into_bytes(),
        Encoding::Latin1 => clean
            .chars()
            .map(|c| if (c as u32) < 256 { c as u8 } else { b'?' })
            .collect(),
        // Letters and digits are transliterated (`é` → `e`, `ß` → `ss`); other non-ASCII
        // characters are dropped, so that none becomes a separator (`，` → `,`) or markup.
        Encoding::Ascii => clean
            .chars()
            .flat_map(|c| {
                if c.is_ascii() {
                    vec![c]
                } else {
                    deunicode::deunicode_char(c)
                        .unwrap_or("")
                        .chars()
                        .filter(|t| t.is_ascii_alphanumeric() || *t == ' ')
                        .collect()
                }
            })
            .collect::<String>()
            .into_bytes(),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .encode(clean.as_bytes())
            .into_bytes(),
        Encoding::Rfc2047 => {
            // A plain value that looks like an encoded word would be decoded by the app.
            if clean.is_ascii() && !clean.contains("=?") {
                clean.into_bytes()
            } else {
                format!(
                    "=?UTF-8?B?{}?=",
                    base64::engine::general_purpose::STANDARD.encode(clean.as_bytes())
                )
                .into_bytes()
            }
        }
    };
    // Cannot fail: control characters were removed and every remaining byte is visible ASCII,
    // space, tab or obs-text (>= 0x80), all of which HeaderValue accepts.
    HeaderValue::from_bytes(&bytes).expect("control characters were removed")
}

/// One identity header to write, ready to use.
#[derive(Clone, Debug)]
pub struct HeaderRule {
    pub name: http::HeaderName,
    pub source: ValueSource,
    pub encoding: Encoding,
}

/// An app's identity header plan, compiled once from config.
#[derive(Clone, Debug)]
pub struct IdentityHeaders {
    /// Canonical prefix (`x-remote-`); empty means "no prefix stripping".
    prefix: String,
    /// Canonical names of the configured headers, stripped even when outside the prefix.
    configured: Vec<String>,
    pub separator: String,
    pub rules: Vec<HeaderRule>,
}

impl IdentityHeaders {
    /// Validates `config` and compiles it (tests, benchmarks; the gateway compiles what the
    /// configuration load already validated, with [`Self::compile`]).
    pub fn from_config(config: &IdentityHeadersConfig) -> Result<Self, ConfigError> {
        let names = validate(config, "identity_headers")?;
        Ok(Self::compile(config, names))
    }

    /// `names`: the configured headers' names, as the configuration load parsed them.
    pub fn compile(config: &IdentityHeadersConfig, names: Vec<http::HeaderName>) -> Self {
        let rules: Vec<HeaderRule> = config
            .headers
            .iter()
            .zip(names)
            .map(|(mapping, name)| HeaderRule {
                name,
                source: mapping.value.clone(),
                encoding: mapping.encoding.unwrap_or(config.encoding),
            })
            .collect();
        Self {
            prefix: canonical_name(&config.prefix),
            configured: config
                .headers
                .iter()
                .map(|h| canonical_name(&h.name))
                .collect(),
            separator: config.separator.clone(),
            rules,
        }
    }

    /// True when an incoming header with this name must not reach the application.
    /// Runs for every header of every request: compares in place, without allocating.
    pub fn must_strip(&self, name: &str) -> bool {
        let name = name.as_bytes();
        (!self.prefix.is_empty()
            && name.len() >= self.prefix.len()
            && canonical_eq(&name[..self.prefix.len()], &self.prefix))
            || self.configured.iter().any(|c| canonical_eq(name, c))
            || GATEWAY_CONTROLLED.iter().any(|c| canonical_eq(name, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underscores_and_case_are_equivalent() {
        assert_eq!(canonical_name("X_Remote_User"), "x-remote-user");
        let plan = IdentityHeaders::from_config(&IdentityHeadersConfig::default()).unwrap();
        for spoof in [
            "X-Remote-User",
            "x-remote-user",
            "X_Remote_User",
            "X-REMOTE-ROLES",
            "x_forwarded_for",
        ] {
            assert!(plan.must_strip(spoof), "{spoof}");
        }
        assert!(!plan.must_strip("Accept"));
    }

    #[test]
    fn encodings_of_accented_names() {
        assert_eq!(encode("Grégory", Encoding::Percent), "Gr%C3%A9gory");
        assert_eq!(
            encode("Grégory", Encoding::Utf8).as_bytes(),
            "Grégory".as_bytes()
        );
        assert_eq!(
            encode("Françoise", Encoding::Latin1).as_bytes(),
            b"Fran\xe7oise"
        );
        assert_eq!(encode("Françoise", Encoding::Ascii), "Francoise");
        assert_eq!(encode("Grégory", Encoding::Base64), "R3LDqWdvcnk=");
        assert_eq!(
            encode("Grégory", Encoding::Rfc2047),
            "=?UTF-8?B?R3LDqWdvcnk=?="
        );
        assert_eq!(encode("plain", Encoding::Rfc2047), "plain");
        assert_eq!(encode("a 100%", Encoding::Percent), "a 100%25");
    }

    #[test]
    fn encodings_cannot_forge_separators_or_encoded_words() {
        // A full-width comma is no comma once transliterated; letters still are letters.
        assert_eq!(encode("x，admin", Encoding::Ascii), "xadmin");
        assert_eq!(encode("Æsir Straße", Encoding::Ascii), "AEsir Strasse");
        // A plain value that looks like an encoded word is encoded itself.
        let forged = encode("=?UTF-8?B?YWRtaW4=?=", Encoding::Rfc2047);
        assert_ne!(forged, "=?UTF-8?B?YWRtaW4=?=");
        assert!(forged.to_str().unwrap().starts_with("=?UTF-8?B?"));
    }

    #[test]
    fn control_characters_never_reach_a_header() {
        for encoding in [
            Encoding::Percent,
            Encoding::Utf8,
            Encoding::Latin1,
            Encoding::Ascii,
            Encoding::Rfc2047,
        ] {
            let value = encode("alice\r\nX-Admin: 1\u{0}\u{85}", encoding);
            assert!(
                !value.as_bytes().iter().any(|b| b.is_ascii_control()),
                "{encoding:?}: {value:?}"
            );
        }
    }
}
