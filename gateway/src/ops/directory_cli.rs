//! `guichet directory invalidate`: makes every replica read one person (or everyone) from
//! the directory again. With Redis, the command removes the shared entries and announces the
//! invalidation on the channel every replica follows; without Redis (one replica), it calls
//! the admin endpoint of the running gateway.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use guichet_directory_client::cache::RemoteInvalidator;
use guichet_directory_client::PivotQuery;

use crate::config::Config;

/// Whom to forget.
pub enum Target {
    Everyone,
    /// A directory attribute and the value logins give for it (`email`, `alice@example.org`).
    Person {
        attribute: String,
        value: String,
    },
}

/// Why an invalidation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum InvalidateError {
    #[error("directory: not configured in this file")]
    NoDirectory,
    #[error(transparent)]
    SharedCache(#[from] guichet_directory_client::SharedCacheError),
    #[error("cannot reach the gateway's admin listener at {admin}: {reason}")]
    Unreachable { admin: SocketAddr, reason: String },
    #[error("unexpected answer from {0}")]
    UnexpectedAnswer(SocketAddr),
    #[error(
        "the gateway at {0} refused: set directory.admin_token, or run this on the gateway's host"
    )]
    Refused(SocketAddr),
    #[error("the gateway at {admin} answered {status}")]
    Status { admin: SocketAddr, status: u16 },
}

pub async fn invalidate(config: &Config, target: &Target) -> Result<String, InvalidateError> {
    let Some(directory) = &config.directory else {
        return Err(InvalidateError::NoDirectory);
    };
    let who = match target {
        Target::Everyone => "everyone".to_owned(),
        Target::Person { attribute, value } => format!("{attribute} = {value}"),
    };
    match &config.redis {
        Some(redis) => {
            let invalidator = RemoteInvalidator::with_shared(redis.shared_cache()?);
            match target {
                Target::Everyone => invalidator.invalidate(None).await?,
                Target::Person { attribute, value } => {
                    for pivot in PivotQuery::both_cases(attribute, value) {
                        invalidator.invalidate(Some(&pivot)).await?;
                    }
                }
            }
            Ok(format!(
                "invalidated {who} in the shared cache and on every replica"
            ))
        }
        None => {
            let body = match target {
                Target::Everyone => "all=true".to_owned(),
                Target::Person { attribute, value } => {
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("attribute", attribute)
                        .append_pair("value", value)
                        .finish()
                }
            };
            let token = directory
                .admin_token
                .as_ref()
                .map(|t| t.expose().to_owned());
            let admin = reachable(config.file.admin);
            let status = tokio::task::spawn_blocking(move || post(admin, &body, token.as_deref()))
                .await
                .map_err(|e| InvalidateError::Unreachable {
                    admin,
                    reason: e.to_string(),
                })??;
            match status {
                200 => Ok(format!("invalidated {who} on the gateway at {admin}")),
                403 => Err(InvalidateError::Refused(admin)),
                status => Err(InvalidateError::Status { admin, status }),
            }
        }
    }
}

/// The admin address to connect to: a wildcard listen address is reached on loopback.
fn reachable(admin: SocketAddr) -> SocketAddr {
    match admin.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), admin.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), admin.port())
        }
        _ => admin,
    }
}

/// One HTTP/1.1 POST to the admin listener; its status code.
fn post(admin: SocketAddr, body: &str, token: Option<&str>) -> Result<u16, InvalidateError> {
    let unreachable = |e: std::io::Error| InvalidateError::Unreachable {
        admin,
        reason: e.to_string(),
    };
    let mut stream =
        TcpStream::connect_timeout(&admin, Duration::from_secs(5)).map_err(unreachable)?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /directory/invalidate HTTP/1.1\r\nHost: {admin}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{authorization}Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(unreachable)?;
    let mut answer = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .map_err(unreachable)?;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or(InvalidateError::UnexpectedAnswer(admin))
}
