//! Where the IdP's metadata comes from and how it stays current.
//!
//! A file is read once, at start. A URL is fetched at start (synchronously: the gateway builds
//! providers before it serves, possibly from inside a runtime, so the fetch runs on its own
//! thread with its own runtime), then again lazily, at a login, once `metadata_refresh` has
//! passed. A failed refresh keeps the last good metadata (an IdP's metadata server being down
//! must not stop logins that its last known keys can still check), logs a warning, counts the
//! failure for the gateway's metrics, and is retried a minute later at the earliest. A refresh is
//! also due when the metadata's `validUntil` passes, whatever `metadata_refresh` says.
//!
//! The last good metadata is only used while it is current: once its `validUntil` has passed,
//! [`MetadataStore::current`] refuses it (logins and IdP logouts fail with that reason) until a
//! refresh brings a current document. A file source is never read again: its metadata expiring
//! stops logins until the gateway is restarted with a current file.
//!
//! Every read is bounded: [`MAX_METADATA_BYTES`], the HTTP timeout, no redirects followed; a
//! refresh's parsing and signature check run on the blocking pool (see [`super::blocking`]).

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use samael::crypto::CertificateDer;
use time::OffsetDateTime;
use url::Url;

use super::blocking;
use super::metadata::{
    parse_idp_metadata, IdpMetadata, MetadataError, MetadataPolicy, MAX_METADATA_BYTES,
};
use super::settings::IdpMetadataSource;

/// The earliest retry after a failed refresh.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// What is needed to read metadata again.
pub(crate) struct MetadataConfig {
    pub source: IdpMetadataSource,
    pub idp_entity_id: Option<String>,
    pub trusted: Vec<CertificateDer>,
    pub allow_sha1: bool,
    pub refresh: Duration,
    pub timeout: Duration,
}

impl MetadataConfig {
    fn parse(&self, xml: &str) -> Result<IdpMetadata, MetadataError> {
        parse_idp_metadata(
            xml,
            &MetadataPolicy {
                idp_entity_id: self.idp_entity_id.as_deref(),
                trusted: &self.trusted,
                allow_sha1: self.allow_sha1,
            },
            OffsetDateTime::now_utc(),
        )
    }
}

pub(crate) struct MetadataStore {
    config: Arc<MetadataConfig>,
    client: Option<reqwest::Client>,
    current: RwLock<Arc<IdpMetadata>>,
    next_refresh: Mutex<Instant>,
    refreshing: tokio::sync::Mutex<()>,
    failures: AtomicU64,
    provider_id: String,
}

impl MetadataStore {
    /// Reads (or fetches) the metadata now.
    pub fn load(provider_id: &str, config: MetadataConfig) -> Result<Self, MetadataError> {
        let (xml, client) = match &config.source {
            IdpMetadataSource::File(path) => (read_file(path)?, None),
            IdpMetadataSource::Url(url) => {
                check_url(url)?;
                let client = client(config.timeout)?;
                (fetch_blocking(url, config.timeout)?, Some(client))
            }
        };
        let metadata = config.parse(&xml)?;
        Ok(Self {
            next_refresh: Mutex::new(next_refresh(&metadata, config.refresh)),
            config: Arc::new(config),
            client,
            current: RwLock::new(Arc::new(metadata)),
            refreshing: tokio::sync::Mutex::new(()),
            failures: AtomicU64::new(0),
            provider_id: provider_id.to_owned(),
        })
    }

    /// The metadata as last read, without refreshing it.
    pub fn snapshot(&self) -> Arc<IdpMetadata> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The metadata, fetched again first when it is due (URL sources), refused once its
    /// `validUntil` has passed.
    pub async fn current(&self) -> Result<Arc<IdpMetadata>, MetadataError> {
        let metadata = self.latest().await;
        metadata.check_current(OffsetDateTime::now_utc())?;
        Ok(metadata)
    }

    /// The metadata, fetched again first when it is due (URL sources), current or not: for
    /// what is still worth doing with expired metadata (sending the user to the IdP's logout).
    pub async fn latest(&self) -> Arc<IdpMetadata> {
        if let (Some(client), IdpMetadataSource::Url(url)) = (&self.client, &self.config.source) {
            if self.due() {
                // One refresh at a time; the others go on with the metadata they have.
                if let Ok(_guard) = self.refreshing.try_lock() {
                    if self.due() {
                        self.refresh(client, url).await;
                    }
                }
            }
        }
        self.snapshot()
    }

    pub fn refresh_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn due(&self) -> bool {
        Instant::now()
            >= *self
                .next_refresh
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_next(&self, after: Duration) {
        *self
            .next_refresh
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now() + after;
    }

    async fn refresh(&self, client: &reqwest::Client, url: &Url) {
        let parsed = match fetch(client, url).await {
            Ok(xml) => {
                let config = self.config.clone();
                blocking::run(blocking::METADATA_TIMEOUT, move || config.parse(&xml))
                    .await
                    .unwrap_or_else(|stalled| Err(MetadataError::Read(stalled.to_string())))
            }
            Err(error) => Err(error),
        };
        match parsed {
            Ok(metadata) => {
                let next = next_refresh(&metadata, self.config.refresh);
                *self
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(metadata);
                *self
                    .next_refresh
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = next;
            }
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.set_next(RETRY_AFTER_FAILURE);
                tracing::warn!(
                    idp.id = %self.provider_id,
                    error = %error,
                    "SAML metadata refresh failed; keeping the last good metadata"
                );
            }
        }
    }
}

/// When fresh `metadata` is due for a refresh: after `refresh`, or when its `validUntil` passes
/// if that comes first.
fn next_refresh(metadata: &IdpMetadata, refresh: Duration) -> Instant {
    let now = Instant::now();
    let by_refresh = now.checked_add(refresh).unwrap_or(now);
    let by_validity = metadata.valid_until.and_then(|until| {
        let left = until - OffsetDateTime::now_utc();
        now.checked_add(Duration::try_from(left).unwrap_or_default())
    });
    by_validity.map_or(by_refresh, |v| v.min(by_refresh))
}

/// https, or http on a loopback address (tests).
fn check_url(url: &Url) -> Result<(), MetadataError> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(MetadataError::Read(
            "the metadata URL must be https (http only on a loopback address)".into(),
        )),
    }
}

fn read_file(path: &std::path::Path) -> Result<String, MetadataError> {
    let file = std::fs::File::open(path)
        .map_err(|e| MetadataError::Read(format!("{}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(MAX_METADATA_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| MetadataError::Read(format!("{}: {e}", path.display())))?;
    if bytes.len() > MAX_METADATA_BYTES {
        return Err(MetadataError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| MetadataError::Xml(super::xml_guard::XmlError::NotUtf8))
}

fn client(timeout: Duration) -> Result<reqwest::Client, MetadataError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .user_agent(concat!("Guichet/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| MetadataError::Read(format!("cannot build the HTTP client: {e}")))
}

/// Fetches at start, from any context: its own thread, its own runtime and client (a client's
/// connections belong to the runtime that made them).
fn fetch_blocking(url: &Url, timeout: Duration) -> Result<String, MetadataError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| MetadataError::Read(format!("cannot start a runtime: {e}")))?;
                let client = client(timeout)?;
                runtime.block_on(fetch(&client, url))
            })
            .join()
            .unwrap_or_else(|_| Err(MetadataError::Read("the metadata fetch failed".into())))
    })
}

/// One GET, its body bounded.
async fn fetch(client: &reqwest::Client, url: &Url) -> Result<String, MetadataError> {
    let where_ = url
        .as_str()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let failed = |e: reqwest::Error| {
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        MetadataError::Read(format!("{kind} ({where_})"))
    };
    let mut response = client
        .get(url.clone())
        .header(
            "accept",
            "application/samlmetadata+xml, application/xml;q=0.9, text/xml;q=0.8",
        )
        .send()
        .await
        .map_err(&failed)?;
    if !response.status().is_success() {
        return Err(MetadataError::Read(format!(
            "{} answered {}",
            url.as_str().split('?').next().unwrap_or_default(),
            response.status()
        )));
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_METADATA_BYTES as u64)
    {
        return Err(MetadataError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(&failed)? {
        if body.len() + chunk.len() > MAX_METADATA_BYTES {
            return Err(MetadataError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| MetadataError::Xml(super::xml_guard::XmlError::NotUtf8))
}
