//! Child processes we run (etcd, etcdutl/etcdctl): what they may see and what of their
//! output may be shown.
//!
//! A snapshot is the whole cluster, so the secrets that protect it (the server token, S3 keys)
//! must never reach a child: etcd echoes unknown `ETCD_*` variables, values included, and that
//! output is logged and put into errors. Two independent defences live here:
//! - `env`: every child starts from an empty environment plus a short allow-list.
//! - `mask`: every line of child output we log or keep for an error has every secret value
//!   this process knows replaced by `<redacted>`.
//!
//! Depends only on the config's resolved values and the token format; etcd, restore, the
//! daemon and the S3 store call into it, never the other way round.

pub mod env;
pub mod mask;

pub use env::command;
pub use mask::{SecretMask, mask_known};
