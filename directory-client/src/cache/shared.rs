//! L2: the Redis cache every replica shares, and the invalidation channel.
//!
//! A dump of Redis yields no personal data: entry keys are keyed hashes of the pivot and
//! values are sealed (AES-256-GCM, the key name as associated data). Invalidation messages
//! carry the same hashes.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use super::{Entry, Key};
use crate::sealing::Sealer;
use crate::DirectoryUser;

/// Where the shared cache is and how entries are sealed (the session store's settings).
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
    client: redis::Client,
    connection: ConnectionManager,
    sealer: Sealer,
    prefix: String,
    channel: String,
    location: String,
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
}

fn failed(e: redis::RedisError) -> SharedCacheError {
    // The error text may carry the URL; keep its kind and category only.
    SharedCacheError::Redis(format!("{:?}: {}", e.kind(), e.category()))
}

const EVERYONE: &str = "*";

impl L2 {
    pub fn new(settings: &RedisCacheSettings) -> Result<L2, SharedCacheError> {
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| SharedCacheError::Url(format!("{:?}", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| SharedCacheError::Redis(format!("{:?}", e.kind())))?;
        let info = client.get_connection_info();
        let location = format!("redis at {}", info.addr());
        Ok(L2 {
            client,
            connection,
            sealer: Sealer::new(&settings.encryption_key),
            prefix: settings.key_prefix.clone(),
            channel: format!("{}directory-invalidate", settings.key_prefix),
            location,
        })
    }

    pub fn describe(&self) -> String {
        self.location.clone()
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
            .query_async(&mut self.connection.clone())
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
            .query_async(&mut self.connection.clone())
            .await
            .map_err(failed)?;
        Ok(stored == 1)
    }

    /// Removes one entry (or every entry) from Redis and tells every replica.
    pub async fn invalidate(&self, key: Option<&Key>) -> Result<(), SharedCacheError> {
        let mut connection = self.connection.clone();
        // First: a read in flight anywhere can no longer write back what it read.
        redis::cmd("INCR")
            .arg(self.generation_key())
            .query_async::<()>(&mut connection)
            .await
            .map_err(failed)?;
        let message = match key {
            Some(key) => {
                redis::cmd("DEL")
                    .arg(self.name(key))
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(failed)?;
                hex::encode(key)
            }
            None => {
                self.delete_every_entry(&mut connection).await?;
                EVERYONE.to_owned()
            }
        };
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(message)
            .query_async::<()>(&mut connection)
            .await
            .map_err(failed)
    }

    async fn delete_every_entry(
        &self,
        connection: &mut ConnectionManager,
    ) -> Result<(), SharedCacheError> {
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
    /// the connection is lost.
    pub async fn listen<F, Fut>(&self, mut on_message: F) -> Result<(), SharedCacheError>
    where
        F: FnMut(Message) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut pubsub = self.client.get_async_pubsub().await.map_err(failed)?;
        pubsub.subscribe(&self.channel).await.map_err(failed)?;
        on_message(Message::Subscribed).await;
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let Ok(payload) = message.get_payload::<String>() else {
                continue;
            };
            if payload == EVERYONE {
                on_message(Message::Everyone).await;
            } else if let Some(key) = hex::decode(&payload)
                .ok()
                .and_then(|bytes| Key::try_from(bytes.as_slice()).ok())
            {
                on_message(Message::One(key)).await;
            }
        }
        Err(SharedCacheError::SubscriptionEnded)
    }
}
