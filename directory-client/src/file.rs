//! The `file` backend: people in a YAML file (the embedded default, the demo's directory, and
//! small deployments). The file is read again when it changes (checked at most once a second,
//! on lookups); a broken edit is logged and the previous content kept, so a typo never empties
//! the directory.
//!
//! ```yaml
//! people:
//!   - id: alice
//!     attributes: { email: alice@example.org, displayName: Alice Martin }
//!     structures: [0750001A]
//!     groups: [staff]
//!     roles: { bip: [utilisateur] }
//!     valid_from: 2026-09-01T00:00:00Z
//!     valid_until: 2027-08-31T23:59:59Z
//!     locked: false
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use serde::Deserialize;

use crate::{
    single_match, single_match_where, Directory, DirectoryError, DirectoryUser, PivotQuery,
};

/// The largest directory file read (a guard against pointing the setting at the wrong file).
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// How often lookups check whether the file changed.
const CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    people: Vec<PersonEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonEntry {
    id: String,
    #[serde(default)]
    attributes: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    structures: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    roles: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    valid_from: Option<Timestamp>,
    #[serde(default)]
    valid_until: Option<Timestamp>,
    #[serde(default)]
    locked: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// RFC 3339 date-time (`2026-09-01T00:00:00Z`) or Unix seconds.
struct Timestamp(i64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an RFC 3339 date-time, a date or Unix seconds")
            }
            fn visit_i64<E: serde::de::Error>(self, seconds: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(seconds))
            }
            fn visit_u64<E: serde::de::Error>(self, seconds: u64) -> Result<Timestamp, E> {
                i64::try_from(seconds)
                    .map(Timestamp)
                    .map_err(|_| E::custom("out of range"))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Timestamp, E> {
                parse_date(text).map(Timestamp).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A people file Guichet cannot use; each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Read(String),
    #[error("larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    /// The YAML does not fit the format: the path and the parser's message.
    #[error("{0}")]
    Format(String),
    #[error("people[{0}].id: must not be empty")]
    EmptyId(usize),
    #[error("people[{index}].id: {id:?} appears twice")]
    DuplicateId { index: usize, id: String },
}

/// A date the people file cannot be read with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an RFC 3339 date-time (2026-09-01T00:00:00Z) or a date (2026-09-01)")]
pub struct InvalidDate(String);

/// An RFC 3339 date-time, or a bare date (midnight UTC), to Unix seconds.
pub(crate) fn parse_date(text: &str) -> Result<i64, InvalidDate> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at.unix_timestamp());
    }
    let date_only = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &date_only)
        .map(|date| date.midnight().assume_utc().unix_timestamp())
        .map_err(|_| InvalidDate(text.to_owned()))
}

/// The file's people, indexed by (attribute, case-folded value) for lookups.
struct Loaded {
    people: Vec<DirectoryUser>,
    index: HashMap<(String, String), Vec<usize>>,
}

impl Loaded {
    fn parse(text: &str) -> Result<Loaded, FileError> {
        let deserializer = serde_norway::Deserializer::from_str(text);
        let file: FileFormat = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // The YAML parser names the path itself in some messages (unknown fields).
            FileError::Format(if path == "." || inner.starts_with("people") {
                inner
            } else {
                format!("{path}: {inner}")
            })
        })?;
        let mut people = Vec::with_capacity(file.people.len());
        let mut index: HashMap<(String, String), Vec<usize>> = HashMap::new();
        let mut ids = std::collections::HashSet::new();
        for (i, entry) in file.people.into_iter().enumerate() {
            if entry.id.trim().is_empty() {
                return Err(FileError::EmptyId(i));
            }
            if !ids.insert(entry.id.clone()) {
                return Err(FileError::DuplicateId {
                    index: i,
                    id: entry.id,
                });
            }
            let attributes: BTreeMap<String, Vec<String>> = entry
                .attributes
                .into_iter()
                .map(|(name, values)| match values {
                    OneOrMany::One(value) => (name, vec![value]),
                    OneOrMany::Many(values) => (name, values),
                })
                .collect();
            let user = DirectoryUser {
                id: entry.id,
                attributes,
                structures: entry.structures,
                groups: entry.groups,
                roles: entry.roles,
                valid_from: entry.valid_from.map(|t| t.0),
                valid_until: entry.valid_until.map(|t| t.0),
                locked: entry.locked,
            };
            for (name, value) in values_of(&user) {
                index
                    .entry((name.to_owned(), crate::normalize_pivot(value, false)))
                    .or_default()
                    .push(i);
            }
            people.push(user);
        }
        Ok(Loaded { people, index })
    }

    fn find(&self, pivot: &PivotQuery) -> Result<Option<DirectoryUser>, DirectoryError> {
        if pivot.is_composite() {
            // Normal forms differ from stored spellings: every person is compared (a file of
            // a few tens of thousands of people, behind the caches).
            return single_match_where(self.people.iter(), |user| {
                pivot.matches_all(|attribute| attribute_values(user, attribute))
            })
            .map(|found| found.cloned());
        }
        let key = (
            pivot.attribute.clone(),
            crate::normalize_pivot(&pivot.value, false),
        );
        let Some(candidates) = self.index.get(&key) else {
            return Ok(None);
        };
        let candidates = candidates.iter().map(|&i| &self.people[i]);
        single_match(candidates, pivot, |user| {
            attribute_values(user, &pivot.attribute)
        })
        .map(|found| found.cloned())
    }
}

/// Every (attribute, value) pair a person can be found by: `id` and each attribute value.
fn values_of(user: &DirectoryUser) -> impl Iterator<Item = (&str, &str)> {
    std::iter::once(("id", user.id.as_str())).chain(
        user.attributes
            .iter()
            .flat_map(|(name, values)| values.iter().map(move |v| (name.as_str(), v.as_str()))),
    )
}

fn attribute_values(user: &DirectoryUser, attribute: &str) -> Vec<String> {
    if attribute == "id" {
        vec![user.id.clone()]
    } else {
        user.attributes.get(attribute).cloned().unwrap_or_default()
    }
}

/// What identifies a version of the file without reading it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

pub struct FileDirectory {
    shared: Arc<Shared>,
    checked_at: Mutex<Instant>,
}

/// What a reload (on a blocking thread) and lookups share.
struct Shared {
    path: PathBuf,
    loaded: RwLock<Arc<Loaded>>,
    stamp: Mutex<Stamp>,
}

fn read(path: &Path) -> Result<(Loaded, Stamp), FileError> {
    let metadata = std::fs::metadata(path).map_err(|e| FileError::Read(e.to_string()))?;
    if metadata.len() > MAX_FILE_BYTES {
        return Err(FileError::TooLarge);
    }
    let text = std::fs::read_to_string(path).map_err(|e| FileError::Read(e.to_string()))?;
    let loaded = Loaded::parse(&text)?;
    let stamp = Stamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
    };
    Ok((loaded, stamp))
}

impl FileDirectory {
    /// Reads the file; the error names the bad field (`people[3].valid_until: ...`).
    pub fn load(path: &Path) -> Result<FileDirectory, FileError> {
        let (loaded, stamp) = read(path)?;
        Ok(FileDirectory {
            shared: Arc::new(Shared {
                path: path.to_owned(),
                loaded: RwLock::new(Arc::new(loaded)),
                stamp: Mutex::new(stamp),
            }),
            checked_at: Mutex::new(Instant::now()),
        })
    }

    /// How many people the file holds now.
    pub fn len(&self) -> usize {
        self.current().people.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn current(&self) -> Arc<Loaded> {
        self.shared.current()
    }

    /// Whether a lookup should check the file (at most once per second).
    fn check_due(&self) -> bool {
        let mut checked_at = self
            .checked_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if checked_at.elapsed() < CHECK_EVERY {
            return false;
        }
        *checked_at = Instant::now();
        true
    }
}

impl Shared {
    fn current(&self) -> Arc<Loaded> {
        self.loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads the file again if it changed since the last read (blocking file I/O).
    fn reload_if_changed(&self) {
        let Ok(metadata) = std::fs::metadata(&self.path) else {
            tracing::error!(path = %self.path.display(), "directory file unreadable: keeping the people last read");
            return;
        };
        let now = Stamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
        };
        if *self
            .stamp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            == now
        {
            return;
        }
        match read(&self.path) {
            Ok((loaded, stamp)) => {
                tracing::info!(path = %self.path.display(), people = loaded.people.len(), "directory file reloaded");
                *self
                    .loaded
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(loaded);
                *self
                    .stamp
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = stamp;
            }
            Err(error) => {
                tracing::error!(path = %self.path.display(), %error, "directory file not reloaded: keeping the people last read");
                // Not retried until the file changes again.
                *self
                    .stamp
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = now;
            }
        }
    }
}

#[async_trait]
impl Directory for FileDirectory {
    async fn find(&self, pivot: &PivotQuery) -> Result<Option<DirectoryUser>, DirectoryError> {
        if self.check_due() {
            // Off the async workers: a large file takes a while to read and parse.
            let shared = self.shared.clone();
            if tokio::task::spawn_blocking(move || shared.reload_if_changed())
                .await
                .is_err()
            {
                tracing::error!("directory file reload failed: keeping the people last read");
            }
        }
        let people = self.current();
        if pivot.is_composite() {
            // Every person is compared: off the async workers too.
            let pivot = pivot.clone();
            return tokio::task::spawn_blocking(move || people.find(&pivot))
                .await
                .map_err(|_| DirectoryError::Unavailable("directory file search failed".into()))?;
        }
        people.find(pivot)
    }

    fn describe(&self) -> String {
        format!("file {}", self.shared.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEOPLE: &str = r#"
people:
  - id: u1
    attributes: { email: Alice@Example.org, entUid: AbC1 }
    roles: { bip: [utilisateur] }
    valid_from: 2026-09-01
    valid_until: 2027-08-31T23:59:59Z
  - id: u2
    attributes: { email: [bob@example.org, robert@example.org] }
    locked: true
"#;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("people.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[tokio::test]
    async fn finds_people_by_any_attribute_value_with_the_pivot_normalization() {
        let dir = tempfile::tempdir().unwrap();
        let directory = FileDirectory::load(&write(&dir, PEOPLE)).unwrap();
        let alice = directory
            .find(&PivotQuery::new("email", " alice@example.ORG", false))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(alice.id, "u1");
        assert_eq!(alice.roles["bip"], vec!["utilisateur"]);
        assert_eq!(alice.valid_from, Some(1788220800));
        assert_eq!(alice.valid_until, Some(1819756799));
        let by_second_mail = directory
            .find(&PivotQuery::new("email", "robert@example.org", false))
            .await
            .unwrap()
            .unwrap();
        assert!(by_second_mail.locked);
        let by_id = directory.find(&PivotQuery::new("id", "u2", true)).await;
        assert_eq!(by_id.unwrap().unwrap().id, "u2");
        // Case-sensitive pivots compare exactly.
        let exact = PivotQuery::new("entUid", "abc1", true);
        assert_eq!(directory.find(&exact).await, Ok(None));
        let exact = PivotQuery::new("entUid", "AbC1", true);
        assert!(directory.find(&exact).await.unwrap().is_some());
        let nobody = PivotQuery::new("email", "carol@example.org", false);
        assert_eq!(directory.find(&nobody).await, Ok(None));
    }

    #[tokio::test]
    async fn a_pivot_shared_by_two_people_is_ambiguous() {
        let dir = tempfile::tempdir().unwrap();
        let text = "people:\n  - {id: a, attributes: {email: x@y}}\n  - {id: b, attributes: {email: X@y}}\n";
        let directory = FileDirectory::load(&write(&dir, text)).unwrap();
        assert_eq!(
            directory
                .find(&PivotQuery::new("email", "x@y", false))
                .await,
            Err(DirectoryError::Ambiguous(2))
        );
        // Case-sensitively, only one of them carries it.
        let exact = directory.find(&PivotQuery::new("email", "X@y", true)).await;
        assert_eq!(exact.unwrap().unwrap().id, "b");
    }

    #[test]
    fn errors_name_the_bad_field() {
        let bad_date = "people:\n  - id: a\n  - id: b\n    valid_until: tomorrow\n";
        let error = Loaded::parse(bad_date).err().unwrap().to_string();
        assert!(error.starts_with("people[1].valid_until: "), "{error}");
        let unknown = "people:\n  - id: a\n    lockd: true\n";
        let error = Loaded::parse(unknown).err().unwrap().to_string();
        assert!(
            error.starts_with("people[0]: unknown field `lockd`"),
            "{error}"
        );
        let twice = "people:\n  - id: a\n  - id: a\n";
        assert_eq!(
            Loaded::parse(twice).err().unwrap().to_string(),
            "people[1].id: \"a\" appears twice"
        );
    }

    #[tokio::test]
    async fn the_file_is_reloaded_when_it_changes_and_a_broken_edit_keeps_the_last_people() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, PEOPLE);
        let directory = FileDirectory::load(&path).unwrap();
        let carol = PivotQuery::new("email", "carol@example.org", false);
        assert_eq!(directory.find(&carol).await, Ok(None));

        std::fs::write(
            &path,
            "people:\n  - {id: u3, attributes: {email: carol@example.org}}\n",
        )
        .unwrap();
        tokio::time::sleep(CHECK_EVERY + Duration::from_millis(100)).await;
        assert_eq!(directory.find(&carol).await.unwrap().unwrap().id, "u3");

        std::fs::write(&path, "people: [ {id: ").unwrap();
        tokio::time::sleep(CHECK_EVERY + Duration::from_millis(100)).await;
        assert_eq!(directory.find(&carol).await.unwrap().unwrap().id, "u3");
        assert_eq!(directory.len(), 1);
    }
}
