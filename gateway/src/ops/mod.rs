//! Running the gateway: the pingora server and its runtimes, the admin listener, background watches, and the one-shot commands (`policy explain`, `directory invalidate`).

pub mod admin;
pub mod background;
pub mod directory_cli;
pub mod directory_watch;
pub mod drain;
pub mod explain;
pub mod reload;
pub mod saml_cli;
pub mod server;
pub mod store_watch;
