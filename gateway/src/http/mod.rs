//! HTTP building blocks with no knowledge of sessions or providers: cookies, the gateway's pages and replies, request targets and routing, identity-header encoding, upstream peers.

pub mod cookies;
pub mod headers;
#[cfg(test)]
mod headers_props;
pub mod pages;
pub mod respond;
pub mod routing;
#[cfg(test)]
mod routing_props;
pub mod slots;
pub mod upstream;
