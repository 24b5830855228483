//! Policy evaluation cost: an application with 50 rules, the request matching the last one
//! (the worst case of "first match wins"), and one matching the first.

// A benchmark is test code: it may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use guichet_policies::{Access, Policy, RuleConfig, Subject};

fn fifty_rules() -> Vec<RuleConfig> {
    let mut rules = Vec::new();
    for i in 0..16 {
        rules.push(RuleConfig {
            path: Some(format!("/module{i}/admin")),
            any_role: vec!["admin".into(), format!("admin{i}")],
            ..RuleConfig::default()
        });
        rules.push(RuleConfig {
            glob: Some(format!("/module{i}/reports/**/*.pdf")),
            all_roles: vec!["agent".into(), "reports".into()],
            ..RuleConfig::default()
        });
        rules.push(RuleConfig {
            regex: Some(format!("^/module{i}/api/v[0-9]+/")),
            methods: vec!["POST".into(), "PUT".into()],
            attributes: BTreeMap::from([("structure".into(), vec!["0751234A".into()])]),
            ..RuleConfig::default()
        });
    }
    rules.push(RuleConfig {
        path: Some("/public".into()),
        access: Some(Access::Public),
        ..RuleConfig::default()
    });
    rules.push(RuleConfig {
        path: Some("/".into()),
        any_role: vec!["agent".into()],
        ..RuleConfig::default()
    });
    assert_eq!(rules.len(), 50);
    rules
}

fn evaluate(c: &mut Criterion) {
    let policy = Policy::compile(Access::Deny, &fifty_rules(), false).expect("valid");
    let roles = vec!["agent".to_string(), "reader".to_string()];
    let attributes = BTreeMap::from([("structure".to_string(), vec!["0751234A".to_string()])]);
    let subject = Subject {
        roles: &roles,
        attributes: &attributes,
        auth_level: Some("eidas1"),
    };
    c.bench_function("policy/50_rules/last_rule_matches", |b| {
        b.iter(|| {
            black_box(policy.evaluate(
                black_box("GET"),
                black_box("/catalogue/notice/12345"),
                Some(&subject),
            ))
        })
    });
    c.bench_function("policy/50_rules/first_rule_matches", |b| {
        b.iter(|| {
            black_box(policy.evaluate(
                black_box("GET"),
                black_box("/module0/admin/users"),
                Some(&subject),
            ))
        })
    });
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
