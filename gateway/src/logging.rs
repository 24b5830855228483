//! Log setup: `tracing` in human or JSON format, with pingora's `log` records bridged in.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Safe to call more than once (later calls do nothing), which
/// tests that boot several gateways rely on.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let result = match config.format {
        LogFormat::Json => fmt()
            .json()
            .with_current_span(false)
            .with_env_filter(filter)
            .try_init(),
        LogFormat::Human => fmt().with_env_filter(filter).try_init(),
    };
    // try_init installs the log→tracing bridge too (tracing-subscriber's tracing-log feature);
    // if a subscriber already exists there is nothing more to do.
    let _ = result;
}
