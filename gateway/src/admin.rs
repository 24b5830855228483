//! The admin listener, on its own port: `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::state::Gateway;

pub struct AdminApp {
    pub gateway: Arc<Gateway>,
}

fn text(status: u16, content_type: &str, body: String) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body.into_bytes())
        .expect("static response parts are valid")
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        match session.req_header().uri.path() {
            // Alive: the process answers. Nothing else is checked, so a Redis outage does not
            // get every replica restarted.
            "/healthz" => text(200, "text/plain", "ok\n".into()),
            "/readyz" => {
                let ping =
                    tokio::time::timeout(Duration::from_secs(2), self.gateway.store.ping()).await;
                match ping {
                    Ok(Ok(())) => {
                        self.gateway.metrics.store_up.set(1);
                        text(200, "text/plain", "ready\n".into())
                    }
                    Ok(Err(e)) => {
                        self.gateway.metrics.store_up.set(0);
                        tracing::warn!(error = %e, "not ready: session store unreachable");
                        text(
                            503,
                            "text/plain",
                            "not ready: session store unreachable\n".into(),
                        )
                    }
                    Err(_) => {
                        self.gateway.metrics.store_up.set(0);
                        tracing::warn!("not ready: session store did not answer within 2s");
                        text(
                            503,
                            "text/plain",
                            "not ready: session store did not answer\n".into(),
                        )
                    }
                }
            }
            "/metrics" => text(
                200,
                "text/plain; version=0.0.4",
                self.gateway.metrics.render(),
            ),
            _ => text(404, "text/plain", "not found\n".into()),
        }
    }
}
