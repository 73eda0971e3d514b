//! How long segments live: exactly as long as the full snapshot they chain from. Deleting or
//! pruning a local full snapshot removes its chain dir, and every retention run removes the
//! chains whose snapshot is gone (an earlier run or delete that stopped between the two
//! removals, or a capture that published into a chain while its snapshot was deleted).
//!
//! Which chains are orphaned is decided by a pure function (`orphaned_chains`); the I/O here
//! only reads the dirs and removes what it is told. A chain is removed crash-safely: it is first
//! renamed to a hidden `.removing-<anchor>` name (atomic: listings and the capture skip hidden
//! names, so a chain is never seen half removed), the rename is made durable, then the hidden
//! dir is deleted. A crash mid-delete leaves a hidden leftover, which the next run removes.
//!
//! This file is the local side; the S3 side (a chain's objects go with the S3 copy of its
//! snapshot) is `operations::chains`, deciding orphans with the same `orphaned_chains`.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use super::files::{ChainDir, FilesError};
use crate::fsutil;

/// Prefix of a chain dir being removed.
const REMOVING_PREFIX: &str = ".removing-";

/// A chain dir: where it is, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    pub path: PathBuf,
    /// Published segments.
    pub segments: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// The chains (by anchor name) whose full snapshot is not in `snapshots`: pure.
pub fn orphaned_chains<'a>(chains: &'a [String], snapshots: &BTreeSet<String>) -> Vec<&'a str> {
    chains
        .iter()
        .filter(|anchor| !snapshots.contains(anchor.as_str()))
        .map(String::as_str)
        .collect()
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FilesError {
    let path = path.to_path_buf();
    move |source| FilesError::Io {
        action,
        path,
        source,
    }
}

/// What the chain of `anchor` holds; None when it has no dir.
pub fn summarize(snapshot_dir: &Path, anchor: &str) -> Result<Option<ChainSummary>, FilesError> {
    let chain = ChainDir::new(snapshot_dir, anchor)?;
    if !chain.path().is_dir() {
        return Ok(None);
    }
    let files = chain.list()?;
    Ok(Some(ChainSummary {
        path: chain.path().to_path_buf(),
        segments: files.len(),
        bytes: files.iter().map(|f| f.size).sum(),
    }))
}

/// Removes the chain of `anchor` (see the module doc for the order); returns what it held, None
/// when it had no dir.
pub fn remove_chain(snapshot_dir: &Path, anchor: &str) -> Result<Option<ChainSummary>, FilesError> {
    let Some(summary) = summarize(snapshot_dir, anchor)? else {
        return Ok(None);
    };
    let root = crate::layout::deltas_dir_for(snapshot_dir);
    let hidden = root.join(format!("{REMOVING_PREFIX}{anchor}"));
    remove_dir_if_present(&hidden)?;
    match std::fs::rename(&summary.path, &hidden) {
        Ok(()) => {
            fsutil::sync_dir(&root).map_err(io_err("fsync", &root))?;
            remove_dir_if_present(&hidden)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // A name too long for the hidden prefix: removed in place; a crash mid-way leaves an
        // orphaned chain, which the next retention run removes.
        Err(_) => remove_dir_if_present(&summary.path)?,
    }
    fsutil::sync_dir(&root).map_err(io_err("fsync", &root))?;
    Ok(Some(summary))
}

/// Removes every chain beside `snapshot_dir` whose full snapshot is not in it, and the hidden
/// leftovers of interrupted removals; returns the anchors and what their chains held.
pub fn remove_orphaned_chains(
    snapshot_dir: &Path,
) -> Result<Vec<(String, ChainSummary)>, FilesError> {
    let root = crate::layout::deltas_dir_for(snapshot_dir);
    let (chains, leftovers) = chain_names(&root)?;
    for leftover in leftovers {
        remove_dir_if_present(&root.join(leftover))?;
    }
    // No snapshot dir (not created yet, or not mounted): nothing can be told orphaned.
    let Some(snapshots) = file_names(snapshot_dir)? else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    for anchor in orphaned_chains(&chains, &snapshots) {
        if let Some(summary) = remove_chain(snapshot_dir, anchor)? {
            removed.push((anchor.to_string(), summary));
        }
    }
    Ok(removed)
}

/// The anchors of the chain dirs beside `snapshot_dir`, by name (hidden leftovers skipped).
pub fn chain_anchors(snapshot_dir: &Path) -> Result<Vec<String>, FilesError> {
    let root = crate::layout::deltas_dir_for(snapshot_dir);
    Ok(chain_names(&root)?.0)
}

/// The chain dirs (valid anchor names) and the leftovers of interrupted removals under `root`.
fn chain_names(root: &Path) -> Result<(Vec<String>, Vec<String>), FilesError> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(io_err("list delta chains in", root)(e)),
    };
    let (mut chains, mut leftovers) = (Vec::new(), Vec::new());
    for entry in entries {
        let entry = entry.map_err(io_err("list delta chains in", root))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if name.starts_with(REMOVING_PREFIX) {
            leftovers.push(name);
        } else if super::segment::check_anchor(&name).is_ok() {
            chains.push(name);
        }
    }
    chains.sort();
    Ok((chains, leftovers))
}

/// Every file name in the snapshot dir; None when it does not exist.
fn file_names(dir: &Path) -> Result<Option<BTreeSet<String>>, FilesError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("list snapshots in", dir)(e)),
    };
    let mut names = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list snapshots in", dir))?;
        if let Some(name) = entry.file_name().to_str() {
            names.insert(name.to_string());
        }
    }
    Ok(Some(names))
}

fn remove_dir_if_present(dir: &Path) -> Result<(), FilesError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove delta chain dir", dir)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_chain_is_orphaned_exactly_when_its_snapshot_is_gone() {
        let chains = vec!["a-n1-1".to_string(), "b-n1-2".into(), "c-n1-3.zip".into()];
        assert_eq!(
            orphaned_chains(&chains, &set(&["b-n1-2", "c-n1-3", "x"])),
            ["a-n1-1", "c-n1-3.zip"]
        );
        assert!(orphaned_chains(&chains, &set(&["a-n1-1", "b-n1-2", "c-n1-3.zip"])).is_empty());
        assert!(orphaned_chains(&[], &set(&[])).is_empty());
    }

    fn chain_with(snapshots: &Path, anchor: &str, segments: &[(&str, usize)]) -> PathBuf {
        let dir = crate::layout::chain_dir_for(snapshots, anchor);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, len) in segments {
            std::fs::write(dir.join(name), vec![0u8; *len]).unwrap();
        }
        dir
    }

    #[test]
    fn removing_a_chain_reports_what_it_held_and_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let snapshots = root.path().join("snapshots");
        let seg = crate::delta::chain::segment_file_name(5, 9);
        let dir = chain_with(&snapshots, "s-n1-1", &[(&seg, 10), (".10.part", 3)]);
        let listed = ChainDir::new(&snapshots, "s-n1-1").unwrap().list().unwrap();
        let summary = remove_chain(&snapshots, "s-n1-1").unwrap().unwrap();
        assert_eq!(
            (summary.path, summary.segments, summary.bytes),
            (
                dir.clone(),
                listed.len(),
                listed.iter().map(|f| f.size).sum()
            )
        );
        assert!(!dir.exists());
        let left: Vec<_> = std::fs::read_dir(root.path().join(".deltas"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(remove_chain(&snapshots, "s-n1-1").unwrap(), None);
        assert!(remove_chain(&snapshots, "../x").is_err(), "hostile anchor");
    }

    #[test]
    fn orphans_and_interrupted_removals_are_healed_and_live_chains_kept() {
        let root = tempfile::tempdir().unwrap();
        let snapshots = root.path().join("snapshots");
        std::fs::create_dir_all(&snapshots).unwrap();
        std::fs::write(snapshots.join("kept-n1-2"), b"db").unwrap();
        let kept = chain_with(&snapshots, "kept-n1-2", &[("x.seg", 1)]);
        let orphan = chain_with(&snapshots, "gone-n1-1", &[("y", 4)]);
        let leftover = chain_with(&snapshots, ".removing-older-n1-0", &[("z", 1)]);
        let removed = remove_orphaned_chains(&snapshots).unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].0, "gone-n1-1");
        assert!(kept.exists() && !orphan.exists() && !leftover.exists());
        assert!(remove_orphaned_chains(&snapshots).unwrap().is_empty());
        assert!(
            remove_orphaned_chains(&root.path().join("none"))
                .unwrap()
                .is_empty()
        );
    }
}
