//! etcd: connecting to a member, its TLS material, and running the embedded member as a
//! supervised child.

pub mod certs;
pub mod client;
pub mod embedded;
pub mod standalone;
