//! Waiting for something to happen by polling it against a deadline, instead of sleeping for a
//! duration that is too long on a fast machine and too short on a loaded one.
//!
//! Two shapes:
//!
//! - [`eventually`] for a check that needs nothing borrowed mutably:
//!   `eventually(Duration::from_secs(10), "ready", || async { ... Some(x) }).await`;
//! - [`Deadline`] for loops that use a `&mut` (a browser):
//!   `let deadline = Deadline::after(Duration::from_secs(10), "signed out");`
//!   `while is_signed_in(&mut browser).await { deadline.tick().await; }`.
//!
//! Sleeps that are the thing under test (waiting for a TTL to pass) are not polls; they stay
//! sleeps, with a margin.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long to wait between two tries.
pub const INTERVAL: Duration = Duration::from_millis(50);

/// A point in time after which waiting is a failure, named for the panic message.
pub struct Deadline {
    end: Instant,
    what: String,
}

impl Deadline {
    /// A deadline `within` from now; `what` says what was awaited.
    pub fn after(within: Duration, what: impl Into<String>) -> Deadline {
        Deadline {
            end: Instant::now() + within,
            what: what.into(),
        }
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.end
    }

    /// Panics once the deadline has passed, else waits [`INTERVAL`] before the next try.
    pub async fn tick(&self) {
        self.tick_every(INTERVAL).await;
    }

    /// Like [`Deadline::tick`] with another interval (for checks that cost something).
    pub async fn tick_every(&self, interval: Duration) {
        assert!(!self.passed(), "timed out waiting for: {}", self.what);
        tokio::time::sleep(interval).await;
    }
}

/// Calls `check` every [`INTERVAL`] until it returns `Some`, and returns that; panics naming
/// `what` if `within` passes first.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Deadline::after(within, what);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        deadline.tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_the_first_success() {
        let mut tries = 0;
        let value = eventually(Duration::from_secs(5), "three tries", || {
            tries += 1;
            let done = tries >= 3;
            async move { done.then_some(42) }
        })
        .await;
        assert_eq!((value, tries), (42, 3));
    }

    #[tokio::test]
    #[should_panic(expected = "timed out waiting for: never")]
    async fn eventually_panics_past_the_deadline() {
        eventually(Duration::from_millis(120), "never", || async { None::<()> }).await;
    }
}
