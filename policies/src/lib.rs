//! Guichet's access policy model and its evaluation.
//!
//! Pure: no I/O, no clock, no protocol. An application's policy is an ordered list of rules,
//! each matching normalized paths (prefix, glob or regex) and methods and saying what the request
//! needs: nothing (public), a signed-in user, roles (any of, all of), attribute conditions
//! (structure in a list, authentication level at least `eidas1`), or nothing at all (deny). The
//! first matching rule decides; without one, the application's default does. Roles are computed
//! per application by [`roles::RoleMapping`] from directory roles, groups and provider
//! attributes.
//!
//! Paths must already be normalized by the caller (no dot segments, no encoded separators):
//! this crate compares strings, nothing more.

mod level;
mod matcher;
pub mod roles;
mod rule;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use level::level_at_least;
pub use matcher::prefix_matches;
pub use rule::{Rule, RuleConfig};

/// The base requirement of a rule or of an application's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Anyone, signed in or not. Identity headers are still stripped, and injected when a
    /// session exists.
    Public,
    /// A valid session is required (and whatever roles or conditions the rule adds).
    Authenticated,
    /// Nobody, signed in or not.
    Deny,
}

/// Who is asking, as far as policies care.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The user's roles for this application (already derived).
    pub roles: &'a [String],
    /// Attributes conditions may test (provider attributes, directory structures...).
    pub attributes: &'a BTreeMap<String, Vec<String>>,
    /// Authentication level (`eidas1`...), when the provider said.
    pub auth_level: Option<&'a str>,
}

/// What the gateway must do with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Nobody is signed in and the rule needs someone: start a login.
    LoginRequired,
    /// Signed in (or not) and not allowed: a 403 page.
    Deny,
}

/// A decision and the rule that made it (`None`: the application's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    pub rule: Option<usize>,
}

/// A rule the policy cannot be built with, and which one it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rules[{index}]: {error}")]
pub struct PolicyError {
    pub index: usize,
    #[source]
    pub error: RuleError,
}

/// What is wrong with one rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern { pattern: String, reason: String },
    #[error("{kind} {value:?} must start with /")]
    NotAbsolute { kind: &'static str, value: String },
    #[error("one of path, glob or regex is required")]
    NoMatcher,
    #[error("only one of path, glob or regex")]
    SeveralMatchers,
    #[error("methods: unknown method {0:?}")]
    UnknownMethod(String),
    #[error("roles, attributes and min_auth_level need a signed-in user: access cannot be {0}")]
    ConditionsNeedSignIn(String),
    #[error("attributes: every attribute needs at least one accepted value")]
    EmptyAttributeValues,
    #[error("roles must not be empty strings")]
    EmptyRole,
}

/// An application's policy: ordered rules and a default.
#[derive(Clone, Debug)]
pub struct Policy {
    default: Access,
    rules: Vec<Rule>,
    /// For applications that ignore case in paths (IIS, ASP.NET): `/ADMIN` is `/admin`.
    case_insensitive: bool,
}

impl Policy {
    /// Compiles rules in order. Any invalid rule is an error naming it: the gateway refuses to
    /// start rather than run a policy it does not understand.
    pub fn compile(
        default: Access,
        rules: &[RuleConfig],
        case_insensitive: bool,
    ) -> Result<Policy, PolicyError> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, config)| {
                Rule::compile(config, case_insensitive)
                    .map_err(|error| PolicyError { index, error })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy {
            default,
            rules,
            case_insensitive,
        })
    }

    /// A policy that lets nobody in: what an application gets if its policy cannot be built.
    pub fn deny_all() -> Policy {
        Policy {
            default: Access::Deny,
            rules: Vec::new(),
            case_insensitive: false,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first rule matching the request, if any.
    pub fn matching_rule(&self, method: &str, path: &str) -> Option<usize> {
        let lowered;
        let path = if self.case_insensitive {
            lowered = path.to_ascii_lowercase();
            lowered.as_str()
        } else {
            path
        };
        self.rules
            .iter()
            .position(|rule| rule.matches(method, path))
    }

    /// Whether the request may go through without anyone signed in: the gateway then needs no
    /// session (a session store outage does not take public pages down).
    pub fn is_public(&self, method: &str, path: &str) -> bool {
        match self.matching_rule(method, path) {
            Some(index) => self.rules[index].is_public(),
            None => self.default == Access::Public,
        }
    }

    /// Decides a request. `subject` is `None` when nobody is signed in.
    pub fn evaluate(&self, method: &str, path: &str, subject: Option<&Subject<'_>>) -> Outcome {
        let rule = self.matching_rule(method, path);
        let decision = match rule {
            Some(index) => self.rules[index].decide(subject),
            None => match (self.default, subject) {
                (Access::Public, _) => Decision::Allow,
                (Access::Authenticated, Some(_)) => Decision::Allow,
                (Access::Authenticated, None) => Decision::LoginRequired,
                (Access::Deny, _) => Decision::Deny,
            },
        };
        Outcome { decision, rule }
    }

    /// Describes the rule that decided, for `policy explain` and audit lines.
    pub fn describe(&self, rule: Option<usize>) -> String {
        match rule {
            Some(index) => format!("rules[{index}] {}", self.rules[index].describe()),
            None => format!("default ({:?})", self.default).to_lowercase(),
        }
    }
}

#[cfg(test)]
mod tests;
