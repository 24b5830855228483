//! Follows the directory invalidation channel in the background, so an invalidation sent to
//! any replica (admin endpoint or `guichet directory invalidate`) reaches this one's cache.

use std::sync::Arc;

use async_trait::async_trait;
use guichet_directory_client::CachedDirectory;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

pub struct DirectoryInvalidations {
    pub cache: Arc<CachedDirectory>,
}

#[async_trait]
impl BackgroundService for DirectoryInvalidations {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tokio::select! {
            _ = self.cache.run_invalidation_listener() => {}
            _ = shutdown.changed() => {}
        }
    }
}
