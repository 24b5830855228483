//! The runtime that owns the gateway's long-lived background work.
//!
//! pingora gives each service (the proxy, the admin listener, each background service) runtimes
//! of its own, created when the server runs and dropped when it stops. Work that belongs to the
//! gateway rather than to one service must not live on any of them: the Redis connection
//! manager spawns its tasks on whatever runtime is current when it is created, and the gateway
//! is created before pingora's runtimes exist (`guichet run` has none at all at that point, which
//! once made it panic with "there is no reactor running" as soon as Redis was configured).
//!
//! So the process starts one small runtime of its own, before the gateway, and builds the
//! gateway inside it: what a client library spawns at construction lives there, and so does
//! the first Redis connection, opened from there at start (a connection re-opened after an
//! outage lives on the runtime of the request that found it broken). The
//! runtime is owned by whoever runs the server (`run_forever`, or a [`crate::ops::server::RunningGateway`]
//! in tests and the demo) and is shut down after pingora's runtimes, so nothing the services
//! still use disappears under them. See docs/architecture.md, "Runtimes".

use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

/// How long shutdown waits for background tasks (connection drivers, watches) to end.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

pub struct BackgroundRuntime {
    runtime: Option<Runtime>,
}

impl BackgroundRuntime {
    /// One worker thread is plenty: background work is a few connection drivers and timers.
    pub fn start() -> Result<BackgroundRuntime, crate::state::StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("guichet-background")
            .enable_all()
            .build()
            .map_err(|e| {
                crate::state::StartError::System(format!(
                    "cannot start the background runtime: {e}"
                ))
            })?;
        Ok(BackgroundRuntime {
            runtime: Some(runtime),
        })
    }

    #[allow(clippy::expect_used, reason = "present until dropped")]
    pub fn handle(&self) -> &Handle {
        self.runtime
            .as_ref()
            .expect("present until dropped")
            .handle()
    }

    /// Runs `build` with this runtime as the current one, so that what it creates spawns its
    /// tasks here.
    pub fn enter<T>(&self, build: impl FnOnce() -> T) -> T {
        let _guard = self.handle().enter();
        build()
    }
}

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        if Handle::try_current().is_ok() {
            // Dropped from async code (a test stopping its gateway): blocking is not allowed
            // there, so the tasks are cancelled without waiting for them.
            runtime.shutdown_background();
        } else {
            runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
        }
    }
}
