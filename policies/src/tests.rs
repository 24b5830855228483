use std::collections::BTreeMap;

use super::roles::{RoleMapping, RoleSources};
use super::*;

fn rules(yaml: &str) -> Vec<RuleConfig> {
    serde_norway::from_str(yaml).expect("rules parse")
}

fn subject<'a>(
    roles: &'a [String],
    attributes: &'a BTreeMap<String, Vec<String>>,
    level: Option<&'a str>,
) -> Subject<'a> {
    Subject {
        roles,
        attributes,
        auth_level: level,
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_first_matching_rule_wins_in_order() {
    let policy = Policy::compile(
        Access::Authenticated,
        &rules(
            r#"
- { path: /admin/public, access: public }
- { path: /admin, any_role: [admin] }
- { path: /, access: deny }
"#,
        ),
        false,
    )
    .unwrap();
    let no_attrs = BTreeMap::new();
    let agent = strings(&["agent"]);
    let admin = strings(&["admin"]);
    let agent = subject(&agent, &no_attrs, None);
    let admin = subject(&admin, &no_attrs, None);
    assert_eq!(
        policy.evaluate("GET", "/admin/public/x", None).decision,
        Decision::Allow
    );
    assert_eq!(
        policy.evaluate("GET", "/admin/x", Some(&admin)).decision,
        Decision::Allow
    );
    assert_eq!(
        policy.evaluate("GET", "/admin", Some(&agent)).decision,
        Decision::Deny
    );
    assert_eq!(
        policy.evaluate("GET", "/admin", None).decision,
        Decision::LoginRequired
    );
    // Order, not specificity: the catch-all listed last only gets what nothing else took.
    let outcome = policy.evaluate("GET", "/other", Some(&admin));
    assert_eq!(outcome.decision, Decision::Deny);
    assert_eq!(outcome.rule, Some(2));
    assert!(policy.describe(outcome.rule).contains("rules[2] path /"));
}

#[test]
fn no_matching_rule_falls_back_to_the_default() {
    let policy = Policy::compile(Access::Public, &rules("- { path: /private }"), false).unwrap();
    assert_eq!(
        policy.evaluate("GET", "/", None),
        Outcome {
            decision: Decision::Allow,
            rule: None
        }
    );
    assert!(policy.is_public("GET", "/x"));
    assert!(!policy.is_public("GET", "/private/x"));
    let deny = Policy::compile(Access::Deny, &[], false).unwrap();
    let roles = strings(&["admin"]);
    let attrs = BTreeMap::new();
    assert_eq!(
        deny.evaluate("GET", "/", Some(&subject(&roles, &attrs, None)))
            .decision,
        Decision::Deny
    );
    assert_eq!(
        Policy::deny_all().evaluate("GET", "/", None).decision,
        Decision::Deny
    );
}

#[test]
fn any_of_and_all_of_roles() {
    let policy = Policy::compile(
        Access::Deny,
        &rules(
            r#"
- { path: /any, any_role: [a, b] }
- { path: /all, all_roles: [a, b] }
- { path: /both, any_role: [x, y], all_roles: [a] }
"#,
        ),
        false,
    )
    .unwrap();
    let attrs = BTreeMap::new();
    let check = |path: &str, roles: &[&str]| {
        let roles = strings(roles);
        policy
            .evaluate("GET", path, Some(&subject(&roles, &attrs, None)))
            .decision
    };
    assert_eq!(check("/any", &["b"]), Decision::Allow);
    assert_eq!(check("/any", &["c"]), Decision::Deny);
    assert_eq!(check("/any", &[]), Decision::Deny);
    assert_eq!(check("/all", &["a"]), Decision::Deny);
    assert_eq!(check("/all", &["b", "a", "c"]), Decision::Allow);
    assert_eq!(check("/both", &["a", "y"]), Decision::Allow);
    assert_eq!(check("/both", &["a"]), Decision::Deny);
    assert_eq!(check("/both", &["y"]), Decision::Deny);
}

#[test]
fn attribute_conditions_and_authentication_level() {
    let policy = Policy::compile(
        Access::Deny,
        &rules(
            r#"
- path: /school
  attributes: { structure: ["0751234A", "0759876Z"] }
- path: /citizen
  min_auth_level: eidas2
"#,
        ),
        false,
    )
    .unwrap();
    let none: Vec<String> = Vec::new();
    let mut attrs = BTreeMap::new();
    attrs.insert("structure".to_string(), strings(&["0999999X", "0759876Z"]));
    let s = subject(&none, &attrs, Some("eidas1"));
    assert_eq!(
        policy.evaluate("GET", "/school", Some(&s)).decision,
        Decision::Allow
    );
    assert_eq!(
        policy.evaluate("GET", "/citizen", Some(&s)).decision,
        Decision::Deny
    );
    let other = BTreeMap::new();
    let s = subject(&none, &other, Some("eidas3"));
    assert_eq!(
        policy.evaluate("GET", "/school", Some(&s)).decision,
        Decision::Deny
    );
    assert_eq!(
        policy.evaluate("GET", "/citizen", Some(&s)).decision,
        Decision::Allow
    );
    let s = subject(&none, &other, None);
    assert_eq!(
        policy.evaluate("GET", "/citizen", Some(&s)).decision,
        Decision::Deny
    );
}

#[test]
fn methods_globs_and_regexes() {
    let policy = Policy::compile(
        Access::Authenticated,
        &rules(
            r#"
- { glob: "/reports/*.pdf", access: deny }
- { glob: "/files/**", methods: [put, DELETE], any_role: [editor] }
- { regex: "^/api/v[0-9]+/public(/|$)", access: public }
"#,
        ),
        false,
    )
    .unwrap();
    assert_eq!(
        policy.evaluate("GET", "/reports/a.pdf", None).decision,
        Decision::Deny
    );
    // `*` stays within a segment.
    assert_eq!(
        policy.evaluate("GET", "/reports/x/a.pdf", None).decision,
        Decision::LoginRequired
    );
    let attrs = BTreeMap::new();
    let reader = strings(&["reader"]);
    let reader = subject(&reader, &attrs, None);
    assert_eq!(
        policy
            .evaluate("DELETE", "/files/a/b", Some(&reader))
            .decision,
        Decision::Deny
    );
    assert_eq!(
        policy.evaluate("GET", "/files/a/b", Some(&reader)).decision,
        Decision::Allow
    );
    assert_eq!(
        policy.evaluate("GET", "/api/v2/public", None).decision,
        Decision::Allow
    );
    assert_eq!(
        policy.evaluate("GET", "/api/v2/publicity", None).decision,
        Decision::LoginRequired
    );
}

#[test]
fn a_whole_segment_double_star_also_matches_no_segment() {
    let policy = Policy::compile(
        Access::Public,
        &rules(
            r#"
- { glob: "/admin/**", access: deny }
- { glob: "/reports/**/*.pdf", access: deny }
- { glob: "/z**", access: deny }
"#,
        ),
        false,
    )
    .unwrap();
    for denied in [
        "/admin",
        "/admin/",
        "/admin/x/y",
        "/reports/x.pdf",
        "/reports/2026/x.pdf",
        "/zoo/d",
    ] {
        assert_eq!(
            policy.evaluate("GET", denied, None).decision,
            Decision::Deny,
            "{denied}"
        );
    }
    for allowed in ["/administration", "/reports/x.txt", "/b"] {
        assert_eq!(
            policy.evaluate("GET", allowed, None).decision,
            Decision::Allow,
            "{allowed}"
        );
    }
}

#[test]
fn a_rule_on_get_covers_head() {
    let policy = Policy::compile(
        Access::Public,
        &rules("- { path: /export, methods: [GET], access: deny }"),
        false,
    )
    .unwrap();
    assert_eq!(
        policy.evaluate("HEAD", "/export", None).decision,
        Decision::Deny
    );
    assert_eq!(
        policy.evaluate("POST", "/export", None).decision,
        Decision::Allow
    );
}

#[test]
fn case_insensitive_policies_for_case_insensitive_apps() {
    let config =
        rules("- { path: /Admin, access: deny }\n- { glob: \"/Old/*.ASP\", access: deny }");
    let sensitive = Policy::compile(Access::Public, &config, false).unwrap();
    assert_eq!(
        sensitive.evaluate("GET", "/ADMIN/x", None).decision,
        Decision::Allow
    );
    let insensitive = Policy::compile(Access::Public, &config, true).unwrap();
    assert_eq!(
        insensitive.evaluate("GET", "/ADMIN/x", None).decision,
        Decision::Deny
    );
    assert_eq!(
        insensitive.evaluate("GET", "/admin", None).decision,
        Decision::Deny
    );
    assert_eq!(
        insensitive.evaluate("GET", "/old/page.asp", None).decision,
        Decision::Deny
    );
}

#[test]
fn prefixes_match_on_segment_boundaries_only() {
    let policy = Policy::compile(
        Access::Authenticated,
        &rules("- { path: /public/, access: public }"),
        false,
    )
    .unwrap();
    assert!(!policy.is_public("GET", "/publicity"));
    assert!(policy.is_public("GET", "/public"));
    assert!(prefix_matches("/", "/anything"));
}

#[test]
fn invalid_rules_are_errors_naming_the_rule() {
    let cases = [
        (
            "- { access: public }",
            "rules[0]: one of path, glob or regex",
        ),
        (
            "- { path: /a }\n- { path: /b, glob: \"/c\" }",
            "rules[1]: only one of",
        ),
        (
            "- { path: /a }\n- { regex: \"(unclosed\" }",
            "rules[1]: invalid pattern",
        ),
        ("- { path: a }", "must start with /"),
        ("- { path: /a, methods: [FETCH] }", "unknown method"),
        (
            "- { path: /a, access: public, any_role: [x] }",
            "need a signed-in user",
        ),
        (
            "- { path: /a, attributes: { structure: [] } }",
            "at least one accepted value",
        ),
    ];
    for (yaml, expected) in cases {
        let error = Policy::compile(Access::Deny, &rules(yaml), false).unwrap_err();
        assert!(error.to_string().contains(expected), "{yaml}: {error}");
    }
    assert!(serde_norway::from_str::<Vec<RuleConfig>>("- { path: /a, rolez: [x] }").is_err());
    // The old spelling of the foundation still works.
    let old = rules("- { path_prefix: /public, access: public }");
    assert!(Policy::compile(Access::Deny, &old, false)
        .unwrap()
        .is_public("GET", "/public/x"));
}

#[test]
fn roles_are_derived_from_directory_roles_groups_and_attributes() {
    let mapping: RoleMapping = serde_norway::from_str(
        r#"
groups:
  "cn=bip-admins": admin
  "cn=staff": [agent, reader]
attributes:
  - attribute: ent_function
    values: { DIR: direction, DOC: documentaliste }
"#,
    )
    .unwrap();
    let mut attrs = BTreeMap::new();
    attrs.insert("ent_function".into(), strings(&["DOC", "EDU"]));
    let directory_roles = strings(&["utilisateur", "reader"]);
    let groups = strings(&["cn=staff", "cn=unrelated"]);
    let roles = mapping.derive(&RoleSources {
        directory_roles: &directory_roles,
        groups: &groups,
        attributes: &attrs,
    });
    assert_eq!(
        roles,
        strings(&["agent", "documentaliste", "reader", "utilisateur"])
    );
    let without_directory = RoleMapping {
        directory_roles: false,
        ..mapping
    };
    let roles = without_directory.derive(&RoleSources {
        directory_roles: &directory_roles,
        groups: &[],
        attributes: &BTreeMap::new(),
    });
    assert!(roles.is_empty());
}

#[test]
fn eidas_levels_are_ordered() {
    assert!(level_at_least("eidas2", "eidas1"));
    assert!(!level_at_least("eidas1", "eidas2"));
    assert!(level_at_least("urn:gold", "urn:gold"));
    assert!(!level_at_least("loa1", "eidas1"));
}
