//! The inspection report: the checks and figures as one value (pure assembly from what the
//! reading and the walk found), and its table rendering. JSON and YAML are the same value
//! serialized.

use std::fmt::Write;

use serde::Serialize;

use super::bbolt::Structure;
use super::tally::{GroupCount, Member, Tally};
use crate::snapshot::image::ImageKind;

/// Buckets every etcd 3.4+ server creates at start (mvcc, lessor, alarms, auth, membership);
/// a snapshot without one of them was not written by etcd or lost part of its tree.
pub const REQUIRED_BUCKETS: &[&str] = &[
    "alarm",
    "auth",
    "authRoles",
    "authUsers",
    "cluster",
    "key",
    "lease",
    "members",
    "members_removed",
    "meta",
];

/// One named check and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub fn new(name: &str, ok: bool, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }
}

/// `etcdutl snapshot status` (3.5) figures, computed the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcdStatus {
    /// CRC-32C over every bucket name, key and value, in key order.
    pub hash: u32,
    /// Main revision of the last key of the `key` bucket.
    pub revision: u64,
    /// Entries in all buckets (every revision of every key, plus meta, members, ...).
    pub total_key: u64,
    /// High-water mark times page size.
    pub total_size: u64,
}

/// The bootstrap data the snapshot carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootstrapReport {
    pub present: bool,
    /// The `/bootstrap/<token hash>` keys whose latest revision is not a deletion.
    pub keys: Vec<String>,
    /// With a token: whether it decrypts its bootstrap key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_decrypts: Option<bool>,
}

/// Everything `inspect` found about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InspectReport {
    pub source: String,
    /// The datastore the snapshot is of: `etcd` or `sqlite` (`snapshot::image`).
    pub datastore: ImageKind,
    pub healthy: bool,
    pub checks: Vec<Check>,
    pub file_size: u64,
    /// Whether the file is age-encrypted (then every figure below is of its plaintext).
    pub encrypted: bool,
    /// The key fingerprints it is encrypted to, as recorded at save (the `.encryption` record
    /// or the S3 object's metadata); empty when unencrypted or not recorded.
    pub encrypted_to: Vec<String>,
    /// The SHA-256 trailer, when it matched.
    pub sha256: Option<String>,
    pub etcd_status: Option<EtcdStatus>,
    /// Keys whose latest revision is not a deletion (etcd 3.6's `totalKey`).
    pub live_keys: u64,
    pub compact_revision: Option<u64>,
    pub finished_compact_revision: Option<u64>,
    pub consistent_index: Option<u64>,
    pub term: Option<u64>,
    pub storage_version: Option<String>,
    pub cluster_version: Option<String>,
    pub members: Vec<Member>,
    pub removed_members: Vec<String>,
    pub buckets: Vec<BucketCount>,
    pub structure: Option<Structure>,
    pub resources: Vec<GroupCount>,
    pub resources_complete: bool,
    pub bootstrap: BootstrapReport,
    /// A SQLite snapshot's kine figures; absent for etcd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<SqliteFigures>,
}

/// A SQLite datastore's figures (kine's table), for a SQLite snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SqliteFigures {
    /// kine's revision: the highest row id.
    pub revision: i64,
    /// Rows in the kine table: every revision of every key.
    pub rows: u64,
    pub page_size: u64,
    pub pages: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketCount {
    pub name: String,
    pub entries: u64,
}

/// The checks the walk's results decide: structure, required buckets, decodable `key` entries.
pub fn walk_checks(structure: &Structure, tally: &Tally) -> Vec<Check> {
    let problems = &structure.problems;
    let mut detail = problems.first.join("; ");
    if problems.total > problems.first.len() as u64 {
        let _ = write!(
            detail,
            "; and {} more",
            problems.total - problems.first.len() as u64
        );
    }
    let structure_detail = if problems.is_empty() {
        format!(
            "{} pages reachable once, {} free, high-water mark {}",
            structure.reachable_pages, structure.free_pages, structure.high_water_mark
        )
    } else {
        detail
    };
    let missing: Vec<&str> = REQUIRED_BUCKETS
        .iter()
        .copied()
        .filter(|b| !tally.buckets.iter().any(|(name, _)| name == b))
        .collect();
    let buckets = if missing.is_empty() {
        Check::new("buckets", true, "every bucket etcd creates is present")
    } else {
        Check::new("buckets", false, format!("missing: {}", missing.join(", ")))
    };
    let decodable = Check::new(
        "entries",
        tally.undecodable == 0,
        match tally.undecodable {
            0 => "every key revision and member record decodes".to_string(),
            n => format!("{n} key revisions or member records do not decode"),
        },
    );
    vec![
        Check::new("structure", problems.is_empty(), structure_detail),
        buckets,
        decodable,
    ]
}

/// Assembles the report from what reading and walking found. Healthy when every check passed.
pub fn assemble(
    source: String,
    file_size: u64,
    sha256: Option<String>,
    mut checks: Vec<Check>,
    walked: Option<(Structure, Tally)>,
) -> InspectReport {
    let mut report = InspectReport {
        source,
        datastore: ImageKind::Etcd,
        healthy: false,
        checks: Vec::new(),
        file_size,
        encrypted: false,
        encrypted_to: Vec::new(),
        sha256,
        etcd_status: None,
        live_keys: 0,
        compact_revision: None,
        finished_compact_revision: None,
        consistent_index: None,
        term: None,
        storage_version: None,
        cluster_version: None,
        members: Vec::new(),
        removed_members: Vec::new(),
        buckets: Vec::new(),
        structure: None,
        resources: Vec::new(),
        resources_complete: false,
        bootstrap: BootstrapReport {
            present: false,
            keys: Vec::new(),
            token_decrypts: None,
        },
        sqlite: None,
    };
    if let Some((structure, tally)) = walked {
        checks.extend(walk_checks(&structure, &tally));
        fill_from_walk(&mut report, structure, tally);
    }
    report.healthy = checks.iter().all(|c| c.ok);
    report.checks = checks;
    report
}

fn fill_from_walk(report: &mut InspectReport, structure: Structure, tally: Tally) {
    report.etcd_status = Some(EtcdStatus {
        hash: tally.hash(),
        revision: tally.revision.unwrap_or(0),
        total_key: tally.total_key,
        total_size: structure.high_water_mark * u64::from(structure.page_size),
    });
    report.live_keys = tally.live_keys();
    report.resources = tally.groups();
    report.resources_complete = !tally.keys_incomplete;
    report.compact_revision = tally.scheduled_compact;
    report.finished_compact_revision = tally.finished_compact;
    report.consistent_index = tally.consistent_index;
    report.term = tally.term;
    report.storage_version = tally.storage_version.clone();
    report.cluster_version = tally.cluster_version.clone();
    report.members = tally.members.clone();
    report.removed_members = tally.removed_members.clone();
    report.buckets = tally
        .buckets
        .iter()
        .map(|(name, entries)| BucketCount {
            name: name.clone(),
            entries: *entries,
        })
        .collect();
    report.bootstrap.keys = tally
        .bootstrap
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k.clone())
        .collect();
    report.bootstrap.present = !report.bootstrap.keys.is_empty();
    report.structure = Some(structure);
}

/// `no`, or `yes (age), to <fingerprints>`.
fn encryption_line(r: &InspectReport) -> String {
    match (r.encrypted, r.encrypted_to.is_empty()) {
        (false, _) => "no".to_string(),
        (true, true) => "yes (age), to keys not recorded with the snapshot".to_string(),
        (true, false) => format!("yes (age), to {}", r.encrypted_to.join(",")),
    }
}

/// The report as a human-readable table.
pub fn render_table(r: &InspectReport) -> String {
    let mut out = String::new();
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let _ = writeln!(out, "Snapshot:          {}", r.source);
    let _ = writeln!(out, "Datastore:         {}", r.datastore.as_str());
    let _ = writeln!(
        out,
        "Verdict:           {}",
        if r.healthy { "healthy" } else { "DAMAGED" }
    );
    let _ = writeln!(out, "File size:         {}", r.file_size);
    let _ = writeln!(out, "Encrypted:         {}", encryption_line(r));
    let sha_label = match r.datastore {
        ImageKind::Etcd => "SHA-256 (trailer): ",
        ImageKind::Sqlite => "SHA-256 (image):   ",
    };
    let _ = writeln!(out, "{sha_label}{}", r.sha256.as_deref().unwrap_or("-"));
    if let Some(s) = &r.etcd_status {
        let _ = writeln!(out, "Hash (crc32c):     {:08x}", s.hash);
        let _ = writeln!(out, "Revision:          {}", s.revision);
        let _ = writeln!(
            out,
            "Total keys:        {} (all bucket entries, as etcd 3.5 counts)",
            s.total_key
        );
        let _ = writeln!(out, "Total size:        {}", s.total_size);
    }
    if let Some(s) = &r.sqlite {
        let _ = writeln!(out, "Revision (kine):   {}", s.revision);
        let _ = writeln!(
            out,
            "Rows (kine):       {} (every revision of every key)",
            s.rows
        );
        let _ = writeln!(
            out,
            "Pages:             {} of {} bytes",
            s.pages, s.page_size
        );
    }
    let _ = writeln!(out, "Live keys:         {}", r.live_keys);
    let _ = writeln!(
        out,
        "Compact revision:  {} (finished {})",
        opt(r.compact_revision),
        opt(r.finished_compact_revision)
    );
    let _ = writeln!(
        out,
        "Consistent index:  {} (term {})",
        opt(r.consistent_index),
        opt(r.term)
    );
    let _ = writeln!(
        out,
        "Cluster version:   {}",
        r.cluster_version.as_deref().unwrap_or("-")
    );
    for m in &r.members {
        let learner = if m.is_learner { " (learner)" } else { "" };
        let _ = writeln!(
            out,
            "Member:            {} {} {}{learner}",
            m.id,
            m.name,
            m.peer_urls.join(",")
        );
    }
    let token = match r.bootstrap.token_decrypts {
        Some(true) => ", the token decrypts it",
        Some(false) => ", the token does NOT decrypt it",
        None => "",
    };
    let present = if r.bootstrap.present {
        "present"
    } else {
        "absent"
    };
    let _ = writeln!(out, "Bootstrap data:    {present}{token}");
    let _ = writeln!(out, "\nCHECK       RESULT  DETAIL");
    for c in &r.checks {
        let _ = writeln!(
            out,
            "{:<11} {:<7} {}",
            c.name,
            if c.ok { "ok" } else { "FAILED" },
            c.detail
        );
    }
    if !r.resources.is_empty() {
        let _ = writeln!(
            out,
            "\nPREFIX                                             KEYS        BYTES"
        );
        for g in &r.resources {
            let _ = writeln!(out, "{:<48} {:>6} {:>12}", g.prefix, g.keys, g.bytes);
        }
        if !r.resources_complete {
            let _ = writeln!(
                out,
                "(more distinct keys than the inspector follows; the table is partial)"
            );
        }
    }
    out
}
