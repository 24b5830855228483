//! Watches the session store in the background: says clearly in the log when it is unreachable
//! (at start and whenever that changes) and keeps the `guichet_store_up` gauge current, so an
//! operator learns about a Redis outage from the log, not from users. It also runs the store's
//! own background work (with Redis: following other replicas' session events and writing
//! batched activity refreshes). The store outlives configuration reloads, so this does too.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::state::Gateway;

pub struct StoreWatch {
    pub gateway: Arc<Gateway>,
    pub interval: Duration,
}

#[async_trait]
impl BackgroundService for StoreWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let store_work = async {
            self.gateway.store.run_background().await;
            std::future::pending::<()>().await;
        };
        tokio::select! {
            () = store_work => {}
            () = self.watch() => {}
            _ = shutdown.changed() => {}
        }
    }
}

impl StoreWatch {
    async fn watch(&self) {
        let mut was_up: Option<bool> = None;
        let store = self.gateway.store.describe();
        loop {
            let result =
                tokio::time::timeout(Duration::from_secs(2), self.gateway.store.ping()).await;
            let up = matches!(result, Ok(Ok(())));
            self.gateway.metrics.store_up.set(i64::from(up));
            if was_up != Some(up) {
                match (&result, was_up) {
                    (Ok(Ok(())), None) => tracing::info!(%store, "session store reachable"),
                    (Ok(Ok(())), Some(_)) => {
                        tracing::info!(%store, "session store reachable again")
                    }
                    (Ok(Err(e)), _) => tracing::error!(
                        %store,
                        error = %e,
                        "session store unreachable: /readyz answers 503 and sign-ins fail until it is back"
                    ),
                    (Err(_), _) => tracing::error!(
                        %store,
                        "session store did not answer within 2s: /readyz answers 503 and sign-ins fail until it is back"
                    ),
                }
                was_up = Some(up);
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}
