//! The `scim` backend: SCIM 2.0 (RFC 7643 / RFC 7644) over http(s) with rustls.
//!
//! A person is looked up with `GET /Users?filter=<path> eq "<value>"` (or `GET /Users/<id>`
//! when the pivot is the SCIM id), their groups read from the user resource's `groups` (or,
//! when the server leaves it out, from `GET /Groups?filter=members.value eq "<id>"`, paged),
//! and groups named `{prefix}{app}{separator}{role}` become per-application roles.
//!
//! Fail closed: a timeout, a 5xx, a refused credential, malformed or oversized JSON is an
//! error (the cache then serves a stale entry or the gateway answers 503), never "no roles".
//! Only a 404 or an empty result means "unknown person".

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use url::Url;

use crate::{
    roles_from_groups, single_match, single_match_where, Directory, DirectoryError, DirectoryUser,
    PivotQuery,
};

/// The largest SCIM answer read; a bigger one is an error, not a truncated person.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The most pages of groups read for one person.
const MAX_GROUP_PAGES: u32 = 50;
/// Pages of people born on one day read for a composite pivot.
const MAX_PEOPLE_PAGES: u32 = 20;

#[derive(Clone)]
pub enum ScimAuth {
    None,
    Bearer(String),
    Basic { user: String, password: String },
}

impl fmt::Debug for ScimAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScimAuth::None => f.write_str("None"),
            ScimAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            ScimAuth::Basic { user, .. } => write!(f, "Basic({user}, <redacted>)"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ScimSettings {
    /// The SCIM base URL, e.g. `https://directory.example.org/scim/v2`.
    pub url: Url,
    pub auth: ScimAuth,
    pub timeout: Duration,
    /// Pivot attribute → SCIM attribute path (`email` → `emails.value`). Unlisted pivots use
    /// their own name as the path; `id` reads the resource directly.
    pub attributes: BTreeMap<String, String>,
    pub group_prefix: String,
    pub group_separator: String,
    pub page_size: u32,
    /// SCIM paths read into the person's structures and validity dates, when the directory
    /// has them (an extension schema attribute, typically).
    pub structure_attribute: Option<String>,
    pub valid_from_attribute: Option<String>,
    pub valid_until_attribute: Option<String>,
    /// Extra trusted roots (PEM), for a directory behind a private CA.
    pub ca_pem: Option<Vec<u8>>,
}

pub struct ScimDirectory {
    settings: ScimSettings,
    client: reqwest::Client,
    base: String,
}

fn unavailable(what: impl fmt::Display) -> DirectoryError {
    DirectoryError::Unavailable(format!("SCIM: {what}"))
}

/// A SCIM client that cannot be built from its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScimSetupError {
    #[error("ca_file: {0}")]
    CaFile(String),
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

impl ScimDirectory {
    pub fn new(settings: ScimSettings) -> Result<ScimDirectory, ScimSetupError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("guichet/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.ca_pem {
            for certificate in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ScimSetupError::CaFile(e.to_string()))?
            {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .build()
            .map_err(|e| ScimSetupError::HttpClient(e.to_string()))?;
        let base = settings.url.as_str().trim_end_matches('/').to_owned();
        Ok(ScimDirectory {
            settings,
            client,
            base,
        })
    }

    fn path_for(&self, attribute: &str) -> String {
        match self.settings.attributes.get(attribute) {
            Some(path) => path.clone(),
            None if attribute == "email" => "emails.value".into(),
            None => attribute.to_owned(),
        }
    }

    /// One GET, its JSON body read with a size bound. `Ok(None)` on 404.
    async fn get(
        &self,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<Option<Value>, DirectoryError> {
        let mut request = self
            .client
            .get(url)
            .query(query)
            .header("accept", "application/scim+json, application/json");
        request = match &self.settings.auth {
            ScimAuth::None => request,
            ScimAuth::Bearer(token) => request.bearer_auth(token),
            ScimAuth::Basic { user, password } => request.basic_auth(user, Some(password)),
        };
        let mut response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                unavailable("timed out")
            } else {
                // Without the URL: it may carry the pivot.
                unavailable(format!("request failed ({})", e.without_url()))
            }
        })?;
        let status = response.status();
        let not_found = status == reqwest::StatusCode::NOT_FOUND;
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(unavailable(format!("credentials refused ({status})")));
        }
        if !status.is_success() && !not_found {
            return Err(unavailable(format!("status {status}")));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(unavailable("answer too large"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(format!("reading the answer failed ({})", e.without_url())))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(unavailable("answer too large"));
            }
            body.extend_from_slice(&chunk);
        }
        if not_found {
            // "Not found" only when the SCIM service says so: a 404 page from a proxy in front
            // of it (a wrong URL, a deployment in progress) is an outage, not unknown people.
            return if is_scim_error(&body) {
                Ok(None)
            } else {
                Err(unavailable("404 that is not a SCIM error response"))
            };
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| unavailable(format!("malformed JSON ({e})")))
    }

    async fn find_resource(&self, pivot: &PivotQuery) -> Result<Option<Value>, DirectoryError> {
        if pivot.is_composite() {
            return self.find_composite(pivot).await;
        }
        let path = self.path_for(&pivot.attribute);
        if path == "id" {
            let url = format!(
                "{}/Users/{}",
                self.base,
                percent_encoding::utf8_percent_encode(
                    &pivot.value,
                    percent_encoding::NON_ALPHANUMERIC
                )
            );
            let Some(resource) = self.get(&url, &[]).await? else {
                return Ok(None);
            };
            // The id is matched exactly, whatever the pivot's case rule.
            return Ok(
                (resource.get("id").and_then(Value::as_str) == Some(pivot.value.as_str()))
                    .then_some(resource),
            );
        }
        let filter = format!("{path} eq {}", string_literal(&pivot.value));
        let Some(resources) = self.search_users(filter).await? else {
            return Ok(None);
        };
        // The server's `eq` may fold case (or be lax); the pivot's own rule decides.
        single_match(resources, pivot, |resource| values_at(resource, &path))
    }

    /// The users matching a SCIM `filter`: one page at most (more matches than a page is
    /// ambiguous: some were not seen, so no single one can be chosen). `None` on a SCIM 404.
    async fn search_users(&self, filter: String) -> Result<Option<Vec<Value>>, DirectoryError> {
        let query = [
            ("filter", filter),
            ("startIndex", "1".to_owned()),
            ("count", self.settings.page_size.to_string()),
        ];
        let Some(list) = self.get(&format!("{}/Users", self.base), &query).await? else {
            return Ok(None);
        };
        let resources = list_resources(&list)?;
        let total = list
            .get("totalResults")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if total > resources.len() as u64 && total > 1 {
            return Err(DirectoryError::Ambiguous(total as usize));
        }
        Ok(Some(resources))
    }

    /// A composite pivot: the server is asked for the people born that day, in every spelling
    /// directories use for it (a server's `eq` knows nothing of presumed dates or accents);
    /// every field is then compared here under its normal form.
    async fn find_composite(&self, pivot: &PivotQuery) -> Result<Option<Value>, DirectoryError> {
        let Some(birthdate) = pivot
            .fields
            .iter()
            .find(|field| field.kind == crate::FieldKind::Birthdate)
        else {
            return Err(unavailable(
                "a composite pivot needs a birth date to search by",
            ));
        };
        let path = self.path_for(&birthdate.directory_attribute);
        let filter = birthdate_spellings(&birthdate.value)
            .iter()
            .map(|spelling| format!("{path} eq {}", string_literal(spelling)))
            .collect::<Vec<_>>()
            .join(" or ");
        // Everyone born that day may be many people: every page is read (bounded), and the
        // six fields decide.
        let mut matching = Vec::new();
        self.each_page(
            "Users",
            &[("filter", filter)],
            MAX_PEOPLE_PAGES,
            "people born that day",
            |page| {
                matching.extend(page.into_iter().filter(|resource| {
                    pivot.matches_all(|attribute| values_at(resource, &self.path_for(attribute)))
                }))
            },
        )
        .await?;
        single_match_where(matching, |_| true)
    }

    /// Reads every page of `/{endpoint}` answering `query` (`startIndex` and `count` added),
    /// handing each page's resources to `visit`; a SCIM 404 is an empty answer. More than
    /// `max_pages` pages is an outage: an answer cut short would be taken for a whole one.
    async fn each_page(
        &self,
        endpoint: &str,
        query: &[(&str, String)],
        max_pages: u32,
        what: &str,
        mut visit: impl FnMut(Vec<Value>),
    ) -> Result<(), DirectoryError> {
        let url = format!("{}/{endpoint}", self.base);
        let page_size = self.settings.page_size.max(1);
        let mut start = 1u32;
        for _ in 0..max_pages {
            let mut paged = query.to_vec();
            paged.push(("startIndex", start.to_string()));
            paged.push(("count", page_size.to_string()));
            let Some(list) = self.get(&url, &paged).await? else {
                return Ok(());
            };
            let page = list_resources(&list)?;
            let received = page.len() as u32;
            visit(page);
            let total = list
                .get("totalResults")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            start += received;
            if received == 0 || u64::from(start) > total {
                return Ok(());
            }
        }
        Err(unavailable(format!(
            "more than {max_pages} pages of {what}"
        )))
    }

    async fn groups_of(&self, id: &str) -> Result<Vec<String>, DirectoryError> {
        let mut groups = Vec::new();
        let query = [
            ("filter", format!("members.value eq {}", string_literal(id))),
            ("attributes", "displayName".to_owned()),
        ];
        self.each_page("Groups", &query, MAX_GROUP_PAGES, "groups", |page| {
            groups.extend(page.iter().filter_map(group_name))
        })
        .await?;
        Ok(groups)
    }

    fn user_from(
        &self,
        resource: &Value,
        groups: Vec<String>,
    ) -> Result<DirectoryUser, DirectoryError> {
        let id = resource
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| unavailable("user resource without an id"))?
            .to_owned();
        let mut attributes = BTreeMap::new();
        let mut put = |name: &str, path: &str| {
            let values = values_at(resource, path);
            if !values.is_empty() {
                attributes.insert(name.to_owned(), values);
            }
        };
        for (name, path) in [
            ("userName", "userName"),
            ("externalId", "externalId"),
            ("displayName", "displayName"),
            ("givenName", "name.givenName"),
            ("familyName", "name.familyName"),
            ("email", "emails.value"),
        ] {
            put(name, path);
        }
        for (name, path) in &self.settings.attributes {
            put(name, path);
        }
        let date_at = |path: &Option<String>| -> Result<Option<i64>, DirectoryError> {
            let Some(path) = path else { return Ok(None) };
            match values_at(resource, path).first() {
                None => Ok(None),
                Some(text) => crate::file::parse_date(text)
                    .map(Some)
                    .map_err(|e| unavailable(format!("{path}: {e}"))),
            }
        };
        let roles = roles_from_groups(
            &groups,
            &self.settings.group_prefix,
            &self.settings.group_separator,
        );
        Ok(DirectoryUser {
            id,
            attributes,
            structures: self
                .settings
                .structure_attribute
                .as_deref()
                .map(|path| values_at(resource, path))
                .unwrap_or_default(),
            groups,
            roles,
            valid_from: date_at(&self.settings.valid_from_attribute)?,
            valid_until: date_at(&self.settings.valid_until_attribute)?,
            locked: match resource.get("active") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(active)) => !active,
                Some(_) => return Err(unavailable("user `active` is not a boolean")),
            },
        })
    }
}

#[async_trait]
impl Directory for ScimDirectory {
    async fn find(&self, pivot: &PivotQuery) -> Result<Option<DirectoryUser>, DirectoryError> {
        let Some(resource) = self.find_resource(pivot).await? else {
            return Ok(None);
        };
        let groups = match resource.get("groups") {
            Some(Value::Array(groups)) => groups.iter().filter_map(group_name).collect(),
            Some(Value::Null) | None => {
                let id = resource
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                self.groups_of(id).await?
            }
            Some(_) => return Err(unavailable("user `groups` is not a list")),
        };
        self.user_from(&resource, groups).map(Some)
    }

    fn describe(&self) -> String {
        let mut url = self.settings.url.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        format!("SCIM {url}")
    }
}

/// A SCIM error response (RFC 7644 §3.12), as a service answers for what it does not have.
fn is_scim_error(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|error| error.get("schemas").cloned())
        .and_then(|schemas| schemas.as_array().cloned())
        .is_some_and(|schemas| {
            schemas
                .iter()
                .any(|s| s == "urn:ietf:params:scim:api:messages:2.0:Error")
        })
}

/// A SCIM filter string literal: JSON string syntax (RFC 7644 §3.4.2.2), so a `"` or `\` in
/// the value cannot end the literal and add filter clauses.
fn string_literal(value: &str) -> String {
    // Serializing a `&str` cannot fail; an empty literal would match nothing.
    serde_json::to_string(value).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The `Resources` of a ListResponse (absent when there are none).
fn list_resources(list: &Value) -> Result<Vec<Value>, DirectoryError> {
    match list.get("Resources") {
        Some(Value::Array(resources)) => Ok(resources.clone()),
        None | Some(Value::Null) => {
            if list
                .get("totalResults")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                > 0
            {
                Err(unavailable(
                    "ListResponse with totalResults but no Resources",
                ))
            } else {
                Ok(Vec::new())
            }
        }
        Some(_) => Err(unavailable("ListResponse `Resources` is not a list")),
    }
}

/// A group reference's name: its `display`, or failing that its `displayName`.
fn group_name(group: &Value) -> Option<String> {
    group
        .get("display")
        .or_else(|| group.get("displayName"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The values at a SCIM attribute path (`userName`, `emails.value`, `name.givenName`,
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`), through
/// multi-valued attributes. Numbers and booleans as text.
pub fn values_at(resource: &Value, path: &str) -> Vec<String> {
    let (mut current, rest) = match path.strip_prefix("urn:") {
        Some(_) => match path.rsplit_once(':') {
            Some((schema, attribute)) => (
                vec![resource.get(schema).unwrap_or(&Value::Null)],
                attribute,
            ),
            None => return Vec::new(),
        },
        None => (vec![resource], path),
    };
    for segment in rest.split('.') {
        current = current
            .into_iter()
            .flat_map(|value| match value {
                Value::Array(items) => items.iter().filter_map(|item| item.get(segment)).collect(),
                Value::Object(map) => map.get(segment).into_iter().collect(),
                _ => Vec::new(),
            })
            .collect();
    }
    current
        .into_iter()
        .flat_map(|value| match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        })
        .filter_map(|value| match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
        .collect()
}

/// The ways directories write the birth date whose normal form is `normal` (`YYYY-MM-DD`):
/// ISO and French day-first, and for presumed dates (day or month `01`) the unknown parts as
/// `00` or left out.
fn birthdate_spellings(normal: &str) -> Vec<String> {
    let mut spellings = vec![normal.to_owned()];
    let (Some(year), Some(month), Some(day)) =
        (normal.get(..4), normal.get(5..7), normal.get(8..10))
    else {
        return spellings;
    };
    spellings.push(format!("{day}/{month}/{year}"));
    if day == "01" {
        spellings.extend([
            format!("{year}-{month}-00"),
            format!("{year}-{month}"),
            format!("00/{month}/{year}"),
        ]);
        if month == "01" {
            spellings.extend([
                format!("{year}-00-00"),
                year.to_owned(),
                format!("00/00/{year}"),
            ]);
        }
    }
    spellings
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_birth_date_is_searched_in_every_spelling_of_it() {
        assert_eq!(
            birthdate_spellings("1962-08-24"),
            ["1962-08-24", "24/08/1962"]
        );
        assert_eq!(
            birthdate_spellings("1962-08-01"),
            [
                "1962-08-01",
                "01/08/1962",
                "1962-08-00",
                "1962-08",
                "00/08/1962"
            ]
        );
        assert_eq!(birthdate_spellings("1962-01-01").len(), 8);
        // Every spelling reads back as the same date.
        for normal in ["1962-08-24", "1962-08-01", "1962-01-01"] {
            for spelling in birthdate_spellings(normal) {
                assert_eq!(
                    crate::identity_pivot::normalize(crate::FieldKind::Birthdate, &spelling)
                        .as_deref(),
                    Some(normal),
                    "{spelling}"
                );
            }
        }
    }

    #[test]
    fn values_are_read_through_multi_valued_attributes_and_extensions() {
        let user = json!({
            "id": "1",
            "userName": "amartin",
            "emails": [{"value": "a@x", "primary": true}, {"value": "b@x"}],
            "name": {"givenName": "Alice"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": 42},
        });
        assert_eq!(values_at(&user, "userName"), vec!["amartin"]);
        assert_eq!(values_at(&user, "emails.value"), vec!["a@x", "b@x"]);
        assert_eq!(values_at(&user, "name.givenName"), vec!["Alice"]);
        assert_eq!(
            values_at(
                &user,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"
            ),
            vec!["42"]
        );
        assert!(values_at(&user, "nickName").is_empty());
    }

    #[test]
    fn filter_literals_cannot_be_escaped() {
        assert_eq!(
            string_literal(r#"a" or userName pr or "x"#),
            r#""a\" or userName pr or \"x""#
        );
        assert_eq!(string_literal("back\\slash"), r#""back\\slash""#);
    }
}
