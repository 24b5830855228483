//! L1: each replica's short-lived copy of the session records it has just read from Redis.
//!
//! Without it, every request makes a Redis round trip for its session; with it, a burst of
//! requests of one session (a page and its assets) costs one. The copy is found by session id
//! (so that a hit costs no hashing), and dropped by the record's Redis name (a keyed hash of the
//! id), which is all that announcements carry: a second map leads from names to ids.
//!
//! Staleness is bounded three ways:
//! - a session ended or changed on any replica is announced on a Redis channel, and every
//!   replica drops its copy when it hears it (milliseconds);
//! - a copy lives at most `ttl` (750 ms by default), which bounds staleness when a message is
//!   lost, and how long sessions go on working here while Redis is down;
//! - when the subscription is (re)opened, the whole copy is dropped: messages may have been
//!   missed while it was closed.
//!
//! A read from Redis that raced with an invalidation is not kept (see [`LocalCopy::keep`]),
//! so a message heard during the read cannot be undone by the read's older answer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{SessionId, SessionRecord};

/// What the copy counts, for `guichet_session_cache_total`.
#[derive(Default)]
pub struct LocalCopyStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Copies dropped because another replica announced the session ended or changed.
    pub remote_invalidations: AtomicU64,
    /// Times the whole copy was dropped (subscription reopened).
    pub flushes: AtomicU64,
}

pub struct LocalCopy {
    ttl: Duration,
    /// `None` when turned off (`ttl: 0s`).
    entries: Option<Entries>,
    /// Bumped by every invalidation made or heard, one counter per stripe of names (so that
    /// frequent logouts do not keep every read from being kept): a read from Redis that saw
    /// its stripe change is not kept.
    invalidations: [AtomicU64; STRIPES],
    /// Bumped when the whole copy is dropped.
    epoch: AtomicU64,
    /// Whether the invalidation channel is subscribed right now.
    listening: AtomicBool,
    pub stats: LocalCopyStats,
}

/// The copies by session id, and the ids by Redis name (both live `ttl`).
struct Entries {
    by_id: moka::sync::Cache<String, Arc<SessionRecord>>,
    ids_by_name: moka::sync::Cache<String, String>,
}

impl Entries {
    fn insert(&self, id: &SessionId, name: &str, record: Arc<SessionRecord>) {
        let id = id.as_cookie_value();
        self.ids_by_name.insert(name.to_owned(), id.to_owned());
        self.by_id.insert(id.to_owned(), record);
    }
}

const STRIPES: usize = 64;

fn stripe(name: &str) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault};
    // Names are keyed hashes already: any cheap, stable mix of their bytes spreads them.
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(name)
        as usize
        % STRIPES
}

/// Where a read from Redis started, for [`LocalCopy::keep`].
#[derive(Clone, Copy)]
pub struct ReadTicket {
    stripe: u64,
    epoch: u64,
}

impl LocalCopy {
    pub fn new(ttl: Duration, max_entries: u64) -> LocalCopy {
        LocalCopy {
            ttl,
            entries: (!ttl.is_zero()).then(|| Entries {
                by_id: moka::sync::Cache::builder()
                    .max_capacity(max_entries)
                    .time_to_live(ttl)
                    .build(),
                ids_by_name: moka::sync::Cache::builder()
                    .max_capacity(max_entries)
                    .time_to_live(ttl)
                    .build(),
            }),
            invalidations: std::array::from_fn(|_| AtomicU64::new(0)),
            epoch: AtomicU64::new(0),
            listening: AtomicBool::new(false),
            stats: LocalCopyStats::default(),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn is_enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The copy of session `id`'s record, if one is fresh. Counts a hit or a miss.
    pub fn get(&self, id: &SessionId) -> Option<Arc<SessionRecord>> {
        let entries = self.entries.as_ref()?;
        let found = entries.by_id.get(id.as_cookie_value());
        let counter = if found.is_some() {
            &self.stats.hits
        } else {
            &self.stats.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Taken before reading the record named `name` from Redis.
    pub fn ticket(&self, name: &str) -> ReadTicket {
        ReadTicket {
            stripe: self.invalidations[stripe(name)].load(Ordering::Acquire),
            epoch: self.epoch.load(Ordering::Acquire),
        }
    }

    /// Keeps what a read from Redis returned, unless an invalidation of a session of the same
    /// stripe (or of all) was made or heard since `ticket`: the answer may then predate it.
    /// Invalidations are rare next to reads, so this seldom costs a second read.
    pub fn keep(
        &self,
        ticket: ReadTicket,
        id: &SessionId,
        name: &str,
        record: &Arc<SessionRecord>,
    ) {
        let Some(entries) = &self.entries else { return };
        if self.invalidations[stripe(name)].load(Ordering::Acquire) == ticket.stripe
            && self.epoch.load(Ordering::Acquire) == ticket.epoch
        {
            entries.insert(id, name, record.clone());
        }
    }

    /// Stores a record this replica has just written (a login, an activity refresh) under
    /// its current Redis `name`.
    pub fn put(&self, id: &SessionId, name: &str, record: Arc<SessionRecord>) {
        if let Some(entries) = &self.entries {
            entries.insert(id, name, record);
        }
    }

    /// Drops the copies of the records named `names` (ended or changed).
    pub fn forget<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        for name in names {
            self.invalidations[stripe(name)].fetch_add(1, Ordering::AcqRel);
            if let Some(entries) = &self.entries {
                if let Some(id) = entries.ids_by_name.remove(name) {
                    entries.by_id.invalidate(&id);
                }
            }
        }
    }

    /// Another replica said the record named `name` ended or changed.
    pub fn forget_remote(&self, name: &str) {
        self.stats
            .remote_invalidations
            .fetch_add(1, Ordering::Relaxed);
        self.forget([name]);
    }

    /// Drops every copy (the subscription was reopened: messages may have been missed).
    pub fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        if let Some(entries) = &self.entries {
            entries.by_id.invalidate_all();
            entries.ids_by_name.invalidate_all();
        }
    }

    pub fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::Release);
    }

    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::record::tests::record;

    fn id(n: u8) -> SessionId {
        // 42 free characters, then one whose unused low bits are zero.
        SessionId::parse(&format!("{n:0>42}A")).unwrap()
    }

    #[test]
    fn a_read_that_raced_with_an_invalidation_is_not_kept() {
        let copy = LocalCopy::new(Duration::from_secs(60), 100);
        let ticket = copy.ticket("s1");
        // Another replica ends "s1" while this one reads it from Redis.
        copy.forget_remote("s1");
        copy.keep(ticket, &id(1), "s1", &Arc::new(record(0)));
        assert!(copy.get(&id(1)).is_none());
        // Or every copy is dropped meanwhile.
        let ticket = copy.ticket("s1");
        copy.forget_all();
        copy.keep(ticket, &id(1), "s1", &Arc::new(record(0)));
        assert!(copy.get(&id(1)).is_none());
        // A read with no invalidation meanwhile is kept.
        let ticket = copy.ticket("s1");
        copy.keep(ticket, &id(1), "s1", &Arc::new(record(0)));
        assert!(copy.get(&id(1)).is_some());
    }

    #[test]
    fn an_ended_session_is_dropped_by_name_and_the_rest_stays() {
        let copy = LocalCopy::new(Duration::from_secs(60), 100);
        copy.put(&id(1), "s1", Arc::new(record(0)));
        copy.put(&id(2), "s2", Arc::new(record(0)));
        copy.forget(["s1"]);
        assert!(copy.get(&id(1)).is_none());
        assert!(copy.get(&id(2)).is_some());
        copy.forget_remote("s2");
        assert!(copy.get(&id(2)).is_none());
        copy.put(&id(3), "s3", Arc::new(record(0)));
        copy.forget_all();
        assert!(copy.get(&id(3)).is_none());
        assert_eq!(copy.stats.hits.load(Ordering::Relaxed), 1);
        assert_eq!(copy.stats.misses.load(Ordering::Relaxed), 3);
        assert_eq!(copy.stats.remote_invalidations.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_copy_ages_out_after_its_ttl() {
        let copy = LocalCopy::new(Duration::from_millis(50), 100);
        copy.put(&id(1), "s1", Arc::new(record(0)));
        assert!(copy.get(&id(1)).is_some());
        std::thread::sleep(Duration::from_millis(120));
        assert!(copy.get(&id(1)).is_none());
    }

    #[test]
    fn a_zero_ttl_turns_the_copy_off() {
        let copy = LocalCopy::new(Duration::ZERO, 100);
        copy.put(&id(1), "s1", Arc::new(record(0)));
        assert!(!copy.is_enabled());
        assert!(copy.get(&id(1)).is_none());
    }
}
