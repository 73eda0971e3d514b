//! `etcd-snapshot rekey [--dry-run]`: re-encrypts this node's local copies (`store::rekey`)
//! and the delta segments of every local chain (`delta::rekey`), then, with `etcd-s3` on, the
//! S3 copies (`store::s3::rekey`) and the segments of every chain in the bucket, to the current
//! recipients, and prints one line per copy: what was (or would be) done, or why it failed
//! (segments one line each, or one line per outcome for a chain of more than
//! `SEGMENT_LINES`; a failure always has its own line). Runs on this host only; it never asks
//! the server (the server holds no identity). The recipients and identities include the
//! encryption Secret's when one is configured.

use crate::config::DesiredConfig;
use crate::config::desired::S3Settings;
use crate::crypt::{Identities, Recipients};
use crate::delta::rekey::{SegmentReport, rekey_local_segments, rekey_s3_segments};
use crate::kube::encryption_secret::{self, EncryptionSecretError};
use crate::kube::s3_secret::read_s3_settings;
use crate::store::rekey::{Action, CopyReport, RekeyError, rekey_local};
use crate::store::{LocalStore, S3Error, S3Store};

/// Why `rekey` did nothing (local) or stopped before the S3 copies.
#[derive(Debug, thiserror::Error)]
pub enum RekeyCommandError {
    #[error("failed to read the encryption keys")]
    Keys(#[source] EncryptionSecretError),
    #[error(transparent)]
    Rekey(#[from] RekeyError),
    #[error("failed to rekey the S3 snapshots")]
    S3(#[source] Box<S3Error>),
    #[error(
        "failed to read the S3 settings from the S3 config Secret kube-system/{name}; the S3 snapshots were not rekeyed"
    )]
    S3Secret {
        name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the local rekey stopped unexpectedly")]
    Join(#[source] tokio::task::JoinError),
}

/// A chain with more segments than this gets one line per outcome instead of one per segment.
const SEGMENT_LINES: usize = 10;

/// Rekeys the snapshot dir, then the bucket; `Ok(false)` when some copy failed (the others
/// are done, and a rerun finishes the rest).
pub async fn run(config: &DesiredConfig, dry_run: bool) -> Result<bool, RekeyCommandError> {
    let settings = &config.snapshot.encryption;
    let access = match &settings.secret {
        Some(name) => encryption_secret::command_access(config, name)
            .await
            .map_err(RekeyCommandError::Keys)?,
        None => crate::kube::KubeAccess::disabled(),
    };
    let recipients = encryption_secret::current_recipients(&access, settings)
        .await
        .map_err(RekeyCommandError::Keys)?;
    let identities = encryption_secret::command_identities(config)
        .await
        .map_err(RekeyCommandError::Keys)?;
    let store = LocalStore::open(&config.snapshot.dir, &config.node_name, false)
        .map_err(RekeyError::List)?;
    let (r, i) = (recipients.clone(), identities.clone());
    let local = tokio::task::spawn_blocking(move || {
        let reports = rekey_local(&store, r.as_ref(), i.as_ref(), dry_run)?;
        // The snapshots first: a chain is of use only with its snapshot readable.
        let segments = rekey_local_segments(store.dir(), r.as_ref(), i.as_ref(), dry_run);
        Ok::<_, RekeyCommandError>((store, reports, segments))
    })
    .await
    .map_err(RekeyCommandError::Join)?;
    let (store, reports, segments) = local?;
    let target = target(recipients.as_ref());
    let mut all_ok = print_reports("", &reports, dry_run, &target);
    if reports.is_empty() {
        println!("No local snapshots.");
    }
    all_ok &= match segments {
        Ok(segments) => print_segment_reports("", &segments, dry_run, &target),
        Err(e) => segments_failed("", &e),
    };
    if let Some(s3) = s3_settings(config).await? {
        let work = crate::store::s3::rekey::work_dir(&store.layout().work);
        let bucket = S3Store::connect(&s3)
            .await
            .map_err(|e| RekeyCommandError::S3(Box::new(e)))?;
        let reports = rekey_s3(
            &bucket,
            recipients.as_ref(),
            identities.as_ref(),
            dry_run,
            &work,
        )
        .await
        .map_err(|e| RekeyCommandError::S3(Box::new(e)))?;
        all_ok &= print_reports("S3 ", &reports, dry_run, &target);
        if reports.is_empty() {
            println!("No S3 snapshots.");
        }
        let segments = rekey_s3_segments(
            &bucket,
            recipients.as_ref(),
            identities.as_ref(),
            dry_run,
            &work.join("deltas"),
            store.dir(),
        )
        .await;
        all_ok &= match segments {
            Ok(segments) => print_segment_reports("S3 ", &segments, dry_run, &target),
            Err(e) => segments_failed("S3 ", &e),
        };
    }
    Ok(all_ok)
}

/// The S3 block as every operation sees it: the configuration's, or, with
/// `etcd-s3-config-secret`, the Secret's (read now with this command's Kubernetes access). A
/// Secret that cannot be used is an error here, not a skip: the user asked to rekey those
/// copies.
async fn s3_settings(config: &DesiredConfig) -> Result<Option<S3Settings>, RekeyCommandError> {
    let Some(s3) = &config.s3 else {
        return Ok(None);
    };
    let Some(name) = &s3.config_secret else {
        return Ok(Some(s3.clone()));
    };
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| RekeyCommandError::S3Secret {
        name: name.clone(),
        source,
    };
    let access = crate::kube::KubeAccess::from_config(config)
        .await
        .map_err(|e| failed(Box::new(e)))?;
    let found = read_s3_settings(&access, name, s3)
        .await
        .map_err(|e| failed(Box::new(e)))?;
    for warning in &found.warnings {
        tracing::warn!("{warning}");
    }
    Ok(Some(found.settings))
}

async fn rekey_s3(
    bucket: &S3Store,
    recipients: Option<&Recipients>,
    identities: Option<&Identities>,
    dry_run: bool,
    work: &std::path::Path,
) -> Result<Vec<CopyReport>, S3Error> {
    if !dry_run {
        crate::fsutil::create_dir_all_mode(work, 0o700).map_err(|source| S3Error::Io {
            action: "create",
            path: work.to_path_buf(),
            source,
        })?;
    }
    bucket.rekey(recipients, identities, dry_run, work).await
}

fn target(recipients: Option<&Recipients>) -> String {
    recipients
        .map(|r| crate::crypt::keys::join(&r.fingerprints()))
        .unwrap_or_default()
}

/// One line per copy (`where_` is `""` for local copies, `"S3 "` for objects); false when
/// some copy failed.
fn print_reports(where_: &str, reports: &[CopyReport], dry_run: bool, target: &str) -> bool {
    let mut all_ok = true;
    for report in reports {
        let name = crate::commands::output::printable(&report.file_name);
        let verb = match (&report.action, dry_run) {
            (Action::Skip(why), _) => format!("skipped {where_}{name}: {why}"),
            (Action::Reencrypt, true) => format!("would re-encrypt {where_}{name} to {target}"),
            (Action::Encrypt, true) => {
                format!(
                    "would encrypt {where_}{name} to {target} as {}",
                    report.new_name
                )
            }
            (Action::Reencrypt, false) => format!("re-encrypted {where_}{name} to {target}"),
            (Action::Encrypt, false) => format!(
                "encrypted {where_}{name} to {target} as {} (plaintext removed)",
                report.new_name
            ),
        };
        match &report.error {
            None => println!("{verb}"),
            Some(error) => {
                all_ok = false;
                eprintln!("failed {where_}{name}: {error}");
            }
        }
    }
    all_ok
}

/// The chains could not be listed: a failed copy, as the snapshots' lines were printed and a
/// rerun finishes the rest. Always false.
fn segments_failed(where_: &str, error: &dyn std::error::Error) -> bool {
    let error = crate::errors::error_chain(error);
    eprintln!("failed {where_}delta segments: their chains could not be listed: {error}");
    false
}

/// The segment lines, chain by chain: one per segment, or one per outcome for a chain of more
/// than `SEGMENT_LINES`; failures on stderr, one each. False when some segment failed.
fn print_segment_reports(
    where_: &str,
    reports: &[SegmentReport],
    dry_run: bool,
    target: &str,
) -> bool {
    let mut all_ok = true;
    let mut chains: std::collections::BTreeMap<&str, Vec<&SegmentReport>> = Default::default();
    for report in reports {
        chains
            .entry(report.anchor.as_str())
            .or_default()
            .push(report);
    }
    for (anchor, segments) in chains {
        let anchor = crate::commands::output::printable(anchor);
        let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
        for report in segments.iter().map(|r| &r.copy) {
            let name = crate::commands::output::printable(&report.file_name);
            if let Some(error) = &report.error {
                all_ok = false;
                eprintln!("failed {where_}segment {anchor}/{name}: {error}");
                continue;
            }
            let done = segment_outcome(&report.action, dry_run, target);
            match segments.len() > SEGMENT_LINES {
                true => *outcomes.entry(done).or_default() += 1,
                false => {
                    let what = format!("{where_}segment {anchor}/{name}");
                    println!("{}", done.replacen("{}", &what, 1));
                }
            }
        }
        for (done, count) in outcomes {
            let what = format!("{count} {where_}segments of chain {anchor}");
            println!("{}", done.replacen("{}", &what, 1));
        }
    }
    all_ok
}

/// What was done to a segment, `{}` standing for the segment (or "N segments of chain X").
fn segment_outcome(action: &Action, dry_run: bool, target: &str) -> String {
    match (action, dry_run) {
        (Action::Skip(why), _) => format!("skipped {{}}: {why}"),
        (_, true) => format!("would re-encrypt {{}} to {target}"),
        (_, false) => format!("re-encrypted {{}} to {target}"),
    }
}
