//! The authenticated snapshot API (`POST /db/snapshot`, `/metrics`, `/healthz`, `/cacerts`) and
//! the CLI's client for it.

pub mod auth;
pub mod client;
pub mod client_tls;
pub mod request;
pub mod request_paths;
pub mod server;
pub mod tls;
pub mod tls_live;
pub mod tls_policy;
pub mod wire;
