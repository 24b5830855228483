//! SAML 2.0 service provider (Web Browser SSO profile, single logout): the `saml` provider.
//!
//! samael (with xmlsec) does the XML signatures and writes the SP metadata; everything around
//! them is Guichet's own, because samael's `ServiceProvider` checks too little for a gateway
//! (no signing certificate means nothing verified; the Audience only checked when present;
//! 32-bit request IDs; an unescaped RelayState; an aes128-only decryption that can panic):
//!
//! - [`metadata`], [`metadata_store`]: the IdP's metadata, its signature, the federation entity,
//!   refreshes; [`sp_metadata`]: ours.
//! - [`request`]: AuthnRequest, LogoutRequest, LogoutResponse, and both bindings.
//! - [`xml_guard`]: the strict pre-scan every message goes through; [`signature`]: XML and query
//!   signatures; [`decrypt`]: encrypted assertions.
//! - [`response`]: the assertion consumer service's checks; [`attributes`]: readable names.
//! - [`logout`]: single logout both ways.
//! - [`blocking`]: xmlsec off the async workers, with a timeout.
//!
//! Logins: `begin` sends an AuthnRequest (HTTP-Redirect or HTTP-POST); the IdP POSTs a Response
//! to the app's callback URL (the ACS); `finish` checks it ([`response`], on the blocking pool),
//! then records the Response and Assertion IDs in the shared store (replays refused on every
//! replica) for as long as the response could be accepted, an hour at most
//! ([`response::MAX_CONFIRMATION_VALIDITY`]).
//!
//! Sessions are filed (for the IdP's LogoutRequests) under a hash of the full NameID (value,
//! Format, NameQualifier, SPNameQualifier) and under a hash of that NameID with the
//! SessionIndex: a SessionIndex alone is only unique if the IdP makes it so, and a NameID value
//! alone only within its format and qualifiers (see [`logout::NameIdKey`]).

mod attributes;
mod blocking;
mod decrypt;
#[doc(hidden)]
pub mod fuzzing;
mod instant;
mod logout;
mod metadata;
mod metadata_store;
mod request;
mod response;
mod settings;
mod signature;
mod sp_metadata;
mod xml_guard;

#[cfg(test)]
mod tests;

use std::time::Duration;

use async_trait::async_trait;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use url::Url;

pub use settings::{
    AuthnBinding, IdpMetadataSource, RequestedAuthnContext, SamlSettings, SignRequests, SpKeyPair,
};
pub use sp_metadata::sp_metadata_xml;

use self::decrypt::DecryptPolicy;
use self::logout::NameIdKey;
use self::metadata::{trusted_certificates, IdpMetadata, MetadataError};
use self::metadata_store::{MetadataConfig, MetadataStore};
use self::request::{pick, random_id, random_relay_state, AuthnRequest, Binding};
use self::response::Expected;
use self::settings::{setting, SpKeys, COMPARISONS};
use self::xml_guard::clip;
use crate::{
    AuthLevel, BrowserTo, Callback, Caller, EndpointMethod, EndpointOutcome, EndpointReply,
    EndpointRequest, EndpointRoute, EndpointSpec, FinishContext, IdentityProvider, LoginStart,
    LogoutHandle, Principal, ProviderError, ProviderState, SetupError, SignOut,
};

/// Endpoint names (see [`IdentityProvider::endpoints`]) and the paths they are routed at.
const METADATA_ENDPOINT: &str = "saml-metadata";
const SLO_ENDPOINT: &str = "saml-slo";
const SLO_POST_ENDPOINT: &str = "saml-slo-post";
/// How long the published SP metadata may be cached.
const METADATA_MAX_AGE: &str = "public, max-age=300";
/// Largest callback body: a SAMLResponse of 256 KiB, base64-encoded in a form.
const CALLBACK_BODY_BYTES: usize = 256 * 1024;

/// ProviderState keys.
const STATE_REQUEST_ID: &str = "request_id";
const STATE_RELAY_STATE: &str = "relay_state";
const STATE_ACS_URL: &str = "acs_url";

pub struct SamlProvider {
    settings: SamlSettings,
    keys: SpKeys,
    metadata: MetadataStore,
    sp_metadata: String,
}

impl std::fmt::Debug for SamlProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlProvider")
            .field("id", &self.settings.id)
            .field("idp", &self.metadata.snapshot().entity_id)
            .finish_non_exhaustive()
    }
}

fn metadata_error(error: MetadataError) -> SetupError {
    setting(error.setting(), &error.to_string())
}

/// The IdP's metadata cannot be used now (expired): logins are refused with the reason.
fn metadata_unusable(error: MetadataError) -> ProviderError {
    ProviderError::Unavailable(error.to_string())
}

impl SamlProvider {
    /// Checks the settings, parses the SP keys and reads (or fetches) the IdP's metadata now:
    /// every failure names the setting.
    pub fn new(settings: SamlSettings) -> Result<SamlProvider, SetupError> {
        if settings.entity_id.trim().is_empty() {
            return Err(setting("entity_id", "required"));
        }
        if settings.acs_urls.is_empty() {
            return Err(setting(
                "acs_urls",
                "at least one assertion consumer URL (an app using this provider)",
            ));
        }
        if let Some(context) = &settings.requested_authn_context {
            if !COMPARISONS.contains(&context.comparison.as_str()) {
                return Err(setting(
                    "requested_authn_context",
                    "comparison is one of exact, minimum, maximum, better",
                ));
            }
            if context.class_refs.is_empty() {
                return Err(setting(
                    "requested_authn_context",
                    "at least one AuthnContextClassRef",
                ));
            }
        }
        if settings.allow_unsolicited && settings.unsolicited_landing.is_none() {
            return Err(setting(
                "unsolicited_landing",
                "required with allow_unsolicited: the app IdP-initiated logins land on",
            ));
        }
        let keys = SpKeys::parse(&settings)?;
        if keys.signing.is_none() && settings.sign_requests == SignRequests::Always {
            return Err(setting("signing", "required with sign_requests: always"));
        }
        let trusted = trusted_certificates(&settings.metadata_signing_certificates)
            .map_err(metadata_error)?;
        let metadata = MetadataStore::load(
            &settings.id,
            MetadataConfig {
                source: settings.idp_metadata.clone(),
                idp_entity_id: settings.idp_entity_id.clone(),
                trusted,
                allow_sha1: settings.allow_sha1,
                refresh: settings.metadata_refresh,
                timeout: settings.http_timeout,
            },
        )
        .map_err(metadata_error)?;
        let idp = metadata.snapshot();
        if keys.signing.is_none()
            && settings.sign_requests == SignRequests::Auto
            && idp.want_authn_requests_signed
        {
            return Err(setting(
                "signing",
                "the IdP wants signed AuthnRequests (WantAuthnRequestsSigned): configure a \
                 signing key",
            ));
        }
        let sp_metadata = sp_metadata::sp_metadata(&settings, &keys)?;
        Ok(SamlProvider {
            settings,
            keys,
            metadata,
            sp_metadata,
        })
    }

    pub fn settings(&self) -> &SamlSettings {
        &self.settings
    }

    /// The SP metadata served at `/.guichet/saml-metadata/{id}`.
    pub fn sp_metadata(&self) -> &str {
        &self.sp_metadata
    }

    /// The IdP's entityID, as picked from its metadata.
    pub fn idp_entity_id(&self) -> String {
        self.metadata.snapshot().entity_id.clone()
    }

    /// Failed metadata refreshes since start (URL sources), for the gateway's metrics.
    pub fn metadata_refresh_failures(&self) -> u64 {
        self.metadata.refresh_failures()
    }

    /// Whether this AuthnRequest is signed.
    fn signs_requests(&self, idp: &IdpMetadata) -> bool {
        let wanted = match self.settings.sign_requests {
            SignRequests::Always => true,
            SignRequests::Never => false,
            SignRequests::Auto => idp.want_authn_requests_signed,
        };
        if wanted && self.keys.signing.is_none() {
            tracing::warn!(
                idp.id = %self.settings.id,
                "the IdP wants signed AuthnRequests and no signing key is configured"
            );
        }
        wanted
    }

    fn check_callback(&self, callback_url: &Url) -> Result<(), ProviderError> {
        if self.settings.acs_urls.contains(callback_url) {
            Ok(())
        } else {
            Err(ProviderError::Rejected(format!(
                "{callback_url} is not one of this SP's assertion consumer URLs"
            )))
        }
    }

    /// The AuthnRequest's ID when this login was started here; `None` for an unsolicited
    /// response, refused unless allowed.
    fn expected_request<'s>(
        &self,
        ctx: &FinishContext,
        callback: &Callback,
        state: &'s ProviderState,
    ) -> Result<Option<&'s str>, ProviderError> {
        if state.0.is_empty() {
            if !self.settings.allow_unsolicited {
                return Err(ProviderError::Rejected(
                    "unsolicited response (IdP-initiated, no AuthnRequest): allow_unsolicited \
                     is off"
                        .into(),
                ));
            }
            return Ok(None);
        }
        let (Some(request_id), Some(relay_state), Some(acs_url)) = (
            state.get(STATE_REQUEST_ID),
            state.get(STATE_RELAY_STATE),
            state.get(STATE_ACS_URL),
        ) else {
            return Err(ProviderError::MalformedCallback(
                "the login transaction holds no SAML request".into(),
            ));
        };
        let mut relayed = callback
            .form
            .iter()
            .filter(|(k, _)| k == "RelayState")
            .map(|(_, v)| v);
        let (Some(relayed), None) = (relayed.next(), relayed.next()) else {
            return Err(ProviderError::MalformedCallback(
                "no single RelayState in the callback".into(),
            ));
        };
        if !bool::from(relayed.as_bytes().ct_eq(relay_state.as_bytes())) {
            return Err(ProviderError::Rejected("RelayState mismatch".into()));
        }
        if acs_url != ctx.callback_url.as_str() {
            return Err(ProviderError::Rejected(
                "the response came to another assertion consumer URL than the request named".into(),
            ));
        }
        Ok(Some(request_id))
    }
}

#[async_trait]
impl IdentityProvider for SamlProvider {
    fn id(&self) -> &str {
        &self.settings.id
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![(
            "saml_metadata_refresh_failed",
            self.metadata_refresh_failures(),
        )]
    }

    fn display_name(&self) -> &str {
        &self.settings.display_name
    }

    async fn begin(
        &self,
        callback_url: &Url,
    ) -> Result<(LoginStart, ProviderState), ProviderError> {
        self.check_callback(callback_url)?;
        let idp = self.metadata.current().await.map_err(metadata_unusable)?;
        let preferred = match self.settings.binding {
            AuthnBinding::Redirect => Binding::Redirect,
            AuthnBinding::Post => Binding::Post,
        };
        let (binding, endpoint) = pick(&idp.sso, preferred).ok_or_else(|| {
            ProviderError::Unavailable("the IdP has no SingleSignOnService".into())
        })?;
        let key = if self.signs_requests(&idp) {
            self.keys.signing.as_ref()
        } else {
            None
        };
        let id = random_id();
        let relay_state = random_relay_state();
        let request = AuthnRequest {
            id: &id,
            issue_instant: OffsetDateTime::now_utc(),
            destination: &endpoint.location,
            acs_url: callback_url,
            issuer: &self.settings.entity_id,
            name_id_format: self.settings.name_id_format.as_deref(),
            force_authn: self.settings.force_authn,
            requested_authn_context: self.settings.requested_authn_context.as_ref(),
        };
        let to = request::send(
            binding,
            &endpoint.location,
            "SAMLRequest",
            Some(&relay_state),
            key,
            |key| request.to_xml(key),
        )
        .map_err(|e| ProviderError::Rejected(format!("cannot sign the AuthnRequest: {e}")))?;
        let start = match to {
            BrowserTo::Redirect { location } => LoginStart::Redirect { location },
            BrowserTo::AutoPost { action, fields } => LoginStart::AutoPost { action, fields },
        };
        let state = ProviderState(vec![
            (STATE_REQUEST_ID.into(), id),
            (STATE_RELAY_STATE.into(), relay_state),
            (STATE_ACS_URL.into(), callback_url.to_string()),
        ]);
        Ok((start, state))
    }

    async fn finish(
        &self,
        ctx: &FinishContext,
        callback: &Callback,
        state: &ProviderState,
    ) -> Result<Principal, ProviderError> {
        self.check_callback(&ctx.callback_url)?;
        let request_id = self.expected_request(ctx, callback, state)?;
        let mut responses = callback
            .form
            .iter()
            .filter(|(k, _)| k == "SAMLResponse")
            .map(|(_, v)| v);
        let (Some(encoded), None) = (responses.next(), responses.next()) else {
            return Err(ProviderError::MalformedCallback(
                "no single SAMLResponse in the callback form".into(),
            ));
        };
        let idp = self.metadata.current().await.map_err(metadata_unusable)?;
        let settings = &self.settings;
        let now = OffsetDateTime::now_utc();
        // 1-4, on the blocking pool (xmlsec, decryption): see `blocking`.
        let verified = {
            let encoded = encoded.clone();
            let idp = idp.clone();
            let sp_entity_id = settings.entity_id.clone();
            let callback_url = ctx.callback_url.clone();
            let request_id = request_id.map(str::to_owned);
            let decryption_keys = self.keys.decryption.clone();
            let requested_authn_context = settings.requested_authn_context.clone();
            let attribute_names = settings.attribute_names.clone();
            let (skew, require_signed_assertion, allow_sha1) = (
                settings.clock_skew,
                settings.require_signed_assertion,
                settings.allow_sha1,
            );
            let decrypt = DecryptPolicy {
                allow_cbc: settings.allow_cbc,
                allow_rsa1_5: settings.allow_rsa1_5,
            };
            blocking::run(blocking::MESSAGE_TIMEOUT, move || {
                response::verify(
                    &encoded,
                    &Expected {
                        idp: &idp,
                        sp_entity_id: &sp_entity_id,
                        callback_url: &callback_url,
                        request_id: request_id.as_deref(),
                        skew,
                        now,
                        require_signed_assertion,
                        allow_sha1,
                        decrypt,
                        decryption_keys: &decryption_keys,
                        requested_authn_context: requested_authn_context.as_ref(),
                        attribute_names: &attribute_names,
                    },
                )
            })
            .await
            .map_err(|stalled| ProviderError::Rejected(stalled.to_string()))??
        };

        // 5. Replay, after every signature check (forged messages cannot fill the store): the
        // IDs are remembered as long as the response could be accepted (past its earliest
        // NotOnOrAfter, plus the skew, it is refused as expired), an hour at most.
        let remaining = (verified.valid_until - now).max(time::Duration::ZERO);
        let keep_for = Duration::try_from(remaining)
            .unwrap_or_default()
            .min(response::MAX_CONFIRMATION_VALIDITY)
            .saturating_add(settings.clock_skew)
            .max(Duration::from_secs(1));
        for proof in [
            format!("response:{}", verified.response_id),
            format!("assertion:{}", verified.assertion_id),
        ] {
            if !ctx.proofs.first_use(&proof, keep_for).await? {
                return Err(ProviderError::InvalidProof(format!(
                    "replayed {}",
                    clip(&proof)
                )));
            }
        }

        // 6. The principal.
        let subject = match &settings.subject_attribute {
            Some(name) => verified
                .attributes
                .get(name)
                .and_then(|values| values.first())
                .filter(|value| !value.is_empty())
                .cloned()
                .ok_or_else(|| {
                    ProviderError::Rejected(format!(
                        "the assertion has no {:?} attribute for the subject",
                        clip(name)
                    ))
                })?,
            None => verified.name_id.value.clone(),
        };
        Ok(Principal {
            provider: settings.id.clone(),
            subject,
            attributes: verified.attributes,
            auth_time: verified.auth_instant,
            auth_level: verified.authn_context_class_ref.map(AuthLevel),
            logout: LogoutHandle::Saml {
                name_id: verified.name_id.value,
                name_id_format: verified.name_id.format,
                session_index: verified.session_index,
                name_qualifier: verified.name_id.name_qualifier,
                sp_name_qualifier: verified.name_id.sp_name_qualifier,
            },
        })
    }

    async fn sign_out(
        &self,
        principal: &Principal,
        _post_logout_redirect_uri: &Url,
        state: &str,
    ) -> Result<Option<SignOut>, ProviderError> {
        // The IdP answers at our SingleLogoutService; the gateway lands the browser from there.
        // Expired metadata still says where the IdP's logout is: ending the IdP's session
        // matters more than the freshness of that address.
        let idp = self.metadata.latest().await;
        logout::sign_out(self, &idp, principal, state, OffsetDateTime::now_utc())
    }

    fn callback_body_limit(&self) -> usize {
        CALLBACK_BODY_BYTES
    }

    /// IdP LogoutRequests name the NameID, and SessionIndexes or not: the session is filed
    /// under the full NameID's hash, and under the hash of that NameID with its SessionIndex.
    fn session_tags(&self, principal: &Principal) -> Vec<String> {
        match &principal.logout {
            LogoutHandle::Saml {
                name_id,
                name_id_format,
                session_index,
                name_qualifier,
                sp_name_qualifier,
            } => {
                let key = NameIdKey::new(
                    &request::NameId {
                        value: name_id.clone(),
                        format: name_id_format.clone(),
                        name_qualifier: name_qualifier.clone(),
                        sp_name_qualifier: sp_name_qualifier.clone(),
                    },
                    &self.metadata.snapshot().entity_id,
                    &self.settings.entity_id,
                );
                let mut tags = vec![key.name_id_tag(&self.settings.id)];
                if let Some(index) = session_index {
                    tags.push(key.session_tag(&self.settings.id, index));
                }
                tags
            }
            _ => Vec::new(),
        }
    }

    fn endpoints(&self) -> Vec<EndpointSpec> {
        vec![
            EndpointSpec {
                name: METADATA_ENDPOINT,
                route: EndpointRoute::Path(METADATA_ENDPOINT),
                method: EndpointMethod::Get,
                caller: Caller::Browser,
            },
            EndpointSpec {
                name: SLO_ENDPOINT,
                route: EndpointRoute::Path(SLO_ENDPOINT),
                method: EndpointMethod::Get,
                caller: Caller::Browser,
            },
            EndpointSpec {
                name: SLO_POST_ENDPOINT,
                route: EndpointRoute::Path(SLO_ENDPOINT),
                method: EndpointMethod::Post,
                caller: Caller::Browser,
            },
        ]
    }

    async fn endpoint(&self, name: &str, request: &EndpointRequest<'_>) -> EndpointOutcome {
        match name {
            METADATA_ENDPOINT => EndpointOutcome::Reply(EndpointReply {
                status: 200,
                content_type: "application/samlmetadata+xml",
                body: self.sp_metadata.clone(),
                cache_control: Some(METADATA_MAX_AGE),
                navigate: None,
            }),
            SLO_ENDPOINT => logout::endpoint(self, request, false).await,
            SLO_POST_ENDPOINT => logout::endpoint(self, request, true).await,
            other => EndpointOutcome::Refused {
                reason: format!("no endpoint {other:?}"),
                reply: EndpointReply::text(404, "not found\n"),
            },
        }
    }

    fn unsolicited_landing(&self) -> Option<&str> {
        if self.settings.allow_unsolicited {
            self.settings.unsolicited_landing.as_deref()
        } else {
            None
        }
    }
}
