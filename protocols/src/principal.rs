use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Who signed in, as told by one identity provider, independent of the protocol used.
///
/// This is what the gateway stores in the session and maps to identity headers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The configured id of the provider that authenticated the user (e.g. `local`, `ent-cas`).
    pub provider: String,
    /// The subject as the provider names it (login, `sub`, CAS user, SAML NameID).
    pub subject: String,
    /// Multi-valued attributes released by the provider, by attribute name.
    #[serde(default)]
    pub attributes: BTreeMap<String, Vec<String>>,
    /// When the user actually authenticated at the provider (not when the session was created).
    #[serde(with = "time::serde::timestamp")]
    pub auth_time: OffsetDateTime,
    /// How strongly the user authenticated, when the provider says so.
    #[serde(default)]
    pub auth_level: Option<AuthLevel>,
    /// What single logout will need to reach the provider again.
    #[serde(default)]
    pub logout: LogoutHandle,
}

impl Principal {
    /// The first value of an attribute, if any.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .get(name)
            .and_then(|values| values.first())
            .map(String::as_str)
    }

    /// Every value of an attribute (empty when absent).
    pub fn attribute_values(&self, name: &str) -> &[String] {
        self.attributes.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Authentication strength, e.g. an eIDAS level (`eidas1`) or a SAML AuthnContextClassRef.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthLevel(pub String);

/// The per-protocol data single logout needs, kept in the session with the principal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogoutHandle {
    /// Nothing to tell the provider at logout (local passwords).
    #[default]
    None,
    /// OpenID Connect: RP-initiated logout needs the id_token; back-channel logout matches `sid`.
    Oidc {
        id_token: String,
        sid: Option<String>,
    },
    /// CAS: single logout requests name the service ticket that opened the session.
    Cas { service_ticket: String },
    /// SAML: LogoutRequest needs the NameID (with its format and qualifiers, as the assertion
    /// gave them) and the SessionIndex.
    Saml {
        name_id: String,
        name_id_format: Option<String>,
        session_index: Option<String>,
        #[serde(default)]
        name_qualifier: Option<String>,
        #[serde(default)]
        sp_name_qualifier: Option<String>,
    },
}
