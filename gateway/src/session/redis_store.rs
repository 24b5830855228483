//! Redis store, shared by every replica.
//!
//! A dump of Redis yields neither usable cookies nor personal data: keys are keyed hashes
//! (HMAC-SHA-256 under a key derived from the encryption key) of the session id, transaction id
//! or counter name, so even a counter named after an IPv4 address cannot be brute-forced back,
//! and values are sealed with AES-256-GCM.
//! Each replica keeps a short-lived copy of the records it reads ([`LocalCopy`], 750 ms by
//! default): a session ended or changed anywhere is announced on the `{prefix}session-events`
//! channel and dropped from every replica's copy at once; the copy's lifetime bounds staleness
//! when a message is lost. Activity refreshes (the sliding idle timeout) are not written per
//! request but batched: queued, then written together once a second, and only over a record
//! that still exists, so a refresh can never bring back a session that ended meanwhile.
//! The connection is lazy and reconnects by itself: the gateway
//! starts while Redis is down (`/readyz` says so) and recovers when it comes back. Redis is
//! reached through a [`RedisLink`]: a URL or Sentinel, whose failovers are followed.
//!
//! Key rotation (`previous_encryption_keys`): names derive from the key, so a record may live
//! under the name a previous key gives. It is found there (after the current key's name), opens
//! with the key that sealed it, and stays under that name: the next write seals it with the
//! current key in place. So the sets filing sessions under an upstream session id (back-channel
//! logout), named by the same key, keep naming them; new records get the current key's names.
//! Counters start again under the new names.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use guichet_directory_client::redis_link::{describe_error, RedisLink};
use rand::RngCore;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::crypto::SealerRing;
use super::local_copy::LocalCopy;
use super::{SessionId, SessionRecord, Store, StoreError};
use crate::config::ResolvedRedis;

/// A Redis session store that cannot be set up (the URL or the client refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisStoreError {
    #[error("session.store.url: invalid Redis URL ({0})")]
    Url(String),
    #[error("{0}")]
    Client(String),
}

pub struct RedisStore {
    link: RedisLink,
    sealer: SealerRing,
    /// Name keys: the current encryption key's first, then the previous keys'. Derived from
    /// the encryption keys, never equal to them.
    key_namers: Vec<Hmac<Sha256>>,
    prefix: String,
    /// Recently read records (L1).
    local: LocalCopy,
    /// Where sessions ended or changed are announced to every replica.
    channel: String,
    /// This process, in what it announces: it does not act twice on its own messages.
    origin: String,
    /// Activity refreshes waiting to be written, by the record's current name.
    touches: Mutex<HashMap<String, PendingTouch>>,
    touch_stats: TouchStats,
}

/// An activity refresh waiting for the next batch.
struct PendingTouch {
    names: Vec<String>,
    plain: Vec<u8>,
    ttl: Duration,
}

#[derive(Default)]
struct TouchStats {
    written: AtomicU64,
    failed: AtomicU64,
}

/// How often queued activity refreshes are written.
const TOUCH_INTERVAL: Duration = Duration::from_secs(1);
/// Refreshes queued at most: past it (Redis long unreachable and very many active sessions),
/// new ones are dropped; the sessions concerned are refreshed again at a later request.
const MAX_PENDING_TOUCHES: usize = 200_000;

fn unavailable(e: redis::RedisError) -> StoreError {
    // Described without Redis' own text, which may carry the URL.
    StoreError::Unavailable(describe_error(&e))
}

/// Writes a record where it lives: under the first of KEYS (the current key's name) unless only
/// a later one (a previous key's name) holds it. ARGV: the TTL in ms, then the record sealed
/// for each name.
const SAVE_IN_PLACE: &str = "local target = 1 \
    if redis.call('EXISTS', KEYS[1]) == 0 then \
      for i = 2, #KEYS do \
        if redis.call('EXISTS', KEYS[i]) == 1 then target = i break end \
      end \
    end \
    redis.call('SET', KEYS[target], ARGV[target + 1], 'PX', ARGV[1]) return target";

/// An activity refresh: rewrites the first of KEYS that exists, and nothing if none does
/// (the session ended meanwhile: it must not come back). ARGV as [`SAVE_IN_PLACE`].
const TOUCH_IN_PLACE: &str = "for i = 1, #KEYS do \
      if redis.call('EXISTS', KEYS[i]) == 1 then \
        redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ARGV[1]) return i \
      end \
    end return 0";

/// Ends every session filed under KEYS (one index per key of a rotation, each naming its own
/// sessions), announces each on channel ARGV[1] as `ARGV[2] <name>`, and returns their names.
/// One script: the index and its sessions go together, whatever replica asks.
const END_TAGGED: &str = "local ended = {} \
    for _, tag in ipairs(KEYS) do \
      local members = redis.call('SMEMBERS', tag) \
      for _, k in ipairs(members) do \
        redis.call('DEL', k) \
        redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. k) \
        ended[#ended + 1] = k \
      end \
      redis.call('DEL', tag) \
    end return ended";

/// How long to wait before subscribing again after the channel was lost.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

impl RedisStore {
    /// Does not connect: the first command does, and later ones reconnect as needed.
    #[allow(clippy::expect_used, reason = "HMAC takes any key length")]
    pub fn new(config: &ResolvedRedis) -> Result<Self, RedisStoreError> {
        let link = RedisLink::new(&config.connection).map_err(|e| match e {
            guichet_directory_client::redis_link::RedisLinkError::Url(kind) => {
                RedisStoreError::Url(kind)
            }
            other => RedisStoreError::Client(format!("session.store: {other}")),
        })?;
        let key_namers = std::iter::once(&config.encryption_key)
            .chain(&config.previous_encryption_keys)
            .map(|key| {
                let naming_key = Sha256::new()
                    .chain_update(b"guichet redis key names v1")
                    .chain_update(key)
                    .finalize();
                Hmac::<Sha256>::new_from_slice(&naming_key).expect("HMAC takes any key length")
            })
            .collect();
        let mut origin = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut origin);
        Ok(Self {
            link,
            sealer: SealerRing::new(&config.encryption_key, &config.previous_encryption_keys),
            key_namers,
            prefix: config.key_prefix.clone(),
            local: LocalCopy::new(config.local_cache_ttl, config.local_cache_entries),
            channel: format!("{}session-events", config.key_prefix),
            origin: hex::encode(origin),
            touches: Mutex::new(HashMap::new()),
            touch_stats: TouchStats::default(),
        })
    }

    /// What announces that the record named `name` ended or changed.
    fn announcement(&self, name: &str) -> String {
        format!("{} {name}", self.origin)
    }

    /// Adds to `pipe` the announcement of every name of `names`.
    fn announce(&self, pipe: &mut redis::Pipeline, names: &[String]) {
        for name in names {
            pipe.cmd("PUBLISH")
                .arg(&self.channel)
                .arg(self.announcement(name))
                .ignore();
        }
    }

    fn pending_touches(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingTouch>> {
        self.touches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets the local copies and queued refreshes of records that ended here.
    fn forget_locally(&self, names: &[String]) {
        self.local.forget(names.iter().map(String::as_str));
        let mut touches = self.pending_touches();
        for name in names {
            touches.remove(name);
        }
    }

    /// What another replica announced: `<origin> <name>`.
    fn heard(&self, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        let Some((origin, name)) = text.split_once(' ') else {
            return;
        };
        if origin != self.origin {
            self.local.forget_remote(name);
            self.pending_touches().remove(name);
        }
    }

    /// Follows the announcements of sessions ended or changed on other replicas until the
    /// process stops, subscribing again after any loss. Every (re)subscription drops the whole
    /// local copy: announcements made while no subscription was open were not heard.
    async fn follow_announcements(&self) {
        let mut lost_logged = false;
        loop {
            let error = match self.link.subscribe(&self.channel).await {
                Ok(mut subscription) => {
                    self.local.forget_all();
                    self.local.set_listening(true);
                    tracing::info!("following session events of other replicas");
                    lost_logged = false;
                    loop {
                        match subscription.next().await {
                            Ok(payload) => self.heard(&payload),
                            Err(error) => break error,
                        }
                    }
                }
                Err(error) => error,
            };
            self.local.set_listening(false);
            if !lost_logged {
                tracing::warn!(
                    %error,
                    ttl = ?self.local.ttl(),
                    "session event channel lost: subscribing again; local session copies live ttl at most meanwhile"
                );
                lost_logged = true;
            }
            tokio::time::sleep(RESUBSCRIBE_DELAY).await;
        }
    }

    /// Writes the queued activity refreshes once a second, in one round trip.
    async fn write_touches(&self) {
        let mut interval = tokio::time::interval(TOUCH_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            self.flush_touches().await;
        }
    }

    /// Writes every queued refresh now; those that fail are queued again (unless a newer one
    /// or the session's end came meanwhile).
    async fn flush_touches(&self) {
        let batch: Vec<(String, PendingTouch)> = self.pending_touches().drain().collect();
        if batch.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (_, touch) in &batch {
            let millis = touch.ttl.as_millis().max(1) as u64;
            if let [name] = touch.names.as_slice() {
                pipe.cmd("SET")
                    .arg(name)
                    .arg(self.sealer.seal(&touch.plain, name.as_bytes()))
                    .arg("XX")
                    .arg("PX")
                    .arg(millis)
                    .ignore();
            } else {
                let script = pipe.cmd("EVAL");
                script
                    .arg(TOUCH_IN_PLACE)
                    .arg(touch.names.len())
                    .arg(&touch.names)
                    .arg(millis);
                for name in &touch.names {
                    script.arg(self.sealer.seal(&touch.plain, name.as_bytes()));
                }
                script.ignore();
            }
        }
        match pipe.query_async::<()>(&mut self.link.clone()).await {
            Ok(()) => {
                self.touch_stats
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.touch_stats
                    .failed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::warn!(error = %describe_error(&e), sessions = batch.len(), "could not write session activity: trying again");
                let mut touches = self.pending_touches();
                for (name, touch) in batch {
                    if touches.len() < MAX_PENDING_TOUCHES {
                        touches.entry(name).or_insert(touch);
                    }
                }
            }
        }
    }

    /// The names of `secret` of this `kind`: the current key's first, then the previous keys'.
    fn names(&self, kind: &str, secret: &[u8]) -> Vec<String> {
        self.key_namers
            .iter()
            .map(|namer| {
                let mut mac = namer.clone();
                mac.update(kind.as_bytes());
                mac.update(b":");
                mac.update(secret);
                format!(
                    "{}{kind}:{}",
                    self.prefix,
                    hex::encode(mac.finalize().into_bytes())
                )
            })
            .collect()
    }

    /// The current key's name.
    fn name(&self, kind: &str, secret: &[u8]) -> String {
        self.names(kind, secret).swap_remove(0)
    }

    fn session_keys(&self, id: &SessionId) -> Vec<String> {
        self.names("s", id.storage_key().as_bytes())
    }

    fn session_key(&self, id: &SessionId) -> String {
        self.name("s", id.storage_key().as_bytes())
    }

    fn transient_keys(&self, key: &str) -> Vec<String> {
        self.names("t", key.as_bytes())
    }

    fn tag_keys(&self, tag: &str) -> Vec<String> {
        self.names("g", tag.as_bytes())
    }

    fn counter_key(&self, counter: &str) -> String {
        self.name("c", counter.as_bytes())
    }

    async fn put_sealed(
        &self,
        key: &str,
        plaintext: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let sealed = self.sealer.seal(plaintext, key.as_bytes());
        let millis = ttl.as_millis().max(1) as u64;
        redis::cmd("SET")
            .arg(key)
            .arg(sealed)
            .arg("PX")
            .arg(millis)
            .query_async::<()>(&mut self.link.clone())
            .await
            .map_err(unavailable)
    }

    fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.sealer.open(sealed, name.as_bytes()).ok_or_else(|| {
            StoreError::Corrupt("record does not open with the configured keys".into())
        })
    }

    /// The first of `names` that holds a record, opened (one round trip).
    async fn get_sealed(&self, names: &[String]) -> Result<Option<Vec<u8>>, StoreError> {
        let values: Vec<Option<Vec<u8>>> = if let [name] = names {
            let value: Option<Vec<u8>> = redis::cmd("GET")
                .arg(name)
                .query_async(&mut self.link.clone())
                .await
                .map_err(unavailable)?;
            vec![value]
        } else {
            redis::cmd("MGET")
                .arg(names)
                .query_async(&mut self.link.clone())
                .await
                .map_err(unavailable)?
        };
        match names
            .iter()
            .zip(values)
            .find_map(|(name, value)| value.map(|v| (name, v)))
        {
            None => Ok(None),
            Some((name, sealed)) => self.open(name, &sealed).map(Some),
        }
    }

    /// Reads and deletes the first of `names` that holds a record.
    async fn take_sealed(&self, names: &[String]) -> Result<Option<Vec<u8>>, StoreError> {
        for name in names {
            // GETDEL (Redis >= 6.2) makes "single use" hold across replicas.
            let sealed: Option<Vec<u8>> = redis::cmd("GETDEL")
                .arg(name)
                .query_async(&mut self.link.clone())
                .await
                .map_err(unavailable)?;
            if let Some(sealed) = sealed {
                return self.open(name, &sealed).map(Some);
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn load_session(&self, id: &SessionId) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        if let Some(record) = self.local.get(id) {
            return Ok(Some(record));
        }
        let names = self.session_keys(id);
        let ticket = self.local.ticket(&names[0]);
        match self.get_sealed(&names).await {
            Ok(Some(plain)) => {
                let record = Arc::new(
                    serde_json::from_slice::<SessionRecord>(&plain)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                );
                self.local.keep(ticket, id, &names[0], &record);
                Ok(Some(record))
            }
            Ok(None) => Ok(None),
            // A record sealed with another key (key rotation) is no session, not an outage.
            Err(StoreError::Corrupt(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    #[allow(clippy::expect_used, reason = "a session record always serializes")]
    async fn save_session(
        &self,
        id: &SessionId,
        record: &SessionRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let plain = serde_json::to_vec(record).expect("a session record always serializes");
        let names = self.session_keys(id);
        // Other replicas drop their copies of the record (it changed), in the same round trip.
        let mut pipe = redis::pipe();
        let millis = ttl.as_millis().max(1) as u64;
        if let [name] = names.as_slice() {
            pipe.cmd("SET")
                .arg(name)
                .arg(self.sealer.seal(&plain, name.as_bytes()))
                .arg("PX")
                .arg(millis)
                .ignore();
        } else {
            let script = pipe.cmd("EVAL");
            script
                .arg(SAVE_IN_PLACE)
                .arg(names.len())
                .arg(&names)
                .arg(millis);
            for name in &names {
                script.arg(self.sealer.seal(&plain, name.as_bytes()));
            }
            script.ignore();
        }
        self.announce(&mut pipe, &names);
        self.forget_locally(&names);
        pipe.query_async::<()>(&mut self.link.clone())
            .await
            .map_err(unavailable)?;
        self.local.put(id, &names[0], Arc::new(record.clone()));
        Ok(())
    }

    async fn touch_session(
        &self,
        id: &SessionId,
        record: Arc<SessionRecord>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let names = self.session_keys(id);
        let plain = serde_json::to_vec(&*record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.local.put(id, &names[0], record);
        let mut touches = self.pending_touches();
        if touches.len() < MAX_PENDING_TOUCHES || touches.contains_key(&names[0]) {
            touches.insert(names[0].clone(), PendingTouch { names, plain, ttl });
        }
        Ok(())
    }

    async fn delete_session(&self, id: &SessionId) -> Result<(), StoreError> {
        let names = self.session_keys(id);
        // Forgotten here first: whatever Redis answers, this replica no longer serves it.
        self.forget_locally(&names);
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(&names).ignore();
        self.announce(&mut pipe, &names);
        pipe.query_async::<()>(&mut self.link.clone())
            .await
            .map_err(unavailable)
    }

    async fn put_transient(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.put_sealed(&self.name("t", key.as_bytes()), value, ttl)
            .await
    }

    async fn take_transient(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.take_sealed(&self.transient_keys(key)).await
    }

    async fn peek_transient(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_sealed(&self.transient_keys(key)).await
    }

    async fn increment(&self, counter: &str, window: Duration) -> Result<u64, StoreError> {
        let key = self.counter_key(counter);
        let (_, count): ((), u64) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&key)
            .arg(0)
            .arg("PX")
            .arg(window.as_millis().max(1) as u64)
            .arg("NX")
            .ignore()
            .cmd("INCR")
            .arg(&key)
            .query_async(&mut self.link.clone())
            .await
            .map(|(count,): (u64,)| ((), count))
            .map_err(unavailable)?;
        Ok(count)
    }

    async fn decrement(&self, counter: &str) -> Result<(), StoreError> {
        // DECR would create a missing key without expiry; only touch a live, positive counter.
        const SCRIPT: &str = "if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then return redis.call('DECR', KEYS[1]) end return 0";
        redis::cmd("EVAL")
            .arg(SCRIPT)
            .arg(1)
            .arg(self.counter_key(counter))
            .query_async::<i64>(&mut self.link.clone())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn reset(&self, counter: &str) -> Result<(), StoreError> {
        redis::cmd("DEL")
            .arg(self.names("c", counter.as_bytes()))
            .query_async::<()>(&mut self.link.clone())
            .await
            .map_err(unavailable)
    }

    async fn tag_session(
        &self,
        tag: &str,
        id: &SessionId,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        // Members are the session keys' hashed names, never session ids.
        let key = self.name("g", tag.as_bytes());
        redis::pipe()
            .atomic()
            .cmd("SADD")
            .arg(&key)
            .arg(self.session_key(id))
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl.as_millis().max(1) as u64)
            .ignore()
            .query_async::<()>(&mut self.link.clone())
            .await
            .map_err(unavailable)
    }

    async fn end_tagged_sessions(&self, tag: &str) -> Result<usize, StoreError> {
        let tags = self.tag_keys(tag);
        let ended: Vec<String> = redis::cmd("EVAL")
            .arg(END_TAGGED)
            .arg(tags.len())
            .arg(tags)
            .arg(&self.channel)
            .arg(&self.origin)
            .query_async(&mut self.link.clone())
            .await
            .map_err(unavailable)?;
        self.forget_locally(&ended);
        Ok(ended.len())
    }

    async fn run_background(&self) {
        tokio::join!(self.follow_announcements(), self.write_touches());
    }

    fn cache_counters(&self) -> Vec<(&'static str, u64)> {
        let stats = &self.local.stats;
        vec![
            ("hit", stats.hits.load(Ordering::Relaxed)),
            ("miss", stats.misses.load(Ordering::Relaxed)),
            (
                "remote_invalidation",
                stats.remote_invalidations.load(Ordering::Relaxed),
            ),
            ("flush", stats.flushes.load(Ordering::Relaxed)),
            (
                "touch_written",
                self.touch_stats.written.load(Ordering::Relaxed),
            ),
            (
                "touch_failed",
                self.touch_stats.failed.load(Ordering::Relaxed),
            ),
        ]
    }

    fn is_following_events(&self) -> Option<bool> {
        self.local.is_enabled().then(|| self.local.is_listening())
    }

    fn describe(&self) -> String {
        self.link.describe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.link.clone())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
