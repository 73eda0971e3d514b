//! What a listing learns from the bucket for `ls`, as RKE2's list reply does: S3 rows get their
//! uploader (`Rke2-Node-Name`, `Rke2-Token-Hash`) and `.metadata/<name>` contents, through the
//! same per-object cache the resource reconcile uses. The filling never fails the listing (a row
//! it could not read keeps `s3` as its node and is named in the log). The items themselves are
//! built at the edge (`api::wire_convert`).

use super::{Listing, Operations, error_chain};
use crate::store::s3::S3Store;

impl Operations {
    /// Fills the S3 rows of `listing` with their uploader and extra metadata, read from the
    /// objects (only objects this process has not read before cost requests).
    pub(super) async fn fill_listed_sources(&self, store: &S3Store, listing: &mut Listing) {
        let failed = store
            .fill_sources(&mut listing.records, &self.s3_sources)
            .await;
        for (name, e) in &failed {
            tracing::warn!(snapshot = %name, error = %error_chain(e), "failed to read an S3 snapshot's uploader or metadata; it is listed with node s3");
        }
        if failed.is_empty() {
            self.set_s3_recipient_gauge(&listing.records);
        }
    }
}
