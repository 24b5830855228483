//! The return from an external identity provider: `/.guichet/callback/{provider}`, GET (query)
//! or POST (form, for `form_post` and SAML bindings).
//!
//! The login transaction (single use, bound to this browser by its cookie) names the app, where
//! the user was going and the provider chosen; a callback on another provider's path is refused
//! whatever it carries.

use std::sync::Arc;

use guichet_protocols::{
    Callback, EndpointRequest, EndpointRoute, FinishContext, ProviderError, ProviderState,
};

use super::login::{callback_url, sign_in};
use super::{login_cookie, provider_endpoints, transaction, transaction_cookie, Body, Request};
use crate::http::pages::text;
use crate::http::respond::Reply;
use crate::session::login::LoginTransaction;
use crate::session::{StoreError, StoreProofs};
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
        failed(gateway, req, provider, reason, outcome)
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
    if let Some(reply) = endpoint_on_callback(gateway, req, provider_id, &query, &form).await? {
        return Ok(reply);
    }

    // A provider's answer by cross-site POST carries no SameSite=Lax cookie: the browser's
    // transaction cannot be found yet. Post it again from this site, once.
    let post = req.method == http::Method::POST;
    if post && !relayed && transaction_cookie(gateway, req).is_none() {
        if let Some(app) = gateway.apps.get(req.app) {
            return Ok(relay(app, provider_id, req, &form, &id));
        }
    }

    // A login waits on its provider from here (token endpoint, ticket validation): at most
    // `limits.max_concurrent_logins` at once, so that a slow provider cannot pile up tasks.
    // Taken before the transaction is: a refused user can retry the same callback.
    let Some(_slot) = gateway.login_slots.take().await else {
        fail(
            req,
            provider_id,
            &format!(
                "too many logins in progress on this replica ({} at once: limits.max_concurrent_logins)",
                gateway.login_slots.capacity()
            ),
            "busy",
        );
        return Ok(Reply::error(503, text::UNAVAILABLE, text::TRY_AGAIN, &id)
            .with_header("retry-after", "5".to_owned()));
    };

    // Single use: replaying a callback finds nothing.
    let txn = match transaction(gateway, req, true).await? {
        Some((_, txn)) => Some(txn),
        None => unsolicited(gateway, req, provider_id),
    };
    let Some(txn) = txn else {
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
        proofs: Arc::new(StoreProofs::new(gateway.store.clone(), provider_id)),
    };
    let callback = Callback { query, form };
    let outcome = entry
        .provider
        .finish(&finish, &callback, &txn.provider_state)
        .await;
    match outcome {
        Ok(principal) => sign_in(gateway, req, app, &txn.return_to, principal).await,
        Err(error) => {
            Ok(refused(gateway, req, provider_id, error).with_header("set-cookie", clear_login))
        }
    }
}

/// A login the provider started by itself (a SAML IdP-initiated response) has no transaction:
/// when the provider accepts such logins, it lands on the app the provider names, at its root.
/// The provider's `finish` gets an empty state and checks that unsolicited logins are allowed.
fn unsolicited(gateway: &Gateway, req: &Request, provider_id: &str) -> Option<LoginTransaction> {
    if req.method != http::Method::POST {
        return None;
    }
    let entry = gateway.providers.get(provider_id)?;
    let landing = entry.provider.unsolicited_landing()?;
    let app = &gateway.apps[gateway.app_by_id(landing)?];
    let mut txn = LoginTransaction::new(
        &app.id,
        &format!("{}/", app.path_prefix.trim_end_matches('/')),
    );
    txn.provider = Some(provider_id.to_owned());
    txn.provider_state = ProviderState::default();
    Some(txn)
}

/// Audits a failed callback and counts it for its provider (when it names one).
fn failed(gateway: &Gateway, req: &Request, provider: &str, reason: &str, outcome: &str) {
    audit::login_failed(&req.audit(gateway), provider, None, reason);
    if gateway.providers.contains_key(provider) {
        gateway
            .metrics
            .logins
            .with_label_values(&[provider, outcome])
            .inc();
    }
}

/// A provider endpoint that rides the callback URL, when the request carries its field.
async fn endpoint_on_callback(
    gateway: &Gateway,
    req: &Request,
    provider_id: &str,
    query: &[(String, String)],
    form: &[(String, String)],
) -> Result<Option<Reply>, StoreError> {
    let Some(entry) = gateway.providers.get(provider_id) else {
        return Ok(None);
    };
    let fields = if req.method == http::Method::POST {
        form
    } else {
        query
    };
    let wanted = provider_endpoints::method_of(&req.method);
    let on_callback = entry.provider.endpoints().into_iter().find(|spec| {
        Some(spec.method) == wanted
            && matches!(spec.route, EndpointRoute::OnCallback(field)
                if fields.iter().any(|(k, _)| k == field))
    });
    let Some(spec) = on_callback else {
        return Ok(None);
    };
    let raw_query = req.query.as_deref().unwrap_or("");
    let proofs = StoreProofs::new(gateway.store.clone(), provider_id);
    let request = EndpointRequest {
        query,
        form,
        raw_query,
        proofs: &proofs,
    };
    provider_endpoints::handle(gateway, req, provider_id, entry, spec, request)
        .await
        .map(Some)
}

/// The page for a login the provider did not finish, the precise reason to the audit log:
/// the user cancelled or was refused, a one-time proof that expired or was replayed, a
/// provider that cannot be reached, anything else.
fn refused(gateway: &Gateway, req: &Request, provider_id: &str, error: ProviderError) -> Reply {
    let id = &req.correlation_id;
    let (status, message, reason, outcome) = match error {
        ProviderError::Denied { error, description } => (
            403,
            text::PROVIDER_DENIED,
            format!(
                "provider returned error {error:?}: {}",
                description.as_deref().unwrap_or("-")
            ),
            "denied",
        ),
        ProviderError::InvalidProof(reason) => (403, text::TICKET_INVALID, reason, "rejected"),
        ProviderError::Unavailable(reason) => (502, text::IDP_DOWN, reason, "unavailable"),
        error => (403, text::LOGIN_REFUSED, error.to_string(), "rejected"),
    };
    failed(gateway, req, provider_id, &reason, outcome);
    Reply::error(status, text::LOGIN_FAILED, message, id)
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
