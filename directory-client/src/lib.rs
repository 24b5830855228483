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
}

/// One directory backend.
#[async_trait]
pub trait Directory: Send + Sync {
    /// The person whose `attribute` equals `value` (both already normalized with
    /// [`normalize_pivot`] by the caller), `Ok(None)` when the directory has nobody for it.
    async fn find(
        &self,
        attribute: &str,
        value: &str,
    ) -> Result<Option<DirectoryUser>, DirectoryError>;

    /// Where the backend is, for log lines (never with credentials).
    fn describe(&self) -> String;
}
