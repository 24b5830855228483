//! The one place where a request's fate is decided: from the session (or none), the
//! directory's answer about its person and the application's policy, to allow, deny, a login,
//! or a refusal by the directory before any rule, with what the application will see (roles,
//! attributes, identity headers).
//!
//! The proxy and `guichet policy explain` both call [`decide`]; each only presents the result
//! (a reply or upstream headers, a text). Nothing here does I/O: the caller looks the session
//! and the person up first.

use std::sync::Arc;

use guichet_directory_client::AccountState;
use guichet_policies::{Decision, Subject};

use crate::config::UnknownPerson;
use crate::http::pages::{text, Bilingual};
use crate::identity::{now, AppView, Identity, Person};
use crate::state::App;

/// Why the directory's answer stops a signed-in person on an application, whatever its rules.
#[derive(Debug, PartialEq, Eq)]
pub enum Block<'p> {
    /// The directory cannot answer (and no stale answer is allowed): 503.
    DirectoryDown(&'p str),
    /// The person may not go on: the status, the audit reason and the page's message.
    Account(u16, &'static str, Bilingual),
}

impl Block<'_> {
    /// The status and the reason, for audit logs and `policy explain`.
    pub fn status_and_reason(&self) -> (u16, String) {
        match self {
            Block::DirectoryDown(reason) => (503, format!("the directory cannot answer: {reason}")),
            Block::Account(status, reason, _) => (*status, (*reason).to_owned()),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict<'p> {
    Allow,
    /// Refused by a rule (403).
    Deny,
    /// Nobody (accepted) is signed in and the rule needs someone.
    LoginRequired,
    /// Refused before any rule by what the directory says of the person.
    Blocked(Block<'p>),
}

/// A decision and what it was made on.
pub struct Decided<'p> {
    pub verdict: Verdict<'p>,
    /// Whether the request is made as the signed-in person. False when nobody is, when the
    /// session comes from a provider this application does not accept, or on a public page for
    /// a person the directory stops (served, but anonymously, never as them).
    pub as_signed_in: bool,
    /// What the application sees of the person (roles, attributes, headers), when the request
    /// is made as them.
    pub view: Option<Arc<AppView>>,
    /// The rule that decided (or why nothing did).
    pub rule: DecidingRule,
}

/// What decided, described only when someone reads it (a refusal's audit line, `policy
/// explain`): formatting it for every allowed request was a measurable part of the request path.
pub enum DecidingRule {
    /// The policy's rule at this index, or its default.
    Policy(Option<usize>),
    /// The request was stopped before any rule, for this reason.
    BeforeAnyRule(String),
}

impl DecidingRule {
    pub fn describe(&self, app: &App) -> String {
        match self {
            DecidingRule::Policy(rule) => app.policy.describe(*rule),
            DecidingRule::BeforeAnyRule(reason) => format!("before any rule: {reason}"),
        }
    }
}

/// Whether a session counts on `app`: only one from a provider the app accepts (a guest
/// account must not open an agents' application that shares the host or cookie domain).
pub fn accepts(app: &App, identity: &Identity) -> bool {
    app.providers.contains(&identity.record.principal.provider)
}

/// What the directory's answer means on `app`, before any rule.
pub fn person_block<'p>(app: &App, person: &'p Person) -> Option<Block<'p>> {
    let (status, reason, message) = match person {
        Person::NotLinked => return None,
        Person::Unavailable(reason) => return Some(Block::DirectoryDown(reason)),
        Person::Unknown if app.unknown_person == UnknownPerson::Guest => return None,
        Person::Unknown => (403, "unknown to the directory", text::ACCOUNT_UNKNOWN),
        Person::Ambiguous(_) => (
            403,
            "pivot matches several directory people",
            text::ACCOUNT_AMBIGUOUS,
        ),
        Person::Known(user) => match user.state_at(now()) {
            AccountState::Active => return None,
            AccountState::Locked => (403, "account locked", text::ACCOUNT_LOCKED),
            AccountState::NotYetValid => (403, "account not yet valid", text::ACCOUNT_NOT_YET),
            AccountState::Expired => (403, "account expired", text::ACCOUNT_EXPIRED),
        },
    };
    Some(Block::Account(status, reason, message))
}

/// Decides `method` `path` on `app` (the `app_index`-th) for `identity`, whose person the
/// directory answered as `person` (looked up by the caller for an accepted identity; `None`
/// when there is no identity).
pub fn decide<'p>(
    app_index: usize,
    app: &App,
    method: &str,
    path: &str,
    identity: Option<&Identity>,
    person: Option<&'p Person>,
) -> Decided<'p> {
    let public = app.policy.is_public(method, path);
    let mut signed_in = identity.filter(|identity| accepts(app, identity));
    let block = signed_in.and(person).and_then(|p| person_block(app, p));
    if let Some(block) = block {
        if public {
            signed_in = None;
        } else {
            let (_, reason) = block.status_and_reason();
            return Decided {
                verdict: Verdict::Blocked(block),
                as_signed_in: true,
                view: None,
                rule: DecidingRule::BeforeAnyRule(reason.to_string()),
            };
        }
    }
    let view = match (signed_in, person) {
        (Some(identity), Some(person)) => Some(identity.view(app_index, app, person)),
        _ => None,
    };
    let subject = match (signed_in, &view) {
        (Some(identity), Some(view)) => Some(Subject {
            roles: &view.roles,
            attributes: &view.attributes,
            auth_level: identity
                .record
                .principal
                .auth_level
                .as_ref()
                .map(|level| level.0.as_str()),
        }),
        _ => None,
    };
    let outcome = app.policy.evaluate(method, path, subject.as_ref());
    let verdict = match outcome.decision {
        Decision::Allow => Verdict::Allow,
        Decision::Deny => Verdict::Deny,
        Decision::LoginRequired => Verdict::LoginRequired,
    };
    Decided {
        verdict,
        as_signed_in: signed_in.is_some(),
        view,
        rule: DecidingRule::Policy(outcome.rule),
    }
}
