//! CAS single logout: the server's `logoutRequest` on the callback URL, back-channel (POST form
//! field) or front-channel (GET parameter, base64 of raw DEFLATE). It names the service ticket
//! that opened the session; the sessions filed under that ticket end on every replica.
//!
//! Logout requests are not signed: the answer is the same `200` whether the ticket was known or
//! not (nothing to learn by probing), a malformed request changes nothing, and deployments can
//! accept back-channel requests only from the CAS server's addresses.

use guichet_protocols::cas::logout_request;

use std::time::Duration;

use super::client_bucket;
use super::login::ticket_tag;
use crate::audit;
use crate::proxy::RequestCtx;
use crate::respond::Reply;
use crate::session::StoreError;
use crate::state::Gateway;

/// How the logout request arrived.
pub enum Channel {
    /// POSTed by the CAS server itself.
    Back,
    /// Relayed by the user's browser (GET).
    Front,
}

pub async fn handle(
    gateway: &Gateway,
    ctx: &RequestCtx,
    provider_id: &str,
    channel: Channel,
    request: &str,
) -> Result<Reply, StoreError> {
    let ok = || Reply::text(200, "ok\n");
    let refuse =
        |reason: &str| audit::backchannel_logout_refused(&ctx.audit(gateway), provider_id, reason);
    let Some(settings) = gateway
        .providers
        .get(provider_id)
        .and_then(|entry| entry.cas.as_ref())
    else {
        return Ok(Reply::text(404, "not found\n"));
    };
    if !settings.enabled {
        refuse("single logout disabled for this provider");
        return Ok(ok());
    }
    if matches!(channel, Channel::Front) && !settings.accepts_front_channel() {
        refuse("front-channel logout request refused (single_logout.front_channel)");
        return Ok(Reply::text(403, "forbidden\n"));
    }
    if matches!(channel, Channel::Back) && !settings.allowed_sources.is_empty() {
        let allowed = ctx
            .client_ip
            .is_some_and(|ip| settings.allowed_sources.iter().any(|net| net.contains(&ip)));
        if !allowed {
            refuse("logout request from an address outside single_logout.allowed_sources");
            return Ok(Reply::text(403, "forbidden\n"));
        }
    }
    // Each request costs a store lookup: bounded per source address.
    let sent = gateway
        .store
        .increment(
            &format!("slo:{provider_id}:ip:{}", client_bucket(ctx.client_ip)),
            Duration::from_secs(60),
        )
        .await?;
    if sent > settings.max_per_minute {
        refuse("too many logout requests from this address");
        return Ok(Reply::text(429, "too many requests\n"));
    }
    let xml = match channel {
        Channel::Back => Ok(request.to_owned()),
        Channel::Front => logout_request::decode_front_channel(request),
    };
    let ticket = match xml.and_then(|xml| logout_request::session_index(&xml)) {
        Ok(ticket) => ticket,
        Err(reason) => {
            refuse(&reason);
            // The same answer as for a known ticket: nothing to learn, nothing changed.
            return Ok(ok());
        }
    };
    let ended = gateway
        .store
        .end_tagged_sessions(&ticket_tag(provider_id, &ticket))
        .await?;
    audit::backchannel_logout(&ctx.audit(gateway), provider_id, None, ended);
    gateway
        .metrics
        .logouts
        .with_label_values(&[provider_id])
        .inc_by(ended as u64);
    Ok(ok())
}
