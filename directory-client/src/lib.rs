//! Directory backends and their caching (pivot identity, per-application roles).
//!
//! Empty on purpose until the directory issue: the gateway's roles come from the identity
//! provider's attributes for now. This crate exists so the workspace already shows where that
//! code will live and that it does not depend on the proxy.
