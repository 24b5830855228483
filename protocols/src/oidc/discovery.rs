//! The provider's metadata and signing keys, fetched lazily and cached.
//!
//! Nothing is fetched at startup: a provider that is down must not keep the gateway (and the
//! apps using other providers) from starting. The first login fetches discovery and the JWKS;
//! later logins reuse them until `metadata_ttl`. A token signed with a key we do not know makes
//! us fetch the JWKS again (key rotation), at most once per `jwks_refresh_interval`.

use std::sync::Arc;
use std::time::Instant;

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthUrl, EndSessionUrl, IssuerUrl, JsonWebKeySetUrl,
    LogoutProviderMetadata, ProviderMetadata, ResponseTypes, TokenUrl, UserInfoUrl,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::settings::{Endpoints, OidcSettings};
use crate::http::BoundedHttp;
use crate::ProviderError;

/// Metadata fields the crate does not model.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExtraMetadata {
    /// RFC 9207: the provider adds `iss` to its authorization responses.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: Option<bool>,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

pub type Metadata = ProviderMetadata<
    LogoutProviderMetadata<ExtraMetadata>,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Metadata with its JWKS loaded.
pub struct Discovered {
    pub metadata: Metadata,
    fetched_at: Instant,
    jwks_fetched_at: Instant,
}

impl Discovered {
    pub fn jwks(&self) -> &CoreJsonWebKeySet {
        self.metadata.jwks()
    }

    /// Metadata already holding its JWKS, as fetched now (for the fuzz targets' entry point,
    /// `oidc::fuzzing`).
    pub(crate) fn loaded(metadata: Metadata) -> Self {
        let now = Instant::now();
        Discovered {
            metadata,
            fetched_at: now,
            jwks_fetched_at: now,
        }
    }
}

pub struct ProviderKeys {
    current: std::sync::RwLock<Option<Arc<Discovered>>>,
    /// One fetch at a time: concurrent logins after expiry wait for it instead of piling up.
    fetching: Mutex<()>,
}

impl ProviderKeys {
    pub fn new() -> Self {
        Self {
            current: std::sync::RwLock::new(None),
            fetching: Mutex::new(()),
        }
    }

    fn cached(&self) -> Option<Arc<Discovered>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn store(&self, discovered: Arc<Discovered>) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(discovered);
    }

    /// The metadata and keys, fetched when missing or older than `metadata_ttl`.
    pub async fn get(
        &self,
        settings: &OidcSettings,
        http: &BoundedHttp,
    ) -> Result<Arc<Discovered>, ProviderError> {
        let fresh = |d: &Arc<Discovered>| d.fetched_at.elapsed() < settings.metadata_ttl;
        if let Some(current) = self.cached().filter(fresh) {
            return Ok(current);
        }
        let _guard = self.fetching.lock().await;
        if let Some(current) = self.cached().filter(fresh) {
            return Ok(current);
        }
        match fetch(settings, http).await {
            Ok(discovered) => {
                let discovered = Arc::new(discovered);
                self.store(discovered.clone());
                Ok(discovered)
            }
            // The provider is down: what we knew is still the best we have. A document that
            // came back wrong (issuer mismatch) is not an outage and is never papered over.
            Err(ProviderError::Unavailable(reason)) => match self.cached() {
                Some(stale) => {
                    tracing::warn!(provider = %settings.id, %reason, "discovery failed; using the previous metadata");
                    Ok(stale)
                }
                None => Err(ProviderError::Unavailable(reason)),
            },
            Err(other) => Err(other),
        }
    }

    /// Fetches the JWKS again after a token named a key we do not have; `None` when the last
    /// fetch is too recent (rate limit) or the fetch failed.
    pub async fn refresh_jwks(
        &self,
        settings: &OidcSettings,
        http: &BoundedHttp,
        seen: &Arc<Discovered>,
    ) -> Option<Arc<Discovered>> {
        let _guard = self.fetching.lock().await;
        let current = self.cached()?;
        if !Arc::ptr_eq(&current, seen) {
            // Someone refreshed while we waited: use theirs.
            return Some(current);
        }
        if current.jwks_fetched_at.elapsed() < settings.jwks_refresh_interval {
            tracing::info!(provider = %settings.id, "unknown signing key, JWKS refetch rate-limited");
            return None;
        }
        let jwks = match fetch_jwks(current.metadata.jwks_uri(), http).await {
            Ok(jwks) => jwks,
            Err(e) => {
                tracing::warn!(provider = %settings.id, error = %e, "JWKS refetch failed");
                return None;
            }
        };
        tracing::info!(provider = %settings.id, keys = jwks.keys().len(), "JWKS refetched (unknown signing key)");
        let refreshed = Arc::new(Discovered {
            metadata: current.metadata.clone().set_jwks(jwks),
            fetched_at: current.fetched_at,
            jwks_fetched_at: Instant::now(),
        });
        self.store(refreshed.clone());
        Some(refreshed)
    }
}

impl Default for ProviderKeys {
    fn default() -> Self {
        Self::new()
    }
}

async fn fetch(settings: &OidcSettings, http: &BoundedHttp) -> Result<Discovered, ProviderError> {
    let issuer = IssuerUrl::new(settings.issuer.clone())
        .map_err(|e| ProviderError::Rejected(format!("issuer is not a URL: {e}")))?;
    let metadata = match &settings.endpoints {
        Endpoints::Discovery => {
            let url = format!(
                "{}/.well-known/openid-configuration",
                settings.issuer.trim_end_matches('/')
            );
            let body = get_json(&url, http).await?;
            let metadata: Metadata = serde_json::from_slice(&body).map_err(|e| {
                ProviderError::Rejected(format!("discovery document unparseable: {e}"))
            })?;
            // Pinned issuer: a document naming another issuer is refused before any redirect
            // to /authorize (mix-up and misconfiguration defence).
            if metadata.issuer() != &issuer {
                return Err(ProviderError::Rejected(format!(
                    "discovery issuer {:?} differs from the configured issuer {:?}",
                    metadata.issuer().as_str(),
                    issuer.as_str()
                )));
            }
            metadata
        }
        Endpoints::Static(endpoints) => Metadata::new(
            issuer,
            AuthUrl::from_url(endpoints.authorization.clone()),
            JsonWebKeySetUrl::from_url(endpoints.jwks.clone()),
            vec![ResponseTypes::new(vec![CoreResponseType::Code])],
            vec![CoreSubjectIdentifierType::Public],
            settings.allowed_algs.clone(),
            LogoutProviderMetadata {
                end_session_endpoint: endpoints.end_session.clone().map(EndSessionUrl::from_url),
                additional_metadata: ExtraMetadata::default(),
            },
        )
        .set_token_endpoint(Some(TokenUrl::from_url(endpoints.token.clone())))
        .set_userinfo_endpoint(endpoints.userinfo.clone().map(UserInfoUrl::from_url)),
    };
    let jwks = fetch_jwks(metadata.jwks_uri(), http).await?;
    let now = Instant::now();
    Ok(Discovered {
        metadata: metadata.set_jwks(jwks),
        fetched_at: now,
        jwks_fetched_at: now,
    })
}

async fn fetch_jwks(
    url: &JsonWebKeySetUrl,
    http: &BoundedHttp,
) -> Result<CoreJsonWebKeySet, ProviderError> {
    let body = get_json(url.as_str(), http).await?;
    // Keys of a type the crate does not know are skipped, not fatal (VecSkipError).
    serde_json::from_slice(&body)
        .map_err(|e| ProviderError::Unavailable(format!("JWKS unparseable: {e}")))
}

async fn get_json(url: &str, http: &BoundedHttp) -> Result<Vec<u8>, ProviderError> {
    let request = http::Request::builder()
        .method(http::Method::GET)
        .uri(url)
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| ProviderError::Rejected(format!("bad URL {url}: {e}")))?;
    let response = http
        .execute(request)
        .await
        .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(ProviderError::Unavailable(format!(
            "{url} answered {}",
            response.status()
        )));
    }
    Ok(response.into_body())
}
