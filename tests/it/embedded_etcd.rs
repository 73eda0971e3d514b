//! Integration tests: embedded_etcd.
