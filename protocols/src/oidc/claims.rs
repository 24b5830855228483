//! Turning verified claims into principal attributes, and comparing authentication levels.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Protocol bookkeeping, not facts about the user: never copied into attributes.
const PROTOCOL_CLAIMS: &[&str] = &[
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "nonce",
    "at_hash",
    "c_hash",
    "s_hash",
    "azp",
    "jti",
    "sid",
    "auth_time",
    "acr",
    "amr",
    "idp",
    "events",
];

/// How deep nested claims (`address.locality`) are followed.
const MAX_DEPTH: usize = 4;
/// Values kept per attribute, so a hostile provider cannot make a session record huge.
const MAX_VALUES: usize = 100;

/// The attributes of a principal from its claims: with a `mapping` (attribute → dotted claim
/// path), exactly the mapped ones; without, every claim under its own name, nested objects
/// flattened as `parent.child`. Strings stay as they are, numbers and booleans become text,
/// arrays become several values, `null` is no value.
pub fn attributes(
    claims: &Map<String, Value>,
    mapping: &BTreeMap<String, String>,
) -> BTreeMap<String, Vec<String>> {
    // An address the provider says it has not verified is no fact about the user: it must
    // not link them to a directory person or reach an application as theirs.
    let unverified = |flag: &str| claims.get(flag) == Some(&Value::Bool(false));
    let mut checked;
    let claims = if unverified("email_verified") || unverified("phone_number_verified") {
        checked = claims.clone();
        if unverified("email_verified") {
            checked.remove("email");
        }
        if unverified("phone_number_verified") {
            checked.remove("phone_number");
        }
        &checked
    } else {
        claims
    };
    let mut out = BTreeMap::new();
    if mapping.is_empty() {
        for (name, value) in claims {
            if !PROTOCOL_CLAIMS.contains(&name.as_str()) {
                flatten(name, value, 0, &mut out);
            }
        }
    } else {
        for (attribute, path) in mapping {
            if let Some(value) = lookup(claims, path) {
                let mut values = Vec::new();
                scalars(value, &mut values);
                if !values.is_empty() {
                    out.insert(attribute.clone(), values);
                }
            }
        }
    }
    out
}

fn lookup<'v>(claims: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    // A claim whose own name contains dots wins over a nested path.
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

fn flatten(name: &str, value: &Value, depth: usize, out: &mut BTreeMap<String, Vec<String>>) {
    match value {
        Value::Object(map) if depth < MAX_DEPTH => {
            for (key, inner) in map {
                flatten(&format!("{name}.{key}"), inner, depth + 1, out);
            }
        }
        Value::Object(_) => {}
        other => {
            let mut values = Vec::new();
            scalars(other, &mut values);
            if !values.is_empty() {
                out.insert(name.to_owned(), values);
            }
        }
    }
}

fn scalars(value: &Value, out: &mut Vec<String>) {
    if out.len() >= MAX_VALUES {
        return;
    }
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(b) => out.push(b.to_string()),
        Value::Array(items) => {
            for item in items {
                if !item.is_array() {
                    scalars(item, out);
                }
            }
        }
        Value::Null | Value::Object(_) => {}
    }
}

/// Whether an authentication at level `got` satisfies a request for `required` (eIDAS levels
/// are ordered; see [`guichet_policies::level_at_least`], shared with the access rules).
pub fn acr_satisfies(got: &str, required: &str) -> bool {
    guichet_policies::level_at_least(got, required)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn unverified_addresses_are_dropped() {
        let claims = map(json!({
            "sub": "abc", "email": "agent@example.org", "email_verified": false,
            "phone_number": "+33100000000", "phone_number_verified": false, "name": "X",
        }));
        let all = attributes(&claims, &BTreeMap::new());
        assert!(!all.contains_key("email") && !all.contains_key("phone_number"));
        assert_eq!(all["name"], vec!["X"]);
        let mapped = attributes(&claims, &[("mail".to_string(), "email".to_string())].into());
        assert!(mapped.is_empty());
        let verified = map(json!({"email": "a@example.org", "email_verified": true}));
        assert_eq!(
            attributes(&verified, &BTreeMap::new())["email"],
            vec!["a@example.org"]
        );
    }

    #[test]
    fn every_user_claim_by_default_never_protocol_ones() {
        let claims = map(json!({
            "sub": "abc", "iss": "https://op", "nonce": "n", "given_name": "Grégory",
            "groups": ["a", "b"], "email_verified": true, "address": {"locality": "Lyon"},
            "nothing": null
        }));
        let attrs = attributes(&claims, &BTreeMap::new());
        assert_eq!(attrs["given_name"], vec!["Grégory"]);
        assert_eq!(attrs["groups"], vec!["a", "b"]);
        assert_eq!(attrs["email_verified"], vec!["true"]);
        assert_eq!(attrs["address.locality"], vec!["Lyon"]);
        assert_eq!(attrs["sub"], vec!["abc"]);
        assert!(!attrs.contains_key("iss") && !attrs.contains_key("nonce"));
        assert!(!attrs.contains_key("nothing"));
    }

    #[test]
    fn a_mapping_takes_only_what_it_names() {
        let claims = map(json!({"given_name": "Françoise", "address": {"locality": "Lyon"}}));
        let mapping = BTreeMap::from([
            ("prenom".to_string(), "given_name".to_string()),
            ("ville".to_string(), "address.locality".to_string()),
            ("absent".to_string(), "nope".to_string()),
        ]);
        let attrs = attributes(&claims, &mapping);
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs["prenom"], vec!["Françoise"]);
        assert_eq!(attrs["ville"], vec!["Lyon"]);
    }

    #[test]
    fn eidas_levels_are_ordered() {
        assert!(acr_satisfies("eidas2", "eidas1"));
        assert!(acr_satisfies("eidas1", "eidas1"));
        assert!(!acr_satisfies("eidas1", "eidas2"));
        assert!(!acr_satisfies("loa1", "eidas1"));
        assert!(acr_satisfies("urn:x:gold", "urn:x:gold"));
    }
}
