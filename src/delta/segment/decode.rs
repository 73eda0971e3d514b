//! Reading a segment back, strictly: the checksum first, then every field in order, each
//! length checked against the bytes that remain before it is taken (so a hostile length never
//! allocates), each rule the writer keeps checked again, and nothing allowed after the footer.

use sha2::{Digest, Sha256};

use super::encode::{Broken, check_group, check_header};
use super::{
    CHECKSUM_LEN, END_TAG, Event, FLAG_HASHKV, GROUP_TAG, KIND_DELETE, KIND_PUT, MAGIC,
    MAX_ANCHOR_LEN, MAX_EVENTS_PER_GROUP, MAX_KEY_LEN, MAX_VALUE_LEN, PutEvent, RevisionGroup,
    Segment, SegmentError, SegmentFooter, SegmentHash, SegmentHeader, VERSION,
};

/// The smallest event on disk: kind and key length, and a one-byte key.
const MIN_EVENT_LEN: usize = 1 + 4 + 1;

/// Decodes a whole segment.
pub fn decode(bytes: &[u8]) -> Result<Segment, SegmentError> {
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(SegmentError::BadMagic);
    }
    if bytes.len() < MAGIC.len() + 2 + CHECKSUM_LEN {
        return Err(SegmentError::Truncated {
            field: "header",
            offset: bytes.len(),
        });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != VERSION {
        return Err(SegmentError::Version { found: version });
    }
    let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    if Sha256::digest(body).as_slice() != sum {
        return Err(SegmentError::Checksum);
    }
    let mut cursor = Cursor { bytes: body, at: 0 };
    cursor.take(MAGIC.len() + 2, "header")?;
    let header = read_header(&mut cursor)?;
    let groups = read_groups(&mut cursor, &header)?;
    let footer = read_footer(&mut cursor, &groups)?;
    if cursor.at != body.len() {
        return Err(cursor.invalid(
            "trailer",
            format!("{} bytes after the footer", body.len() - cursor.at),
        ));
    }
    Ok(Segment {
        header,
        groups,
        footer,
    })
}

fn read_header(c: &mut Cursor<'_>) -> Result<SegmentHeader, SegmentError> {
    let cluster_id = c.u64("cluster id")?;
    let member_id = c.u64("member id")?;
    let anchor_revision = c.i64("anchor revision")?;
    let from_revision = c.i64("from revision")?;
    let opened_unix = c.i64("opened time")?;
    let start = c.at;
    let len = c.u16("anchor length")? as usize;
    if len == 0 || len > MAX_ANCHOR_LEN {
        return Err(c.invalid(
            "anchor length",
            format!("{len}, expected 1 to {MAX_ANCHOR_LEN}"),
        ));
    }
    let anchor = std::str::from_utf8(c.take(len, "anchor")?)
        .map_err(|_| c.invalid("anchor", "not UTF-8".into()))?
        .to_string();
    let header = SegmentHeader {
        cluster_id,
        member_id,
        anchor,
        anchor_revision,
        from_revision,
        opened_unix,
    };
    check_header(&header).map_err(|broken| invalid_at(start, broken))?;
    Ok(header)
}

fn read_groups(
    c: &mut Cursor<'_>,
    header: &SegmentHeader,
) -> Result<Vec<RevisionGroup>, SegmentError> {
    let mut groups = Vec::new();
    let mut previous = None;
    loop {
        let start = c.at;
        match c.u8("group tag")? {
            END_TAG => return Ok(groups),
            GROUP_TAG => {}
            other => {
                return Err(invalid_at(
                    start,
                    ("group tag", format!("byte {other:#04x}")),
                ));
            }
        }
        let revision = c.i64("group revision")?;
        let arrived_unix_ms = c.i64("arrival time")?;
        let count = c.u32("event count")?;
        // Each event takes at least MIN_EVENT_LEN bytes: a count the rest of the file cannot
        // hold is refused before anything is reserved for it.
        if count == 0 || count > MAX_EVENTS_PER_GROUP || count as usize > c.left() / MIN_EVENT_LEN {
            return Err(c.invalid("event count", format!("{count} events do not fit")));
        }
        // Reserve for a plausible group only; a huge (but fitting) count grows as events parse.
        let mut events = Vec::with_capacity((count as usize).min(1024));
        for _ in 0..count {
            events.push(read_event(c)?);
        }
        let group = RevisionGroup {
            revision,
            arrived_unix_ms,
            events,
        };
        check_group(header.from_revision, previous, &group)
            .map_err(|broken| invalid_at(start, broken))?;
        previous = Some(revision);
        groups.push(group);
    }
}

fn read_event(c: &mut Cursor<'_>) -> Result<Event, SegmentError> {
    let start = c.at;
    let kind = c.u8("event kind")?;
    let key = c.bytes("key", MAX_KEY_LEN)?.to_vec();
    match kind {
        KIND_DELETE => Ok(Event::Delete { key }),
        KIND_PUT => {
            let value = c.bytes("value", MAX_VALUE_LEN)?.to_vec();
            Ok(Event::Put(PutEvent {
                key,
                value,
                create_revision: c.i64("create revision")?,
                mod_revision: c.i64("mod revision")?,
                version: c.i64("version")?,
                lease: c.i64("lease")?,
            }))
        }
        other => Err(invalid_at(
            start,
            ("event kind", format!("byte {other:#04x}")),
        )),
    }
}

fn read_footer(
    c: &mut Cursor<'_>,
    groups: &[RevisionGroup],
) -> Result<SegmentFooter, SegmentError> {
    let start = c.at;
    let to_revision = c.i64("to revision")?;
    let group_count = c.u32("group count")?;
    let event_count = c.u64("event count")?;
    let last_event_unix_ms = c.i64("last event time")?;
    let closed_unix_ms = c.i64("closed time")?;
    let flags = c.u8("flags")?;
    let hash = c.u32("keyspace hash")?;
    let compact_revision = c.i64("compact revision")?;
    let Some(last) = groups.last() else {
        return Err(invalid_at(
            start,
            ("groups", "none before the footer".into()),
        ));
    };
    let events: u64 = groups.iter().map(|g| g.events.len() as u64).sum();
    let checks: [(bool, Broken); 5] = [
        (
            to_revision == last.revision,
            (
                "to revision",
                format!("{to_revision}, the last group is {}", last.revision),
            ),
        ),
        (
            group_count as usize == groups.len(),
            (
                "group count",
                format!("{group_count}, found {}", groups.len()),
            ),
        ),
        (
            event_count == events,
            ("event count", format!("{event_count}, found {events}")),
        ),
        (
            flags & !FLAG_HASHKV == 0,
            ("flags", format!("unknown bits in {flags:#04x}")),
        ),
        (
            flags & FLAG_HASHKV != 0 || (hash == 0 && compact_revision == 0),
            ("keyspace hash", "set while the flag says absent".into()),
        ),
    ];
    if let Some((_, broken)) = checks.into_iter().find(|(ok, _)| !ok) {
        return Err(invalid_at(start, broken));
    }
    Ok(SegmentFooter {
        to_revision,
        group_count,
        event_count,
        last_event_unix_ms,
        closed_unix_ms,
        hashkv: (flags & FLAG_HASHKV != 0).then_some(SegmentHash {
            hash,
            compact_revision,
        }),
    })
}

fn invalid_at(offset: usize, (field, reason): Broken) -> SegmentError {
    SegmentError::Invalid {
        field,
        offset,
        reason,
    }
}

/// Reads little-endian fields from a slice, never past its end.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], SegmentError> {
        if n > self.left() {
            return Err(SegmentError::Truncated {
                field,
                offset: self.at,
            });
        }
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SegmentError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, SegmentError> {
        Ok(self.array::<1>(field)?[0])
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, SegmentError> {
        self.array(field).map(u16::from_le_bytes)
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, SegmentError> {
        self.array(field).map(u32::from_le_bytes)
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, SegmentError> {
        self.array(field).map(u64::from_le_bytes)
    }
    fn i64(&mut self, field: &'static str) -> Result<i64, SegmentError> {
        self.array(field).map(i64::from_le_bytes)
    }

    /// A u32 length followed by that many bytes, the length capped at `max`.
    fn bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], SegmentError> {
        let len = self.u32(field)? as usize;
        if len > max {
            return Err(self.invalid(field, format!("length {len} is over {max}")));
        }
        self.take(len, field)
    }

    fn invalid(&self, field: &'static str, reason: String) -> SegmentError {
        invalid_at(self.at, (field, reason))
    }
}
