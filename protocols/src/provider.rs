use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::Principal;

/// Largest callback body a provider takes unless it says otherwise (OpenID Connect and CAS
/// answers are a few hundred bytes; SAML responses state their own, larger, limit).
pub const DEFAULT_CALLBACK_BODY_BYTES: usize = 8 * 1024;

/// The store tag under which sessions opened through `provider` are filed for single logout:
/// `kind` names what the provider identifies them by (`st` a CAS service ticket, `sid` an
/// OpenID Connect session, `sub` a subject).
pub fn logout_tag(provider: &str, kind: &str, value: &str) -> String {
    format!("slo:{provider}:{kind}:{value}")
}

/// Who calls a provider endpoint, which decides what the gateway checks before handing it over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A user's browser (a front-channel logout, a public document): from anywhere.
    Browser,
    /// The provider's servers (a back-channel logout): the provider's `allowed_sources` and
    /// per-address limit apply.
    Server,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointMethod {
    Get,
    Post,
}

/// Where the gateway routes a provider endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointRoute {
    /// `/.guichet/{name}/{provider}` (e.g. `/.guichet/backchannel-logout/op`).
    Path(&'static str),
    /// The provider's callback URL, when the request carries this field (in the form for a
    /// POST, in the query for a GET): CAS single logout comes there.
    OnCallback(&'static str),
}

/// An endpoint a provider owns, which the gateway routes to [`IdentityProvider::endpoint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointSpec {
    /// The provider's own name for it, handed back to [`IdentityProvider::endpoint`].
    pub name: &'static str,
    pub route: EndpointRoute,
    pub method: EndpointMethod,
    pub caller: Caller,
}

/// A request to a provider endpoint: its query and form fields, already bounded.
#[derive(Clone, Copy, Debug)]
pub struct EndpointRequest<'a> {
    pub query: &'a [(String, String)],
    pub form: &'a [(String, String)],
    /// The query string exactly as received (without `?`): a SAML HTTP-Redirect signature
    /// covers the parameters' original encoding, which decoding loses.
    pub raw_query: &'a str,
    /// Messages already used, shared by every replica (a SAML LogoutRequest replayed).
    pub proofs: &'a dyn OneTimeProofs,
}

impl std::fmt::Debug for dyn OneTimeProofs + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneTimeProofs")
    }
}

impl EndpointRequest<'_> {
    /// Every value of a field, from the form for a POST or the query for a GET.
    pub fn values<'v>(&'v self, name: &'v str) -> impl Iterator<Item = &'v str> + 'v {
        self.form
            .iter()
            .chain(self.query.iter())
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a provider endpoint answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// `Cache-Control` when the answer may be cached (public documents); `no-store` otherwise.
    pub cache_control: Option<&'static str>,
    /// When set, the browser is sent there instead (a SAML LogoutResponse by HTTP-Redirect or
    /// HTTP-POST binding); the other fields are not used.
    pub navigate: Option<BrowserTo>,
}

impl EndpointReply {
    pub fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_owned(),
            cache_control: None,
            navigate: None,
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: value.to_string(),
            cache_control: None,
            navigate: None,
        }
    }

    /// Sends the browser on (a redirect or an auto-submitting form the gateway renders).
    pub fn navigate(to: BrowserTo) -> Self {
        Self {
            status: 303,
            content_type: "text/plain; charset=utf-8",
            body: String::new(),
            cache_control: None,
            navigate: Some(to),
        }
    }
}

/// What the gateway does with a provider endpoint's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointOutcome {
    /// Single logout: end every session filed under these tags (on every replica), audit it
    /// (with the provider's subject when it names one), answer.
    EndSessions {
        tags: Vec<String>,
        subject: Option<String>,
        reply: EndpointReply,
    },
    /// Just answer (a public document).
    Reply(EndpointReply),
    /// The provider's own sign-out, started by [`IdentityProvider::sign_out`] with this
    /// `state`, is over (a SAML LogoutResponse came back): the gateway lands the browser as its
    /// logout return would.
    SignOutReturned { state: String },
    /// Refused: the precise reason goes to the audit log, the answer to the caller.
    Refused {
        reason: String,
        reply: EndpointReply,
    },
}

/// A provider that checks a user name and password typed into Guichet's own form (local
/// users; an LDAP bind next). The password itself goes through [`IdentityProvider::finish`]
/// with the form as the callback; this says what the gateway needs around it.
pub trait PasswordVerifier: Send + Sync {
    /// The account a typed login names, as rate limits count it (`Alice` and
    /// `alice@example.org` are one account), when the provider knows it.
    fn canonical_login(&self, login: &str) -> Option<String>;

    /// The principal an account would sign in as, without its password (`policy explain`),
    /// when the provider can tell.
    fn lookup(&self, login: &str) -> Option<Principal>;
}

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

/// Where a provider sends the browser: to sign out at the provider, or back to it with an
/// answer (a SAML LogoutResponse).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrowserTo {
    /// A redirect (OpenID Connect end-session, CAS `/logout`, SAML HTTP-Redirect binding).
    Redirect { location: Url },
    /// An auto-submitting form (SAML HTTP-POST binding); `fields` are raw values, the gateway
    /// escapes them.
    AutoPost {
        action: Url,
        fields: Vec<(String, String)>,
    },
}

/// How the browser goes to the provider to sign out there.
pub type SignOut = BrowserTo;

/// One-time proofs of login (SAML Response and Assertion IDs) already seen, in the store every
/// replica shares: a proof replayed to another replica is refused too.
#[async_trait]
pub trait OneTimeProofs: Send + Sync {
    /// Records `id` as used for `keep_for` (until the proof expires, plus the clock skew
    /// allowed); `false` when it was already recorded, i.e. a replay. An error means the store
    /// cannot tell: the login must fail closed.
    async fn first_use(&self, id: &str, keep_for: Duration) -> Result<bool, ProviderError>;
}

/// [`OneTimeProofs`] in this process only: for unit tests and tools that finish no login
/// through the gateway.
#[derive(Default)]
pub struct ProcessProofs(std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>);

#[async_trait]
impl OneTimeProofs for ProcessProofs {
    async fn first_use(&self, id: &str, keep_for: Duration) -> Result<bool, ProviderError> {
        let now = std::time::Instant::now();
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.retain(|_, until| *until > now);
        Ok(seen.insert(id.to_owned(), now + keep_for).is_none())
    }
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
#[derive(Clone)]
pub struct FinishContext {
    /// The callback URL registered for this provider and application (from config, never from
    /// the request's Host).
    pub callback_url: Url,
    /// Proofs already used, shared by every replica (replay protection).
    pub proofs: Arc<dyn OneTimeProofs>,
}

impl std::fmt::Debug for FinishContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinishContext")
            .field("callback_url", &self.callback_url.as_str())
            .finish_non_exhaustive()
    }
}

/// A provider that cannot be built from its settings. The gateway's configuration checks
/// catch these first and name the field; this names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("{setting}: {reason}")]
    Setting {
        setting: &'static str,
        reason: String,
    },
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
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
    /// The provider says the one-time proof the browser brought (a CAS ticket, a SAML
    /// assertion) is not valid for this service: expired, already used, or issued for another
    /// service. The user is told to sign in again rather than that something is wrong.
    #[error("provider refused the proof of login: {0}")]
    InvalidProof(String),
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

    /// How to send the browser to the provider after the local session ended, so that the
    /// provider ends its own session too (OpenID Connect RP-initiated logout, CAS `/logout`,
    /// SAML `LogoutRequest`), or `None` when the provider has no such step. The provider comes
    /// back to `post_logout_redirect_uri` with `state`. An error means the step is due but
    /// cannot be taken (the provider cannot be reached): the local session is over, and the
    /// user must be told the provider's is not.
    async fn sign_out(
        &self,
        _principal: &Principal,
        _post_logout_redirect_uri: &Url,
        _state: &str,
    ) -> Result<Option<SignOut>, ProviderError> {
        Ok(None)
    }

    /// The largest callback body this provider's answers need (SAML responses: far more than
    /// the default).
    fn callback_body_limit(&self) -> usize {
        DEFAULT_CALLBACK_BODY_BYTES
    }

    /// The tags a session opened by `principal` is filed under, for the provider's single
    /// logout to find it (see [`logout_tag`]).
    fn session_tags(&self, _principal: &Principal) -> Vec<String> {
        Vec::new()
    }

    /// The endpoints this provider owns (single logout, public keys, metadata).
    fn endpoints(&self) -> Vec<EndpointSpec> {
        Vec::new()
    }

    /// Handles a request to the endpoint `name` of [`Self::endpoints`].
    async fn endpoint(&self, name: &str, _request: &EndpointRequest<'_>) -> EndpointOutcome {
        EndpointOutcome::Refused {
            reason: format!("no endpoint {name:?}"),
            reply: EndpointReply::text(404, "not found\n"),
        }
    }

    /// The app a login the provider starts by itself (a SAML IdP-initiated response, with no
    /// login transaction) lands on, when this provider accepts such logins at all. `finish` then
    /// gets an empty [`ProviderState`] and must check that unsolicited logins are allowed.
    fn unsolicited_landing(&self) -> Option<&str> {
        None
    }

    /// Counters of the provider's own background work (e.g. failed metadata refreshes), exported
    /// by the gateway as `guichet_provider_events_total{provider, event}`.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Set for providers that take a password in Guichet's own form.
    fn password_verifier(&self) -> Option<&dyn PasswordVerifier> {
        None
    }

    /// Roles the provider itself vouches for (Guichet's own local users file): they count as
    /// the person's own. Roles claimed by an external provider only count through an app's
    /// explicit `roles` mapping.
    fn own_roles(&self, _principal: &Principal) -> Vec<String> {
        Vec::new()
    }
}
