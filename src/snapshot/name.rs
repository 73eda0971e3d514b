//! Snapshot names: `<base>-<node>-<unix seconds>[.zip]`, formatting and parsing.
//!
//! Pure. Parsing for retention is exact (the base and node must match, the rest must be digits)
//! so that `etcd-snapshot` never matches `etcd-snapshot-weekly-...` or another node's files.
//! Nothing here touches the file system, and nothing here depends on another module, so the
//! config engine checks base and node names with the same rule (`check_name_part`).

/// The suffix of a compressed snapshot.
pub const ZIP_SUFFIX: &str = ".zip";

/// The suffix of a snapshot being written (never a snapshot itself); the layout owns it.
pub use crate::layout::PART_SUFFIX;

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

/// Longest base or node name: a Kubernetes object name's limit, so every node name RKE2 runs
/// with is accepted. Whether base and node fit in one file name together is `check_fits`.
pub const MAX_NAME_PART: usize = 253;

/// Longest file name (in bytes) the file systems snapshots live on accept.
pub const MAX_FILE_NAME: usize = 255;

/// What `check_name_part` allows, for error messages.
pub const NAME_PART_RULE: &str = "a name of 1 to 253 bytes that does not start with '.' and \
     has no '/', '\\', whitespace or control characters";

/// Checks a snapshot base name or a node name: they become file names and S3 keys. A leading
/// `.` would hide every snapshot from ls, delete, prune and retention (dot files are never
/// snapshots); separators, whitespace and control characters have no place in a file name.
pub fn check_name_part(text: &str) -> Result<(), &'static str> {
    let ok = !text.is_empty()
        && text.len() <= MAX_NAME_PART
        && !text.starts_with('.')
        && !text.contains(['/', '\\'])
        && !text.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok { Ok(()) } else { Err(NAME_PART_RULE) }
}

/// Checks that every file a save of `base` on `node` writes fits in one file name: the longest
/// is `<base>-<node>-<19 digits>.zip.part`. The limit of what may be asked is thus
/// `MAX_FILE_NAME - 30` bytes for base and node together.
pub fn check_fits(base: &str, node: &str) -> Result<(), String> {
    let longest = base.len() + node.len() + "--".len() + 19 + ZIP_SUFFIX.len() + PART_SUFFIX.len();
    if longest <= MAX_FILE_NAME {
        Ok(())
    } else {
        Err(format!(
            "a name that fits in a file name with the node name {node:?}: at most {} bytes \
             (it is {} bytes)",
            MAX_FILE_NAME + base.len() - longest,
            base.len()
        ))
    }
}

/// Validates a snapshot name given by a user (delete): a plain file name, no separators, no `..`.
pub fn validate_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > MAX_FILE_NAME {
        return Err(format!("the name is longer than {MAX_FILE_NAME} bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err("the name must not contain control characters".into());
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
            "on-demand-n1\n-1",
            "on-demand-n1\u{1b}[2J-1",
        ] {
            assert!(validate_user_name(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}-n1-1", "a".repeat(5000));
        assert!(
            validate_user_name(&long)
                .unwrap_err()
                .contains("longer than 255")
        );
    }

    #[test]
    fn name_parts_refuse_hidden_long_and_unprintable_names() {
        // Names RKE2 produces and accepts work: node names keep their dots.
        for good in [
            "on-demand",
            "etcd-snapshot",
            "PRUNE_TEST",
            "ip-172-31-7-118.us-east-2.compute.internal",
            "a.b",
            &"n".repeat(MAX_NAME_PART),
        ] {
            assert_eq!(check_name_part(good), Ok(()), "{good:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "a b",
            "a\tb",
            "a\0b",
            "a\u{7f}b",
            &"n".repeat(MAX_NAME_PART + 1),
        ] {
            assert_eq!(check_name_part(bad), Err(NAME_PART_RULE), "{bad:?}");
        }
        assert!(NAME_PART_RULE.contains("does not start with '.'"));
    }

    #[test]
    fn base_and_node_must_fit_one_file_name_together() {
        let node = "ip-172-31-7-118.us-east-2.compute.internal";
        assert_eq!(check_fits("on-demand", node), Ok(()));
        let room = MAX_FILE_NAME - 30 - node.len();
        assert_eq!(check_fits(&"b".repeat(room), node), Ok(()));
        let longest = name(&"b".repeat(room), node, i64::MAX, true);
        assert_eq!(
            format!("{}{PART_SUFFIX}", longest.file_name()).len(),
            MAX_FILE_NAME
        );
        let err = check_fits(&"b".repeat(room + 1), node).unwrap_err();
        assert!(err.contains(&format!("at most {room} bytes")), "{err}");
    }
}
