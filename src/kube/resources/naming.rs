//! RKE2's `ETCDSnapshotFile` object names: `local-<name>-<digest>` / `s3-<name>-<digest>`.
//!
//! The name must be the one RKE2 generates for the same snapshot copy, or a cluster that moves
//! between RKE2 and this product would see every resource deleted and re-created (with events).
//! Pure string work only.

use sha2::{Digest, Sha256};

use crate::snapshot::{SnapshotRecord, Storage};

/// The longest object name the apiserver accepts (a DNS-1123 subdomain).
const MAX_NAME: usize = 253;
/// `s3-` or `local-` plus `-` plus six digest characters, as RKE2 budgets it.
const AFFIX_BUDGET: usize = 13;

/// RKE2's generated resource name for one snapshot copy.
///
/// The lowercased file name is used when it is a valid DNS-1123 subdomain short enough for the
/// affixes; otherwise `etcd-snapshot-<node up to the first dot>-<unix>[.zip]`. The six-hex suffix
/// is sha256(node + location), so the same file name on two nodes (or in two buckets) never
/// collides.
pub fn resource_name(record: &SnapshotRecord) -> String {
    let node = record.node_name.as_str();
    let mut name = record.file_name.to_lowercase();
    if !is_dns1123_subdomain(&name) || name.len() + AFFIX_BUDGET > MAX_NAME {
        let encrypted = crate::snapshot::name::is_encrypted_name(&record.file_name);
        name = fallback_name(node, record.created_unix, record.compressed, encrypted);
    }
    let prefix = match record.storage {
        Storage::Local => "local",
        Storage::S3 => "s3",
    };
    format!("{prefix}-{name}-{}", digest6(node, &record.location))
}

/// The name used when the file name cannot be an object name. RKE2 keeps the node's case here;
/// we lowercase it so an upper-case host name still yields a valid object name.
/// An encrypted copy keeps its `.age`, so its resource never shares a name with a plaintext one.
fn fallback_name(node: &str, created_unix: i64, compressed: bool, encrypted: bool) -> String {
    let host = node.split('.').next().unwrap_or_default().to_lowercase();
    let zip = if compressed { ".zip" } else { "" };
    let age = if encrypted { ".age" } else { "" };
    format!("etcd-snapshot-{host}-{created_unix}{zip}{age}")
}

/// The first six hex characters of sha256(node + location).
fn digest6(node: &str, location: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(node.as_bytes());
    hasher.update(location.as_bytes());
    let digest = hasher.finalize();
    crate::hex::encode(&digest[..3])
}

/// Kubernetes' DNS-1123 subdomain rule: dot-separated labels of `[a-z0-9-]`, each starting and
/// ending with an alphanumeric, at most 253 characters in all.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-'
    };
    name.len() <= MAX_NAME && name.split('.').all(label_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(storage: Storage, node: &str, file: &str, location: &str) -> SnapshotRecord {
        SnapshotRecord {
            file_name: file.into(),
            location: location.into(),
            node_name: node.into(),
            storage,
            size: 1,
            created_unix: 1_730_308_816,
            compressed: file.ends_with(".zip"),
            ready: true,
            error: None,
            token_hash: None,
            metadata: None,
        }
    }

    /// The published upstream vectors (reference §12.4).
    #[test]
    fn names_match_rke2_vectors() {
        let cases = [
            (
                Storage::Local,
                "k3s-server-1",
                "on-demand-k3s-server-1-1730308816",
                "file:///var/lib/rancher/k3s/server/db/snapshots/on-demand-k3s-server-1-1730308816",
                "local-on-demand-k3s-server-1-1730308816-3e9290",
            ),
            (
                Storage::S3,
                "s3",
                "on-demand-k3s-server-1-1730308816",
                "s3://etcd/k3s-test/on-demand-k3s-server-1-1730308816",
                "s3-on-demand-k3s-server-1-1730308816-79b15c",
            ),
            (
                Storage::S3,
                "server-0",
                "etcd-snapshot-server-0-1754906881",
                "s3://test-bucket/test-folder/etcd-snapshot-server-0-1754906881",
                "s3-etcd-snapshot-server-0-1754906881-e1e196",
            ),
        ];
        for (storage, node, file, location, want) in cases {
            assert_eq!(resource_name(&record(storage, node, file, location)), want);
        }
        let other_node = record(
            Storage::S3,
            "k3s-server-1",
            "on-demand-k3s-server-1-1730308816",
            "s3://etcd/k3s-test/on-demand-k3s-server-1-1730308816",
        );
        assert!(resource_name(&other_node).ends_with("-3b38ed"));
    }

    #[test]
    fn upper_case_file_names_are_lowercased() {
        let r = record(
            Storage::Local,
            "n1",
            "On-Demand-N1-5",
            "file:///d/On-Demand-N1-5",
        );
        let name = resource_name(&r);
        assert!(name.starts_with("local-on-demand-n1-5-"), "{name}");
        assert!(is_dns1123_subdomain(&name));
    }

    #[test]
    fn invalid_or_long_file_names_fall_back_to_node_and_time() {
        let long = format!("a{}", "b".repeat(240));
        let cases = [
            ("snap_with_underscore", "n1.example.com", false),
            ("-leading-dash", "n1", false),
            ("trailing.", "n1", false),
            (long.as_str(), "n1", false),
            ("snap shot.zip", "N1.example.com", true),
        ];
        for (file, node, compressed) in cases {
            let mut r = record(Storage::Local, node, file, "file:///d/x");
            r.compressed = compressed;
            let zip = if compressed { ".zip" } else { "" };
            let want = format!("local-etcd-snapshot-n1-1730308816{zip}-");
            let name = resource_name(&r);
            assert!(name.starts_with(&want), "{file}: {name}");
            assert_eq!(name.len(), want.len() + 6, "{name}");
            assert!(is_dns1123_subdomain(&name), "{name}");
        }
    }

    #[test]
    fn length_limit_counts_the_affixes() {
        // 240 characters + 13 = 253 still fits; one more does not.
        let fits = "a".repeat(240);
        let name = resource_name(&record(Storage::Local, "n", &fits, "file:///x"));
        assert_eq!(name.len(), 253);
        let too_long = "a".repeat(241);
        let name = resource_name(&record(Storage::Local, "n", &too_long, "file:///x"));
        assert!(name.starts_with("local-etcd-snapshot-n-"), "{name}");
    }

    #[test]
    fn digest_separates_nodes_and_locations() {
        let a = resource_name(&record(Storage::Local, "n1", "s-1", "file:///a/s-1"));
        let b = resource_name(&record(Storage::Local, "n2", "s-1", "file:///a/s-1"));
        let c = resource_name(&record(Storage::Local, "n1", "s-1", "file:///b/s-1"));
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn dns1123_subdomain_rules() {
        for ok in ["a", "a-b.c", "0.1", "abc-123"] {
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        for bad in ["", "A", "a..b", "a_b", "-a", "a-", ".a", "a.", "a/b"] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
    }
}
