//! Guichet's access policy model and its evaluation.
//!
//! Pure: no I/O, no clock, no protocol. The gateway asks "what does this application require for
//! this (already normalized) path?" and enforces the answer. The full role policy engine (roles
//! from the directory, per-application rules) grows here; today an application, or a path prefix
//! in it, is either public or requires an authenticated user.

use serde::Deserialize;

/// What a request must satisfy to reach the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone, signed in or not. Identity headers are still stripped, and injected when a
    /// session exists.
    Public,
    /// A valid session is required.
    Authenticated,
}

/// An access requirement for every path under `prefix`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRule {
    /// Matches the path itself and everything below it, on segment boundaries: `/public` matches
    /// `/public` and `/public/x`, never `/publicity`.
    pub path_prefix: String,
    pub access: Access,
}

/// An application's access policy: a default and more specific path rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessPolicy {
    default: Access,
    /// Sorted longest prefix first, so the most specific rule wins.
    rules: Vec<PathRule>,
    /// For applications that ignore case in paths (IIS, ASP.NET): `/ADMIN` is `/admin`.
    case_insensitive: bool,
}

impl AccessPolicy {
    pub fn new(default: Access, mut rules: Vec<PathRule>) -> Self {
        rules.sort_by_key(|rule| std::cmp::Reverse(rule.path_prefix.len()));
        Self {
            default,
            rules,
            case_insensitive: false,
        }
    }

    /// Paths are compared case-insensitively (ASCII), as the application itself does.
    pub fn case_insensitive(mut self) -> Self {
        self.case_insensitive = true;
        for rule in &mut self.rules {
            rule.path_prefix = rule.path_prefix.to_ascii_lowercase();
        }
        self
    }

    /// The requirement for `path`, which must already be normalized by the caller (no dot
    /// segments, no percent-encoded separators): this function compares strings, nothing more.
    pub fn required(&self, path: &str) -> Access {
        let lowered;
        let path = if self.case_insensitive {
            lowered = path.to_ascii_lowercase();
            &lowered
        } else {
            path
        };
        self.rules
            .iter()
            .find(|rule| prefix_matches(&rule.path_prefix, path))
            .map(|rule| rule.access)
            .unwrap_or(self.default)
    }
}

/// Segment-aware prefix match.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(prefix: &str, access: Access) -> PathRule {
        PathRule {
            path_prefix: prefix.into(),
            access,
        }
    }

    #[test]
    fn most_specific_rule_wins() {
        let policy = AccessPolicy::new(
            Access::Authenticated,
            vec![
                rule("/public", Access::Public),
                rule("/public/private", Access::Authenticated),
            ],
        );
        assert_eq!(policy.required("/"), Access::Authenticated);
        assert_eq!(policy.required("/public"), Access::Public);
        assert_eq!(policy.required("/public/"), Access::Public);
        assert_eq!(policy.required("/public/a.css"), Access::Public);
        assert_eq!(policy.required("/public/private/x"), Access::Authenticated);
    }

    #[test]
    fn case_insensitive_policies_for_case_insensitive_apps() {
        let rules = vec![rule("/Admin", Access::Authenticated)];
        let sensitive = AccessPolicy::new(Access::Public, rules.clone());
        assert_eq!(sensitive.required("/ADMIN/x"), Access::Public);
        let insensitive = AccessPolicy::new(Access::Public, rules).case_insensitive();
        assert_eq!(insensitive.required("/ADMIN/x"), Access::Authenticated);
        assert_eq!(insensitive.required("/admin"), Access::Authenticated);
    }

    #[test]
    fn prefixes_match_on_segment_boundaries_only() {
        let policy = AccessPolicy::new(
            Access::Authenticated,
            vec![rule("/public/", Access::Public)],
        );
        assert_eq!(policy.required("/publicity"), Access::Authenticated);
        assert_eq!(policy.required("/public"), Access::Public);
        assert!(prefix_matches("/", "/anything"));
    }
}
