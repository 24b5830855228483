//! The shipped `guichet` binary as a child process: what users run, tested from outside.
//!
//! In-process gateways ([`crate::TestGateway`]) share the test's runtime and process; they
//! once hid a crash of `guichet run` with a Redis store. A [`GuichetProcess`] is started with
//! `guichet run --config FILE [--set ...]` and an explicit environment, like a container, and
//! is driven only through its listeners, its exit status and what it prints.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{config_yaml, free_port, guichet_binary, Browser, GatewayOptions, Reachable, APP_HOST};

/// How a process is started.
#[derive(Default)]
pub struct Launch {
    /// `--set PATH=VALUE` arguments.
    pub overrides: Vec<String>,
    /// The only environment variables the process gets besides `PATH`.
    pub env: Vec<(String, String)>,
    /// Working directory (the repository root for the examples, which name files relative to it).
    pub current_dir: Option<PathBuf>,
}

/// A running `guichet run`; killed when dropped.
pub struct GuichetProcess {
    child: Option<Child>,
    pub port: u16,
    pub admin_port: u16,
    output: Arc<Mutex<String>>,
    /// The configuration file it runs, when the test kit wrote it ([`GuichetProcess::start`]).
    pub config_path: Option<PathBuf>,
    /// Keeps the generated configuration file alive.
    _dir: Option<tempfile::TempDir>,
}

impl GuichetProcess {
    /// The test kit's usual gateway ([`config_yaml`]) as a process, in front of `echo`.
    pub fn start(options: &GatewayOptions, echo: SocketAddr) -> GuichetProcess {
        Self::start_with_binary(options, echo, &guichet_binary(), Launch::default())
    }

    /// [`GuichetProcess::start`] with another binary (the release build, for the load
    /// benchmarks) and `launch` (`--set` overrides, environment).
    pub fn start_with_binary(
        options: &GatewayOptions,
        echo: SocketAddr,
        binary: &Path,
        launch: Launch,
    ) -> GuichetProcess {
        let port = free_port();
        let admin_port = free_port();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("guichet.yaml");
        std::fs::write(&path, config_yaml(options, port, admin_port, echo)).expect("config");
        let args = ["run".as_ref(), "--config".as_ref(), path.as_os_str()];
        let mut process = Self::spawn_command(binary, &args, port, admin_port, launch);
        process.config_path = Some(path);
        process._dir = Some(dir);
        process
    }

    /// `guichet run --config path` with `launch`; `port` and `admin_port` are where it listens
    /// (set them with `launch.overrides` when the file says otherwise).
    pub fn spawn(path: &Path, port: u16, admin_port: u16, launch: Launch) -> GuichetProcess {
        let args = ["run".as_ref(), "--config".as_ref(), path.as_os_str()];
        Self::spawn_command(&guichet_binary(), &args, port, admin_port, launch)
    }

    /// `guichet demo` (the README's quickstart) on these ports.
    pub fn demo(port: u16, admin_port: u16) -> GuichetProcess {
        let listen = format!("127.0.0.1:{port}");
        let admin = format!("127.0.0.1:{admin_port}");
        let args = ["demo", "--listen", &listen, "--admin", &admin].map(std::ffi::OsStr::new);
        Self::spawn_command(
            &guichet_binary(),
            &args,
            port,
            admin_port,
            Launch::default(),
        )
    }

    fn spawn_command(
        binary: &Path,
        args: &[&std::ffi::OsStr],
        port: u16,
        admin_port: u16,
        launch: Launch,
    ) -> GuichetProcess {
        let mut command = Command::new(binary);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for change in &launch.overrides {
            command.arg("--set").arg(change);
        }
        for (name, value) in &launch.env {
            command.env(name, value);
        }
        if let Some(dir) = &launch.current_dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().expect("the guichet binary starts");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut all = output.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        GuichetProcess {
            child: Some(child),
            port,
            admin_port,
            output,
            config_path: None,
            _dir: None,
        }
    }

    /// The process id, while it runs (to read its CPU time in `/proc/PID/stat`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the process printed so far (its log lines).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the process has printed `needle`; panics with its output after `timeout`.
    pub async fn wait_for_output(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.output().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "guichet did not print {needle:?} within {timeout:?}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub fn browser(&self) -> Browser {
        Browser::new(self.port)
    }

    /// `/readyz`'s status, or `None` while the admin listener does not answer.
    pub async fn readiness(&self) -> Option<u16> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .ok()?;
        let response = client.get(self.admin_url("/readyz")).send().await.ok()?;
        Some(response.status().as_u16())
    }

    /// Waits until `/readyz` answers `expected` (200: ready, 503: up but not ready); panics with
    /// the process's output if it does not within `timeout` or the process exits.
    pub async fn wait_for_readiness(&mut self, expected: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "guichet exited ({status}) before /readyz answered {expected}:\n{}",
                    self.output()
                );
            }
            last = self.readiness().await;
            if last == Some(expected) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "/readyz did not answer {expected} within {timeout:?} (last: {last:?}):\n{}",
            self.output()
        );
    }

    pub async fn wait_ready(&mut self) {
        self.wait_for_readiness(200, Duration::from_secs(30)).await;
    }

    /// Sends a signal (SIGHUP: reload the configuration).
    pub fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("running");
        let pid = i32::try_from(child.id()).expect("a pid");
        // SAFETY: kill(2) on our own child's pid, with a valid signal number.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "signal {signal} sent");
    }

    /// Sends SIGTERM and returns at once (see [`GuichetProcess::wait_exit`]).
    pub fn start_terminating(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Waits for the exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "guichet did not exit within {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM (what Kubernetes sends) and waits for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let pid = i32::try_from(child.id()).expect("a pid");
        // SAFETY: kill(2) on our own child's pid, with a valid signal number.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM sent");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "guichet did not exit within {timeout:?} of SIGTERM:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Reachable for GuichetProcess {
    fn url(&self, path: &str) -> String {
        format!("http://{APP_HOST}:{}{path}", self.port)
    }
}

impl Drop for GuichetProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}
