//! How `verify` prints its reply: a table with one row per drilled copy (name, storage, result,
//! seconds, reason), or the whole reply as `-o json|yaml`; not-found names and failures on
//! stderr. The completion decides the exit code (`main.rs`): 0 when every drill passed, 1 when
//! one failed or could not verify, or no verdict was reached, 2 when an asked name has no copy.
//!
//! Names, locations and reasons come from the snapshot dir, the bucket and the checks, so the
//! table escapes them like the `ls` table (`output::printable`); JSON and YAML keep them exact.

use super::Completion;
use super::output::printable;
use crate::api::wire::{FailedItem, SnapshotResponse};
use crate::cli::OutputFormat;

/// Errors rendering a verify reply.
#[derive(Debug, thiserror::Error)]
pub enum VerifyOutputError {
    #[error("failed to render the verify report as JSON")]
    Json(#[source] serde_json::Error),
    #[error("failed to render the verify report as YAML")]
    Yaml(#[source] serde_saphyr::SerializeError),
}

/// Prints the reply and says how the command ended.
pub fn print(
    response: &SnapshotResponse,
    output: OutputFormat,
) -> Result<Completion, VerifyOutputError> {
    print!("{}", render(response, output)?);
    for name in &response.not_found {
        eprintln!("Snapshot {} not found.", printable(name));
    }
    for FailedItem { name, message } in &response.failed {
        eprintln!("failed: {}: {}", printable(name), printable(message));
    }
    Ok(completion(response))
}

/// The exit decision. Pure.
pub fn completion(response: &SnapshotResponse) -> Completion {
    if !response.not_found.is_empty() {
        Completion::NotFound
    } else if !response.failed.is_empty() || response.drills.iter().any(|d| d.result != "passed") {
        Completion::Failed
    } else {
        Completion::Success
    }
}

/// The reply in the asked format.
pub fn render(
    response: &SnapshotResponse,
    output: OutputFormat,
) -> Result<String, VerifyOutputError> {
    match output {
        OutputFormat::Table | OutputFormat::Wide => Ok(table(response)),
        OutputFormat::Json => {
            let mut text =
                serde_json::to_string_pretty(response).map_err(VerifyOutputError::Json)?;
            text.push('\n');
            Ok(text)
        }
        OutputFormat::Yaml => serde_saphyr::to_string(response).map_err(VerifyOutputError::Yaml),
    }
}

/// `Name Storage Result Seconds Reason`, columns as wide as their widest cell.
pub fn table(response: &SnapshotResponse) -> String {
    let mut rows = vec![[
        "Name".to_string(),
        "Storage".to_string(),
        "Result".to_string(),
        "Seconds".to_string(),
        "Reason".to_string(),
    ]];
    for d in &response.drills {
        rows.push([
            printable(&d.name).into_owned(),
            d.storage.clone(),
            d.result.clone(),
            format!("{:.1}", d.duration_seconds),
            printable(&d.reason).into_owned(),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        for (i, width) in widths.iter().enumerate() {
            out.push_str(&format!("{:<width$} ", row[i]));
        }
        out.push_str(&row[4]);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire::DrillVerdictWire;

    fn drill(name: &str, result: &str) -> DrillVerdictWire {
        DrillVerdictWire {
            name: name.into(),
            storage: "local".into(),
            location: format!("file:///s/{name}"),
            result: result.into(),
            reason: "hashkv: differs\nnext".into(),
            duration_seconds: 2.25,
            checks: Vec::new(),
        }
    }

    #[test]
    fn the_table_has_one_escaped_row_per_copy_and_the_exit_follows_the_worst() {
        let mut response = SnapshotResponse {
            drills: vec![drill("a-n1-1", "passed"), drill("b\u{1b}-n1-2", "failed")],
            ..Default::default()
        };
        let text = table(&response);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("Name "), "{text}");
        assert!(
            lines[2].contains("failed") && lines[2].contains("2.2"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "escaped: {text:?}");
        assert_eq!(completion(&response), Completion::Failed);
        response.drills.truncate(1);
        assert_eq!(completion(&response), Completion::Success);
        response.drills.push(drill("c-n1-3", "cannot-verify"));
        assert_eq!(completion(&response), Completion::Failed);
        response.not_found.push("d-n1-4".into());
        assert_eq!(completion(&response), Completion::NotFound);
    }
}
