//! Child processes we run (etcd, etcdutl/etcdctl): what they may see and what of their
//! output may be shown.
//!
//! A snapshot is the whole cluster, so the secrets that protect it (the server token, S3 keys)
//! must never reach a child: etcd echoes unknown `ETCD_*` variables, values included, and that
//! output is logged and put into errors. Two independent defences live here:
//! - `env`: every child starts from an empty environment plus a short allow-list.
//! - `mask`: every line of child output we log or keep for an error has every secret value
//!   this process knows replaced by `<redacted>`.
//!
//! Depends only on the config's resolved values and the token format; etcd, restore, the
//! daemon and the S3 store call into it, never the other way round.

pub mod env;
pub mod mask;

pub use env::command;
pub use mask::{SecretMask, mask_known};

/// The nice value drill children run at: the lowest CPU priority.
pub const LOW_PRIORITY_NICE: i32 = 19;

/// Lowers a child's CPU priority to nice 19. Linux derives a process's IO priority from its nice
/// value when no IO class was set (best-effort level `(nice + 20) / 5`, the lowest, 7), so the
/// child also gets the disk bandwidth others leave. Failure only warns: a drill at normal
/// priority is still correct, just less polite.
pub fn lower_priority(pid: u32) {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = rustix::process::setpriority_process(Some(pid), LOW_PRIORITY_NICE) {
        tracing::warn!(pid = pid.as_raw_nonzero().get(), error = %e, "failed to lower a child's priority");
    }
}
