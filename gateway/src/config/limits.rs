//! `limits:`: how much one process gives clients it does not trust yet — connections, time to
//! send a request, request sizes — and how many logins it finishes at once. See
//! docs/configuration.md, "Resource limits", and docs/deployment.md.
//!
//! Every value is checked where it is read, so a bad one is a configuration error naming its
//! field (`limits.max_connections: must be between 1 and 1000000`); [`LimitsConfig::validate`]
//! checks a configuration built in code the same way before the server starts.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::ConfigError;

/// Fixed at start (a reload does not change them).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Client connections this process holds open at once, all listeners together. Beyond
    /// it, a new connection is answered 503 and closed at once; those already open are not
    /// affected. Default 2,048: an idle connection costs about 14 KiB and one with a request
    /// in flight about 90 KiB (docs/resilience.md), so that even 2,048 requests in flight fit
    /// the 256 MiB replicas of docs/deployment.md. Each connection needs a file descriptor,
    /// and each proxied request one more for its upstream: keep the process's `nofile` limit
    /// above twice this.
    #[serde(
        default = "default_max_connections",
        deserialize_with = "max_connections"
    )]
    pub max_connections: usize,
    /// Time a client has to send a request's line and headers: from connecting for the first
    /// request of a connection, from its first byte for the next ones. Beyond it, 408 and the
    /// connection is closed (a "slowloris" client sends headers a byte at a time). Default 10 s.
    #[serde(
        default = "default_header_timeout",
        deserialize_with = "header_timeout"
    )]
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed. Default 75 s: above
    /// the 60 s idle timeout of common load balancers, which must be the side that closes
    /// first (otherwise a request can race the close and fail).
    #[serde(default = "default_idle_timeout", deserialize_with = "idle_timeout")]
    pub idle_timeout: Duration,
    /// Time allowed for a request body, extended by one second for every `body_min_rate`
    /// bytes received: a body arriving on average slower than `body_min_rate` is cut off
    /// after at least this long; a large upload at a normal speed never is. Default 30 s.
    #[serde(default = "default_body_timeout", deserialize_with = "body_timeout")]
    pub body_timeout: Duration,
    /// Bytes per second (see `body_timeout`). Default 500.
    #[serde(default = "default_body_min_rate", deserialize_with = "body_min_rate")]
    pub body_min_rate: u64,
    /// Longest time one write to a client may wait because the client does not read its
    /// answer. Default 60 s.
    #[serde(default = "default_send_timeout", deserialize_with = "send_timeout")]
    pub send_timeout: Duration,
    /// Largest request line and headers, in bytes as sent. Beyond, 431 (414 when the request
    /// line alone is too long). Default 32 KiB, the gateway's own check of header sizes.
    #[serde(
        default = "default_max_header_bytes",
        deserialize_with = "max_header_bytes"
    )]
    pub max_header_bytes: usize,
    /// Most header fields in one request. Beyond, 431. Default 100. At most 256, pingora's
    /// own ceiling.
    #[serde(default = "default_max_headers", deserialize_with = "max_headers")]
    pub max_headers: usize,
    /// Logins this process finishes at once: provider callbacks (OpenID Connect code
    /// exchanges, CAS ticket validations, SAML responses), which wait on the provider. A slow
    /// provider then holds at most this many; the next ones wait up to `login_queue_timeout`
    /// for a free slot, then get a 503 page. Default 256.
    #[serde(
        default = "default_max_concurrent_logins",
        deserialize_with = "max_concurrent_logins"
    )]
    pub max_concurrent_logins: usize,
    /// How long a login waits for a free slot (see `max_concurrent_logins`); 0 s refuses at
    /// once. Default 2 s.
    #[serde(
        default = "default_login_queue_timeout",
        deserialize_with = "login_queue_timeout"
    )]
    pub login_queue_timeout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            header_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            body_timeout: default_body_timeout(),
            body_min_rate: default_body_min_rate(),
            send_timeout: default_send_timeout(),
            max_header_bytes: default_max_header_bytes(),
            max_headers: default_max_headers(),
            max_concurrent_logins: default_max_concurrent_logins(),
            login_queue_timeout: default_login_queue_timeout(),
        }
    }
}

impl LimitsConfig {
    /// The same checks as reading the file, for a configuration built in code: the first bad
    /// field, named `limits.<field>`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let Self {
            max_connections,
            header_timeout,
            idle_timeout,
            body_timeout,
            body_min_rate,
            send_timeout,
            max_header_bytes,
            max_headers,
            max_concurrent_logins,
            login_queue_timeout,
        } = self;
        let checks = [
            (
                "max_connections",
                MAX_CONNECTIONS.check(*max_connections as u64),
            ),
            ("header_timeout", HEADER_TIMEOUT.check(*header_timeout)),
            ("idle_timeout", IDLE_TIMEOUT.check(*idle_timeout)),
            ("body_timeout", BODY_TIMEOUT.check(*body_timeout)),
            ("body_min_rate", BODY_MIN_RATE.check(*body_min_rate)),
            ("send_timeout", SEND_TIMEOUT.check(*send_timeout)),
            (
                "max_header_bytes",
                MAX_HEADER_BYTES.check(*max_header_bytes as u64),
            ),
            ("max_headers", MAX_HEADERS.check(*max_headers as u64)),
            (
                "max_concurrent_logins",
                MAX_CONCURRENT_LOGINS.check(*max_concurrent_logins as u64),
            ),
            (
                "login_queue_timeout",
                LOGIN_QUEUE_TIMEOUT.check(*login_queue_timeout),
            ),
        ];
        for (field, check) in checks {
            check.map_err(|message| ConfigError::new(format!("limits.{field}"), message))?;
        }
        Ok(())
    }
}

/// An inclusive range a setting must be in.
struct Bounds<T> {
    min: T,
    max: T,
}

impl Bounds<u64> {
    fn check(&self, value: u64) -> Result<(), String> {
        if (self.min..=self.max).contains(&value) {
            Ok(())
        } else {
            Err(format!("must be between {} and {}", self.min, self.max))
        }
    }
}

impl Bounds<Duration> {
    fn check(&self, value: Duration) -> Result<(), String> {
        if (self.min..=self.max).contains(&value) {
            Ok(())
        } else {
            Err(format!(
                "must be between {} and {}",
                humantime::format_duration(self.min),
                humantime::format_duration(self.max)
            ))
        }
    }
}

const MAX_CONNECTIONS: Bounds<u64> = Bounds {
    min: 1,
    max: 1_000_000,
};
// Timeouts under 100 ms would cut off healthy clients on any real network; the ceilings keep
// "practically forever" out, which is what these settings exist to prevent.
const HEADER_TIMEOUT: Bounds<Duration> = Bounds {
    min: Duration::from_millis(100),
    max: Duration::from_secs(600),
};
const IDLE_TIMEOUT: Bounds<Duration> = Bounds {
    min: Duration::from_millis(100),
    max: Duration::from_secs(3600),
};
const BODY_TIMEOUT: Bounds<Duration> = Bounds {
    min: Duration::from_millis(100),
    max: Duration::from_secs(3600),
};
const BODY_MIN_RATE: Bounds<u64> = Bounds {
    min: 1,
    max: 1_000_000_000,
};
const SEND_TIMEOUT: Bounds<Duration> = Bounds {
    min: Duration::from_millis(100),
    max: Duration::from_secs(3600),
};
// pingora refuses (400) a request line and headers above 1 MiB and more than 256 fields
// whatever is set here.
const MAX_HEADER_BYTES: Bounds<u64> = Bounds {
    min: 1024,
    max: 1024 * 1024 - 1,
};
const MAX_HEADERS: Bounds<u64> = Bounds { min: 1, max: 256 };
const MAX_CONCURRENT_LOGINS: Bounds<u64> = Bounds {
    min: 1,
    max: 1_000_000,
};
const LOGIN_QUEUE_TIMEOUT: Bounds<Duration> = Bounds {
    min: Duration::ZERO,
    max: Duration::from_secs(60),
};

fn default_max_connections() -> usize {
    2048
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(75)
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_body_min_rate() -> u64 {
    500
}
fn default_send_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_header_bytes() -> usize {
    32 * 1024
}
fn default_max_headers() -> usize {
    100
}
fn default_max_concurrent_logins() -> usize {
    256
}
fn default_login_queue_timeout() -> Duration {
    Duration::from_secs(2)
}

/// A count read from the file and checked against `bounds`.
fn count<'de, D: Deserializer<'de>>(
    deserializer: D,
    bounds: &Bounds<u64>,
) -> Result<u64, D::Error> {
    let value = u64::deserialize(deserializer)?;
    bounds.check(value).map_err(serde::de::Error::custom)?;
    Ok(value)
}

/// A duration (`10s`, `500ms`, `2m`) read from the file and checked against `bounds`.
fn duration<'de, D: Deserializer<'de>>(
    deserializer: D,
    bounds: &Bounds<Duration>,
) -> Result<Duration, D::Error> {
    let value: Duration = humantime_serde::deserialize(deserializer)?;
    bounds.check(value).map_err(serde::de::Error::custom)?;
    Ok(value)
}

fn to_usize<E: serde::de::Error>(value: u64) -> Result<usize, E> {
    usize::try_from(value).map_err(E::custom)
}

fn max_connections<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    to_usize(count(d, &MAX_CONNECTIONS)?)
}
fn header_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    duration(d, &HEADER_TIMEOUT)
}
fn idle_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    duration(d, &IDLE_TIMEOUT)
}
fn body_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    duration(d, &BODY_TIMEOUT)
}
fn body_min_rate<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    count(d, &BODY_MIN_RATE)
}
fn send_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    duration(d, &SEND_TIMEOUT)
}
fn max_header_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    to_usize(count(d, &MAX_HEADER_BYTES)?)
}
fn max_headers<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    to_usize(count(d, &MAX_HEADERS)?)
}
fn max_concurrent_logins<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    to_usize(count(d, &MAX_CONCURRENT_LOGINS)?)
}
fn login_queue_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    duration(d, &LOGIN_QUEUE_TIMEOUT)
}

#[cfg(test)]
mod tests;
