//! Bootstrap data: the cluster's confidential files (CAs, keys, passwd, encryption config) kept
//! in etcd, encrypted with the server token exactly as k3s does, so that every snapshot carries
//! them and a restore with the token brings them back.
//!
//! A top-level module rather than part of `restore/`: the server writes it before every save,
//! and restore reads it back.
