//! Where snapshot copies live and how they are listed, deleted and pruned.
//!
//! `LocalStore` is the snapshot dir; an S3 store will implement the same operations.

pub mod local;

pub use local::LocalStore;
