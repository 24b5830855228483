//! The gateway's own endpoints under `/.guichet/` on every app host: login, logout, whoami,
//! the providers' callbacks and their own endpoints. They are answered here and never
//! forwarded to an application.
//!
//! Nothing here knows pingora: handlers take a [`Request`] (method, path, query, headers, the
//! body already read and bounded, client address, app) and return a [`Reply`]; the proxy
//! adapts pingora to that, and unit tests call handlers directly on the memory store.

mod callback;
#[cfg(test)]
mod handler_tests;
mod login;
mod logout;
mod provider_endpoints;
pub mod request;

/// `/.guichet/callback/{provider}`: where external providers send the browser back.
const CALLBACK_PREFIX: &str = "/.guichet/callback/";

use std::net::IpAddr;
use std::time::Duration;

use guichet_protocols::{EndpointRequest, EndpointRoute, DEFAULT_CALLBACK_BODY_BYTES};
use http::Method;

use crate::http::cookies::{self, CookieSpec};
use crate::http::pages::text;
use crate::http::respond::Reply;
use crate::session::login::{
    random_token, transaction_key, LoginTransaction, TRANSACTION_TTL_SECS,
};
use crate::session::StoreError;
use crate::state::{App, Gateway};
use crate::telemetry::audit;

pub use login::start_login;
pub use request::{Body, Request};

/// The most body a POST to `path` may carry, read before the handler runs; `None`: the route
/// reads no body.
pub fn body_limit(gateway: &Gateway, method: &Method, path: &str) -> Option<usize> {
    if *method != Method::POST {
        return None;
    }
    if matches!(path, "/.guichet/login" | "/.guichet/logout") {
        return Some(MAX_FORM_BYTES);
    }
    // Callbacks and provider endpoints: the provider states its limit.
    let provider = path.strip_prefix(CALLBACK_PREFIX).or_else(|| {
        path.strip_prefix("/.guichet/")
            .and_then(|rest| rest.split_once('/'))
            .map(|(_, provider)| provider)
    })?;
    Some(
        gateway
            .providers
            .get(provider)
            .map_or(DEFAULT_CALLBACK_BODY_BYTES, |entry| {
                entry.provider.callback_body_limit()
            }),
    )
}

/// Answers a request to `/.guichet/...`. A store failure is a 503 page, never half an answer.
pub async fn handle(gateway: &Gateway, req: &mut Request) -> Reply {
    let id = req.correlation_id.clone();
    let path = req.path.clone();
    let method = req.method.clone();
    let reply = match (path.as_str(), &method) {
        ("/.guichet/login", &Method::GET | &Method::HEAD) => login::page(gateway, req).await,
        ("/.guichet/login", &Method::POST) => login::submit(gateway, req).await,
        ("/.guichet/logout", &Method::GET) => logout::on_get(gateway, req).await,
        ("/.guichet/logout", &Method::POST) => logout::on_post(gateway, req).await,
        ("/.guichet/whoami", &Method::GET) => logout::whoami(gateway, req).await,
        (logout::LOGOUT_DONE, &Method::GET) => logout::done(gateway, req).await,
        (path, &Method::GET | &Method::POST) if path.starts_with(CALLBACK_PREFIX) => {
            let provider = &path[CALLBACK_PREFIX.len()..];
            callback::finish(gateway, req, provider).await
        }
        ("/.guichet/login" | "/.guichet/logout" | "/.guichet/whoami", _) => {
            Ok(Reply::error(405, text::METHOD, text::METHOD_TEXT, &id))
        }
        (path, method) => provider_endpoint(gateway, req, path, method).await,
    };
    reply.unwrap_or_else(|e: StoreError| {
        gateway
            .metrics
            .store_errors
            .with_label_values(&["endpoint"])
            .inc();
        tracing::error!(correlation_id = %id, error = %e, "session store failure");
        Reply::error(503, text::UNAVAILABLE, text::STORE_DOWN, &id)
    })
}

/// `/.guichet/{name}/{provider}`: an endpoint the provider declared
/// ([`EndpointRoute::Path`]), e.g. `/.guichet/backchannel-logout/op` or `/.guichet/jwks/fcplus`.
/// Anything else under `/.guichet/` is the generic 404 page, the reason in the audit log.
async fn provider_endpoint(
    gateway: &Gateway,
    req: &mut Request,
    path: &str,
    method: &Method,
) -> Result<Reply, StoreError> {
    let id = req.correlation_id.clone();
    let found = path
        .strip_prefix("/.guichet/")
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(name, provider_id)| {
            let entry = gateway.providers.get(provider_id)?;
            let wanted = provider_endpoints::method_of(method)?;
            let spec = entry.provider.endpoints().into_iter().find(|spec| {
                spec.method == wanted && matches!(spec.route, EndpointRoute::Path(p) if p == name)
            })?;
            Some((provider_id, entry, spec))
        });
    let Some((provider_id, entry, spec)) = found else {
        audit::request_refused(&req.audit(gateway), "no such gateway or provider endpoint");
        return Ok(Reply::error(404, text::NOT_FOUND, text::NO_APP, &id));
    };
    let query = req.query_pairs();
    let form = if *method == Method::POST {
        match &req.body {
            Body::Form(form) => form.clone(),
            _ => {
                audit::backchannel_logout_refused(
                    &req.audit(gateway),
                    provider_id,
                    "body unreadable or too large",
                );
                return Ok(Reply::json(
                    400,
                    &serde_json::json!({"error": "invalid_request"}),
                ));
            }
        }
    } else {
        Vec::new()
    };
    let raw_query = req.query.clone().unwrap_or_default();
    let proofs = crate::session::StoreProofs::new(gateway.store.clone(), provider_id);
    let request = EndpointRequest {
        query: &query,
        form: &form,
        raw_query: &raw_query,
        proofs: &proofs,
    };
    provider_endpoints::handle(gateway, req, provider_id, entry, spec, request).await
}

/// The cookie binding a login transaction to the browser: short-lived, only sent to
/// `/.guichet/`.
fn login_cookie<'a>(gateway: &'a Gateway, app: &App) -> CookieSpec<'a> {
    CookieSpec {
        name: &gateway.sessions.login_cookie_name,
        path: "/.guichet/",
        domain: None,
        secure: app.secure,
        max_age: Some(TRANSACTION_TTL_SECS),
    }
}

/// The known-device cookie: sent only to the gateway's own endpoints, for months.
fn device_cookie<'a>(gateway: &'a Gateway, app: &App) -> CookieSpec<'a> {
    CookieSpec {
        name: &gateway.sessions.device_cookie_name,
        path: "/.guichet/",
        domain: None,
        secure: app.secure,
        max_age: Some(crate::session::login_limits::DEVICE_TTL.as_secs()),
    }
}

fn session_cookie<'a>(gateway: &'a Gateway, app: &App) -> CookieSpec<'a> {
    CookieSpec {
        name: gateway.sessions.cookie_name_for(app),
        path: "/",
        domain: gateway.sessions.cookie_domain.as_deref(),
        secure: app.secure,
        max_age: None,
    }
}

/// Stores a new login transaction and returns its id (the cookie value).
#[allow(clippy::expect_used, reason = "generated ids are well-formed")]
async fn new_transaction(gateway: &Gateway, txn: &LoginTransaction) -> Result<String, StoreError> {
    let txn_id = random_token();
    let key = transaction_key(&txn_id).expect("generated ids are well-formed");
    save_transaction(gateway, &key, txn).await?;
    Ok(txn_id)
}

/// Writes a transaction under its key (again, when the user picked a provider).
async fn save_transaction(
    gateway: &Gateway,
    key: &str,
    txn: &LoginTransaction,
) -> Result<(), StoreError> {
    gateway
        .store
        .put_transient(
            key,
            &txn.to_bytes(),
            Duration::from_secs(TRANSACTION_TTL_SECS),
        )
        .await
}

/// The store key named by the browser's login cookie. Several values (a cookie tossed in by a
/// sibling domain) are no transaction at all.
pub(crate) fn transaction_cookie(gateway: &Gateway, req: &Request) -> Option<String> {
    let mut values = cookies::values(&req.headers, &gateway.sessions.login_cookie_name);
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    transaction_key(value)
}

/// The browser's login transaction and its store key. `take` removes it (single use);
/// otherwise it stays.
async fn transaction(
    gateway: &Gateway,
    req: &Request,
    take: bool,
) -> Result<Option<(String, LoginTransaction)>, StoreError> {
    let Some(key) = transaction_cookie(gateway, req) else {
        return Ok(None);
    };
    let bytes = if take {
        gateway.store.take_transient(&key).await?
    } else {
        gateway.store.peek_transient(&key).await?
    };
    Ok(bytes
        .and_then(|bytes| LoginTransaction::from_bytes(&bytes))
        .map(|txn| (key, txn)))
}

/// Largest form body accepted on the gateway's own forms (login, logout).
pub const MAX_FORM_BYTES: usize = 8 * 1024;

/// A POST from another site carries an Origin naming it: refuse it. Browsers always send
/// Origin on POST; its absence means a non-browser client, which cannot ride a user's cookies.
fn same_origin_post(req: &Request, app: &App) -> bool {
    let Some(origin) = req.header_str("origin") else {
        return true;
    };
    if origin == app.origin {
        return true;
    }
    let host = req.header_str("host").unwrap_or("");
    origin == format!("{}://{}", req.forwarded_proto, host)
}

/// What rate limits count a client as: its IPv4 address, or its IPv6 /64 (one subscriber's
/// allocation, which it can rotate through freely).
pub fn client_bucket(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::client_bucket;

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a = client_bucket(Some("2001:db8:1:2::1".parse().unwrap()));
        let b = client_bucket(Some("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert_eq!(a, b);
        assert_ne!(a, client_bucket(Some("2001:db8:1:3::1".parse().unwrap())));
        assert_eq!(
            client_bucket(Some("::ffff:192.0.2.1".parse().unwrap())),
            "192.0.2.1"
        );
    }
}
