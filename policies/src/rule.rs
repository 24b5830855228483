//! One rule: which requests it matches and what it requires of them.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::level::level_at_least;
use crate::matcher::PathMatcher;
use crate::RuleError;
use crate::{Access, Decision, Subject};

/// A rule as written in the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A name for `policy explain` and the logs.
    #[serde(default)]
    pub name: Option<String>,
    /// Matches this path and everything below it, on segment boundaries: `/public` matches
    /// `/public` and `/public/x`, never `/publicity`.
    #[serde(default, alias = "path_prefix")]
    pub path: Option<String>,
    /// Matches paths with `*` (within one segment), `**` (any number of segments) and `?`.
    #[serde(default)]
    pub glob: Option<String>,
    /// Matches paths with a regular expression (unanchored unless written with `^` / `$`).
    #[serde(default)]
    pub regex: Option<String>,
    /// Methods the rule applies to (all when empty).
    #[serde(default)]
    pub methods: Vec<String>,
    /// `public`, `authenticated` (the default) or `deny`.
    #[serde(default)]
    pub access: Option<Access>,
    /// At least one of these roles.
    #[serde(default)]
    pub any_role: Vec<String>,
    /// Every one of these roles.
    #[serde(default)]
    pub all_roles: Vec<String>,
    /// Each named attribute must have at least one of the listed values
    /// (e.g. `structure: [0751234A, 0759876Z]`).
    #[serde(default)]
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The authentication level must be at least this (`eidas1` < `eidas2` < `eidas3`; other
    /// values must be equal).
    #[serde(default)]
    pub min_auth_level: Option<String>,
}

/// A compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: Option<String>,
    matcher: PathMatcher,
    methods: Vec<String>,
    access: Access,
    any_role: Vec<String>,
    all_roles: Vec<String>,
    attributes: BTreeMap<String, Vec<String>>,
    min_auth_level: Option<String>,
}

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

impl Rule {
    pub(crate) fn compile(config: &RuleConfig, case_insensitive: bool) -> Result<Rule, RuleError> {
        let matcher = match (&config.path, &config.glob, &config.regex) {
            (Some(prefix), None, None) => PathMatcher::prefix(prefix, case_insensitive)?,
            (None, Some(glob), None) => PathMatcher::glob(glob, case_insensitive)?,
            (None, None, Some(regex)) => PathMatcher::regex(regex, case_insensitive)?,
            (None, None, None) => return Err(RuleError::NoMatcher),
            _ => return Err(RuleError::SeveralMatchers),
        };
        let mut methods = Vec::new();
        for method in &config.methods {
            let upper = method.to_ascii_uppercase();
            if !METHODS.contains(&upper.as_str()) {
                return Err(RuleError::UnknownMethod(method.clone()));
            }
            methods.push(upper);
        }
        let conditions = !config.any_role.is_empty()
            || !config.all_roles.is_empty()
            || !config.attributes.is_empty()
            || config.min_auth_level.is_some();
        let access = config.access.unwrap_or(Access::Authenticated);
        if conditions && access != Access::Authenticated {
            return Err(RuleError::ConditionsNeedSignIn(
                format!("{access:?}").to_lowercase(),
            ));
        }
        if config.attributes.values().any(Vec::is_empty) {
            return Err(RuleError::EmptyAttributeValues);
        }
        if config
            .any_role
            .iter()
            .chain(&config.all_roles)
            .any(|r| r.trim().is_empty())
        {
            return Err(RuleError::EmptyRole);
        }
        Ok(Rule {
            name: config.name.clone(),
            matcher,
            methods,
            access,
            any_role: config.any_role.clone(),
            all_roles: config.all_roles.clone(),
            attributes: config.attributes.clone(),
            min_auth_level: config.min_auth_level.clone(),
        })
    }

    /// `path` is already lowercased for case-insensitive policies.
    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        // HEAD runs the GET handler in most frameworks: a rule on GET covers it.
        (self.methods.is_empty()
            || self
                .methods
                .iter()
                .any(|m| m == method || (method == "HEAD" && m == "GET")))
            && self.matcher.matches(path)
    }

    pub(crate) fn is_public(&self) -> bool {
        self.access == Access::Public
    }

    pub(crate) fn decide(&self, subject: Option<&Subject<'_>>) -> Decision {
        match (self.access, subject) {
            (Access::Public, _) => Decision::Allow,
            (Access::Deny, _) => Decision::Deny,
            (Access::Authenticated, None) => Decision::LoginRequired,
            (Access::Authenticated, Some(subject)) => {
                if self.satisfied_by(subject) {
                    Decision::Allow
                } else {
                    Decision::Deny
                }
            }
        }
    }

    fn satisfied_by(&self, subject: &Subject<'_>) -> bool {
        let has = |role: &String| subject.roles.iter().any(|r| r == role);
        (self.any_role.is_empty() || self.any_role.iter().any(has))
            && self.all_roles.iter().all(has)
            && self.attributes.iter().all(|(name, accepted)| {
                subject
                    .attributes
                    .get(name)
                    .is_some_and(|values| values.iter().any(|v| accepted.contains(v)))
            })
            && self.min_auth_level.as_deref().is_none_or(|required| {
                subject
                    .auth_level
                    .is_some_and(|got| level_at_least(got, required))
            })
    }

    /// One line: what the rule matches and requires.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if let Some(name) = &self.name {
            out.push_str(&format!("{name:?} "));
        }
        out.push_str(&self.matcher.describe());
        if !self.methods.is_empty() {
            out.push_str(&format!(" [{}]", self.methods.join(",")));
        }
        out.push_str(&format!(" -> {:?}", self.access).to_lowercase());
        if !self.any_role.is_empty() {
            out.push_str(&format!(", any role of {:?}", self.any_role));
        }
        if !self.all_roles.is_empty() {
            out.push_str(&format!(", all roles {:?}", self.all_roles));
        }
        for (name, values) in &self.attributes {
            out.push_str(&format!(", {name} in {values:?}"));
        }
        if let Some(level) = &self.min_auth_level {
            out.push_str(&format!(", auth level >= {level}"));
        }
        out
    }
}
