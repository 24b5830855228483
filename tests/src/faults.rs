//! Faults for the end-to-end tests of the shipped binary: a Redis that persists what it is told
//! (so it can be killed with SIGKILL and restarted with its data, like a production server), an
//! upstream that accepts connections and never answers, a port nobody listens on, and what the
//! soak test reads of a running `guichet` process (its pid and resident memory).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{free_port, wait_for_port};

/// A real `redis-server` with an append-only file fsynced on every write (`appendfsync
/// always`): what it acknowledged survives a SIGKILL. Killed when dropped.
pub struct PersistentRedis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl PersistentRedis {
    pub fn start() -> PersistentRedis {
        let mut redis = PersistentRedis {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().expect("a temporary directory"),
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL, as a crash or an OOM kill would: no shutdown, no final save.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts the server again on the same port and data directory, and waits until it answers
    /// `PING` (its append-only file loaded).
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command(&["PING"]).trim() != "+PONG" {
            assert!(
                Instant::now() < deadline,
                "redis-server on {} never answered PING",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One command over a raw connection; the reply as RESP text.
    pub fn command(&self, args: &[&str]) -> String {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        if stream.write_all(request.as_bytes()).is_err() {
            return String::new();
        }
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .ok();
        let mut reply = Vec::new();
        let mut buffer = [0u8; 65536];
        while let Ok(n) = stream.read(&mut buffer) {
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buffer[..n]);
        }
        String::from_utf8_lossy(&reply).into_owned()
    }

    /// How many keys match `pattern` (`KEYS`: test data only).
    pub fn count_keys(&self, pattern: &str) -> usize {
        self.command(&["KEYS", pattern])
            .lines()
            .filter(|line| !line.starts_with('*') && !line.starts_with('$'))
            .count()
    }
}

impl Drop for PersistentRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An application that accepts connections, reads what it is sent and never answers: the
/// proxy's read timeout is all that ends a request to it. Stops (closing every connection)
/// when dropped.
pub struct HangingUpstream {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HangingUpstream {
    pub fn start() -> HangingUpstream {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind loopback");
        let port = listener.local_addr().expect("local address").port();
        listener.set_nonblocking(true).expect("non-blocking");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut open = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            stream.set_nonblocking(true).ok();
                            open.push(stream);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                    // Read (and drop) what arrives, so a client is never blocked writing.
                    let mut sink = [0u8; 4096];
                    for stream in &mut open {
                        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                    }
                }
            })
        };
        HangingUpstream {
            port,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for HangingUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

/// A loopback port nothing listens on (connections to it are refused).
pub fn closed_port() -> u16 {
    free_port()
}

/// The pid of the running `guichet` process whose command line names `config` (the file the
/// test kit wrote for it).
pub fn pid_running(config: &Path) -> Option<u32> {
    let needle = config.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let names_config = cmdline.split(|b| *b == 0).any(|arg| arg == needle);
            let is_run = cmdline.split(|b| *b == 0).any(|arg| arg == b"run");
            (names_config && is_run).then_some(pid)
        })
}

/// The resident set size of a process (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}
