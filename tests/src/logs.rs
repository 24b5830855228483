//! Captures what the gateways of this test process log, so tests can assert on audit events and
//! check that no secret is ever written.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

static CAPTURED: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

fn buffer() -> &'static Mutex<Vec<u8>> {
    CAPTURED.get_or_init(|| Mutex::new(Vec::new()))
}

struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        buffer().lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (JSON lines, every level of Guichet's own targets, info
/// for the rest) once per
/// process. The gateway's own `logging::init` then finds a subscriber in place and does nothing.
pub fn capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing_subscriber::fmt()
            .json()
            .with_writer(|| CaptureWriter)
            .with_env_filter(
                "info,guichet_gateway=trace,guichet_protocols=trace,audit=trace,access=trace,pingora=warn,pingora_core=warn,pingora_proxy=warn",
            )
            .try_init()
            .ok();
    });
}

/// Everything captured so far, one JSON object a line.
pub fn text() -> String {
    String::from_utf8_lossy(&buffer().lock().unwrap()).into_owned()
}

/// Captured audit events (target `audit`) that mention `needle`.
pub fn audit_events(needle: &str) -> Vec<serde_json::Value> {
    text()
        .lines()
        .filter(|line| line.contains(needle))
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["target"] == "audit")
        .collect()
}
