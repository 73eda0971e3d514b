use std::path::PathBuf;

use super::*;
use crate::delta::files::publish_test_segment;
use crate::delta::segment::{Event, PutEvent, decode};
use crate::delta::stored::{StoredError, read_plaintext};

const ANCHOR: &str = "etcd-snapshot-n1-1700000000";

use crate::crypt::keys::generated_identities as identities;

/// Publishes segment `[from, to]` of the test chain (a 3000-byte put of its own key per
/// revision), stored as asked.
fn publish(chain: &ChainDir, from: i64, to: i64, compress: bool, to_keys: Option<&Recipients>) {
    let put = |revision: i64| {
        Event::Put(PutEvent {
            key: format!("/k{revision}").into_bytes(),
            value: vec![b'v'; 3000],
            create_revision: revision,
            mod_revision: revision,
            version: 1,
            lease: 0,
        })
    };
    publish_test_segment(chain, ANCHOR, (from, to), (compress, to_keys), put);
}

/// Every file of a dir with its bytes, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    all.sort();
    all
}

/// Reads every published segment with `ids`, as the replay does: the revisions of each.
fn read_all(chain: &ChainDir, ids: &Identities) -> Result<Vec<(i64, i64)>, StoredError> {
    let mut ranges = Vec::new();
    for file in chain.list().unwrap() {
        let bytes = read_plaintext(&file.path, file.form, Some(ids), 1 << 30)?;
        let segment = decode(&bytes).unwrap();
        ranges.push((segment.header.from_revision, segment.footer.to_revision));
    }
    Ok(ranges)
}

fn fp(n: u8) -> Fingerprint {
    Fingerprint::parse(&format!("age1:{n:016x}")).unwrap()
}

#[test]
fn plan_reencrypts_only_encrypted_segments_not_yet_on_the_current_keys() {
    let (a, b) = (vec![fp(1)], vec![fp(2), fp(1)]);
    let sealed = SegmentForm {
        compressed: true,
        encrypted: true,
    };
    assert_eq!(
        plan_segment(sealed, &a, Some(&a)),
        Action::Skip(ALREADY_CURRENT)
    );
    assert_eq!(plan_segment(sealed, &a, Some(&b)), Action::Reencrypt);
    assert_eq!(
        plan_segment(sealed, &[fp(1), fp(2)], Some(&b)),
        Action::Skip(ALREADY_CURRENT)
    );
    assert_eq!(plan_segment(sealed, &[], Some(&a)), Action::Reencrypt);
    assert_eq!(
        plan_segment(SegmentForm::PLAIN, &[], Some(&a)),
        Action::Skip(LEFT_PLAIN)
    );
    assert!(matches!(plan_segment(sealed, &a, None), Action::Skip(_)));
}

#[test]
fn rekeyed_segments_open_only_with_the_new_key_and_a_rerun_is_a_no_op() {
    let root = tempfile::tempdir().unwrap();
    let snapshots = root.path().join("snapshots");
    let chain = ChainDir::new(&snapshots, ANCHOR).unwrap();
    let (old, new) = (identities(), identities());
    publish(&chain, 11, 12, false, None);
    publish(&chain, 13, 20, true, Some(&old.recipients()));
    publish(&chain, 21, 30, false, Some(&old.recipients()));
    // The capture's open segment and an interrupted rekey's copy.
    std::fs::write(chain.path().join(".31.part"), b"open").unwrap();
    let stale: PathBuf = chain.path().join(".x.seg.age.rekey.part");
    std::fs::write(&stale, b"stale").unwrap();
    let before = files(chain.path());
    let to = new.recipients();

    let dry = rekey_local_segments(&snapshots, Some(&to), Some(&old), true).unwrap();
    let actions: Vec<&Action> = dry.iter().map(|r| &r.copy.action).collect();
    assert_eq!(
        actions,
        [
            &Action::Skip(LEFT_PLAIN),
            &Action::Reencrypt,
            &Action::Reencrypt
        ]
    );
    assert_eq!(files(chain.path()), before, "a dry run changes nothing");

    let done = rekey_local_segments(&snapshots, Some(&to), Some(&old), false).unwrap();
    assert!(done.iter().all(|r| r.copy.error.is_none()), "{done:?}");
    assert!(done.iter().all(|r| r.anchor == ANCHOR));
    assert!(!stale.exists(), "the interrupted rekey's copy is removed");
    assert_eq!(
        std::fs::read(chain.path().join(".31.part")).unwrap(),
        b"open"
    );
    let names: Vec<String> = chain
        .list()
        .unwrap()
        .iter()
        .map(|f| crate::delta::upload::file_name(f).to_string())
        .collect();
    let before_names: Vec<&String> = before
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(
        names.iter().collect::<Vec<_>>(),
        before_names,
        "names and forms are kept"
    );
    for file in chain.list().unwrap().iter().filter(|f| f.form.encrypted) {
        assert_eq!(header_fingerprints(&file.path).unwrap(), to.fingerprints());
    }
    assert_eq!(
        read_all(&chain, &new).unwrap(),
        [(11, 12), (13, 20), (21, 30)]
    );
    let refused = read_all(&chain, &old).unwrap_err();
    assert!(matches!(refused, StoredError::Keys { .. }), "{refused:?}");

    let after = files(chain.path());
    let again = rekey_local_segments(&snapshots, Some(&to), Some(&old), false).unwrap();
    let skipped = again
        .iter()
        .filter(|r| r.copy.action == Action::Skip(ALREADY_CURRENT));
    assert_eq!(skipped.count(), 2, "{again:?}");
    assert_eq!(files(chain.path()), after, "a second run is a no-op");
}

#[test]
fn a_segment_no_given_identity_opens_is_reported_and_kept() {
    let root = tempfile::tempdir().unwrap();
    let snapshots = root.path().join("snapshots");
    let chain = ChainDir::new(&snapshots, ANCHOR).unwrap();
    let (old, new, stranger) = (identities(), identities(), identities());
    publish(&chain, 11, 12, true, Some(&old.recipients()));
    let before = files(chain.path());
    let to = new.recipients();
    let reports = rekey_local_segments(&snapshots, Some(&to), Some(&stranger), false).unwrap();
    let error = reports[0].copy.error.clone().unwrap();
    assert!(
        error.contains(old.recipients().fingerprints()[0].as_str()),
        "{error}"
    );
    assert_eq!(
        files(chain.path()),
        before,
        "the original is untouched, no temp left"
    );
    assert_eq!(read_all(&chain, &old).unwrap(), [(11, 12)]);
}
