//! Signing in: starting a login transaction, the login page (form or chooser), the form POST.

use std::time::Duration;

use guichet_protocols::{Callback, FinishContext, LoginStart, Principal, ProviderError};
use subtle::ConstantTimeEq;

use super::{
    client_bucket, device_cookie, login_cookie, new_transaction, same_origin_post,
    save_transaction, session_cookie, transaction, Body, Request,
};
use crate::http::pages::{self, text, Bilingual, LoginForm};
use crate::http::respond::Reply;
use crate::identity::{self, now};
use crate::session::login::{safe_return_path, transaction_key, LoginTransaction};
use crate::session::login_limits::{self, Admission};
use crate::session::{SessionId, SessionRecord, StoreError};
use crate::state::{App, Gateway, ProviderEntry};
use crate::telemetry::audit;

/// Longest login or password accepted from the form.
const MAX_CREDENTIAL_CHARS: usize = 256;

/// Begins a login for a protected request: remember where the user was going (server-side),
/// send the browser to the login endpoint. A browser that already has a transaction reuses it,
/// and each client address may start only so many logins a minute, so anonymous traffic cannot
/// fill the store.
pub async fn start_login(
    gateway: &Gateway,
    req: &Request,
    app: &App,
    return_to: &str,
) -> Result<Reply, StoreError> {
    let txn = LoginTransaction::new(&app.id, return_to);
    if let Some((key, _)) = transaction(gateway, req, false).await? {
        save_transaction(gateway, &key, &txn).await?;
        return Ok(Reply::redirect("/.guichet/login"));
    }
    if let Some(refusal) = too_many_starts(gateway, req).await? {
        return Ok(refusal);
    }
    let txn_id = new_transaction(gateway, &txn).await?;
    Ok(Reply::redirect("/.guichet/login")
        .with_header("set-cookie", login_cookie(gateway, app).set(&txn_id)))
}

/// Counts a new login transaction for the client's address; `Some(page)` when over the limit.
async fn too_many_starts(gateway: &Gateway, req: &Request) -> Result<Option<Reply>, StoreError> {
    let starts = gateway
        .store
        .increment(
            &format!("starts:ip:{}", client_bucket(req.client_ip)),
            Duration::from_secs(60),
        )
        .await?;
    if starts <= gateway.sessions.login_starts_per_minute {
        return Ok(None);
    }
    audit::request_refused(
        &req.audit(gateway),
        "too many logins started from this address",
    );
    Ok(Some(Reply::error(
        429,
        text::LOGIN_FAILED,
        text::SLOW_DOWN,
        &req.correlation_id,
    )))
}

/// GET /.guichet/login
#[allow(clippy::expect_used, reason = "generated ids are well-formed")]
pub async fn page(gateway: &Gateway, req: &mut Request) -> Result<Reply, StoreError> {
    let id = req.correlation_id.clone();
    let host_app = &gateway.apps[req.app];
    // The transaction decides the app and the return URL; without one (a bookmarked login
    // page), log in to this host's app and land on its root.
    let same_host = |txn: &LoginTransaction| {
        gateway.app_by_id(&txn.app).is_some_and(|i| {
            gateway.apps[i]
                .hosts
                .iter()
                .any(|h| host_app.hosts.contains(h))
        })
    };
    let (key, mut txn, fresh_cookie) = match transaction(gateway, req, false).await? {
        Some((key, txn)) if same_host(&txn) => (key, txn, None),
        _ => {
            if let Some(refusal) = too_many_starts(gateway, req).await? {
                return Ok(refusal);
            }
            let txn = LoginTransaction::new(&host_app.id, &format!("{}/", host_app.path_prefix));
            let txn_id = new_transaction(gateway, &txn).await?;
            let key = transaction_key(&txn_id).expect("generated ids are well-formed");
            (key, txn, Some(login_cookie(gateway, host_app).set(&txn_id)))
        }
    };
    let app_index = gateway.app_by_id(&txn.app).unwrap_or(req.app);
    req.app = app_index;
    let app = &gateway.apps[app_index];
    let with_cookie = |reply: Reply| match &fresh_cookie {
        Some(cookie) => reply.with_header("set-cookie", cookie.clone()),
        None => reply,
    };

    // Already signed in with a provider this app accepts: nothing to do but go back.
    if let Some(current) = identity::current(gateway, app, &req.headers).await? {
        if app.providers.contains(&current.record.principal.provider) {
            gateway.store.take_transient(&key).await?;
            return Ok(
                Reply::redirect(safe_return_path(&txn.return_to).unwrap_or("/"))
                    .with_header("set-cookie", login_cookie(gateway, app).clear()),
            );
        }
    }

    let chosen = match req.query_param("idp") {
        Some(idp) if app.providers.contains(&idp) => Some(idp),
        _ if app.providers.len() == 1 => Some(app.providers[0].clone()),
        _ => None,
    };
    let Some(provider_id) = chosen else {
        return Ok(with_cookie(Reply::html(
            200,
            chooser_page(gateway, app, &id),
        )));
    };
    let entry = &gateway.providers[&provider_id];
    let callback = callback_url(app, &provider_id);
    match entry.provider.begin(&callback).await {
        Ok((start, state)) => {
            // The login is bound to the provider chosen here: the callback cannot be finished
            // by another one.
            txn.provider = Some(provider_id.clone());
            txn.provider_state = state;
            save_transaction(gateway, &key, &txn).await?;
            Ok(with_cookie(match start {
                LoginStart::CredentialsForm => Reply::html(
                    200,
                    pages::login_page(&LoginForm {
                        app_name: &app.id,
                        provider_name: entry.provider.display_name(),
                        csrf_token: &txn.csrf_token,
                        username: "",
                        error: None,
                        correlation_id: &id,
                    }),
                ),
                LoginStart::Redirect { location } => Reply::redirect(location.as_str()),
                LoginStart::AutoPost { action, fields } => Reply::auto_post(&action, &fields, &id),
            }))
        }
        Err(error) => {
            audit::login_failed(
                &req.audit(gateway),
                &provider_id,
                None,
                &format!("cannot start the login: {error}"),
            );
            gateway
                .metrics
                .logins
                .with_label_values(&[&provider_id, "unavailable"])
                .inc();
            Ok(Reply::error(502, text::LOGIN_FAILED, text::IDP_DOWN, &id))
        }
    }
}

/// Where a provider sends the browser back for this app: from the configured app URL, never
/// from the request's Host. Password logins post their form to `/.guichet/login` instead.
#[allow(
    clippy::expect_used,
    reason = "origin is a URL and provider ids are URL-safe"
)]
pub fn callback_url(app: &App, provider_id: &str) -> url::Url {
    url::Url::parse(&format!("{}/.guichet/callback/{provider_id}", app.origin))
        .expect("origin is a URL and provider ids are URL-safe")
}

/// Opens the session of a finished login: a fresh id (rotation; the browser's previous
/// session, if any, ends), the record saved, single-logout tags filed, the audit event, and the
/// redirect back to where the user was going.
pub async fn sign_in(
    gateway: &Gateway,
    req: &Request,
    app: &App,
    return_to: &str,
    principal: Principal,
) -> Result<Reply, StoreError> {
    if let Some(old) = identity::session_id(gateway, app, &req.headers) {
        gateway.store.delete_session(&old).await?;
    }
    let now = now();
    // Roles count as the person's own only where the provider vouches for them (Guichet's
    // local users file); an external provider's claims become roles through an app's explicit
    // `roles` mapping.
    let provider = gateway.providers.get(&principal.provider);
    let own_roles = provider
        .map(|entry| entry.provider.own_roles(&principal))
        .unwrap_or_default();
    let tags = provider
        .map(|entry| entry.provider.session_tags(&principal))
        .unwrap_or_default();
    let pivot = match gateway.pivots.get(&principal.provider) {
        None => None,
        Some(config) => match crate::identity::directory::pivot_of(&principal, config) {
            Ok(pivot) => pivot,
            Err(refused) => {
                let reason = refused.to_string();
                let provider_id = &principal.provider;
                audit::login_failed(
                    &req.audit(gateway),
                    provider_id,
                    Some(&principal.subject),
                    &reason,
                );
                gateway
                    .metrics
                    .logins
                    .with_label_values(&[provider_id, "rejected"])
                    .inc();
                return Ok(Reply::error(
                    403,
                    text::LOGIN_FAILED,
                    text::PIVOT_INCOMPLETE,
                    &req.correlation_id,
                )
                .with_header("set-cookie", login_cookie(gateway, app).clear()));
            }
        },
    };
    let record = SessionRecord {
        pivot,
        roles: own_roles,
        principal,
        app: app.id.clone(),
        created_at: now,
        last_seen: now,
        expires_at: now + gateway.sessions.absolute_timeout.as_secs() as i64,
        views: Default::default(),
    };
    let session_id = SessionId::generate();
    let ttl = identity::remaining_ttl(&record, gateway.sessions.idle_timeout, now);
    gateway
        .store
        .save_session(&session_id, &record, ttl)
        .await?;
    for tag in tags {
        gateway
            .store
            .tag_session(&tag, &session_id, gateway.sessions.absolute_timeout)
            .await?;
    }
    let provider_id = &record.principal.provider;
    audit::login_succeeded(&req.audit(gateway), provider_id, &record.principal.subject);
    gateway
        .metrics
        .logins
        .with_label_values(&[provider_id, "success"])
        .inc();
    Ok(Reply::redirect(safe_return_path(return_to).unwrap_or("/"))
        .with_header(
            "set-cookie",
            session_cookie(gateway, app).set(session_id.as_cookie_value()),
        )
        .with_header("set-cookie", login_cookie(gateway, app).clear()))
}

/// The minimal provider chooser (a polished one is its own piece of work).
fn chooser_page(gateway: &Gateway, app: &App, correlation_id: &str) -> String {
    let choices: Vec<(String, String)> = app
        .providers
        .iter()
        .map(|pid| {
            (
                format!("/.guichet/login?idp={pid}"),
                gateway.providers[pid].provider.display_name().to_owned(),
            )
        })
        .collect();
    pages::chooser_page(&choices, correlation_id)
}

/// POST /.guichet/login: the credentials form of a password provider.
#[allow(
    clippy::expect_used,
    reason = "app origins are URLs: checked when the configuration is loaded"
)]
pub async fn submit(gateway: &Gateway, req: &mut Request) -> Result<Reply, StoreError> {
    let id = req.correlation_id.clone();
    let (form, txn, provider_id) = match bound_form(gateway, req).await? {
        Ok(bound) => bound,
        Err(refusal) => return Ok(refusal),
    };
    let app = &gateway.apps[req.app];
    let provider_id = provider_id.as_str();
    let entry = &gateway.providers[provider_id];
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    let typed_login = field("username").unwrap_or("").trim();
    let password = field("password").unwrap_or("");
    let retry = RetryForm {
        app,
        return_to: &txn.return_to,
        provider_id,
        entry,
        typed_login: &typed_login
            .chars()
            .take(MAX_CREDENTIAL_CHARS)
            .collect::<String>(),
        correlation_id: &id,
    };
    // Empty or oversized fields are a form error, not a guess: they are not counted.
    if typed_login.is_empty()
        || password.is_empty()
        || typed_login.chars().count() > MAX_CREDENTIAL_CHARS
        || password.chars().count() > MAX_CREDENTIAL_CHARS
    {
        audit::login_failed(
            &req.audit(gateway),
            provider_id,
            None,
            "empty or oversized credentials",
        );
        gateway
            .metrics
            .logins
            .with_label_values(&[provider_id, "malformed"])
            .inc();
        return retry.render(gateway, text::BAD_CREDENTIALS, 401).await;
    }

    // Rate limits (see login_limits), charged before the password is checked, per account
    // by its canonical name so that `Alice` and `alice@...` count together.
    let account = entry
        .provider
        .password_verifier()
        .and_then(|verifier| verifier.canonical_login(typed_login))
        .unwrap_or_else(|| typed_login.to_lowercase());
    // One device cookie or none: several (one planted by a sibling host) prove nothing.
    let headers = &req.headers;
    let mut devices = crate::http::cookies::values(headers, &gateway.sessions.device_cookie_name);
    let device = match (devices.next(), devices.next()) {
        (Some(token), None) => Some(token.to_owned()),
        _ => None,
    };
    let attempt = match login_limits::admit(
        &gateway.store,
        &gateway.busy_addresses,
        &entry.rate_limit,
        provider_id,
        &account,
        req.client_ip,
        device.as_deref(),
    )
    .await?
    {
        Admission::Check { attempt, delay } => {
            if let Some(delay) = delay {
                audit::login_slowed(&req.audit(gateway), provider_id, delay);
            }
            attempt
        }
        Admission::Refused(reason) => {
            audit::login_failed(&req.audit(gateway), provider_id, Some(typed_login), reason);
            gateway
                .metrics
                .logins
                .with_label_values(&[provider_id, "rate_limited"])
                .inc();
            return retry.render(gateway, text::TOO_MANY, 429).await;
        }
    };

    let callback = Callback {
        query: Vec::new(),
        form: form.clone(),
    };
    let finish = FinishContext {
        callback_url: url::Url::parse(&format!("{}/.guichet/login", app.origin))
            .expect("origin is a URL"),
        proofs: std::sync::Arc::new(crate::session::StoreProofs::new(
            gateway.store.clone(),
            provider_id,
        )),
    };
    match entry
        .provider
        .finish(&finish, &callback, &txn.provider_state)
        .await
    {
        Ok(principal) => {
            attempt.succeeded().await?;
            let reply = sign_in(gateway, req, app, &txn.return_to, principal).await?;
            if reply.status != 302 {
                // Signed in by password but refused after (the directory link): no session,
                // and no known device either.
                return Ok(reply);
            }
            // From now on this browser is a known device for the account: a busy address or
            // someone guessing the account elsewhere will not keep its owner out. Always a
            // fresh token: one taken from the request could have been planted by someone who
            // would then hold a known device for this account.
            let token = login_limits::remember_new_device(
                &gateway.store,
                device.as_deref(),
                provider_id,
                &account,
            )
            .await?;
            Ok(reply.with_header("set-cookie", device_cookie(gateway, app).set(&token)))
        }
        Err(ProviderError::Unavailable(reason)) => {
            attempt.not_checked().await?;
            audit::login_failed(&req.audit(gateway), provider_id, Some(typed_login), &reason);
            gateway
                .metrics
                .logins
                .with_label_values(&[provider_id, "unavailable"])
                .inc();
            Ok(Reply::error(503, text::UNAVAILABLE, text::TRY_AGAIN, &id))
        }
        Err(error) => {
            audit::login_failed(
                &req.audit(gateway),
                provider_id,
                Some(typed_login),
                &error.to_string(),
            );
            let outcome = match error {
                ProviderError::InvalidCredentials => "invalid_credentials",
                ProviderError::AccountDisabled => "account_disabled",
                ProviderError::MalformedCallback(_) => "malformed",
                _ => "error",
            };
            gateway
                .metrics
                .logins
                .with_label_values(&[provider_id, outcome])
                .inc();
            // Same message for every failure: the page must not reveal which accounts exist.
            retry.render(gateway, text::BAD_CREDENTIALS, 401).await
        }
    }
}

/// The posted form, its login transaction (taken: single use) and the password provider it is
/// bound to, once the CSRF token and Origin hold; otherwise the refusal. Sets the request's app
/// to the transaction's.
async fn bound_form(
    gateway: &Gateway,
    req: &mut Request,
) -> Result<Result<(Vec<(String, String)>, LoginTransaction, String), Reply>, StoreError> {
    let id = req.correlation_id.clone();
    let refuse = |req: &Request, reason: &str| {
        audit::login_failed(&req.audit(gateway), "-", None, reason);
        Reply::error(403, text::LOGIN_FAILED, text::BAD_FORM, &req.correlation_id)
    };
    let form = match &req.body {
        Body::Form(form) => form.clone(),
        Body::TooLarge => {
            audit::request_refused(&req.audit(gateway), "login form too large");
            return Ok(Err(Reply::error(
                413,
                text::BAD_REQUEST,
                text::TOO_LARGE,
                &id,
            )));
        }
        Body::Unreadable | Body::None => {
            return Ok(Err(Reply::error(
                400,
                text::BAD_REQUEST,
                text::BAD_FORM,
                &id,
            )));
        }
    };
    // Single use: whatever happens next, this transaction is spent.
    let Some((_, txn)) = transaction(gateway, req, true).await? else {
        return Ok(Err(refuse(req, "login transaction missing or expired")));
    };
    let Some(app_index) = gateway.app_by_id(&txn.app) else {
        return Ok(Err(Reply::error(
            403,
            text::LOGIN_FAILED,
            text::BAD_FORM,
            &id,
        )));
    };
    req.app = app_index;
    let app = &gateway.apps[app_index];
    let token_ok = form
        .iter()
        .find(|(k, _)| k == "csrf_token")
        .is_some_and(|(_, token)| bool::from(token.as_bytes().ct_eq(txn.csrf_token.as_bytes())));
    if !token_ok || !same_origin_post(req, app) {
        gateway
            .metrics
            .logins
            .with_label_values(&["-", "csrf"])
            .inc();
        return Ok(Err(refuse(req, "CSRF check failed (token or Origin)")));
    }
    // The provider the login page was shown for, and it must take passwords.
    let provider = txn
        .provider
        .as_deref()
        .filter(|pid| app.providers.iter().any(|p| p == pid))
        .filter(|pid| {
            gateway
                .providers
                .get(*pid)
                .is_some_and(|entry| entry.provider.password_verifier().is_some())
        })
        .map(str::to_owned);
    let Some(provider_id) = provider else {
        return Ok(Err(refuse(req, "no password provider bound to this login")));
    };
    Ok(Ok((form, txn, provider_id)))
}

/// The login form again after a failed attempt, with a fresh transaction (the old one is spent)
/// bound to the same provider.
struct RetryForm<'a> {
    app: &'a App,
    return_to: &'a str,
    provider_id: &'a str,
    entry: &'a ProviderEntry,
    typed_login: &'a str,
    correlation_id: &'a str,
}

impl RetryForm<'_> {
    async fn render(
        &self,
        gateway: &Gateway,
        error: Bilingual,
        status: u16,
    ) -> Result<Reply, StoreError> {
        let mut txn = LoginTransaction::new(&self.app.id, self.return_to);
        txn.provider = Some(self.provider_id.to_owned());
        let txn_id = new_transaction(gateway, &txn).await?;
        Ok(Reply::html(
            status,
            pages::login_page(&LoginForm {
                app_name: &self.app.id,
                provider_name: self.entry.provider.display_name(),
                csrf_token: &txn.csrf_token,
                username: self.typed_login,
                error: Some(error),
                correlation_id: self.correlation_id,
            }),
        )
        .with_header("set-cookie", login_cookie(gateway, self.app).set(&txn_id)))
    }
}
