//! Writing a segment: the header when it opens, one group per revision as events arrive, the
//! footer and the SHA-256 trailer when it closes. The writer refuses anything the decoder would
//! refuse, so a segment that was written can always be read back.

use std::io::Write;

use sha2::{Digest, Sha256};

use super::{
    END_TAG, Event, FLAG_HASHKV, GROUP_TAG, KIND_DELETE, KIND_PUT, MAGIC, MAX_ANCHOR_LEN,
    MAX_EVENTS_PER_GROUP, MAX_KEY_LEN, MAX_VALUE_LEN, PutEvent, RevisionGroup, SegmentError,
    SegmentFooter, SegmentHash, SegmentHeader, VERSION,
};

/// Streams one segment into `out`, hashing every byte it writes.
pub struct SegmentWriter<W: Write> {
    out: W,
    hasher: Sha256,
    written: u64,
    from_revision: i64,
    last_revision: Option<i64>,
    group_count: u32,
    event_count: u64,
}

/// A rule of the format broken by a value: (field, why).
pub(super) type Broken = (&'static str, String);

impl<W: Write> SegmentWriter<W> {
    /// Writes the header. Fails when the header breaks a rule of the format.
    pub fn start(out: W, header: &SegmentHeader) -> Result<Self, SegmentError> {
        check_header(header).map_err(refused)?;
        let mut writer = Self {
            out,
            hasher: Sha256::new(),
            written: 0,
            from_revision: header.from_revision,
            last_revision: None,
            group_count: 0,
            event_count: 0,
        };
        let mut bytes = Vec::with_capacity(64 + header.anchor.len());
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&header.cluster_id.to_le_bytes());
        bytes.extend_from_slice(&header.member_id.to_le_bytes());
        bytes.extend_from_slice(&header.anchor_revision.to_le_bytes());
        bytes.extend_from_slice(&header.from_revision.to_le_bytes());
        bytes.extend_from_slice(&header.opened_unix.to_le_bytes());
        // `check_header` capped the anchor at 255 bytes.
        bytes.extend_from_slice(&(header.anchor.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.anchor.as_bytes());
        writer.emit(&bytes)?;
        Ok(writer)
    }

    /// Appends one revision's events. Revisions must increase from the header's `from`.
    pub fn push(&mut self, group: &RevisionGroup) -> Result<(), SegmentError> {
        check_group(self.from_revision, self.last_revision, group).map_err(refused)?;
        if self.group_count == u32::MAX {
            return Err(refused(("group count", "more than 2^32-1 groups".into())));
        }
        let mut head = Vec::with_capacity(21);
        head.push(GROUP_TAG);
        head.extend_from_slice(&group.revision.to_le_bytes());
        head.extend_from_slice(&group.arrived_unix_ms.to_le_bytes());
        head.extend_from_slice(&(group.events.len() as u32).to_le_bytes());
        self.emit(&head)?;
        for event in &group.events {
            self.emit_event(event)?;
        }
        self.last_revision = Some(group.revision);
        self.group_count += 1;
        self.event_count += group.events.len() as u64;
        Ok(())
    }

    fn emit_event(&mut self, event: &Event) -> Result<(), SegmentError> {
        let kind = match event {
            Event::Put(_) => KIND_PUT,
            Event::Delete { .. } => KIND_DELETE,
        };
        let key = event.key();
        self.emit(&[kind])?;
        self.emit(&(key.len() as u32).to_le_bytes())?;
        self.emit(key)?;
        if let Event::Put(put) = event {
            self.emit(&(put.value.len() as u32).to_le_bytes())?;
            self.emit(&put.value)?;
            let mut tail = [0u8; 32];
            for (slot, n) in tail.chunks_mut(8).zip([
                put.create_revision,
                put.mod_revision,
                put.version,
                put.lease,
            ]) {
                slot.copy_from_slice(&n.to_le_bytes());
            }
            self.emit(&tail)?;
        }
        Ok(())
    }

    /// Bytes written so far (the segment's size without the footer and trailer).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// The last revision pushed, if any.
    pub fn last_revision(&self) -> Option<i64> {
        self.last_revision
    }

    /// Writes the end tag, the footer and the checksum; returns the output and the footer.
    /// A segment needs at least one group.
    pub fn finish(
        mut self,
        last_event_unix_ms: i64,
        closed_unix_ms: i64,
        hashkv: Option<SegmentHash>,
    ) -> Result<(W, SegmentFooter), SegmentError> {
        let Some(to_revision) = self.last_revision else {
            return Err(refused(("groups", "a segment needs at least one".into())));
        };
        let footer = SegmentFooter {
            to_revision,
            group_count: self.group_count,
            event_count: self.event_count,
            last_event_unix_ms,
            closed_unix_ms,
            hashkv,
        };
        let mut bytes = vec![END_TAG];
        bytes.extend_from_slice(&footer.to_revision.to_le_bytes());
        bytes.extend_from_slice(&footer.group_count.to_le_bytes());
        bytes.extend_from_slice(&footer.event_count.to_le_bytes());
        bytes.extend_from_slice(&footer.last_event_unix_ms.to_le_bytes());
        bytes.extend_from_slice(&footer.closed_unix_ms.to_le_bytes());
        let (flags, hash) = match hashkv {
            Some(h) => (FLAG_HASHKV, h),
            None => (0, SegmentHash::default()),
        };
        bytes.push(flags);
        bytes.extend_from_slice(&hash.hash.to_le_bytes());
        bytes.extend_from_slice(&hash.compact_revision.to_le_bytes());
        self.emit(&bytes)?;
        let digest = std::mem::take(&mut self.hasher).finalize();
        self.out.write_all(&digest).map_err(SegmentError::Write)?;
        self.out.flush().map_err(SegmentError::Write)?;
        Ok((self.out, footer))
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<(), SegmentError> {
        self.hasher.update(bytes);
        self.out.write_all(bytes).map_err(SegmentError::Write)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

fn refused((field, reason): Broken) -> SegmentError {
    SegmentError::Refused { field, reason }
}

/// The header's rules: a plain file name as anchor, and `from` after the anchor's revision.
pub(super) fn check_header(header: &SegmentHeader) -> Result<(), Broken> {
    check_anchor(&header.anchor).map_err(|reason| ("anchor", reason))?;
    if header.anchor_revision < 0 {
        return Err(("anchor revision", "negative".into()));
    }
    if header.from_revision <= header.anchor_revision {
        return Err((
            "from revision",
            format!(
                "{} is not after the anchor's revision {}",
                header.from_revision, header.anchor_revision
            ),
        ));
    }
    Ok(())
}

/// An anchor is a snapshot file name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`, no
/// leading dot (it names a directory beside the snapshots).
pub fn check_anchor(anchor: &str) -> Result<(), String> {
    if anchor.is_empty() || anchor.len() > MAX_ANCHOR_LEN {
        return Err(format!(
            "{} bytes, expected 1 to {MAX_ANCHOR_LEN}",
            anchor.len()
        ));
    }
    if anchor.starts_with('.') || anchor.contains(['/', '\0']) {
        return Err("a file name without '/' or NUL that does not start with '.'".into());
    }
    Ok(())
}

/// A group's rules: a revision after the previous one (and not before `from`), 1 to
/// `MAX_EVENTS_PER_GROUP` events, each valid at that revision.
pub(super) fn check_group(
    from: i64,
    previous: Option<i64>,
    group: &RevisionGroup,
) -> Result<(), Broken> {
    let floor = match previous {
        None => Some(from),
        Some(p) => p.checked_add(1),
    };
    if floor.is_none_or(|floor| group.revision < floor) {
        return Err((
            "group revision",
            format!(
                "{} does not follow {}",
                group.revision,
                previous.map_or("the segment's start".to_string(), |p| format!(
                    "revision {p}"
                ))
            ),
        ));
    }
    let count = group.events.len();
    if count == 0 || count > MAX_EVENTS_PER_GROUP as usize {
        return Err((
            "event count",
            format!("{count}, expected 1 to {MAX_EVENTS_PER_GROUP}"),
        ));
    }
    for event in &group.events {
        check_key(event.key())?;
        if let Event::Put(put) = event {
            check_put(group.revision, put)?;
        }
    }
    Ok(())
}

pub(super) fn check_key(key: &[u8]) -> Result<(), Broken> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err((
            "key length",
            format!("{}, expected 1 to {MAX_KEY_LEN}", key.len()),
        ));
    }
    Ok(())
}

/// A put's numbers as etcd keeps them: modified at the group's revision, created at or before
/// it, a version of at least 1, a lease id that is not negative.
pub(super) fn check_put(revision: i64, put: &PutEvent) -> Result<(), Broken> {
    if put.value.len() > MAX_VALUE_LEN {
        return Err((
            "value length",
            format!("{}, expected at most {MAX_VALUE_LEN}", put.value.len()),
        ));
    }
    if put.mod_revision != revision {
        return Err((
            "mod revision",
            format!("{} differs from the group's {revision}", put.mod_revision),
        ));
    }
    if put.create_revision < 1 || put.create_revision > revision {
        return Err((
            "create revision",
            format!("{}, expected 1 to {revision}", put.create_revision),
        ));
    }
    if put.version < 1 {
        return Err(("version", format!("{}, expected at least 1", put.version)));
    }
    if put.lease < 0 {
        return Err(("lease", format!("{} is negative", put.lease)));
    }
    Ok(())
}
