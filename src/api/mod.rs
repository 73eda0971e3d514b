//! The authenticated snapshot API (`POST /db/snapshot`, `/metrics`, `/healthz`, `/cacerts`) and
//! the CLI's client for it.

pub mod client;
pub mod request;
pub mod server;
pub mod tls;
pub mod wire;
