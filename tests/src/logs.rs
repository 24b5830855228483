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

/// Everything captured so far in this process, one JSON object a line. Prefer a [`Scope`]:
/// this holds the lines of every test run so far.
pub fn text() -> String {
    since(0)
}

/// Captured audit events (target `audit`) that mention `needle`, in the whole process: only
/// for a needle no other test can log (a correlation id). Prefer [`Scope::audit_events`].
pub fn audit_events(needle: &str) -> Vec<serde_json::Value> {
    audit_events_in(&text(), needle)
}

fn since(offset: usize) -> String {
    let buffer = buffer().lock().unwrap();
    String::from_utf8_lossy(&buffer[offset.min(buffer.len())..]).into_owned()
}

fn audit_events_in(text: &str, needle: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|line| line.contains(needle))
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["target"] == "audit")
        .collect()
}

/// What was logged since a test began: lines of tests that ran before cannot satisfy (or
/// fail) its assertions. The gateways of tests running at the same time share the process and
/// its log, so a test still looks lines up by something only it produces: the correlation id of
/// one of its responses ([`Scope::audit_of`]), a temporary path, a port, a value it made up.
///
/// ```ignore
/// let logs = logs::Scope::begin();
/// let page = browser.send(...).await;
/// let events = logs.audit_of(&page);
/// ```
pub struct Scope {
    start: usize,
}

impl Scope {
    /// Starts reading here: nothing logged before is seen through this scope.
    pub fn begin() -> Scope {
        capture();
        Scope {
            start: buffer().lock().unwrap().len(),
        }
    }

    /// The lines logged since [`Scope::begin`].
    pub fn text(&self) -> String {
        since(self.start)
    }

    /// Audit events (target `audit`) logged since [`Scope::begin`] that mention `needle`.
    pub fn audit_events(&self, needle: &str) -> Vec<serde_json::Value> {
        audit_events_in(&self.text(), needle)
    }

    /// The audit events of one response: those carrying its correlation id (`x-request-id`),
    /// unique to the request.
    pub fn audit_of(&self, page: &crate::Page) -> Vec<serde_json::Value> {
        let id = page
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no x-request-id on the response: {}", page.status));
        self.audit_events(&format!("\"correlation_id\":\"{id}\""))
    }

    /// Waits (polling, up to `within`) for a line containing every one of `needles`, and
    /// returns it.
    pub async fn wait_for_line(&self, needles: &[&str], within: std::time::Duration) -> String {
        let what = format!("a log line with {needles:?}");
        crate::poll::eventually(within, &what, || {
            let found = self
                .text()
                .lines()
                .find(|line| needles.iter().all(|n| line.contains(n)))
                .map(str::to_owned);
            async move { found }
        })
        .await
    }
}
