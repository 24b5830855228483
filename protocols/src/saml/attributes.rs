//! Assertion attributes as the principal carries them: under readable names (`mail`, not
//! `urn:oid:0.9.2342.19200300.100.1.3`), multi-valued, in the IdP's order.
//!
//! A name is, in order: the configuration's `attribute_names` entry for the attribute's
//! `Name`; the built-in table of the usual LDAP/eduPerson/SupAnn OIDs and ADFS claim URIs;
//! the attribute's `FriendlyName`; its `Name` as sent.

use std::collections::BTreeMap;

use super::xml_guard::{Element, NS_ASSERTION};

const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// The usual attribute names (X.500/LDAP, eduPerson, SCHAC, SupAnn, ADFS claims).
const KNOWN: &[(&str, &str)] = &[
    ("urn:oid:0.9.2342.19200300.100.1.1", "uid"),
    ("urn:oid:0.9.2342.19200300.100.1.3", "mail"),
    ("urn:oid:2.5.4.3", "cn"),
    ("urn:oid:2.5.4.4", "sn"),
    ("urn:oid:2.5.4.10", "o"),
    ("urn:oid:2.5.4.11", "ou"),
    ("urn:oid:2.5.4.12", "title"),
    ("urn:oid:2.5.4.20", "telephoneNumber"),
    ("urn:oid:2.5.4.42", "givenName"),
    ("urn:oid:2.16.840.1.113730.3.1.3", "employeeNumber"),
    ("urn:oid:2.16.840.1.113730.3.1.241", "displayName"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.1", "eduPersonAffiliation"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.6", "eduPersonPrincipalName"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.7", "eduPersonEntitlement"),
    (
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.9",
        "eduPersonScopedAffiliation",
    ),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.10", "eduPersonTargetedID"),
    ("urn:oid:1.3.6.1.4.1.5923.1.1.1.13", "eduPersonUniqueId"),
    ("urn:oid:1.3.6.1.4.1.25178.1.2.9", "schacHomeOrganization"),
    ("urn:oid:1.3.6.1.4.1.7135.1.2.1.4", "supannAliasLogin"),
    (
        "urn:oid:1.3.6.1.4.1.7135.1.2.1.8",
        "supannEntiteAffectation",
    ),
    ("urn:oid:1.3.6.1.4.1.7135.1.2.1.14", "supannEtablissement"),
    (
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "mail",
    ),
    (
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
        "givenName",
    ),
    (
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
        "sn",
    ),
    (
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "name",
    ),
    (
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
        "upn",
    ),
];

/// The readable name of an attribute.
pub(crate) fn readable_name(
    name: &str,
    friendly_name: Option<&str>,
    overrides: &BTreeMap<String, String>,
) -> String {
    if let Some(readable) = overrides.get(name) {
        return readable.clone();
    }
    if let Some((_, readable)) = KNOWN.iter().find(|(known, _)| *known == name) {
        return (*readable).to_owned();
    }
    match friendly_name.map(str::trim) {
        Some(friendly) if !friendly.is_empty() => friendly.to_owned(),
        _ => name.to_owned(),
    }
}

/// Every attribute of the assertion's AttributeStatements, by readable name.
pub(crate) fn collect(
    assertion: &Element,
    overrides: &BTreeMap<String, String>,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let attributes = assertion
        .children_named(NS_ASSERTION, "AttributeStatement")
        .flat_map(|statement| statement.children_named(NS_ASSERTION, "Attribute"));
    for attribute in attributes {
        let Some(name) = attribute.attr("Name").filter(|n| !n.is_empty()) else {
            continue;
        };
        let key = readable_name(name, attribute.attr("FriendlyName"), overrides);
        let values = out.entry(key).or_default();
        values.extend(
            attribute
                .children_named(NS_ASSERTION, "AttributeValue")
                .filter_map(value),
        );
    }
    out.retain(|_, values| !values.is_empty());
    out
}

/// An AttributeValue as text: its text, or for a structured value (eduPersonTargetedID's
/// NameID) the first child element's text. `xsi:nil` values are left out.
fn value(value: &Element) -> Option<String> {
    if matches!(value.attr_ns(XSI, "nil"), Some("true" | "1")) {
        return None;
    }
    match value.elements().next() {
        Some(child) => Some(child.text()),
        None => Some(value.text()),
    }
}
