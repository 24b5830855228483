//! OpenID Connect relying party (authorization code flow), FranceConnect v2 included.
//!
//! Built on the `openidconnect` crate for the authorization request, the token exchange and
//! id_token verification (signature, `iss`, `aud` with no untrusted extra audience, `exp`,
//! `iat`, `sub`, `nonce`). On top of it, checks the crate leaves to us: `state` (constant time),
//! the RFC 9207 `iss` callback parameter, `at_hash`, `acr`, userinfo `sub`, signed userinfo in
//! any allowed algorithm, JWKS refetch on key rotation, and back-channel logout tokens.

mod assertion;
mod claims;
mod discovery;
mod encrypted;
#[doc(hidden)]
pub mod fuzzing;

pub mod jwe;
pub mod jws;
mod logout;
mod settings;

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, SignatureVerificationError,
    TokenResponse,
};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use url::Url;

pub use claims::{acr_satisfies, attributes};
pub use discovery::ExtraMetadata;
pub use logout::{check_logout_claims, LogoutSubject, LogoutTokenError, BACKCHANNEL_LOGOUT_EVENT};
pub use openidconnect::core::CoreJwsSigningAlgorithm as SigningAlg;
pub use settings::{
    ClientAuth, Encryption, Endpoints, OidcSettings, StaticEndpoints, UserinfoMode,
    FRANCECONNECT_DEFAULT_SCOPES, FRANCECONNECT_INTEGRATION, FRANCECONNECT_PLUS_INTEGRATION,
    FRANCECONNECT_PLUS_PRODUCTION, FRANCECONNECT_PRODUCTION, FRANCECONNECT_SANDBOX,
    FRANCECONNECT_SCOPES,
};

use self::assertion::AssertionKey;
use self::discovery::{Discovered, ProviderKeys};
use self::encrypted::{DecryptingHttp, ExchangeError};
use crate::http::BoundedHttp;
use crate::{
    logout_tag, AuthLevel, Callback, Caller, EndpointMethod, EndpointOutcome, EndpointReply,
    EndpointRequest, EndpointRoute, EndpointSpec, FinishContext, IdentityProvider, LoginStart,
    LogoutHandle, Principal, ProviderError, ProviderState, SetupError, SignOut,
};

/// Endpoint names (see [`IdentityProvider::endpoints`]); also their paths under `/.guichet/`.
const BACKCHANNEL_LOGOUT: &str = "backchannel-logout";
const JWKS: &str = "jwks";
/// How long the published JWKS may be cached: it bounds how long a key rotation takes to be
/// seen by the provider.
const JWKS_MAX_AGE: &str = "public, max-age=300";

/// A client built from discovered metadata: authorization endpoint known, token and userinfo
/// endpoints possibly absent.
type RpClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Length of `state` and `nonce`: FranceConnect wants at least 32 characters; 64 alphanumerics
/// carry about 380 bits.
const RANDOM_PARAM_CHARS: usize = 64;

pub struct OidcProvider {
    settings: OidcSettings,
    http: BoundedHttp,
    keys: ProviderKeys,
    /// Parsed once: the `private_key_jwt` signing key.
    assertion_key: Option<Arc<AssertionKey>>,
}

/// The JWS algorithm `private_key_jwt` signs with for this PEM key (`RS256` or `ES256`), or
/// `None` when it is not a key Guichet can sign with.
pub fn assertion_alg(key_pem: &str) -> Option<&'static str> {
    AssertionKey::from_pem(key_pem).ok().map(|k| k.alg())
}

/// A random `state`, `nonce` or logout `state`.
pub fn random_param() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(RANDOM_PARAM_CHARS)
        .map(char::from)
        .collect()
}

impl OidcProvider {
    pub fn new(settings: OidcSettings) -> Result<Self, SetupError> {
        if settings.allowed_algs.is_empty()
            || settings
                .allowed_algs
                .contains(&CoreJwsSigningAlgorithm::None)
        {
            return Err(SetupError::Setting {
                setting: "allowed_algs",
                reason: "must list signing algorithms, never none".into(),
            });
        }
        let assertion_key = match &settings.client_auth {
            ClientAuth::PrivateKeyJwt { key_pem, .. } => {
                Some(Arc::new(AssertionKey::from_pem(key_pem)?))
            }
            _ => None,
        };
        Ok(Self {
            http: BoundedHttp::new(settings.http_timeout)?,
            keys: ProviderKeys::new(),
            assertion_key,
            settings,
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    fn client(&self, discovered: &Discovered, redirect: &Url) -> Result<RpClient, ProviderError> {
        let secret = self
            .settings
            .client_auth
            .secret()
            .map(|s| ClientSecret::new(s.to_owned()));
        let client = CoreClient::from_provider_metadata(
            discovered.metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            secret,
        )
        .set_redirect_uri(RedirectUrl::from_url(redirect.clone()))
        .set_auth_type(match self.settings.client_auth {
            ClientAuth::SecretBasic(_) => AuthType::BasicAuth,
            _ => AuthType::RequestBody,
        });
        Ok(client)
    }

    /// `private_key_jwt` (RFC 7523): a short-lived JWT signed with our key, audience the token
    /// endpoint.
    fn client_assertion(&self, token_endpoint: &str) -> Result<Option<String>, ProviderError> {
        let Some(key) = &self.assertion_key else {
            return Ok(None);
        };
        key.assertion(
            &self.settings.client_id,
            self.assertion_key_id(),
            token_endpoint,
        )
        .map(Some)
    }

    fn assertion_key_id(&self) -> Option<&str> {
        match &self.settings.client_auth {
            ClientAuth::PrivateKeyJwt { key_id, .. } => key_id.as_deref(),
            _ => None,
        }
    }

    /// Whether there is anything to publish (without building the JWKS).
    fn publishes_keys(&self) -> bool {
        self.assertion_key.is_some()
            || self
                .settings
                .encryption
                .iter()
                .flat_map(|e| e.keys.iter())
                .any(|k| k.published())
    }

    /// The service's public keys for this provider, as a JWKS to publish at the URL registered
    /// with the provider: the encryption keys it encrypts to (retired ones left out) and the
    /// client-assertion key. `None` when there is nothing to publish.
    pub fn published_jwks(&self) -> Option<Value> {
        let mut keys: Vec<Value> = self
            .settings
            .encryption
            .iter()
            .flat_map(|e| e.keys.iter())
            .filter(|k| k.published())
            .map(|k| k.public_jwk())
            .collect();
        if let Some(key) = &self.assertion_key {
            keys.push(key.public_jwk(self.assertion_key_id()));
        }
        (!keys.is_empty()).then(|| serde_json::json!({ "keys": keys }))
    }

    /// Verifies the id_token, refetching the JWKS once when it names a key we do not know.
    fn verify_id_token<'t>(
        &self,
        client: &RpClient,
        id_token: &'t CoreIdToken,
        nonce: &Nonce,
    ) -> Result<&'t openidconnect::core::CoreIdTokenClaims, ClaimsVerificationError> {
        // An allowed HMAC algorithm with a signature of another length would make the crate
        // panic (see `jws::hmac_length_fits`): refused here as the bad signature it is.
        if let Ok(alg) = id_token.signing_alg() {
            let raw = id_token.to_string();
            let signature = raw
                .rsplit('.')
                .next()
                .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
                .unwrap_or_default();
            if self.settings.allowed_algs.contains(alg) && !jws::hmac_length_fits(alg, &signature) {
                return Err(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::CryptoError("bad HMAC".into()),
                ));
            }
        }
        let skew = self.settings.clock_skew;
        let verifier = client
            .id_token_verifier()
            .set_allowed_algs(self.settings.allowed_algs.iter().cloned())
            .set_time_fn(move || chrono::Utc::now() - skew);
        id_token.claims(&verifier, nonce)
    }

    async fn exchange(
        &self,
        discovered: &Discovered,
        redirect: &Url,
        code: &str,
        pkce_verifier: Option<&str>,
    ) -> Result<openidconnect::core::CoreTokenResponse, ProviderError> {
        let client = self.client(discovered, redirect)?;
        let token_endpoint = discovered
            .metadata
            .token_endpoint()
            .ok_or_else(|| ProviderError::Rejected("the provider has no token endpoint".into()))?
            .to_string();
        let mut request = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| ProviderError::Rejected(e.to_string()))?;
        if let Some(verifier) = pkce_verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()));
        }
        if let Some(assertion) = self.client_assertion(&token_endpoint)? {
            request = request
                .add_extra_param(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .add_extra_param("client_assertion", assertion);
        }
        let http = DecryptingHttp {
            inner: &self.http,
            encryption: self.settings.encryption.as_ref(),
        };
        request.request_async(&http).await.map_err(|e| match e {
            RequestTokenError::ServerResponse(response) => ProviderError::Rejected(format!(
                "token endpoint refused the code: {}",
                response.error()
            )),
            RequestTokenError::Request(ExchangeError::Http(e)) => {
                ProviderError::Unavailable(e.to_string())
            }
            RequestTokenError::Request(e) => ProviderError::Rejected(e.to_string()),
            RequestTokenError::Parse(e, _) => {
                ProviderError::Rejected(format!("token response unparseable: {e}"))
            }
            RequestTokenError::Other(e) => ProviderError::Rejected(format!("token endpoint: {e}")),
        })
    }

    /// Userinfo claims, verified: a signed response with our keys and allowed algorithms, and
    /// in every case a `sub` equal to the id_token's.
    async fn userinfo(
        &self,
        discovered: &Arc<Discovered>,
        access_token: &str,
        expected_sub: &str,
    ) -> Result<Map<String, Value>, ProviderError> {
        let endpoint = discovered.metadata.userinfo_endpoint().ok_or_else(|| {
            ProviderError::Rejected("the provider has no userinfo endpoint".into())
        })?;
        let request = ::http::Request::builder()
            .method(::http::Method::GET)
            .uri(endpoint.as_str())
            .header(
                ::http::header::AUTHORIZATION,
                format!("Bearer {access_token}"),
            )
            .header(::http::header::ACCEPT, "application/jwt, application/json")
            .body(Vec::new())
            .map_err(|e| ProviderError::Rejected(e.to_string()))?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("userinfo: {e}")))?;
        if !response.status().is_success() {
            return Err(ProviderError::Rejected(format!(
                "userinfo answered {}",
                response.status()
            )));
        }
        let content_type = response
            .headers()
            .get(::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let claims = match content_type.as_str() {
            "application/jwt" => {
                let token = std::str::from_utf8(response.body())
                    .map_err(|_| ProviderError::Rejected("userinfo JWT is not text".into()))?
                    .trim();
                let token = self.decrypt_userinfo(token)?;
                let claims = self.verify_jws(discovered, &token).await?;
                // A signed response names its issuer and audience; they must be ours.
                if let Some(iss) = claims.get("iss") {
                    if iss.as_str() != Some(self.settings.issuer.as_str()) {
                        return Err(ProviderError::Rejected(
                            "userinfo iss is not the provider's".into(),
                        ));
                    }
                }
                if let Some(aud) = claims.get("aud") {
                    let ok = match aud {
                        Value::String(a) => a == &self.settings.client_id,
                        Value::Array(list) => list
                            .iter()
                            .any(|a| a.as_str() == Some(&self.settings.client_id)),
                        _ => false,
                    };
                    if !ok {
                        return Err(ProviderError::Rejected(
                            "userinfo aud does not name this client".into(),
                        ));
                    }
                }
                claims
            }
            "application/json" => {
                if self
                    .settings
                    .encryption
                    .as_ref()
                    .is_some_and(|e| e.required)
                {
                    return Err(ProviderError::Rejected(
                        "userinfo is not encrypted, and this provider must encrypt it".into(),
                    ));
                }
                if self.settings.userinfo == UserinfoMode::RequireSigned {
                    return Err(ProviderError::Rejected(
                        "userinfo is not signed, and this provider must sign it".into(),
                    ));
                }
                serde_json::from_slice::<Map<String, Value>>(response.body())
                    .map_err(|e| ProviderError::Rejected(format!("userinfo unparseable: {e}")))?
            }
            other => {
                return Err(ProviderError::Rejected(format!(
                    "userinfo has an unexpected content type {other:?}"
                )))
            }
        };
        if claims.get("sub").and_then(Value::as_str) != Some(expected_sub) {
            return Err(ProviderError::Rejected(
                "userinfo sub differs from the id_token's".into(),
            ));
        }
        Ok(claims)
    }

    /// The signed userinfo inside an encrypted one; a signed one as it is, unless this
    /// provider must encrypt.
    fn decrypt_userinfo(&self, token: &str) -> Result<String, ProviderError> {
        let encryption = self.settings.encryption.as_ref();
        if !jwe::is_jwe(token) {
            return match encryption {
                Some(e) if e.required => Err(ProviderError::Rejected(
                    "userinfo is not encrypted, and this provider must encrypt it".into(),
                )),
                _ => Ok(token.to_owned()),
            };
        }
        let keys = encryption.map(|e| e.keys.as_slice()).unwrap_or_default();
        jwe::decrypt_nested(token, keys)
            .map_err(|e| ProviderError::Rejected(format!("encrypted userinfo: {e}")))
    }

    /// Verifies a compact JWS with the provider's keys, refetching them once on an unknown key.
    async fn verify_jws(
        &self,
        discovered: &Arc<Discovered>,
        token: &str,
    ) -> Result<Map<String, Value>, ProviderError> {
        let verify = |d: &Discovered| {
            jws::verify(
                token,
                d.jwks(),
                &self.settings.allowed_algs,
                self.settings.client_auth.secret(),
            )
        };
        match verify(discovered) {
            Ok(verified) => Ok(verified.claims),
            Err(jws::JwsError::NoMatchingKey) => {
                let refreshed = self
                    .keys
                    .refresh_jwks(&self.settings, &self.http, discovered)
                    .await
                    .ok_or_else(|| ProviderError::Rejected("signed with an unknown key".into()))?;
                verify(&refreshed)
                    .map(|v| v.claims)
                    .map_err(|e| ProviderError::Rejected(format!("JWS: {e}")))
            }
            Err(e) => Err(ProviderError::Rejected(format!("JWS: {e}"))),
        }
    }

    /// OpenID Connect Back-Channel Logout: a valid `logout_token` ends every session of its
    /// `sid` (or, without one, of its `sub`); anything else is a 400 and changes nothing.
    async fn backchannel_logout(&self, request: &EndpointRequest<'_>) -> EndpointOutcome {
        let refused = |reason: String| EndpointOutcome::Refused {
            reason,
            reply: EndpointReply::json(400, &serde_json::json!({"error": "invalid_request"})),
        };
        let mut tokens = request.form.iter().filter(|(k, _)| k == "logout_token");
        let (Some((_, token)), None) = (tokens.next(), tokens.next()) else {
            return refused("exactly one logout_token is required".into());
        };
        let subject = match self.verify_logout_token(token).await {
            Ok(subject) => subject,
            Err(e) => return refused(e.to_string()),
        };
        let tag = match (&subject.sid, &subject.sub) {
            (Some(sid), _) => logout_tag(&self.settings.id, "sid", sid),
            (None, Some(sub)) => logout_tag(&self.settings.id, "sub", sub),
            (None, None) => return refused("logout_token names neither sid nor sub".into()),
        };
        EndpointOutcome::EndSessions {
            tags: vec![tag],
            subject: subject.sub,
            reply: EndpointReply::json(200, &serde_json::json!({})),
        }
    }

    /// Checks a back-channel `logout_token` (signature, `iss`, `aud`, `iat`, `jti`, event, no
    /// `nonce`) and says which sessions it ends.
    pub async fn verify_logout_token(&self, token: &str) -> Result<LogoutSubject, ProviderError> {
        let discovered = self.keys.get(&self.settings, &self.http).await?;
        if let Ok(header) = jws::peek_header(token) {
            if let Some(typ) = header.typ.as_deref() {
                let typ = typ.to_ascii_lowercase();
                if !matches!(
                    typ.as_str(),
                    "logout+jwt" | "application/logout+jwt" | "jwt"
                ) {
                    return Err(ProviderError::Rejected(format!(
                        "logout_token has typ {typ:?}"
                    )));
                }
            }
        }
        let claims = self.verify_jws(&discovered, token).await?;
        check_logout_claims(
            &claims,
            &self.settings.issuer,
            &self.settings.client_id,
            OffsetDateTime::now_utc().unix_timestamp(),
            self.settings.clock_skew.as_secs() as i64,
        )
        .map_err(|e| ProviderError::Rejected(e.to_string()))
    }
}

/// `at_hash`: the left half of the access token's hash, with the id_token's algorithm's hash.
fn access_token_hash(access_token: &str, alg: &CoreJwsSigningAlgorithm) -> Option<String> {
    use CoreJwsSigningAlgorithm as A;
    let digest: Vec<u8> = match alg {
        A::RsaSsaPkcs1V15Sha256 | A::RsaSsaPssSha256 | A::EcdsaP256Sha256 | A::HmacSha256 => {
            Sha256::digest(access_token).to_vec()
        }
        A::RsaSsaPkcs1V15Sha384 | A::RsaSsaPssSha384 | A::EcdsaP384Sha384 | A::HmacSha384 => {
            Sha384::digest(access_token).to_vec()
        }
        A::RsaSsaPkcs1V15Sha512 | A::RsaSsaPssSha512 | A::EcdsaP521Sha512 | A::HmacSha512 => {
            Sha512::digest(access_token).to_vec()
        }
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2]))
}

/// The payload of a JWT whose signature was already verified.
fn payload(token: &str) -> Result<Map<String, Value>, ProviderError> {
    let part = token
        .split('.')
        .nth(1)
        .ok_or_else(|| ProviderError::Rejected("id_token is not a JWS".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ProviderError::Rejected("id_token payload is not base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| ProviderError::Rejected("id_token payload is not a JSON object".into()))
}

fn equal(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[async_trait]
impl IdentityProvider for OidcProvider {
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
        let discovered = self.keys.get(&self.settings, &self.http).await?;
        let client = self.client(&discovered, callback_url)?;
        let state = random_param();
        let nonce = random_param();
        let (state_for_url, nonce_for_url) = (state.clone(), nonce.clone());
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state_for_url),
                move || Nonce::new(nonce_for_url),
            )
            .set_redirect_uri(Cow::Owned(RedirectUrl::from_url(callback_url.clone())));
        for scope in &self.settings.scopes {
            if scope != "openid" {
                request = request.add_scope(Scope::new(scope.clone()));
            }
        }
        let mut provider_state = vec![
            ("state".to_owned(), state),
            ("nonce".to_owned(), nonce),
            ("redirect_uri".to_owned(), callback_url.to_string()),
        ];
        if self.settings.pkce {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            provider_state.push(("pkce_verifier".to_owned(), verifier.secret().clone()));
        }
        if let Some(acr) = &self.settings.acr_values {
            request = request.add_extra_param("acr_values", acr.clone());
        }
        if let Some(claims) = &self.settings.claims {
            request = request.add_extra_param("claims", claims.clone());
        }
        for (name, value) in &self.settings.extra_authorize_params {
            request = request.add_extra_param(name.clone(), value.clone());
        }
        let (location, _, _) = request.url();
        Ok((
            LoginStart::Redirect { location },
            ProviderState(provider_state),
        ))
    }

    async fn finish(
        &self,
        ctx: &FinishContext,
        callback: &Callback,
        state: &ProviderState,
    ) -> Result<Principal, ProviderError> {
        // The code flow answers in the query; `response_mode=form_post` in a form.
        let param = |name: &str| {
            callback
                .query_param(name)
                .or_else(|| callback.form_field(name))
        };
        let expected_state = state.get("state").ok_or_else(|| {
            ProviderError::MalformedCallback("no state in the transaction".into())
        })?;
        match param("state") {
            Some(got) if equal(got, expected_state) => {}
            Some(_) => return Err(ProviderError::Rejected("state mismatch".into())),
            None => return Err(ProviderError::MalformedCallback("no state".into())),
        }
        let discovered = self.keys.get(&self.settings, &self.http).await?;
        // RFC 9207: which provider the response comes from. With several providers, a response
        // from another one (mix-up attack) is refused here.
        match param("iss") {
            Some(iss) if iss != self.settings.issuer => {
                return Err(ProviderError::Rejected(format!(
                    "authorization response iss {iss:?} is not this provider's issuer"
                )))
            }
            None if discovered
                .metadata
                .additional_metadata()
                .additional_metadata
                .authorization_response_iss_parameter_supported
                == Some(true) =>
            {
                return Err(ProviderError::Rejected(
                    "authorization response lacks the iss the provider promises".into(),
                ))
            }
            _ => {}
        }
        if let Some(error) = param("error") {
            return Err(ProviderError::Denied {
                error: error.chars().take(100).collect(),
                description: param("error_description").map(|d| d.chars().take(300).collect()),
            });
        }
        let code = param("code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ProviderError::MalformedCallback("no code".into()))?;
        let redirect = state
            .get("redirect_uri")
            .and_then(|r| Url::parse(r).ok())
            .unwrap_or_else(|| ctx.callback_url.clone());
        if redirect != ctx.callback_url {
            return Err(ProviderError::Rejected(
                "callback reached on another URL than the login's redirect_uri".into(),
            ));
        }

        let token = self
            .exchange(&discovered, &redirect, code, state.get("pkce_verifier"))
            .await?;
        let id_token = token
            .id_token()
            .ok_or_else(|| ProviderError::Rejected("token response has no id_token".into()))?;
        let nonce = Nonce::new(
            state
                .get("nonce")
                .ok_or_else(|| {
                    ProviderError::MalformedCallback("no nonce in the transaction".into())
                })?
                .to_owned(),
        );

        let mut discovered = discovered;
        let client = self.client(&discovered, &redirect)?;
        let verified = match self.verify_id_token(&client, id_token, &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // Key rotation: the provider may sign with a key published after our fetch.
                match self
                    .keys
                    .refresh_jwks(&self.settings, &self.http, &discovered)
                    .await
                {
                    Some(refreshed) => {
                        discovered = refreshed;
                        let client = self.client(&discovered, &redirect)?;
                        self.verify_id_token(&client, id_token, &nonce).map(|_| ())
                    }
                    None => Err(ClaimsVerificationError::SignatureVerification(
                        SignatureVerificationError::NoMatchingKey,
                    )),
                }
            }
            other => other.map(|_| ()),
        };
        verified.map_err(|e| ProviderError::Rejected(format!("id_token: {e}")))?;

        let raw_id_token = id_token.to_string();
        let id_claims = payload(&raw_id_token)?;
        let alg = id_token
            .signing_alg()
            .map_err(|e| ProviderError::Rejected(format!("id_token: {e}")))?;
        if let Some(expected) = id_claims.get("at_hash") {
            let actual = access_token_hash(token.access_token().secret(), alg);
            if expected.as_str().is_none() || actual.as_deref() != expected.as_str() {
                return Err(ProviderError::Rejected(
                    "id_token at_hash does not match the access token".into(),
                ));
            }
        }
        let subject = id_claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ProviderError::Rejected("id_token has no sub".into()))?
            .to_owned();
        let acr = id_claims
            .get("acr")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(requested) = &self.settings.acr_values {
            let minimum = requested.split_whitespace().next().unwrap_or("");
            match &acr {
                Some(got) if acr_satisfies(got, minimum) => {}
                Some(got) => {
                    return Err(ProviderError::Rejected(format!(
                        "id_token acr {got:?} is below the requested {minimum:?}"
                    )))
                }
                None => {
                    return Err(ProviderError::Rejected(format!(
                        "id_token has no acr, {minimum:?} was requested"
                    )))
                }
            }
        }

        let mut all_claims = id_claims.clone();
        let fetch_userinfo = match self.settings.userinfo {
            UserinfoMode::Skip => false,
            // A provider without a userinfo endpoint puts everything in the id_token.
            UserinfoMode::Fetch => discovered.metadata.userinfo_endpoint().is_some(),
            UserinfoMode::RequireSigned => true,
        };
        if fetch_userinfo {
            let userinfo = self
                .userinfo(&discovered, token.access_token().secret(), &subject)
                .await?;
            all_claims.extend(userinfo);
        }
        let auth_time = id_claims
            .get("auth_time")
            .and_then(Value::as_i64)
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .unwrap_or_else(OffsetDateTime::now_utc);
        Ok(Principal {
            provider: self.settings.id.clone(),
            subject,
            attributes: attributes(&all_claims, &self.settings.attributes),
            auth_time,
            auth_level: acr.map(AuthLevel),
            logout: LogoutHandle::Oidc {
                id_token: raw_id_token,
                sid: id_claims
                    .get("sid")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            },
        })
    }

    /// Back-channel logout names a session (`sid`) or, without one, a subject.
    fn session_tags(&self, principal: &Principal) -> Vec<String> {
        let LogoutHandle::Oidc { sid, .. } = &principal.logout else {
            return Vec::new();
        };
        let mut tags = vec![logout_tag(&self.settings.id, "sub", &principal.subject)];
        if let Some(sid) = sid {
            tags.push(logout_tag(&self.settings.id, "sid", sid));
        }
        tags
    }

    fn endpoints(&self) -> Vec<EndpointSpec> {
        let mut endpoints = vec![EndpointSpec {
            name: BACKCHANNEL_LOGOUT,
            route: EndpointRoute::Path(BACKCHANNEL_LOGOUT),
            method: EndpointMethod::Post,
            caller: Caller::Server,
        }];
        if self.publishes_keys() {
            endpoints.push(EndpointSpec {
                name: JWKS,
                route: EndpointRoute::Path(JWKS),
                method: EndpointMethod::Get,
                caller: Caller::Browser,
            });
        }
        endpoints
    }

    async fn endpoint(&self, name: &str, request: &EndpointRequest<'_>) -> EndpointOutcome {
        match name {
            JWKS => match self.published_jwks() {
                Some(jwks) => EndpointOutcome::Reply(EndpointReply {
                    cache_control: Some(JWKS_MAX_AGE),
                    ..EndpointReply::json(200, &jwks)
                }),
                None => EndpointOutcome::Refused {
                    reason: "no keys to publish".into(),
                    reply: EndpointReply::text(404, "not found\n"),
                },
            },
            BACKCHANNEL_LOGOUT => self.backchannel_logout(request).await,
            other => EndpointOutcome::Refused {
                reason: format!("no endpoint {other:?}"),
                reply: EndpointReply::text(404, "not found\n"),
            },
        }
    }

    async fn sign_out(
        &self,
        principal: &Principal,
        post_logout_redirect_uri: &Url,
        state: &str,
    ) -> Result<Option<SignOut>, ProviderError> {
        if !self.settings.end_session {
            return Ok(None);
        }
        let LogoutHandle::Oidc { id_token, .. } = &principal.logout else {
            return Ok(None);
        };
        // Configured to end the provider's session: failing to find where is an error the
        // user is told about, never a silently skipped step.
        let discovered = self
            .keys
            .get(&self.settings, &self.http)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("end session: {e}")))?;
        let Some(endpoint) = discovered
            .metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()
        else {
            return if self.settings.end_session_required {
                Err(ProviderError::Unavailable(
                    "the provider advertises no end_session_endpoint".into(),
                ))
            } else {
                Ok(None)
            };
        };
        Ok(Some(SignOut::Redirect {
            location: logout::end_session_url(
                endpoint.url(),
                id_token,
                &self.settings.client_id,
                post_logout_redirect_uri,
                state,
            ),
        }))
    }
}
