//! The return from an external identity provider: `/.guichet/callback/{provider}`, GET (query)
//! or POST (form, for `form_post` and SAML bindings).
//!
//! The login transaction (single use, bound to this browser by its cookie) names the app, where
//! the user was going and the provider chosen; a callback on another provider's path is refused
//! whatever it carries.

use guichet_protocols::{Callback, EndpointRequest, EndpointRoute, FinishContext, ProviderError};

use super::login::{callback_url, sign_in};
use super::{login_cookie, provider_endpoints, transaction, transaction_cookie, Body, Request};
use crate::http::pages::text;
use crate::http::respond::Reply;
use crate::session::StoreError;
use crate::state::Gateway;
use crate::telemetry::audit;

/// Longest callback query accepted (codes, states and error descriptions are far shorter).
const MAX_QUERY_BYTES: usize = 8 * 1024;

/// The field marking a callback POST that Guichet's relay page sent (see [`relay`]).
const RELAY_FIELD: &str = "guichet_relay";

pub async fn finish(
    gateway: &Gateway,
    req: &mut Request,
    provider_id: &str,
) -> Result<Reply, StoreError> {
    let id = req.correlation_id.clone();
    let fail = |req: &Request, provider: &str, reason: &str, outcome: &str| {
        audit::login_failed(&req.audit(gateway), provider, None, reason);
        if gateway.providers.contains_key(provider) {
            gateway
                .metrics
                .logins
                .with_label_values(&[provider, outcome])
                .inc();
        }
    };
    let query = req.query.clone().unwrap_or_default();
    if query.len() > MAX_QUERY_BYTES {
        fail(req, "-", "callback query too large", "malformed");
        return Ok(Reply::error(414, text::BAD_REQUEST, text::TOO_LARGE, &id));
    }
    let query: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    // Read before this handler ran, within the provider's own limit (SAML responses are
    // large; see `body_limit`).
    let form = if req.method == http::Method::POST {
        match &req.body {
            Body::Form(form) => form.clone(),
            _ => {
                fail(
                    req,
                    "-",
                    "callback form unreadable or too large",
                    "malformed",
                );
                return Ok(Reply::error(400, text::BAD_REQUEST, text::BAD_FORM, &id));
            }
        }
    } else {
        Vec::new()
    };
    let relayed = form.iter().any(|(k, _)| k == RELAY_FIELD);
    let form: Vec<(String, String)> = form.into_iter().filter(|(k, _)| k != RELAY_FIELD).collect();

    // Some providers' own endpoints ride the callback URL, recognised by a field (CAS single
    // logout: `logoutRequest`), without a login transaction.
    let method = req.method.clone();
    if let Some(entry) = gateway.providers.get(provider_id) {
        let fields = if method == http::Method::POST {
            &form
        } else {
            &query
        };
        let wanted = provider_endpoints::method_of(&method);
        let on_callback = entry.provider.endpoints().into_iter().find(|spec| {
            Some(spec.method) == wanted
                && matches!(spec.route, EndpointRoute::OnCallback(field)
                    if fields.iter().any(|(k, _)| k == field))
        });
        if let Some(spec) = on_callback {
            let request = EndpointRequest {
                query: &query,
                form: &form,
            };
            return provider_endpoints::handle(gateway, req, provider_id, entry, spec, request)
                .await;
        }
    }

    // A provider's answer by cross-site POST carries no SameSite=Lax cookie: the browser's
    // transaction cannot be found yet. Post it again from this site, once.
    let post = req.method == http::Method::POST;
    if post && !relayed && transaction_cookie(gateway, req).is_none() {
        if let Some(app) = gateway.apps.get(req.app) {
            return Ok(relay(app, provider_id, req, &form, &id));
        }
    }

    // Single use: replaying a callback finds nothing.
    let Some((_, txn)) = transaction(gateway, req, true).await? else {
        fail(
            req,
            "-",
            "no login transaction for this callback (expired, replayed or another browser)",
            "malformed",
        );
        return Ok(Reply::error(
            400,
            text::LOGIN_FAILED,
            text::LOGIN_EXPIRED,
            &id,
        ));
    };
    let Some(app_index) = gateway.app_by_id(&txn.app) else {
        fail(
            req,
            "-",
            "login transaction names an unknown app",
            "malformed",
        );
        return Ok(Reply::error(
            400,
            text::LOGIN_FAILED,
            text::LOGIN_EXPIRED,
            &id,
        ));
    };
    req.app = app_index;
    let app = &gateway.apps[app_index];
    let clear_login = login_cookie(gateway, app).clear();
    if txn.provider.as_deref() != Some(provider_id)
        || !app.providers.iter().any(|p| p == provider_id)
    {
        fail(
            req,
            provider_id,
            &format!(
                "callback for provider {provider_id:?} but the login was started with {:?}",
                txn.provider.as_deref().unwrap_or("-")
            ),
            "mixup",
        );
        return Ok(
            Reply::error(403, text::LOGIN_FAILED, text::LOGIN_REFUSED, &id)
                .with_header("set-cookie", clear_login),
        );
    }
    let entry = &gateway.providers[provider_id];
    let finish = FinishContext {
        callback_url: callback_url(app, provider_id),
    };
    let callback = Callback { query, form };
    match entry
        .provider
        .finish(&finish, &callback, &txn.provider_state)
        .await
    {
        Ok(principal) => sign_in(gateway, req, app, &txn.return_to, principal).await,
        Err(ProviderError::Denied { error, description }) => {
            let reason = format!(
                "provider returned error {error:?}: {}",
                description.as_deref().unwrap_or("-")
            );
            fail(req, provider_id, &reason, "denied");
            Ok(
                Reply::error(403, text::LOGIN_FAILED, text::PROVIDER_DENIED, &id)
                    .with_header("set-cookie", clear_login),
            )
        }
        Err(ProviderError::InvalidProof(reason)) => {
            fail(req, provider_id, &reason, "rejected");
            Ok(
                Reply::error(403, text::LOGIN_FAILED, text::TICKET_INVALID, &id)
                    .with_header("set-cookie", clear_login),
            )
        }
        Err(ProviderError::Unavailable(reason)) => {
            fail(req, provider_id, &reason, "unavailable");
            Ok(Reply::error(502, text::LOGIN_FAILED, text::IDP_DOWN, &id)
                .with_header("set-cookie", clear_login))
        }
        Err(error) => {
            fail(req, provider_id, &error.to_string(), "rejected");
            Ok(
                Reply::error(403, text::LOGIN_FAILED, text::LOGIN_REFUSED, &id)
                    .with_header("set-cookie", clear_login),
            )
        }
    }
}

/// The relay of a callback POST that arrived without the login cookie: a page on this site that
/// posts the same fields back to the same URL at once. A cross-site top-level POST carries no
/// `SameSite=Lax` cookie, but this second POST comes from Guichet's own page, so the browser
/// sends the login cookie with it; the transaction is then found and checked as for any
/// callback (its `state` or `RelayState` must be the one this browser's transaction holds).
/// Another browser's POST finds no cookie on the second pass either and is refused. See
/// docs/architecture.md, "Callbacks by cross-site POST".
fn relay(
    app: &crate::state::App,
    provider_id: &str,
    req: &Request,
    form: &[(String, String)],
    correlation_id: &str,
) -> Reply {
    let mut action = callback_url(app, provider_id);
    action.set_query(req.query.as_deref());
    let mut fields = form.to_vec();
    fields.push((RELAY_FIELD.to_owned(), "1".to_owned()));
    tracing::debug!(
        correlation_id,
        provider = provider_id,
        "callback POST relayed from this site"
    );
    Reply::auto_post(&action, &fields, correlation_id)
}
