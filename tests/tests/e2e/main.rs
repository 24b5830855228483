//! End-to-end tests: the gateway in-process, a real Redis, the echo application, and an HTTP
//! client that asserts each hop. One test binary for all of them.

mod access;
mod admin;
mod audit;
mod binary;
mod browser_form_post;
mod browser_saml;
mod cas;
mod config;
mod demo;
mod directory;
mod examples;
mod franceconnect;
mod franceconnect_plus;
mod franceconnect_strict;
mod headers;
mod identity_pivot;
mod interop_cas;
mod interop_oidc;
mod interop_saml;
mod login;
mod login_limits;
mod logout;
mod oidc;
mod oidc_logout;
mod oidc_providers;
mod policies;
mod provider_logout;
mod provider_seam;
mod proxy;
mod redirects;
mod redis_store;
mod saml;
mod sessions;
mod tls;
