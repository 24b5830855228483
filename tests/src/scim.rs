//! A mock SCIM 2.0 directory (wiremock on an ephemeral loopback port): `/scim/v2/Users` with
//! `eq` filters (and `or` of them on one attribute), `/scim/v2/Users/{id}` and `/scim/v2/Groups` with paging, people changed by the
//! test, and a switch to make it misbehave (status, malformed JSON, slowness, huge answers).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// How the directory answers.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Mode {
    #[default]
    Normal,
    Status(u16),
    Malformed,
    /// Answers correctly after this long.
    Slow(Duration),
    /// A well-formed answer larger than any sane user.
    Huge,
    /// Every lookup finds nothing (a SCIM 404 error response, as some servers answer).
    NotFound,
    /// A 404 page that is not SCIM's (a proxy in front of a misrouted URL).
    ForeignNotFound,
}

#[derive(Default)]
pub struct ScimState {
    /// SCIM User resources.
    pub users: Vec<Value>,
    /// Group names by user id, served by `/Groups` for users without a `groups` attribute.
    pub groups: Vec<(String, Vec<String>)>,
    pub mode: Mode,
    /// The `Authorization` header every request must carry, if set.
    pub expected_authorization: Option<String>,
}

pub struct MockScim {
    pub server: MockServer,
    state: Arc<Mutex<ScimState>>,
}

/// A SCIM User with one e-mail and groups named by the `{app}:{role}` convention.
pub fn user(id: &str, email: &str, groups: &[&str]) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": id,
        "userName": id,
        "displayName": format!("Person {id}"),
        "active": true,
        "emails": [{"value": email, "primary": true}],
        "groups": groups.iter().map(|g| json!({"value": format!("g-{g}"), "display": g})).collect::<Vec<_>>(),
    })
}

fn list(resources: Vec<Value>, total: usize, start: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// `path eq "value"` → (path, value).
fn parse_filter(filter: &str) -> Option<(String, String)> {
    let (path, literal) = filter.split_once(" eq ")?;
    Some((
        path.trim().to_owned(),
        serde_json::from_str(literal.trim()).ok()?,
    ))
}

/// `path eq "a" or path eq "b"...` (one path) → (path, values).
fn parse_any_of(filter: &str) -> Option<(String, Vec<String>)> {
    let mut path = None;
    let mut values = Vec::new();
    for term in filter.split(" or ") {
        let (term_path, value) = parse_filter(term)?;
        if path.get_or_insert_with(|| term_path.clone()) != &term_path {
            return None;
        }
        values.push(value);
    }
    Some((path?, values))
}

fn values_at(resource: &Value, path: &str) -> Vec<String> {
    let mut current = vec![resource.clone()];
    for segment in path.split('.') {
        current = current
            .into_iter()
            .flat_map(|v| match v {
                Value::Array(items) => items
                    .iter()
                    .filter_map(|i| i.get(segment).cloned())
                    .collect(),
                other => other.get(segment).cloned().into_iter().collect::<Vec<_>>(),
            })
            .collect();
    }
    current
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn query(request: &Request, name: &str) -> Option<String> {
    crate::query_value(&request.url, name)
}

impl MockScim {
    pub async fn start() -> MockScim {
        let mock = MockScim {
            server: MockServer::start().await,
            state: Arc::new(Mutex::new(ScimState::default())),
        };
        let state = mock.state.clone();
        Mock::given(method("GET"))
            .and(path("/scim/v2/Users"))
            .respond_with(move |request: &Request| {
                answer(&state.lock().unwrap(), request, |state| {
                    let Some((path, wanted)) =
                        query(request, "filter").and_then(|f| parse_any_of(&f))
                    else {
                        return ResponseTemplate::new(400);
                    };
                    let found: Vec<Value> = state
                        .users
                        .iter()
                        // Case-insensitive, as SCIM servers compare caseExact=false attributes.
                        .filter(|u| {
                            values_at(u, &path)
                                .iter()
                                .any(|v| wanted.iter().any(|w| v.eq_ignore_ascii_case(w)))
                        })
                        .cloned()
                        .collect();
                    let total = found.len();
                    ResponseTemplate::new(200).set_body_json(list(found, total, 1))
                })
            })
            .mount(&mock.server)
            .await;
        let state = mock.state.clone();
        Mock::given(method("GET"))
            .and(path_regex(r"^/scim/v2/Users/[^/]+$"))
            .respond_with(move |request: &Request| {
                answer(&state.lock().unwrap(), request, |state| {
                    let id = request.url.path().rsplit('/').next().unwrap_or_default();
                    match state.users.iter().find(|u| u["id"] == id) {
                        Some(user) => ResponseTemplate::new(200).set_body_json(user),
                        None => ResponseTemplate::new(404),
                    }
                })
            })
            .mount(&mock.server)
            .await;
        let state = mock.state.clone();
        Mock::given(method("GET"))
            .and(path("/scim/v2/Groups"))
            .respond_with(move |request: &Request| {
                answer(&state.lock().unwrap(), request, |state| {
                    let Some((_, id)) = query(request, "filter").and_then(|f| parse_filter(&f))
                    else {
                        return ResponseTemplate::new(400);
                    };
                    let start: usize = query(request, "startIndex")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(1);
                    let count: usize = query(request, "count")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(100);
                    let names: Vec<String> = state
                        .groups
                        .iter()
                        .filter(|(user, _)| *user == id)
                        .flat_map(|(_, names)| names.clone())
                        .collect();
                    let page: Vec<Value> = names
                        .iter()
                        .skip(start.saturating_sub(1))
                        .take(count)
                        .map(|name| json!({"id": format!("g-{name}"), "displayName": name}))
                        .collect();
                    ResponseTemplate::new(200).set_body_json(list(page, names.len(), start))
                })
            })
            .mount(&mock.server)
            .await;
        mock
    }

    /// The base URL to configure (`http://127.0.0.1:PORT/scim/v2`).
    pub fn url(&self) -> String {
        format!("{}/scim/v2", self.server.uri())
    }

    pub fn state(&self) -> MutexGuard<'_, ScimState> {
        self.state.lock().unwrap()
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state().mode = mode;
    }

    /// Replaces (or adds) a user.
    pub fn put_user(&self, user: Value) {
        let mut state = self.state();
        state.users.retain(|u| u["id"] != user["id"]);
        state.users.push(user);
    }

    /// How many lookups of people (`/Users` requests) the directory received.
    pub async fn user_lookups(&self) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().starts_with("/scim/v2/Users"))
            .count()
    }

    pub async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }
}

/// Applies the mode (and the credential check) around a normal answer.
fn answer(
    state: &ScimState,
    request: &Request,
    normal: impl FnOnce(&ScimState) -> ResponseTemplate,
) -> ResponseTemplate {
    if let Some(expected) = &state.expected_authorization {
        let presented = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if presented != Some(expected.as_str()) {
            return ResponseTemplate::new(401);
        }
    }
    match &state.mode {
        Mode::Normal => normal(state),
        Mode::Status(status) => ResponseTemplate::new(*status),
        Mode::Malformed => ResponseTemplate::new(200)
            .insert_header("content-type", "application/scim+json")
            .set_body_string("{\"Resources\": [ {\"id\": \"u1\", "),
        Mode::Slow(delay) => normal(state).set_delay(*delay),
        Mode::Huge => {
            let padding = "x".repeat(2 * 1024 * 1024);
            ResponseTemplate::new(200).set_body_json(json!({"totalResults": 0, "padding": padding}))
        }
        Mode::NotFound => ResponseTemplate::new(404).set_body_json(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": "404",
            "detail": "Resource not found",
        })),
        Mode::ForeignNotFound => ResponseTemplate::new(404)
            .insert_header("content-type", "text/html")
            .set_body_string("<html><body>404 Not Found</body></html>"),
    }
}
