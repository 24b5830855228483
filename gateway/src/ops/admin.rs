//! The admin listener, on its own port: `/healthz`, `/readyz`, `/metrics`, and
//! `POST /directory/invalidate`.

use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::state::LiveGateway;

pub struct AdminApp {
    /// The gateway serving now (a reload replaces it).
    pub live: LiveGateway,
}

#[allow(clippy::expect_used, reason = "static response parts are valid")]
fn text(status: u16, content_type: &str, body: String) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body.into_bytes())
        .expect("static response parts are valid")
}

/// Forgets one person under both pivot comparisons (see [`PivotQuery::both_cases`]).
async fn invalidate_person(
    cache: &guichet_directory_client::CachedDirectory,
    attribute: &str,
    value: &str,
) -> Result<&'static str, guichet_directory_client::SharedCacheError> {
    for pivot in guichet_directory_client::PivotQuery::both_cases(attribute, value) {
        cache.invalidate(&pivot).await?;
    }
    Ok("one person")
}

/// The largest invalidation request body read.
const MAX_INVALIDATE_BODY: usize = 4096;

impl AdminApp {
    /// `POST /directory/invalidate` with a form body `attribute=email&value=...` (one person,
    /// as their logins name them) or `all=true`: the next request of that person reads the
    /// directory again, on every replica.
    async fn invalidate(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let gateway = self.live.current();
        let Some(cache) = &gateway.directory else {
            return text(404, "text/plain", "no directory configured\n".into());
        };
        if session.req_header().method != http::Method::POST {
            return text(405, "text/plain", "use POST\n".into());
        }
        if !self.may_invalidate(session) {
            tracing::warn!("directory invalidation refused: missing or wrong admin token");
            return text(403, "text/plain", "forbidden\n".into());
        }
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_INVALIDATE_BODY => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => return text(413, "text/plain", "body too large\n".into()),
                Ok(None) => break,
                Err(_) => return text(400, "text/plain", "unreadable body\n".into()),
            }
        }
        let field = |name: &str| {
            form_urlencoded::parse(&body)
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        };
        let peer = session
            .client_addr()
            .and_then(|addr| addr.as_inet())
            .map(|addr| addr.ip());
        let result = match (field("all").as_deref(), field("attribute"), field("value")) {
            (Some("true"), None, None) => {
                crate::telemetry::audit::directory_invalidated(None, peer);
                cache.invalidate_all().await.map(|()| "everyone")
            }
            (None, Some(attribute), Some(value))
                if !attribute.is_empty() && !value.trim().is_empty() =>
            {
                crate::telemetry::audit::directory_invalidated(
                    Some((&attribute, value.trim())),
                    peer,
                );
                invalidate_person(cache, &attribute, &value).await
            }
            _ => {
                return text(
                    400,
                    "text/plain",
                    "send attribute=NAME&value=VALUE, or all=true\n".into(),
                )
            }
        };
        match result {
            Ok(who) => text(
                200,
                "application/json",
                format!("{{\"invalidated\":\"{who}\"}}\n"),
            ),
            Err(error) => {
                tracing::error!(%error, "directory invalidation failed");
                text(
                    503,
                    "text/plain",
                    "invalidation failed: the shared cache is unreachable\n".into(),
                )
            }
        }
    }

    /// With an admin token configured, the request must carry it; without one, only loopback
    /// peers (an operator on the host or in the pod) may invalidate.
    fn may_invalidate(&self, session: &ServerSession) -> bool {
        match &self.live.current().directory_admin_token {
            Some(token) => {
                let presented = session
                    .req_header()
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                bool::from(subtle::ConstantTimeEq::ct_eq(
                    presented.as_bytes(),
                    token.expose().as_bytes(),
                ))
            }
            None => session
                .client_addr()
                .and_then(|addr| addr.as_inet())
                .is_some_and(|addr| addr.ip().is_loopback()),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let gateway = self.live.current();
        match session.req_header().uri.path() {
            // Alive: the process answers. Nothing else is checked, so a Redis outage does not
            // get every replica restarted.
            "/healthz" => text(200, "text/plain", "ok\n".into()),
            "/readyz" if self.live.is_draining() => {
                text(503, "text/plain", "not ready: shutting down\n".into())
            }
            "/readyz" => {
                let ping = tokio::time::timeout(Duration::from_secs(2), gateway.store.ping()).await;
                match ping {
                    Ok(Ok(())) => {
                        gateway.metrics.store_up.set(1);
                        text(200, "text/plain", "ready\n".into())
                    }
                    Ok(Err(e)) => {
                        gateway.metrics.store_up.set(0);
                        tracing::warn!(error = %e, "not ready: session store unreachable");
                        text(
                            503,
                            "text/plain",
                            "not ready: session store unreachable\n".into(),
                        )
                    }
                    Err(_) => {
                        gateway.metrics.store_up.set(0);
                        tracing::warn!("not ready: session store did not answer within 2s");
                        text(
                            503,
                            "text/plain",
                            "not ready: session store did not answer\n".into(),
                        )
                    }
                }
            }
            "/metrics" => {
                gateway.metrics.sync_session_cache(
                    &gateway.store.cache_counters(),
                    gateway.store.is_following_events(),
                );
                if let Some(cache) = &gateway.directory {
                    gateway.metrics.sync_directory(cache.stats());
                }
                for (id, entry) in &gateway.providers {
                    gateway
                        .metrics
                        .sync_provider(id, &entry.provider.counters());
                }
                text(200, "text/plain; version=0.0.4", gateway.metrics.render())
            }
            "/directory/invalidate" => self.invalidate(session).await,
            _ => text(404, "text/plain", "not found\n".into()),
        }
    }
}
