//! S3-compatible object storage for snapshot copies (AWS, MinIO, Ceph, R2, ...).
//!
//! `keys` is the pure object-key layout, `client` builds the SDK client from `S3Settings`
//! (TLS, proxy, credentials, startup check), `store` lists, deletes and reads objects, `upload` puts finished files and metadata objects, `stream` uploads from
//! the save pipeline's tee, `retry` retries file uploads, `retention` prunes, `sources` reads
//! who uploaded each listed object and its extra metadata (cached across listings), `metadata`
//! reads and parses one `.metadata/<name>` object, `rekey` re-encrypts objects to the current
//! recipients (`rekey_chains`: a delta chain object's verified replacement), `deltas` lists, uploads, downloads and deletes delta chain objects (`batch_delete`: many objects a request, DeleteObjects, with a per-key fallback). Wiring into the save
//! pipeline, retention and the API lives with their owners, not here.

pub mod batch_delete;
pub mod client;
pub mod deltas;
pub mod download;
pub mod error;
mod insecure_tls;
pub mod keys;
pub mod metadata;
mod multipart;
pub mod rekey;
pub mod rekey_chains;
mod retention;
pub mod retry;
pub mod sources;
pub mod store;
pub mod stream;
pub mod upload;

pub use client::S3Client;
pub use error::S3Error;
pub use keys::KeyLayout;
pub use retry::{RetryPolicy, backoff_delays};
pub use sources::{Source, SourceCache};
pub use store::{ObjectMetadata, S3Store, UploadedObject};
