//! `session.store` with `kind: redis`: where Redis is (a URL, or Sentinel), how to
//! authenticate (ACL user and password) and what to trust for TLS (a private CA), and the keys
//! sealing records at rest (with the previous ones during a key rotation).

use std::path::PathBuf;

use base64::Engine;
use guichet_directory_client::redis_link::{
    sentinel_location, RedisLink, RedisLinkError, RedisSettings, RedisTarget, SentinelSettings,
};
use guichet_directory_client::{SharedCacheError, SharedRedis};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;

use super::{ConfigError, Secret, SecretSource};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisStoreConfig {
    /// `redis://[[user]:password@]host:port/db` or `rediss://` for TLS. Exactly one of `url`
    /// and `sentinel`.
    #[serde(default)]
    pub url: Option<SecretSource>,
    /// A master followed through Sentinel (failovers are followed without restart).
    #[serde(default)]
    pub sentinel: Option<RedisSentinelConfig>,
    /// ACL user name on the master and replicas (overrides the URL's).
    #[serde(default)]
    pub username: Option<SecretSource>,
    /// Password on the master and replicas (overrides the URL's).
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// PEM file of a private CA, trusted besides the system's roots for `rediss://` or
    /// `sentinel.tls`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// 32 bytes, base64: the AES-256-GCM key sealing records at rest. Generate with
    /// `head -c32 /dev/urandom | base64`.
    pub encryption_key: SecretSource,
    /// Keys of before a rotation: records they sealed are still read (and sealed again with
    /// `encryption_key` when next written).
    #[serde(default)]
    pub previous_encryption_keys: Vec<SecretSource>,
    /// Prefix of every key Guichet writes, to share a Redis between deployments.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// The short-lived copy of session records each replica keeps in memory (L1).
    #[serde(default)]
    pub local_cache: LocalCacheConfig,
}

/// `session.store.local_cache`: each replica's in-memory copy of the session records it has
/// just read from Redis, so that a burst of requests of one session costs one Redis read.
/// A session ended or changed on any replica is dropped from every replica's copy at once
/// (Redis pub/sub); `ttl` bounds how long a copy can outlive its record when that message is
/// lost, and how long sessions keep working here while Redis is down.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalCacheConfig {
    /// How long a copy is used before Redis is read again; `0s` turns the copy off.
    #[serde(default = "default_local_cache_ttl", with = "humantime_serde")]
    pub ttl: std::time::Duration,
    /// Copies kept at most (least recently used go first).
    #[serde(default = "default_local_cache_entries")]
    pub max_entries: u64,
}

impl Default for LocalCacheConfig {
    fn default() -> Self {
        Self {
            ttl: default_local_cache_ttl(),
            max_entries: default_local_cache_entries(),
        }
    }
}

/// Under a second, so that a logout is effective on every replica within a second even when
/// its invalidation message is lost.
fn default_local_cache_ttl() -> std::time::Duration {
    std::time::Duration::from_millis(750)
}

fn default_local_cache_entries() -> u64 {
    100_000
}

/// The longest copy allowed: past it, a session ended elsewhere could go on being served here
/// for too long after a lost invalidation message.
const MAX_LOCAL_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSentinelConfig {
    /// The name the sentinels monitor the master under.
    pub master_name: String,
    /// `host:port` of each sentinel (`[v6]:port` for an IPv6 address); at least one.
    pub nodes: Vec<String>,
    /// The sentinels' own `AUTH` password, if they require one.
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// TLS to the sentinels and to the master (checked against the system's roots and
    /// `ca_file`).
    #[serde(default)]
    pub tls: bool,
    /// The database on the master.
    #[serde(default)]
    pub db: u32,
}

fn default_key_prefix() -> String {
    "guichet:".into()
}

/// `session.store` with Redis, validated, secrets read.
#[derive(Clone)]
pub struct ResolvedRedis {
    /// With `url`: the URL as configured (credentials included). With Sentinel:
    /// `redis+sentinel://host:port,.../master_name/db`, for log lines (no credentials).
    pub url: Secret,
    /// How to reach Redis: what [`RedisLink`]s are built from.
    pub connection: RedisSettings,
    pub encryption_key: [u8; 32],
    /// Oldest last or not: each is tried after `encryption_key` in the order given.
    pub previous_encryption_keys: Vec<[u8; 32]>,
    pub key_prefix: String,
    /// Zero: no local copy.
    pub local_cache_ttl: std::time::Duration,
    pub local_cache_entries: u64,
}

impl std::fmt::Debug for ResolvedRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedRedis")
            .field("url", &self.url)
            .field("connection", &self.connection)
            .field("encryption_key", &"<redacted>")
            .field(
                "previous_encryption_keys",
                &self.previous_encryption_keys.len(),
            )
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

impl ResolvedRedis {
    /// What the directory's shared cache needs: its own link and the same keys.
    pub fn shared_cache(&self) -> Result<SharedRedis, SharedCacheError> {
        Ok(SharedRedis {
            link: RedisLink::new(&self.connection)
                .map_err(|e| SharedCacheError::Redis(e.to_string()))?,
            encryption_key: self.encryption_key,
            previous_encryption_keys: self.previous_encryption_keys.clone(),
            key_prefix: self.key_prefix.clone(),
        })
    }
}

const AT: &str = "session.store";

fn at(field: &str) -> String {
    format!("{AT}.{field}")
}

pub(super) fn resolve_redis(redis: &RedisStoreConfig) -> Result<ResolvedRedis, ConfigError> {
    let secret = |source: &SecretSource, field: &str| {
        source.resolve().map_err(|e| ConfigError::new(at(field), e))
    };
    let username = redis
        .username
        .as_ref()
        .map(|s| secret(s, "username"))
        .transpose()?;
    let password = redis
        .password
        .as_ref()
        .map(|s| secret(s, "password"))
        .transpose()?;
    let (url, target, tls, url_has_password) = match (&redis.url, &redis.sentinel) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                AT,
                "give either url or sentinel, not both",
            ))
        }
        (None, None) => {
            return Err(ConfigError::new(
                at("url"),
                "required (a redis:// or rediss:// URL), unless sentinel is given",
            ))
        }
        (Some(url), None) => {
            let url = secret(url, "url")?;
            let parsed = url::Url::parse(url.expose())
                .map_err(|e| ConfigError::new(at("url"), format!("invalid URL: {e}")))?;
            if !matches!(parsed.scheme(), "redis" | "rediss") {
                return Err(ConfigError::new(
                    at("url"),
                    "scheme must be redis or rediss",
                ));
            }
            if parsed.fragment().is_some_and(|f| f.contains("insecure")) {
                return Err(ConfigError::new(
                    at("url"),
                    "#insecure is not supported: give the server's CA in ca_file instead",
                ));
            }
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(ConfigError::new(at("url"), "a host is required"));
            }
            let tls = parsed.scheme() == "rediss";
            let has_password = parsed.password().is_some();
            let target = RedisTarget::Url(url.expose().to_owned());
            (url, target, tls, has_password)
        }
        (None, Some(sentinel)) => {
            let settings = resolve_sentinel(sentinel)?;
            let location = Secret::new(sentinel_location(&settings));
            let tls = settings.tls;
            (location, RedisTarget::Sentinel(settings), tls, false)
        }
    };
    if username.is_some() && password.is_none() && !url_has_password {
        return Err(ConfigError::new(
            at("username"),
            "a user name needs a password: set session.store.password",
        ));
    }
    let ca_pem = redis
        .ca_file
        .as_ref()
        .map(|path| read_ca(path))
        .transpose()?;
    if ca_pem.is_some() && !tls {
        tracing::warn!(
            "session.store.ca_file is unused: the connection to Redis is not TLS (use a rediss:// URL or sentinel.tls: true)"
        );
    }
    let encryption_key = decode_key(&redis.encryption_key, "encryption_key")?;
    let mut previous_encryption_keys: Vec<[u8; 32]> = Vec::new();
    for (i, key) in redis.previous_encryption_keys.iter().enumerate() {
        let key = decode_key(key, &format!("previous_encryption_keys[{i}]"))?;
        // The same key twice (a rotation not started yet) changes nothing.
        if key != encryption_key && !previous_encryption_keys.contains(&key) {
            previous_encryption_keys.push(key);
        }
    }
    let connection = RedisSettings {
        target,
        username: username.map(|s| s.expose().to_owned()),
        password: password.map(|s| s.expose().to_owned()),
        ca_pem,
    };
    // What only the client can check (the URL as it reads it, the CA's certificates).
    RedisLink::check(&connection).map_err(|e| {
        let field = match e {
            RedisLinkError::Url(_) => "url",
            _ if redis.ca_file.is_some() => "ca_file",
            _ if redis.sentinel.is_some() => "sentinel",
            _ => "url",
        };
        ConfigError::new(at(field), e)
    })?;
    if redis.local_cache.ttl > MAX_LOCAL_CACHE_TTL {
        return Err(ConfigError::new(
            at("local_cache.ttl"),
            "at most 10s: a session ended on another replica is served here until then when the invalidation message is lost (the default, 750ms, keeps that under a second)",
        ));
    }
    if redis.local_cache.max_entries == 0 {
        return Err(ConfigError::new(
            at("local_cache.max_entries"),
            "must be at least 1 (set local_cache.ttl: 0s to turn the copy off)",
        ));
    }
    Ok(ResolvedRedis {
        url,
        connection,
        encryption_key,
        previous_encryption_keys,
        key_prefix: redis.key_prefix.clone(),
        local_cache_ttl: redis.local_cache.ttl,
        local_cache_entries: redis.local_cache.max_entries,
    })
}

fn resolve_sentinel(sentinel: &RedisSentinelConfig) -> Result<SentinelSettings, ConfigError> {
    let master_name = sentinel.master_name.trim();
    if master_name.is_empty() || master_name.chars().any(char::is_whitespace) {
        return Err(ConfigError::new(
            at("sentinel.master_name"),
            "the name the sentinels monitor the master under (no spaces)",
        ));
    }
    if sentinel.nodes.is_empty() {
        return Err(ConfigError::new(
            at("sentinel.nodes"),
            "list at least one sentinel as host:port",
        ));
    }
    let nodes = sentinel
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            parse_node(node)
                .map_err(|message| ConfigError::new(at(&format!("sentinel.nodes[{i}]")), message))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let password = sentinel
        .password
        .as_ref()
        .map(|s| {
            s.resolve()
                .map_err(|e| ConfigError::new(at("sentinel.password"), e))
        })
        .transpose()?;
    Ok(SentinelSettings {
        master_name: master_name.to_owned(),
        nodes,
        password: password.map(|s| s.expose().to_owned()),
        tls: sentinel.tls,
        db: i64::from(sentinel.db),
    })
}

/// `host:port` or `[v6]:port`.
fn parse_node(node: &str) -> Result<(String, u16), String> {
    let expected = || format!("{node:?}: expected host:port (e.g. sentinel-0.redis:26379)");
    let (host, port) = node.trim().rsplit_once(':').ok_or_else(expected)?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .filter(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
            .ok_or_else(expected)?,
        None if host.contains(':') => {
            return Err(format!(
                "{node:?}: write an IPv6 address in brackets ([::1]:26379)"
            ))
        }
        None => host,
    };
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '#'))
    {
        return Err(expected());
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{node:?}: the port must be a number from 1 to 65535"))?;
    Ok((host.to_owned(), port))
}

fn read_ca(path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    let fail = |message: String| ConfigError::new(at("ca_file"), message);
    let pem =
        std::fs::read(path).map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let der = cert.map_err(|e| fail(format!("{}: {e}", path.display())))?;
        x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| fail(format!("{}: invalid certificate: {e}", path.display())))?;
        count += 1;
    }
    if count == 0 {
        return Err(fail(format!(
            "{}: no PEM certificate found",
            path.display()
        )));
    }
    Ok(pem)
}

fn decode_key(source: &SecretSource, field: &str) -> Result<[u8; 32], ConfigError> {
    let key = source
        .resolve()
        .map_err(|e| ConfigError::new(at(field), e))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key.expose().trim())
        .map_err(|_| ConfigError::new(at(field), "not valid base64"))?;
    bytes.try_into().map_err(|_| {
        ConfigError::new(
            at(field),
            "must be 32 bytes (base64 of `head -c32 /dev/urandom`)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::parse_node;

    #[test]
    fn sentinel_nodes_are_host_and_port() {
        assert_eq!(parse_node("10.0.0.1:26379"), Ok(("10.0.0.1".into(), 26379)));
        assert_eq!(
            parse_node("sentinel-1.redis:26379"),
            Ok(("sentinel-1.redis".into(), 26379))
        );
        assert_eq!(parse_node("[::1]:26380"), Ok(("::1".into(), 26380)));
        for bad in [
            "sentinel",
            "::1:26379",
            "host:0",
            "host:x",
            ":26379",
            "a b:1",
            "[zz]:1",
        ] {
            assert!(parse_node(bad).is_err(), "{bad}");
        }
    }
}
