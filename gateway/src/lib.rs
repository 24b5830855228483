//! Guichet: an identity-broker reverse proxy on pingora.
//!
//! This crate is the only one that knows pingora. It owns the configuration, the proxy and its
//! request pipeline ([`proxy`]), sessions ([`session`]), the gateway's own endpoints
//! ([`endpoints`]), identity header injection ([`headers`]) and the admin listener ([`admin`]).
//! Identity protocols live in `guichet-protocols`, access decisions in `guichet-policies`.

pub mod admin;
#[cfg(test)]
mod architecture_tests;
pub mod audit;
pub mod background;
pub mod config;
pub mod cookies;
pub mod decision;
pub mod demo;
pub mod directory;
pub mod directory_cli;
pub mod directory_watch;
pub mod echo;
pub mod endpoints;
pub mod explain;
pub mod headers;
pub mod identity;
pub mod logging;
pub mod login;
pub mod login_limits;
pub mod metrics;
pub mod pages;
pub mod proxy;
pub mod respond;
pub mod routing;
pub mod server;
pub mod session;
pub mod state;
pub mod store_watch;
pub mod upstream;
