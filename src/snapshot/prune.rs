//! Retention planning: which snapshots of one prefix on one node to delete.
//!
//! Pure: takes a listing, returns a plan. The store executes it.

/// A local file considered for retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub file_name: String,
    /// mtime in unix seconds; used only when the name carries no timestamp.
    pub mtime_unix: i64,
}

/// What retention will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrunePlan {
    /// Newest first.
    pub keep: Vec<String>,
    /// Oldest last; deleted in this order.
    pub delete: Vec<String>,
}

/// Keeps the newest `retention` snapshots named exactly `<base>-<node>-<unix>[.zip]`, ordered by
/// the name's timestamp; everything else in `candidates` is ignored. `retention == 0` keeps all.
pub fn plan_prune(candidates: &[Candidate], base: &str, node: &str, retention: u32) -> PrunePlan {
    let _ = (candidates, base, node, retention);
    todo!()
}
