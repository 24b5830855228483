//! SIGTERM: `/readyz` answers 503 at once, so the load balancer stops sending new requests
//! while pingora stops accepting and lets in-flight requests finish (within the configured
//! `shutdown` deadlines).

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::signal::unix::{signal, SignalKind};

use crate::state::LiveGateway;

pub struct DrainOnTerm {
    pub live: LiveGateway,
}

#[async_trait]
impl BackgroundService for DrainOnTerm {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut terms = match signal(SignalKind::terminate()) {
            Ok(terms) => terms,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM: /readyz will not turn 503 before shutdown");
                return;
            }
        };
        tokio::select! {
            _ = terms.recv() => {
                self.live.start_draining();
                tracing::info!("SIGTERM: draining (readiness 503, in-flight requests finish)");
            }
            _ = shutdown.changed() => {
                self.live.start_draining();
            }
        }
    }
}
