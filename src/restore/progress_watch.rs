//! Progress of the restore tool's copy of the snapshot: `etcdutl`/`etcdctl snapshot restore`
//! runs as a child process, so the bytes it moves are seen from outside, as the growth of the
//! database it writes (`<staging>/member/snap/db`), polled while it runs. The total is the
//! snapshot's database size (the file without etcd's 32-byte SHA-256 trailer).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use crate::telemetry::progress::{Operation, reporter};

/// How often the database file's size is read while the tool runs.
const POLL: Duration = Duration::from_millis(200);

/// Runs `work` (the restore tool) while reporting the growth of `db_file` towards `total`.
pub(super) async fn watched<T, E>(
    name: &str,
    total: u64,
    db_file: &Path,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let progress = reporter().start(Operation::Restore, name, Some(total));
    tokio::pin!(work);
    let mut seen = 0u64;
    let mut tick = tokio::time::interval(POLL);
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            _ = tick.tick() => {
                // The tool may grow the file past the snapshot's size (revision bump): the
                // reported bytes stop at the total.
                let size = std::fs::metadata(db_file).map_or(0, |m| m.len()).min(total);
                if size > seen {
                    progress.advance(size - seen);
                    seen = size;
                }
            }
        }
    };
    if result.is_ok() && seen < total {
        // Done: whatever the last poll missed was copied too.
        progress.advance(total - seen);
    }
    progress.finish(result.is_ok());
    result
}
