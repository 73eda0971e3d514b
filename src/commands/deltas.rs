//! `etcd-snapshot ls --deltas`: this node's delta chains and, with `etcd-s3` on, the bucket's
//! (`delta::listing`), one row per chain with where it lives and how far it is restorable, or
//! every segment as JSON or YAML. It never asks the server: local segments are files of the node
//! that captured them, and the bucket is read directly, as a point-in-time restore from a new
//! host reads it (a chain's revision comes from its S3 copy's `.metadata` object).
//!
//! A bucket that cannot be listed still lets the local chains print; the command then fails
//! with the S3 error.

use crate::cli::OutputFormat;
use crate::config::DesiredConfig;
use crate::config::desired::S3Settings;
use crate::delta::capture::anchor_of;
use crate::delta::files::FilesError;
use crate::delta::listing::{ChainListing, list_chains, list_remote_chains};
use crate::store::s3::{S3Error, S3Store};
use crate::store::{LocalStore, StoreError};

/// Why the chains could not be listed or printed.
#[derive(Debug, thiserror::Error)]
pub enum DeltasError {
    #[error("failed to list the full snapshots the delta chains start from")]
    Snapshots(#[source] StoreError),
    #[error("failed to list the delta chains")]
    Chains(#[source] FilesError),
    #[error("failed to list the delta chains in S3 bucket {bucket:?}")]
    S3 {
        bucket: String,
        #[source]
        source: Box<S3Error>,
    },
    #[error("failed to render the delta chains as JSON")]
    Json(#[source] serde_json::Error),
    #[error("failed to render the delta chains as YAML")]
    Yaml(#[source] serde_saphyr::SerializeError),
}

/// Lists and prints the chains beside the configured snapshot dir, then the bucket's.
pub async fn run(config: &DesiredConfig, output: OutputFormat) -> Result<(), DeltasError> {
    let mut chains = local_chains(config)?;
    let remote = match &config.s3 {
        Some(s3) => s3_chains(s3).await,
        None => Ok(Vec::new()),
    };
    let failed = match remote {
        Ok(remote) => {
            chains.extend(remote);
            None
        }
        Err(e) => Some(e),
    };
    print!("{}", render(&chains, output)?);
    failed.map_or(Ok(()), Err)
}

fn local_chains(config: &DesiredConfig) -> Result<Vec<ChainListing>, DeltasError> {
    let snapshot = &config.snapshot;
    // A host that never saved (a new one reading the bucket) has no default dir yet: no local
    // chains. A configured dir that is missing stays an error (a typo lists nothing otherwise).
    if snapshot.dir_is_default && !snapshot.dir.exists() {
        return Ok(Vec::new());
    }
    let store = LocalStore::open(&snapshot.dir, &config.node_name, false)
        .map_err(DeltasError::Snapshots)?;
    let anchors: Vec<_> = store
        .list()
        .map_err(DeltasError::Snapshots)?
        .iter()
        .filter_map(anchor_of)
        .collect();
    list_chains(&snapshot.dir, &anchors).map_err(DeltasError::Chains)
}

/// The bucket's chains: one listing of the chains, one of the snapshots, and one `.metadata`
/// read per snapshot with a chain (its recorded revision).
async fn s3_chains(settings: &S3Settings) -> Result<Vec<ChainListing>, DeltasError> {
    let err = |source: S3Error| DeltasError::S3 {
        bucket: settings.bucket.clone(),
        source: Box::new(source),
    };
    let store = S3Store::connect(settings).await.map_err(err)?;
    let chains = store.list_chains().await.map_err(err)?;
    if chains.is_empty() {
        return Ok(Vec::new());
    }
    let mut anchors = Vec::new();
    for mut record in store.list().await.map_err(err)? {
        if !chains.contains_key(&record.file_name) {
            continue;
        }
        let extra = store
            .read_extra_metadata(&record.file_name)
            .await
            .map_err(err)?;
        record.metadata = extra.map().cloned();
        anchors.extend(anchor_of(&record));
    }
    Ok(list_remote_chains(&chains, &anchors, |anchor| {
        store.chain_location(anchor)
    }))
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
        "Location",
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
            crate::commands::output::printable(&chain.location).into_owned(),
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
            location: "s3://b/.deltas/etcd-snapshot-n1-1/.metadata/".into(),
            anchor_revision: Some(100),
            restorable_to: Some(130),
            segments: vec![segment(101, 130, true), segment(140, 150, false)],
        }];
        let table = render(&chains, OutputFormat::Table).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "etcd-snapshot-n1-1",
                "100",
                "130",
                "2",
                "1",
                "200",
                "s3://b/.deltas/etcd-snapshot-n1-1/.metadata/"
            ]
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(&chains, OutputFormat::Json).unwrap()).unwrap();
        assert_eq!(json[0]["restorableTo"], 130);
        assert_eq!(
            json[0]["location"],
            "s3://b/.deltas/etcd-snapshot-n1-1/.metadata/"
        );
        assert_eq!(json[0]["segments"][1]["onChain"], false);
        assert!(
            render(&chains, OutputFormat::Yaml)
                .unwrap()
                .contains("restorableTo: 130")
        );
    }
}
