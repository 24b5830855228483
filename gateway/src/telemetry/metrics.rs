//! Prometheus metrics, one registry per gateway instance (several run in one test process).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Cheap to clone: every handle shares its series with the original (a reloaded gateway keeps
/// counting where the previous one stopped).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub logins: IntCounterVec,
    pub logouts: IntCounterVec,
    pub store_errors: IntCounterVec,
    pub provider_events: IntCounterVec,
    pub config_reloads: IntCounterVec,
    config_info: IntGaugeVec,
    pub store_up: IntGauge,
    /// Directory lookups the in-process cache could not answer, by where the answer came from
    /// (copied from the cache's own counters when metrics are read: nothing on the hot path).
    pub directory_lookups: IntCounterVec,
    /// The session store's local copy (L1) and batched refreshes, by event (copied from the
    /// store's counters when metrics are read).
    pub session_cache: IntCounterVec,
    /// 1 while the store follows other replicas' session events (absent without a local copy).
    pub session_events_followed: IntGauge,
}

impl Metrics {
    #[allow(
        clippy::expect_used,
        reason = "metric definitions are constants with unique names"
    )]
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "guichet_requests_total",
                "Requests handled, by app and response status",
            ),
            &["app", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "guichet_request_duration_seconds",
                "Time from request to response end, by app",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["app"],
        )
        .expect("valid metric");
        let logins = IntCounterVec::new(
            Opts::new(
                "guichet_logins_total",
                "Login attempts, by provider and outcome",
            ),
            &["provider", "outcome"],
        )
        .expect("valid metric");
        let logouts = IntCounterVec::new(
            Opts::new("guichet_logouts_total", "Logouts, by provider"),
            &["provider"],
        )
        .expect("valid metric");
        let store_errors = IntCounterVec::new(
            Opts::new(
                "guichet_store_errors_total",
                "Session store failures, by operation",
            ),
            &["operation"],
        )
        .expect("valid metric");
        let store_up = IntGauge::new(
            "guichet_store_up",
            "1 when the session store answered the last readiness probe",
        )
        .expect("valid metric");
        let directory_lookups = IntCounterVec::new(
            Opts::new(
                "guichet_directory_lookups_total",
                "Directory lookups missing the in-process cache, by source: l2 (shared cache), directory, stale (directory failing, last answer served), failed",
            ),
            &["source"],
        )
        .expect("valid metric");
        let session_cache = IntCounterVec::new(
            Opts::new(
                "guichet_session_cache_total",
                "Session store's local copy (L1) in front of Redis, by event: hit, miss, remote_invalidation (another replica ended or changed a session), flush (whole copy dropped on resubscription), touch_written and touch_failed (batched activity refreshes)",
            ),
            &["event"],
        )
        .expect("valid metric");
        let session_events_followed = IntGauge::new(
            "guichet_session_events_followed",
            "1 while this replica follows the session events of the others (Redis pub/sub); while 0, local session copies are trusted for their TTL only (always 0 without Redis)",
        )
        .expect("valid metric");
        let provider_events = IntCounterVec::new(
            Opts::new(
                "guichet_provider_events_total",
                "Providers' own background events, by provider and event (e.g. saml_metadata_refresh_failed)",
            ),
            &["provider", "event"],
        )
        .expect("valid metric");
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "guichet_config_reload_total",
                "Configuration reloads (SIGHUP or a changed file), by result: success, or failure (the running configuration stayed)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let config_info = IntGaugeVec::new(
            Opts::new(
                "guichet_config_info",
                "1 for the configuration running now, by a hash of its file and overrides",
            ),
            &["hash"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(directory_lookups.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(session_cache.clone()),
            Box::new(session_events_followed.clone()),
            Box::new(config_reloads.clone()),
            Box::new(config_info.clone()),
            Box::new(provider_events.clone()),
            Box::new(requests.clone()),
            Box::new(latency.clone()),
            Box::new(logins.clone()),
            Box::new(logouts.clone()),
            Box::new(store_errors.clone()),
            Box::new(store_up.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            registry,
            requests,
            latency,
            logins,
            logouts,
            store_errors,
            store_up,
            directory_lookups,
            session_cache,
            session_events_followed,
            provider_events,
            config_reloads,
            config_info,
        }
    }

    /// Marks `hash` as the configuration running now (and only it).
    pub fn set_config_info(&self, hash: &str) {
        self.config_info.reset();
        self.config_info.with_label_values(&[hash]).set(1);
    }

    /// Brings a provider's event counters up to the provider's own.
    pub fn sync_provider(&self, provider: &str, counters: &[(&'static str, u64)]) {
        for (event, total) in counters {
            let counter = self.provider_events.with_label_values(&[provider, event]);
            let seen = counter.get();
            if *total > seen {
                counter.inc_by(total - seen);
            }
        }
    }

    /// Brings the session cache counters up to the store's.
    pub fn sync_session_cache(&self, counters: &[(&'static str, u64)], following: Option<bool>) {
        for (event, total) in counters {
            let counter = self.session_cache.with_label_values(&[event]);
            let seen = counter.get();
            if *total > seen {
                counter.inc_by(total - seen);
            }
        }
        if let Some(following) = following {
            self.session_events_followed.set(i64::from(following));
        }
    }

    /// Brings the directory counters up to the cache's.
    pub fn sync_directory(&self, stats: &guichet_directory_client::cache::CacheStats) {
        use std::sync::atomic::Ordering::Relaxed;
        let backend_calls = stats.backend_calls.load(Relaxed);
        let stale = stats.stale_served.load(Relaxed);
        let failed = stats.failures.load(Relaxed);
        for (source, total) in [
            ("l2", stats.l2_hits.load(Relaxed)),
            // Backend calls that failed are counted as stale or failed, not here.
            ("directory", backend_calls.saturating_sub(stale + failed)),
            ("stale", stale),
            ("failed", failed),
        ] {
            let counter = self.directory_lookups.with_label_values(&[source]);
            let seen = counter.get();
            if total > seen {
                counter.inc_by(total - seen);
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    #[allow(
        clippy::expect_used,
        reason = "encoding into a Vec cannot fail, and the text format is UTF-8"
    )]
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buffer).expect("Prometheus text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// One app's request counters for the statuses most responses have, resolved on first use
/// instead of by label on every request. Others go through the labelled vector.
#[derive(Default)]
pub struct StatusCounters {
    common: [std::sync::OnceLock<prometheus::IntCounter>; COMMON_STATUSES.len()],
}

const COMMON_STATUSES: [u16; 8] = [200, 204, 206, 302, 304, 401, 403, 404];

impl StatusCounters {
    /// Counts one response with `status`; `resolve` finds its labelled counter.
    pub fn count(&self, status: u16, resolve: impl FnOnce() -> prometheus::IntCounter) {
        match COMMON_STATUSES.iter().position(|&s| s == status) {
            Some(slot) => self.common[slot].get_or_init(resolve).inc(),
            None => resolve().inc(),
        }
    }
}

/// The connection layer's metrics (`limits:` in the configuration): connections open and
/// refused, and requests cut off before they reach the proxy (too slow, too large). Registered
/// once per gateway's registry, by the server that owns the listeners.
#[derive(Clone)]
pub struct ConnectionMetrics {
    /// Client connections open now.
    pub open: IntGauge,
    /// Connections refused because `limits.max_connections` were open.
    pub refused: prometheus::IntCounter,
    /// Requests cut off, by reason: `header_timeout`, `body_timeout`, `headers_too_large`,
    /// `too_many_headers`.
    pub cut: IntCounterVec,
}

impl ConnectionMetrics {
    #[allow(
        clippy::expect_used,
        reason = "metric definitions are constants with unique names"
    )]
    pub fn register(metrics: &Metrics) -> Self {
        let open = IntGauge::new(
            "guichet_connections_open",
            "Client connections open now (at most limits.max_connections)",
        )
        .expect("valid metric");
        let refused = prometheus::IntCounter::new(
            "guichet_connections_refused_total",
            "Client connections refused (503, then closed) because limits.max_connections were open",
        )
        .expect("valid metric");
        let cut = IntCounterVec::new(
            Opts::new(
                "guichet_requests_cut_total",
                "Requests cut off before the proxy, by reason: header_timeout, body_timeout (limits.header_timeout, limits.body_timeout), headers_too_large, too_many_headers (limits.max_header_bytes, limits.max_headers)",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(open.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(refused.clone()),
            Box::new(cut.clone()),
        ] {
            // Only a second server built on the same registry would find them there: the
            // counters still count, the first server's series are the ones exported.
            if let Err(e) = metrics.registry.register(collector) {
                tracing::warn!(error = %e, "connection metrics not exported");
            }
        }
        Self { open, refused, cut }
    }
}
