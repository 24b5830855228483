//! The Guichet test kit: real components on ephemeral loopback ports.
//!
//! - [`RedisServer`]: a real `redis-server` started for the test and killed after it;
//! - [`TestGateway`]: the gateway booted in-process from a config built in code, in front of the
//!   built-in echo application;
//! - [`Browser`]: an HTTP client that never follows redirects (each hop is asserted) and keeps
//!   its own cookie jar.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use guichet_gateway::config::Config;
use guichet_gateway::echo::EchoServer;
use guichet_gateway::server::{self, RunningGateway};

pub mod binary;
pub mod cas;
pub mod chromium;
pub mod faults;
pub mod franceconnect;
pub mod keys;
pub mod logs;
pub mod oidc;
pub mod poll;
pub mod redis_ha;
pub mod saml_idp;
pub mod scim;
pub mod simplesamlphp;
pub mod tls;

/// The host name test apps are published on (resolved to 127.0.0.1 by the [`Browser`]).
pub const APP_HOST: &str = "app.test";
pub const OTHER_HOST: &str = "other.test";

/// The `guichet` binary next to the test binary (the test command builds it first). Refused
/// when older than any source it is built from: a test must never pass against stale code.
pub fn guichet_binary() -> PathBuf {
    use std::sync::OnceLock;
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            // The test binary lives in target/<profile>/deps; the guichet binary one level up.
            let exe = std::env::current_exe().expect("the test binary's path");
            let path = exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("target/<profile>/deps")
                .join("guichet");
            let built = std::fs::metadata(&path).and_then(|m| m.modified());
            let Ok(built) = built else {
                panic!(
                    "{} is missing: the test command builds it first (`cargo build --bin guichet`)",
                    path.display()
                );
            };
            let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            // For a developer whose sources keep changing under another edit while they test
            // one part; the test command never sets it.
            let checked = std::env::var_os("GUICHET_TESTS_ACCEPT_STALE_BINARY").is_none();
            if let Some(newer) = newest_source_after(&workspace, built).filter(|_| checked) {
                panic!(
                    "{} is older than {}: rebuild it (`cargo build --bin guichet`, which the test command does)",
                    path.display(),
                    newer.display()
                );
            }
            path
        })
        .clone()
}

/// A source of the binary (its crates' `src/`, manifests, the lock file) modified after `time`.
fn newest_source_after(
    workspace: &std::path::Path,
    time: std::time::SystemTime,
) -> Option<PathBuf> {
    fn walk(dir: &std::path::Path, time: std::time::SystemTime) -> Option<PathBuf> {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            let metadata = entry.metadata().ok()?;
            // Unit-test modules (`src/**/tests/`, `*_tests.rs`, `tests.rs`) are not part of
            // the binary: cargo does not rebuild it for them, so they cannot make it stale.
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == "tests" || name == "tests.rs" || name.ends_with("_tests.rs") {
                continue;
            }
            if metadata.is_dir() {
                if let Some(found) = walk(&path, time) {
                    return Some(found);
                }
            } else if metadata.modified().is_ok_and(|m| m > time) {
                return Some(path);
            }
        }
        None
    }
    let mut candidates = vec![workspace.join("Cargo.lock"), workspace.join("Cargo.toml")];
    for krate in ["gateway", "protocols", "policies", "directory-client"] {
        candidates.push(workspace.join(krate).join("Cargo.toml"));
        if let Some(found) = walk(&workspace.join(krate).join("src"), time) {
            return Some(found);
        }
    }
    candidates.into_iter().find(|file| {
        std::fs::metadata(file)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m > time)
    })
}

/// The first value of a URL's query parameter.
pub fn query_value(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A free TCP port on loopback, for servers that cannot report the port they bound (the
/// gateway binary, redis-server).
///
/// Ports come from below the kernel's ephemeral range (32768 and up on Linux), so no socket
/// bound to port 0 or outgoing connection can take one between this call and its use, and a
/// process-wide counter never hands the same port out twice; each is checked free first.
/// How long a session ended on one replica may still be served by another: the default lifetime
/// of a replica's local copy of session records (750 ms), with room for a loaded machine.
pub const CROSS_REPLICA_BOUND: Duration = Duration::from_secs(1);

pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    // Start where another test process (a concurrent run) is unlikely to be.
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(2_654_435_761) % COUNT;
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (offset + n) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT);
}

pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A real `redis-server` on an ephemeral loopback port, without persistence.
pub struct RedisServer {
    pub port: u16,
    password: Option<String>,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with_password(None)
    }

    /// A server that requires `AUTH password` (`requirepass`).
    pub fn start_with_password(password: Option<&str>) -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            password: password.map(str::to_owned),
            child: None,
        };
        server.restart();
        server
    }

    /// `redis://[:password@]127.0.0.1:PORT/` (the password percent-encoded).
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!(
                "redis://:{}@127.0.0.1:{}/",
                url::form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>(),
                self.port
            ),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// Kills the server (sessions are lost: persistence is off).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let mut args = vec![
            "--port".to_string(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
        ];
        if let Some(password) = &self.password {
            args.extend(["--requirepass".into(), password.clone()]);
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server must be installed: run the README's test command (scripts/test.sh)",
            );
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "redis-server did not start on port {}",
            self.port
        );
    }

    /// Runs a redis-cli-like command through a raw connection (for assertions on what is stored).
    pub fn command(&self, args: &[&str]) -> String {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect redis");
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
        let encode = |args: &[&str]| {
            let mut request = format!("*{}\r\n", args.len());
            for arg in args {
                request.push_str(&format!("${}\r\n{}\r\n", arg.len(), arg));
            }
            request
        };
        let mut request = String::new();
        if let Some(password) = &self.password {
            request.push_str(&encode(&["AUTH", password]));
        }
        request.push_str(&encode(args));
        stream.write_all(request.as_bytes()).expect("write redis");
        let mut buffer = vec![0u8; 1 << 20];
        let mut response = Vec::new();
        // Read until the server stops sending for a moment: enough for small test replies.
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .ok();
        while let Ok(n) = stream.read(&mut buffer) {
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buffer[..n]);
        }
        String::from_utf8_lossy(&response).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Which session store a test gateway uses.
#[derive(Clone, Debug)]
pub enum Store {
    Memory,
    Redis { url: String },
}

/// What a test gateway looks like; defaults are the common case, tests change what they need.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    pub store: Store,
    pub idle_timeout: &'static str,
    pub absolute_timeout: &'static str,
    pub max_failures_per_account: u64,
    pub max_failures_per_account_and_address: u64,
    pub slow_down_address_after: u64,
    /// `rate_limit.max_delay` of the local provider.
    pub max_delay: &'static str,
    /// `rate_limit.trusted_networks` of the local provider, as inline YAML.
    pub trusted_networks: Option<String>,
    /// Extra YAML appended to the `identity_headers.headers` list of the main app.
    pub extra_headers: Vec<String>,
    pub trusted_proxies: Vec<String>,
    /// Port to listen on (0: a free one). Fixed ports let a restarted gateway keep its URL.
    pub port: u16,
    /// Upstream of the main app instead of the echo app.
    pub upstream_override: Option<String>,
    /// `upstream_tls` of the main app, as inline YAML (`{ ca_file: ..., sni: ... }`).
    pub upstream_tls: Option<String>,
    /// Serve the apps over HTTPS with this certificate and key (files).
    pub listener_tls: Option<(PathBuf, PathBuf)>,
    pub login_starts_per_minute: u64,
    /// More providers, as YAML list items (`  - kind: oidc\n    id: ...`).
    pub extra_providers: Vec<String>,
    /// More apps, as YAML list items; `{origin}` becomes `http://app.test:PORT` and `{echo}`
    /// the echo app's address.
    pub extra_apps: Vec<String>,
    /// The `directory:` section's content, as YAML indented by two spaces.
    pub directory: Option<String>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            store: Store::Memory,
            idle_timeout: "30m",
            absolute_timeout: "8h",
            max_failures_per_account: 20,
            max_failures_per_account_and_address: 5,
            slow_down_address_after: 200,
            max_delay: "5s",
            trusted_networks: None,
            extra_headers: Vec::new(),
            trusted_proxies: Vec::new(),
            port: 0,
            upstream_override: None,
            upstream_tls: None,
            listener_tls: None,
            login_starts_per_minute: 600,
            extra_providers: Vec::new(),
            extra_apps: Vec::new(),
            directory: None,
        }
    }
}

/// A demo user of every test gateway.
pub const ALICE: (&str, &str) = ("alice@example.org", "alice");
pub const BOB: (&str, &str) = ("bob", "bob");

/// A precomputed argon2id hash per test user, so tests don't spend seconds hashing.
pub fn user_hash(password: &str) -> &'static str {
    use std::sync::OnceLock;
    static HASHES: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    let hashes = HASHES.get_or_init(|| {
        ["alice", "bob", "carol", "guest"]
            .iter()
            .map(|p| (p.to_string(), guichet_protocols::local::hash_password(p)))
            .collect()
    });
    hashes[password].as_str()
}

/// The configuration text of a test gateway.
pub fn config_yaml(
    options: &GatewayOptions,
    port: u16,
    admin_port: u16,
    echo: SocketAddr,
) -> String {
    let store = match &options.store {
        Store::Memory => "kind: memory".to_string(),
        Store::Redis { url } => format!(
            "kind: redis\n    url: \"{url}\"\n    encryption_key: \"{}\"",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes, base64
        ),
    };
    let extra_headers: String = options
        .extra_headers
        .iter()
        .map(|h| format!("        - {h}\n"))
        .collect();
    let trusted = format!("[{}]", options.trusted_proxies.join(", "));
    let scheme = if options.listener_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let listener_tls = match &options.listener_tls {
        Some((cert, key)) => format!(
            "\n    tls: {{ cert_file: \"{}\", key_file: \"{}\" }}",
            cert.display(),
            key.display()
        ),
        None => String::new(),
    };
    let upstream_tls = options
        .upstream_tls
        .as_ref()
        .map(|yaml| format!("\n    upstream_tls: {yaml}"))
        .unwrap_or_default();
    let extra_providers: String = options.extra_providers.concat();
    let extra_apps: String = options
        .extra_apps
        .concat()
        .replace("{origin}", &format!("{scheme}://{APP_HOST}:{port}"))
        .replace("{echo}", &echo.to_string());
    let main_upstream = options
        .upstream_override
        .clone()
        .unwrap_or_else(|| format!("http://{echo}"));
    format!(
        r#"
listen:
  - address: 127.0.0.1:{port}{listener_tls}
admin: 127.0.0.1:{admin_port}
threads: 1
trusted_proxies: {trusted}
log:
  level: warn
session:
  login_starts_per_minute: {login_starts}
  idle_timeout: {idle}
  absolute_timeout: {absolute}
  store:
    {store}
providers:
  - kind: local
    id: local
    rate_limit:
      max_failures_per_account: {per_account}
      max_failures_per_account_and_address: {per_pair}
      slow_down_address_after: {slow_after}
      max_delay: {max_delay}
      trusted_networks: {trusted_networks}
      window: 10m
    users:
      - username: alice
        email: alice@example.org
        display_name: "Alice Martin"
        password_hash: '{alice}'
        roles: [agent, admin]
      - username: bob
        email: bob@example.org
        display_name: "Grégory Françoise"
        password_hash: '{bob}'
        roles: [reader]
        attributes:
          evil: ["x\r\nX-Injected: 1"]
      - username: carol
        password_hash: '{carol}'
        disabled: true
  - kind: local
    id: guests
    display_name: "Invités / Guests"
    users:
      - username: guest
        password_hash: '{guest}'
        attributes:
          groups: ["a,b", "c"]
{extra_providers}
apps:
  - id: main
    url: {scheme}://{APP_HOST}:{port}
    upstream: {main_upstream}{upstream_tls}
    providers: [local]
    contact: "helpdesk@example.org"
    rules:
      - path_prefix: /public
        access: public
      - {{ name: admin area, path: /admin, any_role: [admin] }}
    identity_headers:
      prefix: X-Remote-
      headers:
        - {{ name: X-Remote-User, value: subject }}
        - {{ name: X-Remote-Email, value: "attribute:email" }}
        - {{ name: X-Remote-Roles, value: roles }}
        - {{ name: X-Remote-Name, value: "attribute:display_name" }}
{extra_headers}
  - id: partners
    url: {scheme}://{APP_HOST}:{port}/partners
    upstream: http://{echo}
    providers: [guests]
    access: public
    case_insensitive_paths: true
    rules:
      - path_prefix: /partners/admin
        access: authenticated
    identity_headers:
      separator: ","
      headers:
        - {{ name: X-Remote-User, value: subject }}
        - {{ name: X-Remote-Groups, value: "attribute:groups", encoding: utf8 }}
  - id: other
    url: {scheme}://{OTHER_HOST}:{port}/other
    upstream: http://{echo}
    providers: [local]
    access: public
{extra_apps}
{directory}
"#,
        directory = options
            .directory
            .as_ref()
            .map(|yaml| format!("directory:\n{yaml}"))
            .unwrap_or_default(),
        idle = options.idle_timeout,
        absolute = options.absolute_timeout,
        per_account = options.max_failures_per_account,
        per_pair = options.max_failures_per_account_and_address,
        slow_after = options.slow_down_address_after,
        max_delay = options.max_delay,
        trusted_networks = options.trusted_networks.as_deref().unwrap_or("[]"),
        login_starts = options.login_starts_per_minute,
        guest = user_hash("guest"),
        alice = user_hash("alice"),
        bob = user_hash("bob"),
        carol = user_hash("carol"),
    )
}

/// A gateway running in this process, in front of an echo app.
pub struct TestGateway {
    pub port: u16,
    pub admin_port: u16,
    pub echo: Arc<EchoServer>,
    pub running: Option<RunningGateway>,
    pub options: GatewayOptions,
}

impl TestGateway {
    pub fn start(options: GatewayOptions) -> TestGateway {
        let echo = Arc::new(guichet_gateway::echo::start_on_loopback().expect("echo app"));
        Self::start_with_echo(options, echo)
    }

    /// Starts another gateway in front of the same echo app (two replicas, or a restart).
    pub fn start_with_echo(options: GatewayOptions, echo: Arc<EchoServer>) -> TestGateway {
        Self::start_supplied(options, echo, Vec::new())
    }

    /// A gateway whose `kind: external` providers are these implementations (a protocol
    /// defined in a test, plugged in as an embedding program would).
    pub fn start_with_providers(
        options: GatewayOptions,
        providers: Vec<Arc<dyn guichet_protocols::IdentityProvider>>,
    ) -> TestGateway {
        let echo = Arc::new(guichet_gateway::echo::start_on_loopback().expect("echo app"));
        Self::start_supplied(options, echo, providers)
    }

    fn start_supplied(
        options: GatewayOptions,
        echo: Arc<EchoServer>,
        providers: Vec<Arc<dyn guichet_protocols::IdentityProvider>>,
    ) -> TestGateway {
        let port = if options.port == 0 {
            free_port()
        } else {
            options.port
        };
        let admin_port = free_port();
        let yaml = config_yaml(&options, port, admin_port, echo.address);
        let mut config =
            Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("test config: {e}\n{yaml}"));
        for provider in providers {
            config.supply_provider(provider);
        }
        logs::capture();
        let running = server::spawn(&config).expect("gateway starts");
        assert!(
            wait_for_port(port, Duration::from_secs(10)),
            "gateway did not listen"
        );
        assert!(
            wait_for_port(admin_port, Duration::from_secs(10)),
            "admin did not listen"
        );
        TestGateway {
            port,
            admin_port,
            echo,
            running: Some(running),
            options: GatewayOptions { port, ..options },
        }
    }

    fn scheme(&self) -> &'static str {
        if self.options.listener_tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// `http://app.test:PORT` + path (https when the listener has TLS).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{APP_HOST}:{}{path}", self.scheme(), self.port)
    }

    pub fn host_url(&self, host: &str, path: &str) -> String {
        format!("{}://{host}:{}{path}", self.scheme(), self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// A browser that resolves the test hosts to this gateway.
    pub fn browser(&self) -> Browser {
        Browser::new(self.port)
    }

    /// Stops the gateway (its in-process state is gone; what is in Redis stays).
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop();
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A gateway a [`Browser`] can talk to: in this process ([`TestGateway`]) or a `guichet`
/// process ([`binary::GuichetProcess`]).
pub trait Reachable {
    /// `http://app.test:PORT` + path.
    fn url(&self, path: &str) -> String;
}

impl Reachable for TestGateway {
    fn url(&self, path: &str) -> String {
        TestGateway::url(self, path)
    }
}

/// A response with what tests look at.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }

    /// The echo app's JSON view of the request it received.
    pub fn echo(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not an echo JSON page: {} {}", self.status, self.body))
    }

    /// Every value the upstream received for a header (lowercase name).
    pub fn upstream_header(&self, name: &str) -> Vec<String> {
        self.echo()["headers"]
            .as_array()
            .expect("headers array")
            .iter()
            .filter(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Raw bytes of a header the upstream received.
    pub fn upstream_header_bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.echo()["raw_headers"]
            .as_array()
            .expect("raw_headers array")
            .iter()
            .find(|pair| pair[0] == name)
            .map(|pair| hex_decode(pair[1].as_str().unwrap_or_default()))
    }

    /// The CSRF token of a login form page.
    pub fn csrf_token(&self) -> String {
        let marker = "name=\"csrf_token\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no CSRF token in: {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("closing quote") + start;
        self.body[start..end].to_owned()
    }
}

/// A header name as many servers see it: lowercase, `_` as `-`.
pub fn canonical(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// An HTTP client that does not follow redirects and keeps cookies the way a browser would
/// for one site (name → value; cleared by `Max-Age=0`).
#[derive(Clone)]
pub struct Browser {
    client: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(port: u16) -> Browser {
        Self::with_roots(port, None)
    }

    /// A browser that trusts `ca_pem` for HTTPS.
    pub fn with_roots(port: u16, ca_pem: Option<&str>) -> Browser {
        Self::build(port, ca_pem, &[APP_HOST, OTHER_HOST])
    }

    /// A browser that resolves `hosts` (an example configuration's app hosts) to the gateway.
    pub fn resolving(port: u16, hosts: &[&str]) -> Browser {
        Self::build(port, None, hosts)
    }

    fn build(port: u16, ca_pem: Option<&str>, hosts: &[&str]) -> Browser {
        let loopback = SocketAddr::from(([127, 0, 0, 1], port));
        let mut builder = reqwest::Client::builder();
        for host in hosts {
            builder = builder.resolve(host, loopback);
        }
        if let Some(pem) = ca_pem {
            builder = builder.tls_built_in_root_certs(false).add_root_certificate(
                reqwest::Certificate::from_pem(pem.as_bytes()).expect("CA PEM"),
            );
        }
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("reqwest client");
        Browser {
            client,
            cookies: BTreeMap::new(),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    pub fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = match self.cookie_header() {
            Some(cookies) => request.header("cookie", cookies),
            None => request,
        };
        let response = request.send().await.expect("request reaches the gateway");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for set in headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let pair = set.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if set.contains("Max-Age=0") || value.is_empty() {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let body = response.text().await.unwrap_or_default();
        Page {
            status,
            headers,
            body,
        }
    }

    pub fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.get(url).header("accept", "text/html")
    }

    /// Asks `url` (as JSON) until the session is no longer served there (an answer other than
    /// 200), for at most `within`: replicas keep a short-lived copy of session records, and a
    /// session ended on another replica is dropped from it when the announcement arrives
    /// (milliseconds), or when the copy ages out (under [`CROSS_REPLICA_BOUND`]). Returns the
    /// first answer that is not 200 (or the last 200) and how long it took.
    pub async fn until_signed_out(&mut self, url: &str, within: Duration) -> (Page, Duration) {
        let started = Instant::now();
        loop {
            let page = self.send(self.get_json(url)).await;
            if page.status != 200 || started.elapsed() >= within {
                return (page, started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A GET asking the echo app for JSON (authenticated requests only: a JSON request without
    /// a session gets 401, not a redirect).
    pub fn get_json(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.get(url).header("accept", "application/json")
    }

    pub fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }

    pub fn raw(&self) -> &reqwest::Client {
        &self.client
    }

    /// POSTs the login form with this CSRF token and credentials.
    pub async fn submit_login(
        &mut self,
        gateway: &impl Reachable,
        token: &str,
        user: (&str, &str),
    ) -> Page {
        self.send(self.post_form(
            &gateway.url("/.guichet/login"),
            &[
                ("csrf_token", token),
                ("username", user.0),
                ("password", user.1),
            ],
        ))
        .await
    }

    /// The full local login dance from a protected URL; returns the final redirect response.
    pub async fn login(
        &mut self,
        gateway: &impl Reachable,
        path: &str,
        user: (&str, &str),
    ) -> Page {
        let first = self.send(self.get(&gateway.url(path))).await;
        assert_eq!(
            first.status, 302,
            "protected page redirects to login: {}",
            first.body
        );
        assert_eq!(first.location(), Some("/.guichet/login"));
        let form = self.send(self.get(&gateway.url("/.guichet/login"))).await;
        assert_eq!(form.status, 200, "{}", form.body);
        let token = form.csrf_token();
        self.send(self.post_form(
            &gateway.url("/.guichet/login"),
            &[
                ("csrf_token", &token),
                ("username", user.0),
                ("password", user.1),
            ],
        ))
        .await
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Sends a GET with the request target exactly as given (no client-side normalization) and
/// returns the status and the whole response text.
pub fn raw_get(port: u16, host: &str, target: &str) -> (u16, String) {
    raw_request(
        port,
        &format!("GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/html\r\nConnection: close\r\n\r\n"),
    )
}

/// Sends `request` byte for byte and returns the status and the whole response text.
pub fn raw_request(port: u16, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect gateway");
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    stream.write_all(request.as_bytes()).expect("write request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}
