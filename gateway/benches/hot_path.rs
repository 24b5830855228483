//! Micro-benchmarks of the per-request hot path: the pieces `GuichetProxy` runs on every
//! authenticated request. Run with `cargo bench -p guichet-gateway --bench hot_path`; the
//! numbers and how they relate to the load test are in `docs/benchmarks.md`.

// A benchmark is test code: it may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use guichet_gateway::config::IdentityHeadersConfig;
use guichet_gateway::headers::{encode, Encoding, IdentityHeaders};
use guichet_gateway::identity::Identity;
use guichet_gateway::routing::normalize_path;
use guichet_gateway::session::{MemoryStore, Sealer, SessionId, SessionRecord, Store};

const NAME: &str = "Grégory Françoise";

/// The demo's identity header plan (six headers under the `X-Remote-` prefix).
fn demo_plan() -> IdentityHeaders {
    let yaml = r#"
prefix: X-Remote-
headers:
  - { name: X-Remote-User, value: subject }
  - { name: X-Remote-Email, value: "attribute:email" }
  - { name: X-Remote-Name, value: "attribute:display_name" }
  - { name: X-Remote-Name-Ascii, value: "attribute:display_name", encoding: ascii }
  - { name: X-Remote-Roles, value: roles }
  - { name: X-Remote-Provider, value: provider }
"#;
    let config: IdentityHeadersConfig = serde_norway::from_str(yaml).expect("identity headers");
    IdentityHeaders::from_config(&config).unwrap()
}

/// A session record of a realistic size (about 600 bytes of JSON).
fn record() -> SessionRecord {
    let json = serde_json::json!({
        "principal": {
            "provider": "ent-oidc",
            "subject": "f3c1b2a4-9d8e-4c7b-a6f5-0e1d2c3b4a59",
            "attributes": {
                "email": ["gregory.francoise@example.org"],
                "display_name": [NAME],
                "given_name": ["Grégory"],
                "family_name": ["Françoise"],
                "uai": ["0751234A", "0759876Z"],
                "profile": ["National_ENS"],
            },
            "auth_time": 1_760_000_000,
            "auth_level": "eidas1",
            "logout": {
                "kind": "oidc",
                "id_token": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmM2MxYjJhNCIsImF1ZCI6Imd1aWNoZXQifQ.c2lnbmF0dXJlLXBsYWNlaG9sZGVyLWZvci1iZW5jaA",
                "sid": "0d6b1e0c-5a2f-4bf1-9b8e-31a7c2d4e5f6",
            },
        },
        "roles": ["agent", "bibliotheque-admin", "lecteur"],
        "app": "bibliotheque",
        "created_at": 1_760_000_000,
        "last_seen": 1_760_000_100,
        "expires_at": 1_760_028_800,
    });
    serde_json::from_value(json).expect("session record")
}

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize_path");
    for (label, path) in [
        ("root", "/"),
        ("typical", "/bibliotheque/catalogue/notice/12345"),
        ("encoded", "/caf%C3%A9/r%C3%A9sum%C3%A9/index.php"),
        ("refused_dot_segment", "/app/../admin"),
    ] {
        group.bench_function(label, |b| b.iter(|| normalize_path(black_box(path))));
    }
    group.finish();
}

fn encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("headers_encode");
    for (label, encoding) in [
        ("percent", Encoding::Percent),
        ("latin1", Encoding::Latin1),
        ("ascii", Encoding::Ascii),
    ] {
        group.bench_function(label, |b| {
            b.iter(|| encode(black_box(NAME), black_box(encoding)))
        });
    }
    group.finish();
}

fn stripping(c: &mut Criterion) {
    let plan = demo_plan();
    // What a browser typically sends, plus a spoof attempt: scrub() asks about every name.
    let browser: &[&str] = &[
        "host",
        "user-agent",
        "accept",
        "accept-language",
        "accept-encoding",
        "referer",
        "cookie",
        "connection",
        "upgrade-insecure-requests",
        "sec-fetch-mode",
    ];
    let mut group = c.benchmark_group("must_strip");
    group.bench_function("one_kept_header", |b| {
        b.iter(|| plan.must_strip(black_box("accept-language")))
    });
    group.bench_function("one_spoofed_header", |b| {
        b.iter(|| plan.must_strip(black_box("X_Remote_User")))
    });
    group.bench_function("browser_request_10_headers", |b| {
        b.iter(|| {
            browser
                .iter()
                .filter(|name| plan.must_strip(black_box(name)))
                .count()
        })
    });
    group.finish();
}

fn identity_injection(c: &mut Criterion) {
    // upstream_request_filter: every configured header's value, encoded.
    let plan = demo_plan();
    let identity = Identity {
        id: SessionId::generate(),
        // `.into()`: the record is held as is or behind an Arc, depending on the version.
        record: record().into(),
    };
    c.bench_function("identity_headers/value_and_encode_6", |b| {
        b.iter(|| {
            let mut written = 0;
            for rule in &plan.rules {
                if let Some(value) = identity.value(
                    &rule.source,
                    &plan.separator,
                    &identity.record.roles,
                    &identity.record.principal.attributes,
                ) {
                    written += encode(&value, rule.encoding).len();
                }
            }
            black_box(written)
        })
    });
}

fn sessions(c: &mut Criterion) {
    let record = record();
    let plaintext = serde_json::to_vec(&record).expect("serialize");
    let sealer = Sealer::new(&[7u8; 32]);
    let id = SessionId::generate();
    let key = id.storage_key();
    let sealed = sealer.seal(&plaintext, key.as_bytes());

    let mut group = c.benchmark_group(format!("sealer_{}_bytes", plaintext.len()));
    group.bench_function("seal", |b| {
        b.iter(|| sealer.seal(black_box(&plaintext), key.as_bytes()))
    });
    group.bench_function("open", |b| {
        b.iter(|| sealer.open(black_box(&sealed), key.as_bytes()))
    });
    group.bench_function("seal_then_open", |b| {
        b.iter(|| {
            let sealed = sealer.seal(black_box(&plaintext), key.as_bytes());
            sealer.open(&sealed, key.as_bytes())
        })
    });
    group.bench_function("open_and_deserialize", |b| {
        b.iter(|| {
            let opened = sealer.open(black_box(&sealed), key.as_bytes()).unwrap();
            serde_json::from_slice::<SessionRecord>(&opened).unwrap()
        })
    });
    group.finish();

    // What the in-memory store (the demo's) does instead of sealing: parse the cookie, hash the
    // id into the storage key, look it up and clone the record.
    let cookie = id.as_cookie_value().to_owned();
    let mut group = c.benchmark_group("memory_store");
    group.bench_function("cookie_parse_and_storage_key", |b| {
        b.iter(|| SessionId::parse(black_box(&cookie)).unwrap().storage_key())
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = MemoryStore::default();
    runtime.block_on(async {
        store
            .save_session(&id, &record, Duration::from_secs(3600))
            .await
            .unwrap()
    });
    group.bench_function("load_session", |b| {
        b.iter(|| {
            runtime
                .block_on(store.load_session(black_box(&id)))
                .unwrap()
        })
    });
    // A deep copy of the record: what a load costs when the store hands out copies.
    group.bench_function("record_clone", |b| {
        b.iter_batched_ref(|| (), |_| black_box(&record).clone(), BatchSize::SmallInput)
    });
    group.finish();

    c.bench_function("per_request/correlation_id_uuid_v4", |b| {
        b.iter(|| uuid::Uuid::new_v4().to_string())
    });
}

criterion_group!(
    benches,
    routing,
    encoding,
    stripping,
    identity_injection,
    sessions
);
criterion_main!(benches);
