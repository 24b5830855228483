//! Follows the directory invalidation channel in the background, so an invalidation sent to
//! any replica (admin endpoint or `guichet directory invalidate`) reaches this one's cache —
//! the cache of the gateway serving now: a configuration reload builds a new one, and the
//! listener moves to it.

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::state::LiveGateway;

pub struct DirectoryInvalidations {
    pub live: LiveGateway,
}

#[async_trait]
impl BackgroundService for DirectoryInvalidations {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut changes = self.live.changes();
        loop {
            let cache = self.live.current().directory.clone();
            let listening = async {
                match &cache {
                    Some(cache) => cache.run_invalidation_listener().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = listening => return,
                _ = shutdown.changed() => return,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
