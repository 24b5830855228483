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

#[cfg(test)]
mod architecture_tests;
pub mod auth;
pub mod config;
pub mod dev;
pub mod http;
pub mod identity;
pub mod ops;
pub mod pipeline;
pub mod session;
pub mod state;
pub mod telemetry;

// The paths programs embedding Guichet (and its tests) have used.
pub use dev::{demo, echo};
pub use http::{cookies, headers, pages, respond, routing, upstream};
pub use identity::{decision, directory};
pub use ops::{admin, background, directory_cli, directory_watch, explain, server, store_watch};
pub use pipeline::proxy;
pub use session::{login, login_limits};
pub use telemetry::{audit, logging, metrics};
