//! Identity providers for Guichet.
//!
//! Every upstream identity provider (local passwords, CAS, OpenID Connect and FranceConnect today;
//! SAML next) implements [`IdentityProvider`]: it *begins* a login by telling the gateway what to
//! send to the browser, and *finishes* it from the callback, returning a protocol-neutral
//! [`Principal`]. The gateway owns everything around that: login transactions, sessions,
//! cookies, CSRF, rate limits and the pages. Providers never see a session cookie.

pub mod cas;
mod http;
pub mod local;
pub mod oidc;
mod principal;
mod provider;
pub mod saml;

pub use principal::{AuthLevel, LogoutHandle, Principal};
pub use provider::{
    logout_tag, BrowserTo, Callback, Caller, EndpointMethod, EndpointOutcome, EndpointReply,
    EndpointRequest, EndpointRoute, EndpointSpec, FinishContext, IdentityProvider, LoginStart,
    OneTimeProofs, PasswordVerifier, ProcessProofs, ProviderError, ProviderState, SetupError,
    SignOut, DEFAULT_CALLBACK_BODY_BYTES,
};
