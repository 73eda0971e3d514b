//! Restore and cluster reset: pre-flight verification, unzip, the etcd restore tool, moving the
//! old data dir aside, the reset-flag, and rollback.
