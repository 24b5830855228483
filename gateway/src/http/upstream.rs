//! Upstream (application) connection settings and peer construction.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use pingora::protocols::tls::CaType;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{parse_x509, WrappedX509};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::config::{AppConfig, UpstreamAddress};

#[derive(Clone)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub sni: String,
    pub verify: bool,
    pub ca: Option<Arc<CaType>>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// `host[:port]` for the Host header when the client's is not preserved.
    pub authority: String,
}

/// An upstream CA file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ca_file {path}: {reason}")]
pub struct CaFileError {
    pub path: String,
    pub reason: String,
}

impl Upstream {
    /// The upstream of `app`, whose address the configuration load already validated.
    pub fn from_config(app: &AppConfig, address: &UpstreamAddress) -> Result<Self, CaFileError> {
        let ca = match &app.upstream_tls.ca_file {
            None => None,
            Some(path) => Some(load_ca(path)?),
        };
        Ok(Self {
            sni: app
                .upstream_tls
                .sni
                .clone()
                .unwrap_or_else(|| address.host.clone()),
            host: address.host.clone(),
            port: address.port,
            tls: address.tls,
            verify: app.upstream_tls.verify,
            ca,
            connect_timeout: app.upstream_connect_timeout,
            read_timeout: app.upstream_read_timeout,
            authority: address.authority.clone(),
        })
    }

    pub fn peer(&self, address: SocketAddr) -> HttpPeer {
        let mut peer = HttpPeer::new(address, self.tls, self.sni.clone());
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.total_connection_timeout = Some(self.connect_timeout * 2);
        peer.options.read_timeout = Some(self.read_timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        peer.options.verify_cert = self.verify;
        peer.options.verify_hostname = self.verify;
        peer.options.ca = self.ca.clone();
        peer
    }
}

fn load_ca(path: &std::path::Path) -> Result<Arc<CaType>, CaFileError> {
    let fail = |reason: String| CaFileError {
        path: path.display().to_string(),
        reason,
    };
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))? {
        let der = cert.map_err(|e| fail(e.to_string()))?;
        // pingora's parser panics on bad DER: check it here, where it is a config error.
        x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| fail(format!("invalid certificate: {e}")))?;
        certs.push(WrappedX509::new(der.to_vec(), parse_x509));
    }
    if certs.is_empty() {
        return Err(fail("no certificate found".into()));
    }
    Ok(Arc::from(certs.into_boxed_slice()))
}

/// Resolves upstream host names without blocking the proxy's workers, caching answers briefly
/// so a DNS change (a Kubernetes Service moving) is picked up within `ttl`.
pub struct Resolver {
    cache: Cache<(String, u16), SocketAddr>,
}

impl Resolver {
    pub fn new(ttl: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(1024)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub async fn resolve(&self, host: &str, port: u16) -> std::io::Result<SocketAddr> {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let key = (host.to_owned(), port);
        if let Some(address) = self.cache.get(&key).await {
            return Ok(address);
        }
        let address = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?;
        self.cache.insert(key, address).await;
        Ok(address)
    }
}
