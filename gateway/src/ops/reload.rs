//! Configuration reload without a restart: on SIGHUP, and when the configuration file changes
//! (a mounted ConfigMap is updated by a symlink swap, which a content check sees whatever the
//! file's path or timestamps do).
//!
//! A reload is all or nothing: the new file is loaded and validated, then a whole new gateway
//! is built from it (apps, rules, headers, providers, directory settings). Only then does it
//! replace the serving one ([`LiveGateway::replace`]); requests already started finish on the
//! old one, and sessions survive because the store is carried over. Anything that fails — a
//! broken file, a missing secret, an unreadable users or people file, an IdP's metadata that
//! cannot be read — leaves the running configuration in place, with one log line saying why
//! and `guichet_config_reload_total{result="failure"}`.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use sha2::{Digest, Sha256};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{Config, Override};
use crate::state::{Gateway, LiveGateway};

/// Where the running configuration came from, to read it again.
#[derive(Clone, Debug)]
pub struct ReloadSource {
    pub path: PathBuf,
    pub overrides: Vec<Override>,
    /// How often the file's content is compared with the running one's.
    pub watch_interval: Duration,
}

impl ReloadSource {
    /// The content identity of what would be loaded: the file's bytes and the overrides.
    pub fn fingerprint(&self) -> std::io::Result<String> {
        let text = std::fs::read(&self.path)?;
        let mut hash = Sha256::new();
        hash.update(&text);
        for change in &self.overrides {
            hash.update(format!("{change:?}").as_bytes());
            hash.update([0]);
        }
        Ok(hex::encode(&hash.finalize()[..8]))
    }
}

pub struct ConfigReload {
    pub live: LiveGateway,
    pub source: ReloadSource,
    /// The runtime gateways are built in (see [`crate::ops::background`]).
    pub background: tokio::runtime::Handle,
}

#[derive(Debug, PartialEq, Eq)]
enum Trigger {
    Signal,
    FileChanged,
}

#[async_trait]
impl BackgroundService for ConfigReload {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => Some(hangups),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: reloads follow file changes only");
                None
            }
        };
        let mut running = self.source.fingerprint().unwrap_or_default();
        self.live.current().metrics.set_config_info(&running);
        let mut tick = tokio::time::interval(self.source.watch_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let trigger = tokio::select! {
                _ = shutdown.changed() => return,
                Some(()) = async {
                    match hangups.as_mut() {
                        Some(hangups) => hangups.recv().await,
                        None => std::future::pending().await,
                    }
                } => Trigger::Signal,
                _ = tick.tick() => Trigger::FileChanged,
            };
            let fingerprint = match self.source.fingerprint() {
                Ok(fingerprint) => fingerprint,
                Err(e) => {
                    // A ConfigMap update swaps a symlink: the file may be missing for an
                    // instant. A signal asked for a reload: say why none happens.
                    if trigger == Trigger::Signal {
                        self.refused(&format!("{}: {e}", self.source.path.display()));
                    }
                    continue;
                }
            };
            if trigger == Trigger::FileChanged && fingerprint == running {
                continue;
            }
            if self.reload(&fingerprint).await {
                running = fingerprint;
            } else if trigger == Trigger::FileChanged {
                // Not tried again until the file changes again (or a SIGHUP).
                running = fingerprint;
            }
        }
    }
}

impl ConfigReload {
    /// Loads, validates and builds the new configuration; swaps it in when all went well.
    async fn reload(&self, fingerprint: &str) -> bool {
        let source = self.source.clone();
        let previous = self.live.current();
        let background = self.background.clone();
        // Building reads files and may fetch an IdP's metadata: off the serving threads.
        let built = tokio::task::spawn_blocking(move || {
            let config = Config::load_with_overrides(&source.path, &source.overrides)
                .map_err(|e| e.to_string())?;
            let _runtime = background.enter();
            let gateway = Gateway::rebuild(&config, &previous).map_err(|e| e.to_string())?;
            Ok::<_, String>((config, gateway))
        })
        .await;
        match built {
            Ok(Ok((config, gateway))) => {
                for setting in restart_only_changes(&self.live.current(), &config) {
                    tracing::warn!(
                        setting,
                        "configuration reloaded, but {setting} changes take effect at the next restart"
                    );
                }
                gateway.metrics.set_config_info(fingerprint);
                gateway
                    .metrics
                    .config_reloads
                    .with_label_values(&["success"])
                    .inc();
                self.live.replace(gateway);
                tracing::info!(config = %fingerprint, "configuration reloaded");
                true
            }
            Ok(Err(reason)) => {
                self.refused(&reason);
                false
            }
            Err(e) => {
                self.refused(&format!("the reload task failed: {e}"));
                false
            }
        }
    }

    fn refused(&self, reason: &str) {
        tracing::error!(
            reason,
            "configuration reload refused: the running configuration stays in place"
        );
        self.live
            .current()
            .metrics
            .config_reloads
            .with_label_values(&["failure"])
            .inc();
    }
}

/// Settings a running process cannot change (its sockets, threads, session store and log
/// output were set up at start) that differ in `config`.
fn restart_only_changes(running: &Gateway, config: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let start = &running.start_settings;
    let file = &config.file;
    if start.listen != format!("{:?}", file.listen) {
        changed.push("listen");
    }
    if start.admin != file.admin.to_string() {
        changed.push("admin");
    }
    if start.threads != file.threads {
        changed.push("threads");
    }
    if start.limits != format!("{:?}", file.limits) {
        changed.push("limits");
    }
    if start.store != format!("{:?}", file.session.store) {
        changed.push("session.store");
    }
    if start.log != format!("{:?}", file.log) {
        changed.push("log");
    }
    if start.shutdown != format!("{:?}", file.shutdown) {
        changed.push("shutdown");
    }
    changed
}
