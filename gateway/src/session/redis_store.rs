//! Redis store, shared by every replica.
//!
//! A dump of Redis yields neither usable cookies nor personal data: keys are keyed hashes
//! (HMAC-SHA-256 under a key derived from the encryption key) of the session id, transaction id
//! or counter name, so even a counter named after an IPv4 address cannot be brute-forced back,
//! and values are sealed with AES-256-GCM.
//! There is no in-process copy of sessions, so a logout on one replica is effective on every
//! other at its next request. The connection is lazy and reconnects by itself: the gateway
//! starts while Redis is down (`/readyz` says so) and recovers when it comes back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::crypto::Sealer;
use super::{SessionId, SessionRecord, Store, StoreError};
use crate::config::ResolvedRedis;

/// A Redis session store that cannot be set up (the URL or the client refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisStoreError {
    #[error("session.store.url: invalid Redis URL ({0})")]
    Url(String),
    #[error("session.store: {0}")]
    Client(String),
}

pub struct RedisStore {
    connection: ConnectionManager,
    sealer: Sealer,
    /// Names keys; derived from the encryption key, never equal to it.
    key_namer: Hmac<Sha256>,
    prefix: String,
    /// `redis://host:port/db` without credentials, for log lines.
    location: String,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    // The error text may carry the URL; keep only its kind and category.
    StoreError::Unavailable(format!("{:?}: {}", e.kind(), e.category()))
}

impl RedisStore {
    /// Does not connect: the first command does, and later ones reconnect as needed.
    #[allow(clippy::expect_used, reason = "HMAC takes any key length")]
    pub fn new(config: &ResolvedRedis) -> Result<Self, RedisStoreError> {
        let client = redis::Client::open(config.url.expose())
            .map_err(|e| RedisStoreError::Url(format!("{:?}", e.kind())))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| RedisStoreError::Client(format!("{:?}", e.kind())))?;
        let naming_key = Sha256::new()
            .chain_update(b"guichet redis key names v1")
            .chain_update(config.encryption_key)
            .finalize();
        Ok(Self {
            connection,
            sealer: Sealer::new(&config.encryption_key),
            key_namer: Hmac::<Sha256>::new_from_slice(&naming_key)
                .expect("HMAC takes any key length"),
            prefix: config.key_prefix.clone(),
            location: redacted_location(config.url.expose()),
        })
    }

    fn name(&self, kind: &str, secret: &[u8]) -> String {
        let mut mac = self.key_namer.clone();
        mac.update(kind.as_bytes());
        mac.update(b":");
        mac.update(secret);
        format!(
            "{}{kind}:{}",
            self.prefix,
            hex::encode(mac.finalize().into_bytes())
        )
    }

    fn session_key(&self, id: &SessionId) -> String {
        self.name("s", id.storage_key().as_bytes())
    }

    fn transient_key(&self, key: &str) -> String {
        self.name("t", key.as_bytes())
    }

    fn tag_key(&self, tag: &str) -> String {
        self.name("g", tag.as_bytes())
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
            .query_async::<()>(&mut self.connection.clone())
            .await
            .map_err(unavailable)
    }

    async fn get_sealed(&self, command: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let sealed: Option<Vec<u8>> = redis::cmd(command)
            .arg(key)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        match sealed {
            None => Ok(None),
            Some(sealed) => self
                .sealer
                .open(&sealed, key.as_bytes())
                .map(Some)
                .ok_or_else(|| {
                    StoreError::Corrupt("record does not open with the configured key".into())
                }),
        }
    }
}

/// The URL without user name and password.
fn redacted_location(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_username("").ok();
            parsed.set_password(None).ok();
            parsed.to_string()
        }
        Err(_) => "redis (unparseable URL)".into(),
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn load_session(&self, id: &SessionId) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        let key = self.session_key(id);
        match self.get_sealed("GET", &key).await {
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
        self.put_sealed(&self.session_key(id), &plain, ttl).await
    }

    async fn delete_session(&self, id: &SessionId) -> Result<(), StoreError> {
        redis::cmd("DEL")
            .arg(self.session_key(id))
            .query_async::<()>(&mut self.connection.clone())
            .await
            .map_err(unavailable)
    }

    async fn put_transient(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.put_sealed(&self.transient_key(key), value, ttl).await
    }

    async fn take_transient(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // GETDEL (Redis >= 6.2) makes "single use" hold across replicas.
        self.get_sealed("GETDEL", &self.transient_key(key)).await
    }

    async fn peek_transient(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_sealed("GET", &self.transient_key(key)).await
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
            .query_async(&mut self.connection.clone())
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
            .query_async::<i64>(&mut self.connection.clone())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn reset(&self, counter: &str) -> Result<(), StoreError> {
        redis::cmd("DEL")
            .arg(self.counter_key(counter))
            .query_async::<()>(&mut self.connection.clone())
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
        let key = self.tag_key(tag);
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
            .query_async::<()>(&mut self.connection.clone())
            .await
            .map_err(unavailable)
    }

    async fn end_tagged_sessions(&self, tag: &str) -> Result<usize, StoreError> {
        // One script: the index and its sessions go together, whatever replica asks.
        const SCRIPT: &str = "local members = redis.call('SMEMBERS', KEYS[1]) \
            for _, k in ipairs(members) do redis.call('DEL', k) end \
            redis.call('DEL', KEYS[1]) return #members";
        redis::cmd("EVAL")
            .arg(SCRIPT)
            .arg(1)
            .arg(self.tag_key(tag))
            .query_async::<i64>(&mut self.connection.clone())
            .await
            .map(|n| n.max(0) as usize)
            .map_err(unavailable)
    }

    fn describe(&self) -> String {
        self.location.clone()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.connection.clone())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_location_has_no_credentials() {
        assert_eq!(
            super::redacted_location("redis://user:s3cret@redis.example:6380/2"),
            "redis://redis.example:6380/2"
        );
    }
}
