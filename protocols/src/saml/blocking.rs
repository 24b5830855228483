//! xmlsec (and the decryption and pre-scans around it) off the async workers.
//!
//! Verifying an XML signature is synchronous work in C over attacker-supplied input, before
//! anything is authenticated. It runs on tokio's blocking pool, and the caller waits for it a
//! bounded time: should an input ever make it slow (or never return), the login or logout fails
//! closed with a generic error and the runtime's workers keep serving. A job that does not
//! return keeps its blocking thread; it cannot be cancelled, only abandoned.

use std::time::Duration;

/// How long a response or logout message may take to verify (a few milliseconds normally).
pub(crate) const MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a metadata document (10 MiB at most) may take to read and verify.
pub(crate) const METADATA_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a blocking job gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Stalled {
    #[error("the SAML message could not be verified in time")]
    TimedOut,
    #[error("the SAML message could not be verified")]
    Failed,
}

/// Runs `job` on the blocking pool, waiting `timeout` at most.
pub(crate) async fn run<T, F>(timeout: Duration, job: F) -> Result<T, Stalled>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match tokio::time::timeout(timeout, tokio::task::spawn_blocking(job)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(Stalled::Failed),
        Err(_) => Err(Stalled::TimedOut),
    }
}
