//! Log setup: `tracing` in human or JSON format, with pingora's `log` records bridged in.
//!
//! Lines are handed to a background writer thread ([`super::log_writer`]), so a slow stdout
//! (a pipe to a log collector) never stalls the proxy's workers; formatting still happens on
//! the calling thread.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::{fmt, EnvFilter};

use super::log_writer::{self, WriterGuard};
use crate::config::{LogConfig, LogFormat};

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the global subscriber. Safe to call more than once (later calls do nothing), which
/// tests that boot several gateways rely on. Keep the returned guard until the process ends:
/// dropping it flushes the lines still queued.
#[must_use = "dropping the guard stops the log writer"]
pub fn init(config: &LogConfig) -> Option<WriterGuard> {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return None;
    }
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Lines are written by a thread of their own, in batches (`log_writer`): lossless, and
    // no wake-up of that thread per line.
    let (writer, guard) = match log_writer::start(std::io::stdout()) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("guichet: cannot start the log writer thread: {e}");
            return None;
        }
    };
    let installed = match config.format {
        LogFormat::Json => fmt()
            .json()
            .with_current_span(false)
            .with_env_filter(filter)
            .with_writer(writer)
            .try_init(),
        LogFormat::Human => fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            // Colours only for a person at a terminal who did not ask for none (NO_COLOR):
            // escape codes in a log collector's lines (a container's stdout is a pipe) garble
            // searches.
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stdout())
                    && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty()),
            )
            .try_init(),
    };
    // try_init also installs the log→tracing bridge for pingora's `log` records. If a
    // subscriber already existed (tests capture logs), ours is simply not used.
    installed.is_ok().then_some(guard)
}
