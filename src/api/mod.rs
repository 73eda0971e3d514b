//! The authenticated snapshot API (`POST /db/snapshot`, `/metrics`, `/healthz`, `/cacerts`) and
//! the CLI's client for it.

pub mod client;
pub mod server;
pub mod tls;
pub mod wire;
