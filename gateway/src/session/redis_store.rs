//! Redis store, shared by every replica.
//!
//! A dump of Redis yields neither usable cookies nor personal data: keys are keyed hashes
//! (HMAC-SHA-256 under a key derived from the encryption key) of the session id, transaction id
//! or counter name, so even a counter named after an IPv4 address cannot be brute-forced back,
//! and values are sealed with AES-256-GCM.
//! There is no in-process copy of sessions, so a logout on one replica is effective on every
//! other at its next request. The connection is lazy and reconnects by itself: the gateway
//! starts while Redis is down (`/readyz` says so) and recovers when it comes back. Redis is
//! reached through a [`RedisLink`]: a URL or Sentinel, whose failovers are followed.
//!
//! Key rotation (`previous_encryption_keys`): names derive from the key, so a record may live
//! under the name a previous key gives. It is found there (after the current key's name), opens
//! with the key that sealed it, and stays under that name: the next write seals it with the
//! current key in place. So the sets filing sessions under an upstream session id (back-channel
//! logout), named by the same key, keep naming them; new records get the current key's names.
//! Counters start again under the new names.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use guichet_directory_client::redis_link::{describe_error, RedisLink};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::crypto::SealerRing;
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
}

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
        Ok(Self {
            link,
            sealer: SealerRing::new(&config.encryption_key, &config.previous_encryption_keys),
            key_namers,
            prefix: config.key_prefix.clone(),
        })
    }

    /// Whether a previous encryption key is configured (a rotation is under way).
    fn rotating(&self) -> bool {
        self.key_namers.len() > 1
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

    /// Writes under whichever of `names` holds the record (see [`SAVE_IN_PLACE`]).
    async fn put_sealed_in_place(
        &self,
        names: &[String],
        plaintext: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut script = redis::cmd("EVAL");
        script
            .arg(SAVE_IN_PLACE)
            .arg(names.len())
            .arg(names)
            .arg(ttl.as_millis().max(1) as u64);
        for name in names {
            script.arg(self.sealer.seal(plaintext, name.as_bytes()));
        }
        script
            .query_async::<i64>(&mut self.link.clone())
            .await
            .map(drop)
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
        match self.get_sealed(&self.session_keys(id)).await {
            Ok(Some(plain)) => serde_json::from_slice(&plain)
                .map(|record| Some(Arc::new(record)))
                .map_err(|e| StoreError::Corrupt(e.to_string())),
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
        if self.rotating() {
            self.put_sealed_in_place(&self.session_keys(id), &plain, ttl)
                .await
        } else {
            self.put_sealed(&self.session_key(id), &plain, ttl).await
        }
    }

    async fn delete_session(&self, id: &SessionId) -> Result<(), StoreError> {
        redis::cmd("DEL")
            .arg(self.session_keys(id))
            .query_async::<()>(&mut self.link.clone())
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
        // One script: the index and its sessions go together, whatever replica asks. One index
        // per key of a rotation (each names its own sessions).
        const SCRIPT: &str = "local n = 0 \
            for _, tag in ipairs(KEYS) do \
              local members = redis.call('SMEMBERS', tag) \
              for _, k in ipairs(members) do redis.call('DEL', k) end \
              redis.call('DEL', tag) n = n + #members \
            end return n";
        let tags = self.tag_keys(tag);
        redis::cmd("EVAL")
            .arg(SCRIPT)
            .arg(tags.len())
            .arg(tags)
            .query_async::<i64>(&mut self.link.clone())
            .await
            .map(|n| n.max(0) as usize)
            .map_err(unavailable)
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
