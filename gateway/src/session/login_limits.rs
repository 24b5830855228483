//! Password-guessing limits that do not lock out a school.
//!
//! Hundreds of pupils or agents may share one public address (NAT), so the address as a whole
//! is never refused: past `slow_down_address_after` failures its attempts pass one at a time
//! (on each replica) through a delay, which caps a guesser there at about one password a second
//! per replica. Refusals are per account: from one address
//! (`max_failures_per_account_and_address`) and from everywhere (`max_failures_per_account`,
//! so guessing one account from many addresses stops too).
//!
//! What keeps a busy or hostile address from locking out the people behind it is the **known
//! device** (OWASP's "device cookie"): a browser that signed in to an account before carries a
//! cookie naming it, and its attempts on that account skip the address's queue and the
//! account-wide refusal. They are limited on their own instead: too many failures from a known
//! device and it is no longer known. A pupil flooding the school's address, or someone guessing
//! a teacher's password from four addresses, delays and refuses strangers, not the teacher on
//! the computer she uses every day.
//!
//! Every counter is incremented before the password is checked, so parallel guesses cannot
//! all slip under a limit; what was not a failure is taken back afterwards. IPv6 clients are
//! counted by /56, what one subscriber usually gets.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::config::RateLimitConfig;
use crate::session::{SharedStore, StoreError};

/// How long a browser stays a known device after signing in to an account.
pub const DEVICE_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// The counters one attempt was charged to.
pub struct Attempt {
    store: SharedStore,
    pair: String,
    /// Unset for a known device: its attempts are not charged to the account or address.
    account: Option<String>,
    address: Option<String>,
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

/// The queues of busy addresses on this replica (clones share them).
#[derive(Clone)]
pub struct BusyAddresses {
    queues: moka::sync::Cache<String, Arc<Queue>>,
}

#[derive(Default)]
struct Queue {
    turn: Mutex<()>,
    waiting: AtomicUsize,
}

/// A place among a queue's waiters, given back when dropped: also when the request is
/// abandoned while waiting (the client went away), or the queue would look full for ever.
struct Waiting<'q>(&'q Queue);

impl<'q> Waiting<'q> {
    fn join(queue: &'q Queue) -> Option<Waiting<'q>> {
        let waiting = Waiting(queue);
        (queue.waiting.fetch_add(1, Ordering::SeqCst) < MAX_WAITING).then_some(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
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
/// Attempts of one busy address that may wait at once on a replica; more are refused at once.
const MAX_WAITING: usize = 16;

/// The delay for an address with `failures` in the window: none up to `slow_after`, then one
/// second, one more per further `slow_after`, at most `max_delay`.
pub fn delay_for(failures: u64, slow_after: u64, max_delay: Duration) -> Option<Duration> {
    let excess = failures.checked_sub(slow_after).filter(|e| *e > 0)?;
    let steps = 1 + (excess - 1) / slow_after.max(1);
    Some(max_delay.min(Duration::from_secs(steps)))
}

/// What counters count a client as: its IPv4 address, or its IPv6 /56 (one subscriber's usual
/// allocation, which it can rotate through freely).
fn address_bucket(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/56", s[0], s[1], s[2], s[3] & 0xff00)
        }
        None => "unknown".into(),
    }
}

fn device_key(token: &str) -> String {
    format!("device:{token}")
}

/// What a known device's store entry says: this provider's account.
fn device_owner(provider_id: &str, account: &str) -> Vec<u8> {
    format!("{provider_id}\n{account}").into_bytes()
}

/// Whether `token` (the device cookie's value) is a device that signed in to this account.
async fn is_known_device(
    store: &SharedStore,
    token: Option<&str>,
    provider_id: &str,
    account: &str,
) -> Result<bool, StoreError> {
    let Some(token) = token.filter(|t| crate::session::login::is_token(t)) else {
        return Ok(false);
    };
    Ok(store.peek_transient(&device_key(token)).await? == Some(device_owner(provider_id, account)))
}

/// Remembers that this browser signed in to this account, under a fresh token (returned, for
/// its cookie); the token it came with, if any, is forgotten.
pub async fn remember_new_device(
    store: &SharedStore,
    previous: Option<&str>,
    provider_id: &str,
    account: &str,
) -> Result<String, StoreError> {
    if let Some(previous) = previous.filter(|t| crate::session::login::is_token(t)) {
        store.take_transient(&device_key(previous)).await?;
    }
    let token = crate::session::login::random_token();
    store
        .put_transient(
            &device_key(&token),
            &device_owner(provider_id, account),
            DEVICE_TTL,
        )
        .await?;
    Ok(token)
}

/// Charges one attempt on `account` from `ip` (or from the known device `device`) and waits
/// its turn if the address is busy.
#[allow(
    clippy::expect_used,
    reason = "the device and the attempt's account and address are set just above"
)]
pub async fn admit(
    store: &SharedStore,
    busy: &BusyAddresses,
    limits: &RateLimitConfig,
    provider_id: &str,
    account: &str,
    ip: Option<IpAddr>,
    device: Option<&str>,
) -> Result<Admission, StoreError> {
    let thresholds = limits.for_address(ip);
    if is_known_device(store, device, provider_id, account).await? {
        let token = device.expect("checked");
        let attempt = Attempt {
            store: store.clone(),
            pair: format!("fail:dev:{provider_id}:{token}"),
            account: None,
            address: None,
        };
        if store.increment(&attempt.pair, limits.window).await?
            > thresholds.max_failures_per_account_and_address
        {
            // Guessing from a known device: it is known no more.
            store.take_transient(&device_key(token)).await?;
            return Ok(Admission::Refused(
                "rate limited: too many failures from this known device",
            ));
        }
        return Ok(Admission::Check {
            attempt,
            delay: None,
        });
    }

    let bucket = address_bucket(ip);
    let attempt = Attempt {
        store: store.clone(),
        pair: format!("fail:pair:{provider_id}:{bucket}:{account}"),
        account: Some(format!("fail:acct:{provider_id}:{account}")),
        address: Some(format!("fail:ip:{provider_id}:{bucket}")),
    };
    let (account_counter, address_counter) = (
        attempt.account.as_deref().expect("set"),
        attempt.address.as_deref().expect("set"),
    );
    // The pair first: an address over it adds nothing to the account's total, so no single
    // address can lock an account out for everyone.
    if store.increment(&attempt.pair, limits.window).await?
        > thresholds.max_failures_per_account_and_address
    {
        return Ok(Admission::Refused(
            "rate limited: too many failures on this account from this address",
        ));
    }
    if store.increment(account_counter, limits.window).await? > limits.max_failures_per_account {
        store.decrement(&attempt.pair).await?;
        return Ok(Admission::Refused(
            "rate limited: too many failures on this account",
        ));
    }
    let address_failures = store.increment(address_counter, limits.window).await?;
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
    // Busy: this address's attempts go through the delay one at a time. Those that cannot
    // wait (too many waiting, or too long) are refused and stay charged to the address (so
    // flooding keeps it busy for the flooder), not to the account typed: the password was not
    // tried, and that account may be a colleague's.
    let queue = busy.queues.get_with(
        format!("{provider_id}:{}", address_bucket(ip)),
        Default::default,
    );
    let Some(waiting) = Waiting::join(&queue) else {
        attempt.refused_in_queue().await?;
        return Ok(Admission::Refused(
            "rate limited: this address is busy and its queue is full",
        ));
    };
    let turn = tokio::time::timeout(QUEUE_WAIT, queue.turn.lock()).await;
    drop(waiting);
    let Ok(_turn) = turn else {
        attempt.refused_in_queue().await?;
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
    /// The right password: its owner is not guessing. This address's count on the account is
    /// cleared, and this attempt's own charges taken back; failures others made on the account
    /// from elsewhere stay counted (a success does not give a guesser a fresh allowance).
    pub async fn succeeded(&self) -> Result<(), StoreError> {
        self.store.reset(&self.pair).await?;
        self.take_back_shared().await
    }

    /// Nothing was checked (the provider was unavailable): not a failure.
    pub async fn not_checked(&self) -> Result<(), StoreError> {
        self.store.decrement(&self.pair).await?;
        self.take_back_shared().await
    }

    /// Refused in a busy address's queue: the password was not tried, so the account typed is
    /// not charged; the address stays charged.
    async fn refused_in_queue(&self) -> Result<(), StoreError> {
        self.store.decrement(&self.pair).await?;
        if let Some(account) = &self.account {
            self.store.decrement(account).await?;
        }
        Ok(())
    }

    async fn take_back_shared(&self) -> Result<(), StoreError> {
        for counter in [&self.account, &self.address].into_iter().flatten() {
            self.store.decrement(counter).await?;
        }
        Ok(())
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

    #[tokio::test]
    async fn a_waiter_that_goes_away_gives_its_place_back() {
        let queue = Queue::default();
        let places: Vec<_> = (0..MAX_WAITING)
            .map(|_| Waiting::join(&queue).expect("room"))
            .collect();
        assert!(Waiting::join(&queue).is_none(), "full");
        // A waiting request abandoned mid-wait (its future dropped) leaves the queue.
        let held = queue.turn.lock().await;
        let abandoned = async {
            let _place = Waiting::join(&queue);
            let _turn = queue.turn.lock().await;
        };
        drop(places);
        tokio::select! {
            _ = abandoned => unreachable!("the turn is held"),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        drop(held);
        assert_eq!(queue.waiting.load(Ordering::SeqCst), 0);
        assert!(Waiting::join(&queue).is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_56() {
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        assert_eq!(
            address_bucket(ip("2001:db8:1:2ff::1")),
            address_bucket(ip("2001:db8:1:200:abcd::9"))
        );
        assert_ne!(
            address_bucket(ip("2001:db8:1:2ff::1")),
            address_bucket(ip("2001:db8:1:3ff::1"))
        );
        assert_eq!(address_bucket(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(address_bucket(ip("192.0.2.1")), "192.0.2.1");
    }
}
