//! Replays the committed corpus on stable Rust (scripts/test.sh runs this): every seed goes
//! through every target, so a seed that once crashed a target (a fixed bug's reproducer,
//! saved under its target's corpus) fails here if the bug comes back, without nightly or
//! libFuzzer. A panic in a target is the failure.

use std::fs;
use std::path::{Path, PathBuf};

use guichet_fuzz::{fixtures, TARGETS};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, bytes)
        })
        .collect()
}

#[test]
fn every_seed_goes_through_every_target() {
    let all: Vec<(PathBuf, Vec<u8>)> = TARGETS.iter().flat_map(|(name, _)| seeds(name)).collect();
    for (name, target) in TARGETS {
        assert!(!seeds(name).is_empty(), "no seed for {name}");
        for (path, bytes) in &all {
            eprintln!("{name} <- {}", path.display());
            target(bytes);
        }
    }
}

/// The recorded seeds still match the fixtures they were made with (`seedgen`): otherwise the
/// fuzzers would start from inputs refused at the first check, and cover little.
#[test]
fn the_recorded_seeds_are_accepted_by_the_fixtures() {
    let acs = guichet_protocols::saml::fuzzing::AcsCheck::new(
        fixtures::SAML_IDP_METADATA,
        fixtures::SAML_SP_ENTITY_ID,
        fixtures::SAML_ACS_URL,
        None,
        fixtures::NOW,
        Some(fixtures::SAML_SP_KEY),
    )
    .expect("the fixture IdP");
    for seed in ["signed-both.xml", "signed-response.xml", "encrypted.xml"] {
        let xml = fs::read_to_string(corpus_dir("saml").join(seed)).expect(seed);
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, xml);
        assert_eq!(
            acs.verify(&encoded).as_deref(),
            Ok("alice@corp.example"),
            "{seed}"
        );
    }
    let b64 = fs::read_to_string(corpus_dir("saml").join("signed-both.b64")).expect("b64");
    assert_eq!(acs.verify(b64.trim()).as_deref(), Ok("alice@corp.example"));
    assert!(acs
        .verify(&base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            fs::read(corpus_dir("saml").join("attack-xsw1.xml")).expect("xsw1"),
        ))
        .is_err());

    let jwks = serde_json::from_str(fixtures::OIDC_JWKS).expect("the fixture JWKS");
    let verified = guichet_protocols::oidc::jws::verify(
        fixtures::OIDC_SIGNED_TOKEN.trim(),
        &jwks,
        &[guichet_protocols::oidc::SigningAlg::RsaSsaPkcs1V15Sha256],
        None,
    )
    .unwrap_or_else(|e| panic!("the fixture token: {e}"));
    assert_eq!(verified.claims["sub"], "alice-sub");
    let read = |seed: &str| {
        fs::read_to_string(corpus_dir("oidc").join(seed))
            .expect(seed)
            .trim()
            .to_owned()
    };
    for seed in [
        "id-token-rs256.jwt",
        "id-token-es256.jwt",
        "id-token-hs256.jwt",
    ] {
        let attributes =
            guichet_fuzz::oidc_id_token(&read(seed)).unwrap_or_else(|e| panic!("{seed}: {e}"));
        assert_eq!(attributes["email"], ["alice@example.org"], "{seed}");
    }
    assert!(guichet_fuzz::oidc_id_token(&read("alg-none.jwt")).is_err());
    for seed in [
        "jwe-ecdh-es.jwt",
        "jwe-rsa-oaep.jwt",
        "jwe-rsa-oaep-256.jwt",
    ] {
        let inner =
            guichet_fuzz::oidc_decrypt(&read(seed)).unwrap_or_else(|e| panic!("{seed}: {e}"));
        assert!(guichet_fuzz::oidc_id_token(&inner).is_ok(), "{seed}");
    }
    assert!(guichet_fuzz::oidc_decrypt(&read("jwe-unknown-kid.jwt")).is_err());

    for seed in [
        "valid-bare.xml",
        "valid-cas2-name-value.xml",
        "valid-cas3-structured.xml",
    ] {
        let xml = fs::read(corpus_dir("cas").join(seed)).expect(seed);
        assert!(
            matches!(guichet_protocols::cas::response::parse(&xml), Ok(Ok(_))),
            "{seed}"
        );
    }
}
