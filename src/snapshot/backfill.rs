//! Backfill planning: which of this node's local snapshots to upload to S3 because they are
//! missing there (an upload failed, or S3 was switched on later).
//!
//! Pure. A snapshot that S3 retention would delete right after uploading it is not uploaded:
//! the plan runs retention over "what S3 has + what we would add" per base name and keeps only
//! the survivors, so a long outage never ends in a burst of uploads that are pruned at once.

use std::collections::{BTreeMap, BTreeSet};

use super::name::base_of;
use super::prune::plan_prune;

/// Local file names of `node` missing from `remote`, limited to those S3 retention keeps;
/// oldest first. `retention == 0` keeps everything, so everything missing is uploaded.
pub fn plan_backfill(
    local: &[String],
    remote: &[String],
    node: &str,
    retention: u32,
) -> Vec<String> {
    let remote_set: BTreeSet<&str> = remote.iter().map(String::as_str).collect();
    let mut by_base: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for name in local.iter().filter(|n| !remote_set.contains(n.as_str())) {
        if let Some(base) = base_of(name, node) {
            by_base.entry(base).or_default().push(name);
        }
    }
    let mut upload = Vec::new();
    for (base, missing) in by_base {
        let union: Vec<&str> = remote
            .iter()
            .map(String::as_str)
            .chain(missing.iter().copied())
            .collect();
        let kept: BTreeSet<String> = plan_prune(&union, base, node, retention)
            .keep
            .into_iter()
            .collect();
        upload.extend(
            missing
                .into_iter()
                .filter(|n| kept.contains(*n))
                .map(str::to_string),
        );
    }
    upload.sort_by_key(|n| super::name::timestamp_in_name(n).unwrap_or(0));
    upload
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn uploads_what_is_missing_oldest_first() {
        let local = names(&["s-n1-3", "s-n1-1.zip", "s-n1-2"]);
        let remote = names(&["s-n1-2"]);
        assert_eq!(
            plan_backfill(&local, &remote, "n1", 0),
            ["s-n1-1.zip", "s-n1-3"]
        );
    }

    #[test]
    fn nothing_retention_would_prune_at_once() {
        let local = names(&["s-n1-1", "s-n1-2", "s-n1-3", "s-n1-4"]);
        let remote = names(&["s-n1-4"]);
        // Retention 2: S3 ends with the newest two of {1,2,3,4}: 4 (there) and 3.
        assert_eq!(plan_backfill(&local, &remote, "n1", 2), ["s-n1-3"]);
    }

    #[test]
    fn bases_are_planned_separately_and_other_nodes_ignored() {
        let local = names(&[
            "on-demand-n1-5",
            "etcd-snapshot-n1-1",
            "etcd-snapshot-n2-9",
            "notes.txt",
        ]);
        let remote = names(&["etcd-snapshot-n1-2", "etcd-snapshot-n1-3"]);
        assert_eq!(plan_backfill(&local, &remote, "n1", 2), ["on-demand-n1-5"]);
    }

    #[test]
    fn nothing_missing_means_nothing_to_do() {
        let both = names(&["s-n1-1", "s-n1-2"]);
        assert!(plan_backfill(&both, &both, "n1", 5).is_empty());
    }
}
