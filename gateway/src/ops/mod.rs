//! Running the gateway: the pingora server and its runtimes, the admin listener, background watches, and the one-shot commands (`policy explain`, `directory invalidate`).

pub mod admin;
pub mod background;
pub(crate) mod body_guard;
pub(crate) mod connections;
pub mod directory_cli;
pub mod directory_watch;
pub mod drain;
pub mod explain;
pub(crate) mod plain_listener;
pub(crate) mod plain_stream;
pub mod reload;
pub(crate) mod request_head;
pub mod saml_cli;
pub mod server;
pub mod store_watch;
