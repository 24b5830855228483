//! Endpoints that providers own (single logout, public keys, SAML metadata), routed here
//! generically: `/.guichet/{name}/{provider}` for [`EndpointRoute::Path`], and the callback URL
//! for [`EndpointRoute::OnCallback`] (CAS single logout). The gateway guards them the same way
//! whatever the protocol: server-to-server endpoints only from the provider's allowed sources,
//! a per-address limit, then ends the sessions the provider names on every replica, with the
//! audit events and metrics.

use std::time::Duration;

use guichet_protocols::{
    BrowserTo, Caller, EndpointMethod, EndpointOutcome, EndpointReply, EndpointRequest,
    EndpointSpec,
};

use super::client_bucket;
use super::Request;
use crate::http::respond::Reply;
use crate::session::StoreError;
use crate::state::{Gateway, ProviderEntry};
use crate::telemetry::audit;

/// What an HTTP method is to provider endpoints.
pub fn method_of(method: &http::Method) -> Option<EndpointMethod> {
    match *method {
        http::Method::GET | http::Method::HEAD => Some(EndpointMethod::Get),
        http::Method::POST => Some(EndpointMethod::Post),
        _ => None,
    }
}

/// Hands `request` to the provider's endpoint `spec` after the generic checks, and carries out
/// what it answers.
pub async fn handle(
    gateway: &Gateway,
    req: &Request,
    provider_id: &str,
    entry: &ProviderEntry,
    spec: EndpointSpec,
    request: EndpointRequest<'_>,
) -> Result<Reply, StoreError> {
    let refuse =
        |reason: &str| audit::backchannel_logout_refused(&req.audit(gateway), provider_id, reason);
    let limits = &entry.server_endpoints;
    if spec.caller == Caller::Server && !limits.allowed_sources.is_empty() {
        let allowed = req
            .client_ip
            .is_some_and(|ip| limits.allowed_sources.iter().any(|net| net.contains(&ip)));
        if !allowed {
            refuse("request from an address outside the provider's allowed_sources");
            return Ok(Reply::text(403, "forbidden\n"));
        }
    }
    if let Some(max) = limits.max_per_minute {
        let sent = gateway
            .store
            .increment(
                &format!("slo:{provider_id}:ip:{}", client_bucket(req.client_ip)),
                Duration::from_secs(60),
            )
            .await?;
        if sent > max {
            refuse("too many requests from this address");
            return Ok(Reply::text(429, "too many requests\n"));
        }
    }
    match entry.provider.endpoint(spec.name, &request).await {
        EndpointOutcome::Reply(reply) => Ok(reply_of(reply, &req.correlation_id)),
        EndpointOutcome::SignOutReturned { state } => {
            super::logout::land_after_provider_logout(gateway, req, Some(state)).await
        }
        EndpointOutcome::Refused { reason, reply } => {
            refuse(&reason);
            Ok(reply_of(reply, &req.correlation_id))
        }
        EndpointOutcome::EndSessions {
            tags,
            subject,
            reply,
        } => {
            let mut ended = 0;
            for tag in &tags {
                ended += gateway.store.end_tagged_sessions(tag).await?;
            }
            audit::backchannel_logout(&req.audit(gateway), provider_id, subject.as_deref(), ended);
            gateway
                .metrics
                .logouts
                .with_label_values(&[provider_id])
                .inc_by(ended as u64);
            Ok(reply_of(reply, &req.correlation_id))
        }
    }
}

fn reply_of(reply: EndpointReply, correlation_id: &str) -> Reply {
    match reply.navigate {
        Some(BrowserTo::Redirect { location }) => return Reply::redirect(location.as_str()),
        Some(BrowserTo::AutoPost { action, fields }) => {
            return Reply::auto_post(&action, &fields, correlation_id)
        }
        None => {}
    }
    let mut out = Reply::raw(reply.status, reply.content_type, reply.body);
    if let Some(cache) = reply.cache_control {
        out = out.with_header("cache-control", cache.to_owned());
    }
    out
}
