//! `guichet policy explain`: why may (or may not) this person open this URL? The same code
//! paths as a real request (pivot, directory, roles, account state, rules), without a login.

use std::sync::Arc;

use guichet_protocols::{AuthLevel, LogoutHandle, Principal};

use crate::http::routing::{parse_target, request_host};
use crate::identity::decision::{decide, Verdict};
use crate::identity::{now, person, Identity, Person};
use crate::session::{Pivot, SessionId, SessionRecord};
use crate::state::Gateway;

/// Why `policy explain` cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("--url: {0}")]
    Url(String),
    #[error("no application is published at {0}")]
    NoApplication(String),
    #[error("{user:?} is no local account of this application, and none of its providers ({providers}) has a directory pivot")]
    UnknownUser { user: String, providers: String },
    #[error(
        "{0} links people by the identité pivot (six fields): explain works with a local account or a single-attribute pivot"
    )]
    IdentityPivot(String),
    #[error(transparent)]
    Pivot(#[from] crate::identity::directory::PivotRefused),
}

/// The decision for `user` (a pivot value, or a local login) on `url` with `method`, as text.
pub async fn explain(
    gateway: &Gateway,
    user: &str,
    url: &str,
    method: &str,
    auth_level: Option<&str>,
) -> Result<String, ExplainError> {
    let url = url::Url::parse(url).map_err(|e| ExplainError::Url(e.to_string()))?;
    let host = request_host(url.host_str().unwrap_or(""))
        .ok_or_else(|| ExplainError::Url("no host".into()))?;
    let raw = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let target =
        parse_target(raw.as_bytes()).map_err(|e| ExplainError::Url(format!("refused: {e}")))?;
    let path = target.decision_path;
    let app_index = gateway
        .router
        .route(&host, &path)
        .ok_or_else(|| ExplainError::NoApplication(url.to_string()))?;
    let app = &gateway.apps[app_index];
    let method = method.to_ascii_uppercase();
    let mut out = format!("application: {} ({})\n", app.id, app.origin);

    // Who: a local account of one of the app's providers, or a directory person by the pivot
    // of the app's first provider that has one.
    let local = app.providers.iter().find_map(|pid| {
        gateway.providers[pid]
            .provider
            .password_verifier()
            .and_then(|verifier| verifier.lookup(user))
    });
    let (principal, pivot) = match local {
        Some(principal) => {
            let pivot = match gateway.pivots.get(&principal.provider) {
                None => None,
                Some(config) => crate::identity::directory::pivot_of(&principal, config)?,
            };
            (principal, pivot)
        }
        None => {
            let (provider, config) = app
                .providers
                .iter()
                .find_map(|pid| gateway.pivots.get(pid).map(|c| (pid.clone(), c)))
                .ok_or_else(|| ExplainError::UnknownUser {
                    user: user.to_owned(),
                    providers: app.providers.join(", "),
                })?;
            let principal = Principal {
                provider,
                subject: user.to_owned(),
                attributes: Default::default(),
                auth_time: time::OffsetDateTime::now_utc(),
                auth_level: None,
                logout: LogoutHandle::None,
            };
            if config.identity.is_some() {
                return Err(ExplainError::IdentityPivot(principal.provider));
            }
            let pivot = Pivot::new(&config.directory_attribute, user, config.case_sensitive);
            (principal, Some(pivot))
        }
    };
    let own_roles = gateway.providers[&principal.provider]
        .provider
        .own_roles(&principal);
    let record = SessionRecord {
        pivot,
        roles: own_roles,
        app: app.id.clone(),
        created_at: now(),
        last_seen: now(),
        expires_at: now() + 3600,
        views: Default::default(),
        principal,
    };
    let identity = Identity {
        id: SessionId::generate(),
        record: Arc::new(record),
    };
    out.push_str(&format!(
        "signed in as: {} (provider {})\n",
        identity.record.principal.subject, identity.record.principal.provider
    ));
    let found = person(gateway, &identity.record).await;
    match &found {
        Person::NotLinked => out.push_str("directory: not linked (no directory or no pivot)\n"),
        Person::Known(user) => out.push_str(&format!(
            "directory: {} ({:?}), structures {:?}, groups {:?}\n",
            user.id,
            user.state_at(now()),
            user.structures,
            user.groups
        )),
        Person::Unknown => out.push_str(&format!(
            "directory: unknown person (app admits unknown people as: {:?})\n",
            app.unknown_person
        )),
        Person::Unavailable(reason) => {
            out.push_str(&format!("directory: unavailable ({reason})\n"))
        }
        Person::Ambiguous(count) => out.push_str(&format!(
            "directory: {count} people carry this pivot value: nobody is chosen\n"
        )),
    }
    let view = identity.view(app_index, app, &found);
    out.push_str(&format!("roles for {}: {:?}\n", app.id, view.roles));

    // The request path's own decision (auth level: what the provider would assert,
    // `--auth-level`, for `min_auth_level` rules).
    let mut identity = identity;
    if let Some(level) = auth_level {
        let mut record = (*identity.record).clone();
        record.principal.auth_level = Some(AuthLevel(level.to_owned()));
        identity.record = Arc::new(record);
    }
    let decided = decide(
        app_index,
        app,
        &method,
        &path,
        Some(&identity),
        Some(&found),
    );
    match &decided.verdict {
        Verdict::Blocked(block) => {
            let (status, reason) = block.status_and_reason();
            out.push_str(&format!(
                "decision: deny ({status}: {reason}), before any rule\n"
            ));
        }
        verdict => {
            let decision = match verdict {
                Verdict::Allow => "allow",
                Verdict::Deny => "deny (403)",
                _ => "login required",
            };
            out.push_str(&format!(
                "decision: {decision} for {method} {path}\nrule: {}\n",
                decided.rule.describe(app)
            ));
        }
    }
    Ok(out)
}
