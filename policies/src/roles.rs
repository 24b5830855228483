//! Role derivation: an application's roles for a person, from the roles the directory gives
//! them on that application, their directory groups and their provider attributes.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// One value or several, in YAML.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn values(&self) -> &[String] {
        match self {
            OneOrMany::One(one) => std::slice::from_ref(one),
            OneOrMany::Many(many) => many,
        }
    }
}

/// How one application computes roles.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    /// Keep the roles delegated administrators gave the person on this application.
    #[serde(default = "yes")]
    pub directory_roles: bool,
    /// Directory group → role(s), e.g. `"cn=bip-admins,ou=groups": admin`.
    #[serde(default)]
    pub groups: BTreeMap<String, OneOrMany>,
    /// Attribute value → role(s), e.g. the ENT function code: `{ attribute: ent_function,
    /// values: { DIR: direction, DOC: documentaliste } }`.
    #[serde(default)]
    pub attributes: Vec<AttributeRoles>,
}

impl Default for RoleMapping {
    fn default() -> Self {
        Self {
            directory_roles: true,
            groups: BTreeMap::new(),
            attributes: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeRoles {
    pub attribute: String,
    pub values: BTreeMap<String, OneOrMany>,
}

/// What roles are derived from.
#[derive(Clone, Copy, Debug)]
pub struct RoleSources<'a> {
    /// Roles the directory (or the local users file) gives the person on this application.
    pub directory_roles: &'a [String],
    pub groups: &'a [String],
    /// Provider attributes (and directory attributes) by name.
    pub attributes: &'a BTreeMap<String, Vec<String>>,
}

impl RoleMapping {
    /// The roles, sorted and without duplicates.
    pub fn derive(&self, sources: &RoleSources<'_>) -> Vec<String> {
        let mut roles = BTreeSet::new();
        if self.directory_roles {
            roles.extend(sources.directory_roles.iter().cloned());
        }
        for group in sources.groups {
            if let Some(mapped) = self.groups.get(group) {
                roles.extend(mapped.values().iter().cloned());
            }
        }
        for rule in &self.attributes {
            for value in sources
                .attributes
                .get(&rule.attribute)
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                if let Some(mapped) = rule.values.get(value) {
                    roles.extend(mapped.values().iter().cloned());
                }
            }
        }
        roles.into_iter().filter(|r| !r.is_empty()).collect()
    }
}
