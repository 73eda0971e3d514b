//! Delta capture for point-in-time recovery: every change etcd makes after a full snapshot,
//! written in revision order as checksummed segment files chained from that snapshot.
//!
//! - `segment`: the segment file format (pure codec; layout in `docs/delta-segments.md`).
//! - `chain`: the chain rules as pure functions (file names, the anchor, where a capture
//!   resumes, how far a chain reaches without a hole, when a segment is flushed).
//! - `events`: watch events grouped per revision (one transaction = one group).
//!
//! Layering: above `store`, `etcd` and `snapshot`, below the drivers.

pub mod chain;
pub mod events;
pub mod segment;
