//! What the gateway's own endpoints see of a request: plain `http` types, no pingora. The
//! proxy builds one (reading the body, bounded by the route's limit, before the handler runs),
//! and tests build them directly to call a handler with no socket.

use std::net::IpAddr;

use http::{HeaderMap, Method};

use crate::state::Gateway;
use crate::telemetry::audit::AuditContext;

/// The body of a request to an endpoint, read before the handler runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Body {
    /// Not read (not a POST, or a route that takes none).
    #[default]
    None,
    /// A urlencoded form within the route's limit.
    Form(Vec<(String, String)>),
    /// Larger than the route's limit.
    TooLarge,
    /// The client stopped sending, or the connection failed.
    Unreadable,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    /// The decided path (normalized, without the query).
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Body,
    pub client_ip: Option<IpAddr>,
    /// `http` or `https`, as the client reached the gateway (or the trusted proxy in front).
    pub forwarded_proto: &'static str,
    /// The app this request is for: chosen by Host, then possibly by the login transaction.
    pub app: usize,
    pub correlation_id: String,
}

impl Request {
    /// A request to `path_and_query` on the app `app` (tests build handlers' requests).
    #[cfg(test)]
    pub fn new(method: Method, path_and_query: &str, app: usize) -> Self {
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
            None => (path_and_query.to_owned(), None),
        };
        Self {
            method,
            path,
            query,
            headers: HeaderMap::new(),
            body: Body::None,
            client_ip: None,
            forwarded_proto: "http",
            app,
            correlation_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// With a header (tests).
    #[cfg(test)]
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            self.headers.append(name, value);
        }
        self
    }

    /// With a form body (tests).
    #[cfg(test)]
    pub fn form(mut self, fields: &[(&str, &str)]) -> Self {
        self.body = Body::Form(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        self
    }

    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// Every query parameter, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query
            .as_deref()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default()
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn audit<'a>(&'a self, gateway: &'a Gateway) -> AuditContext<'a> {
        AuditContext {
            correlation_id: &self.correlation_id,
            app: gateway
                .apps
                .get(self.app)
                .map_or("-", |app| app.id.as_str()),
            client_ip: self.client_ip,
        }
    }
}
