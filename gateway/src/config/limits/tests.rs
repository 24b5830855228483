use std::time::Duration;

use super::LimitsConfig;
use crate::config::Config;

const BASE: &str = r#"
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
"#;

fn limits_of(section: &str) -> Result<LimitsConfig, String> {
    Config::from_yaml(&format!("{BASE}limits:\n{section}"))
        .map(|config| config.file.limits)
        .map_err(|e| e.to_string())
}

#[test]
fn defaults_apply_without_a_section_and_are_valid() {
    let config = Config::from_yaml(BASE).unwrap();
    assert_eq!(config.file.limits, LimitsConfig::default());
    config.file.limits.validate().unwrap();
    let limits = LimitsConfig::default();
    assert_eq!(limits.max_connections, 2048);
    assert_eq!(limits.header_timeout, Duration::from_secs(10));
    assert_eq!(limits.idle_timeout, Duration::from_secs(75));
    assert_eq!(limits.max_header_bytes, 32 * 1024);
    assert_eq!(limits.max_headers, 100);
    assert_eq!(limits.max_concurrent_logins, 256);
}

#[test]
fn every_setting_is_read() {
    let limits = limits_of(
        "  max_connections: 50\n  header_timeout: 1s\n  idle_timeout: 500ms\n  body_timeout: 2s\n  \
         body_min_rate: 100\n  send_timeout: 3s\n  max_header_bytes: 4096\n  max_headers: 20\n  \
         max_concurrent_logins: 2\n  login_queue_timeout: 0s\n",
    )
    .unwrap();
    assert_eq!(
        limits,
        LimitsConfig {
            max_connections: 50,
            header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_millis(500),
            body_timeout: Duration::from_secs(2),
            body_min_rate: 100,
            send_timeout: Duration::from_secs(3),
            max_header_bytes: 4096,
            max_headers: 20,
            max_concurrent_logins: 2,
            login_queue_timeout: Duration::ZERO,
        }
    );
}

#[test]
fn every_bad_value_is_one_line_naming_its_field() {
    let cases = [
        (
            "  max_connections: 0\n",
            "limits.max_connections: must be between 1 and 1000000",
        ),
        (
            "  max_connections: -3\n",
            "limits.max_connections: invalid type: integer `-3`",
        ),
        (
            "  header_timeout: 0s\n",
            "limits.header_timeout: must be between 100ms and 10m",
        ),
        ("  header_timeout: soon\n", "limits.header_timeout: "),
        (
            "  idle_timeout: 2h\n",
            "limits.idle_timeout: must be between 100ms and 1h",
        ),
        (
            "  body_timeout: 10ms\n",
            "limits.body_timeout: must be between 100ms and 1h",
        ),
        (
            "  body_min_rate: 0\n",
            "limits.body_min_rate: must be between 1 and 1000000000",
        ),
        (
            "  send_timeout: 0s\n",
            "limits.send_timeout: must be between 100ms and 1h",
        ),
        (
            "  max_header_bytes: 100\n",
            "limits.max_header_bytes: must be between 1024 and 1048575",
        ),
        (
            "  max_headers: 300\n",
            "limits.max_headers: must be between 1 and 256",
        ),
        (
            "  max_concurrent_logins: 0\n",
            "limits.max_concurrent_logins: must be between 1 and 1000000",
        ),
        (
            "  login_queue_timeout: 2m\n",
            "limits.login_queue_timeout: must be between 0s and 1m",
        ),
        (
            "  max_conections: 5\n",
            "limits.max_conections: unknown field `max_conections`",
        ),
    ];
    for (section, expected) in cases {
        let error = limits_of(section).expect_err(section);
        assert!(error.starts_with(expected), "{section:?}: {error}");
        assert!(!error.contains('\n'), "one line: {error}");
    }
}

#[test]
fn a_configuration_built_in_code_is_checked_the_same_way() {
    let bad = LimitsConfig {
        max_headers: 0,
        ..LimitsConfig::default()
    };
    let error = bad.validate().unwrap_err().to_string();
    assert_eq!(error, "limits.max_headers: must be between 1 and 256");
    let bad = LimitsConfig {
        header_timeout: Duration::from_secs(3600),
        ..LimitsConfig::default()
    };
    let error = bad.validate().unwrap_err().to_string();
    assert_eq!(
        error,
        "limits.header_timeout: must be between 100ms and 10m"
    );
}
