//! The request path: pingora adapted to the gateway (routing, scrubbing, the decision, forwarding).

pub mod proxy;
