//! Password-guessing limits that do not lock out a school.
//!
//! Hundreds of pupils or agents may share one public address (NAT), so the address as a whole
//! is never refused: past `slow_down_address_after` failures its attempts pass one at a time
//! (on each replica) through a delay, which caps a guesser there at about one password a second
//! per replica while a colleague with the right password still gets in. Refusals are per
//! account: from one address (`max_failures_per_account_and_address`) and from everywhere
//! (`max_failures_per_account`, so guessing one account from many addresses stops too).
//!
//! Every counter is incremented before the password is checked, so parallel guesses cannot
//! all slip under a limit; what was not a failure is taken back afterwards.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::client_bucket;
use crate::config::RateLimitConfig;
use crate::session::{SharedStore, StoreError};

/// The counters one attempt was charged to.
pub struct Attempt {
    store: SharedStore,
    pair: String,
    account: String,
    address: String,
}

/// What the limits say about an attempt, before the password is checked.
pub enum Admission {
    /// Check the password (after `delay`, already waited, when the address is busy), then
    /// report the outcome to the attempt.
    Check {
        attempt: Attempt,
        delay: Option<Duration>,
    },
    /// Refused without checking; the reason is for the audit log.
    Refused(&'static str),
}

/// The per-address queues of busy addresses on this replica.
pub struct BusyAddresses {
    queues: moka::sync::Cache<String, Arc<Mutex<()>>>,
}

impl Default for BusyAddresses {
    fn default() -> Self {
        Self {
            // Bounded: an address flood cannot grow it without limit; a queue dropped while
            // in use is just recreated (the limits stay in the store).
            queues: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(60))
                .build(),
        }
    }
}

/// How long a busy address's attempt waits for its turn before getting "try again".
const QUEUE_WAIT: Duration = Duration::from_secs(15);

/// The delay for an address with `failures` in the window: none up to `slow_after`, then one
/// second, one more per further `slow_after`, at most `max_delay`.
pub fn delay_for(failures: u64, slow_after: u64, max_delay: Duration) -> Option<Duration> {
    let excess = failures.checked_sub(slow_after).filter(|e| *e > 0)?;
    let steps = 1 + (excess - 1) / slow_after.max(1);
    Some(max_delay.min(Duration::from_secs(steps)))
}

/// Charges one attempt on `account` from `ip` and waits its turn if the address is busy.
pub async fn admit(
    store: &SharedStore,
    busy: &BusyAddresses,
    limits: &RateLimitConfig,
    provider_id: &str,
    account: &str,
    ip: Option<IpAddr>,
) -> Result<Admission, StoreError> {
    let bucket = client_bucket(ip);
    let thresholds = limits.for_address(ip);
    let attempt = Attempt {
        store: store.clone(),
        pair: format!("fail:pair:{provider_id}:{bucket}:{account}"),
        account: format!("fail:acct:{provider_id}:{account}"),
        address: format!("fail:ip:{bucket}"),
    };
    // The pair first: an address over it adds nothing to the account's total, so no single
    // address can lock an account out for everyone.
    if store.increment(&attempt.pair, limits.window).await?
        > thresholds.max_failures_per_account_and_address
    {
        return Ok(Admission::Refused(
            "rate limited: too many failures on this account from this address",
        ));
    }
    if store.increment(&attempt.account, limits.window).await? > limits.max_failures_per_account {
        store.decrement(&attempt.pair).await?;
        return Ok(Admission::Refused(
            "rate limited: too many failures on this account",
        ));
    }
    let address_failures = store.increment(&attempt.address, limits.window).await?;
    let Some(delay) = delay_for(
        address_failures,
        thresholds.slow_down_address_after,
        limits.max_delay,
    ) else {
        return Ok(Admission::Check {
            attempt,
            delay: None,
        });
    };
    // Busy: this address's attempts go through the delay one at a time.
    let queue = busy.queues.get_with(bucket, || Arc::new(Mutex::new(())));
    let Ok(_turn) = tokio::time::timeout(QUEUE_WAIT, queue.lock()).await else {
        attempt.not_checked().await?;
        return Ok(Admission::Refused(
            "rate limited: this address is busy, its attempts are queued",
        ));
    };
    tokio::time::sleep(delay).await;
    Ok(Admission::Check {
        attempt,
        delay: Some(delay),
    })
}

impl Attempt {
    /// The right password: its owner is not guessing. The account's counts are cleared and
    /// this attempt's charge on the address taken back.
    pub async fn succeeded(&self) -> Result<(), StoreError> {
        self.store.reset(&self.pair).await?;
        self.store.reset(&self.account).await?;
        self.store.decrement(&self.address).await
    }

    /// Nothing was checked (the provider was unavailable): not a failure.
    pub async fn not_checked(&self) -> Result<(), StoreError> {
        self.store.decrement(&self.pair).await?;
        self.store.decrement(&self.account).await?;
        self.store.decrement(&self.address).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_slowed_more_as_failures_grow_never_beyond_the_cap() {
        let cap = Duration::from_secs(5);
        assert_eq!(delay_for(0, 200, cap), None);
        assert_eq!(delay_for(200, 200, cap), None);
        assert_eq!(delay_for(201, 200, cap), Some(Duration::from_secs(1)));
        assert_eq!(delay_for(400, 200, cap), Some(Duration::from_secs(1)));
        assert_eq!(delay_for(401, 200, cap), Some(Duration::from_secs(2)));
        assert_eq!(delay_for(100_000, 200, cap), Some(cap));
        assert_eq!(delay_for(2, 1, cap), Some(Duration::from_secs(1)));
    }
}
