//! CAS client (CAS protocol 2.0 and 3.0): the `cas` provider.
//!
//! - Login: the browser goes to `{server}/login?service=<callback>`, the callback URL coming
//!   from configuration only (never from `Host` or `X-Forwarded-Host`), with `renew` and
//!   `gateway` when configured.
//! - Callback: the service ticket is validated at `{server}/p3/serviceValidate` (CAS 3.0) or
//!   `{server}/serviceValidate` (CAS 2.0), the ticket and service URL-encoded, through the
//!   bounded HTTP client (TLS verified, timeout, size limit, no redirects); the answer is parsed
//!   by [`response`]. Only service tickets (`ST-`) are accepted: proxy tickets are refused and
//!   no `pgtUrl` is ever sent.
//! - Single logout: [`logout_request`] reads the server's `logoutRequest` (back-channel POST
//!   or front-channel GET); the gateway ends the sessions the ticket opened.
//! - Logout: `{server}/logout?service=<where to come back>` when configured.

pub mod logout_request;
pub mod response;

use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use crate::http::BoundedHttp;
use crate::{
    logout_tag, Callback, Caller, EndpointMethod, EndpointOutcome, EndpointReply, EndpointRequest,
    EndpointRoute, EndpointSpec, FinishContext, IdentityProvider, LoginStart, LogoutHandle,
    Principal, ProviderError, ProviderState, SetupError, SignOut,
};

/// Longest service ticket accepted (the CAS protocol asks clients to accept up to 256).
const MAX_TICKET_BYTES: usize = 256;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CasVersion {
    V2,
    #[default]
    V3,
}

#[derive(Clone, Debug)]
pub struct CasSettings {
    pub id: String,
    pub display_name: String,
    /// The CAS server's base URL, e.g. `https://ent.example.org/cas`.
    pub server: Url,
    pub version: CasVersion,
    /// Ask the server to authenticate again even with an SSO session (`renew=true`).
    pub renew: bool,
    /// Ask the server not to show a login page (`gateway=true`): without an SSO session the
    /// user comes back without a ticket and the login fails cleanly.
    pub gateway: bool,
    pub timeout: Duration,
    /// At logout, continue to the server's `/logout`.
    pub logout_at_server: bool,
    pub single_logout: SingleLogout,
}

/// What of the server's single logout requests is honoured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SingleLogout {
    /// Honour them at all.
    pub enabled: bool,
    /// Also those relayed by browsers (front channel, GET), which come from anywhere.
    pub front_channel: bool,
}

impl Default for SingleLogout {
    fn default() -> Self {
        Self {
            enabled: true,
            front_channel: true,
        }
    }
}

/// The field carrying a logout request, on the callback URL.
const LOGOUT_REQUEST_FIELD: &str = "logoutRequest";
/// Endpoint names (see [`IdentityProvider::endpoints`]).
const SLO_BACK: &str = "single-logout";
const SLO_FRONT: &str = "single-logout-front";

pub struct CasProvider {
    settings: CasSettings,
    http: BoundedHttp,
}

impl CasProvider {
    pub fn new(settings: CasSettings) -> Result<CasProvider, SetupError> {
        if !matches!(settings.server.scheme(), "http" | "https") {
            return Err(SetupError::Setting {
                setting: "server",
                reason: "scheme must be https (or http)".into(),
            });
        }
        Ok(CasProvider {
            http: BoundedHttp::new(settings.timeout)?,
            settings,
        })
    }

    pub fn settings(&self) -> &CasSettings {
        &self.settings
    }

    /// `{server}/{path}`, keeping the server's own path (`/cas`).
    fn server_url(&self, path: &str) -> Url {
        let mut url = self.settings.server.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/{path}"));
        url.set_query(None);
        url
    }

    /// Where the ticket is validated.
    pub fn validation_url(&self, service: &Url, ticket: &str) -> Url {
        let path = match self.settings.version {
            CasVersion::V3 => "p3/serviceValidate",
            CasVersion::V2 => "serviceValidate",
        };
        let mut url = self.server_url(path);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("service", service.as_str());
            query.append_pair("ticket", ticket);
            if self.settings.renew {
                query.append_pair("renew", "true");
            }
        }
        url
    }
}

/// A service ticket as the callback carries it: `ST-` and printable ASCII, bounded.
fn check_ticket(ticket: &str) -> Result<(), ProviderError> {
    if ticket.starts_with("PT-") {
        return Err(ProviderError::Rejected("proxy tickets are refused".into()));
    }
    // Printable ASCII without XML's special characters: servers echo tickets in their
    // answers, and nothing there should ever be markup.
    if !ticket.starts_with("ST-")
        || ticket.len() > MAX_TICKET_BYTES
        || !ticket
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\'' | b'`'))
    {
        return Err(ProviderError::MalformedCallback(
            "the ticket is not a CAS service ticket".into(),
        ));
    }
    Ok(())
}

#[async_trait]
impl IdentityProvider for CasProvider {
    fn id(&self) -> &str {
        &self.settings.id
    }

    fn display_name(&self) -> &str {
        &self.settings.display_name
    }

    async fn begin(
        &self,
        callback_url: &Url,
    ) -> Result<(LoginStart, ProviderState), ProviderError> {
        let mut location = self.server_url("login");
        {
            let mut query = location.query_pairs_mut();
            query.append_pair("service", callback_url.as_str());
            if self.settings.renew {
                query.append_pair("renew", "true");
            }
            if self.settings.gateway {
                query.append_pair("gateway", "true");
            }
        }
        Ok((LoginStart::Redirect { location }, ProviderState::default()))
    }

    async fn finish(
        &self,
        ctx: &FinishContext,
        callback: &Callback,
        _state: &ProviderState,
    ) -> Result<Principal, ProviderError> {
        let Some(ticket) = callback.query_param("ticket") else {
            // With `gateway=true`, the server sends users without an SSO session back bare.
            return Err(ProviderError::Denied {
                error: "no_ticket".into(),
                description: Some("the CAS server sent the user back without a ticket".into()),
            });
        };
        check_ticket(ticket)?;
        let url = self.validation_url(&ctx.callback_url, ticket);
        let request = http::Request::get(url.as_str())
            .header("accept", "application/xml, text/xml")
            .body(Vec::new())
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("ticket validation: {e}")))?;
        if !response.status().is_success() {
            return Err(ProviderError::Unavailable(format!(
                "ticket validation answered {}",
                response.status()
            )));
        }
        let success = match response::parse(response.body()) {
            Ok(Ok(success)) => success,
            Ok(Err(failure)) => {
                // Servers echo the ticket in their message: it stays out of the audit log.
                let message = failure.message.replace(ticket, "<ticket>");
                let reason = format!("CAS {}: {message}", failure.code);
                return Err(match failure.code.as_str() {
                    "INVALID_TICKET" | "INVALID_SERVICE" => ProviderError::InvalidProof(reason),
                    _ => ProviderError::Rejected(reason),
                });
            }
            Err(reason) => {
                return Err(ProviderError::Rejected(format!(
                    "untrustworthy CAS answer: {reason}"
                )))
            }
        };
        let auth_time = success
            .attributes
            .get("authenticationDate")
            .and_then(|values| values.first())
            .and_then(|date| {
                time::OffsetDateTime::parse(date, &time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(time::OffsetDateTime::now_utc);
        Ok(Principal {
            provider: self.settings.id.clone(),
            subject: success.user,
            attributes: success.attributes,
            auth_time,
            auth_level: None,
            logout: LogoutHandle::Cas {
                service_ticket: ticket.to_owned(),
            },
        })
    }

    /// Single logout requests name the service ticket that opened the session.
    fn session_tags(&self, principal: &Principal) -> Vec<String> {
        match &principal.logout {
            LogoutHandle::Cas { service_ticket } => {
                vec![logout_tag(&self.settings.id, "st", service_ticket)]
            }
            _ => Vec::new(),
        }
    }

    /// The server's logout requests come to the callback URL: POSTed by the server
    /// (back channel) or relayed by browsers in a GET (front channel).
    fn endpoints(&self) -> Vec<EndpointSpec> {
        vec![
            EndpointSpec {
                name: SLO_BACK,
                route: EndpointRoute::OnCallback(LOGOUT_REQUEST_FIELD),
                method: EndpointMethod::Post,
                caller: Caller::Server,
            },
            EndpointSpec {
                name: SLO_FRONT,
                route: EndpointRoute::OnCallback(LOGOUT_REQUEST_FIELD),
                method: EndpointMethod::Get,
                caller: Caller::Browser,
            },
        ]
    }

    /// Logout requests are not signed: the answer is the same `200` whether the ticket was
    /// known or not (nothing to learn by probing), and a malformed request changes nothing.
    async fn endpoint(&self, name: &str, request: &EndpointRequest<'_>) -> EndpointOutcome {
        let ok = || EndpointReply::text(200, "ok\n");
        let refused = |reason: &str, reply: EndpointReply| EndpointOutcome::Refused {
            reason: reason.to_owned(),
            reply,
        };
        let slo = self.settings.single_logout;
        if !slo.enabled {
            return refused("single logout disabled for this provider", ok());
        }
        let front = name == SLO_FRONT;
        if front && !slo.front_channel {
            return refused(
                "front-channel logout request refused (single_logout.front_channel)",
                EndpointReply::text(403, "forbidden\n"),
            );
        }
        let mut values = request.values(LOGOUT_REQUEST_FIELD);
        let (Some(value), None) = (values.next(), values.next()) else {
            return refused("exactly one logoutRequest is required", ok());
        };
        let xml = if front {
            logout_request::decode_front_channel(value)
        } else {
            Ok(value.to_owned())
        };
        match xml.and_then(|xml| logout_request::session_index(&xml)) {
            Ok(ticket) => EndpointOutcome::EndSessions {
                tags: vec![logout_tag(&self.settings.id, "st", &ticket)],
                subject: None,
                reply: ok(),
            },
            // The same answer as for a known ticket: nothing to learn, nothing changed.
            Err(reason) => refused(&reason.to_string(), ok()),
        }
    }

    async fn sign_out(
        &self,
        _principal: &Principal,
        post_logout_redirect_uri: &Url,
        state: &str,
    ) -> Result<Option<SignOut>, ProviderError> {
        if !self.settings.logout_at_server {
            return Ok(None);
        }
        // CAS has no state parameter: it goes in the service URL the server sends users back to.
        let mut service = post_logout_redirect_uri.clone();
        service.query_pairs_mut().append_pair("state", state);
        let mut url = self.server_url("logout");
        url.query_pairs_mut()
            .append_pair("service", service.as_str());
        Ok(Some(SignOut::Redirect { location: url }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(server: &str, version: CasVersion) -> CasProvider {
        CasProvider::new(CasSettings {
            id: "ent".into(),
            display_name: "ENT".into(),
            server: Url::parse(server).unwrap(),
            version,
            renew: false,
            gateway: false,
            timeout: Duration::from_secs(5),
            logout_at_server: true,
            single_logout: SingleLogout::default(),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn login_and_validation_urls_keep_the_server_path_and_encode_everything() {
        let cas = provider("https://ent.example.org/cas/", CasVersion::V3);
        let service = Url::parse("https://bib.example.org/.guichet/callback/ent").unwrap();
        let (start, _) = cas.begin(&service).await.unwrap();
        let LoginStart::Redirect { location } = start else {
            panic!("a redirect")
        };
        assert_eq!(
            location.as_str(),
            "https://ent.example.org/cas/login?service=https%3A%2F%2Fbib.example.org%2F.guichet%2Fcallback%2Fent"
        );
        let url = cas.validation_url(&service, "ST-a&b=c%26d");
        assert_eq!(url.path(), "/cas/p3/serviceValidate");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                ("service".to_string(), service.to_string()),
                ("ticket".to_string(), "ST-a&b=c%26d".to_string())
            ]
        );
        let v2 = provider("https://cas.example.org", CasVersion::V2);
        assert_eq!(
            v2.validation_url(&service, "ST-1").path(),
            "/serviceValidate"
        );
    }

    #[tokio::test]
    async fn renew_and_gateway_are_asked_for_when_configured() {
        let mut settings = provider("https://cas.example.org/cas", CasVersion::V3)
            .settings()
            .clone();
        settings.renew = true;
        let renew = CasProvider::new(settings.clone()).unwrap();
        let service = Url::parse("https://app.example.org/.guichet/callback/ent").unwrap();
        let (LoginStart::Redirect { location }, _) = renew.begin(&service).await.unwrap() else {
            panic!("a redirect")
        };
        assert!(location.as_str().ends_with("&renew=true"), "{location}");
        assert!(renew
            .validation_url(&service, "ST-1")
            .as_str()
            .ends_with("&renew=true"));
        settings.renew = false;
        settings.gateway = true;
        let gateway = CasProvider::new(settings).unwrap();
        let (LoginStart::Redirect { location }, _) = gateway.begin(&service).await.unwrap() else {
            panic!("a redirect")
        };
        assert!(location.as_str().ends_with("&gateway=true"), "{location}");
        // Sent back without a ticket: a clean refusal.
        let ctx = FinishContext {
            callback_url: service.clone(),
            proofs: std::sync::Arc::new(crate::ProcessProofs::default()),
        };
        let result = gateway
            .finish(&ctx, &Callback::default(), &ProviderState::default())
            .await;
        assert!(matches!(result, Err(ProviderError::Denied { .. })));
    }

    #[test]
    fn only_service_tickets_are_accepted() {
        assert!(check_ticket("ST-1-abc").is_ok());
        assert!(matches!(
            check_ticket("PT-1"),
            Err(ProviderError::Rejected(_))
        ));
        for bad in [
            "",
            "TGT-1",
            "ST-a b",
            "ST-\r\n",
            "ST-1</cas:user>",
            "ST-1\"x",
            &format!("ST-{}", "x".repeat(300)),
        ] {
            assert!(check_ticket(bad).is_err(), "{bad:?}");
        }
    }
}
