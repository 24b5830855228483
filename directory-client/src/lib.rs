//! Directory backends and their caching: who a signed-in person is in the organisation's
//! directory (pivot identity), and which roles they hold in each application.
//!
//! The gateway never calls a backend on the hot path directly: it asks a [`CachedDirectory`],
//! which answers from an in-process cache (L1), then from Redis shared by every replica (L2),
//! and only then from the backend (SCIM 2.0 or a YAML file), with request coalescing, negative
//! caching of unknown people and stale answers while the backend is down.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub mod cache;
pub mod file;
pub mod identity_pivot;
pub mod redis_link;
pub mod scim;
pub mod sealing;

pub use cache::{
    CacheSettings, CachedDirectory, RedisCacheSettings, SharedCacheError, SharedRedis,
};
pub use file::FileDirectory;
pub use identity_pivot::FieldKind;
pub use scim::{ScimDirectory, ScimSettings};

/// A person as the directory knows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryUser {
    /// The directory's stable id for the person (SCIM `id`, or the file's `id`).
    pub id: String,
    /// Attributes usable as pivot identity and for display (`email`, `entUid`,
    /// `displayName`...), multi-valued.
    #[serde(default)]
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The organisations (structures) the person belongs to, e.g. a school's UAI.
    #[serde(default)]
    pub structures: Vec<String>,
    /// Group names, as the directory names them.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Roles per application id, as given by delegated administrators.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Unix seconds from which the account may be used, if limited.
    #[serde(default)]
    pub valid_from: Option<i64>,
    /// Unix seconds after which the account may no longer be used, if limited.
    #[serde(default)]
    pub valid_until: Option<i64>,
    #[serde(default)]
    pub locked: bool,
}

/// Why an account may not be used now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    Active,
    Locked,
    NotYetValid,
    Expired,
}

impl DirectoryUser {
    /// The account's state at `now` (Unix seconds). Locked wins over dates.
    pub fn state_at(&self, now: i64) -> AccountState {
        if self.locked {
            AccountState::Locked
        } else if self.valid_from.is_some_and(|from| now < from) {
            AccountState::NotYetValid
        } else if self.valid_until.is_some_and(|until| now >= until) {
            AccountState::Expired
        } else {
            AccountState::Active
        }
    }
}

/// Which directory person a login names: a directory attribute and the login's value for it,
/// normalized with [`normalize_pivot`]; or, for a composite pivot (the *identité pivot*,
/// see [`identity_pivot`]), several fields that must all match.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PivotQuery {
    /// The directory attribute; for a composite pivot, a name listing its attributes.
    pub attribute: String,
    /// The normalized value; for a composite pivot, its fields' normal forms joined, so that
    /// caches key it like any other pivot.
    pub value: String,
    /// Values are compared exactly (after trimming) instead of case-insensitively.
    #[serde(default)]
    pub case_sensitive: bool,
    /// The fields of a composite pivot (empty for a single attribute).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<PivotField>,
}

/// One field of a composite pivot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PivotField {
    pub directory_attribute: String,
    pub kind: identity_pivot::FieldKind,
    /// The normal form; empty when the field is not compared (the birthplace of someone born
    /// abroad).
    pub value: String,
}

impl PivotQuery {
    pub fn new(attribute: &str, value: &str, case_sensitive: bool) -> Self {
        Self {
            attribute: attribute.to_owned(),
            value: normalize_pivot(value, case_sensitive),
            case_sensitive,
            fields: Vec::new(),
        }
    }

    /// A pivot whose `fields` must all match.
    pub fn composite(fields: Vec<PivotField>) -> Self {
        let names: Vec<&str> = fields
            .iter()
            .map(|f| f.directory_attribute.as_str())
            .collect();
        let values: Vec<&str> = fields.iter().map(|f| f.value.as_str()).collect();
        Self {
            attribute: format!("composite({})", names.join(",")),
            // A control character no normal form contains: fields cannot run into each other.
            value: values.join("\u{1f}"),
            case_sensitive: true,
            fields,
        }
    }

    pub fn is_composite(&self) -> bool {
        !self.fields.is_empty()
    }

    /// Whether a person whose values for a directory attribute `values_of` gives matches every
    /// field of this composite pivot (under each field's normal form).
    pub fn matches_all(&self, values_of: impl Fn(&str) -> Vec<String>) -> bool {
        // Cheap and selective fields first (a date parses faster than a name transliterates,
        // and tells most people apart): scans of a whole directory stop early.
        let mut fields: Vec<&PivotField> = self.fields.iter().collect();
        fields.sort_by_key(|field| field.kind == identity_pivot::FieldKind::Name);
        fields.into_iter().all(|field| {
            field.value.is_empty()
                || values_of(&field.directory_attribute).iter().any(|value| {
                    identity_pivot::normalize(field.kind, value).as_deref()
                        == Some(field.value.as_str())
                })
        })
    }

    /// Every pivot a person named by an administrator may be cached under: logins compare
    /// case-insensitively or not depending on the provider, which the administrator need not
    /// know, so invalidations cover both.
    pub fn both_cases(attribute: &str, value: &str) -> [PivotQuery; 2] {
        [
            PivotQuery::new(attribute, value, false),
            PivotQuery::new(attribute, value, true),
        ]
    }

    /// Whether a directory value equals this pivot under its normalization.
    pub fn matches(&self, directory_value: &str) -> bool {
        normalize_pivot(directory_value, self.case_sensitive) == self.value
    }
}

/// How a pivot value is compared: the documented normalization applied to both the
/// provider's value and the directory's before matching.
pub fn normalize_pivot(value: &str, case_sensitive: bool) -> String {
    let trimmed = value.trim();
    if case_sensitive {
        trimmed.to_owned()
    } else {
        trimmed.to_lowercase()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The backend could not answer (down, timeout, 5xx, malformed answer): never "no roles".
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// Several people carry the pivot value: nobody is chosen (a data error to fix in the
    /// directory).
    #[error("{0} directory people match the pivot")]
    Ambiguous(usize),
}

/// One directory backend.
#[async_trait]
pub trait Directory: Send + Sync {
    /// The person the pivot names, `Ok(None)` when the directory has nobody for it.
    async fn find(&self, pivot: &PivotQuery) -> Result<Option<DirectoryUser>, DirectoryError>;

    /// Where the backend is, for log lines (never with credentials).
    fn describe(&self) -> String;
}

/// Picks the one person among candidates whose `attribute` matches the pivot, by the
/// values `values_of` reads: none → unknown, several → ambiguous.
pub(crate) fn single_match<T>(
    candidates: impl IntoIterator<Item = T>,
    pivot: &PivotQuery,
    values_of: impl Fn(&T) -> Vec<String>,
) -> Result<Option<T>, DirectoryError> {
    single_match_where(candidates, |candidate| {
        values_of(candidate).iter().any(|v| pivot.matches(v))
    })
}

/// The one candidate `is_match` accepts: none → unknown, several → ambiguous.
pub(crate) fn single_match_where<T>(
    candidates: impl IntoIterator<Item = T>,
    is_match: impl Fn(&T) -> bool,
) -> Result<Option<T>, DirectoryError> {
    let mut matching: Vec<T> = candidates.into_iter().filter(|c| is_match(c)).collect();
    match matching.len() {
        0 => Ok(None),
        1 => Ok(matching.pop()),
        n => Err(DirectoryError::Ambiguous(n)),
    }
}

/// Splits `{prefix}{app}{separator}{role}` group names into per-application roles; other
/// groups are left as groups.
pub fn roles_from_groups(
    groups: &[String],
    prefix: &str,
    separator: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut roles: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if separator.is_empty() {
        return roles;
    }
    for group in groups {
        let Some(rest) = group.strip_prefix(prefix) else {
            continue;
        };
        if let Some((app, role)) = rest.split_once(separator) {
            if !app.is_empty() && !role.is_empty() {
                let entry = roles.entry(app.to_owned()).or_default();
                if !entry.iter().any(|r| r == role) {
                    entry.push(role.to_owned());
                }
            }
        }
    }
    roles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_state_locked_wins_then_dates() {
        let mut user = DirectoryUser {
            valid_from: Some(100),
            valid_until: Some(200),
            ..Default::default()
        };
        assert_eq!(user.state_at(50), AccountState::NotYetValid);
        assert_eq!(user.state_at(100), AccountState::Active);
        assert_eq!(user.state_at(200), AccountState::Expired);
        user.locked = true;
        assert_eq!(user.state_at(150), AccountState::Locked);
    }

    #[test]
    fn pivots_are_trimmed_and_case_folded_unless_case_sensitive() {
        let pivot = PivotQuery::new("email", "  Alice@Example.ORG ", false);
        assert_eq!(pivot.value, "alice@example.org");
        assert!(pivot.matches("ALICE@example.org"));
        let exact = PivotQuery::new("entUid", " AbC12 ", true);
        assert_eq!(exact.value, "AbC12");
        assert!(exact.matches("AbC12 "));
        assert!(!exact.matches("abc12"));
    }

    #[test]
    fn group_names_give_roles_by_convention() {
        let groups = vec![
            "app-bip:utilisateur".to_string(),
            "app-bip:admin".to_string(),
            "app-cdi:lecteur".to_string(),
            "staff".to_string(),
            "app-:x".to_string(),
            "other:role".to_string(),
        ];
        let roles = roles_from_groups(&groups, "app-", ":");
        assert_eq!(roles.len(), 2);
        assert_eq!(roles["bip"], vec!["utilisateur", "admin"]);
        assert_eq!(roles["cdi"], vec!["lecteur"]);
    }

    #[test]
    fn several_matches_are_ambiguous_none_is_unknown() {
        let pivot = PivotQuery::new("email", "a@x", false);
        let people = vec![("1", "A@x"), ("2", "b@x"), ("3", "a@X")];
        let values = |p: &(&str, &str)| vec![p.1.to_string()];
        assert_eq!(
            single_match(people.clone(), &pivot, values),
            Err(DirectoryError::Ambiguous(2))
        );
        assert_eq!(
            single_match(people[..2].to_vec(), &pivot, values),
            Ok(Some(("1", "A@x")))
        );
        assert_eq!(
            single_match(people[1..2].to_vec(), &pivot, values),
            Ok(None)
        );
    }
}
