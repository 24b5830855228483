//! Audit events: one structured log line (target `audit`) per login success or failure and per
//! logout. They name who, through which provider and app, from which client IP, with the
//! correlation id shown to the user, and the precise reason of a failure. They never carry a
//! password, cookie, token, ticket or assertion.

use std::net::IpAddr;

pub struct AuditContext<'a> {
    pub correlation_id: &'a str,
    pub app: &'a str,
    pub client_ip: Option<IpAddr>,
}

pub fn login_succeeded(ctx: &AuditContext<'_>, provider: &str, subject: &str) {
    tracing::info!(
        target: "audit",
        event = "login_success",
        provider,
        subject,
        app = ctx.app,
        client_ip = ?ctx.client_ip,
        correlation_id = ctx.correlation_id,
    );
}

/// `login` is what the user typed (for local logins) or the subject when known.
pub fn login_failed(ctx: &AuditContext<'_>, provider: &str, login: Option<&str>, reason: &str) {
    tracing::warn!(
        target: "audit",
        event = "login_failure",
        provider,
        login,
        reason,
        app = ctx.app,
        client_ip = ?ctx.client_ip,
        correlation_id = ctx.correlation_id,
    );
}

/// A login from a busy address (many failures there) was held back before its check.
pub fn login_slowed(ctx: &AuditContext<'_>, provider: &str, delay: std::time::Duration) {
    tracing::warn!(
        target: "audit",
        event = "login_slowed",
        provider,
        delay_ms = delay.as_millis() as u64,
        app = ctx.app,
        client_ip = ?ctx.client_ip,
        correlation_id = ctx.correlation_id,
    );
}

pub fn logged_out(ctx: &AuditContext<'_>, provider: &str, subject: &str) {
    tracing::info!(
        target: "audit",
        event = "logout",
        provider,
        subject,
        app = ctx.app,
        client_ip = ?ctx.client_ip,
        correlation_id = ctx.correlation_id,
    );
}

/// A provider ended sessions through back-channel logout.
/// The local session ended, but the provider's own logout could not be reached.
pub fn provider_logout_failed(ctx: &AuditContext<'_>, provider: &str, reason: &str) {
    tracing::warn!(
        target: "audit",
        event = "provider_logout_failed",
        provider,
        reason,
        app = ctx.app,
        client_ip = ?ctx.client_ip,
        correlation_id = ctx.correlation_id,
    );
}

pub fn backchannel_logout(
    ctx: &AuditContext<'_>,
    provider: &str,
    subject: Option<&str>,
    sessions_ended: usize,
) {
    tracing::info!(
        target: "audit",
        event = "backchannel_logout",
        provider,
        subject,
        sessions_ended,
        client_ip = ?ctx.client_ip,
        correlation_id = ctx.correlation_id,
    );
}

pub fn backchannel_logout_refused(ctx: &AuditContext<'_>, provider: &str, reason: &str) {
    tracing::warn!(
        target: "audit",
        event = "backchannel_logout_refused",
        provider,
        reason,
        client_ip = ?ctx.client_ip,
        correlation_id = ctx.correlation_id,
    );
}

/// The app's policy refused a signed-in user (or refuses everyone on that path).
pub fn access_denied(ctx: &AuditContext<'_>, subject: Option<&str>, rule: &str) {
    tracing::warn!(
        target: "audit",
        event = "access_denied",
        subject,
        rule,
        app = ctx.app,
        client_ip = ?ctx.client_ip,
        correlation_id = ctx.correlation_id,
    );
}

pub fn request_refused(ctx: &AuditContext<'_>, reason: &str) {
    tracing::warn!(
        target: "audit",
        event = "request_refused",
        reason,
        app = ctx.app,
        client_ip = ?ctx.client_ip,
        correlation_id = ctx.correlation_id,
    );
}

/// Directory cache entries were invalidated through the admin endpoint: one person (by the
/// directory attribute and value logins are linked by) or everyone.
pub fn directory_invalidated(person: Option<(&str, &str)>, peer: Option<IpAddr>) {
    tracing::info!(
        target: "audit",
        event = "directory_invalidated",
        attribute = person.map(|(attribute, _)| attribute),
        value = person.map(|(_, value)| value),
        everyone = person.is_none(),
        client_ip = ?peer,
    );
}
