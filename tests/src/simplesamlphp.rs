//! The real SimpleSAMLphp IdP (Debian's `simplesamlphp` package, 1.19) on a loopback port,
//! for SAML 2.0 interop tests: an implementation Guichet shares no code with.
//!
//! [`SimpleSamlPhp::start`] writes a private configuration directory (the templates of
//! `tests/interop/simplesamlphp`, plus a `guichet.json` with what changes per run), then runs
//! `php -S 127.0.0.1:PORT` over a document root whose `simplesaml` entry is a symlink to the
//! package's `www/`, with `SIMPLESAMLPHP_CONFIG_DIR` pointing at that directory. The process is
//! killed when the value is dropped.
//!
//! The browser side ([`SimpleSamlPhp::login`], the logout methods) drives a caller-supplied
//! `reqwest::Client` that keeps cookies and does not follow redirects: every hop inside the
//! IdP is followed here, and the walk stops at the first message leaving the IdP (a redirect
//! to another origin, or the auto-submitted form of the HTTP-POST binding).
//!
//! Users: [`ALICE`] and [`BOB`]. Attributes are released with OID names
//! (`urn:oasis:names:tc:SAML:2.0:attrname-format:uri`); the NameID is persistent (the uid) or
//! emailAddress (the mail), whichever the AuthnRequest's NameIDPolicy asks, persistent
//! otherwise.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;

/// `alice` / `alice-pw`: uid=alice, mail=alice@example.org, givenName=Hélène, sn=Dupré,
/// displayName="Hélène Dupré", eduPersonAffiliation=[member, staff].
pub const ALICE: (&str, &str) = ("alice", "alice-pw");
/// `bob` / `bob-pw`: uid=bob, mail=bob@example.org, givenName=Bob, sn=Sørensen,
/// displayName="Bob Sørensen", eduPersonAffiliation=[student].
pub const BOB: (&str, &str) = ("bob", "bob-pw");

/// The OID names the IdP releases attributes under (SimpleSAMLphp's `name2oid` map).
pub mod oid {
    pub const UID: &str = "urn:oid:0.9.2342.19200300.100.1.1";
    pub const MAIL: &str = "urn:oid:0.9.2342.19200300.100.1.3";
    pub const GIVEN_NAME: &str = "urn:oid:2.5.4.42";
    pub const SN: &str = "urn:oid:2.5.4.4";
    pub const DISPLAY_NAME: &str = "urn:oid:2.16.840.1.113730.3.1.241";
    pub const EDU_PERSON_AFFILIATION: &str = "urn:oid:1.3.6.1.4.1.5923.1.1.1.1";
}

/// Where Debian's package puts SimpleSAMLphp's web root.
const WWW: &str = "/usr/share/simplesamlphp/www";

const CONFIG_PHP: &str = include_str!("../interop/simplesamlphp/config.php");
const AUTHSOURCES_PHP: &str = include_str!("../interop/simplesamlphp/authsources.php");
const IDP_HOSTED_PHP: &str =
    include_str!("../interop/simplesamlphp/metadata/saml20-idp-hosted.php");
const SP_REMOTE_PHP: &str = include_str!("../interop/simplesamlphp/metadata/saml20-sp-remote.php");
/// Test-only RSA key (committed: generating one at run time costs seconds in debug builds).
const IDP_KEY_PEM: &str = include_str!("../interop/simplesamlphp/idp-signing-key.pem");

/// What the SP under test tells the IdP about itself (from its SP metadata).
#[derive(Clone, Debug)]
pub struct SpRegistration {
    pub entity_id: String,
    /// AssertionConsumerService endpoints (HTTP-POST binding); the first is the default.
    pub acs_urls: Vec<String>,
    /// SingleLogoutService endpoint (HTTP-Redirect binding).
    pub slo_url: String,
    /// The SP's signing and encryption certificate (PEM).
    pub certificate_pem: String,
    /// The IdP signs the LogoutRequests and LogoutResponses it sends (`sign.logout`).
    pub sign_logout: bool,
    /// The IdP encrypts assertions to the SP's certificate (`assertion.encryption`:
    /// RSA-OAEP-MGF1P key transport, AES-128-CBC content).
    pub encrypt_assertions: bool,
    /// The SP signs its AuthnRequests and logout messages, and the IdP refuses unsigned ones
    /// (`validate.authnrequest` and `validate.logout`).
    pub signs_messages: bool,
}

/// An HTML form as the browser would submit it (HTTP-POST binding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostForm {
    /// Absolute URL the form posts to.
    pub action: String,
    pub fields: Vec<(String, String)>,
}

impl PostForm {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A SAML message (or a plain navigation) the browser carries from one party to the other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// HTTP-Redirect binding: a GET of this URL.
    Redirect(String),
    /// HTTP-POST binding: an auto-submitted form.
    Post(PostForm),
}

impl Message {
    /// The URL without its query (where the message goes).
    pub fn destination(&self) -> String {
        let url = match self {
            Message::Redirect(url) => url,
            Message::Post(form) => &form.action,
        };
        url.split('?').next().unwrap_or_default().to_owned()
    }

    /// A parameter: from the query (redirect) or the form fields (post).
    pub fn param(&self, name: &str) -> Option<String> {
        match self {
            Message::Redirect(url) => url::Url::parse(url)
                .ok()
                .and_then(|url| crate::query_value(&url, name)),
            Message::Post(form) => form.field(name).map(str::to_owned),
        }
    }

    /// The XML of the `SAMLRequest` or `SAMLResponse` it carries, decoded per its binding.
    pub fn saml_xml(&self) -> anyhow::Result<String> {
        let value = self
            .param("SAMLRequest")
            .or_else(|| self.param("SAMLResponse"))
            .ok_or_else(|| anyhow!("no SAMLRequest nor SAMLResponse in {self:?}"))?;
        match self {
            Message::Redirect(_) => decode_redirect(&value),
            Message::Post(_) => decode_post(&value),
        }
    }
}

/// Where a walk through the IdP stopped.
#[derive(Debug)]
pub enum Outcome {
    /// The IdP sent the browser elsewhere (a SAML message to the SP, or a `ReturnTo`).
    Leaves(Message),
    /// The IdP shows one of its own pages: a login form, the logged-out page, an error.
    Page {
        url: String,
        status: u16,
        body: String,
    },
}

/// The running IdP; killed on drop.
pub struct SimpleSamlPhp {
    port: u16,
    child: Option<Child>,
    certificate_pem: String,
    log: PathBuf,
    dir: tempfile::TempDir,
}

enum Request {
    Get(String),
    Post(String, Vec<(String, String)>),
}

impl SimpleSamlPhp {
    /// Writes the configuration and starts `php -S` on a free loopback port; returns once the
    /// IdP metadata is served. Panics (with the server's output) when it does not start.
    pub async fn start(sp: &SpRegistration) -> SimpleSamlPhp {
        assert!(
            Path::new(WWW).is_dir(),
            "SimpleSAMLphp is not installed ({WWW} is missing): run the README's test command \
             (scripts/test.sh), which installs Debian's simplesamlphp and php-cli"
        );
        let port = crate::free_port();
        let dir = tempfile::tempdir().expect("a directory for SimpleSAMLphp");
        let root = dir.path();
        for sub in [
            "config/metadata",
            "cert",
            "log",
            "data",
            "tmp",
            "sessions",
            "docroot",
        ] {
            fs::create_dir_all(root.join(sub)).expect("SimpleSAMLphp directories");
        }
        // php -S serves files from its document root; /simplesaml/ is the package's www/.
        std::os::unix::fs::symlink(WWW, root.join("docroot/simplesaml")).expect("symlink www");

        let key = rcgen::KeyPair::from_pem(IDP_KEY_PEM).expect("the IdP's RSA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "Guichet interop SimpleSAMLphp IdP",
        );
        let certificate_pem = params.self_signed(&key).expect("IdP certificate").pem();

        let write = |path: &str, text: &str| {
            fs::write(root.join(path), text).unwrap_or_else(|e| panic!("write {path}: {e}"))
        };
        write("cert/idp.key", IDP_KEY_PEM);
        write("cert/idp.crt", &certificate_pem);
        write("cert/sp.crt", &sp.certificate_pem);
        write("config/config.php", CONFIG_PHP);
        write("config/authsources.php", AUTHSOURCES_PHP);
        write("config/metadata/saml20-idp-hosted.php", IDP_HOSTED_PHP);
        write("config/metadata/saml20-sp-remote.php", SP_REMOTE_PHP);

        let base_url = format!("http://127.0.0.1:{port}/simplesaml/");
        let settings = serde_json::json!({
            "base_url": base_url,
            "dir": root.to_str().expect("a UTF-8 temp path"),
            "secret_salt": random_token(),
            "admin_password": random_token(),
            // Hosts the IdP may send the browser to besides itself (ReturnTo after a logout).
            "trusted_domains": trusted_domains(sp),
            "idp_entity_id": format!("{base_url}saml2/idp/metadata.php"),
            "sp": sp_settings(sp),
        });
        write("config/guichet.json", &settings.to_string());

        let log = root.join("php.log");
        let out = fs::File::create(&log).expect("php log file");
        let child = Command::new("php")
            .arg("-S")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-t")
            .arg(root.join("docroot"))
            .env("SIMPLESAMLPHP_CONFIG_DIR", root.join("config"))
            // One process (no forked workers that would outlive a kill of the parent).
            .env_remove("PHP_CLI_SERVER_WORKERS")
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("php must be installed: run the README's test command (scripts/test.sh)");
        let mut idp = SimpleSamlPhp {
            port,
            child: Some(child),
            certificate_pem,
            log,
            dir,
        };
        idp.wait_ready().await;
        idp
    }

    /// Replaces the SP under test (its metadata, certificate and the hosts it may send the
    /// browser back to) in the running IdP: SimpleSAMLphp reads its metadata files on every
    /// request, so the next message uses it. Sessions, keys and the salt stay. For an SP that
    /// can only publish its metadata once it has read the IdP's (Guichet fetches the IdP
    /// metadata at start): start the IdP with a placeholder registration, then register.
    pub fn register_sp(&self, sp: &SpRegistration) {
        let root = self.dir.path();
        let path = root.join("config/guichet.json");
        let text = fs::read_to_string(&path).expect("guichet.json");
        let mut settings: serde_json::Value = serde_json::from_str(&text).expect("guichet.json");
        settings["trusted_domains"] = trusted_domains(sp);
        settings["sp"] = sp_settings(sp);
        // The certificate first: the new metadata must never name a stale one.
        fs::write(root.join("cert/sp.crt"), &sp.certificate_pem).expect("write cert/sp.crt");
        // Written aside, then renamed: a request in between reads the old file or the new one.
        let staged = root.join("config/guichet.json.new");
        fs::write(&staged, settings.to_string()).expect("write guichet.json");
        fs::rename(&staged, &path).expect("rename guichet.json");
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()
            .expect("reqwest client");
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "php -S exited ({status}) before serving the IdP metadata:\n{}",
                    self.log_tail(60)
                );
            }
            match client.get(self.metadata_url()).send().await {
                Ok(response) if response.status() == 200 => return,
                Ok(response) => {
                    let status = response.status();
                    last = format!("{status}: {}", response.text().await.unwrap_or_default());
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "SimpleSAMLphp did not serve its metadata on port {} ({last}):\n{}",
            self.port,
            self.log_tail(60)
        );
    }

    /// `http://127.0.0.1:PORT/simplesaml/`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/simplesaml/", self.port)
    }

    /// The IdP's SAML 2.0 metadata (also its entity ID).
    pub fn metadata_url(&self) -> String {
        format!("{}saml2/idp/metadata.php", self.base_url())
    }

    /// The metadata document itself (what an SP configuration may want as a file).
    pub async fn metadata_xml(&self) -> String {
        let response = reqwest::get(self.metadata_url())
            .await
            .expect("the IdP serves its metadata");
        assert_eq!(response.status(), 200, "IdP metadata");
        response.text().await.expect("IdP metadata text")
    }

    pub fn entity_id(&self) -> String {
        self.metadata_url()
    }

    /// SingleSignOnService (HTTP-Redirect and HTTP-POST bindings).
    pub fn sso_url(&self) -> String {
        format!("{}saml2/idp/SSOService.php", self.base_url())
    }

    /// SingleLogoutService (HTTP-Redirect binding).
    pub fn slo_url(&self) -> String {
        format!("{}saml2/idp/SingleLogoutService.php", self.base_url())
    }

    /// The IdP's signing (and encryption) certificate, PEM.
    pub fn certificate_pem(&self) -> String {
        self.certificate_pem.clone()
    }

    /// The private configuration directory (config/, cert/, php.log...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `lines` lines of the server's output (access log and SimpleSAMLphp's log).
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut file) = fs::File::open(&self.log) {
            file.read_to_string(&mut text).ok();
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A browser-like login: from the SSO URL the SP redirected to (`SAMLRequest`,
    /// `RelayState`...), to the login form, whose POST with `user` and `password` is followed
    /// to the auto-submitted form that carries the `SAMLResponse` to the SP's ACS.
    /// Fails when the IdP shows no login form (it already has a session: see [`Self::sso`]).
    pub async fn login(
        &self,
        client: &reqwest::Client,
        sso_url: &str,
        user: &str,
        password: &str,
    ) -> anyhow::Result<PostForm> {
        let (page_url, body) = match self.walk(client, Request::Get(sso_url.to_owned())).await? {
            Outcome::Page { url, body, .. } => (url, body),
            Outcome::Leaves(message) => {
                bail!("the IdP answered without a login form: {message:?}")
            }
        };
        let form = login_form(&body).ok_or_else(|| {
            anyhow!(
                "no login form on {page_url}:\n{}\n{}",
                excerpt(&body),
                self.log_tail(30)
            )
        })?;
        let action = resolve(&page_url, &form.action)?;
        let mut fields: Vec<(String, String)> = form
            .inputs
            .iter()
            .filter(|input| input.kind == "hidden")
            .map(|input| (input.name.clone(), input.value.clone()))
            .collect();
        fields.push(("username".into(), user.to_owned()));
        fields.push(("password".into(), password.to_owned()));
        match self.walk(client, Request::Post(action, fields)).await? {
            Outcome::Leaves(Message::Post(form)) => Ok(form),
            Outcome::Leaves(Message::Redirect(url)) => {
                bail!("after the login the IdP redirected to {url}, not a POST form")
            }
            Outcome::Page { body, .. } if login_form(&body).is_some() => {
                bail!("the IdP refused the credentials of {user:?}")
            }
            Outcome::Page { url, status, body } => bail!(
                "after the login the IdP showed {url} ({status}):\n{}\n{}",
                excerpt(&body),
                self.log_tail(30)
            ),
        }
    }

    /// Single sign-on with the session the cookie jar already holds: no login form expected,
    /// returns the form carrying the `SAMLResponse`.
    pub async fn sso(&self, client: &reqwest::Client, sso_url: &str) -> anyhow::Result<PostForm> {
        match self.walk(client, Request::Get(sso_url.to_owned())).await? {
            Outcome::Leaves(Message::Post(form)) => Ok(form),
            other => bail!(
                "single sign-on did not produce a response form: {}",
                describe(&other)
            ),
        }
    }

    /// SP-initiated logout: delivers the SP's `LogoutRequest` (redirect URL or form) and
    /// follows the IdP until it sends the `LogoutResponse` back to the SP (returned).
    pub async fn logout(
        &self,
        client: &reqwest::Client,
        logout_request: &Message,
    ) -> anyhow::Result<Message> {
        match self.follow(client, logout_request).await? {
            Outcome::Leaves(message) if message.param("SAMLResponse").is_some() => Ok(message),
            other => bail!(
                "the IdP sent no LogoutResponse: {}\n{}",
                describe(&other),
                self.log_tail(30)
            ),
        }
    }

    /// IdP-initiated logout of the session the cookie jar holds
    /// (`SingleLogoutService.php?ReturnTo=...`): returns the `LogoutRequest` the IdP sends to
    /// the SP's SLO endpoint (HTTP-Redirect). Once the SP answers, give its `LogoutResponse`
    /// to [`Self::finish_logout`]; the IdP then goes to `return_to` (default: its own
    /// logged-out page). `return_to` must be the IdP or one of the SP's hosts.
    pub async fn start_idp_initiated_logout(
        &self,
        client: &reqwest::Client,
        return_to: Option<&str>,
    ) -> anyhow::Result<Message> {
        let return_to = return_to
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}logout.php", self.base_url()));
        let mut url = url::Url::parse(&self.slo_url())?;
        url.query_pairs_mut().append_pair("ReturnTo", &return_to);
        match self.walk(client, Request::Get(url.into())).await? {
            Outcome::Leaves(message) if message.param("SAMLRequest").is_some() => Ok(message),
            other => bail!(
                "the IdP sent no LogoutRequest (no session in the cookie jar?): {}\n{}",
                describe(&other),
                self.log_tail(30)
            ),
        }
    }

    /// Delivers the SP's `LogoutResponse` to an IdP-initiated logout and follows the IdP to
    /// where it ends (the `ReturnTo`: [`Outcome::Leaves`] when it is the SP's, a page of the
    /// IdP otherwise).
    pub async fn finish_logout(
        &self,
        client: &reqwest::Client,
        logout_response: &Message,
    ) -> anyhow::Result<Outcome> {
        self.follow(client, logout_response).await
    }

    /// Delivers any message to the IdP (a GET of the URL, or the form's POST) and follows it
    /// until the browser leaves the IdP or the IdP shows a page.
    pub async fn follow(
        &self,
        client: &reqwest::Client,
        message: &Message,
    ) -> anyhow::Result<Outcome> {
        let request = match message {
            Message::Redirect(url) => Request::Get(url.clone()),
            Message::Post(form) => Request::Post(form.action.clone(), form.fields.clone()),
        };
        self.walk(client, request).await
    }

    fn is_mine(&self, url: &str) -> bool {
        url::Url::parse(url).is_ok_and(|url| {
            url.scheme() == "http"
                && url.host_str() == Some("127.0.0.1")
                && url.port() == Some(self.port)
        })
    }

    /// Sends `request` and follows the IdP's redirects while they stay on the IdP.
    async fn walk(&self, client: &reqwest::Client, request: Request) -> anyhow::Result<Outcome> {
        let mut request = request;
        for _ in 0..20 {
            let (url, builder) = match &request {
                Request::Get(url) => (url.clone(), client.get(url)),
                Request::Post(url, fields) => (url.clone(), client.post(url).form(fields)),
            };
            if !self.is_mine(&url) {
                bail!("{url} is not on the IdP ({})", self.base_url());
            }
            let response = builder
                .header("accept", "text/html")
                .send()
                .await
                .with_context(|| format!("request to the IdP: {url}"))?;
            let status = response.status().as_u16();
            if (300..400).contains(&status) {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| anyhow!("{status} without Location from {url}"))?;
                let next = resolve(&url, location)?;
                if !self.is_mine(&next) {
                    return Ok(Outcome::Leaves(Message::Redirect(next)));
                }
                request = Request::Get(next);
                continue;
            }
            let body = response.text().await.unwrap_or_default();
            if status == 200 {
                for form in forms(&body) {
                    let action = resolve(&url, &form.action)?;
                    if form.method == "post" && !self.is_mine(&action) {
                        let fields = form
                            .inputs
                            .into_iter()
                            .filter(|input| input.kind != "submit")
                            .map(|input| (input.name, input.value))
                            .collect();
                        return Ok(Outcome::Leaves(Message::Post(PostForm { action, fields })));
                    }
                }
            }
            return Ok(Outcome::Page { url, status, body });
        }
        bail!("more than 20 redirects inside the IdP")
    }
}

impl Drop for SimpleSamlPhp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// The `sp` object of `guichet.json` (read by `metadata/saml20-sp-remote.php`).
fn sp_settings(sp: &SpRegistration) -> serde_json::Value {
    serde_json::json!({
        "entity_id": sp.entity_id,
        "acs_urls": sp.acs_urls,
        "slo_url": sp.slo_url,
        "sign_logout": sp.sign_logout,
        "encrypt_assertions": sp.encrypt_assertions,
        "signs_messages": sp.signs_messages,
    })
}

/// The SP's `host[:port]`s, which the IdP may send the browser to (`trusted.url.domains`).
fn trusted_domains(sp: &SpRegistration) -> serde_json::Value {
    let mut trusted: Vec<String> = sp
        .acs_urls
        .iter()
        .chain([&sp.slo_url, &sp.entity_id])
        .filter_map(|u| url::Url::parse(u).ok())
        .filter_map(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .collect();
    trusted.sort();
    trusted.dedup();
    serde_json::json!(trusted)
}

fn random_token() -> String {
    use rand::Rng as _;
    let bytes: [u8; 24] = rand::thread_rng().gen();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn resolve(base: &str, href: &str) -> anyhow::Result<String> {
    Ok(url::Url::parse(base)
        .with_context(|| format!("base URL {base}"))?
        .join(href)
        .with_context(|| format!("link {href} on {base}"))?
        .into())
}

/// An outcome in a few lines, for error messages.
fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Leaves(message) => format!("{message:?}"),
        Outcome::Page { url, status, body } => {
            format!("page {url} ({status}):\n{}", excerpt(body))
        }
    }
}

fn excerpt(body: &str) -> String {
    body.chars().take(1500).collect()
}

/// HTTP-Redirect binding encoding: raw DEFLATE, then base64 (the caller URL-encodes).
pub fn encode_redirect(xml: &str) -> String {
    use std::io::Write as _;
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(xml.as_bytes()).expect("deflate");
    base64::engine::general_purpose::STANDARD.encode(encoder.finish().expect("deflate"))
}

/// HTTP-Redirect binding decoding: base64, then raw INFLATE.
pub fn decode_redirect(value: &str) -> anyhow::Result<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.trim())?;
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&bytes[..]).read_to_string(&mut xml)?;
    Ok(xml)
}

/// HTTP-POST binding decoding: base64 (line breaks tolerated).
pub fn decode_post(value: &str) -> anyhow::Result<String> {
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD.decode(compact)?;
    Ok(String::from_utf8(bytes)?)
}

/// A form of an HTML page, as far as these tests need.
#[derive(Debug)]
struct HtmlForm {
    action: String,
    /// Lowercase; `get` when absent.
    method: String,
    inputs: Vec<Input>,
}

#[derive(Debug)]
struct Input {
    name: String,
    value: String,
    /// Lowercase `type`; `text` when absent.
    kind: String,
}

/// The form with a password field.
fn login_form(html: &str) -> Option<HtmlForm> {
    forms(html)
        .into_iter()
        .find(|form| form.inputs.iter().any(|input| input.name == "password"))
}

/// The forms of a page and their named `<input>`s (a scanner for the pages SimpleSAMLphp
/// writes, not a general HTML parser).
fn forms(html: &str) -> Vec<HtmlForm> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<form").map(|i| i + at) {
        let Some(tag_end) = lower[start..].find('>').map(|i| i + start) else {
            break;
        };
        let attributes = parse_attributes(&html[start + "<form".len()..tag_end]);
        let end = lower[tag_end..]
            .find("</form")
            .map_or(html.len(), |i| i + tag_end);
        let mut inputs = Vec::new();
        let mut cursor = tag_end;
        while let Some(input) = lower[cursor..end].find("<input").map(|i| i + cursor) {
            let input_end = lower[input..end].find('>').map_or(end, |i| i + input);
            let attrs = parse_attributes(&html[input + "<input".len()..input_end]);
            let get = |name: &str| {
                attrs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            if let Some(name) = get("name") {
                inputs.push(Input {
                    name,
                    value: get("value").unwrap_or_default(),
                    kind: get("type").unwrap_or_else(|| "text".into()).to_lowercase(),
                });
            }
            cursor = input_end;
        }
        let get = |name: &str| {
            attributes
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        found.push(HtmlForm {
            action: get("action").unwrap_or_default(),
            method: get("method").unwrap_or_else(|| "get".into()).to_lowercase(),
            inputs,
        });
        at = end.max(tag_end + 1).min(html.len());
    }
    found
}

/// `name="value" name='value' name=value name` → (lowercase name, entity-decoded value).
fn parse_attributes(text: &str) -> Vec<(String, String)> {
    let mut attributes = Vec::new();
    let mut chars = text.trim_end_matches('/').chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == '/').is_some() {}
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace() && *c != '=' && *c != '/'))
                .collect();
        if name.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            match chars.peek().copied() {
                Some(quote @ ('"' | '\'')) => {
                    chars.next();
                    value = std::iter::from_fn(|| chars.next_if(|c| *c != quote)).collect();
                    chars.next();
                }
                _ => value = std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())).collect(),
            }
        }
        attributes.push((name.to_ascii_lowercase(), decode_entities(&value)));
    }
    attributes
}

/// `&amp;` `&lt;` `&gt;` `&quot;` `&apos;` and numeric character references.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SP_ENTITY: &str = "http://sp.test/metadata";
    const ACS: &str = "http://127.0.0.1:1/acs";
    const SLO: &str = "http://127.0.0.1:1/slo";

    /// xs:dateTime of now, in whole seconds (UTC).
    fn now_xs() -> String {
        time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    }

    fn browser() -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("reqwest client")
    }

    /// The first `Location` of an `md:SingleSignOnService` with the HTTP-Redirect binding.
    fn redirect_sso_location(metadata: &str) -> String {
        let binding = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
        let start = metadata
            .match_indices("<md:SingleSignOnService")
            .map(|(i, _)| i)
            .find(|&i| metadata[i..].split('>').next().unwrap().contains(binding))
            .expect("a redirect SingleSignOnService");
        let tag = metadata[start..].split('>').next().unwrap();
        let attrs = parse_attributes(&tag["<md:SingleSignOnService".len()..]);
        attrs
            .into_iter()
            .find(|(k, _)| k == "location")
            .map(|(_, v)| v)
            .expect("Location")
    }

    #[tokio::test]
    async fn simplesamlphp_idp_logs_alice_in_and_out() {
        let started = Instant::now();
        let sp_key = rcgen::KeyPair::generate().expect("SP key");
        let sp_cert = rcgen::CertificateParams::new(vec!["sp.test".to_string()])
            .expect("params")
            .self_signed(&sp_key)
            .expect("SP cert")
            .pem();
        let idp = SimpleSamlPhp::start(&SpRegistration {
            entity_id: SP_ENTITY.into(),
            acs_urls: vec![ACS.into()],
            slo_url: SLO.into(),
            certificate_pem: sp_cert,
            sign_logout: true,
            encrypt_assertions: false,
            signs_messages: false,
        })
        .await;
        println!("SimpleSAMLphp up in {:?}", started.elapsed());

        let client = browser();
        let metadata = idp.metadata_xml().await;
        assert!(
            metadata.contains(&format!("entityID=\"{}\"", idp.entity_id())),
            "{metadata}"
        );
        let cert_body: String = idp
            .certificate_pem()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(metadata.contains(&cert_body), "metadata has the IdP cert");
        let sso = redirect_sso_location(&metadata);
        assert_eq!(sso, idp.sso_url());

        // An unsigned AuthnRequest, HTTP-Redirect binding.
        let request_id = "_guichet-test-0123456789abcdef";
        let authn_request = format!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{request_id}" Version="2.0" IssueInstant="{now}" Destination="{sso}" AssertionConsumerServiceURL="{ACS}" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml:Issuer>{SP_ENTITY}</saml:Issuer><samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" AllowCreate="true"/></samlp:AuthnRequest>"#,
            now = now_xs(),
        );
        let mut sso_url = url::Url::parse(&sso).unwrap();
        sso_url
            .query_pairs_mut()
            .append_pair("SAMLRequest", &encode_redirect(&authn_request))
            .append_pair("RelayState", "relay-é 1");

        let form = idp
            .login(&client, sso_url.as_str(), ALICE.0, ALICE.1)
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", idp.log_tail(40)));
        assert_eq!(form.action, ACS);
        assert_eq!(form.field("RelayState"), Some("relay-é 1"));
        let xml = decode_post(form.field("SAMLResponse").expect("SAMLResponse")).unwrap();
        println!("{xml}");
        assert!(
            xml.contains(&format!("InResponseTo=\"{request_id}\"")),
            "{xml}"
        );
        assert!(
            xml.contains(&format!("<saml:Issuer>{}</saml:Issuer>", idp.entity_id())),
            "{xml}"
        );
        // Response and assertion both signed.
        assert_eq!(xml.matches("<ds:Signature xmlns").count(), 2, "{xml}");
        assert!(xml.contains("urn:oasis:names:tc:SAML:2.0:status:Success"));
        assert!(
            xml.contains(
                r#"Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">alice</saml:NameID>"#
            ),
            "{xml}"
        );
        let uri = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri";
        for (name, values) in [
            (oid::UID, &["alice"][..]),
            (oid::MAIL, &["alice@example.org"]),
            (oid::GIVEN_NAME, &["Hélène"]),
            (oid::SN, &["Dupré"]),
            (oid::DISPLAY_NAME, &["Hélène Dupré"]),
            (oid::EDU_PERSON_AFFILIATION, &["member", "staff"]),
        ] {
            let start = xml
                .find(&format!(
                    r#"<saml:Attribute Name="{name}" NameFormat="{uri}">"#
                ))
                .unwrap_or_else(|| panic!("attribute {name} in {xml}"));
            let attribute = &xml[start..start + xml[start..].find("</saml:Attribute>").unwrap()];
            for value in values {
                assert!(
                    attribute.contains(&format!(">{value}</saml:AttributeValue>")),
                    "{name} = {value} in {attribute}"
                );
            }
        }

        // SSO again with the session: no login form.
        let again = idp.sso(&client, sso_url.as_str()).await.unwrap();
        assert_eq!(again.action, ACS);

        // IdP-initiated logout: a LogoutRequest to the SP's SLO endpoint, signed (sign.logout).
        let request = idp
            .start_idp_initiated_logout(&client, None)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let Message::Redirect(url) = &request else {
            panic!("HTTP-Redirect binding expected: {request:?}")
        };
        assert!(url.starts_with(&format!("{SLO}?SAMLRequest=")), "{url}");
        assert!(request.param("Signature").is_some(), "{url}");
        assert_eq!(
            request.param("SigAlg").as_deref(),
            Some("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
        );
        let logout_xml = request.saml_xml().unwrap();
        println!("{logout_xml}");
        assert!(logout_xml.contains("<samlp:LogoutRequest"), "{logout_xml}");
        assert!(logout_xml.contains(">alice</saml:NameID>"), "{logout_xml}");
        assert!(logout_xml.contains("<samlp:SessionIndex>"), "{logout_xml}");

        // The SP's (unsigned) LogoutResponse closes it; the IdP lands on its logged-out page.
        let logout_id = logout_xml
            .split("ID=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("LogoutRequest ID");
        let logout_response = format!(
            r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_guichet-lr-1" Version="2.0" IssueInstant="{now}" Destination="{slo}" InResponseTo="{logout_id}"><saml:Issuer>{SP_ENTITY}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#,
            now = now_xs(),
            slo = idp.slo_url(),
        );
        let mut back = url::Url::parse(&idp.slo_url()).unwrap();
        back.query_pairs_mut()
            .append_pair("SAMLResponse", &encode_redirect(&logout_response))
            .append_pair(
                "RelayState",
                &request.param("RelayState").unwrap_or_default(),
            );
        match idp
            .finish_logout(&client, &Message::Redirect(back.into()))
            .await
            .unwrap()
        {
            Outcome::Page { url, status, .. } => {
                assert_eq!(status, 200);
                assert_eq!(url, format!("{}logout.php", idp.base_url()));
            }
            other => panic!("the logged-out page expected: {other:?}"),
        }
        // The session is gone: the next SSO asks for a login again.
        assert!(idp.sso(&client, sso_url.as_str()).await.is_err());

        // A wrong password is refused (the login form comes back).
        let error = idp
            .login(&browser(), sso_url.as_str(), BOB.0, "wrong")
            .await
            .expect_err("a wrong password is refused");
        assert!(error.to_string().contains("refused"), "{error:#}");

        // SP-initiated logout: bob logs in, the SP sends a LogoutRequest, the IdP answers with a
        // signed LogoutResponse to the SP's SLO endpoint.
        let client = browser();
        let form = idp
            .login(&client, sso_url.as_str(), BOB.0, BOB.1)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let xml = decode_post(form.field("SAMLResponse").unwrap()).unwrap();
        assert!(xml.contains(">Sørensen</saml:AttributeValue>"), "{xml}");
        let session_index = xml
            .split("SessionIndex=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("SessionIndex");
        let logout_request = format!(
            r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_guichet-slo-1" Version="2.0" IssueInstant="{now}" Destination="{slo}"><saml:Issuer>{SP_ENTITY}</saml:Issuer><saml:NameID SPNameQualifier="{SP_ENTITY}" Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">bob</saml:NameID><samlp:SessionIndex>{session_index}</samlp:SessionIndex></samlp:LogoutRequest>"#,
            now = now_xs(),
            slo = idp.slo_url(),
        );
        let mut slo = url::Url::parse(&idp.slo_url()).unwrap();
        slo.query_pairs_mut()
            .append_pair("SAMLRequest", &encode_redirect(&logout_request))
            .append_pair("RelayState", "sp-relay");
        let response = idp
            .logout(&client, &Message::Redirect(slo.into()))
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(response.destination(), SLO);
        assert_eq!(response.param("RelayState").as_deref(), Some("sp-relay"));
        assert!(response.param("Signature").is_some(), "{response:?}");
        let xml = response.saml_xml().unwrap();
        assert!(xml.contains("<samlp:LogoutResponse"), "{xml}");
        assert!(xml.contains(r#"InResponseTo="_guichet-slo-1""#), "{xml}");
        assert!(
            xml.contains("urn:oasis:names:tc:SAML:2.0:status:Success"),
            "{xml}"
        );
        assert!(idp.sso(&client, sso_url.as_str()).await.is_err());
        println!("whole run in {:?}", started.elapsed());
    }

    /// An SP that signs its requests (the IdP checks them against its certificate) and wants
    /// encrypted assertions.
    #[tokio::test]
    async fn simplesamlphp_idp_checks_signed_requests_and_encrypts() {
        use rsa::pkcs8::DecodePrivateKey as _;
        use rsa::signature::{SignatureEncoding as _, Signer as _};

        const SP_KEY: &str = include_str!("../keys/client-rsa.pem");
        let sp_cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .self_signed(&rcgen::KeyPair::from_pem(SP_KEY).expect("SP RSA key"))
            .expect("SP cert")
            .pem();
        let idp = SimpleSamlPhp::start(&SpRegistration {
            entity_id: SP_ENTITY.into(),
            acs_urls: vec!["http://127.0.0.1:1/other-acs".into(), ACS.into()],
            slo_url: SLO.into(),
            certificate_pem: sp_cert,
            sign_logout: false,
            encrypt_assertions: true,
            signs_messages: true,
        })
        .await;
        let authn_request = format!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_guichet-signed-1" Version="2.0" IssueInstant="{now}" Destination="{sso}" AssertionConsumerServiceURL="{ACS}"><saml:Issuer>{SP_ENTITY}</saml:Issuer></samlp:AuthnRequest>"#,
            now = now_xs(),
            sso = idp.sso_url(),
        );
        let encode = |text: &str| -> String {
            url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
        };
        let unsigned = format!(
            "SAMLRequest={}&RelayState=r1",
            encode(&encode_redirect(&authn_request))
        );
        let error = idp
            .login(
                &browser(),
                &format!("{}?{unsigned}", idp.sso_url()),
                ALICE.0,
                ALICE.1,
            )
            .await
            .expect_err("an unsigned AuthnRequest is refused");
        assert!(
            error.to_string().contains("no signature found on message"),
            "{error:#}"
        );

        // HTTP-Redirect binding signature: over the query as sent, without Signature.
        let signed = format!(
            "{unsigned}&SigAlg={}",
            encode("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
        );
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(SP_KEY).expect("SP RSA key");
        let signature = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key)
            .sign(signed.as_bytes())
            .to_bytes();
        let url = format!(
            "{}?{signed}&Signature={}",
            idp.sso_url(),
            encode(&base64::engine::general_purpose::STANDARD.encode(signature))
        );
        let form = idp
            .login(&browser(), &url, ALICE.0, ALICE.1)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        // The ACS URL of the request (not the default one).
        assert_eq!(form.action, ACS);
        let xml = decode_post(form.field("SAMLResponse").unwrap()).unwrap();
        assert!(xml.contains("<saml:EncryptedAssertion>"), "{xml}");
        assert!(!xml.contains("<saml:Assertion"), "{xml}");
        assert!(
            xml.contains("http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"),
            "{xml}"
        );
        assert!(
            xml.contains("http://www.w3.org/2001/04/xmlenc#aes128-cbc"),
            "{xml}"
        );
    }
}
