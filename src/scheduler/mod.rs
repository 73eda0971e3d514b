//! Scheduled snapshots: the cron loop that follows config changes.

pub mod schedule;

pub use schedule::Schedule;
