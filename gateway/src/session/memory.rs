//! In-process store (moka): the embedded default. One replica only; everything is lost on
//! restart. Nothing is encrypted because nothing leaves the process.
//!
//! The maps are bounded in size, so that a flood of login attempts cannot exhaust memory: moka
//! then evicts entries before they expire, and its TinyLFU admission may refuse a new entry
//! outright. That is fine for sessions in a flood, and for rate-limit counters, but not for the
//! replay cache of one-time proofs (SAML Response and Assertion IDs, LogoutRequest IDs, kept
//! as counters by `proofs.rs` under [`PROOF_PREFIX`]): a proof lost or never admitted would let
//! the same message be accepted again. Those counters live in a map bounded by time only (each
//! expires with the message it records, an hour at most), never by size; only messages whose
//! signature was verified are recorded there, so the flood that fills the other maps cannot
//! reach it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::future::Cache;
use moka::Expiry;

use super::{SessionId, SessionRecord, Store, StoreError};

/// Each entry carries its own time to live.
#[derive(Clone)]
struct Timed<T>(T, Duration);

struct PerEntryTtl;

impl<K, T> Expiry<K, Timed<T>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &K,
        value: &Timed<T>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.1)
    }

    fn expire_after_update(
        &self,
        _key: &K,
        value: &Timed<T>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.1)
    }
}

fn cache<T: Clone + Send + Sync + 'static>(capacity: u64) -> Cache<String, Timed<T>> {
    Cache::builder()
        .max_capacity(capacity)
        .expire_after(PerEntryTtl)
        .build()
}

/// A map whose entries only go when they expire (no size bound, so no eviction, no admission
/// policy).
fn expiring_cache<T: Clone + Send + Sync + 'static>() -> Cache<String, Timed<T>> {
    Cache::builder().expire_after(PerEntryTtl).build()
}

/// The counters of the replay cache (see `proofs.rs`), which must not be lost before they expire.
const PROOF_PREFIX: &str = "proof:";

pub struct MemoryStore {
    sessions: Cache<String, Timed<Arc<SessionRecord>>>,
    transient: Cache<String, Timed<Arc<Vec<u8>>>>,
    counters: Cache<String, Timed<Arc<AtomicU64>>>,
    /// Counters under [`PROOF_PREFIX`]: bounded by their time to live, not by size.
    proofs: Cache<String, Timed<Arc<AtomicU64>>>,
    /// Single-logout index: tag → storage keys of the sessions filed under it.
    tags: Cache<String, Timed<Arc<Mutex<Vec<String>>>>>,
}

/// Sessions one upstream session or subject may fan out to (a user with many browsers); past
/// this, the oldest keep working until they expire rather than the index growing unbounded.
const MAX_SESSIONS_PER_TAG: usize = 1000;

impl MemoryStore {
    /// `capacity` bounds each of the maps but the proofs', so a flood of login attempts cannot
    /// exhaust memory (the least used entries go first).
    pub fn new(capacity: u64) -> Self {
        Self {
            sessions: cache(capacity),
            transient: cache(capacity),
            counters: cache(capacity),
            proofs: expiring_cache(),
            tags: cache(capacity),
        }
    }

    /// The map a counter lives in.
    fn counters_for(&self, counter: &str) -> &Cache<String, Timed<Arc<AtomicU64>>> {
        if counter.starts_with(PROOF_PREFIX) {
            &self.proofs
        } else {
            &self.counters
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(200_000)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn load_session(&self, id: &SessionId) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        Ok(self
            .sessions
            .get(&id.storage_key())
            .await
            .map(|entry| entry.0))
    }

    async fn save_session(
        &self,
        id: &SessionId,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.sessions
            .insert(id.storage_key(), Timed(Arc::new(record.clone()), ttl))
            .await;
        Ok(())
    }

    async fn delete_session(&self, id: &SessionId) -> Result<(), StoreError> {
        self.sessions.remove(&id.storage_key()).await;
        Ok(())
    }

    async fn put_transient(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.transient
            .insert(key.to_owned(), Timed(Arc::new(value.to_vec()), ttl))
            .await;
        Ok(())
    }

    async fn take_transient(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .transient
            .remove(key)
            .await
            .map(|entry| (*entry.0).clone()))
    }

    async fn peek_transient(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .transient
            .get(key)
            .await
            .map(|entry| (*entry.0).clone()))
    }

    async fn increment(&self, counter: &str, window: Duration) -> Result<u64, StoreError> {
        let entry = self
            .counters_for(counter)
            .entry(counter.to_owned())
            .or_insert_with(async { Timed(Arc::new(AtomicU64::new(0)), window) })
            .await
            .into_value();
        Ok(entry.0.fetch_add(1, Ordering::Relaxed) + 1)
    }

    async fn decrement(&self, counter: &str) -> Result<(), StoreError> {
        if let Some(entry) = self.counters_for(counter).get(counter).await {
            entry
                .0
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .ok();
        }
        Ok(())
    }

    async fn reset(&self, counter: &str) -> Result<(), StoreError> {
        self.counters_for(counter).remove(counter).await;
        Ok(())
    }

    async fn tag_session(
        &self,
        tag: &str,
        id: &SessionId,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let entry = self
            .tags
            .entry(tag.to_owned())
            .or_insert_with(async { Timed(Arc::new(Mutex::new(Vec::new())), ttl) })
            .await
            .into_value();
        let mut members = entry
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = id.storage_key();
        if !members.contains(&key) && members.len() < MAX_SESSIONS_PER_TAG {
            members.push(key);
        }
        Ok(())
    }

    async fn end_tagged_sessions(&self, tag: &str) -> Result<usize, StoreError> {
        let Some(entry) = self.tags.remove(tag).await else {
            return Ok(0);
        };
        let members = std::mem::take(
            &mut *entry
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for key in &members {
            self.sessions.remove(key).await;
        }
        Ok(members.len())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood of rate-limit counters (one per attempted user name or address) must not push
    /// a one-time proof out of the replay cache, nor keep a new one out.
    #[tokio::test]
    async fn proofs_survive_a_flood_of_counters() {
        let store = MemoryStore::default();
        let window = Duration::from_secs(600);
        let before = "proof:idp:before";
        assert_eq!(store.increment(before, window).await.unwrap(), 1);
        for i in 0..300_000 {
            store
                .increment(&format!("login:user:{i}"), window)
                .await
                .unwrap();
        }
        let after = "proof:idp:after";
        assert_eq!(store.increment(after, window).await.unwrap(), 1);
        for i in 300_000..310_000 {
            store
                .increment(&format!("login:user:{i}"), window)
                .await
                .unwrap();
        }
        store.counters.run_pending_tasks().await;
        store.proofs.run_pending_tasks().await;
        // The flood itself was bounded.
        assert!(store.counters.entry_count() <= 200_000);
        assert!(
            store.increment(before, window).await.unwrap() > 1,
            "fail open"
        );
        assert!(
            store.increment(after, window).await.unwrap() > 1,
            "fail open"
        );
        // A proof still expires.
        let short = "proof:idp:short";
        assert_eq!(
            store
                .increment(short, Duration::from_millis(50))
                .await
                .unwrap(),
            1
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            store
                .increment(short, Duration::from_millis(50))
                .await
                .unwrap(),
            1
        );
    }
}
