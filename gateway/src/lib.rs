//! Guichet: an identity-broker reverse proxy on pingora.
//!
//! This crate is the only one that knows pingora. Its modules are layers, each depending only
//! on those listed before it (a test checks there is no cycle):
//!
//! - [`config`]: the serde model of the file and its validation, once;
//! - [`http`]: cookies, pages, replies, routing, identity-header encoding, upstream peers;
//! - [`telemetry`]: audit log, metrics, logging;
//! - [`session`]: the session store, login transactions, login limits;
//! - [`state`]: the gateway's state, built from the configuration;
//! - [`identity`]: who a request is (session, directory person, per-app view) and the
//!   decision ([`identity::decision`]);
//! - [`auth`]: the gateway's own endpoints (sign-in, callbacks, sign-out, provider endpoints),
//!   with no pingora type;
//! - [`pipeline`]: the pingora proxy, adapting pingora to all of the above;
//! - [`ops`]: the server, its runtimes, the admin listener, watches and one-shot commands;
//! - [`dev`]: the echo application and the demo.
//!
//! Identity protocols live in `guichet-protocols`, access decisions in `guichet-policies`.

// The futures of the background services nest deeply (Redis subscriptions inside Sentinel
// lookups inside reload watches): the default limit of 128 is too low to lay them out.
#![recursion_limit = "256"]

#[cfg(test)]
mod architecture_tests;
pub(crate) mod auth;
pub mod config;
pub(crate) mod dev;
pub(crate) mod http;
pub mod identity;
pub(crate) mod ops;
pub(crate) mod pipeline;
pub mod session;
pub mod state;
pub(crate) mod telemetry;

// What other crates use (the binary, the tests crate, benchmarks, programs embedding
// Guichet); everything else stays inside the crate.
pub use dev::{demo, echo};
pub use http::{headers, routing};
// For the fuzz targets (`fuzz/`) only.
#[doc(hidden)]
pub use http::cookies;
pub use ops::{directory_cli, explain, reload, saml_cli, server};
pub use telemetry::logging;
