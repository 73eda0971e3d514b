//! S3-compatible object storage for snapshot copies (AWS, MinIO, Ceph, R2, ...).
//!
//! `keys` is the pure object-key layout, `client` builds the SDK client from `S3Settings`
//! (TLS, proxy, credentials, startup check), `store` does object I/O. Wiring into the save
//! pipeline, retention and the API lives with their owners, not here.

pub mod client;
pub mod error;
mod insecure_tls;
pub mod keys;
mod multipart;
pub mod store;

pub use client::S3Client;
pub use error::S3Error;
pub use keys::KeyLayout;
pub use store::{ObjectMetadata, S3Store, UploadedObject};
