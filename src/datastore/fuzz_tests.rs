//! Fuzz target `sqlite_images`: a SQLite snapshot as `inspect`, a restore and the backfill read
//! it (any file handed to them), and the `datastore-endpoint` value.
//!
//! Properties: the header parser and the streaming image check never panic on any bytes, and
//! accept exactly what the oracle (magic, page size, whole pages, the recorded count when
//! valid) accepts; no mutation of a real kine image (bit flips, overwritten counts, truncation,
//! insertion) makes the read-only checks or the per-resource read panic, and nothing is
//! created beside the image; `parse_datastore_endpoint` never panics and returns a path only
//! for `sqlite://` with an absolute path, the path without the query.

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use crate::config::datastore::parse_datastore_endpoint;
use crate::fuzz_support::{Fuzz, hostile_text, mutated, mutated_text};
use crate::snapshot::image::{SQLITE_HEADER_LEN, SQLITE_MAGIC, parse_sqlite_header};

/// A small real kine image: the schema and a few keys, written by SQLite itself.
fn kine_image() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "page_size", 512).unwrap();
    conn.execute_batch(
        "CREATE TABLE kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name INTEGER, created INTEGER, \
         deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, \
         value BLOB, old_value BLOB); CREATE INDEX kine_name_index ON kine (name);",
    )
    .unwrap();
    for i in 0..40 {
        conn.execute(
            "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value) \
             VALUES (?1, 1, ?2, 0, 0, 0, ?3)",
            rusqlite::params![format!("/registry/pods/ns/p{}", i % 13), i64::from(i % 5 == 0), vec![i as u8; 40]],
        )
        .unwrap();
    }
    drop(conn);
    std::fs::read(&path).unwrap()
}

/// The oracle for the streaming check: what a well-formed image of these bytes looks like.
fn oracle_accepts(bytes: &[u8]) -> bool {
    let Ok(header) = parse_sqlite_header(bytes) else {
        return false;
    };
    let page = u64::from(header.page_size);
    let total = bytes.len() as u64;
    total > 0
        && total.is_multiple_of(page)
        && header
            .page_count
            .is_none_or(|count| u64::from(count) * page == total)
}

fn image_check_agrees(bytes: &[u8]) -> TestCaseResult {
    let mut check =
        crate::snapshot::image::ImageCheck::expecting(crate::snapshot::image::ImageKind::Sqlite);
    for chunk in bytes.chunks(777) {
        check.update(chunk);
    }
    prop_assert_eq!(check.verify().is_ok(), oracle_accepts(bytes));
    Ok(())
}

fn inspects_without_panic(
    (bytes, _): (Vec<u8>, Vec<crate::fuzz_support::Mutation>),
) -> TestCaseResult {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.db");
    std::fs::write(&path, &bytes).unwrap();
    let checks = vec![crate::inspect::report::Check::new("image", true, "")];
    let report = crate::inspect::sqlite::report(
        &path,
        "fuzz".into(),
        bytes.len() as u64,
        None,
        checks,
        None,
    );
    let _ = report.healthy;
    let beside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    prop_assert_eq!(beside.len(), 1, "a file was created beside the image");
    Ok(())
}

fn endpoint_parses_strictly(text: String) -> TestCaseResult {
    if let Ok(path) = parse_datastore_endpoint(&text) {
        let lower = text.trim().to_ascii_lowercase();
        prop_assert!(lower.starts_with("sqlite://"));
        prop_assert!(path.is_absolute());
        prop_assert!(!path.to_string_lossy().contains('?'));
    }
    Ok(())
}

#[test]
fn fuzz_sqlite_images() {
    let sample = kine_image();
    assert!(oracle_accepts(&sample) && sample.starts_with(SQLITE_MAGIC));
    let mut fuzz = Fuzz::new("sqlite_images", 4);
    fuzz.check(
        "header",
        256,
        prop::collection::vec(any::<u8>(), 0..SQLITE_HEADER_LEN * 2),
        |mut bytes| {
            if bytes.len() >= 16 {
                bytes[..16].copy_from_slice(SQLITE_MAGIC);
            }
            let _ = parse_sqlite_header(&bytes);
            image_check_agrees(&bytes)
        },
    );
    fuzz.check("image_check", 128, mutated(sample.clone()), |(bytes, _)| {
        image_check_agrees(&bytes)
    });
    fuzz.check("inspect", 48, mutated(sample), inspects_without_panic);
    fuzz.check(
        "endpoint",
        256,
        prop_oneof![
            hostile_text(80),
            mutated_text("sqlite:///var/lib/rancher/k3s/server/db/state.db?_journal=WAL"),
            mutated_text("mysql://k3s:secret@tcp(db:3306)/k3s"),
        ],
        endpoint_parses_strictly,
    );
    fuzz.finish();
}
