//! Unit tests of the SAML service provider: the security catalogue's SAML cases (signature
//! wrapping, removed or foreign signatures, comments, DTDs, weak algorithms, replays, wrong
//! audiences, recipients, destinations, issuers and times), metadata, requests and single
//! logout. Messages are built and signed in [`fixtures`].

mod fixtures;
mod guard;
mod logout;
mod metadata;
mod provider;
mod response;
mod review;
