//! The gateway's own endpoints under `/.guichet/` on every app host: login, logout, whoami.
//! They are answered here and never forwarded to an application.

use guichet_protocols::{Callback, FinishContext, LoginStart, ProviderError};
use pingora::proxy::Session;
use pingora::Result;
use subtle::ConstantTimeEq;

use crate::audit;
use crate::cookies::{self, CookieSpec};
use crate::identity::{self, now};
use crate::login::{
    random_token, safe_return_path, transaction_key, LoginTransaction, TRANSACTION_TTL_SECS,
};
use crate::pages::{self, text, Bilingual, LoginForm};
use crate::proxy::RequestCtx;
use crate::respond::Reply;
use crate::session::{SessionId, SessionRecord, StoreError};
use crate::state::{App, Gateway};

/// Largest login form body accepted.
pub const MAX_FORM_BYTES: usize = 8 * 1024;

pub async fn handle(
    gateway: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    path: &str,
) -> Result<()> {
    let id = ctx.correlation_id.clone();
    let method = session.req_header().method.clone();
    let reply = match (path, &method) {
        ("/.guichet/login", &http::Method::GET | &http::Method::HEAD) => {
            login_page(gateway, session, ctx).await
        }
        ("/.guichet/login", &http::Method::POST) => login_submit(gateway, session, ctx).await,
        ("/.guichet/logout", &http::Method::GET | &http::Method::POST) => {
            logout(gateway, session, ctx).await
        }
        ("/.guichet/whoami", &http::Method::GET) => whoami(gateway, session, ctx).await,
        ("/.guichet/login" | "/.guichet/logout" | "/.guichet/whoami", _) => {
            Ok(Reply::error(405, text::METHOD, text::METHOD_TEXT, &id))
        }
        _ => Ok(Reply::error(404, text::NOT_FOUND, text::NO_APP, &id)),
    };
    let reply = reply.unwrap_or_else(|e: StoreError| {
        gateway
            .metrics
            .store_errors
            .with_label_values(&["endpoint"])
            .inc();
        tracing::error!(correlation_id = %id, error = %e, "session store failure");
        Reply::error(503, text::UNAVAILABLE, text::STORE_DOWN, &id)
    });
    reply.send(session, &id).await
}

fn login_cookie<'a>(gateway: &'a Gateway, app: &App) -> CookieSpec<'a> {
    CookieSpec {
        name: &gateway.sessions.login_cookie_name,
        path: "/.guichet/",
        domain: None,
        secure: app.secure,
        max_age: Some(TRANSACTION_TTL_SECS),
    }
}

fn session_cookie<'a>(gateway: &'a Gateway, app: &App) -> CookieSpec<'a> {
    CookieSpec {
        name: &gateway.sessions.cookie_name,
        path: "/",
        domain: gateway.sessions.cookie_domain.as_deref(),
        secure: app.secure,
        max_age: None,
    }
}

/// Stores a new login transaction and returns its id.
async fn new_transaction(gateway: &Gateway, txn: &LoginTransaction) -> Result<String, StoreError> {
    let txn_id = random_token();
    let key = transaction_key(&txn_id).expect("generated ids are well-formed");
    gateway
        .store
        .put_transient(
            &key,
            &txn.to_bytes(),
            std::time::Duration::from_secs(TRANSACTION_TTL_SECS),
        )
        .await?;
    Ok(txn_id)
}

/// Begins a login for a protected request: remember where the user was going, send them to
/// the login endpoint.
pub async fn start_login(
    gateway: &Gateway,
    app: &App,
    return_to: &str,
) -> Result<Reply, StoreError> {
    let txn = LoginTransaction::new(&app.id, return_to);
    let txn_id = new_transaction(gateway, &txn).await?;
    Ok(Reply::redirect("/.guichet/login")
        .with_header("set-cookie", login_cookie(gateway, app).set(&txn_id)))
}

fn transaction_cookie(gateway: &Gateway, session: &Session) -> Option<String> {
    cookies::values(
        &session.req_header().headers,
        &gateway.sessions.login_cookie_name,
    )
    .find_map(transaction_key)
}

/// The browser's login transaction. `take` removes it (single use); otherwise it stays.
async fn transaction(
    gateway: &Gateway,
    session: &Session,
    take: bool,
) -> Result<Option<LoginTransaction>, StoreError> {
    let Some(key) = transaction_cookie(gateway, session) else {
        return Ok(None);
    };
    let bytes = if take {
        gateway.store.take_transient(&key).await?
    } else {
        gateway.store.peek_transient(&key).await?
    };
    Ok(bytes.and_then(|bytes| LoginTransaction::from_bytes(&bytes)))
}

fn query_param(session: &Session, name: &str) -> Option<String> {
    let query = session.req_header().uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

async fn login_page(
    gateway: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<Reply, StoreError> {
    let id = ctx.correlation_id.clone();
    let host_app = &gateway.apps[ctx.app.expect("routed")];
    // The transaction decides the app and the return URL; without one (a bookmarked login
    // page), log in to this host's app and land on its root.
    let (txn, fresh_cookie) = match transaction(gateway, session, false).await? {
        Some(txn)
            if host_app.hosts.iter().any(|h| {
                gateway
                    .apps
                    .iter()
                    .any(|a| a.id == txn.app && a.hosts.contains(h))
            }) =>
        {
            (txn, None)
        }
        _ => {
            let root = if host_app.path_prefix.is_empty() {
                "/".to_string()
            } else {
                format!("{}/", host_app.path_prefix)
            };
            let txn = LoginTransaction::new(&host_app.id, &root);
            let txn_id = new_transaction(gateway, &txn).await?;
            (txn, Some(txn_id))
        }
    };
    let app_index = gateway
        .app_by_id(&txn.app)
        .unwrap_or(ctx.app.expect("routed"));
    ctx.app = Some(app_index);
    let app = &gateway.apps[app_index];

    // Already signed in: nothing to do but go back.
    if identity::current(gateway, session.req_header())
        .await?
        .is_some()
    {
        if let Some(key) = transaction_cookie(gateway, session) {
            gateway.store.take_transient(&key).await?;
        }
        return Ok(
            Reply::redirect(safe_return_path(&txn.return_to).unwrap_or("/"))
                .with_header("set-cookie", login_cookie(gateway, app).clear()),
        );
    }

    let chosen = match query_param(session, "idp") {
        Some(idp) if app.providers.contains(&idp) => Some(idp),
        _ if app.providers.len() == 1 => Some(app.providers[0].clone()),
        _ => None,
    };
    let with_cookie = |reply: Reply| match &fresh_cookie {
        Some(txn_id) => reply.with_header("set-cookie", login_cookie(gateway, app).set(txn_id)),
        None => reply,
    };
    let Some(provider_id) = chosen else {
        return Ok(with_cookie(Reply::html(
            200,
            chooser_page(gateway, app, &id),
        )));
    };
    let entry = &gateway.providers[&provider_id];
    let callback =
        url::Url::parse(&format!("{}/.guichet/login", app.origin)).expect("origin is a URL");
    match entry.provider.begin(&callback).await {
        Ok((LoginStart::CredentialsForm, _)) => Ok(with_cookie(Reply::html(
            200,
            pages::login_page(&LoginForm {
                app_name: &app.id,
                provider_name: entry.provider.display_name(),
                csrf_token: &txn.csrf_token,
                username: "",
                error: None,
                correlation_id: &id,
            }),
        ))),
        Ok((LoginStart::Redirect { location }, _)) => {
            Ok(with_cookie(Reply::redirect(location.as_str())))
        }
        Ok((LoginStart::AutoPost { .. }, _)) | Err(_) => {
            audit::login_failed(
                &ctx.audit(gateway),
                &provider_id,
                None,
                "provider could not start the login",
            );
            Ok(Reply::error(
                502,
                text::LOGIN_FAILED,
                text::UPSTREAM_DOWN,
                &id,
            ))
        }
    }
}

/// The minimal provider chooser (a polished one is its own piece of work).
fn chooser_page(gateway: &Gateway, app: &App, correlation_id: &str) -> String {
    let links: String = app
        .providers
        .iter()
        .map(|pid| {
            format!(
                r#"<li><a href="/.guichet/login?idp={}">{}</a></li>"#,
                pages::escape(pid),
                pages::escape(gateway.providers[pid].provider.display_name())
            )
        })
        .collect();
    pages::error_page(
        Bilingual {
            fr: "Connexion",
            en: "Sign in",
        },
        Bilingual {
            fr: "Choisissez comment vous connecter :",
            en: "Choose how to sign in:",
        },
        correlation_id,
    )
    .replace(
        "<p class=\"ref\">",
        &format!("<ul>{links}</ul><p class=\"ref\">"),
    )
}

async fn read_form(
    session: &mut Session,
) -> Result<Option<Vec<(String, String)>>, pingora::BError> {
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_FORM_BYTES) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > MAX_FORM_BYTES {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(form_urlencoded::parse(&body).into_owned().collect()))
}

async fn login_submit(
    gateway: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<Reply, StoreError> {
    let id = ctx.correlation_id.clone();
    let form = match read_form(session).await {
        Ok(Some(form)) => form,
        Ok(None) => {
            audit::request_refused(&ctx.audit(gateway), "login form too large");
            return Ok(Reply::error(413, text::BAD_REQUEST, text::TOO_LARGE, &id));
        }
        Err(e) => {
            tracing::debug!(error = %e, "could not read login form");
            return Ok(Reply::error(400, text::BAD_REQUEST, text::BAD_FORM, &id));
        }
    };
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    // Single use: whatever happens next, this transaction is spent.
    let Some(txn) = transaction(gateway, session, true).await? else {
        audit::login_failed(
            &ctx.audit(gateway),
            "-",
            None,
            "login transaction missing or expired",
        );
        return Ok(Reply::error(403, text::LOGIN_FAILED, text::BAD_FORM, &id));
    };
    let Some(app_index) = gateway.app_by_id(&txn.app) else {
        return Ok(Reply::error(403, text::LOGIN_FAILED, text::BAD_FORM, &id));
    };
    ctx.app = Some(app_index);
    let app = &gateway.apps[app_index];
    let token_ok = field("csrf_token")
        .is_some_and(|token| bool::from(token.as_bytes().ct_eq(txn.csrf_token.as_bytes())));
    if !token_ok || !origin_allowed(session, app, ctx) {
        audit::login_failed(
            &ctx.audit(gateway),
            "-",
            None,
            "CSRF check failed (token or Origin)",
        );
        gateway
            .metrics
            .logins
            .with_label_values(&["-", "csrf"])
            .inc();
        return Ok(Reply::error(403, text::LOGIN_FAILED, text::BAD_FORM, &id));
    }
    let Some((provider_id, entry)) = app
        .providers
        .iter()
        .filter_map(|pid| gateway.providers.get_key_value(pid))
        .find(|(_, entry)| entry.local.is_some())
    else {
        audit::login_failed(
            &ctx.audit(gateway),
            "-",
            None,
            "app has no password provider",
        );
        return Ok(Reply::error(403, text::LOGIN_FAILED, text::BAD_FORM, &id));
    };
    let local = entry.local.as_ref().expect("filtered on local");
    let typed_login = field("username")
        .unwrap_or("")
        .chars()
        .take(256)
        .collect::<String>();

    // Rate limits: per account (the canonical name, so `Alice` and `alice@...` count together)
    // and per client address.
    let account = local
        .canonical_login(&typed_login)
        .map(str::to_owned)
        .unwrap_or_else(|| typed_login.trim().to_lowercase());
    let account_counter = format!("fail:acct:{provider_id}:{account}");
    let ip_counter = format!(
        "fail:ip:{}",
        ctx.client_ip.map(|ip| ip.to_string()).unwrap_or_default()
    );
    let limits = &entry.rate_limit;
    let limited = gateway.store.count(&account_counter).await? >= limits.max_failures_per_account
        || gateway.store.count(&ip_counter).await? >= limits.max_failures_per_ip;

    let retry = RetryForm {
        app,
        return_to: &txn.return_to,
        provider_name: entry.provider.display_name(),
        typed_login: &typed_login,
        correlation_id: &id,
    };

    if limited {
        audit::login_failed(
            &ctx.audit(gateway),
            provider_id,
            Some(&typed_login),
            "rate limited",
        );
        gateway
            .metrics
            .logins
            .with_label_values(&[provider_id, "rate_limited"])
            .inc();
        return retry.render(gateway, text::TOO_MANY, 429).await;
    }

    let callback = Callback {
        query: Vec::new(),
        form: form.clone(),
    };
    let finish = FinishContext {
        callback_url: url::Url::parse(&format!("{}/.guichet/login", app.origin))
            .expect("origin is a URL"),
    };
    match entry
        .provider
        .finish(&finish, &callback, &txn.provider_state)
        .await
    {
        Ok(principal) => {
            gateway.store.reset(&account_counter).await.ok();
            // Rotate: a fresh id at every login, and the previous session (if any) is gone.
            if let Some(old) = identity::session_id(gateway, &session.req_header().headers) {
                gateway.store.delete_session(&old).await?;
            }
            let now = now();
            let record = SessionRecord {
                roles: principal.attribute_values("roles").to_vec(),
                principal,
                app: app.id.clone(),
                created_at: now,
                last_seen: now,
                expires_at: now + gateway.sessions.absolute_timeout.as_secs() as i64,
            };
            let session_id = SessionId::generate();
            let ttl = identity::remaining_ttl(&record, gateway.sessions.idle_timeout, now);
            gateway
                .store
                .save_session(&session_id, &record, ttl)
                .await?;
            audit::login_succeeded(&ctx.audit(gateway), provider_id, &record.principal.subject);
            gateway
                .metrics
                .logins
                .with_label_values(&[provider_id, "success"])
                .inc();
            Ok(
                Reply::redirect(safe_return_path(&txn.return_to).unwrap_or("/"))
                    .with_header(
                        "set-cookie",
                        session_cookie(gateway, app).set(session_id.as_cookie_value()),
                    )
                    .with_header("set-cookie", login_cookie(gateway, app).clear()),
            )
        }
        Err(error) => {
            gateway
                .store
                .increment(&account_counter, limits.window)
                .await?;
            gateway.store.increment(&ip_counter, limits.window).await?;
            audit::login_failed(
                &ctx.audit(gateway),
                provider_id,
                Some(&typed_login),
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

/// The login form again after a failed attempt, with a fresh transaction (the old one is spent).
struct RetryForm<'a> {
    app: &'a App,
    return_to: &'a str,
    provider_name: &'a str,
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
        let txn = LoginTransaction::new(&self.app.id, self.return_to);
        let txn_id = new_transaction(gateway, &txn).await?;
        Ok(Reply::html(
            status,
            pages::login_page(&LoginForm {
                app_name: &self.app.id,
                provider_name: self.provider_name,
                csrf_token: &txn.csrf_token,
                username: self.typed_login,
                error: Some(error),
                correlation_id: self.correlation_id,
            }),
        )
        .with_header("set-cookie", login_cookie(gateway, self.app).set(&txn_id)))
    }
}

/// A cross-site POST carries an Origin naming the other site: refuse it even before the token.
fn origin_allowed(session: &Session, app: &App, ctx: &RequestCtx) -> bool {
    let Some(origin) = session
        .req_header()
        .headers
        .get("origin")
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    if origin == app.origin {
        return true;
    }
    let host = session
        .req_header()
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin == format!("{}://{}", ctx.forwarded_proto_str(), host)
}

async fn logout(
    gateway: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<Reply, StoreError> {
    let id = ctx.correlation_id.clone();
    let app = &gateway.apps[ctx.app.expect("routed")];
    if let Some(session_id) = identity::session_id(gateway, &session.req_header().headers) {
        let record = gateway.store.load_session(&session_id).await?;
        gateway.store.delete_session(&session_id).await?;
        if let Some(record) = record {
            audit::logged_out(
                &ctx.audit(gateway),
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
    let clear = session_cookie(gateway, app).clear();
    let target =
        query_param(session, "return_to").and_then(|to| allowed_logout_target(gateway, &to));
    Ok(match target {
        Some(location) => Reply::redirect(&location),
        None => Reply::html(200, pages::logged_out_page(&id)),
    }
    .with_header("set-cookie", clear))
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

async fn whoami(
    gateway: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<Reply, StoreError> {
    let Some(identity) = identity::current(gateway, session.req_header()).await? else {
        return Ok(Reply::json(
            401,
            &serde_json::json!({"error": "authentication_required", "correlation_id": ctx.correlation_id}),
        ));
    };
    let record = &identity.record;
    Ok(Reply::json(
        200,
        &serde_json::json!({
            "subject": record.principal.subject,
            "provider": record.principal.provider,
            "attributes": record.principal.attributes,
            "roles": record.roles,
            "auth_time": record.principal.auth_time.unix_timestamp(),
            "session_app": record.app,
            "expires_at": record.expires_at,
        }),
    ))
}
