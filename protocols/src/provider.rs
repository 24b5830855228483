use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::Principal;

/// What the gateway must do to start a login at a provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginStart {
    /// Redirect the browser (CAS, OpenID Connect, SAML HTTP-Redirect binding).
    Redirect { location: Url },
    /// Send an auto-submitting HTML form (SAML HTTP-POST binding). The gateway renders and escapes
    /// it; `fields` are raw values.
    AutoPost {
        action: Url,
        fields: Vec<(String, String)>,
    },
    /// Show the gateway's own credentials form (local passwords).
    CredentialsForm,
}

/// Opaque per-login data a provider needs again at the callback (PKCE verifier, nonce, SAML
/// request id...). The gateway keeps it server-side in the login transaction, single use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderState(pub Vec<(String, String)>);

impl ProviderState {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The browser's return to the gateway: the callback's query (GET) or form (POST) fields.
///
/// The gateway has already bounded their size and matched the login transaction.
#[derive(Clone, Debug, Default)]
pub struct Callback {
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
}

impl Callback {
    /// A field of the POSTed form (never taken from the query).
    pub fn form_field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A parameter of the callback's query string.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the gateway knows about the login being finished.
#[derive(Clone, Debug)]
pub struct FinishContext {
    /// The callback URL registered for this provider and application (from config, never from
    /// the request's Host).
    pub callback_url: Url,
}

/// Why a login failed. `Display` is the precise reason for the audit log; users only ever see a
/// generic page with a correlation id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("account disabled")]
    AccountDisabled,
    #[error("malformed callback: {0}")]
    MalformedCallback(String),
    #[error("provider rejected the login: {0}")]
    Rejected(String),
    #[error("provider unreachable: {0}")]
    Unavailable(String),
    /// The provider says the one-time proof the browser brought (a CAS ticket) is not valid
    /// for this service: expired, already used, or issued for another service.
    #[error("provider refused the ticket: {0}")]
    InvalidTicket(String),
    /// The provider answered the login with an error (`error=access_denied`...): the user
    /// cancelled, or the provider refused them. Shown as such, not as an attack.
    #[error("provider returned error {error:?} ({description:?})")]
    Denied {
        error: String,
        description: Option<String>,
    },
}

/// One configured upstream identity provider.
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// The configured id, unique in the gateway.
    fn id(&self) -> &str;

    /// A human name for choosers and logs.
    fn display_name(&self) -> &str;

    /// Starts a login. `state` is what the provider wants back at [`Self::finish`].
    async fn begin(&self, callback_url: &Url)
        -> Result<(LoginStart, ProviderState), ProviderError>;

    /// Finishes a login from the browser's callback.
    async fn finish(
        &self,
        ctx: &FinishContext,
        callback: &Callback,
        state: &ProviderState,
    ) -> Result<Principal, ProviderError>;

    /// Where to send the browser after the local session ended so that the provider ends its
    /// own session too (OpenID Connect RP-initiated logout, CAS `/logout`), or `None` when the
    /// provider has no such step. The provider comes back to `post_logout_redirect_uri` with
    /// `state`. An error means the step is due but cannot be taken (the provider cannot be
    /// reached): the local session is over, and the user must be told the provider's is not.
    async fn logout_redirect(
        &self,
        _principal: &Principal,
        _post_logout_redirect_uri: &Url,
        _state: &str,
    ) -> Result<Option<Url>, ProviderError> {
        Ok(None)
    }
}
