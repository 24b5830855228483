//! An L1-hit directory lookup: what every request with a directory pays (keyed hash of the
//! pivot + in-process cache read).

// A benchmark is test code: it may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion};
use guichet_directory_client::{
    CacheSettings, CachedDirectory, Directory, DirectoryError, DirectoryUser, PivotQuery,
};

struct OnePerson;

#[async_trait]
impl Directory for OnePerson {
    async fn find(&self, _pivot: &PivotQuery) -> Result<Option<DirectoryUser>, DirectoryError> {
        Ok(Some(DirectoryUser {
            id: "u1".into(),
            roles: [("bip".to_string(), vec!["utilisateur".to_string()])].into(),
            ..Default::default()
        }))
    }

    fn describe(&self) -> String {
        "one person".into()
    }
}

fn l1_hit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let cache =
        CachedDirectory::new(Arc::new(OnePerson), CacheSettings::default(), None).expect("a cache");
    let pivot = PivotQuery::new("email", "alice@example.org", false);
    runtime.block_on(cache.find(&pivot)).expect("found");
    c.bench_function("directory lookup, L1 hit", |b| {
        b.to_async(&runtime).iter(|| async {
            let user = cache.find(&pivot).await.expect("found");
            assert!(user.is_some());
        })
    });
}

criterion_group!(benches, l1_hit);
criterion_main!(benches);
