//! The pingora proxy: routing, header scrubbing, access decision, identity injection.
//!
//! Order matters and is the security argument of this file:
//! 1. the client's address and forwarding chain are read (trusted proxies only);
//! 2. the path is normalized (ambiguous paths refused) and the app chosen by Host and path;
//! 3. every header the gateway controls is removed, on every route, public ones too;
//! 4. `/.guichet/` requests are answered by the gateway and never forwarded;
//! 5. the session is loaded and the app's policy decides; anything unresolved denies;
//! 6. only then is the request forwarded, with identity headers written by the gateway.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use http::header::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::auth;
use crate::http::cookies;
use crate::http::pages::{self, text};
use crate::http::respond::Reply;
use crate::http::routing::{parse_target, request_host};
use crate::http::upstream::Resolver;
use crate::identity::decision::{self, Block, Verdict};
use crate::identity::{AppView, Identity};
use crate::state::{App, Gateway, LiveGateway};
use crate::telemetry::audit::{self, AuditContext};

pub struct GuichetProxy {
    /// The gateway now serving: each request takes it once, in [`ProxyHttp::new_ctx`].
    pub live: LiveGateway,
    pub resolver: Resolver,
}

/// Per-request state shared by the proxy phases.
pub struct RequestCtx {
    /// The configuration this request is served with, to its end (a reload swaps the next
    /// requests' only).
    pub gateway: Arc<Gateway>,
    pub correlation_id: String,
    pub started: Instant,
    pub app: Option<usize>,
    pub client_ip: Option<IpAddr>,
    /// X-Forwarded-For to send upstream.
    forwarded_for: String,
    forwarded_proto: &'static str,
    /// The Host the client asked for (or the trusted proxy's X-Forwarded-Host), as received.
    forwarded_host: Option<HeaderValue>,
    /// The signed-in user, when there is one.
    pub identity: Option<Identity>,
    /// What the app sees of that user (roles, encoded identity headers).
    pub view: Option<Arc<AppView>>,
    /// The request target forwarded upstream: origin-form, the bytes the policy decided on.
    origin_form: String,
}

impl RequestCtx {
    pub fn audit<'a>(&'a self, gateway: &'a Gateway) -> AuditContext<'a> {
        AuditContext {
            correlation_id: &self.correlation_id,
            app: self.app.map(|i| gateway.apps[i].id.as_str()).unwrap_or("-"),
            client_ip: self.client_ip,
        }
    }
}

impl GuichetProxy {
    pub fn new(live: LiveGateway) -> Self {
        Self {
            live,
            resolver: Resolver::new(std::time::Duration::from_secs(30)),
        }
    }

    /// Reads who the client is and how it reached us, believing X-Forwarded-* only from
    /// trusted proxies.
    fn read_forwarding(&self, session: &Session, ctx: &mut RequestCtx) {
        let peer = session
            .client_addr()
            .and_then(|addr| addr.as_inet())
            .map(|addr| addr.ip());
        let tls = session
            .digest()
            .is_some_and(|digest| digest.ssl_digest.is_some());
        let header = |name: &str| session.req_header().headers.get(name);
        ctx.forwarded_proto = if tls { "https" } else { "http" };
        ctx.forwarded_host = header("host").cloned();
        ctx.client_ip = peer;
        let Some(peer) = peer else { return };
        ctx.forwarded_for = peer.to_string();
        if !ctx.gateway.is_trusted_proxy(peer) {
            return;
        }
        // Walk X-Forwarded-For from the right: the first address that is not a trusted proxy
        // is the client. Everything left of it could have been written by the client, and so
        // could anything after an entry we cannot parse: there we stop at the last trusted hop.
        let entries: Vec<String> = session
            .req_header()
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|entry| entry.trim().to_owned())
            .collect();
        let mut client = peer;
        let mut kept = vec![peer];
        for entry in entries.iter().rev() {
            let Ok(ip) = entry.parse::<IpAddr>() else {
                break;
            };
            kept.push(ip);
            client = ip;
            if !ctx.gateway.is_trusted_proxy(ip) {
                break;
            }
        }
        kept.reverse();
        ctx.client_ip = Some(client);
        ctx.forwarded_for = kept
            .iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        match header("x-forwarded-proto").map(HeaderValue::as_bytes) {
            Some(b"https") => ctx.forwarded_proto = "https",
            Some(b"http") => ctx.forwarded_proto = "http",
            _ => {}
        }
        if let Some(host) =
            header("x-forwarded-host").filter(|h| h.to_str().ok().and_then(request_host).is_some())
        {
            ctx.forwarded_host = Some(host.clone());
        }
    }

    /// Checks the request line and headers and chooses the app (by Host, and by path outside
    /// `/.guichet/`): the app and the decided path, or the reply refusing the request. Every
    /// header the gateway controls is removed from here on.
    fn route(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> std::result::Result<(usize, String), Reply> {
        let gateway = ctx.gateway.clone();
        let gateway = &*gateway;
        let id = &ctx.correlation_id;
        // Methods are case-sensitive and rules name them in capitals; many frameworks
        // uppercase what they receive, so `delete` would be decided as an unknown method and
        // run as DELETE. Refused instead.
        if session
            .req_header()
            .method
            .as_str()
            .bytes()
            .any(|b| b.is_ascii_lowercase())
        {
            return Err(Reply::error(400, text::BAD_REQUEST, text::BAD_PATH, id));
        }
        let host = session
            .req_header()
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .or_else(|| session.req_header().uri.authority().map(|a| a.as_str()))
            .and_then(request_host);
        // Decide on the client's own bytes, not on a parser's idea of them.
        let target = match parse_target(session.req_header().raw_path()) {
            Ok(target) => target,
            Err(why) => {
                audit::request_refused(&ctx.audit(gateway), &why.to_string());
                return Err(Reply::error(400, text::BAD_REQUEST, text::BAD_PATH, id));
            }
        };
        let path = target.decision_path;
        ctx.origin_form = target.origin_form;
        let is_endpoint = path == "/.guichet" || path.starts_with("/.guichet/");
        let app = host.as_deref().and_then(|host| {
            if is_endpoint {
                gateway.default_app_for_host(host)
            } else {
                gateway.router.route(host, &path)
            }
        });
        let Some(app_index) = app else {
            return Err(Reply::error(
                404,
                text::NOT_FOUND,
                text::NO_APP,
                &ctx.correlation_id,
            ));
        };
        ctx.app = Some(app_index);
        let app = &gateway.apps[app_index];
        self.scrub(session.req_header_mut(), app);
        if app.case_insensitive_paths && crate::http::routing::ambiguous_for_windows(&path) {
            return Err(Reply::error(
                400,
                text::BAD_REQUEST,
                text::BAD_PATH,
                &ctx.correlation_id,
            ));
        }
        Ok((app_index, path))
    }

    /// A protected page opened by a browser without a session: the login begins.
    async fn start_login(&self, ctx: &RequestCtx, app: &App, request: &auth::Request) -> Reply {
        let gateway = ctx.gateway.clone();
        let gateway = &*gateway;
        match auth::start_login(gateway, request, app, &ctx.origin_form).await {
            Ok(reply) => reply,
            Err(e) => {
                gateway
                    .metrics
                    .store_errors
                    .with_label_values(&["login"])
                    .inc();
                tracing::error!(correlation_id = %ctx.correlation_id, error = %e, "cannot store login transaction");
                Reply::error(
                    503,
                    text::UNAVAILABLE,
                    text::STORE_DOWN,
                    &ctx.correlation_id,
                )
            }
        }
    }

    /// The answer to a request the decision stops: a page for browsers, JSON for scripts
    /// (which get a 401 they can handle instead of a login page).
    fn refusal(
        &self,
        request: &RequestHeader,
        ctx: &RequestCtx,
        app: &App,
        verdict: Verdict<'_>,
        rule: &str,
    ) -> Reply {
        let gateway = ctx.gateway.clone();
        let gateway = &*gateway;
        let id = &ctx.correlation_id;
        let navigation = is_navigation(request);
        // For scripts: "forbidden" when the person may not; "unavailable" when what decides
        // could not be asked (the directory down: 503), so a client can tell retrying helps.
        let forbidden_json = |status: u16| {
            let error = if status == 503 {
                "unavailable"
            } else {
                "forbidden"
            };
            Reply::json(
                status,
                &serde_json::json!({"error": error, "correlation_id": id}),
            )
        };
        let subject = ctx
            .identity
            .as_ref()
            .map(|identity| identity.record.principal.subject.clone());
        match verdict {
            Verdict::Blocked(block) => {
                let page =
                    blocked_reply(gateway, ctx, app, subject.as_deref().unwrap_or(""), block);
                if navigation {
                    page
                } else {
                    forbidden_json(page.status)
                }
            }
            Verdict::Deny => {
                audit::access_denied(&ctx.audit(gateway), subject.as_deref(), rule);
                if navigation {
                    Reply::html(
                        403,
                        pages::forbidden_page(&app.id, app.contact.as_deref(), id),
                    )
                } else {
                    forbidden_json(403)
                }
            }
            // `Allow` is forwarded before this is asked; a script needing a login gets a 401.
            Verdict::LoginRequired | Verdict::Allow => Reply::json(
                401,
                &serde_json::json!({
                    "error": "authentication_required",
                    "login_url": "/.guichet/login",
                    "correlation_id": id,
                }),
            ),
        }
    }

    /// Removes every header the app must only ever get from the gateway.
    fn scrub(&self, request: &mut RequestHeader, app: &App) {
        let doomed: Vec<http::HeaderName> = request
            .headers
            .keys()
            .filter(|name| app.identity_headers.must_strip(name.as_str()))
            .cloned()
            .collect();
        for name in doomed {
            request.remove_header(&name);
        }
    }
}

/// The page for a signed-in person the directory says may not go on, whatever the rules: a
/// directory that cannot answer (503), an account locked, not yet valid or expired, or a
/// person it does not know when the app does not admit guests (403).
fn blocked_reply(
    gateway: &Gateway,
    ctx: &RequestCtx,
    app: &App,
    subject: &str,
    block: Block<'_>,
) -> Reply {
    let id = &ctx.correlation_id;
    let (status, reason, message) = match block {
        Block::DirectoryDown(reason) => {
            gateway
                .metrics
                .store_errors
                .with_label_values(&["directory"])
                .inc();
            tracing::error!(correlation_id = %id, error = %reason, "directory lookup failed");
            return Reply::error(503, text::UNAVAILABLE, text::DIRECTORY_DOWN, id);
        }
        Block::Account(status, reason, message) => (status, reason, message),
    };
    audit::access_denied(&ctx.audit(gateway), Some(subject), reason);
    Reply::html(
        status,
        pages::account_page(&app.id, message, app.contact.as_deref(), id),
    )
}

/// The gateway's endpoints' view of a request (see [`auth::Request`]): the body, when the
/// route takes one, read here and bounded by `limit`.
async fn endpoint_request(
    session: &mut Session,
    ctx: &RequestCtx,
    app: usize,
    path: &str,
    limit: Option<usize>,
) -> auth::Request {
    let body = match limit {
        None => auth::Body::None,
        Some(limit) => read_body(session, limit).await,
    };
    let header = session.req_header();
    auth::Request {
        method: header.method.clone(),
        path: path.to_owned(),
        query: header.uri.query().map(str::to_owned),
        headers: header.headers.clone(),
        body,
        client_ip: ctx.client_ip,
        forwarded_proto: ctx.forwarded_proto,
        app,
        correlation_id: ctx.correlation_id.clone(),
    }
}

/// A urlencoded form body, refused past `limit` bytes (declared or sent).
async fn read_body(session: &mut Session, limit: usize) -> auth::Body {
    let declared = session
        .req_header()
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return auth::Body::TooLarge;
    }
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return auth::Body::TooLarge;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return auth::Body::Unreadable,
        }
    }
    auth::Body::Form(form_urlencoded::parse(&body).into_owned().collect())
}

/// Writes the gateway's own replies (pages, redirects, JSON) to pingora: the only place a
/// [`Reply`] meets a socket.
trait SendReply {
    async fn send(self, session: &mut Session, correlation_id: &str) -> Result<()>;
}

impl SendReply for Reply {
    async fn send(self, session: &mut Session, correlation_id: &str) -> Result<()> {
        let mut header = ResponseHeader::build(self.status, Some(10))?;
        header.insert_header("content-type", self.content_type)?;
        header.insert_header("content-length", self.body.len().to_string())?;
        header.insert_header("cache-control", "no-store")?;
        header.insert_header("x-content-type-options", "nosniff")?;
        header.insert_header("x-frame-options", "DENY")?;
        header.insert_header("referrer-policy", "no-referrer")?;
        header.insert_header(
            "content-security-policy",
            self.csp
                .as_deref()
                .unwrap_or(crate::http::respond::STRICT_CSP),
        )?;
        header.insert_header("x-request-id", correlation_id)?;
        for (name, value) in self.headers {
            // A reply may relax the default no-store (public keys are cacheable).
            if name == "cache-control" {
                header.insert_header(name, value)?;
            } else {
                header.append_header(name, value)?;
            }
        }
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(header), head_only || self.body.is_empty())
            .await?;
        if !head_only && !self.body.is_empty() {
            session.write_response_body(Some(self.body), true).await?;
        }
        Ok(())
    }
}

/// True for requests a browser makes when navigating, as opposed to scripts and API clients,
/// which get a 401 they can handle instead of a redirect to an HTML login page.
fn is_navigation(request: &RequestHeader) -> bool {
    if !matches!(request.method, http::Method::GET | http::Method::HEAD) {
        return false;
    }
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    if header("x-requested-with") == "xmlhttprequest" {
        return false;
    }
    let mode = header("sec-fetch-mode");
    if !mode.is_empty() && mode != "navigate" {
        return false;
    }
    let accept = header("accept");
    !accept.contains("application/json") || accept.contains("text/html")
}

#[async_trait]
impl ProxyHttp for GuichetProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            gateway: self.live.current(),
            correlation_id: uuid::Uuid::new_v4().to_string(),
            started: Instant::now(),
            app: None,
            client_ip: None,
            forwarded_for: String::new(),
            forwarded_proto: "http",
            forwarded_host: None,
            identity: None,
            view: None,
            origin_form: String::new(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let gateway = ctx.gateway.clone();
        let gateway = &*gateway;
        self.read_forwarding(session, ctx);
        let id = ctx.correlation_id.clone();
        let (app_index, path) = match self.route(session, ctx) {
            Ok(routed) => routed,
            Err(refusal) => {
                refusal.send(session, &id).await?;
                return Ok(true);
            }
        };
        let app = &gateway.apps[app_index];

        if path == "/.guichet" || path.starts_with("/.guichet/") {
            let limit = auth::body_limit(gateway, &session.req_header().method, &path);
            let mut request = endpoint_request(session, ctx, app_index, &path, limit).await;
            let reply = auth::handle(gateway, &mut request).await;
            // The login transaction may have named another app than the Host's.
            ctx.app = Some(request.app);
            reply.send(session, &id).await?;
            return Ok(true);
        }

        let method = session.req_header().method.clone();
        let identity =
            match crate::identity::current(gateway, app, &session.req_header().headers).await {
                Ok(identity) => identity,
                Err(e) => {
                    gateway
                        .metrics
                        .store_errors
                        .with_label_values(&["load"])
                        .inc();
                    tracing::error!(correlation_id = %id, error = %e, "session lookup failed");
                    if app.policy.is_public(method.as_str(), &path) {
                        // A public page needs no session: serve it anonymously.
                        None
                    } else {
                        Reply::error(503, text::UNAVAILABLE, text::STORE_DOWN, &id)
                            .send(session, &id)
                            .await?;
                        return Ok(true);
                    }
                }
            };
        // A session only counts for apps that accept the provider it came from (the
        // decision checks it too; done here first to spare a directory lookup).
        let identity = identity.filter(|identity| decision::accepts(app, identity));
        let person = match &identity {
            Some(identity) => Some(crate::identity::person(gateway, &identity.record).await),
            None => None,
        };
        let decided = decision::decide(
            app_index,
            app,
            method.as_str(),
            &path,
            identity.as_ref(),
            person.as_ref(),
        );
        ctx.identity = identity.filter(|_| decided.as_signed_in);
        ctx.view = decided.view.clone();
        let reply = match decided.verdict {
            Verdict::Allow => return Ok(false),
            Verdict::LoginRequired if is_navigation(session.req_header()) => {
                let request = endpoint_request(session, ctx, app_index, &path, None).await;
                self.start_login(ctx, app, &request).await
            }
            verdict => {
                let rule = decided.rule.describe(app);
                self.refusal(session.req_header(), ctx, app, verdict, &rule)
            }
        };
        reply.send(session, &id).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let gateway = ctx.gateway.clone();
        let app = app_of(&gateway, ctx)?;
        let address = self
            .resolver
            .resolve(&app.upstream.host, app.upstream.port)
            .await
            .map_err(|e| {
                Error::explain(ErrorType::ConnectError, format!("resolving upstream: {e}"))
            })?;
        Ok(Box::new(app.upstream.peer(address)))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let gateway = ctx.gateway.clone();
        let gateway = &*gateway;
        let app = app_of(gateway, ctx)?;

        // Absolute-form targets become origin-form: the app gets exactly the decided path.
        if request.raw_path() != ctx.origin_form.as_bytes() {
            let uri = ctx.origin_form.parse::<http::Uri>().map_err(|e| {
                Error::explain(ErrorType::InvalidHTTPHeader, format!("request target: {e}"))
            })?;
            request.set_uri(uri);
        }

        let ours = gateway.sessions.own_cookie_names();
        if cookies::contains_any(&request.headers, &ours) {
            match cookies::without(&request.headers, &ours) {
                Some(rest) => request.insert_header("cookie", rest)?,
                None => {
                    request.remove_header("cookie");
                }
            }
        }
        request.insert_header("x-forwarded-for", &ctx.forwarded_for)?;
        request.insert_header("x-forwarded-proto", ctx.forwarded_proto)?;
        if let Some(host) = ctx.forwarded_host.clone().filter(|h| !h.is_empty()) {
            request.insert_header("x-forwarded-host", host)?;
        }
        request.insert_header("x-request-id", &ctx.correlation_id)?;
        if !app.preserve_host {
            request.insert_header("host", &app.upstream.authority)?;
        }

        if let Some(view) = &ctx.view {
            for (name, value) in &view.headers {
                request.insert_header(name.clone(), value.clone())?;
            }
        }
        Ok(())
    }

    /// An application may not set Guichet's own cookies (session, login, known device): it
    /// could fixate them for a user. Those `Set-Cookie` lines are dropped, the app's others
    /// kept.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        _ctx: &mut RequestCtx,
    ) -> Result<()> {
        let ours = _ctx.gateway.sessions.own_cookie_names();
        let is_ours = |value: &HeaderValue| {
            let name = value
                .as_bytes()
                .split(|b| *b == b'=')
                .next()
                .unwrap_or_default();
            let name = String::from_utf8_lossy(name);
            let name = name.trim();
            // Compared without case and without a `__Secure-` prefix: such a name is, for the
            // browser, another cookie, but one an app has no business setting either.
            let bare = name.strip_prefix("__Secure-").unwrap_or(name);
            ours.iter().any(|ours| ours.eq_ignore_ascii_case(bare))
        };
        let cookies: Vec<HeaderValue> = response
            .headers
            .get_all("set-cookie")
            .iter()
            .cloned()
            .collect();
        if cookies.iter().any(is_ours) {
            response.remove_header("set-cookie");
            for cookie in cookies.into_iter().filter(|c| !is_ours(c)) {
                response.append_header("set-cookie", cookie)?;
            }
        }
        Ok(())
    }

    /// pingora's own line about a failed request carries no correlation id:
    /// [`Self::fail_to_proxy`] logs one that does, for the gateway's and applications'
    /// failures, so pingora's is left out for those.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Self::CTX, error: &Error) -> bool {
        matches!(
            error.esource(),
            ErrorSource::Upstream | ErrorSource::Internal
        )
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy
    where
        RequestCtx: Send + Sync,
    {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ => match e.esource() {
                // The application did not answer in time (a gateway timeout), as opposed to
                // answering badly or not at all (a bad gateway).
                ErrorSource::Upstream
                    if matches!(
                        e.etype(),
                        ErrorType::ConnectTimedout
                            | ErrorType::ReadTimedout
                            | ErrorType::WriteTimedout
                            | ErrorType::TLSHandshakeTimedout
                    ) =>
                {
                    504
                }
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if code > 0 {
            let id = ctx.correlation_id.clone();
            // The correlation id on the user's page is in the log too, even without the
            // access log (pingora's own line about the failure carries none).
            // (Warning for the gateway's and applications' failures; a client's malformed
            // request is its own business.)
            let app = ctx
                .app
                .map(|i| ctx.gateway.apps[i].id.as_str())
                .unwrap_or("-");
            if code >= 500 {
                tracing::warn!(correlation_id = %id, app, status = code, error = %e, "request failed before the application answered");
            } else {
                tracing::debug!(correlation_id = %id, app, status = code, error = %e, "malformed request");
            }
            // The page says "keep-alive" only if the connection really stays open: it is
            // closed after it (the request's body may be half read), so say so, as pingora's
            // own error path does, instead of leaving the client a reset on its next request.
            session.set_keepalive(None);
            let (title, message) = match code {
                504 => (text::UNAVAILABLE, text::UPSTREAM_SLOW),
                502 | 503 => (text::UNAVAILABLE, text::UPSTREAM_DOWN),
                400..=499 => (text::BAD_REQUEST, text::BAD_PATH),
                _ => (text::UNAVAILABLE, text::UPSTREAM_DOWN),
            };
            if let Err(write_error) = Reply::error(code, title, message, &id)
                .send(session, &id)
                .await
            {
                tracing::debug!(error = %write_error, "could not send error page");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map(|response| response.status.as_u16())
            .unwrap_or(0);
        let gateway = ctx.gateway.clone();
        let app = ctx.app.map(|i| &gateway.apps[i]);
        let app_id = app.map(|app| app.id.as_str()).unwrap_or("-");
        let elapsed = ctx.started.elapsed();
        let metrics = &gateway.metrics;
        match app {
            Some(app) => app.requests.count(status, || {
                metrics
                    .requests
                    .with_label_values(&[app_id, status_label(status).as_ref()])
            }),
            None => metrics
                .requests
                .with_label_values(&[app_id, status_label(status).as_ref()])
                .inc(),
        }
        match app {
            Some(app) => app.latency.observe(elapsed.as_secs_f64()),
            None => metrics
                .latency
                .with_label_values(&["-"])
                .observe(elapsed.as_secs_f64()),
        }
        if gateway.access_log {
            tracing::info!(
                target: "access",
                correlation_id = %ctx.correlation_id,
                app = app_id,
                method = %session.req_header().method,
                path = session.req_header().uri.path(),
                status,
                user = ctx.identity.as_ref().map(|i| i.record.principal.subject.as_str()),
                duration_us = elapsed.as_micros() as u64,
                error = error.map(|e| e.to_string()),
            );
        }
    }
}

/// The status as a metric label, without formatting the common ones on every request.
fn status_label(status: u16) -> std::borrow::Cow<'static, str> {
    match status {
        200 => "200".into(),
        204 => "204".into(),
        206 => "206".into(),
        301 => "301".into(),
        302 => "302".into(),
        303 => "303".into(),
        304 => "304".into(),
        400 => "400".into(),
        401 => "401".into(),
        403 => "403".into(),
        404 => "404".into(),
        429 => "429".into(),
        500 => "500".into(),
        502 => "502".into(),
        503 => "503".into(),
        504 => "504".into(),
        other => other.to_string().into(),
    }
}

/// The app `request_filter` chose: every request that reaches the upstream phases has one.
fn app_of<'a>(gateway: &'a Gateway, ctx: &RequestCtx) -> Result<&'a App> {
    ctx.app
        .and_then(|i| gateway.apps.get(i))
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "no application was chosen"))
}
