//! Caching around any backend, so the directory is never on the hot path:
//!
//! - **L1**, in process (moka): a fresh entry answers at once. Concurrent misses for one person
//!   are coalesced into one load (moka's `try_get_with`).
//! - **L2**, Redis shared by every replica: keys are keyed hashes of the pivot and values are
//!   sealed with AES-256-GCM, so a dump of Redis yields no personal data.
//! - **Negative caching**: "nobody for this pivot" is remembered for `negative_ttl`.
//! - **Stale answers**: when the backend fails, the last good answer (L1 or L2) is served while
//!   it is younger than `max_stale`; older, the lookup fails (the gateway answers 503).
//! - **Invalidation** of one person or everyone: removed from L1 and L2 and announced on a
//!   Redis channel that every replica's listener follows.

mod shared;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use moka::future::Cache;
use moka::Expiry;
use rand::RngCore;
use sha2::{Digest, Sha256};

use self::shared::L2;
use crate::{Directory, DirectoryError, DirectoryUser, PivotQuery};

pub use self::shared::{RedisCacheSettings, SharedCacheError, SharedRedis};

/// While the backend fails, how long a stale answer is reused before the backend is tried
/// again (bounded by what is left of `max_stale`).
const STALE_RETRY: Duration = Duration::from_secs(2);
/// How far ahead of this replica's clock another replica's may be before its cache entries are
/// ignored.
const CLOCK_SKEW_TOLERANCE_MS: u64 = 2_000;
/// While the backend fails and nothing stale stands in, how long the failure is the answer.
const FAILURE_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct CacheSettings {
    pub l1_ttl: Duration,
    pub l1_capacity: u64,
    pub negative_ttl: Duration,
    pub l2_ttl: Duration,
    pub max_stale: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            l1_ttl: Duration::from_secs(30),
            l1_capacity: 50_000,
            negative_ttl: Duration::from_secs(30),
            l2_ttl: Duration::from_secs(300),
            max_stale: Duration::from_secs(3600),
        }
    }
}

/// A cache key: a keyed hash of the pivot, so neither Redis keys nor invalidation messages
/// carry the pivot itself.
pub(crate) type Key = [u8; 32];

/// An answer of the backend (a person, or nobody), when it was obtained, and whether it is
/// served stale because the backend failed since.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub user: Option<Arc<DirectoryUser>>,
    pub fetched_at_ms: u64,
    pub stale: bool,
    /// Loaded while an invalidation happened: handed to the lookups that were waiting for it,
    /// but not kept (it may predate the change the invalidation announced).
    pub volatile: bool,
    /// The directory could not answer and nothing stale could stand in (or it answered
    /// "ambiguous"): remembered briefly so that, during an outage, requests get their 503 at
    /// once instead of each waiting for the directory's timeout.
    pub failure: Option<DirectoryError>,
}

impl Entry {
    fn age(&self, now_ms: u64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.fetched_at_ms))
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How long an entry stays in L1: its TTL when fresh, a short retry delay when stale (never
/// past the staleness bound).
struct EntryExpiry {
    positive: Duration,
    negative: Duration,
    max_stale: Duration,
    /// With a shared cache, how long an answer counts as fresh at all: an answer read from
    /// Redis near the end of that stays in L1 only for what is left of it.
    shared_fresh: Option<(Duration, Duration)>,
}

impl Expiry<Key, Entry> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &Key,
        entry: &Entry,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(if entry.volatile {
            Duration::ZERO
        } else if let Some(failure) = &entry.failure {
            match failure {
                DirectoryError::Ambiguous(_) => self.negative,
                DirectoryError::Unavailable(_) => FAILURE_BACKOFF,
            }
        } else if entry.stale {
            let left = self.max_stale.saturating_sub(entry.age(now_ms()));
            STALE_RETRY.min(left)
        } else {
            let (l1, shared) = match (entry.user.is_some(), self.shared_fresh) {
                (true, Some((positive, _))) => (self.positive, Some(positive)),
                (false, Some((_, negative))) => (self.negative, Some(negative)),
                (true, None) => (self.positive, None),
                (false, None) => (self.negative, None),
            };
            match shared {
                Some(fresh) => l1.min(fresh.saturating_sub(entry.age(now_ms()))),
                None => l1,
            }
        })
    }
}

/// Counters of where answers came from (exported as metrics by the gateway).
#[derive(Default, Debug)]
pub struct CacheStats {
    /// Loads: lookups L1 could not answer (after coalescing).
    pub loads: AtomicU64,
    pub l2_hits: AtomicU64,
    pub backend_calls: AtomicU64,
    pub stale_served: AtomicU64,
    pub failures: AtomicU64,
}

pub struct CachedDirectory {
    backend: Arc<dyn Directory>,
    settings: CacheSettings,
    /// Answers usable now.
    fresh: Cache<Key, Entry>,
    /// The last good answer per person, kept up to `max_stale` for outages.
    last_good: Cache<Key, Entry>,
    l2: Option<L2>,
    namer: Hmac<Sha256>,
    /// Namers of the previous encryption keys (key rotation): invalidations name people
    /// under them too, for replicas still running with one of those keys.
    previous_namers: Vec<Hmac<Sha256>>,
    stats: CacheStats,
    listening: AtomicBool,
    /// Bumped by every invalidation, so a load that spans one does not cache what it read.
    generation: AtomicU64,
}

/// The key that names cache entries, derived from the Redis encryption key (so replicas agree)
/// or random without Redis.
fn namer(encryption_key: Option<&[u8; 32]>) -> Hmac<Sha256> {
    let mut secret = [0u8; 32];
    match encryption_key {
        Some(encryption_key) => {
            secret.copy_from_slice(
                &Sha256::new()
                    .chain_update(b"guichet directory cache names v1")
                    .chain_update(encryption_key)
                    .finalize(),
            );
        }
        None => rand::rngs::OsRng.fill_bytes(&mut secret),
    }
    #[allow(clippy::expect_used, reason = "HMAC takes keys of any length")]
    Hmac::<Sha256>::new_from_slice(&secret).expect("HMAC takes any key length")
}

fn previous_namers(redis: Option<&SharedRedis>) -> Vec<Hmac<Sha256>> {
    redis
        .map(|redis| {
            redis
                .previous_encryption_keys
                .iter()
                .map(|key| namer(Some(key)))
                .collect()
        })
        .unwrap_or_default()
}

/// A person's keys: under the current encryption key, then under each previous one.
fn keys_of(namer: &Hmac<Sha256>, previous_namers: &[Hmac<Sha256>], pivot: &PivotQuery) -> Vec<Key> {
    std::iter::once(namer)
        .chain(previous_namers)
        .map(|namer| key_of(namer, pivot))
        .collect()
}

fn key_of(namer: &Hmac<Sha256>, pivot: &PivotQuery) -> Key {
    let mut mac = namer.clone();
    mac.update(pivot.attribute.as_bytes());
    mac.update(if pivot.case_sensitive {
        b"\0s\0"
    } else {
        b"\0i\0"
    });
    mac.update(pivot.value.as_bytes());
    mac.finalize().into_bytes().into()
}

impl CachedDirectory {
    /// Does not connect to Redis: the first lookup does, and later ones reconnect as needed.
    pub fn new(
        backend: Arc<dyn Directory>,
        settings: CacheSettings,
        redis: Option<RedisCacheSettings>,
    ) -> Result<CachedDirectory, SharedCacheError> {
        let shared = redis
            .as_ref()
            .map(RedisCacheSettings::connect)
            .transpose()?;
        Ok(Self::with_shared(backend, settings, shared))
    }

    /// With the shared cache on any [`SharedRedis`] (a URL or Sentinel, TLS, ACL).
    pub fn with_shared(
        backend: Arc<dyn Directory>,
        settings: CacheSettings,
        redis: Option<SharedRedis>,
    ) -> CachedDirectory {
        let fresh = Cache::builder()
            .max_capacity(settings.l1_capacity)
            .expire_after(EntryExpiry {
                positive: settings.l1_ttl,
                negative: settings.negative_ttl,
                max_stale: settings.max_stale,
                shared_fresh: redis
                    .is_some()
                    .then_some((settings.l2_ttl, settings.negative_ttl)),
            })
            .build();
        let last_good = Cache::builder()
            .max_capacity(settings.l1_capacity)
            .time_to_live(settings.max_stale.max(Duration::from_millis(1)))
            .build();
        let l2 = redis.as_ref().map(L2::new);
        CachedDirectory {
            backend,
            namer: namer(redis.as_ref().map(|redis| &redis.encryption_key)),
            previous_namers: previous_namers(redis.as_ref()),
            settings,
            fresh,
            last_good,
            l2,
            stats: CacheStats::default(),
            listening: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        }
    }

    pub fn describe(&self) -> String {
        match &self.l2 {
            Some(l2) => format!(
                "{} (cached, shared cache {})",
                self.backend.describe(),
                l2.describe()
            ),
            None => format!("{} (cached in process)", self.backend.describe()),
        }
    }

    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// The person the pivot names (`None`: unknown to the directory).
    pub async fn find(
        &self,
        pivot: &PivotQuery,
    ) -> Result<Option<Arc<DirectoryUser>>, DirectoryError> {
        let key = key_of(&self.namer, pivot);
        // The hit path without the coalescing machinery (cheaper when it answers).
        let entry = match self.fresh.get(&key).await {
            Some(entry) => entry,
            None => {
                self.fresh
                    .get_with(key, async {
                        self.load(key, pivot).await.unwrap_or_else(|error| Entry {
                            user: None,
                            fetched_at_ms: now_ms(),
                            stale: false,
                            volatile: false,
                            failure: Some(error),
                        })
                    })
                    .await
            }
        };
        match entry.failure {
            Some(error) => Err(error),
            None => Ok(entry.user),
        }
    }

    async fn load(&self, key: Key, pivot: &PivotQuery) -> Result<Entry, DirectoryError> {
        self.stats.loads.fetch_add(1, Ordering::Relaxed);
        let generation = self.generation.load(Ordering::Acquire);
        let invalidated_since = || self.generation.load(Ordering::Acquire) != generation;
        let now = now_ms();
        let mut stale = self.last_good.get(&key).await;
        // The shared cache's invalidation generation when it was read: what is loaded now is
        // written back only if no invalidation happened since, on any replica.
        let mut l2_generation = None;
        if let Some(l2) = &self.l2 {
            let read = l2.get(&key).await.map(|(entry, generation)| {
                l2_generation = Some(generation);
                entry
            });
            match read {
                Ok(Some(entry)) if entry.fetched_at_ms > now + CLOCK_SKEW_TOLERANCE_MS => {
                    // Written by a replica whose clock runs ahead: its age cannot be trusted
                    // (it would look fresh for longer than configured), so it is not used.
                    tracing::warn!(
                        ahead_ms = entry.fetched_at_ms - now,
                        "directory shared cache entry from the future ignored: check the replicas' clocks"
                    );
                }
                Ok(Some(entry)) => {
                    if entry.age(now) < self.freshness_in_l2(&entry) && !invalidated_since() {
                        self.stats.l2_hits.fetch_add(1, Ordering::Relaxed);
                        self.last_good.insert(key, entry.clone()).await;
                        return Ok(entry);
                    }
                    if stale
                        .as_ref()
                        .is_none_or(|s| s.fetched_at_ms < entry.fetched_at_ms)
                    {
                        stale = Some(entry);
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "directory shared cache unavailable: asking the directory")
                }
            }
        }
        self.stats.backend_calls.fetch_add(1, Ordering::Relaxed);
        match self.backend.find(pivot).await {
            Ok(user) => {
                let mut entry = Entry {
                    user: user.map(Arc::new),
                    fetched_at_ms: now,
                    stale: false,
                    volatile: false,
                    failure: None,
                };
                if invalidated_since() {
                    entry.volatile = true;
                    return Ok(entry);
                }
                if let (Some(l2), Some(generation)) = (&self.l2, l2_generation) {
                    let ttl = self.freshness_in_l2(&entry) + self.settings.max_stale;
                    match l2.put(&key, &entry, ttl, generation).await {
                        Ok(true) => {}
                        Ok(false) => {
                            // Invalidated on another replica while this read was in flight.
                            entry.volatile = true;
                            return Ok(entry);
                        }
                        Err(error) => tracing::warn!(%error, "directory shared cache not updated"),
                    }
                }
                self.last_good.insert(key, entry.clone()).await;
                Ok(entry)
            }
            // A definite answer of the directory, not an outage: nothing stale stands in.
            Err(error @ DirectoryError::Ambiguous(_)) => Err(error),
            Err(error) => match stale {
                Some(entry) if entry.age(now) < self.settings.max_stale => {
                    self.stats.stale_served.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        %error,
                        age_seconds = entry.age(now).as_secs(),
                        "directory unavailable: serving the last answer it gave"
                    );
                    Ok(Entry {
                        stale: true,
                        ..entry
                    })
                }
                _ => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    Err(error)
                }
            },
        }
    }

    fn freshness_in_l2(&self, entry: &Entry) -> Duration {
        if entry.user.is_some() {
            self.settings.l2_ttl
        } else {
            self.settings.negative_ttl
        }
    }

    async fn forget(&self, key: &Key) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.fresh.invalidate(key).await;
        self.last_good.invalidate(key).await;
    }

    fn forget_everyone(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.fresh.invalidate_all();
        self.last_good.invalidate_all();
    }

    /// Forgets one person here, in Redis, and (through the channel) on every replica: their
    /// next request reads the directory again.
    pub async fn invalidate(&self, pivot: &PivotQuery) -> Result<(), SharedCacheError> {
        let keys = keys_of(&self.namer, &self.previous_namers, pivot);
        for key in &keys {
            self.forget(key).await;
        }
        match &self.l2 {
            Some(l2) => l2.invalidate(Some(&keys)).await,
            None => Ok(()),
        }
    }

    /// Forgets everyone, everywhere.
    pub async fn invalidate_all(&self) -> Result<(), SharedCacheError> {
        self.forget_everyone();
        match &self.l2 {
            Some(l2) => l2.invalidate(None).await,
            None => Ok(()),
        }
    }

    /// Whether the invalidation listener is subscribed (always false without Redis).
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// Follows the invalidation channel until the process stops, reconnecting after failures.
    /// After a reconnection the whole L1 is dropped: invalidations may have been missed.
    /// Returns at once without Redis.
    pub async fn run_invalidation_listener(&self) {
        let Some(l2) = &self.l2 else { return };
        let mut first = true;
        loop {
            let result = l2
                .listen(|message| async move {
                    match message {
                        shared::Message::Subscribed => {
                            if !first {
                                self.forget_everyone();
                            }
                            self.listening.store(true, Ordering::Release);
                            tracing::info!("following directory invalidations");
                        }
                        shared::Message::Everyone => self.forget_everyone(),
                        shared::Message::One(key) => self.forget(&key).await,
                    }
                })
                .await;
            self.listening.store(false, Ordering::Release);
            first = false;
            if let Err(error) = result {
                tracing::warn!(%error, "directory invalidation channel lost: reconnecting");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Invalidation without a cache of one's own (the `guichet directory invalidate` command):
/// removes the entries from Redis and tells every replica.
pub struct RemoteInvalidator {
    l2: L2,
    namer: Hmac<Sha256>,
    previous_namers: Vec<Hmac<Sha256>>,
}

impl RemoteInvalidator {
    pub fn new(redis: RedisCacheSettings) -> Result<RemoteInvalidator, SharedCacheError> {
        Ok(Self::with_shared(redis.connect()?))
    }

    /// On any [`SharedRedis`] (a URL or Sentinel, TLS, ACL).
    pub fn with_shared(redis: SharedRedis) -> RemoteInvalidator {
        RemoteInvalidator {
            l2: L2::new(&redis),
            namer: namer(Some(&redis.encryption_key)),
            previous_namers: previous_namers(Some(&redis)),
        }
    }

    /// `None`: everyone.
    pub async fn invalidate(&self, pivot: Option<&PivotQuery>) -> Result<(), SharedCacheError> {
        match pivot {
            Some(pivot) => {
                let keys = keys_of(&self.namer, &self.previous_namers, pivot);
                self.l2.invalidate(Some(&keys)).await
            }
            None => self.l2.invalidate(None).await,
        }
    }
}

#[cfg(test)]
mod tests;
