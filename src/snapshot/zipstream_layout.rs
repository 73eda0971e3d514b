//! The byte layout of the zip records around the one entry: pure functions from the entry and
//! its final sizes to bytes. No I/O and no compression here.
//!
//! Zip64 is always used (version 4.5), so any size fits without knowing it up front: the local
//! header carries a zip64 extra with zero sizes, which tells readers that the data descriptor
//! holds 8-byte sizes; the central header and the end records point to their zip64 twins.

use std::io;

use super::ZipEntry;

const LOCAL_HEADER_SIG: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const CENTRAL_HEADER_SIG: u32 = 0x0201_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;

/// Zip 4.5: the first version with zip64.
const VERSION_NEEDED: u16 = 45;
/// Made on Unix (3), so readers take the mode from the external attributes.
const VERSION_MADE_BY: u16 = (3 << 8) | VERSION_NEEDED;
/// Bit 3: CRC and sizes follow the data, because they are unknown when the header is written.
const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
/// Bit 11: the name is UTF-8 (only set when it is not plain ASCII).
const FLAG_UTF8: u16 = 1 << 11;
const METHOD_DEFLATE: u16 = 8;
const ZIP64_EXTRA: u16 = 0x0001;
const TIMESTAMP_EXTRA: u16 = 0x5455;
/// Regular file type bits of a Unix mode.
const S_IFREG: u32 = 0o100_000;
const U16_MARK: u16 = 0xFFFF;
const U32_MARK: u32 = 0xFFFF_FFFF;

/// The fixed facts of the entry, encoded once.
pub(super) struct EntryLayout {
    name: Vec<u8>,
    flags: u16,
    dos_time: u16,
    dos_date: u16,
    mtime: u32,
    external_attributes: u32,
}

impl EntryLayout {
    /// Fails only for a name longer than a zip header can hold (64 KiB).
    pub(super) fn new(entry: &ZipEntry) -> io::Result<Self> {
        if entry.name.len() > usize::from(u16::MAX) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "failed to start zip entry: name longer than 65535 bytes",
            ));
        }
        let (dos_date, dos_time) = dos_date_time(entry.unix_mtime);
        let utf8 = if entry.name.is_ascii() { 0 } else { FLAG_UTF8 };
        Ok(Self {
            name: entry.name.as_bytes().to_vec(),
            flags: FLAG_DATA_DESCRIPTOR | utf8,
            dos_time,
            dos_date,
            // The extended timestamp is 32-bit; clamp rather than drop it.
            mtime: u32::try_from(entry.unix_mtime.max(0)).unwrap_or(u32::MAX),
            external_attributes: (S_IFREG | (entry.mode & 0o7777)) << 16,
        })
    }

    /// The local file header, written at offset 0 before the data.
    pub(super) fn local_header(&self) -> Vec<u8> {
        let mut extra = Vec::with_capacity(29);
        put16(&mut extra, ZIP64_EXTRA);
        put16(&mut extra, 16);
        put64(&mut extra, 0);
        put64(&mut extra, 0);
        self.put_timestamp(&mut extra);
        let mut b = Vec::with_capacity(30 + self.name.len() + extra.len());
        put32(&mut b, LOCAL_HEADER_SIG);
        put16(&mut b, VERSION_NEEDED);
        self.put_common(&mut b);
        put32(&mut b, 0); // crc-32: in the data descriptor
        put32(&mut b, 0); // compressed size
        put32(&mut b, 0); // uncompressed size
        self.put_names(&mut b, &extra);
        b
    }

    /// Everything after the Deflate data, which ended at `data_end`: the data descriptor, the
    /// central directory header and the zip64 and classic end records.
    pub(super) fn trailer(
        &self,
        crc32: u32,
        compressed: u64,
        uncompressed: u64,
        data_end: u64,
    ) -> Vec<u8> {
        let mut b = Vec::with_capacity(256 + self.name.len());
        put32(&mut b, DATA_DESCRIPTOR_SIG);
        put32(&mut b, crc32);
        put64(&mut b, compressed);
        put64(&mut b, uncompressed);

        let central_start = data_end + b.len() as u64;
        let mut extra = Vec::with_capacity(37);
        put16(&mut extra, ZIP64_EXTRA);
        put16(&mut extra, 24);
        put64(&mut extra, uncompressed);
        put64(&mut extra, compressed);
        put64(&mut extra, 0); // the local header's offset
        self.put_timestamp(&mut extra);
        let header_start = b.len();
        put32(&mut b, CENTRAL_HEADER_SIG);
        put16(&mut b, VERSION_MADE_BY);
        put16(&mut b, VERSION_NEEDED);
        self.put_common(&mut b);
        put32(&mut b, crc32);
        put32(&mut b, U32_MARK); // compressed size: in the zip64 extra
        put32(&mut b, U32_MARK); // uncompressed size: in the zip64 extra
        put16(&mut b, len16(self.name.len()));
        put16(&mut b, len16(extra.len()));
        put16(&mut b, 0); // comment length
        put16(&mut b, 0); // disk number start
        put16(&mut b, 0); // internal attributes
        put32(&mut b, self.external_attributes);
        put32(&mut b, U32_MARK); // local header offset: in the zip64 extra
        b.extend_from_slice(&self.name);
        b.extend_from_slice(&extra);
        let central_size = (b.len() - header_start) as u64;

        let zip64_eocd_start = central_start + central_size;
        put32(&mut b, ZIP64_EOCD_SIG);
        put64(&mut b, 44); // size of the rest of this record
        put16(&mut b, VERSION_MADE_BY);
        put16(&mut b, VERSION_NEEDED);
        put32(&mut b, 0); // this disk
        put32(&mut b, 0); // disk where the central directory starts
        put64(&mut b, 1); // entries on this disk
        put64(&mut b, 1); // entries in total
        put64(&mut b, central_size);
        put64(&mut b, central_start);

        put32(&mut b, ZIP64_LOCATOR_SIG);
        put32(&mut b, 0); // disk holding the zip64 end record
        put64(&mut b, zip64_eocd_start);
        put32(&mut b, 1); // disks in total

        put32(&mut b, EOCD_SIG);
        put16(&mut b, 0); // this disk
        put16(&mut b, 0); // disk where the central directory starts
        put16(&mut b, U16_MARK); // entries on this disk: in the zip64 record
        put16(&mut b, U16_MARK); // entries in total
        put32(&mut b, U32_MARK); // central directory size
        put32(&mut b, U32_MARK); // central directory offset
        put16(&mut b, 0); // comment length
        b
    }

    /// Flags, method, time and date: shared by the local and the central header.
    fn put_common(&self, b: &mut Vec<u8>) {
        put16(b, self.flags);
        put16(b, METHOD_DEFLATE);
        put16(b, self.dos_time);
        put16(b, self.dos_date);
    }

    fn put_names(&self, b: &mut Vec<u8>, extra: &[u8]) {
        put16(b, len16(self.name.len()));
        put16(b, len16(extra.len()));
        b.extend_from_slice(&self.name);
        b.extend_from_slice(extra);
    }

    /// Extended timestamp with the modification time only.
    fn put_timestamp(&self, b: &mut Vec<u8>) {
        put16(b, TIMESTAMP_EXTRA);
        put16(b, 5);
        b.push(1); // flags: mtime present
        put32(b, self.mtime);
    }
}

/// MS-DOS (date, time) of a Unix time in UTC, clamped to the range DOS can express
/// (1980-2107); seconds have 2-second resolution.
pub(super) fn dos_date_time(unix: i64) -> (u16, u16) {
    use chrono::{Datelike, Timelike};
    const MIN: (u16, u16) = ((1 << 5) | 1, 0); // 1980-01-01 00:00:00
    const MAX: (u16, u16) = ((127 << 9) | (12 << 5) | 31, (23 << 11) | (59 << 5) | 29);
    let Some(t) = chrono::DateTime::<chrono::Utc>::from_timestamp(unix, 0) else {
        return if unix < 0 { MIN } else { MAX };
    };
    let year = t.year();
    if year < 1980 {
        return MIN;
    }
    let Ok(years) = u16::try_from(year - 1980) else {
        return MAX;
    };
    if years > 127 {
        return MAX;
    }
    // Month, day, hour, minute and second all fit their DOS fields by construction.
    let date = (years << 9) | ((t.month() as u16) << 5) | t.day() as u16;
    let time = ((t.hour() as u16) << 11) | ((t.minute() as u16) << 5) | (t.second() as u16 / 2);
    (date, time)
}

/// Name and extra lengths are 16-bit; `EntryLayout::new` rejects longer names.
fn len16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn put16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}
