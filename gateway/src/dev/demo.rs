//! `guichet demo`: the quickstart. An embedded configuration (in-memory sessions, the local
//! provider with demo users, linked by e-mail to an embedded directory file that gives their
//! roles and account state) in front of the built-in header-echo application, which runs
//! in-process on another loopback port. No external service needed.

use std::net::SocketAddr;

use guichet_protocols::local::hash_password;

use crate::config::{Config, ConfigError};

pub struct DemoUser {
    pub username: &'static str,
    pub email: &'static str,
    pub password: &'static str,
    pub display_name: &'static str,
    /// What the demo directory says about them.
    pub note: &'static str,
}

pub const DEMO_USERS: &[DemoUser] = &[
    DemoUser {
        username: "alice",
        email: "alice@example.org",
        password: "alice",
        display_name: "Alice Martin",
        note: "role agent: the app, not its /admin area",
    },
    DemoUser {
        username: "bob",
        email: "bob@example.org",
        password: "bob",
        display_name: "Grégory Bob-Françoise",
        note: "role lecteur only: refused the app",
    },
    DemoUser {
        username: "carol",
        email: "carol@example.org",
        password: "carol",
        display_name: "Carole Admin",
        note: "roles agent and admin: everything",
    },
    DemoUser {
        username: "eve",
        email: "eve@example.org",
        password: "eve",
        display_name: "Ève Verrouillée",
        note: "account locked in the directory",
    },
];

/// The demo directory: people, their roles on the `echo` app and their account state.
pub const DEMO_PEOPLE: &str = r#"# The Guichet demo directory (see docs/directory.md). Edit it while the demo runs:
# changes apply within the cache's l1_ttl (5 s in the demo).
people:
  - id: p-alice
    attributes: { email: alice@example.org, displayName: Alice Martin }
    structures: ["0750001A"]
    roles: { echo: [agent] }
  - id: p-bob
    attributes: { email: bob@example.org, displayName: Grégory Bob-Françoise }
    roles: { echo: [lecteur] }
  - id: p-carol
    attributes: { email: carol@example.org, displayName: Carole Admin }
    roles: { echo: [agent, admin] }
  - id: p-eve
    attributes: { email: eve@example.org, displayName: Ève Verrouillée }
    roles: { echo: [agent] }
    locked: true
"#;

/// Writes the demo directory to a fresh file under the system's temporary directory.
fn write_demo_directory() -> Result<std::path::PathBuf, ConfigError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "guichet-demo-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let path = dir.join("people.yaml");
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, DEMO_PEOPLE))
        .map_err(|e| ConfigError::new("directory.backend.path", e.to_string()))?;
    Ok(path)
}

/// The demo configuration, with the echo app at `echo`.
pub fn config(
    listen: SocketAddr,
    admin: SocketAddr,
    echo: SocketAddr,
) -> Result<Config, ConfigError> {
    config_with_threads(listen, admin, echo, 2)
}

/// The demo configuration with `threads` proxy worker threads.
pub fn config_with_threads(
    listen: SocketAddr,
    admin: SocketAddr,
    echo: SocketAddr,
    threads: usize,
) -> Result<Config, ConfigError> {
    demo_config(listen, admin, echo, threads, false)
}

/// The demo without its role rules and with one identity header: the benchmark's baseline for
/// what the role policy and the identity headers cost (`guichet demo --plain`).
pub fn plain_config(
    listen: SocketAddr,
    admin: SocketAddr,
    echo: SocketAddr,
    threads: usize,
) -> Result<Config, ConfigError> {
    demo_config(listen, admin, echo, threads, true)
}

fn demo_config(
    listen: SocketAddr,
    admin: SocketAddr,
    echo: SocketAddr,
    threads: usize,
    plain: bool,
) -> Result<Config, ConfigError> {
    let users: String = DEMO_USERS
        .iter()
        .map(|user| {
            format!(
                "      - username: {}\n        email: {}\n        display_name: \"{}\"\n        password_hash: '{}'\n",
                user.username,
                user.email,
                user.display_name,
                hash_password(user.password),
            )
        })
        .collect();
    let rules_and_headers = if plain {
        r#"    rules:
      - { path: /public, access: public }
    identity_headers:
      prefix: X-Remote-
      headers:
        - { name: X-Remote-User, value: subject }
"#
    } else {
        r#"    rules:
      - { name: static pages, path: /public, access: public }
      - { name: admin area, path: /admin, any_role: [admin] }
      - { name: the application, path: /, any_role: [agent, admin] }
    identity_headers:
      prefix: X-Remote-
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: X-Remote-Email, value: "attribute:email" }
        - { name: X-Remote-Name, value: "attribute:display_name" }
        - { name: X-Remote-Name-Ascii, value: "attribute:display_name", encoding: ascii }
        - { name: X-Remote-Roles, value: roles }
        - { name: X-Remote-Provider, value: provider }
"#
    };
    let people = write_demo_directory()?;
    let yaml = format!(
        r#"
directory:
  backend: {{ kind: file, path: "{people}" }}
  cache: {{ l1_ttl: 5s, negative_ttl: 5s }}
listen:
  - address: {listen}
admin: {admin}
threads: {threads}
providers:
  - kind: local
    id: local
    display_name: "Comptes de démonstration / Demo accounts"
    pivot: {{ attribute: email, directory_attribute: email }}
    users:
{users}
apps:
  - id: echo
    url: http://{listen}
    aliases: [localhost]
    upstream: http://{echo}
    providers: [local]
    access: authenticated
    contact: "support@example.org (démo / demo)"
{rules_and_headers}"#,
        people = people.display()
    );
    Config::from_yaml(&yaml)
}
