//! How the CLI prints listings: RKE2's `Name Location Size Created` table, or the
//! `ETCDSnapshotFileList` as JSON (4-space indent, like kubectl's printer) or YAML. Pure.
//!
//! File names and S3 keys are chosen by whoever can write the snapshot dir or the bucket, so the
//! table and the notes escape what a terminal would act on (`printable`); JSON and YAML keep
//! the exact values, escaped by their serializers.

use std::borrow::Cow;

use crate::api::wire::{EtcdSnapshotFile, EtcdSnapshotFileList};

/// Errors rendering a listing.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("failed to render the snapshot list as JSON")]
    Json(#[source] serde_json::Error),
    #[error("failed to render the snapshot list as YAML")]
    Yaml(#[source] serde_saphyr::SerializeError),
}

/// Sorts items as RKE2's `ls` does: by creation time, then name.
pub fn sort_items(list: &mut EtcdSnapshotFileList) {
    list.items.sort_by(|a, b| {
        let key = |f: &EtcdSnapshotFile| {
            (
                f.status.creation_time.clone().unwrap_or_default(),
                f.spec.snapshot_name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
}

/// The table: a header and one row per item, columns padded to the widest cell plus one space.
pub fn table(list: &EtcdSnapshotFileList) -> String {
    render_rows(rows(list, false))
}

/// `-o wide`: RKE2's columns plus `Encrypted` (`no`, the key fingerprints an encrypted copy is
/// encrypted to, or `age` when they are not recorded), `Verified` (the last restore drill's
/// result and time, `-` when never drilled) and `RestorableTo` (the point-in-time window's end,
/// see `restorable_cell`).
pub fn wide_table(list: &EtcdSnapshotFileList) -> String {
    render_rows(rows(list, true))
}

fn rows(list: &EtcdSnapshotFileList, wide: bool) -> Vec<Vec<String>> {
    let mut header: Vec<String> = ["Name", "Location", "Size", "Created"]
        .map(String::from)
        .to_vec();
    if wide {
        header.push("Encrypted".into());
        header.push("Verified".into());
        header.push("RestorableTo".into());
    }
    let mut rows = vec![header];
    for item in &list.items {
        let cell = |text: &str| printable(text).into_owned();
        let mut row = vec![
            cell(&item.spec.snapshot_name),
            cell(&item.spec.location),
            cell(&size_in_bytes(
                item.status.size.as_deref().unwrap_or_default(),
            )),
            cell(item.status.creation_time.as_deref().unwrap_or_default()),
        ];
        if wide {
            row.push(cell(&encrypted_cell(item)));
            row.push(verified_cell(item));
            row.push(restorable_cell(item));
        }
        rows.push(row);
    }
    rows
}

/// The `Encrypted` cell, from the item's encryption annotations (the name decides when the
/// item carries none, e.g. from a server that predates them).
fn encrypted_cell(item: &EtcdSnapshotFile) -> String {
    use crate::kube::crd::{ENCRYPTED_TO_ANNOTATION, ENCRYPTION_ANNOTATION};
    let annotations = &item.metadata.annotations;
    if let Some(keys) = annotations.get(ENCRYPTED_TO_ANNOTATION) {
        return keys.clone();
    }
    let encrypted = annotations.contains_key(ENCRYPTION_ANNOTATION)
        || crate::snapshot::name::is_encrypted_name(&item.spec.snapshot_name);
    if encrypted { "age" } else { "no" }.into()
}

/// The `Verified` cell: the last drill's result and time (`passed@2026-12-07T04:00:00Z`), or
/// `-` for a copy never drilled.
fn verified_cell(item: &crate::api::wire::EtcdSnapshotFile) -> String {
    let Some(v) = &item.status.verification else {
        return "-".into();
    };
    let result = printable(v.result.as_deref().unwrap_or("?")).into_owned();
    match &v.time {
        Some(time) => format!("{result}@{}", printable(time)),
        None => result,
    }
}

/// The `RestorableTo` cell: the time a point-in-time restore from this full snapshot reaches,
/// `revision:N` when only the revision is known (a chain from before window records), `-`
/// without a delta chain.
fn restorable_cell(item: &EtcdSnapshotFile) -> String {
    let Some(window) = &item.status.point_in_time else {
        return "-".into();
    };
    match (&window.to, window.to_revision) {
        (Some(time), _) => printable(time).into_owned(),
        (None, Some(revision)) => format!("revision:{revision}"),
        (None, None) => "-".into(),
    }
}

pub(crate) fn render_rows(rows: Vec<Vec<String>>) -> String {
    let mut widths = vec![0usize; rows.first().map_or(0, Vec::len)];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$} ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The table shows whole bytes, as RKE2's does, while items carry a Kubernetes quantity
/// (`10M`); a value that is no whole quantity is shown as it came.
fn size_in_bytes(size: &str) -> Cow<'_, str> {
    let quantity = serde_json::Value::String(size.to_owned());
    match crate::kube::resources::parse_quantity(&quantity) {
        Some(bytes) => Cow::Owned(bytes.to_string()),
        None => Cow::Borrowed(size),
    }
}

/// One line per copy that is not ready (a failed upload), for stderr beside the table.
pub fn not_ready_notes(list: &EtcdSnapshotFileList) -> Vec<String> {
    list.items
        .iter()
        .filter(|item| item.status.ready_to_use == Some(false))
        .map(|item| {
            let why = item
                .status
                .error
                .as_ref()
                .and_then(|e| e.message.clone())
                .unwrap_or_else(|| "no reason recorded".into());
            let place = match item.spec.location.as_str() {
                "" => "its destination".to_string(),
                location => location.to_string(),
            };
            format!(
                "warning: {} is not ready at {}: {}",
                printable(&item.spec.snapshot_name),
                printable(&place),
                printable(&why)
            )
        })
        .collect()
}

/// `text` safe to print on a terminal: control characters (C0, DEL, C1), bidirectional
/// overrides and isolates (which reorder what is shown) and the backslash itself become Rust-style
/// escapes (`\n`, `\t`, `\x1b`, `\u{202e}`, `\\`), so every name prints on one line as what
/// it is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The list as indented JSON.
pub fn json(list: &EtcdSnapshotFileList) -> Result<String, OutputError> {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    serde::Serialize::serialize(list, &mut ser).map_err(OutputError::Json)?;
    let mut text = String::from_utf8(buf).unwrap_or_default();
    text.push('\n');
    Ok(text)
}

/// The list as YAML.
pub fn yaml(list: &EtcdSnapshotFileList) -> Result<String, OutputError> {
    serde_saphyr::to_string(list).map_err(OutputError::Yaml)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{SnapshotRecord, Storage};

    fn item(name: &str, created: i64, size: u64) -> EtcdSnapshotFile {
        SnapshotRecord {
            file_name: name.into(),
            location: format!("file:///var/lib/etcd-snapshot/server/db/snapshots/{name}"),
            node_name: "n1".into(),
            storage: Storage::Local,
            size,
            created_unix: created,
            compressed: false,
            ready: true,
            error: None,
            token_hash: None,
            metadata: None,
        }
        .to_snapshot_file()
    }

    #[test]
    fn table_has_rke2_header_and_aligned_columns() {
        let mut list = EtcdSnapshotFileList::new(vec![
            item("b-n1-1754907117", 1_754_907_117, 8_937_504),
            item("a-n1-1754906881", 1_754_906_881, 42),
        ]);
        sort_items(&mut list);
        let text = table(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("Name "), "{text}");
        assert!(lines[0].contains(" Location ") && lines[0].ends_with(" Created"));
        assert!(
            lines[1].starts_with("a-n1-1754906881 "),
            "sorted by creation time: {text}"
        );
        assert!(lines[2].contains("8937504 2025-08-11T10:11:57Z"));
        let location_col = lines[0].find("Location").unwrap();
        assert_eq!(
            lines[1].find("file://").unwrap(),
            location_col,
            "columns align: {text}"
        );
    }

    #[test]
    fn control_characters_are_escaped_in_the_table_only() {
        let name = "on-demand-n1-1\x1b[2J\nfake\trow\u{7f}\u{9b}\u{202e}x\\y";
        let list = EtcdSnapshotFileList::new(vec![item(name, 1_700_000_000, 3)]);
        let text = table(&list);
        let escaped = r"on-demand-n1-1\x1b[2J\nfake\trow\x7f\u{9b}\u{202e}x\\y";
        assert!(text.contains(escaped), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        // JSON and YAML carry the exact name (their own escapes decode back to it).
        let parsed: serde_json::Value = serde_json::from_str(&json(&list).unwrap()).unwrap();
        assert_eq!(parsed["items"][0]["spec"]["snapshotName"], name);
        assert!(!yaml(&list).unwrap().contains('\x1b'));
        assert_eq!(
            printable("plain-name_1.zip"),
            Cow::Borrowed("plain-name_1.zip")
        );
        assert_eq!(printable("é 日本"), "é 日本");
    }

    #[test]
    fn the_table_shows_whole_bytes_for_quantity_sizes() {
        let mut rke2 = item("a-n1-1754906881", 1_754_906_881, 0);
        rke2.status.size = Some("10M".into());
        let mut odd = item("b-n1-1754906882", 1_754_906_882, 0);
        odd.status.size = Some("1.5".into());
        let text = table(&EtcdSnapshotFileList::new(vec![rke2, odd]));
        assert!(text.contains(" 10000000 2025-08-11T10:08:01Z"), "{text}");
        assert!(text.contains(" 1.5      2025-08-11T10:08:02Z"), "{text}");
    }

    #[test]
    fn empty_list_prints_only_the_header() {
        assert_eq!(
            table(&EtcdSnapshotFileList::new(vec![])),
            "Name Location Size Created\n"
        );
    }

    #[test]
    fn json_and_yaml_carry_the_list_shape() {
        let list = EtcdSnapshotFileList::new(vec![item("a-n1-1", 1, 2)]);
        let text = json(&list).unwrap();
        assert!(text.contains("\n    \"apiVersion\": \"v1\""), "{text}");
        let back: EtcdSnapshotFileList = serde_json::from_str(&text).unwrap();
        assert_eq!(back, list);
        let text = yaml(&list).unwrap();
        assert!(
            text.contains("kind: List") && text.contains("snapshotName: a-n1-1"),
            "{text}"
        );
    }

    #[test]
    fn wide_adds_the_encrypted_column_and_table_keeps_rke2s() {
        let mut list =
            EtcdSnapshotFileList::new(vec![item("a-n1-1.zip.age", 1, 10), item("a-n1-2", 2, 10)]);
        list.items[1].status.verification =
            Some(crate::kube::resources::SnapshotFileVerification {
                time: Some("2026-12-07T04:00:00Z".into()),
                result: Some("failed".into()),
                message: Some("hashkv: differs".into()),
            });
        let wide = wide_table(&list);
        let lines: Vec<&str> = wide.lines().collect();
        assert!(
            lines[0].ends_with(
                " Created              Encrypted Verified                    RestorableTo"
            ),
            "{wide}"
        );
        assert!(
            lines[1].starts_with("a-n1-1.zip.age")
                && lines[1].ends_with(" age       -                           -")
        );
        assert!(
            lines[2].ends_with(" no        failed@2026-12-07T04:00:00Z -"),
            "{wide}"
        );
        assert!(!table(&list).contains("Encrypted"));
        // Recorded fingerprints replace `age`.
        let mut known = item("a-n1-3.age", 3, 10);
        known.metadata.annotations.insert(
            "etcd-snapshot.io/encrypted-to".into(),
            "age1:000000000000000a".into(),
        );
        let wide = wide_table(&EtcdSnapshotFileList::new(vec![known]));
        assert!(
            wide.lines()
                .nth(1)
                .unwrap()
                .ends_with(" age1:000000000000000a -        -"),
            "{wide}"
        );
    }

    #[test]
    fn wide_shows_how_far_a_point_in_time_restore_reaches() {
        use crate::kube::resources::SnapshotFilePointInTime;
        let window = |to: Option<&str>| SnapshotFilePointInTime {
            from_revision: Some(100),
            to_revision: Some(130),
            from: Some("2026-12-07T04:00:00Z".into()),
            to: to.map(str::to_string),
        };
        let mut list = EtcdSnapshotFileList::new(vec![
            item("a-n1-1", 1, 10),
            item("a-n1-2", 2, 10),
            item("a-n1-3", 3, 10),
        ]);
        list.items[1].status.point_in_time = Some(window(None));
        list.items[2].status.point_in_time = Some(window(Some("2026-12-07T04:10:12.345Z")));
        let wide = wide_table(&list);
        let last: Vec<&str> = wide
            .lines()
            .map(|l| l.split_whitespace().last().unwrap())
            .collect();
        assert_eq!(
            last,
            [
                "RestorableTo",
                "-",
                "revision:130",
                "2026-12-07T04:10:12.345Z"
            ],
            "{wide}"
        );
        assert_eq!(
            table(&list),
            table(&EtcdSnapshotFileList::new(vec![
                item("a-n1-1", 1, 10),
                item("a-n1-2", 2, 10),
                item("a-n1-3", 3, 10),
            ])),
            "the default table stays RKE2's"
        );
    }
}
