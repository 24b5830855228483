//! A mock CAS server (wiremock on an ephemeral loopback port): issues service tickets for a
//! service, validates them once at `/cas/p3/serviceValidate` (CAS 3.0) and
//! `/cas/serviceValidate` (CAS 2.0, with attributes as many CAS 2.0 servers release them
//! there), and can be told to answer anything else: a raw
//! body, a status, slowness. Also builds the server's single logout requests.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub struct Ticket {
    pub service: String,
    pub user: String,
    /// The inside of `<cas:attributes>`, as XML.
    pub attributes_xml: String,
    pub used: bool,
}

#[derive(Default)]
pub struct CasState {
    pub tickets: HashMap<String, Ticket>,
    /// Answer every validation with this body instead (200).
    pub raw_answer: Option<String>,
    /// Put this (a `<!DOCTYPE ...>`) between the XML declaration and the root element of
    /// otherwise valid success answers.
    pub doctype: Option<String>,
    pub status: Option<u16>,
    pub delay: Option<Duration>,
    counter: u64,
}

pub struct MockCas {
    pub server: MockServer,
    state: Arc<Mutex<CasState>>,
}

fn query(request: &Request, name: &str) -> Option<String> {
    crate::query_value(&request.url, name)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn failure(code: &str, message: &str) -> String {
    format!(
        r#"<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">
  <cas:authenticationFailure code="{code}">{}</cas:authenticationFailure>
</cas:serviceResponse>"#,
        escape(message)
    )
}

fn validate(state: &mut CasState, request: &Request) -> ResponseTemplate {
    let delay = state.delay.unwrap_or_default();
    if let Some(status) = state.status {
        return ResponseTemplate::new(status).set_delay(delay);
    }
    if let Some(raw) = &state.raw_answer {
        return ResponseTemplate::new(200)
            .set_body_string(raw.clone())
            .set_delay(delay);
    }
    let (Some(ticket), Some(service)) = (query(request, "ticket"), query(request, "service"))
    else {
        return ResponseTemplate::new(200).set_body_string(failure(
            "INVALID_REQUEST",
            "ticket and service are required",
        ));
    };
    let body = match state.tickets.get_mut(&ticket) {
        None => failure("INVALID_TICKET", &format!("Ticket {ticket} not recognized")),
        Some(t) if t.used => failure("INVALID_TICKET", &format!("Ticket {ticket} already used")),
        Some(t) if t.service != service => {
            t.used = true;
            failure(
                "INVALID_SERVICE",
                &format!("Ticket {ticket} does not match {service}"),
            )
        }
        Some(t) => {
            t.used = true;
            let attributes = if !t.attributes_xml.is_empty() {
                format!("<cas:attributes>{}</cas:attributes>", t.attributes_xml)
            } else {
                String::new()
            };
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>{doctype}
<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">
  <cas:authenticationSuccess>
    <cas:user>{}</cas:user>
    {attributes}
  </cas:authenticationSuccess>
</cas:serviceResponse>"#,
                escape(&t.user),
                doctype = state.doctype.as_deref().unwrap_or_default(),
            )
        }
    };
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/xml")
        .set_body_string(body)
        .set_delay(delay)
}

impl MockCas {
    pub async fn start() -> MockCas {
        let mock = MockCas {
            server: MockServer::start().await,
            state: Arc::new(Mutex::new(CasState::default())),
        };
        for route in ["/cas/p3/serviceValidate", "/cas/serviceValidate"] {
            let state = mock.state.clone();
            Mock::given(method("GET"))
                .and(path(route))
                .respond_with(move |request: &Request| {
                    validate(&mut state.lock().unwrap(), request)
                })
                .mount(&mock.server)
                .await;
        }
        mock
    }

    /// The server's base URL (`http://127.0.0.1:PORT/cas`).
    pub fn url(&self) -> String {
        format!("{}/cas", self.server.uri())
    }

    pub fn state(&self) -> MutexGuard<'_, CasState> {
        self.state.lock().unwrap()
    }

    /// Issues a service ticket for `service` (the URL the browser was sent back to, without
    /// its `ticket` parameter), as the server does after a login.
    pub fn issue(&self, service: &str, user: &str, attributes_xml: &str) -> String {
        let mut state = self.state();
        state.counter += 1;
        let ticket = format!("ST-{}-{}", state.counter, "cas-mock-ticket");
        self.issue_exact(&mut state, &ticket, service, user, attributes_xml);
        ticket
    }

    /// Issues a ticket with the given text (tickets with odd characters).
    pub fn issue_named(&self, ticket: &str, service: &str, user: &str) {
        let mut state = self.state();
        self.issue_exact(&mut state, ticket, service, user, "");
    }

    fn issue_exact(
        &self,
        state: &mut CasState,
        ticket: &str,
        service: &str,
        user: &str,
        attributes_xml: &str,
    ) {
        state.tickets.insert(
            ticket.to_owned(),
            Ticket {
                service: service.to_owned(),
                user: user.to_owned(),
                attributes_xml: attributes_xml.to_owned(),
                used: false,
            },
        );
    }

    /// Validation requests received, as (path, query pairs).
    pub async fn validations(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().ends_with("serviceValidate"))
            .map(|r| {
                (
                    r.url.path().to_owned(),
                    r.url.query_pairs().into_owned().collect(),
                )
            })
            .collect()
    }
}

/// The SAML LogoutRequest a CAS server sends for a service ticket.
pub fn logout_request(ticket: &str) -> String {
    format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="LR-{ticket}" Version="2.0" IssueInstant="2026-11-30T10:00:00Z"><saml:NameID>@NOT_USED@</saml:NameID><samlp:SessionIndex>{ticket}</samlp:SessionIndex></samlp:LogoutRequest>"#
    )
}

/// The front-channel form: base64 of the raw-DEFLATE-compressed request.
pub fn front_channel(xml: &str) -> String {
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(xml.as_bytes()).expect("in memory");
    base64::engine::general_purpose::STANDARD.encode(encoder.finish().expect("in memory"))
}

/// The hidden fields of the first form of an HTML page (name → value), e.g. a CAS login form's
/// `lt` and CSRF token.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let attribute = |tag: &str, name: &str| {
        let needle = format!("{name}=\"");
        tag.find(&needle).map(|at| {
            let rest = &tag[at + needle.len()..];
            rest[..rest.find('"').unwrap_or(rest.len())]
                .replace("&amp;", "&")
                .replace("&quot;", "\"")
        })
    };
    html.split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>').unwrap_or(rest.len())];
            if attribute(tag, "type").as_deref() != Some("hidden") {
                return None;
            }
            Some((
                attribute(tag, "name")?,
                attribute(tag, "value").unwrap_or_default(),
            ))
        })
        .collect()
}

/// The independent CAS server of the interop test: django-cas-server from PyPI, run from
/// `tests/interop/django-cas-server` with the venv `scripts/test.sh` prepares. One user,
/// `test` / `test`. Guichet's callback URLs on the test host are a registered service with
/// single logout, its logout requests sent to `slo_callback`.
pub struct DjangoCas {
    pub port: u16,
    child: std::process::Child,
    _db: tempfile::TempDir,
}

impl DjangoCas {
    pub fn start(slo_callback: &str) -> DjangoCas {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/django-cas-server");
        let python = dir.join(".venv/bin/python");
        assert!(
            python.exists(),
            "django-cas-server is not installed: run scripts/test.sh (it creates {})",
            python.display()
        );
        let db = tempfile::tempdir().expect("a temporary directory");
        let db_path = db.path().join("cas.sqlite3");
        let prepared = std::process::Command::new(&python)
            .arg("prepare.py")
            .current_dir(&dir)
            .env("GUICHET_CAS_DB", &db_path)
            .env("GUICHET_SLO_CALLBACK", slo_callback)
            .output()
            .expect("python runs");
        assert!(
            prepared.status.success(),
            "prepare.py failed: {}",
            String::from_utf8_lossy(&prepared.stderr)
        );
        let port = crate::free_port();
        let child = std::process::Command::new(&python)
            .args(["manage.py", "runserver", "--noreload", "--nothreading"])
            .arg(format!("127.0.0.1:{port}"))
            .current_dir(&dir)
            .env("GUICHET_CAS_DB", &db_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python runs");
        assert!(
            crate::wait_for_port(port, Duration::from_secs(30)),
            "django-cas-server did not listen"
        );
        DjangoCas {
            port,
            child,
            _db: db,
        }
    }

    /// The server's base URL (`http://127.0.0.1:PORT/cas`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/cas", self.port)
    }
}

impl Drop for DjangoCas {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
