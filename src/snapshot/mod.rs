//! Snapshots: names, the streaming save pipeline (fed by etcd's stream or by a SQLite image,
//! `save_image`; what a snapshot holds is `image`), verification, retention planning,
//! freshness and listing records.
//!
//! Owns what a snapshot *is* (its name, its bytes, its integrity). It does not decide when to take
//! one (scheduler), how requests map to operations (operations), or where copies are listed from
//! (store).

pub mod backfill;
pub mod drill_record;
pub mod encryption_record;
pub mod freshness;
pub mod hashkv;
pub mod image;
pub mod name;
pub mod observed;
pub mod output;
pub(crate) mod pipe;
pub mod point_in_time;
pub mod prune;
pub mod record;
pub mod retention;
pub mod save;
pub mod save_image;
pub mod sink;
pub mod tee;
pub mod verify;
pub mod zipstream;

#[cfg(test)]
mod fuzz_tests;

pub use name::SnapshotName;
pub use record::{SnapshotRecord, Storage};
