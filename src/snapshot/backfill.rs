//! Backfill planning: which of this node's local snapshots to upload to S3 because they are
//! missing there (an upload failed, or S3 was switched on later).
//!
//! Pure. A snapshot that S3 retention would delete right after uploading it is not uploaded:
//! the plan runs retention over "what S3 has + what we would add" per base name and keeps only
//! the survivors, so a long outage never ends in a burst of uploads that are pruned at once.

use std::collections::{BTreeMap, BTreeSet};

use super::name::base_of;
use super::prune::{Candidate, plan_retention};
use super::retention::RetentionPolicy;

/// Local file names of `node` missing from `remote`, limited to those the S3 retention
/// `policy` keeps at `now_unix`; oldest first. A policy that keeps all uploads everything
/// missing. Sizes are not known here, so max-total-size is left to the prune after the upload.
pub fn plan_backfill(
    local: &[String],
    remote: &[String],
    node: &str,
    policy: &RetentionPolicy,
    now_unix: i64,
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
        let union: Vec<Candidate> = remote
            .iter()
            .map(String::as_str)
            .chain(missing.iter().copied())
            .map(Candidate::named)
            .collect();
        let kept: BTreeSet<String> = plan_retention(&union, base, node, policy, now_unix)
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
            plan_backfill(&local, &remote, "n1", &RetentionPolicy::count(0), 0),
            ["s-n1-1.zip", "s-n1-3"]
        );
    }

    #[test]
    fn nothing_retention_would_prune_at_once() {
        let local = names(&["s-n1-1", "s-n1-2", "s-n1-3", "s-n1-4"]);
        let remote = names(&["s-n1-4"]);
        // Retention 2: S3 ends with the newest two of {1,2,3,4}: 4 (there) and 3.
        assert_eq!(
            plan_backfill(&local, &remote, "n1", &RetentionPolicy::count(2), 0),
            ["s-n1-3"]
        );
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
        assert_eq!(
            plan_backfill(&local, &remote, "n1", &RetentionPolicy::count(2), 0),
            ["on-demand-n1-5"]
        );
    }

    #[test]
    fn nothing_missing_means_nothing_to_do() {
        let both = names(&["s-n1-1", "s-n1-2"]);
        assert!(plan_backfill(&both, &both, "n1", &RetentionPolicy::count(5), 0).is_empty());
    }

    #[test]
    fn the_whole_s3_policy_decides_what_is_uploaded() {
        // keep-daily 2: of three snapshots on day 1 only the newest survives, so only it is
        // uploaded; day 0's is already in S3.
        let local = names(&["s-n1-86400", "s-n1-86500", "s-n1-86600"]);
        let remote = names(&["s-n1-100"]);
        let mut policy = RetentionPolicy::count(5);
        policy.rules.keep_daily = Some(2);
        assert_eq!(
            plan_backfill(&local, &remote, "n1", &policy, 90_000),
            ["s-n1-86600"]
        );
    }
}
