//! Server-side sessions and the other short-lived state the gateway keeps (login transactions,
//! rate-limit counters), behind one [`Store`] trait with an in-memory and a Redis backend.
//!
//! The browser only ever holds an opaque random id; everything else stays server-side.

mod crypto;
mod local_copy;
pub mod login;
pub mod login_limits;
mod memory;
mod proofs;
pub(crate) mod record;
mod redis_store;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use crypto::Sealer;
pub use memory::MemoryStore;
pub use proofs::StoreProofs;
pub use record::{AppView, Pivot, SessionId, SessionRecord, ViewCache};
pub use redis_store::RedisStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    #[error("corrupt record in session store: {0}")]
    Corrupt(String),
}

/// Where sessions and login state live. Implementations must be safe to share between
/// replicas when they say so (Redis) and must never expose a session id in a key.
#[async_trait]
pub trait Store: Send + Sync {
    /// Shared, because the in-memory store hands out the record it holds on every request.
    async fn load_session(&self, id: &SessionId) -> Result<Option<Arc<SessionRecord>>, StoreError>;
    /// Writes the record; the store forgets it after `ttl`.
    async fn save_session(
        &self,
        id: &SessionId,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Writes an activity refresh of an existing record (a later `last_seen`). It may be
    /// written later, batched with others, and never brings back a record deleted meanwhile.
    async fn touch_session(
        &self,
        id: &SessionId,
        record: Arc<SessionRecord>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.save_session(id, &record, ttl).await
    }
    async fn delete_session(&self, id: &SessionId) -> Result<(), StoreError>;

    /// Short-lived opaque values (login transactions), read once.
    async fn put_transient(&self, key: &str, value: &[u8], ttl: Duration)
        -> Result<(), StoreError>;
    /// Reads and deletes atomically: a value can be taken only once, even across replicas.
    async fn take_transient(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Reads without deleting.
    async fn peek_transient(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Adds one to a fixed-window counter (the window starts at the first hit); returns the count.
    async fn increment(&self, counter: &str, window: Duration) -> Result<u64, StoreError>;
    /// Takes back one hit (never below zero, never creating the counter).
    async fn decrement(&self, counter: &str) -> Result<(), StoreError>;
    async fn reset(&self, counter: &str) -> Result<(), StoreError>;

    /// Files session `id` under `tag` (an upstream provider's session id or subject), so that a
    /// single-logout request naming the tag can end it. The tag is kept `ttl`.
    async fn tag_session(&self, tag: &str, id: &SessionId, ttl: Duration)
        -> Result<(), StoreError>;
    /// Ends every session filed under `tag`, on every replica; returns how many were filed.
    async fn end_tagged_sessions(&self, tag: &str) -> Result<usize, StoreError>;

    /// The store's own background work (following other replicas' session events, writing
    /// batched refreshes), run until the process stops. Nothing by default.
    async fn run_background(&self) {}

    /// Counters of the store's local copy of sessions, for `/metrics`: `(event, total)`.
    fn cache_counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Whether the store follows other replicas' session events right now; `None` when it
    /// keeps no copy that would need them.
    fn is_following_events(&self) -> Option<bool> {
        None
    }

    /// Whether the store answers right now (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Where the store is, for log lines: never includes credentials.
    fn describe(&self) -> String;
}

pub type SharedStore = Arc<dyn Store>;
