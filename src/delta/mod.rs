//! Delta capture for point-in-time recovery: every change etcd makes after a full snapshot,
//! written in revision order as checksummed segment files chained from that snapshot.
//!
//! - `segment`: the segment file format (pure codec; layout in `docs/delta-segments.md`).
//! - `chain`: the chain rules as pure functions (file names, the anchor, where a capture
//!   resumes, how far a chain reaches without a hole, when a segment is flushed).
//! - `events`: watch events grouped per revision (one transaction = one group).
//! - `names`: segment file names (`<from>-<to>.seg[.gz][.age]`), the one parser of them.
//! - `stored`: how a segment is stored: gzip, then age, as streams (`docs/delta-segments.md`).
//! - `files`: segment files on disk: chain dirs, listing; `open_segment`: writing one,
//!   crash-safe (temp file, fsync, link).
//! - `session`, `capture`: the server's capture task (an etcd watch on the whole keyspace).
//! - `listing`: the chains and segments `ls --deltas` shows.
//! - `rekey`: `etcd-snapshot rekey` of encrypted segments, on disk and in S3.
//! - `retention`: a chain lives as long as its full snapshot (removal, orphan healing).
//! - `target`: where a point-in-time restore goes (anchor, segments, where the replay stops).
//! - `upload`: which published segments go to S3 (pure; the uploads are `operations`').
//! - `window`: each chain's window record (`.window.json`, written at every segment published)
//!   and the point-in-time window `ls` and the resources show for its full snapshot.
//!
//! Layering: above `store`, `etcd` and `snapshot` (it lists full snapshots and their recorded
//! revisions, and watches etcd), below the drivers. It never takes a full snapshot itself: it
//! asks the daemon for one (`capture::ReanchorRequest`).

pub mod capture;
pub mod chain;
pub mod events;
pub mod files;
pub mod listing;
pub mod names;
mod open_segment;
pub mod rekey;
pub mod retention;
pub mod segment;
pub mod session;
pub mod stored;
pub mod target;
pub mod upload;
pub mod window;
