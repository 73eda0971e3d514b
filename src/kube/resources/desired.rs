//! What the resources of one node should look like: snapshot records turned into full
//! `ETCDSnapshotFile` objects, and the Kubernetes quantity form of their size.
//!
//! Pure: no apiserver access, no clock. Which records a node is responsible for is decided here
//! too (`desired_set`), so the I/O layer only lists, plans and applies.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Scope;
use super::model::{
    S3Spec, SnapshotFile, SnapshotFileError, SnapshotFilePointInTime, SnapshotFileSpec,
    SnapshotFileStatus, SnapshotFileVerification,
};
use super::naming::resource_name;
use crate::kube::crd::{
    ENCRYPTED_TO_ANNOTATION, ENCRYPTION_ANNOTATION, STORAGE_NODE_LABEL, TOKEN_HASH_ANNOTATION,
};
use crate::snapshot::record::rfc3339;
use crate::snapshot::{SnapshotRecord, Storage};

/// The storage-node label value of every S3 copy.
pub const S3_STORAGE_NODE: &str = "s3";

/// The complete resource RKE2 would write for this record: name, storage-node label, token-hash
/// annotation when the hash is known, spec (with `s3` for S3 copies) and status.
pub fn desired_resource(record: &SnapshotRecord, s3: Option<&S3Spec>) -> SnapshotFile {
    let storage_node = match record.storage {
        Storage::Local => record.node_name.clone(),
        Storage::S3 => S3_STORAGE_NODE.to_string(),
    };
    let mut annotations = BTreeMap::new();
    if let Some(hash) = &record.token_hash {
        annotations.insert(TOKEN_HASH_ANNOTATION.to_string(), hash.clone());
    }
    annotations.extend(encryption_annotations(record));
    let annotations = (!annotations.is_empty()).then_some(annotations);
    let metadata = ObjectMeta {
        name: Some(resource_name(record)),
        labels: Some(BTreeMap::from([(
            STORAGE_NODE_LABEL.to_string(),
            storage_node,
        )])),
        annotations,
        ..Default::default()
    };
    let spec = SnapshotFileSpec {
        snapshot_name: record.file_name.clone(),
        node_name: record.node_name.clone(),
        location: record.location.clone(),
        metadata: record.user_metadata(),
        s3: match record.storage {
            Storage::S3 => s3.cloned(),
            Storage::Local => None,
        },
    };
    let time = rfc3339(record.created_unix);
    let status = SnapshotFileStatus {
        size: Some(format_quantity(if record.ready { record.size } else { 0 }).into()),
        creation_time: Some(time.clone()),
        ready_to_use: Some(record.ready),
        error: record.error.as_ref().map(|message| SnapshotFileError {
            time: Some(time),
            message: Some(message.clone()),
        }),
        verification: verification(record),
        point_in_time: point_in_time(record),
    };
    SnapshotFile::new(metadata, spec, status)
}

/// An encrypted copy's annotations: `age`, and the fingerprints when they are recorded. Empty
/// for a plaintext copy.
pub fn encryption_annotations(record: &SnapshotRecord) -> BTreeMap<String, String> {
    let Some(keys) = record.encrypted_to() else {
        return BTreeMap::new();
    };
    let mut annotations = BTreeMap::from([(ENCRYPTION_ANNOTATION.to_string(), "age".to_string())]);
    if !keys.is_empty() {
        let joined = crate::crypt::keys::join(&keys);
        annotations.insert(ENCRYPTED_TO_ANNOTATION.to_string(), joined);
    }
    annotations
}

/// The copy's last drill verdict, from its metadata record (None when never drilled).
fn verification(record: &SnapshotRecord) -> Option<SnapshotFileVerification> {
    let verdict = crate::snapshot::drill_record::verdict_of(record.metadata.as_ref())?;
    Some(SnapshotFileVerification {
        time: (verdict.verified_at > 0).then(|| rfc3339(verdict.verified_at)),
        result: Some(verdict.result_word().to_string()),
        message: Some(verdict.reason.clone()),
    })
}

/// The point-in-time window the listing attached to a full snapshot copy (None without one).
fn point_in_time(record: &SnapshotRecord) -> Option<SnapshotFilePointInTime> {
    use crate::snapshot::point_in_time::{of, rfc3339_ms};
    let window = of(record)?;
    Some(SnapshotFilePointInTime {
        from_revision: Some(window.from_revision),
        to_revision: Some(window.to_revision),
        from: Some(rfc3339_ms(window.from_unix_ms)),
        to: window.to_unix_ms.map(rfc3339_ms),
    })
}

/// The resources this node owns among everything a listing returned: its own local copies, and
/// the S3 copies when S3 was listed successfully (`scope.s3` is set). The first record wins
/// when two map to the same resource name.
pub fn desired_set(scope: &Scope, records: &[SnapshotRecord]) -> Vec<SnapshotFile> {
    let mut by_name: BTreeMap<String, SnapshotFile> = BTreeMap::new();
    for record in records {
        let in_scope = match record.storage {
            Storage::Local => record.node_name == scope.node_name,
            Storage::S3 => scope.s3.is_some(),
        };
        if !in_scope {
            continue;
        }
        let resource = desired_resource(record, scope.s3.as_ref());
        by_name
            .entry(resource.name().to_string())
            .or_insert(resource);
    }
    by_name.into_values().collect()
}

/// Bytes in the canonical DecimalSI form Kubernetes (and so RKE2) writes: the largest
/// power-of-1000 suffix that keeps the number whole (`8937504`, `5k`, `10M`, `1200k`).
pub fn format_quantity(bytes: u64) -> String {
    const SUFFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    let (mut mantissa, mut exp) = (bytes, 0);
    while mantissa != 0 && mantissa % 1000 == 0 && exp + 1 < SUFFIXES.len() {
        mantissa /= 1000;
        exp += 1;
    }
    format!("{mantissa}{}", SUFFIXES[exp])
}

/// A whole, non-negative quantity in bytes, from either an integer or a quantity string with an
/// optional decimal (`k`..`E`, `e<n>`) or binary (`Ki`..`Ei`) suffix; `None` for anything else
/// (fractions of a byte, negative numbers, milli units).
pub fn parse_quantity(value: &serde_json::Value) -> Option<u128> {
    let text = match value {
        serde_json::Value::Number(n) => return n.as_u64().map(u128::from),
        serde_json::Value::String(s) => s.trim(),
        _ => return None,
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (base, power): (u128, u32) = match suffix {
        "" => (10, 0),
        "k" => (10, 3),
        "M" => (10, 6),
        "G" => (10, 9),
        "T" => (10, 12),
        "P" => (10, 15),
        "E" => (10, 18),
        "Ki" => (2, 10),
        "Mi" => (2, 20),
        "Gi" => (2, 30),
        "Ti" => (2, 40),
        "Pi" => (2, 50),
        "Ei" => (2, 60),
        exp if exp.starts_with(['e', 'E']) => (10, exp[1..].parse().ok()?),
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits: u128 = format!("{whole}{fraction}").parse().ok()?;
    let scaled = digits.checked_mul(base.checked_pow(power)?)?;
    let divisor = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    (scaled % divisor == 0).then_some(scaled / divisor)
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
