//! stub (helper A replaces)
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{ConfigEngine, Resolved};

pub async fn run(
    engine: ConfigEngine,
    tx: tokio::sync::watch::Sender<Arc<Resolved>>,
    cancel: CancellationToken,
) {
    let _ = (engine, tx, cancel);
    todo!()
}
