//! L2: the Redis cache every replica shares, and the invalidation channel.
//!
//! A dump of Redis yields no personal data: entry keys are keyed hashes of the pivot and
//! values are sealed (AES-256-GCM, the key name as associated data). Invalidation messages
//! carry the same hashes. Redis is reached through a [`RedisLink`]: a URL or Sentinel (a
//! failover is followed, and the subscription moves to the new master).

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Entry, Key};
use crate::redis_link::{describe_error, ChannelError, RedisLink, RedisSettings};
use crate::sealing::Sealer;
use crate::DirectoryUser;

/// Where the shared cache is (a URL) and how entries are sealed (the session store's
/// settings). See [`SharedRedis`] for Sentinel, TLS with a private CA and ACL credentials.
#[derive(Clone)]
pub struct RedisCacheSettings {
    pub url: String,
    pub encryption_key: [u8; 32],
    pub key_prefix: String,
}

impl std::fmt::Debug for RedisCacheSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCacheSettings")
            .field("url", &"<redacted>")
            .field("encryption_key", &"<redacted>")
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

impl RedisCacheSettings {
    /// The link to the URL (not connected yet) with these keys.
    pub fn connect(&self) -> Result<SharedRedis, SharedCacheError> {
        let link = RedisLink::new(&RedisSettings::url(self.url.clone()))
            .map_err(|e| SharedCacheError::Url(e.to_string()))?;
        Ok(SharedRedis {
            link,
            encryption_key: self.encryption_key,
            previous_encryption_keys: Vec::new(),
            key_prefix: self.key_prefix.clone(),
        })
    }
}

/// The shared cache's Redis (any [`RedisLink`]: URL or Sentinel) and keys.
#[derive(Clone)]
pub struct SharedRedis {
    pub link: RedisLink,
    /// Seals entries and names them (with the key prefix).
    pub encryption_key: [u8; 32],
    /// Keys of earlier configurations (key rotation): invalidations are announced under the
    /// names each gives too, so replicas still running with one hear them.
    pub previous_encryption_keys: Vec<[u8; 32]>,
    pub key_prefix: String,
}

impl std::fmt::Debug for SharedRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRedis")
            .field("link", &self.link.describe())
            .field("encryption_key", &"<redacted>")
            .field(
                "previous_encryption_keys",
                &self.previous_encryption_keys.len(),
            )
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// What a replica hears on the invalidation channel.
pub enum Message {
    /// (Re)subscribed: invalidations sent before were not heard.
    Subscribed,
    Everyone,
    One(Key),
}

/// An entry as stored in Redis (sealed).
#[derive(Serialize, Deserialize)]
struct Stored {
    user: Option<DirectoryUser>,
    fetched_at_ms: u64,
}

pub struct L2 {
    link: RedisLink,
    sealer: Sealer,
    prefix: String,
    channel: String,
}

/// The shared cache (Redis) failed. The URL is never in it: Redis' own text may carry it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedCacheError {
    #[error("invalid Redis URL ({0})")]
    Url(String),
    #[error("Redis: {0}")]
    Redis(String),
    #[error("cannot encode the entry: {0}")]
    Encode(String),
    #[error("subscription ended")]
    SubscriptionEnded,
    #[error("the Redis master changed: subscribing again on the new one")]
    MasterChanged,
}

fn channel_error(e: ChannelError) -> SharedCacheError {
    match e {
        ChannelError::Redis(text) => SharedCacheError::Redis(text),
        ChannelError::Ended => SharedCacheError::SubscriptionEnded,
        ChannelError::MasterChanged => SharedCacheError::MasterChanged,
    }
}

fn failed(e: redis::RedisError) -> SharedCacheError {
    // Redis' own text may carry the URL: described without it.
    SharedCacheError::Redis(describe_error(&e))
}

const EVERYONE: &str = "*";

impl L2 {
    pub fn new(shared: &SharedRedis) -> L2 {
        L2 {
            link: shared.link.clone(),
            sealer: Sealer::new(&shared.encryption_key),
            prefix: shared.key_prefix.clone(),
            channel: format!("{}directory-invalidate", shared.key_prefix),
        }
    }

    pub fn describe(&self) -> String {
        self.link.describe()
    }

    fn name(&self, key: &Key) -> String {
        format!("{}d:{}", self.prefix, hex::encode(key))
    }

    /// The invalidation counter: bumped by every invalidation, checked by every write.
    fn generation_key(&self) -> String {
        format!("{}dgen", self.prefix)
    }

    /// The entry, if any, and the invalidation generation it was read under (a write made
    /// from what is read next must carry it: see [`Self::put`]).
    pub async fn get(&self, key: &Key) -> Result<(Option<Entry>, u64), SharedCacheError> {
        let name = self.name(key);
        let (sealed, generation): (Option<Vec<u8>>, Option<u64>) = redis::cmd("MGET")
            .arg(&name)
            .arg(self.generation_key())
            .query_async(&mut self.link.clone())
            .await
            .map_err(failed)?;
        let generation = generation.unwrap_or(0);
        let Some(sealed) = sealed else {
            return Ok((None, generation));
        };
        let stored: Option<Stored> = self
            .sealer
            .open(&sealed, name.as_bytes())
            .and_then(|plain| serde_json::from_slice(&plain).ok());
        match stored {
            Some(stored) => Ok((
                Some(Entry {
                    user: stored.user.map(std::sync::Arc::new),
                    fetched_at_ms: stored.fetched_at_ms,
                    stale: false,
                    volatile: false,
                    failure: None,
                }),
                generation,
            )),
            None => {
                // Another key, another version, or tampering: ignored, and replaced at the
                // next load.
                tracing::warn!("unreadable directory cache entry ignored");
                Ok((None, generation))
            }
        }
    }

    /// Stores an entry read from the directory, unless an invalidation happened (on any
    /// replica) since `generation` was read: then the entry may predate the change and is not
    /// stored (`Ok(false)`).
    pub async fn put(
        &self,
        key: &Key,
        entry: &Entry,
        ttl: Duration,
        generation: u64,
    ) -> Result<bool, SharedCacheError> {
        const PUT_IF_NOT_INVALIDATED: &str = r#"
            if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[3]) then
                return 0
            end
            redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
            return 1
        "#;
        let name = self.name(key);
        let stored = Stored {
            user: entry.user.as_deref().cloned(),
            fetched_at_ms: entry.fetched_at_ms,
        };
        let plain =
            serde_json::to_vec(&stored).map_err(|e| SharedCacheError::Encode(e.to_string()))?;
        let stored: i64 = redis::cmd("EVAL")
            .arg(PUT_IF_NOT_INVALIDATED)
            .arg(2)
            .arg(&name)
            .arg(self.generation_key())
            .arg(self.sealer.seal(&plain, name.as_bytes()))
            .arg(ttl.as_millis().max(1) as u64)
            .arg(generation)
            .query_async(&mut self.link.clone())
            .await
            .map_err(failed)?;
        Ok(stored == 1)
    }

    /// Removes entries (`None`: every entry) from Redis and tells every replica. Several keys
    /// name one person under the current and the previous encryption keys.
    pub async fn invalidate(&self, keys: Option<&[Key]>) -> Result<(), SharedCacheError> {
        let mut connection = self.link.clone();
        // First: a read in flight anywhere can no longer write back what it read.
        redis::cmd("INCR")
            .arg(self.generation_key())
            .query_async::<()>(&mut connection)
            .await
            .map_err(failed)?;
        let messages = match keys {
            Some(keys) => {
                let names: Vec<String> = keys.iter().map(|key| self.name(key)).collect();
                if !names.is_empty() {
                    redis::cmd("DEL")
                        .arg(&names)
                        .query_async::<()>(&mut connection)
                        .await
                        .map_err(failed)?;
                }
                keys.iter().map(hex::encode).collect()
            }
            None => {
                self.delete_every_entry(&mut connection).await?;
                vec![EVERYONE.to_owned()]
            }
        };
        for message in messages {
            redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(message)
                .query_async::<()>(&mut connection)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }

    async fn delete_every_entry(&self, connection: &mut RedisLink) -> Result<(), SharedCacheError> {
        let pattern = format!("{}d:*", self.prefix);
        let mut cursor: u64 = 0;
        loop {
            let (next, names): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(connection)
                .await
                .map_err(failed)?;
            if !names.is_empty() {
                redis::cmd("DEL")
                    .arg(&names)
                    .query_async::<()>(connection)
                    .await
                    .map_err(failed)?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// Subscribes to the invalidation channel and hands each message to `on_message` until
    /// the connection is lost or (Sentinel) the master changes: then it returns, and the
    /// caller subscribes again (on the new master).
    pub async fn listen<F, Fut>(&self, mut on_message: F) -> Result<(), SharedCacheError>
    where
        F: FnMut(Message) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut subscription = self
            .link
            .subscribe(&self.channel)
            .await
            .map_err(channel_error)?;
        on_message(Message::Subscribed).await;
        loop {
            let payload = subscription.next().await.map_err(channel_error)?;
            if payload == EVERYONE.as_bytes() {
                on_message(Message::Everyone).await;
            } else if let Some(key) = hex::decode(&payload)
                .ok()
                .and_then(|bytes| Key::try_from(bytes.as_slice()).ok())
            {
                on_message(Message::One(key)).await;
            }
        }
    }
}
