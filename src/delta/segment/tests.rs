use super::*;

pub(crate) fn header(from: i64) -> SegmentHeader {
    SegmentHeader {
        cluster_id: 0x1234_5678_9abc_def0,
        member_id: 42,
        anchor: "etcd-snapshot-n1-1700000000.zip".into(),
        anchor_revision: from - 1,
        from_revision: from,
        opened_unix: 1_700_000_010,
    }
}

pub(crate) fn put(key: &str, value: &str, revision: i64, create: i64, version: i64) -> Event {
    Event::Put(PutEvent {
        key: key.into(),
        value: value.into(),
        create_revision: create,
        mod_revision: revision,
        version,
        lease: 0,
    })
}

/// A txn of two puts, a lease-bound put, and a delete, over four revisions.
pub(crate) fn sample_groups() -> Vec<RevisionGroup> {
    let mut leased = put("/lease/a", "x", 12, 12, 1);
    if let Event::Put(p) = &mut leased {
        p.lease = 0x694d_8a2b_0c4f_1e07;
    }
    vec![
        RevisionGroup {
            revision: 10,
            arrived_unix_ms: 1_700_000_011_010,
            events: vec![put("/a", "1", 10, 10, 1)],
        },
        RevisionGroup {
            revision: 11,
            arrived_unix_ms: 1_700_000_011_011,
            events: vec![put("/a", "2", 11, 10, 2), put("/b", "", 11, 11, 1)],
        },
        RevisionGroup {
            revision: 12,
            arrived_unix_ms: 1_700_000_011_012,
            events: vec![leased],
        },
        RevisionGroup {
            revision: 14,
            arrived_unix_ms: 1_700_000_011_014,
            events: vec![Event::Delete { key: "/a".into() }],
        },
    ]
}

pub(crate) fn encode(header: &SegmentHeader, groups: &[RevisionGroup]) -> Vec<u8> {
    let mut writer = SegmentWriter::start(Vec::new(), header).unwrap();
    for group in groups {
        writer.push(group).unwrap();
    }
    let hash = SegmentHash {
        hash: 0xdead_beef,
        compact_revision: -1,
    };
    writer
        .finish(1_700_000_011_250, 1_700_000_012_000, Some(hash))
        .unwrap()
        .0
}

#[test]
fn a_segment_round_trips_with_every_field() {
    let groups = sample_groups();
    let bytes = encode(&header(10), &groups);
    let segment = decode(&bytes).unwrap();
    assert_eq!(segment.header, header(10));
    assert_eq!(segment.groups, groups);
    assert_eq!(segment.footer.to_revision, 14);
    assert_eq!(segment.footer.group_count, 4);
    assert_eq!(segment.footer.event_count, 5);
    assert_eq!(segment.footer.last_event_unix_ms, 1_700_000_011_250);
    assert_eq!(
        segment.footer.hashkv,
        Some(SegmentHash {
            hash: 0xdead_beef,
            compact_revision: -1
        })
    );
}

#[test]
fn without_a_hash_the_flag_is_clear_and_reads_back_as_none() {
    let mut writer = SegmentWriter::start(Vec::new(), &header(10)).unwrap();
    writer.push(&sample_groups()[0]).unwrap();
    let (bytes, footer) = writer.finish(1, 2, None).unwrap();
    assert_eq!(footer.hashkv, None);
    assert_eq!(decode(&bytes).unwrap().footer, footer);
}

#[test]
fn the_layout_is_the_documented_one() {
    let bytes = encode(&header(10), &sample_groups()[..1]);
    assert_eq!(&bytes[..8], b"ETCDDLTA");
    assert_eq!(&bytes[8..10], &2u16.to_le_bytes());
    assert_eq!(&bytes[10..18], &0x1234_5678_9abc_def0u64.to_le_bytes());
    assert_eq!(&bytes[26..34], &9i64.to_le_bytes(), "anchor revision");
    assert_eq!(&bytes[34..42], &10i64.to_le_bytes(), "from revision");
    let anchor_len = u16::from_le_bytes([bytes[50], bytes[51]]) as usize;
    let group = 52 + anchor_len;
    assert_eq!(bytes[group], b'G');
    assert_eq!(
        &bytes[group + 1..group + 9],
        &10i64.to_le_bytes(),
        "revision"
    );
    assert_eq!(
        &bytes[group + 9..group + 17],
        &1_700_000_011_010i64.to_le_bytes(),
        "arrival time"
    );
    // Header 52 + anchor, group 21, event 1+4+2 key + 4+1 value + 32, end 1, footer 49, sum 32.
    assert_eq!(bytes.len(), group + 21 + 44 + 1 + 49 + 32);
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    use sha2::Digest;
    assert_eq!(sha2::Sha256::digest(body).as_slice(), sum);
}

#[test]
fn any_changed_byte_fails_the_checksum_or_the_magic() {
    let bytes = encode(&header(10), &sample_groups());
    for at in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0x01;
        let err = decode(&bad).unwrap_err();
        assert!(
            matches!(
                err,
                SegmentError::Checksum | SegmentError::BadMagic | SegmentError::Version { .. }
            ),
            "byte {at}: {err}"
        );
    }
    let err = decode(&bytes[..bytes.len() - 1]).unwrap_err();
    assert!(matches!(err, SegmentError::Checksum), "{err}");
}

#[test]
fn the_writer_refuses_what_the_reader_would_refuse() {
    let start = |h: &SegmentHeader| SegmentWriter::start(Vec::new(), h).err();
    let mut bad = header(10);
    bad.anchor = "../etc".into();
    assert!(matches!(
        start(&bad),
        Some(SegmentError::Refused {
            field: "anchor",
            ..
        })
    ));
    bad = header(10);
    bad.from_revision = bad.anchor_revision;
    assert!(start(&bad).is_some());

    let mut writer = SegmentWriter::start(Vec::new(), &header(10)).unwrap();
    let early = RevisionGroup {
        revision: 9,
        arrived_unix_ms: 1_700_000_011_009,
        events: vec![put("/a", "1", 9, 9, 1)],
    };
    assert!(writer.push(&early).is_err(), "before from");
    writer.push(&sample_groups()[1]).unwrap();
    let refused = |w: &mut SegmentWriter<Vec<u8>>, group: RevisionGroup| match w.push(&group) {
        Err(SegmentError::Refused { field, .. }) => field,
        other => panic!("{group:?} was not refused: {other:?}"),
    };
    let g = |revision, events| RevisionGroup {
        revision,
        arrived_unix_ms: 0,
        events,
    };
    assert_eq!(
        refused(&mut writer, g(11, vec![put("/c", "", 11, 11, 1)])),
        "group revision"
    );
    assert_eq!(refused(&mut writer, g(12, vec![])), "event count");
    assert_eq!(
        refused(&mut writer, g(12, vec![put("/c", "", 13, 12, 1)])),
        "mod revision"
    );
    assert_eq!(
        refused(&mut writer, g(12, vec![put("/c", "", 12, 13, 1)])),
        "create revision"
    );
    assert_eq!(
        refused(&mut writer, g(12, vec![put("/c", "", 12, 12, 0)])),
        "version"
    );
    assert_eq!(
        refused(&mut writer, g(12, vec![Event::Delete { key: vec![] }])),
        "key length"
    );
    // Nothing refused was written: the segment still reads back with its one group.
    let (bytes, _) = writer.finish(0, 0, None).unwrap();
    assert_eq!(
        decode(&bytes).unwrap().groups,
        vec![sample_groups()[1].clone()]
    );
    let empty = SegmentWriter::start(Vec::new(), &header(10)).unwrap();
    assert!(empty.finish(0, 0, None).is_err(), "a segment needs a group");
}

#[test]
fn a_hostile_length_is_refused_without_allocating_it() {
    // A valid checksum over a header that claims a 4 GiB key: refused by length, not by memory.
    use sha2::Digest;
    let mut writer = SegmentWriter::start(Vec::new(), &header(10)).unwrap();
    writer.push(&sample_groups()[0]).unwrap();
    let header_and_group = writer.bytes_written() as usize;
    let (full, _) = writer.finish(0, 0, None).unwrap();
    // The header and the group's head (its one event is 44 bytes), then a put whose key
    // length is u32::MAX, and enough bytes after it that the event count still fits.
    let mut body = full[..header_and_group - 44].to_vec();
    body.push(KIND_PUT);
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    body.extend_from_slice(&[0u8; 16]);
    let sum = sha2::Sha256::digest(&body);
    body.extend_from_slice(&sum);
    let err = decode(&body).unwrap_err();
    assert!(
        matches!(err, SegmentError::Invalid { field: "key", .. }),
        "{err}"
    );
}

#[test]
fn a_version_1_segment_is_refused_by_its_version() {
    let mut bytes = encode(&header(10), &sample_groups());
    bytes[8..10].copy_from_slice(&1u16.to_le_bytes());
    let err = decode(&bytes).unwrap_err();
    assert!(matches!(err, SegmentError::Version { found: 1 }), "{err}");
    assert!(err.to_string().contains("cannot be replayed"), "{err}");
}
