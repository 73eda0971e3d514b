//! etcd's MVCC encodings inside the bbolt file: revision keys of the `key` bucket, the
//! `mvccpb.KeyValue` protobuf stored as their value, and the revision and counter values of the
//! `meta` bucket. Pure decoders of untrusted bytes: bad input is `None`, never a panic.

/// A revision key is `main` (8 bytes, big-endian), `_`, `sub` (8 bytes), and a trailing `t`
/// when the revision is a deletion (tombstone).
const REVISION_LEN: usize = 17;
const TOMBSTONE_MARK: u8 = b't';

/// A decoded revision key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revision {
    pub main: u64,
    pub sub: u64,
    pub tombstone: bool,
}

/// Decodes a `key` bucket key (also the 17-byte form of `meta/scheduledCompactRev`).
pub fn parse_revision(key: &[u8]) -> Option<Revision> {
    let tombstone = match key.len() {
        REVISION_LEN => false,
        18 if key[REVISION_LEN] == TOMBSTONE_MARK => true,
        _ => return None,
    };
    if key[8] != b'_' {
        return None;
    }
    Some(Revision {
        main: u64::from_be_bytes(key[..8].try_into().ok()?),
        sub: u64::from_be_bytes(key[9..17].try_into().ok()?),
        tombstone,
    })
}

/// An 8-byte big-endian counter (`meta/consistent_index`, `meta/term`).
pub fn parse_u64_be(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

/// The fields of `mvccpb.KeyValue` the report needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyValue<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub mod_revision: u64,
    pub lease: u64,
}

/// Decodes a `mvccpb.KeyValue` (proto3: 1 key, 2 create_revision, 3 mod_revision, 4 version,
/// 5 value, 6 lease). Unknown fields are skipped; a truncated or malformed message is `None`.
pub fn decode_key_value(mut buf: &[u8]) -> Option<KeyValue<'_>> {
    let mut kv = KeyValue::default();
    while !buf.is_empty() {
        let tag = varint(&mut buf)?;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                let v = varint(&mut buf)?;
                match field {
                    3 => kv.mod_revision = v,
                    6 => kv.lease = v,
                    _ => {}
                }
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let bytes = buf.get(..len)?;
                buf = &buf[len..];
                match field {
                    1 => kv.key = bytes,
                    5 => kv.value = bytes,
                    _ => {}
                }
            }
            1 => buf = buf.get(8..)?,
            5 => buf = buf.get(4..)?,
            _ => return None,
        }
    }
    Some(kv)
}

/// Reads one base-128 varint (at most 10 bytes) and advances `buf`.
fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    None
}

/// Where a key is counted in the per-resource table: `/registry/<resource>` for Kubernetes
/// objects (`/registry/<group>/<resource>` when the segment after `/registry/` is an API group,
/// i.e. contains a dot), `/<first segment>` for other absolute keys, `(other)` otherwise.
pub fn resource_of(key: &[u8]) -> String {
    let Some(rest) = key.strip_prefix(b"/") else {
        return "(other)".into();
    };
    let mut parts = rest.split(|b| *b == b'/');
    let first = parts.next().unwrap_or_default();
    let group = if first == b"registry" {
        match parts.next() {
            Some(seg) if seg.contains(&b'.') => match parts.next() {
                Some(res) => [b"registry/".as_slice(), seg, b"/", res].concat(),
                None => [b"registry/".as_slice(), seg].concat(),
            },
            Some(seg) => [b"registry/".as_slice(), seg].concat(),
            None => b"registry".to_vec(),
        }
    } else {
        first.to_vec()
    };
    format!("/{}", printable(&group))
}

/// Text safe to print from untrusted bytes: control and non-ASCII bytes escaped, at most 128
/// bytes of input shown.
pub fn printable(bytes: &[u8]) -> String {
    const MAX: usize = 128;
    let mut out: String = bytes
        .iter()
        .take(MAX)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if bytes.len() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev_key(main: u64, sub: u64, tomb: bool) -> Vec<u8> {
        let mut k = main.to_be_bytes().to_vec();
        k.push(b'_');
        k.extend_from_slice(&sub.to_be_bytes());
        if tomb {
            k.push(b't');
        }
        k
    }

    #[test]
    fn revisions_decode_and_reject_other_shapes() {
        let r = parse_revision(&rev_key(5801, 2, false)).unwrap();
        assert_eq!((r.main, r.sub, r.tombstone), (5801, 2, false));
        assert!(parse_revision(&rev_key(7, 0, true)).unwrap().tombstone);
        let mut bad = rev_key(1, 0, false);
        bad[8] = b'-';
        assert_eq!(parse_revision(&bad), None);
        assert_eq!(parse_revision(b"short"), None);
        let mut wrong_mark = rev_key(1, 0, false);
        wrong_mark.push(b'x');
        assert_eq!(parse_revision(&wrong_mark), None);
    }

    #[test]
    fn key_values_decode_like_protobuf() {
        // key "/registry/pods/a", create 3, mod 300 (varint 0xac 0x02), version 1, value "v1", lease 9
        let mut msg = vec![0x0a, 16];
        msg.extend_from_slice(b"/registry/pods/a");
        msg.extend_from_slice(&[
            0x10, 3, 0x18, 0xac, 0x02, 0x20, 1, 0x2a, 2, b'v', b'1', 0x30, 9,
        ]);
        let kv = decode_key_value(&msg).unwrap();
        assert_eq!(kv.key, b"/registry/pods/a");
        assert_eq!(kv.value, b"v1");
        assert_eq!((kv.mod_revision, kv.lease), (300, 9));
        // Truncated length, truncated varint, bad wire type.
        assert_eq!(decode_key_value(&[0x0a, 5, b'a']), None);
        assert_eq!(decode_key_value(&[0x18, 0x80]), None);
        assert_eq!(decode_key_value(&[0x0b]), None);
    }

    #[test]
    fn resources_group_by_kubernetes_path() {
        assert_eq!(resource_of(b"/registry/pods/ns/a"), "/registry/pods");
        assert_eq!(
            resource_of(b"/registry/k3s.cattle.io/etcdsnapshotfiles/x"),
            "/registry/k3s.cattle.io/etcdsnapshotfiles"
        );
        assert_eq!(resource_of(b"/bootstrap/abc"), "/bootstrap");
        assert_eq!(resource_of(b"plain"), "(other)");
        assert_eq!(resource_of(b"/a\x1b[2J/b"), "/a\\x1b[2J");
    }
}
