//! A bounded number of slots for work that waits on something slow, such as a login waiting
//! on its identity provider's token endpoint: at most `capacity` at once in this process, the
//! next ones waiting a little for a free slot, then refused. A provider that hangs then holds
//! `capacity` tasks, not as many as users keep arriving.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Cheap to clone: clones share the slots (a reloaded gateway keeps the running logins').
#[derive(Clone, Debug)]
pub struct Slots {
    permits: Arc<Semaphore>,
    capacity: usize,
    wait: Duration,
}

/// A slot held until dropped.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code, reason = "held for its drop")] OwnedSemaphorePermit);

impl Slots {
    /// `capacity` slots (at least one); a taker waits up to `wait` for one.
    pub fn new(capacity: usize, wait: Duration) -> Self {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            wait,
        }
    }

    /// A free slot, waiting up to the configured time; `None` when all stayed busy.
    pub async fn take(&self) -> Option<Slot> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Some(Slot(permit));
        }
        if self.wait.is_zero() {
            return None;
        }
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Some(Slot(permit)),
            // Elapsed, or closed (never: nothing closes it).
            _ => None,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slots taken now.
    pub fn in_use(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_most_capacity_are_taken_and_the_next_waits_then_is_refused() {
        let slots = Slots::new(2, Duration::from_millis(100));
        let first = slots.take().await.unwrap();
        let _second = slots.take().await.unwrap();
        assert_eq!(slots.in_use(), 2);
        let started = std::time::Instant::now();
        assert!(slots.take().await.is_none());
        assert!(started.elapsed() >= Duration::from_millis(100));
        // A slot given back goes to a waiting taker.
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await.is_some() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert!(waiting.await.unwrap());
    }

    #[tokio::test]
    async fn without_a_wait_a_busy_taker_is_refused_at_once() {
        let slots = Slots::new(1, Duration::ZERO);
        let _held = slots.take().await.unwrap();
        let started = std::time::Instant::now();
        assert!(slots.take().await.is_none());
        assert!(started.elapsed() < Duration::from_millis(50));
        assert_eq!(slots.capacity(), 1);
    }
}
