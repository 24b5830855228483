//! `guichet demo`: the quickstart. An embedded configuration (in-memory sessions, the local
//! provider with demo users) in front of the built-in header-echo application, which runs
//! in-process on another loopback port. No external service needed.

use std::net::SocketAddr;

use guichet_protocols::local::hash_password;

use crate::config::{Config, ConfigError};

pub struct DemoUser {
    pub username: &'static str,
    pub email: &'static str,
    pub password: &'static str,
    pub display_name: &'static str,
    pub roles: &'static [&'static str],
}

pub const DEMO_USERS: &[DemoUser] = &[
    DemoUser {
        username: "alice",
        email: "alice@example.org",
        password: "alice",
        display_name: "Alice Martin",
        roles: &["agent"],
    },
    DemoUser {
        username: "bob",
        email: "bob@example.org",
        password: "bob",
        display_name: "Grégory Bob-Françoise",
        roles: &["lecteur"],
    },
    DemoUser {
        username: "carol",
        email: "carol@example.org",
        password: "carol",
        display_name: "Carole Admin",
        roles: &["agent", "admin"],
    },
];

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
                "      - username: {}\n        email: {}\n        display_name: \"{}\"\n        password_hash: '{}'\n        roles: [{}]\n",
                user.username,
                user.email,
                user.display_name,
                hash_password(user.password),
                user.roles.join(", ")
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
    let yaml = format!(
        r#"
listen:
  - address: {listen}
admin: {admin}
threads: {threads}
providers:
  - kind: local
    id: local
    display_name: "Comptes de démonstration / Demo accounts"
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
{rules_and_headers}"#
    );
    Config::from_yaml(&yaml)
}
