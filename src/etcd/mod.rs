//! etcd: connecting to a member, and running the embedded member as a supervised child.

pub mod client;
pub mod embedded;
pub mod standalone;
