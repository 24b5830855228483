//! What the assertion consumer service costs per Response: the whole `finish` of the SAML
//! provider (bounded decoding, the strict pre-scan, xmlsec signature verification and
//! reduction, decryption, every check, the attributes), on responses the test kit's IdP signs
//! with xmlsec. Run with `cargo bench -p guichet-tests --bench saml_acs`; results in
//! docs/benchmarks.md.

// A benchmark is test code: it may unwrap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion};
use guichet_protocols::saml::{
    AuthnBinding, IdpMetadataSource, SamlProvider, SamlSettings, SignRequests, SpKeyPair,
};
use guichet_protocols::{
    Callback, FinishContext, IdentityProvider, OneTimeProofs, ProviderError, ProviderState,
};
use guichet_tests::saml_idp::{EncryptFor, ResponseSpec, SamlIdp, Signing, SpecAttribute, TestKey};

const ACS: &str = "https://app.example.org/.guichet/callback/idp";
const SP_ENTITY: &str = "https://app.example.org/saml";

/// Every proof is new: the same Response is finished again and again.
struct NoReplayCache;

#[async_trait]
impl OneTimeProofs for NoReplayCache {
    async fn first_use(&self, _id: &str, _keep_for: Duration) -> Result<bool, ProviderError> {
        Ok(true)
    }
}

fn settings(metadata: std::path::PathBuf) -> SamlSettings {
    let pair = SpKeyPair {
        private_key_pem: TestKey::sp().private_key_pem(),
        certificate_pem: TestKey::sp().cert_pem(),
    };
    SamlSettings {
        id: "idp".into(),
        display_name: "IdP".into(),
        entity_id: SP_ENTITY.into(),
        acs_urls: vec![ACS.parse().unwrap()],
        slo_urls: vec!["https://app.example.org/.guichet/saml-slo/idp"
            .parse()
            .unwrap()],
        signing: Some(pair.clone()),
        encryption: vec![pair],
        idp_metadata: IdpMetadataSource::File(metadata),
        idp_entity_id: None,
        metadata_signing_certificates: Vec::new(),
        metadata_refresh: Duration::from_secs(3600),
        binding: AuthnBinding::Redirect,
        sign_requests: SignRequests::Auto,
        force_authn: false,
        requested_authn_context: None,
        name_id_format: None,
        // IdP-initiated: no login transaction to build per iteration.
        allow_unsolicited: true,
        unsolicited_landing: Some("app".into()),
        clock_skew: Duration::from_secs(60),
        require_signed_assertion: false,
        allow_sha1: false,
        allow_cbc: false,
        allow_rsa1_5: false,
        subject_attribute: None,
        attribute_names: BTreeMap::new(),
        http_timeout: Duration::from_secs(5),
    }
}

fn acs(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let idp = runtime.block_on(SamlIdp::start());
    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("idp.xml");
    std::fs::write(&metadata, idp.metadata_xml()).unwrap();
    let provider = SamlProvider::new(settings(metadata)).unwrap();
    let ctx = FinishContext {
        callback_url: ACS.parse().unwrap(),
        proofs: Arc::new(NoReplayCache),
    };
    let cases = [
        ("signed response", Signing::Response, false, 0),
        ("signed assertion", Signing::Assertion, false, 0),
        ("signed response and assertion", Signing::Both, false, 0),
        (
            "encrypted signed assertion (RSA-OAEP, AES-128-GCM)",
            Signing::Both,
            true,
            0,
        ),
        // Large institutional releases (entitlements, groups): the cost grows with the size.
        (
            "signed response and assertion, 100 more attributes",
            Signing::Both,
            false,
            100,
        ),
    ];
    let mut group = c.benchmark_group("saml_acs");
    for (name, signing, encrypted, extra_attributes) in cases {
        let mut spec = ResponseSpec::for_sp(ACS, SP_ENTITY);
        spec.sign = signing;
        for i in 0..extra_attributes {
            spec.attributes.push(SpecAttribute::basic(
                &format!("entitlement{i}"),
                &[
                    "urn:mace:example.org:entitlement:library",
                    "urn:mace:example.org:entitlement:cdi",
                ],
            ));
        }
        // Valid for the whole run.
        spec.conditions_not_on_or_after_offset = Some(chrono::Duration::hours(1));
        spec.confirmation_not_on_or_after_offset = Some(chrono::Duration::hours(1));
        if encrypted {
            spec.encrypt_for = Some(EncryptFor::new(&TestKey::sp().cert_pem()));
        }
        let callback = Callback {
            query: Vec::new(),
            form: vec![("SAMLResponse".into(), idp.response(&spec))],
        };
        let state = ProviderState::default();
        // It must succeed, or the benchmark measures a refusal.
        runtime
            .block_on(provider.finish(&ctx, &callback, &state))
            .unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(provider.finish(&ctx, &callback, &state))
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, acs);
criterion_main!(benches);
