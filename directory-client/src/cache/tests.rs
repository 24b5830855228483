use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{CacheSettings, CachedDirectory};
use crate::{Directory, DirectoryError, DirectoryUser, PivotQuery};

/// A backend that knows one person, counts its calls, answers slowly, and can be made to fail.
#[derive(Default)]
struct Fake {
    calls: AtomicUsize,
    failing: AtomicBool,
}

#[async_trait]
impl Directory for Fake {
    async fn find(&self, pivot: &PivotQuery) -> Result<Option<DirectoryUser>, DirectoryError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        if self.failing.load(Ordering::SeqCst) {
            return Err(DirectoryError::Unavailable("down".into()));
        }
        Ok((pivot.value == "alice@example.org").then(|| DirectoryUser {
            id: "u1".into(),
            ..Default::default()
        }))
    }

    fn describe(&self) -> String {
        "fake".into()
    }
}

fn settings() -> CacheSettings {
    CacheSettings {
        l1_ttl: Duration::from_millis(300),
        l1_capacity: 100,
        negative_ttl: Duration::from_millis(300),
        l2_ttl: Duration::from_secs(1),
        max_stale: Duration::from_millis(1500),
    }
}

fn alice() -> PivotQuery {
    PivotQuery::new("email", "Alice@example.org", false)
}

#[tokio::test]
async fn concurrent_misses_for_one_person_make_one_backend_call() {
    let backend = Arc::new(Fake::default());
    let cache = Arc::new(CachedDirectory::new(backend.clone(), settings(), None).unwrap());
    let lookups: Vec<_> = (0..100)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.find(&alice()).await })
        })
        .collect();
    for lookup in lookups {
        assert_eq!(lookup.await.unwrap().unwrap().unwrap().id, "u1");
    }
    assert_eq!(backend.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unknown_people_are_remembered_for_the_negative_ttl() {
    let backend = Arc::new(Fake::default());
    let cache = CachedDirectory::new(backend.clone(), settings(), None).unwrap();
    let nobody = PivotQuery::new("email", "nobody@example.org", false);
    assert_eq!(cache.find(&nobody).await, Ok(None));
    assert_eq!(cache.find(&nobody).await, Ok(None));
    assert_eq!(backend.calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(cache.find(&nobody).await, Ok(None));
    assert_eq!(backend.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failing_backend_gets_stale_answers_within_the_bound_then_errors() {
    let backend = Arc::new(Fake::default());
    let cache = CachedDirectory::new(backend.clone(), settings(), None).unwrap();
    assert!(cache.find(&alice()).await.unwrap().is_some());
    backend.failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Past the TTL, within max_stale: the last answer stands in.
    assert_eq!(cache.find(&alice()).await.unwrap().unwrap().id, "u1");
    assert_eq!(cache.stats().stale_served.load(Ordering::Relaxed), 1);
    // Past max_stale: an error, never "nobody".
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(matches!(
        cache.find(&alice()).await,
        Err(DirectoryError::Unavailable(_))
    ));
    // A person never seen gets the error at once.
    let carol = PivotQuery::new("email", "carol@example.org", false);
    assert!(cache.find(&carol).await.is_err());
    // Failures are remembered for a second: requests during an outage do not each wait for
    // the backend.
    let calls = backend.calls.load(Ordering::SeqCst);
    assert!(cache.find(&carol).await.is_err());
    assert_eq!(backend.calls.load(Ordering::SeqCst), calls);
    // Back up: answers again once the failure is forgotten.
    backend.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(cache.find(&alice()).await.unwrap().is_some());
}

#[tokio::test]
async fn invalidation_makes_the_next_lookup_read_the_backend() {
    let backend = Arc::new(Fake::default());
    let cache = CachedDirectory::new(backend.clone(), settings(), None).unwrap();
    cache.find(&alice()).await.unwrap();
    cache.find(&alice()).await.unwrap();
    assert_eq!(backend.calls.load(Ordering::SeqCst), 1);
    // Invalidation uses the same normalization as lookups.
    cache
        .invalidate(&PivotQuery::new("email", " ALICE@example.org", false))
        .await
        .unwrap();
    cache.find(&alice()).await.unwrap();
    assert_eq!(backend.calls.load(Ordering::SeqCst), 2);
    cache.invalidate_all().await.unwrap();
    cache.find(&alice()).await.unwrap();
    assert_eq!(backend.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_load_that_spans_an_invalidation_is_not_kept() {
    let backend = Arc::new(Fake::default());
    let cache = Arc::new(CachedDirectory::new(backend.clone(), settings(), None).unwrap());
    // The backend is read (50 ms), and the person is invalidated meanwhile.
    let lookup = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.find(&alice()).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    cache.invalidate(&alice()).await.unwrap();
    assert!(
        lookup.await.unwrap().unwrap().is_some(),
        "the waiting lookup is answered"
    );
    // ...but what it read is not kept: the next lookup reads the backend again.
    cache.find(&alice()).await.unwrap();
    assert_eq!(backend.calls.load(Ordering::SeqCst), 2);
    cache.find(&alice()).await.unwrap();
    assert_eq!(backend.calls.load(Ordering::SeqCst), 2);
}
