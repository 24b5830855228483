//! Redis high availability, with real servers on loopback ports: a master, a replica
//! (`replicaof`) and three sentinels (`redis-server --sentinel` with a generated config), plus
//! TLS and ACL variants of a single node, and gateways whose `session.store` is any YAML.
//!
//! Assertions talk to the servers with `redis-cli` (Debian package `redis-tools`, which
//! `redis-server` depends on).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use guichet_gateway::config::Config;
use guichet_gateway::echo::EchoServer;
use guichet_gateway::server;

use crate::poll::eventually;
use crate::{config_yaml, free_port, logs, wait_for_port, GatewayOptions, Store, TestGateway};

/// The name the sentinels monitor the master under.
pub const MASTER_NAME: &str = "guichet";
/// The kit's usual session key (base64 of 32 bytes), as [`crate::config_yaml`] writes it.
pub const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// Another session key, for rotations.
pub const KEY_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

/// One `redis-server` process (a data node or a sentinel), killed when dropped.
pub struct RedisNode {
    pub port: u16,
    child: Option<Child>,
    /// `redis-cli` arguments that reach and authenticate to this node.
    cli: Vec<String>,
    /// Configuration files, the working directory.
    pub dir: tempfile::TempDir,
}

impl RedisNode {
    /// `redis-server` on `port` with `args` (after `--port`, `--bind`, no persistence), reached
    /// by `redis-cli` with `cli` (authentication, TLS).
    pub fn start(port: u16, args: &[String], cli: &[String]) -> RedisNode {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut all = vec![
            "--port".to_string(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            dir.path().display().to_string(),
        ];
        all.extend(args.iter().cloned());
        let child = spawn_server(&all);
        let mut node = RedisNode {
            port,
            child: Some(child),
            cli: cli.to_vec(),
            dir,
        };
        node.wait_listening();
        node
    }

    /// A plain node (no password).
    pub fn plain() -> RedisNode {
        Self::start(free_port(), &[], &[])
    }

    /// A replica of `master`, its initial sync done.
    pub fn replica_of(master: &RedisNode) -> RedisNode {
        Self::replica_with(master, None)
    }

    /// A replica of `master`, over TLS with `tls`'s certificate when given.
    pub fn replica_with(master: &RedisNode, tls: Option<&TlsFiles>) -> RedisNode {
        let port = free_port();
        let mut args = tls.map(|tls| tls.server_args(port)).unwrap_or_default();
        args.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            master.port.to_string(),
        ]);
        let cli = tls.map(TlsFiles::cli_args).unwrap_or_default();
        let node = Self::start(port, &args, &cli);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !node.info("replication").contains("master_link_status:up") {
            assert!(
                std::time::Instant::now() < deadline,
                "the replica on {} never synced with its master",
                node.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    /// A sentinel monitoring `master` (quorum 2, down after 1 s, failover timeout 3 s),
    /// requiring `password` when given, over TLS only (to clients and to the servers it
    /// monitors) with `tls`.
    pub fn sentinel(
        master: &RedisNode,
        password: Option<&str>,
        tls: Option<&TlsFiles>,
    ) -> RedisNode {
        let port = free_port();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let listen = match tls {
            None => format!("port {port}\n"),
            Some(tls) => format!(
                "port 0\ntls-port {port}\ntls-cert-file {cert}\ntls-key-file {key}\n\
                 tls-ca-cert-file {ca}\ntls-auth-clients no\ntls-replication yes\n",
                cert = tls.cert_file.display(),
                key = tls.key_file.display(),
                ca = tls.ca_file.display(),
            ),
        };
        let mut conf = format!(
            "{listen}bind 127.0.0.1\ndaemonize no\ndir {dir}\n\
             sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
             sentinel failover-timeout {MASTER_NAME} 3000\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n",
            dir = dir.path().display(),
            master = master.port,
        );
        let mut cli = tls.map(TlsFiles::cli_args).unwrap_or_default();
        if let Some(password) = password {
            conf.push_str(&format!(
                "requirepass {password}\nsentinel sentinel-pass {password}\n"
            ));
            cli.extend(["-a".into(), password.into(), "--no-auth-warning".into()]);
        }
        // Sentinel rewrites its configuration file: it must be writable.
        let path = dir.path().join("sentinel.conf");
        std::fs::write(&path, conf).expect("sentinel.conf");
        let child = spawn_server(&[path.display().to_string(), "--sentinel".into()]);
        let mut node = RedisNode {
            port,
            child: Some(child),
            cli,
            dir,
        };
        node.wait_listening();
        node
    }

    fn wait_listening(&mut self) {
        if !wait_for_port(self.port, Duration::from_secs(10)) {
            let status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!(
                "redis-server did not listen on {} (exit status: {status:?})",
                self.port
            );
        }
    }

    /// SIGKILL, as a crashed machine: no goodbye to replicas or clients.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// `redis-cli` on this node; what it printed (one value a line).
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.cli)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed (Debian package redis-tools)");
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr)
    }

    /// `INFO section`.
    pub fn info(&self, section: &str) -> String {
        self.cli(&["INFO", section])
    }

    /// A field of `INFO section`.
    pub fn info_field(&self, section: &str, field: &str) -> Option<String> {
        let prefix = format!("{field}:");
        self.info(section)
            .lines()
            .find_map(|line| line.trim().strip_prefix(&prefix).map(str::to_owned))
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_server(args: &[String]) -> Child {
    Command::new("redis-server")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed: run the README's test command (scripts/test.sh)")
}

/// A certificate for 127.0.0.1 and its CA, as files: what TLS-only servers of a test share.
#[derive(Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
}

impl TlsFiles {
    /// A leaf certificate for 127.0.0.1 from `pki`.
    pub fn new(pki: &crate::tls::TestPki) -> TlsFiles {
        let leaf = pki.leaf(&["127.0.0.1"]);
        TlsFiles {
            cert_file: leaf.cert_file,
            key_file: leaf.key_file,
            ca_file: pki.ca_file(),
        }
    }

    /// `redis-server` arguments: TLS only on `port` (`--port 0` after the kit's `--port`),
    /// replication over TLS too.
    pub fn server_args(&self, port: u16) -> Vec<String> {
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &self.cert_file.display().to_string(),
            "--tls-key-file",
            &self.key_file.display().to_string(),
            "--tls-ca-cert-file",
            &self.ca_file.display().to_string(),
            "--tls-auth-clients",
            "no",
            "--tls-replication",
            "yes",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    pub fn cli_args(&self) -> Vec<String> {
        vec![
            "--tls".into(),
            "--cacert".into(),
            self.ca_file.display().to_string(),
        ]
    }
}

/// A master, one replica and three sentinels (quorum 2).
pub struct SentinelCluster {
    pub master: RedisNode,
    pub replica: RedisNode,
    pub sentinels: Vec<RedisNode>,
    pub sentinel_password: Option<String>,
    pub tls: Option<TlsFiles>,
}

impl SentinelCluster {
    /// Started, the replica synced and every sentinel aware of it and of the two others.
    pub async fn start(sentinel_password: Option<&str>) -> SentinelCluster {
        Self::start_with(sentinel_password, None).await
    }

    /// With `tls`: every server (data nodes and sentinels) speaks TLS only.
    pub async fn start_with(
        sentinel_password: Option<&str>,
        tls: Option<TlsFiles>,
    ) -> SentinelCluster {
        let master = match &tls {
            None => RedisNode::plain(),
            Some(tls) => {
                let port = free_port();
                RedisNode::start(port, &tls.server_args(port), &tls.cli_args())
            }
        };
        let replica = RedisNode::replica_with(&master, tls.as_ref());
        let sentinels = (0..3)
            .map(|_| RedisNode::sentinel(&master, sentinel_password, tls.as_ref()))
            .collect();
        let cluster = SentinelCluster {
            master,
            replica,
            sentinels,
            sentinel_password: sentinel_password.map(str::to_owned),
            tls,
        };
        cluster.wait_monitored().await;
        cluster
    }

    async fn wait_monitored(&self) {
        eventually(
            Duration::from_secs(30),
            "every sentinel knows the replica and the other sentinels",
            || async {
                self.sentinels
                    .iter()
                    .all(|sentinel| {
                        let state = sentinel.cli(&["SENTINEL", "MASTER", MASTER_NAME]);
                        let field = |name: &str| {
                            let lines: Vec<&str> = state.lines().collect();
                            lines
                                .iter()
                                .position(|line| line.trim() == name)
                                .and_then(|i| lines.get(i + 1))
                                .map(|v| v.trim().to_owned())
                        };
                        field("num-slaves").as_deref() == Some("1")
                            && field("num-other-sentinels").as_deref() == Some("2")
                    })
                    .then_some(())
            },
        )
        .await;
    }

    /// `host:port` of each sentinel.
    pub fn nodes(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect()
    }

    /// The `session.store` lines of a gateway following this cluster (keys: `encryption_key`
    /// and the rest given in `extra`).
    pub fn store_lines(&self, extra: &[String]) -> Vec<String> {
        let mut lines = vec![
            "kind: redis".to_string(),
            "sentinel:".into(),
            format!("  master_name: {MASTER_NAME}"),
            format!(
                "  nodes: [{}]",
                self.nodes()
                    .iter()
                    .map(|n| format!("\"{n}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ];
        if let Some(password) = &self.sentinel_password {
            lines.push(format!("  password: \"{password}\""));
        }
        if let Some(tls) = &self.tls {
            lines.push("  tls: true".into());
            lines.push(format!("ca_file: \"{}\"", tls.ca_file.display()));
        }
        lines.push(format!("encryption_key: \"{KEY_A}\""));
        lines.extend(extra.iter().cloned());
        lines
    }

    /// Waits until the replica has everything the master has written so far (replication
    /// offsets equal), so that a kill now loses nothing written before.
    pub async fn wait_replicated(&self) {
        let target: u64 = self
            .master
            .info_field("replication", "master_repl_offset")
            .and_then(|v| v.parse().ok())
            .expect("the master's replication offset");
        eventually(
            Duration::from_secs(10),
            "the replica caught up with the master",
            || async {
                let offset: u64 = self
                    .replica
                    .info_field("replication", "slave_repl_offset")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                (offset >= target).then_some(())
            },
        )
        .await;
    }

    /// Waits until every sentinel names the replica as the master and the replica says it is
    /// one.
    pub async fn wait_promoted(&self, within: Duration) {
        let replica = self.replica.port.to_string();
        eventually(within, "the replica promoted to master", || async {
            let named = self.sentinels.iter().all(|sentinel| {
                sentinel
                    .cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME])
                    .lines()
                    .any(|line| line.trim() == replica)
            });
            let role = self.replica.cli(&["ROLE"]);
            (named && role.lines().next().map(str::trim) == Some("master")).then_some(())
        })
        .await;
    }
}

/// A test gateway (the kit's usual configuration, [`crate::config_yaml`]) whose
/// `session.store` is `store_lines` instead.
pub fn gateway_with_store(
    options: GatewayOptions,
    echo: Arc<EchoServer>,
    store_lines: &[String],
) -> TestGateway {
    match try_gateway_with_store(options, echo, store_lines) {
        Ok(gateway) => gateway,
        Err(error) => panic!("{error}"),
    }
}

/// The configuration text of [`gateway_with_store`].
pub fn config_with_store(
    options: &GatewayOptions,
    port: u16,
    admin_port: u16,
    echo: std::net::SocketAddr,
    store_lines: &[String],
) -> String {
    let options = GatewayOptions {
        store: Store::Memory,
        ..options.clone()
    };
    let yaml = config_yaml(&options, port, admin_port, echo);
    let store = store_lines.join("\n    ");
    assert!(yaml.contains("store:\n    kind: memory"));
    yaml.replacen(
        "store:\n    kind: memory",
        &format!("store:\n    {store}"),
        1,
    )
}

/// Like [`gateway_with_store`], the configuration's refusal as an error.
pub fn try_gateway_with_store(
    options: GatewayOptions,
    echo: Arc<EchoServer>,
    store_lines: &[String],
) -> Result<TestGateway, String> {
    let port = if options.port == 0 {
        free_port()
    } else {
        options.port
    };
    let admin_port = free_port();
    let yaml = config_with_store(&options, port, admin_port, echo.address, store_lines);
    let config = Config::from_yaml(&yaml).map_err(|e| e.to_string())?;
    logs::capture();
    let running = server::spawn(&config).map_err(|e| e.to_string())?;
    assert!(
        wait_for_port(port, Duration::from_secs(10)),
        "gateway did not listen"
    );
    assert!(
        wait_for_port(admin_port, Duration::from_secs(10)),
        "admin did not listen"
    );
    Ok(TestGateway {
        port,
        admin_port,
        echo,
        running: Some(running),
        options: GatewayOptions { port, ..options },
    })
}

/// A single node serving TLS only, with a certificate for 127.0.0.1 from `pki`.
pub fn tls_node(pki: &crate::tls::TestPki) -> RedisNode {
    let tls = TlsFiles::new(pki);
    let port = free_port();
    RedisNode::start(port, &tls.server_args(port), &tls.cli_args())
}

/// A single node whose default user needs `admin_password`, and an ACL user `user` with
/// `password` allowed only Guichet's keys and channels (`guichet:*`) and no dangerous command.
pub fn acl_node(admin_password: &str, user: &str, password: &str) -> RedisNode {
    let node = RedisNode::start(
        free_port(),
        &["--requirepass".into(), admin_password.into()],
        &[
            "-a".into(),
            admin_password.into(),
            "--no-auth-warning".into(),
        ],
    );
    let answer = node.cli(&[
        "ACL",
        "SETUSER",
        user,
        "on",
        &format!(">{password}"),
        "~guichet:*",
        "&guichet:*",
        "+@all",
        "-@dangerous",
    ]);
    assert!(answer.contains("OK"), "ACL SETUSER: {answer}");
    node
}

/// The path of a file holding `text` in `dir`.
pub fn write_file(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path
}
