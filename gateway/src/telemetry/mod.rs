//! What the gateway says about itself: the audit log, metrics, log setup.

pub mod audit;
pub mod logging;
pub mod metrics;
