//! What the gateway says about itself: the audit log, metrics, log setup.

pub mod audit;
pub mod log_writer;
pub mod logging;
pub mod metrics;
