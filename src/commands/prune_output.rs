//! How `prune` prints its reply beyond RKE2's lines: with `--dry-run`, one line per snapshot
//! copy saying whether retention keeps or removes it and the rule that decided; with
//! `-o json|yaml`, the whole reply (`deleted`, `removed`, `failed` and every `verdicts` entry).
//! Pure.
//!
//! Names and locations come from the snapshot dir and the bucket, so the text lines escape
//! them like the `ls` table (`output::printable`); JSON and YAML keep the exact values.

use super::output::printable;
use crate::api::wire::{RemovedCopy, SnapshotResponse};
use crate::cli::OutputFormat;

/// Errors rendering a prune reply.
#[derive(Debug, thiserror::Error)]
pub enum PruneOutputError {
    #[error("failed to render the prune report as JSON")]
    Json(#[source] serde_json::Error),
    #[error("failed to render the prune report as YAML")]
    Yaml(#[source] serde_saphyr::SerializeError),
}

/// One line per verdict, in the reply's order (each store's snapshots, newest first); a removed
/// local snapshot with a delta chain gets a second line for the chain.
pub fn verdict_lines(response: &SnapshotResponse) -> Vec<String> {
    let mut lines = Vec::new();
    for v in &response.verdicts {
        let name = printable(&v.name);
        let location = printable(&v.location);
        let reason = printable(&v.reason);
        if v.action == "keep" {
            lines.push(format!("Snapshot {name} kept in {location}: {reason}."));
            continue;
        }
        lines.push(format!(
            "Snapshot {name} would be deleted from {location}: {reason}."
        ));
        let copy = response
            .removed
            .iter()
            .find(|r| r.name == v.name && r.location == v.location);
        lines.extend(copy.and_then(|copy| chain_line(copy, true)));
    }
    lines
}

/// The line saying a removed copy's delta chain goes (or, in a dry run, would go) with it;
/// None when it has no chain.
pub fn chain_line(copy: &RemovedCopy, dry_run: bool) -> Option<String> {
    let chain = copy.delta_chain.as_ref()?;
    let verb = if dry_run {
        "would be deleted"
    } else {
        "deleted"
    };
    Some(format!(
        "  its delta chain {} {verb} with it: {} segments, {} bytes.",
        printable(&chain.location),
        chain.segments,
        chain.bytes
    ))
}

/// The reply as JSON (4-space indent, like `ls -o json`) or YAML; `None` for the table.
pub fn render(
    response: &SnapshotResponse,
    format: OutputFormat,
) -> Result<Option<String>, PruneOutputError> {
    match format {
        OutputFormat::Table | OutputFormat::Wide => Ok(None),
        OutputFormat::Json => {
            let mut buf = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
            serde::Serialize::serialize(response, &mut ser).map_err(PruneOutputError::Json)?;
            let mut text = String::from_utf8(buf).unwrap_or_default();
            text.push('\n');
            Ok(Some(text))
        }
        OutputFormat::Yaml => serde_saphyr::to_string(response)
            .map(Some)
            .map_err(PruneOutputError::Yaml),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire::RetentionVerdict;

    fn verdict(name: &str, action: &str) -> RetentionVerdict {
        RetentionVerdict {
            name: name.into(),
            storage: "local".into(),
            location: format!("/snaps/{name}"),
            created: "2024-01-01T00:00:00Z".into(),
            action: action.into(),
            rule: "retention".into(),
            reason: "older than the newest 1 (retention 1)".into(),
        }
    }

    #[test]
    fn every_verdict_is_one_escaped_line() {
        let response = SnapshotResponse {
            verdicts: vec![
                verdict("s-n1-2", "keep"),
                verdict("s-n1-1\x1b[2J", "remove"),
            ],
            ..Default::default()
        };
        let lines = verdict_lines(&response);
        assert_eq!(
            lines[0],
            "Snapshot s-n1-2 kept in /snaps/s-n1-2: older than the newest 1 (retention 1)."
        );
        assert!(lines[1].starts_with("Snapshot s-n1-1\\x1b[2J would be deleted from"));
        assert_eq!(lines.len(), 2);
    }

    #[test]
    fn a_removed_snapshot_with_a_delta_chain_gets_the_chain_line() {
        let chain = crate::api::wire::RemovedChain {
            location: "/db/.deltas/s-n1-1".into(),
            segments: 3,
            bytes: 1234,
        };
        let copy = RemovedCopy {
            name: "s-n1-1".into(),
            location: "/snaps/s-n1-1".into(),
            reason: None,
            delta_chain: Some(chain),
        };
        let response = SnapshotResponse {
            verdicts: vec![verdict("s-n1-2", "keep"), verdict("s-n1-1", "remove")],
            removed: vec![copy.clone()],
            ..Default::default()
        };
        let lines = verdict_lines(&response);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(
            lines[2],
            "  its delta chain /db/.deltas/s-n1-1 would be deleted with it: 3 segments, 1234 bytes."
        );
        assert_eq!(
            chain_line(&copy, false).unwrap(),
            "  its delta chain /db/.deltas/s-n1-1 deleted with it: 3 segments, 1234 bytes."
        );
        let json = render(&response, OutputFormat::Json).unwrap().unwrap();
        assert!(json.contains("\"deltaChain\""), "{json}");
        let back: SnapshotResponse = serde_json::from_str(&json).unwrap();
        assert_eq!(back, response);
    }

    #[test]
    fn json_carries_the_verdicts_and_reads_back() {
        let response = SnapshotResponse {
            deleted: vec!["s-n1-1".into()],
            verdicts: vec![verdict("s-n1-1", "remove")],
            ..Default::default()
        };
        let text = render(&response, OutputFormat::Json).unwrap().unwrap();
        let back: SnapshotResponse = serde_json::from_str(&text).unwrap();
        assert_eq!(back, response);
        assert!(render(&response, OutputFormat::Table).unwrap().is_none());
        let yaml = render(&response, OutputFormat::Yaml).unwrap().unwrap();
        assert!(yaml.contains("action: remove"), "{yaml}");
    }
}
