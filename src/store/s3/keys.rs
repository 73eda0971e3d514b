//! Object-key layout in the bucket: `<folder>/<name>`, `<folder>/.metadata/<name>`, the listing
//! prefix and `s3://` locations.
//!
//! Pure string work, no I/O. The folder is cleaned the way Go's `path.Join` does (RKE2 builds
//! keys with it), so objects written by RKE2 and by us share one layout.

use crate::snapshot::name::{PART_SUFFIX, timestamp_in_name};

/// The folder under which metadata objects live, inside the snapshot folder.
pub const METADATA_FOLDER: &str = ".metadata";

/// The folder under which delta chains live, inside the snapshot folder.
pub const DELTAS_FOLDER: &str = ".deltas";

/// Key layout for one folder of one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLayout {
    /// The cleaned folder: no trailing `/`, no `.` or empty elements; "" for the bucket root.
    folder: String,
}

impl KeyLayout {
    /// The layout for `folder` as configured (`--etcd-s3-folder`).
    pub fn new(folder: &str) -> Self {
        Self {
            folder: clean_folder(folder),
        }
    }

    /// The cleaned folder ("" for the bucket root).
    pub fn folder(&self) -> &str {
        &self.folder
    }

    /// `<folder>/<name>`, or `<name>` at the bucket root.
    pub fn object_key(&self, name: &str) -> String {
        format!("{}{name}", self.list_prefix())
    }

    /// `<folder>/.metadata/<name>`: the snapshot's extra-metadata JSON.
    pub fn metadata_key(&self, name: &str) -> String {
        format!("{}{METADATA_FOLDER}/{name}", self.list_prefix())
    }

    /// The ListObjectsV2 prefix: the folder *with* its trailing slash, so a sibling folder
    /// sharing the first characters (`prod` vs `prod-old`) never leaks into the listing.
    pub fn list_prefix(&self) -> String {
        match self.folder.as_str() {
            "" => String::new(),
            "/" => "/".into(),
            folder => format!("{folder}/"),
        }
    }

    /// `<folder>/.deltas/<anchor>/.metadata/`: the prefix of one full snapshot's delta chain.
    /// RKE2 lists every object under the folder as a snapshot except those whose immediate
    /// parent dir is `.metadata`; the last element hides the segments from it.
    pub fn chain_prefix(&self, anchor: &str) -> String {
        format!("{}{anchor}/{METADATA_FOLDER}/", self.chains_prefix())
    }

    /// `<folder>/.deltas/`: the prefix of every delta chain.
    pub fn chains_prefix(&self) -> String {
        format!("{}{DELTAS_FOLDER}/", self.list_prefix())
    }

    /// `<folder>/.deltas/<anchor>/.metadata/<segment>`: one segment file of a chain.
    pub fn segment_key(&self, anchor: &str, segment: &str) -> String {
        format!("{}{segment}", self.chain_prefix(anchor))
    }

    /// The `(anchor, segment file name)` a listed key stands for, if it is a segment key of
    /// this layout (names are not checked beyond having no `/`: callers parse them).
    pub fn parse_segment_key<'k>(&self, key: &'k str) -> Option<(&'k str, &'k str)> {
        let prefix = self.chains_prefix();
        let rest = key.strip_prefix(prefix.as_str())?;
        let (anchor, rest) = rest.split_once('/')?;
        let segment = rest.strip_prefix(METADATA_FOLDER)?.strip_prefix('/')?;
        let plain = |s: &str| !s.is_empty() && !s.contains('/');
        (plain(anchor) && plain(segment)).then_some((anchor, segment))
    }

    /// The snapshot name a listed key stands for, if it is one: a direct child of the folder
    /// (not a metadata object, not nested deeper), not hidden, not a temp file, and carrying a
    /// `-<digits>[.zip]` timestamp like every snapshot name.
    pub fn snapshot_name<'k>(&self, key: &'k str) -> Option<&'k str> {
        let prefix = self.list_prefix();
        let name = key.strip_prefix(prefix.as_str())?;
        let wanted = !name.is_empty()
            && !name.contains('/')
            && !name.starts_with('.')
            && !name.ends_with(PART_SUFFIX)
            && timestamp_in_name(name).is_some();
        wanted.then_some(name)
    }
}

/// `s3://<bucket>/<key>`, the location RKE2 records for S3 copies.
pub fn location(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// Go's `path.Clean` applied to a folder, with `.` (the empty folder) mapped to "".
/// A leading `/` stays, as it does in RKE2's keys.
pub fn clean_folder(folder: &str) -> String {
    let rooted = folder.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for element in folder.split('/') {
        match element {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                // `..` above the root is dropped; above a relative start it is kept.
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if rooted { format!("/{joined}") } else { joined }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_cleaned_like_go_path_join() {
        let cases = [
            ("", ""),
            (".", ""),
            ("k3s-test", "k3s-test"),
            ("k3s-test/", "k3s-test"),
            ("a//b/./c/", "a/b/c"),
            ("a/b/../c", "a/c"),
            ("../x", "../x"),
            ("/", "/"),
            ("/rooted/", "/rooted"),
            ("/../x", "/x"),
        ];
        for (given, cleaned) in cases {
            assert_eq!(clean_folder(given), cleaned, "folder {given:?}");
        }
    }

    #[test]
    fn keys_and_prefix_follow_the_rke2_layout() {
        let layout = KeyLayout::new("k3s-test/");
        assert_eq!(layout.folder(), "k3s-test");
        assert_eq!(
            layout.object_key("on-demand-n1-1730308816.zip"),
            "k3s-test/on-demand-n1-1730308816.zip"
        );
        assert_eq!(
            layout.metadata_key("on-demand-n1-1730308816.zip"),
            "k3s-test/.metadata/on-demand-n1-1730308816.zip"
        );
        assert_eq!(layout.list_prefix(), "k3s-test/");
    }

    #[test]
    fn the_bucket_root_has_no_prefix() {
        let layout = KeyLayout::new("");
        assert_eq!(layout.object_key("s-n-1"), "s-n-1");
        assert_eq!(layout.metadata_key("s-n-1"), ".metadata/s-n-1");
        assert_eq!(layout.list_prefix(), "");
        let rooted = KeyLayout::new("/");
        assert_eq!(rooted.object_key("s-n-1"), "/s-n-1");
        assert_eq!(rooted.list_prefix(), "/");
    }

    #[test]
    fn only_direct_snapshot_children_are_snapshot_names() {
        let layout = KeyLayout::new("prod");
        assert_eq!(
            layout.snapshot_name("prod/etcd-snapshot-n1-1700000000"),
            Some("etcd-snapshot-n1-1700000000")
        );
        assert_eq!(
            layout.snapshot_name("prod/on-demand-n1-1700000000.zip"),
            Some("on-demand-n1-1700000000.zip")
        );
        for key in [
            "prod/.metadata/on-demand-n1-1700000000",
            "prod-old/on-demand-n1-1700000000",
            "prod/nested/on-demand-n1-1700000000",
            "prod/README",
            "prod/on-demand-n1-1700000000.part",
            "prod/",
            "other/on-demand-n1-1700000000",
        ] {
            assert_eq!(layout.snapshot_name(key), None, "key {key}");
        }
        let root = KeyLayout::new("");
        assert_eq!(root.snapshot_name("s-n-1"), Some("s-n-1"));
        assert_eq!(root.snapshot_name("dir/s-n-1"), None);
    }

    #[test]
    fn segment_keys_sit_under_a_metadata_dir_of_their_chain_and_parse_back() {
        let layout = KeyLayout::new("prod/");
        let seg = "00000000000000000011-00000000000000000013.seg";
        let key = layout.segment_key("etcd-snapshot-n1-1700000000", seg);
        assert_eq!(
            key,
            format!("prod/.deltas/etcd-snapshot-n1-1700000000/.metadata/{seg}")
        );
        // RKE2 skips objects whose parent dir is `.metadata`; our own listing skips nested keys.
        let parent = key.rsplit('/').nth(1);
        assert_eq!(parent, Some(METADATA_FOLDER));
        assert_eq!(layout.snapshot_name(&key), None);
        assert_eq!(
            layout.parse_segment_key(&key),
            Some(("etcd-snapshot-n1-1700000000", seg))
        );
        assert_eq!(
            layout.chain_prefix("s-n1-1"),
            "prod/.deltas/s-n1-1/.metadata/"
        );
        for other in [
            "prod/s-n1-1",
            "prod/.deltas/s-n1-1/x.seg",
            "prod/.deltas/s-n1-1/.metadata/",
            "prod/.deltas/s-n1-1/.metadata/a/b",
            "other/.deltas/s-n1-1/.metadata/x.seg",
        ] {
            assert_eq!(layout.parse_segment_key(other), None, "{other}");
        }
        let root = KeyLayout::new("");
        assert_eq!(
            root.segment_key("s-n1-1", "x"),
            ".deltas/s-n1-1/.metadata/x"
        );
        assert_eq!(
            root.parse_segment_key(".deltas/s-n1-1/.metadata/x"),
            Some(("s-n1-1", "x"))
        );
    }

    #[test]
    fn locations_name_bucket_and_key() {
        assert_eq!(location("b1", "f/s-n-1"), "s3://b1/f/s-n-1");
    }
}
