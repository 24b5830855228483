//! The signed-in user of a request: finding the session, enforcing its timeouts, and reading
//! identity values for headers.

pub mod decision;
pub mod directory;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use guichet_directory_client::{DirectoryError, DirectoryUser};
use guichet_policies::roles::RoleSources;
use http::HeaderMap;

use crate::http::cookies;
use crate::http::headers::{encode, ValueSource};
use crate::session::{SessionId, SessionRecord, StoreError};
use crate::state::{App, Gateway};

pub struct Identity {
    pub id: SessionId,
    pub record: Arc<SessionRecord>,
}

pub use crate::session::AppView;

/// Who the signed-in user is in the directory.
#[derive(Clone, Debug)]
pub enum Person {
    /// No directory, or this provider's logins are not linked to it (no pivot).
    NotLinked,
    Known(Arc<DirectoryUser>),
    /// Linked, and the directory has nobody for the pivot.
    Unknown,
    /// The directory could not answer and nothing usable is cached.
    Unavailable(String),
    /// Several directory people carry the pivot value: none is chosen.
    Ambiguous(usize),
}

impl Person {
    fn entry(&self) -> Option<&Arc<DirectoryUser>> {
        match self {
            Person::Known(user) => Some(user),
            _ => None,
        }
    }

    /// Which kind of answer this is, for the view cache's key.
    fn state(&self) -> u8 {
        match self {
            Person::NotLinked => 0,
            Person::Known(_) => 1,
            Person::Unknown => 2,
            Person::Unavailable(_) => 3,
            Person::Ambiguous(_) => 4,
        }
    }
}

/// Finds the session's person in the directory (an in-process cache hit on most requests).
pub async fn person(gateway: &Gateway, record: &SessionRecord) -> Person {
    let Some(directory) = &gateway.directory else {
        return Person::NotLinked;
    };
    let Some(pivot) = &record.pivot else {
        // A provider with a pivot whose login carried no value for it: linked to nobody, so
        // an unknown person (never a pass around the directory's account checks).
        return if gateway.pivots.contains_key(&record.principal.provider) {
            Person::Unknown
        } else {
            Person::NotLinked
        };
    };
    match directory.find(pivot).await {
        Ok(Some(user)) => Person::Known(user),
        Ok(None) => Person::Unknown,
        Err(DirectoryError::Ambiguous(count)) => Person::Ambiguous(count),
        Err(e) => Person::Unavailable(e.to_string()),
    }
}

impl Identity {
    /// This app's view of the session.
    pub fn view(&self, app_index: usize, app: &App, person: &Person) -> Arc<AppView> {
        self.record.views.get_or_build(
            (app.generation, app_index),
            person.state(),
            person.entry(),
            || self.build_view(app, person),
        )
    }

    fn build_view(&self, app: &App, person: &Person) -> AppView {
        let principal = &self.record.principal;
        let mut attributes = principal.attributes.clone();
        let no_groups: &[String] = &[];
        let (directory_roles, groups): (Vec<String>, &[String]) = match person {
            Person::Known(user) => {
                // The directory is the reference for the people it knows: its attributes and
                // structures replace what the provider said under the same names.
                for (name, values) in &user.attributes {
                    attributes.insert(name.clone(), values.clone());
                }
                attributes.insert("structure".into(), user.structures.clone());
                let mut roles = self.record.roles.clone();
                roles.extend(user.roles.get(&app.id).cloned().unwrap_or_default());
                (roles, &user.groups)
            }
            Person::Unknown => (app.guest_roles.clone(), no_groups),
            Person::NotLinked | Person::Unavailable(_) | Person::Ambiguous(_) => {
                (self.record.roles.clone(), no_groups)
            }
        };
        let roles = app.roles.derive(&RoleSources {
            directory_roles: &directory_roles,
            groups,
            attributes: &attributes,
        });
        let plan = &app.identity_headers;
        let headers = plan
            .rules
            .iter()
            .filter_map(|rule| {
                self.value(&rule.source, &plan.separator, &roles, &attributes)
                    .map(|value| (rule.name.clone(), encode(&value, rule.encoding)))
            })
            .collect();
        AppView {
            roles,
            attributes,
            headers,
        }
    }

    /// The value for a header, or `None` when the user has none (the header is then omitted).
    pub fn value(
        &self,
        source: &ValueSource,
        separator: &str,
        roles: &[String],
        attributes: &BTreeMap<String, Vec<String>>,
    ) -> Option<String> {
        let principal = &self.record.principal;
        let joined = |values: &[String]| join_values(values, separator);
        match source {
            ValueSource::Subject => Some(principal.subject.clone()),
            ValueSource::Provider => Some(principal.provider.clone()),
            ValueSource::Roles => joined(roles),
            ValueSource::AuthLevel => principal.auth_level.as_ref().map(|l| l.0.clone()),
            ValueSource::Attribute(name) => {
                joined(attributes.get(name).map(Vec::as_slice).unwrap_or(&[]))
            }
            ValueSource::Constant(value) => Some(value.clone()),
        }
    }
}

/// Joins values with the separator. A separator inside a value is percent-encoded (`,` →
/// `%2C`), so a value like `x,admin` stays one value for the application instead of two.
pub fn join_values(values: &[String], separator: &str) -> Option<String> {
    if values.is_empty() {
        return None;
    }
    let escaped_separator: String = separator.bytes().map(|b| format!("%{b:02X}")).collect();
    Some(
        values
            .iter()
            .map(|value| {
                if separator.is_empty() || !value.contains(separator) {
                    value.clone()
                } else {
                    value.replace(separator, &escaped_separator)
                }
            })
            .collect::<Vec<_>>()
            .join(separator),
    )
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The session id from the request's cookie for this app, if it has exactly one well-formed
/// value. Several values mean a cookie was tossed in beside ours (by a sibling subdomain, with
/// a more specific path): which one is the user's cannot be known, so neither is used.
pub fn session_id(gateway: &Gateway, app: &App, headers: &HeaderMap) -> Option<SessionId> {
    let mut values = cookies::values(headers, gateway.sessions.cookie_name_for(app));
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    SessionId::parse(value)
}

/// Loads the request's session. A malformed, unknown or expired cookie is no session; only a
/// store failure is an error (the caller decides whether that denies).
pub async fn current(
    gateway: &Gateway,
    app: &App,
    headers: &HeaderMap,
) -> Result<Option<Identity>, StoreError> {
    let Some(id) = session_id(gateway, app, headers) else {
        return Ok(None);
    };
    let Some(record) = gateway.store.load_session(&id).await? else {
        return Ok(None);
    };
    let settings = &gateway.sessions;
    let idle = settings.idle_timeout.as_secs() as i64;
    let now = now();
    if !record.is_live(now, idle) {
        gateway.store.delete_session(&id).await.ok();
        return Ok(None);
    }
    // Sliding idle timeout without a write per request: refresh once the record is a little old.
    let refresh_after = (idle / 10).clamp(1, 60);
    if now - record.last_seen >= refresh_after {
        let mut refreshed = (*record).clone();
        refreshed.last_seen = now;
        let ttl = remaining_ttl(&refreshed, settings.idle_timeout, now);
        let refreshed = Arc::new(refreshed);
        if let Err(e) = gateway
            .store
            .touch_session(&id, refreshed.clone(), ttl)
            .await
        {
            tracing::warn!(error = %e, "could not refresh session activity");
        }
        return Ok(Some(Identity {
            id,
            record: refreshed,
        }));
    }
    Ok(Some(Identity { id, record }))
}

/// How long the store should keep a record: until idle expiry, never past absolute expiry.
pub fn remaining_ttl(record: &SessionRecord, idle: Duration, now: i64) -> Duration {
    let absolute_left = (record.expires_at - now).max(1) as u64;
    idle.min(Duration::from_secs(absolute_left))
}

#[cfg(test)]
mod tests {
    use super::{join_values, remaining_ttl};
    use crate::session::record::tests::record;
    use std::time::Duration;

    #[test]
    fn the_store_never_keeps_a_session_past_its_absolute_limit() {
        let idle = Duration::from_secs(30 * 60);
        // Far from the absolute limit (8 h): the idle timeout.
        assert_eq!(remaining_ttl(&record(0), idle, 60), idle);
        // Ten seconds before it, however recently seen: ten seconds.
        let now = 8 * 3600 - 10;
        assert_eq!(
            remaining_ttl(&record(now), idle, now),
            Duration::from_secs(10)
        );
        // At or past it: the shortest time the store accepts.
        assert_eq!(
            remaining_ttl(&record(8 * 3600), idle, 8 * 3600 + 5),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_separator_inside_a_value_cannot_split_it() {
        let values = vec!["reader".to_string(), "x,admin".to_string()];
        assert_eq!(
            join_values(&values, ",").as_deref(),
            Some("reader,x%2Cadmin")
        );
        assert_eq!(
            join_values(&values, " ; ").as_deref(),
            Some("reader ; x,admin")
        );
        assert_eq!(join_values(&[], ","), None);
    }
}
