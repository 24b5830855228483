//! Configuration errors: one line naming the field, non-zero exit, nothing listening.

use std::path::PathBuf;
use std::process::Command;

use guichet_gateway::config::Config;

const VALID: &str = r#"
listen:
  - address: 127.0.0.1:18080
providers:
  - kind: local
    id: local
    users: []
apps:
  - id: one
    url: http://one.example
    upstream: http://127.0.0.1:9000
    providers: [local]
  - id: two
    url: http://two.example
    upstream: http://127.0.0.1:9001
    providers: [local]
  - id: three
    url: http://three.example
    upstream: http://127.0.0.1:9002
    providers: [local]
"#;

fn error_of(yaml: &str) -> String {
    let error = Config::from_yaml(yaml)
        .expect_err("config must be refused")
        .to_string();
    assert!(!error.contains('\n'), "one line: {error}");
    error
}

#[test]
fn the_base_config_is_valid() {
    Config::from_yaml(VALID).unwrap();
}

#[test]
fn unknown_keys_are_refused_with_their_path() {
    let error = error_of(&VALID.replace(
        "    providers: [local]\n  - id: two",
        "    providers: [local]\n    upstreams: x\n  - id: two",
    ));
    // The path once, the unknown key's own (serde_norway's shorter path is not repeated).
    assert!(
        error.starts_with("apps[0].upstreams: unknown field `upstreams`"),
        "{error}"
    );
    let error = error_of(&format!("{VALID}\nsesion: {{}}\n"));
    assert!(error.contains("unknown field `sesion`"), "{error}");
    let error = error_of(&format!("{VALID}session:\n  store:\n    kind: mysql\n"));
    assert!(
        error.starts_with("session.store.kind: unknown variant `mysql`"),
        "{error}"
    );
}

/// Redis settings left beside `kind: memory` would silently give one replica's in-memory
/// sessions: refused.
#[test]
fn settings_beside_the_memory_store_are_refused() {
    let error = error_of(&format!(
        "{VALID}session:\n  store:\n    kind: memory\n    url: redis://redis:6379/\n"
    ));
    assert!(error.starts_with("session.store"), "{error}");
    assert!(error.contains("unknown field `url`"), "{error}");
    let config = Config::from_yaml(&format!("{VALID}session:\n  store:\n    kind: memory\n"));
    assert!(config.unwrap().redis.is_none());
}

#[test]
fn a_bad_url_names_the_field() {
    let error = error_of(&VALID.replace("http://127.0.0.1:9002", "not a url"));
    assert!(error.starts_with("apps[2].upstream: "), "{error}");
    let error = error_of(&VALID.replace("http://127.0.0.1:9002", "ftp://127.0.0.1:9002"));
    assert_eq!(
        error,
        "apps[2].upstream: invalid URL: scheme must be http or https, not \"ftp\""
    );
}

#[test]
fn a_duplicate_host_names_the_field() {
    let error = error_of(&VALID.replace("http://three.example", "http://ONE.example"));
    assert!(
        error.starts_with("apps[2].url: duplicate host \"one.example\""),
        "{error}"
    );
}

#[test]
fn other_semantic_errors_name_the_field() {
    let cases = [
        (VALID.replace("providers: [local]\n  - id: two", "providers: [cas]\n  - id: two"), "apps[0].providers[0]: unknown provider \"cas\""),
        (VALID.replace("id: three", "id: one"), "apps[2].id: duplicate app id"),
        (format!("{VALID}session:\n  idle_timeout: 2h\n  absolute_timeout: 1h\n"), "session.absolute_timeout:"),
        (format!("{VALID}session:\n  idle_timeout: soon\n"), "session.idle_timeout:"),
        (
            format!("{VALID}session:\n  store:\n    kind: redis\n    url: redis://127.0.0.1\n    encryption_key: c2hvcnQ=\n"),
            "session.store.encryption_key: must be 32 bytes",
        ),
        (
            format!("{VALID}session:\n  store:\n    kind: redis\n    url: {{ env: GUICHET_TEST_UNSET_VARIABLE }}\n    encryption_key: c2hvcnQ=\n"),
            "session.store.url: environment variable GUICHET_TEST_UNSET_VARIABLE is not set",
        ),
    ];
    for (yaml, expected) in cases {
        let error = error_of(&yaml);
        assert!(
            error.starts_with(expected),
            "expected {expected:?}, got {error:?}"
        );
    }
}

#[test]
fn secrets_may_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n").unwrap();
    let url_file = dir.path().join("url");
    std::fs::write(&url_file, "redis://:p%40ss@127.0.0.1:6390/0\n").unwrap();
    let yaml = format!(
        "{VALID}session:\n  store:\n    kind: redis\n    url: {{ file: {} }}\n    encryption_key: {{ file: {} }}\n",
        url_file.display(),
        key_file.display()
    );
    let config = Config::from_yaml(&yaml).unwrap();
    let redis = config.redis.unwrap();
    assert_eq!(redis.url.expose(), "redis://:p%40ss@127.0.0.1:6390/0");
    assert!(
        !format!("{:?}", redis.url).contains("p%40ss"),
        "secrets are redacted in Debug"
    );
}

/// `{ env: NAME }` is read from the process's environment (set on the child: tests never
/// change their own environment, which every thread of the test binary shares).
#[test]
fn secrets_may_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guichet.yaml");
    std::fs::write(
        &path,
        format!(
            "{VALID}session:\n  store:\n    kind: redis\n    url: {{ env: TEST_REDIS_URL }}\n    encryption_key: {{ env: TEST_SESSION_KEY }}\n"
        ),
    )
    .unwrap();
    let check = |env: &[(&str, &str)]| {
        let output = Command::new(guichet_tests::guichet_binary())
            .args(["check", "--config", path.to_str().unwrap()])
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let key = (
        "TEST_SESSION_KEY",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    );
    let (ok, stderr) = check(&[("TEST_REDIS_URL", "redis://127.0.0.1:6390/0"), key]);
    assert!(ok, "{stderr}");
    let (ok, stderr) = check(&[key]);
    assert!(!ok);
    assert_eq!(
        stderr.trim(),
        "guichet: session.store.url: environment variable TEST_REDIS_URL is not set"
    );
}

/// The example directory file loads (the example configurations are started by the binary in
/// examples.rs).
#[test]
fn the_example_people_file_is_valid() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let people = guichet_directory_client::FileDirectory::load(&root.join("examples/people.yaml"))
        .unwrap_or_else(|e| panic!("examples/people.yaml: {e}"));
    assert_eq!(people.len(), 2);
}

#[test]
fn set_overrides_a_setting_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guichet.yaml");
    std::fs::write(&path, VALID).unwrap();
    let check = |set: &str| {
        let output = Command::new(guichet_tests::guichet_binary())
            .args(["check", "--config", path.to_str().unwrap(), "--set", set])
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    assert!(check("listen[0].address=127.0.0.1:18081").0);
    // An overridden value is validated like the file's own.
    let (ok, stderr) = check("apps[1].upstream=ftp://x");
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("guichet: apps[1].upstream: "),
        "{stderr}"
    );
    let (ok, stderr) = check("apps[7].upstream=http://x");
    assert!(!ok);
    assert_eq!(
        stderr.trim(),
        "guichet: --set apps[7].upstream: no item [7]: the list has 3"
    );
    let (ok, stderr) = check("apps[0].colour=blue");
    assert!(!ok);
    assert!(
        stderr.starts_with("guichet: apps[0].colour: unknown field `colour`"),
        "{stderr}"
    );
}

#[test]
fn the_binary_exits_non_zero_with_one_line_and_listens_on_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = guichet_tests::free_port();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        VALID
            .replace("127.0.0.1:18080", &format!("127.0.0.1:{port}"))
            .replace("http://127.0.0.1:9001", "http://"),
    )
    .unwrap();
    for command in ["check", "run"] {
        let output = Command::new(guichet_tests::guichet_binary())
            .args([command, "--config", bad.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{command} must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
        assert!(
            stderr.starts_with("guichet: apps[1].upstream: "),
            "{command}: {stderr}"
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "nothing listens"
        );
    }
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, VALID).unwrap();
    let output = Command::new(guichet_tests::guichet_binary())
        .args(["check", "--config", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn an_address_in_use_is_a_start_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // Held for the whole test: the gateway cannot have it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let admin = guichet_tests::free_port();
    let config = dir.path().join("taken.yaml");
    std::fs::write(
        &config,
        VALID.replace(
            "127.0.0.1:18080",
            &format!("127.0.0.1:{port}\nadmin: 127.0.0.1:{admin}"),
        ),
    )
    .unwrap();
    let output = Command::new(guichet_tests::guichet_binary())
        .args(["run", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "guichet: listen: cannot listen on 127.0.0.1:{port}: "
        )),
        "{stderr}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", admin)).is_err(),
        "the admin listener did not start"
    );
}

/// `VALID` with a FranceConnect provider (`extra`: more of its settings, one a line).
fn with_franceconnect(extra: &str) -> String {
    let mut provider = String::from(
        "  - kind: franceconnect\n    id: fc\n    environment: sandbox\n    client_id: abc\n    client_secret: s3cret\n",
    );
    for line in extra.lines() {
        provider.push_str(&format!("    {line}\n"));
    }
    VALID.replace("providers:\n", &format!("providers:\n{provider}"))
}

/// The FranceConnect preset as the platform behaves (france-connect/sources: the /authorize
/// parameter list, token authentication methods, eIDAS levels, scopes).
#[test]
fn the_franceconnect_preset_follows_the_platform() {
    let config = Config::from_yaml(&with_franceconnect("")).unwrap();
    let settings = &config.oidc["fc"];
    assert!(!settings.pkce, "FranceConnect refuses code_challenge");
    assert_eq!(
        settings.scopes,
        ["given_name", "family_name"],
        "a minimal default"
    );
    assert_eq!(settings.acr_values.as_deref(), Some("eidas1"));
    assert!(settings.end_session && settings.end_session_required);
    assert_eq!(
        settings.issuer,
        "https://fcp-low.sbx.dev-franceconnect.fr/api/v2"
    );
    assert!(matches!(
        settings.client_auth,
        guichet_protocols::oidc::ClientAuth::SecretPost(_)
    ));

    // Grouped scopes and the claims parameter (for amr) are available.
    let config = Config::from_yaml(&with_franceconnect(
        "scopes: [identite_pivot, email]\nclaims: { id_token: { amr: { essential: true } } }\nauthorize_params: { prompt: login, idp_hint: abc }",
    ))
    .unwrap();
    let settings = &config.oidc["fc"];
    assert_eq!(settings.scopes, ["identite_pivot", "email"]);
    assert_eq!(
        settings.claims.as_deref(),
        Some(r#"{"id_token":{"amr":{"essential":true}}}"#)
    );
}

#[test]
fn franceconnect_settings_the_platform_refuses_are_config_errors() {
    let cases = [
        ("pkce: true", "providers[0].pkce: FranceConnect refuses code_challenge"),
        (
            "client_auth: client_secret_basic",
            "providers[0].client_auth: FranceConnect accepts client_secret_post or private_key_jwt only",
        ),
        ("acr_values: eidas2", "providers[0].acr_values: FranceConnect v2 offers eidas1 only"),
        ("acr_values: eidas1 eidas2", "providers[0].acr_values: FranceConnect v2 offers eidas1 only"),
        ("scopes: [email, address]", "providers[0].scopes: \"address\": removed in FranceConnect v2"),
        ("scopes: [offline_access]", "providers[0].scopes: \"offline_access\""),
        ("scopes: [rnipp_birthdate]", "providers[0].scopes: \"rnipp_birthdate\": FranceConnect+ only"),
        (
            "authorize_params: { max_age: '60' }",
            "providers[0].authorize_params.max_age: FranceConnect refuses /authorize parameters outside its list",
        ),
        (
            "authorize_params: { prompt: none }",
            "providers[0].authorize_params.prompt: FranceConnect accepts login and consent only",
        ),
        (
            "authorize_params: { claims: '{}' }",
            "providers[0].authorize_params.claims: use the provider's `claims` setting",
        ),
        ("claims: [amr]", "providers[0].claims: a mapping"),
        (
            "end_session: false",
            "providers[0].end_session: FranceConnect asks services to log users out of FranceConnect too",
        ),
        (
            "discovery: false\nendpoints: { authorization: \"https://fc.example/a\", token: \"https://fc.example/t\", jwks: \"https://fc.example/j\", userinfo: \"https://fc.example/u\" }",
            "providers[0].endpoints.end_session: required: logging out at this provider is mandatory",
        ),
        (
            "discovery: false\nendpoints: { authorization: \"https://fc.example/a\", token: \"https://fc.example/t\", jwks: \"https://fc.example/j\", end_session: \"https://fc.example/e\" }",
            "providers[0].endpoints.userinfo: required: userinfo is require_signed",
        ),
    ];
    for (setting, expected) in cases {
        let error = error_of(&with_franceconnect(setting));
        assert!(
            error.starts_with(expected),
            "{setting}: expected {expected:?}, got {error:?}"
        );
    }
    // The generic OpenID Connect provider keeps PKCE and basic authentication by default.
    let yaml = VALID.replace(
        "providers:\n",
        "providers:\n  - kind: oidc\n    id: op\n    issuer: https://op.example.org\n    client_id: abc\n    client_secret: s\n",
    );
    let config = Config::from_yaml(&yaml).unwrap();
    assert!(config.oidc["op"].pkce);
    assert!(!config.oidc["op"].end_session_required);
}

#[test]
fn an_identity_pivot_names_six_directory_attributes_and_nothing_else() {
    let people = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/people.yaml");
    let directory = format!(
        "directory:\n  backend: {{ kind: file, path: \"{}\" }}\n",
        people.display()
    );
    let with_pivot = |pivot: &str| {
        format!(
            "{}{directory}",
            with_franceconnect(&format!("scopes: [identite_pivot]\npivot: {pivot}"))
        )
    };
    let identity = "{ given_name: givenName, family_name: familyName, birthdate: birthDate, gender: gender, birthplace: birthPlace, birthcountry: birthCountry }";
    let config = Config::from_yaml(&with_pivot(&format!("{{ identity: {identity} }}"))).unwrap();
    assert!(config.file.providers[0].pivot().unwrap().identity.is_some());
    let error = error_of(&with_pivot(&format!(
        "{{ attribute: email, directory_attribute: email, identity: {identity} }}"
    )));
    assert!(
        error.starts_with(
            "providers[0].pivot: either attribute and directory_attribute, or identity"
        ),
        "{error}"
    );
    let error = error_of(&with_pivot(&format!(
        "{{ identity: {} }}",
        identity.replace("birthDate", "\"\"")
    )));
    assert!(
        error.starts_with("providers[0].pivot.identity.birthdate: must not be empty"),
        "{error}"
    );
    let error = error_of(&with_pivot("{ identity: { given_name: givenName } }"));
    assert!(error.starts_with("providers[0]"), "{error}");
    assert!(error.contains("missing field `family_name`"), "{error}");
    // Only FranceConnect vouches for the six claims, and it must be asked for all of them.
    let error = error_of(&format!(
        "{}{directory}",
        with_franceconnect(&format!("pivot: {{ identity: {identity} }}"))
    ));
    assert!(
        error.starts_with("providers[0].scopes: the identité pivot needs birthdate"),
        "{error}"
    );
    let oidc = VALID.replace(
        "providers:\n",
        &format!("providers:\n  - kind: oidc\n    id: op\n    issuer: https://op.example.org\n    client_id: abc\n    client_secret: s\n    pivot: {{ identity: {identity} }}\n"),
    );
    let error = error_of(&format!("{oidc}{directory}"));
    assert!(
        error.starts_with(
            "providers[0].pivot.identity: only for kinds franceconnect and franceconnect_plus"
        ),
        "{error}"
    );
    let error = error_of(&with_pivot("{ attribute: email }"));
    assert!(
        error.starts_with("providers[0].pivot.directory_attribute: must not be empty"),
        "{error}"
    );
}

/// `VALID` with a FranceConnect+ provider whose encryption key is `key_file` (`extra`: more of
/// its settings, one a line).
fn with_franceconnect_plus(key_file: &std::path::Path, extra: &str) -> String {
    let mut provider = format!(
        "  - kind: franceconnect_plus\n    id: fcp\n    environment: production\n    client_id: abc\n    client_secret: s3cret\n    encryption_keys:\n      - {{ private_key: {{ file: \"{}\" }} }}\n",
        key_file.display()
    );
    for line in extra.lines() {
        provider.push_str(&format!("    {line}\n"));
    }
    VALID.replace("providers:\n", &format!("providers:\n{provider}"))
}

fn ec_key_file(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, guichet_tests::keys::ec_pem()).unwrap();
    path
}

#[test]
fn the_franceconnect_plus_preset_follows_the_platform() {
    let dir = tempfile::tempdir().unwrap();
    let key = ec_key_file(&dir, "enc.pem");
    let config = Config::from_yaml(&with_franceconnect_plus(&key, "")).unwrap();
    let settings = &config.oidc["fcp"];
    assert_eq!(settings.issuer, "https://auth.franceconnect.gouv.fr/api/v2");
    assert_eq!(settings.acr_values.as_deref(), Some("eidas2"));
    assert_eq!(
        settings.allowed_algs,
        [guichet_protocols::oidc::SigningAlg::EcdsaP256Sha256]
    );
    assert!(!settings.pkce && settings.end_session_required);
    let encryption = settings.encryption.as_ref().unwrap();
    assert!(encryption.required);
    assert_eq!(encryption.keys.len(), 1);
    let config = Config::from_yaml(
        &with_franceconnect_plus(&key, "acr_values: eidas3")
            .replace("environment: production", "environment: integration"),
    )
    .unwrap();
    assert_eq!(
        config.oidc["fcp"].issuer,
        "https://auth.integ01.dev-franceconnect.fr/api/v2"
    );
    // RNIPP scopes are FranceConnect+'s.
    Config::from_yaml(&with_franceconnect_plus(
        &key,
        "scopes: [identite_pivot, rnipp_birthdate]",
    ))
    .unwrap();
}

#[test]
fn franceconnect_plus_settings_the_platform_refuses_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let key = ec_key_file(&dir, "enc.pem");
    let rsa_key = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("keys/client-rsa.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let other = ec_key_file(&dir, "other.pem");
    let cases = [
        ("acr_values: eidas1", "providers[0].acr_values: FranceConnect+ offers eidas2 and eidas3 only"),
        ("acr_values: eidas2 eidas1", "providers[0].acr_values: FranceConnect+ offers eidas2 and eidas3 only"),
        ("allowed_algs: [RS256]", "providers[0].allowed_algs: FranceConnect+ signs with ES256 only"),
        ("pkce: true", "providers[0].pkce: FranceConnect refuses code_challenge"),
        (
            "client_auth: client_secret_basic",
            "providers[0].client_auth: FranceConnect accepts client_secret_post or private_key_jwt only",
        ),
        (
            &format!("client_auth: private_key_jwt\nprivate_key_file: \"{}\"", rsa_key.display()),
            "providers[0].private_key_file: FranceConnect+ takes ES256 client assertions only",
        ),
    ];
    for (setting, expected) in cases {
        let error = error_of(&with_franceconnect_plus(&key, setting));
        assert!(
            error.starts_with(expected),
            "{setting}: expected {expected:?}, got {error:?}"
        );
    }
    let plus = with_franceconnect_plus(&key, "");
    let key_line = format!(
        "      - {{ private_key: {{ file: \"{}\" }} }}\n",
        key.display()
    );
    let keys_cases = [
        (
            plus.replace("environment: production", "environment: sandbox"),
            "providers[0].environment: FranceConnect+ publishes no sandbox",
        ),
        (
            plus.replace(&format!("    encryption_keys:\n{key_line}"), ""),
            "providers[0].encryption_keys: required: FranceConnect+ encrypts",
        ),
        (
            plus.replace(&key.display().to_string(), &garbage.display().to_string()),
            "providers[0].encryption_keys[0].private_key: not a P-256 EC or RSA private key",
        ),
        (
            plus.replace(&key.display().to_string(), "/nonexistent/key.pem"),
            "providers[0].encryption_keys[0].private_key: cannot read /nonexistent/key.pem",
        ),
        (
            plus.replace(" } }\n", " }, alg: RSA-OAEP }\n"),
            "providers[0].encryption_keys[0].private_key: an EC P-256 key is used with ECDH-ES",
        ),
        (
            plus.replace(" } }\n", " }, alg: RSA1_5 }\n"),
            "providers[0].encryption_keys[0].alg: ECDH-ES, RSA-OAEP-256 or RSA-OAEP",
        ),
        (
            plus.replace(" } }\n", " }, retired: true }\n"),
            "providers[0].encryption_keys: every key is retired",
        ),
        (
            plus.replace(
                &key_line,
                &format!(
                    "      - {{ private_key: {{ file: \"{}\" }}, kid: a }}\n      - {{ private_key: {{ file: \"{}\" }}, kid: a }}\n",
                    key.display(),
                    other.display()
                ),
            ),
            "providers[0].encryption_keys[1].kid: \"a\" is already another key's kid",
        ),
    ];
    for (yaml, expected) in keys_cases {
        let error = error_of(&yaml);
        assert!(
            error.starts_with(expected),
            "expected {expected:?}, got {error:?}"
        );
    }
    let error = error_of(&with_franceconnect_plus(
        &key,
        "scopes: [identite_pivot, idp_birthdate]",
    ));
    assert!(
        error.starts_with("providers[0].scopes: \"idp_birthdate\": FranceConnect (v2) only"),
        "{error}"
    );
    let error = error_of(
        &plus
            .replace("kind: franceconnect_plus", "kind: franceconnect")
            .replace("environment: production", "environment: sandbox"),
    );
    assert!(
        error.starts_with("providers[0].encryption_keys: FranceConnect v2 encrypts nothing"),
        "{error}"
    );
    // A generic OpenID Connect provider may have keys too; then it must encrypt.
    let yaml = VALID.replace(
        "providers:\n",
        &format!("providers:\n  - kind: oidc\n    id: op\n    issuer: https://op.example.org\n    client_id: abc\n    client_secret: s\n    encryption_keys:\n{key_line}"),
    );
    let config = Config::from_yaml(&yaml).unwrap();
    assert!(config.oidc["op"].encryption.as_ref().unwrap().required);
}

#[test]
fn login_limits_that_would_lock_out_or_not_slow_down_are_refused() {
    let with_limits = |limits: &str| {
        VALID.replace(
            "    id: local\n    users: []\n",
            &format!("    id: local\n    users: []\n    rate_limit: {limits}\n"),
        )
    };
    Config::from_yaml(&with_limits("{ max_delay: 3s }")).unwrap();
    let cases = [
        ("{ max_delay: 0s }", "providers[0].rate_limit.max_delay: between 1s and 10s"),
        ("{ max_delay: 1h }", "providers[0].rate_limit.max_delay: between 1s and 10s"),
        (
            "{ max_failures_per_account: 5, max_failures_per_account_and_address: 5 }",
            "providers[0].rate_limit.max_failures_per_account: must be above every max_failures_per_account_and_address (5)",
        ),
        (
            "{ trusted_networks: [{ networks: [10.0.0.0/8], max_failures_per_account_and_address: 50 }] }",
            "providers[0].rate_limit.max_failures_per_account: must be above every max_failures_per_account_and_address (50)",
        ),
        (
            "{ max_failures_per_ip: 50 }",
            "providers[0].rate_limit.max_failures_per_ip: replaced by slow_down_address_after",
        ),
    ];
    for (limits, expected) in cases {
        let error = error_of(&with_limits(limits));
        assert!(error.starts_with(expected), "{limits}: {error}");
    }
}

/// A file read with `--set` is read like one without: a number where the configuration wants
/// text is still text.
#[test]
fn set_does_not_change_how_the_rest_of_the_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guichet.yaml");
    std::fs::write(&path, format!("{VALID}session:\n  cookie_name: 2024\n")).unwrap();
    let output = Command::new(guichet_tests::guichet_binary())
        .args([
            "check",
            "--config",
            path.to_str().unwrap(),
            "--set",
            "threads=2",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A malformed --set is refused without echoing it (it may be a mistyped secret).
    let output = Command::new(guichet_tests::guichet_binary())
        .args([
            "check",
            "--config",
            path.to_str().unwrap(),
            "--set",
            "client_secret:hunter2",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("hunter2"));
}

/// A parse error names the field and where it is in the file; after `--set`, whose document is
/// rebuilt, only the field (a line of the rebuilt text would point at the wrong place).
#[test]
fn a_parse_error_says_where_in_the_file() {
    let yaml = VALID.replace(
        "    providers: [local]\n  - id: two",
        "    providers: [local]\n    upstreams: x\n  - id: two",
    );
    let error = error_of(&yaml);
    assert!(
        error.starts_with("apps[0].upstreams: unknown field `upstreams`"),
        "{error}"
    );
    assert!(error.ends_with("(line 13, column 5)"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guichet.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let output = Command::new(guichet_tests::guichet_binary())
        .args([
            "check",
            "--config",
            path.to_str().unwrap(),
            "--set",
            "threads=2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("apps[0].upstreams: unknown field"),
        "{stderr}"
    );
    assert!(!stderr.contains("(line "), "{stderr}");
}
