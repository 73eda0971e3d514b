//! `etcd-snapshot ls --deltas`: this node's delta chains (`delta::listing`), one row per chain
//! with how far it is restorable, or every segment as JSON or YAML. Local only: segments are
//! files of the node that captured them, so it never asks the server.

use crate::cli::OutputFormat;
use crate::config::DesiredConfig;
use crate::delta::capture::anchor_of;
use crate::delta::files::FilesError;
use crate::delta::listing::{ChainListing, list_chains};
use crate::store::{LocalStore, StoreError};

/// Why the chains could not be listed or printed.
#[derive(Debug, thiserror::Error)]
pub enum DeltasError {
    #[error("failed to list the full snapshots the delta chains start from")]
    Snapshots(#[source] StoreError),
    #[error("failed to list the delta chains")]
    Chains(#[source] FilesError),
    #[error("failed to render the delta chains as JSON")]
    Json(#[source] serde_json::Error),
    #[error("failed to render the delta chains as YAML")]
    Yaml(#[source] serde_saphyr::SerializeError),
}

/// Lists and prints the chains beside the configured snapshot dir.
pub fn run(config: &DesiredConfig, output: OutputFormat) -> Result<(), DeltasError> {
    let snapshot = &config.snapshot;
    let store = LocalStore::open(&snapshot.dir, &config.node_name, false)
        .map_err(DeltasError::Snapshots)?;
    let anchors: Vec<_> = store
        .list()
        .map_err(DeltasError::Snapshots)?
        .iter()
        .filter_map(anchor_of)
        .collect();
    let chains = list_chains(&snapshot.dir, &anchors).map_err(DeltasError::Chains)?;
    print!("{}", render(&chains, output)?);
    Ok(())
}

/// The table (one row per chain), or JSON/YAML with every segment.
pub fn render(chains: &[ChainListing], output: OutputFormat) -> Result<String, DeltasError> {
    match output {
        OutputFormat::Json => serde_json::to_string_pretty(chains)
            .map(|text| text + "\n")
            .map_err(DeltasError::Json),
        OutputFormat::Yaml => serde_saphyr::to_string(&chains).map_err(DeltasError::Yaml),
        OutputFormat::Table | OutputFormat::Wide => Ok(table(chains)),
    }
}

fn table(chains: &[ChainListing]) -> String {
    let header = [
        "Snapshot",
        "Revision",
        "Restorable to",
        "Segments",
        "Off chain",
        "Size",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    let text = |n: Option<i64>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
    for chain in chains {
        let off = chain.segments.iter().filter(|s| !s.on_chain).count();
        let size: u64 = chain.segments.iter().map(|s| s.size).sum();
        rows.push(vec![
            crate::commands::output::printable(&chain.anchor).into_owned(),
            text(chain.anchor_revision),
            text(chain.restorable_to),
            chain.segments.len().to_string(),
            off.to_string(),
            size.to_string(),
        ]);
    }
    crate::commands::output::render_rows(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::listing::SegmentListing;

    #[test]
    fn the_table_has_one_row_per_chain_and_json_every_segment() {
        let segment = |from, to, on_chain| SegmentListing {
            from,
            to,
            size: 100,
            on_chain,
            compressed: false,
            encrypted: false,
        };
        let chains = [ChainListing {
            anchor: "etcd-snapshot-n1-1".into(),
            anchor_revision: Some(100),
            restorable_to: Some(130),
            segments: vec![segment(101, 130, true), segment(140, 150, false)],
        }];
        let table = render(&chains, OutputFormat::Table).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(cells, ["etcd-snapshot-n1-1", "100", "130", "2", "1", "200"]);
        let json: serde_json::Value =
            serde_json::from_str(&render(&chains, OutputFormat::Json).unwrap()).unwrap();
        assert_eq!(json[0]["restorableTo"], 130);
        assert_eq!(json[0]["segments"][1]["onChain"], false);
        assert!(
            render(&chains, OutputFormat::Yaml)
                .unwrap()
                .contains("restorableTo: 130")
        );
    }
}
