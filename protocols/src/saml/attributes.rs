//! Assertion attributes as the principal carries them: under readable names (`mail`, not
//! `urn:oid:0.9.2342.19200300.100.1.3`), multi-valued, in the IdP's order.
//!
//! A name is, in order: the configuration's `attribute_names` entry for the attribute's
//! `Name`; the built-in table of the usual LDAP/eduPerson/SupAnn OIDs and ADFS claim URIs;
//! the attribute's `FriendlyName`; its `Name` as sent.
//!
//! A `FriendlyName` is only a hint (SAML core §2.7.3.1: never to be relied on), and the IdP
//! chooses it freely: it is used only when it cannot merge into a name that means something
//! else. It is ignored, and the attribute kept under its full `Name`, when it is one of the
//! built-in table's readable names (`mail`, `eduPersonPrincipalName`, ...), a readable name of
//! `attribute_names`, or the `Name` of another attribute of the same assertion. So an
//! attribute `Name="urn:example:anything" FriendlyName="eduPersonPrincipalName"` never reads as
//! (or adds values to) `eduPersonPrincipalName`; map such a `Name` in `attribute_names` to
//! give it a readable name.

use std::collections::{BTreeMap, HashMap, HashSet};

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

/// The readable name of an attribute; `friendly_allowed` says whether its `FriendlyName` may be
/// used (see the module documentation).
fn readable_name(
    name: &str,
    friendly_name: Option<&str>,
    overrides: &BTreeMap<String, String>,
    friendly_allowed: impl Fn(&str) -> bool,
) -> String {
    if let Some(readable) = overrides.get(name) {
        return readable.clone();
    }
    if let Some((_, readable)) = KNOWN.iter().find(|(known, _)| *known == name) {
        return (*readable).to_owned();
    }
    match friendly_name.map(str::trim) {
        Some(friendly) if !friendly.is_empty() && friendly_allowed(friendly) => friendly.to_owned(),
        _ => name.to_owned(),
    }
}

/// Every attribute of the assertion's AttributeStatements, by readable name.
pub(crate) fn collect(
    assertion: &Element,
    overrides: &BTreeMap<String, String>,
) -> BTreeMap<String, Vec<String>> {
    let attributes: Vec<(&str, &Element)> = assertion
        .children_named(NS_ASSERTION, "AttributeStatement")
        .flat_map(|statement| statement.children_named(NS_ASSERTION, "Attribute"))
        .filter_map(|a| a.attr("Name").filter(|n| !n.is_empty()).map(|n| (n, a)))
        .collect();
    // What no FriendlyName may become: a readable name of the table or of the configuration.
    let readable: HashSet<&str> = KNOWN
        .iter()
        .map(|(_, readable)| *readable)
        .chain(overrides.values().map(String::as_str))
        .collect();
    // Nor another attribute's Name.
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (name, _) in &attributes {
        *names.entry(name).or_default() += 1;
    }
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, attribute) in &attributes {
        let friendly_allowed = |friendly: &str| {
            let same_name = names.get(friendly).copied().unwrap_or(0);
            let others = same_name - usize::from(friendly == *name);
            !readable.contains(friendly) && others == 0
        };
        let key = readable_name(
            name,
            attribute.attr("FriendlyName"),
            overrides,
            friendly_allowed,
        );
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
