//! Snapshot names: `<base>-<node>-<unix seconds>[.zip]`, formatting and parsing.
//!
//! Pure. Parsing for retention is exact (the base and node must match, the rest must be digits)
//! so that `etcd-snapshot` never matches `etcd-snapshot-weekly-...` or another node's files.
//! Nothing here touches the file system.

/// The suffix of a compressed snapshot.
pub const ZIP_SUFFIX: &str = ".zip";

/// The suffix of a snapshot being written (never a snapshot itself).
pub const PART_SUFFIX: &str = ".part";

/// A snapshot's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapshotName {
    pub base: String,
    pub node: String,
    pub unix: i64,
    pub compressed: bool,
}

impl SnapshotName {
    /// The name without `.zip` (also the zip entry's name).
    pub fn stem(&self) -> String {
        format!("{}-{}-{}", self.base, self.node, self.unix)
    }

    /// The file name on disk / the S3 object base name.
    pub fn file_name(&self) -> String {
        if self.compressed {
            format!("{}{ZIP_SUFFIX}", self.stem())
        } else {
            self.stem()
        }
    }

    /// Parses `file_name` only if it is exactly `<base>-<node>-<digits>[.zip]`.
    pub fn parse_exact(file_name: &str, base: &str, node: &str) -> Option<Self> {
        let (stem, compressed) = split_zip(file_name);
        let digits = stem
            .strip_prefix(base)?
            .strip_prefix('-')?
            .strip_prefix(node)?
            .strip_prefix('-')?;
        let unix = parse_digits(digits)?;
        Some(Self {
            base: base.to_string(),
            node: node.to_string(),
            unix,
            compressed,
        })
    }
}

/// Splits a trailing `.zip` off: (stem, was compressed).
fn split_zip(file_name: &str) -> (&str, bool) {
    match file_name.strip_suffix(ZIP_SUFFIX) {
        Some(stem) => (stem, true),
        None => (file_name, false),
    }
}

/// Base-10 seconds made only of ASCII digits (no sign, no spaces), fitting an i64.
fn parse_digits(digits: &str) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// RKE2's rule for reading a timestamp back from any snapshot file name: strip `.zip`, parse the
/// part after the last `-` as base-10 seconds.
pub fn timestamp_in_name(file_name: &str) -> Option<i64> {
    let (stem, _) = split_zip(file_name);
    let (_, digits) = stem.rsplit_once('-')?;
    parse_digits(digits)
}

/// True when `file_name` is `<something>-<node>-<digits>[.zip]` with a non-empty `<something>`:
/// a snapshot of `node` under any base name. Used to tell this node's files from other nodes' in
/// a shared dir when the base is unknown (temp-file cleanup).
pub fn belongs_to_node(file_name: &str, node: &str) -> bool {
    base_of(file_name, node).is_some()
}

/// The `<base>` of a `<base>-<node>-<digits>[.zip]` snapshot of `node`; None for anything else.
pub fn base_of<'a>(file_name: &'a str, node: &str) -> Option<&'a str> {
    let (stem, _) = split_zip(file_name);
    let (rest, digits) = stem.rsplit_once('-')?;
    parse_digits(digits)?;
    rest.strip_suffix(node)
        .and_then(|base| base.strip_suffix('-'))
        .filter(|base| !base.is_empty())
}

/// Validates a snapshot name given by a user (delete): a plain file name, no separators, no `..`.
pub fn validate_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.contains('/') || name.contains('\\') {
        return Err("the name must not contain a path separator".into());
    }
    if name.contains('\0') {
        return Err("the name must not contain a NUL byte".into());
    }
    if name.starts_with('.') {
        return Err("the name must not start with '.'".into());
    }
    if name.contains("..") {
        return Err("the name must not contain '..'".into());
    }
    // Only snapshots can be deleted by name: never a save in progress or an unrelated file.
    if name.ends_with(PART_SUFFIX) {
        return Err("a save in progress cannot be deleted".into());
    }
    if timestamp_in_name(name).is_none() {
        return Err("not a snapshot name (expected <name>-<node>-<unix seconds>[.zip])".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(base: &str, node: &str, unix: i64, compressed: bool) -> SnapshotName {
        SnapshotName {
            base: base.into(),
            node: node.into(),
            unix,
            compressed,
        }
    }

    #[test]
    fn formats_stem_and_file_name() {
        let plain = name("etcd-snapshot", "node1", 1_754_906_881, false);
        assert_eq!(plain.stem(), "etcd-snapshot-node1-1754906881");
        assert_eq!(plain.file_name(), "etcd-snapshot-node1-1754906881");
        let zipped = name("on-demand", "ip-1.ec2.internal", 7, true);
        assert_eq!(zipped.stem(), "on-demand-ip-1.ec2.internal-7");
        assert_eq!(zipped.file_name(), "on-demand-ip-1.ec2.internal-7.zip");
    }

    #[test]
    fn parse_exact_round_trips() {
        for n in [
            name("etcd-snapshot", "node1", 1_754_906_881, false),
            name(
                "on-demand",
                "ip-172-31-7-118.us-east-2.compute.internal",
                1,
                true,
            ),
        ] {
            assert_eq!(
                SnapshotName::parse_exact(&n.file_name(), &n.base, &n.node),
                Some(n.clone())
            );
        }
    }

    #[test]
    fn parse_exact_rejects_near_misses() {
        let cases = [
            ("etcd-snapshot-weekly-n1-1", "etcd-snapshot", "n1"),
            ("etcd-snapshot-n2-1", "etcd-snapshot", "n1"),
            ("etcd-snapshot-n1-1.part", "etcd-snapshot", "n1"),
            ("etcd-snapshot-n1-1.zip.part", "etcd-snapshot", "n1"),
            ("etcd-snapshot-n1-", "etcd-snapshot", "n1"),
            ("etcd-snapshot-n1-12a", "etcd-snapshot", "n1"),
            ("etcd-snapshot-n1-+12", "etcd-snapshot", "n1"),
            (
                "etcd-snapshot-n1-99999999999999999999",
                "etcd-snapshot",
                "n1",
            ),
            ("etcd-snapshot-n10-1", "etcd-snapshot", "n1"),
            ("xetcd-snapshot-n1-1", "etcd-snapshot", "n1"),
            ("etcd-snapshot-n1-1.tar", "etcd-snapshot", "n1"),
        ];
        for (file, base, node) in cases {
            assert_eq!(SnapshotName::parse_exact(file, base, node), None, "{file}");
        }
    }

    #[test]
    fn timestamp_follows_rke2_rule() {
        assert_eq!(
            timestamp_in_name("etcd-snapshot-n1-1754906881"),
            Some(1_754_906_881)
        );
        assert_eq!(timestamp_in_name("on-demand-n1-12.zip"), Some(12));
        assert_eq!(timestamp_in_name("anything-weekly-n-3"), Some(3));
        assert_eq!(timestamp_in_name("no-digits-here"), None);
        assert_eq!(timestamp_in_name("nodash"), None);
        assert_eq!(timestamp_in_name("a-1.part"), None);
        assert_eq!(timestamp_in_name("a--5"), Some(5));
    }

    #[test]
    fn belongs_to_node_matches_any_base_of_that_node_only() {
        assert!(belongs_to_node("etcd-snapshot-n1-1", "n1"));
        assert!(belongs_to_node("on-demand-weekly-n1-1.zip", "n1"));
        assert!(!belongs_to_node("etcd-snapshot-n2-1", "n1"));
        assert!(!belongs_to_node("n1-1", "n1"));
        assert!(!belongs_to_node("-n1-1", "n1"));
        assert!(!belongs_to_node("etcd-snapshot-xn1-1", "n1"));
        assert!(!belongs_to_node("etcd-snapshot-n1-x", "n1"));
    }

    #[test]
    fn user_names_are_plain_file_names() {
        assert!(validate_user_name("on-demand-n1-1.zip").is_ok());
        for bad in [
            "",
            "../x",
            "a/b",
            "a\\b",
            "a\0b",
            ".hidden",
            "..",
            ".",
            "a..b",
            "/etc/passwd",
            "README",
            "notes.txt",
            "on-demand-n1-1.part",
            "on-demand-n1-1.zip.part",
        ] {
            assert!(validate_user_name(bad).is_err(), "{bad:?}");
        }
    }
}
