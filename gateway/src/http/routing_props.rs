//! Property: the path that was decided is the path that is forwarded.
//!
//! The pipeline decides on `Target::decision_path` and sends `Target::origin_form` upstream
//! (`upstream_request_filter` sets it as the request URI when it differs from the client's
//! bytes). For any request target the gateway accepts, the application must then see exactly
//! the path the policy saw: the forwarded URI is the origin form byte for byte, and an
//! application reading it (decoding percent-escapes once, dropping `;` path parameters as Java
//! containers do) gets the decided path. The app chosen for the path is the one with the
//! longest matching prefix.

use proptest::prelude::*;

use super::routing::{normalize_path, parse_target, Router};

/// Segment pieces chosen to hit every rule of `normalize_path`: escapes (valid, encoded
/// separators, double-encoded, malformed), dots, parameters, backslashes, non-ASCII text.
/// Plain text is weighted so that a good share of the paths is accepted (the property says
/// nothing about refused ones; `the_generator_makes_accepted_targets_too` checks the share).
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        60 => "[a-zA-Z0-9_~!$&'()*+,=:@.-]{1,6}",
        1 => Just(".".to_owned()),
        1 => Just("..".to_owned()),
        1 => Just(";".to_owned()),
        1 => Just(";jsessionid=AB12".to_owned()),
        1 => Just("%2e".to_owned()),
        1 => Just("%2F".to_owned()),
        1 => Just("%5c".to_owned()),
        1 => Just("%00".to_owned()),
        1 => Just("%0a".to_owned()),
        1 => Just("%252e".to_owned()),
        1 => Just("%3b".to_owned()),
        1 => Just("%3F".to_owned()),
        1 => Just("%23".to_owned()),
        1 => Just("%C3%A9".to_owned()),
        1 => Just("%61".to_owned()),
        1 => Just("%".to_owned()),
        1 => Just("%zz".to_owned()),
        1 => Just("\\".to_owned()),
        1 => Just("~1".to_owned()),
        1 => (0u8..=255).prop_map(|b| format!("%{b:02X}")),
    ]
}

fn path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::collection::vec(piece(), 1..4), 0..6),
        any::<bool>(),
    )
        .prop_map(|(segments, trailing_slash)| {
            let mut path = String::new();
            for segment in segments {
                path.push('/');
                path.push_str(&segment.concat());
            }
            if path.is_empty() || trailing_slash {
                path.push('/');
            }
            path
        })
}

fn query() -> impl Strategy<Value = Option<String>> {
    prop::option::of("[a-zA-Z0-9=&%/?.;]{0,12}")
}

/// How an application reads a forwarded path: percent-decoded once, then each segment's `;`
/// parameters dropped (Tomcat, Jetty). Independent of `normalize_path`.
fn as_the_app_reads_it(forwarded_path: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(forwarded_path).decode_utf8_lossy();
    decoded
        .split('/')
        .map(|segment| segment.split(';').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("/")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_decided_path_is_the_forwarded_path(path in path(), query in query(), absolute in any::<bool>()) {
        let origin = match &query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let raw = if absolute { format!("http://app.example:8080{origin}") } else { origin.clone() };
        let Ok(target) = parse_target(raw.as_bytes()) else {
            // Refused with 400: nothing is decided, nothing forwarded.
            return Ok(());
        };
        // What goes upstream is the client's own origin form, byte for byte.
        prop_assert_eq!(&target.origin_form, &origin);
        let uri: http::Uri = target.origin_form.parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(uri.path_and_query().map(|p| p.as_str()), Some(origin.as_str()));
        // Deciding again on what was forwarded gives the same decision...
        prop_assert_eq!(normalize_path(uri.path()), Ok(target.decision_path.clone()));
        // ...and the application reads the path the policy decided on.
        prop_assert_eq!(as_the_app_reads_it(uri.path()), target.decision_path.clone());
        // The decided path has nothing a second parser could read otherwise.
        let decided = &target.decision_path;
        prop_assert!(decided.starts_with('/'));
        prop_assert!(!decided.contains("//"));
        prop_assert!(!decided.split('/').any(|s| s == "." || s == ".."));
        prop_assert!(!decided.chars().any(|c| c.is_control() || c == '\\' || c == ';'));
    }

    #[test]
    fn the_app_chosen_has_the_longest_prefix_of_the_decided_path(path in path()) {
        let Ok(decided) = normalize_path(&path) else {
            return Ok(());
        };
        let prefixes = ["", "/a", "/a/b", "/admin", "/admin/users"];
        let mut router = Router::default();
        for (app, prefix) in prefixes.iter().enumerate() {
            router.add("app.example", prefix, app);
        }
        let expected = prefixes
            .iter()
            .enumerate()
            .filter(|(_, prefix)| guichet_policies::prefix_matches(prefix, &decided))
            .max_by_key(|(_, prefix)| prefix.len())
            .map(|(app, _)| app);
        prop_assert_eq!(router.route("app.example", &decided), expected);
        prop_assert_eq!(router.route("other.example", &decided), None);
    }
}

/// The property above only says something about targets the gateway accepts: the generator
/// must produce plenty of them, not only refusals.
#[test]
fn the_generator_makes_accepted_targets_too() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = path();
    let accepted = (0..500)
        .filter(|_| {
            let path = strategy.new_tree(&mut runner).expect("a path").current();
            parse_target(path.as_bytes()).is_ok_and(|t| t.decision_path != "/")
        })
        .count();
    assert!(
        accepted >= 50,
        "only {accepted} of 500 generated paths are accepted"
    );
}
