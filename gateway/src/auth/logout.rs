//! Signing out, and the session's own view of itself.

use guichet_protocols::SignOut;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{same_origin_post, session_cookie, Body, Request};
use crate::http::pages::{self, text};
use crate::http::respond::Reply;
use crate::identity;
use crate::session::login::safe_return_path;
use crate::session::StoreError;
use crate::state::Gateway;
use crate::telemetry::audit;

/// GET /.guichet/logout. A link followed from another site (`Sec-Fetch-Site: cross-site` or
/// `same-site`) only gets a confirmation page: a third party cannot sign users out. Links in
/// the application itself, typed URLs and non-browser clients sign out at once.
pub async fn on_get(gateway: &Gateway, req: &mut Request) -> Result<Reply, StoreError> {
    let fetch_site = req.header_str("sec-fetch-site").unwrap_or("none");
    let return_to = req.query_param("return_to");
    if matches!(fetch_site, "cross-site" | "same-site") {
        let target = return_to.filter(|to| allowed_logout_target(gateway, to).is_some());
        return Ok(Reply::html(
            200,
            pages::logout_confirm_page(target.as_deref(), &req.correlation_id),
        ));
    }
    sign_out(gateway, req, return_to).await
}

/// POST /.guichet/logout, from the confirmation page or an application's own form.
pub async fn on_post(gateway: &Gateway, req: &mut Request) -> Result<Reply, StoreError> {
    let app = &gateway.apps[req.app];
    if !same_origin_post(req, app) {
        audit::request_refused(&req.audit(gateway), "cross-origin logout POST");
        return Ok(Reply::error(
            403,
            text::BAD_REQUEST,
            text::BAD_FORM,
            &req.correlation_id,
        ));
    }
    let form = match &req.body {
        Body::Form(form) => form.clone(),
        _ => Vec::new(),
    };
    let return_to = form
        .into_iter()
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v)
        .or_else(|| req.query_param("return_to"));
    sign_out(gateway, req, return_to).await
}

#[allow(
    clippy::expect_used,
    reason = "app origins are URLs (checked at load); a pending logout always serializes"
)]
async fn sign_out(
    gateway: &Gateway,
    req: &mut Request,
    return_to: Option<String>,
) -> Result<Reply, StoreError> {
    let app = &gateway.apps[req.app];
    let mut ended = None;
    if let Some(session_id) = identity::session_id(gateway, app, &req.headers) {
        let record = gateway.store.load_session(&session_id).await?;
        // If this fails the user sees a 503 and keeps the cookie: nothing is half-done.
        gateway.store.delete_session(&session_id).await?;
        if let Some(record) = record {
            ended = Some(record.clone());
            audit::logged_out(
                &req.audit(gateway),
                &record.principal.provider,
                &record.principal.subject,
            );
            gateway
                .metrics
                .logouts
                .with_label_values(&[&record.principal.provider])
                .inc();
        }
    }
    let target = return_to.and_then(|to| allowed_logout_target(gateway, &to));
    let clear = session_cookie(gateway, app).clear();

    // The provider's own session ends too (RP-initiated logout): the browser goes there, and
    // comes back to /.guichet/logout/done with a single-use state naming where to land.
    if let Some(record) = ended {
        if let Some(entry) = gateway.providers.get(&record.principal.provider) {
            let state = crate::session::login::random_token();
            let done =
                url::Url::parse(&format!("{}{LOGOUT_DONE}", app.origin)).expect("origin is a URL");
            let at_provider = entry
                .provider
                .sign_out(&record.principal, &done, &state)
                .await;
            let sign_out = match at_provider {
                Ok(sign_out) => sign_out,
                Err(error) => {
                    // Signed out here; the provider's own session may still be open, and on a
                    // shared computer the next person could get it: say so plainly.
                    audit::provider_logout_failed(
                        &req.audit(gateway),
                        &record.principal.provider,
                        &error.to_string(),
                    );
                    let page = pages::provider_logout_failed_page(
                        entry.provider.display_name(),
                        &req.correlation_id,
                    );
                    return Ok(Reply::html(502, page).with_header("set-cookie", clear));
                }
            };
            if let Some(sign_out) = sign_out {
                let pending = PendingLogout {
                    target: target.clone(),
                };
                gateway
                    .store
                    .put_transient(
                        &logout_state_key(&state),
                        &serde_json::to_vec(&pending).expect("serializes"),
                        LOGOUT_STATE_TTL,
                    )
                    .await?;
                let reply = match sign_out {
                    SignOut::Redirect { location } => Reply::redirect(location.as_str()),
                    SignOut::AutoPost { action, fields } => {
                        Reply::auto_post(&action, &fields, &req.correlation_id)
                    }
                };
                return Ok(reply.with_header("set-cookie", clear));
            }
        }
    }
    Ok(match target {
        Some(location) => Reply::redirect(&location),
        None => Reply::html(200, pages::logged_out_page(&req.correlation_id)),
    }
    .with_header("set-cookie", clear))
}

/// Where providers send the browser back after their own logout.
pub const LOGOUT_DONE: &str = "/.guichet/logout/done";
/// How long the user has to come back from the provider's logout.
const LOGOUT_STATE_TTL: Duration = Duration::from_secs(600);

#[derive(Serialize, Deserialize)]
struct PendingLogout {
    /// Where to land, already checked by [`allowed_logout_target`].
    target: Option<String>,
}

fn logout_state_key(state: &str) -> String {
    format!("logout:{state}")
}

/// GET /.guichet/logout/done?state=...: the return from the provider's logout. A known state
/// (single use) lands where the user asked; anything else gets the plain "signed out" page,
/// never an error loop and never a redirect the request chose.
pub async fn done(gateway: &Gateway, req: &mut Request) -> Result<Reply, StoreError> {
    let state = req.query_param("state");
    land_after_provider_logout(gateway, req, state).await
}

/// Where the browser lands once the provider's own logout is over, by the state
/// [`sign_out`] stored: by the logout return URL, or by a provider endpoint that received the
/// provider's answer (a SAML LogoutResponse).
pub async fn land_after_provider_logout(
    gateway: &Gateway,
    req: &Request,
    state: Option<String>,
) -> Result<Reply, StoreError> {
    let pending = match state {
        Some(state) if state.len() <= 128 => gateway
            .store
            .take_transient(&logout_state_key(&state))
            .await?
            .and_then(|bytes| serde_json::from_slice::<PendingLogout>(&bytes).ok()),
        _ => None,
    };
    match pending {
        Some(PendingLogout {
            target: Some(location),
        }) => Ok(Reply::redirect(&location)),
        Some(_) => Ok(Reply::html(
            200,
            pages::logged_out_page(&req.correlation_id),
        )),
        None => {
            audit::request_refused(
                &req.audit(gateway),
                "return from provider logout with an unknown or missing state",
            );
            Ok(Reply::html(
                200,
                pages::logged_out_page(&req.correlation_id),
            ))
        }
    }
}

/// Where logout may send the browser: a same-host path, or an http(s) URL on a host that one
/// of the configured apps is published on (exact host comparison). Anything else: nowhere.
pub fn allowed_logout_target(gateway: &Gateway, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return safe_return_path(target).map(str::to_owned);
    }
    if target.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    let url = url::Url::parse(target).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    gateway
        .apps
        .iter()
        .any(|app| app.hosts.contains(&host))
        .then(|| url.to_string())
}

/// GET /.guichet/whoami: the current session as JSON.
pub async fn whoami(gateway: &Gateway, req: &mut Request) -> Result<Reply, StoreError> {
    let app = &gateway.apps[req.app];
    let Some(identity) = identity::current(gateway, app, &req.headers).await? else {
        return Ok(Reply::json(
            401,
            &serde_json::json!({"error": "authentication_required", "correlation_id": req.correlation_id}),
        ));
    };
    let record = &identity.record;
    let person = identity::person(gateway, &identity.record).await;
    let view = identity.view(req.app, app, &person);
    Ok(Reply::json(
        200,
        &serde_json::json!({
            "subject": record.principal.subject,
            "provider": record.principal.provider,
            "attributes": record.principal.attributes,
            "roles": view.roles,
            "auth_time": record.principal.auth_time.unix_timestamp(),
            "session_app": record.app,
            "expires_at": record.expires_at,
        }),
    ))
}
