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
    assert!(error.starts_with("apps[0]"), "{error}");
    assert!(error.contains("unknown field `upstreams`"), "{error}");
    let error = error_of(&format!("{VALID}\nsesion: {{}}\n"));
    assert!(error.contains("unknown field `sesion`"), "{error}");
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
fn secrets_may_come_from_env_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n").unwrap();
    std::env::set_var("GUICHET_TEST_REDIS_URL", "redis://:p%40ss@127.0.0.1:6390/0");
    let yaml = format!(
        "{VALID}session:\n  store:\n    kind: redis\n    url: {{ env: GUICHET_TEST_REDIS_URL }}\n    encryption_key: {{ file: {} }}\n",
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

/// The shipped example configurations all parse.
#[test]
fn shipped_examples_are_valid() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::set_var("GUICHET_REDIS_URL", "redis://127.0.0.1:6379/0");
    std::env::set_var(
        "GUICHET_SESSION_KEY",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    );
    std::env::set_var("GUICHET_STAFF_SSO_SECRET", "example");
    std::env::set_var("GUICHET_FRANCECONNECT_SECRET", "example");
    std::env::set_var("GUICHET_SCIM_TOKEN", "example");
    std::env::set_var("GUICHET_DIRECTORY_ADMIN_TOKEN", "example");
    let mut seen = 0;
    for entry in std::fs::read_dir(root.join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml")
            && !path.to_string_lossy().contains("users")
            && !path.to_string_lossy().contains("people")
        {
            std::env::set_current_dir(&root).unwrap();
            Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 2, "examples/ has the shipped configs");
    // The example directory file too.
    let people = guichet_directory_client::FileDirectory::load(&root.join("examples/people.yaml"))
        .unwrap_or_else(|e| panic!("examples/people.yaml: {e}"));
    assert_eq!(people.len(), 2);
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
