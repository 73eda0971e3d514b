//! The API's `SnapshotHandler`: evaluates the config engine afresh with the request's layer on
//! top, then runs the operation. This is where a request meets the server's merged config.
//!
//! Operations run as tasks on the daemon's tracker, not inside the HTTP request: a client that
//! disconnects or times out never cancels a snapshot half-way, and shutdown waits for them.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::api::request::{
    PlannedOperation, check_own_credentials, own_credentials_only, plan_request,
};
use crate::api::request_paths::{
    MAX_CA_BYTES, PathError, allowed_dir, is_inline_pem, read_request_ca,
};
use crate::api::server::{HandlerError, HandlerFuture, HandlerReply, SnapshotHandler};
use crate::api::wire::SnapshotRequest;
use crate::config::desired::S3Settings;
use crate::config::{ConfigEngine, DesiredConfig, Layer, RawValue, Resolved, Source};
use crate::errors::error_chain;
use crate::operations::{OperationError, Operations};

/// Serves `POST /db/snapshot` with the shared `Operations`.
pub struct RequestHandler {
    pub engine: ConfigEngine,
    pub operations: Arc<Operations>,
    /// The watcher's last good evaluation, used while the files on disk are invalid.
    pub last_good: watch::Receiver<Arc<Resolved>>,
    pub tracker: TaskTracker,
    /// Shutdown: a restore drill asked for by a request is cancelled (and cleaned up) then.
    pub cancel: tokio_util::sync::CancellationToken,
}

impl SnapshotHandler for RequestHandler {
    fn handle(&self, request: SnapshotRequest) -> HandlerFuture<'_> {
        Box::pin(self.serve(request))
    }
}

impl RequestHandler {
    async fn serve(&self, request: SnapshotRequest) -> Result<HandlerReply, HandlerError> {
        let (operation, mut layer) =
            plan_request(&request).map_err(|e| bad_request(e.to_string()))?;
        let server = self.server_config();
        if let Some(dir) = &request.dir {
            let snapshot = &server.snapshot;
            let canonical = |p: &Path| std::fs::canonicalize(p).ok();
            let dir = allowed_dir(dir, &snapshot.dir, &snapshot.allowed_dirs, canonical)
                .map_err(forbidden)?;
            let dir = RawValue::String(dir.display().to_string());
            layer.set("etcd-snapshot-dir", dir, Source::Request);
        }
        let mut config = self.config_for(&layer)?;
        if layer.get("etcd-s3").is_some()
            && let Some(s3) = config.s3.as_mut()
        {
            let server_s3 = self.server_s3();
            restated_ca(s3, server_s3.as_ref());
            check_own_credentials(&layer, Some(s3), server_s3.as_ref())
                .map_err(|e| bad_request(e.to_string()))?;
            own_credentials_only(s3, &layer);
            read_ca_from_request(s3, server_s3.as_ref(), &server.snapshot.allowed_ca_dirs)?;
        }
        let context = Context {
            ops: Arc::clone(&self.operations),
            tracker: self.tracker.clone(),
            cancel: self.cancel.clone(),
        };
        let task = self.tracker.spawn(execute(context, config, operation));
        task.await.map_err(|e| HandlerError {
            status: 500,
            message: format!("the snapshot operation stopped unexpectedly: {e}"),
        })?
    }

    /// The server's own configuration, without any request: from the files now, or the last
    /// good evaluation while they are invalid.
    fn server_config(&self) -> DesiredConfig {
        match self.engine.evaluate(None) {
            Ok(resolved) => resolved.config,
            Err(_) => self.last_good.borrow().config.clone(),
        }
    }

    /// The server's own S3 settings as they are with S3 on, the baseline a request's S3 block
    /// is compared with: from the files now, or the last good evaluation while they are
    /// invalid. None when the server has no usable S3 settings (no bucket, for one).
    fn server_s3(&self) -> Option<S3Settings> {
        let mut s3_on = Layer::new();
        s3_on.set("etcd-s3", RawValue::Bool(true), Source::Request);
        match self.engine.evaluate(Some(&s3_on)) {
            Ok(resolved) => resolved.config.s3,
            Err(_) if self.engine.evaluate(None).is_ok() => None,
            Err(_) => {
                let last_good = Arc::clone(&self.last_good.borrow());
                ConfigEngine::reapply(&last_good, &s3_on)
                    .ok()
                    .and_then(|r| r.config.s3)
            }
        }
    }

    /// The config for one request: a fresh evaluation, or, when the files are invalid right now,
    /// the last good one with the request applied (the watcher has already reported the files).
    fn config_for(&self, request: &Layer) -> Result<DesiredConfig, HandlerError> {
        let as_bad_request = |errors: crate::config::ConfigErrors| {
            bad_request(errors.to_string().trim_end().to_string())
        };
        match self.engine.evaluate(Some(request)) {
            Ok(resolved) => Ok(resolved.config),
            Err(errors) if self.engine.evaluate(None).is_ok() => Err(as_bad_request(errors)),
            Err(_) => {
                tracing::warn!(
                    "config files are invalid; serving the request with the last good configuration"
                );
                let last_good = Arc::clone(&self.last_good.borrow());
                ConfigEngine::reapply(&last_good, request)
                    .map(|r| r.config)
                    .map_err(as_bad_request)
            }
        }
    }
}

/// What a request's task needs besides its config and operation.
struct Context {
    ops: Arc<Operations>,
    tracker: TaskTracker,
    cancel: tokio_util::sync::CancellationToken,
}

/// Runs one operation to completion, whether or not anyone still waits for the answer; a
/// drill stops at shutdown instead. A save is followed by a drill of its copies when
/// `etcd-snapshot-verify-after-save` is on.
async fn execute(
    context: Context,
    config: DesiredConfig,
    operation: PlannedOperation,
) -> Result<HandlerReply, HandlerError> {
    let Context {
        ops,
        tracker,
        cancel,
    } = context;
    let run = ops.run(&config, &operation);
    let report = if matches!(operation, PlannedOperation::Verify { .. }) {
        tokio::select! {
            _ = cancel.cancelled() => {
                return Err(HandlerError {
                    status: 503,
                    message: "the server is shutting down; the restore drill was stopped".into(),
                });
            }
            report = run => report,
        }
    } else {
        run.await
    }
    .map_err(operation_failed)?;
    if let crate::operations::Report::Saved(outcome) = &report {
        crate::scheduler::drills::after_save(&ops, &config, &outcome.created, &tracker, &cancel);
    }
    Ok(report.into())
}

/// Our CLI sends an endpoint CA file's content as inline PEM. When that is the very content of
/// the server's own CA file, the request restates the server's setting: keep the server's.
fn restated_ca(requested: &mut S3Settings, server: Option<&S3Settings>) {
    let Some(server_ca) = server.and_then(|s| s.endpoint_ca.as_ref()) else {
        return;
    };
    let Some(pem) = requested
        .endpoint_ca
        .as_deref()
        .filter(|v| is_inline_pem(v))
    else {
        return;
    };
    if is_inline_pem(server_ca) {
        return;
    }
    let own = crate::fsutil::read_capped(Path::new(server_ca), MAX_CA_BYTES);
    if own.is_ok_and(|bytes| String::from_utf8_lossy(&bytes).trim() == pem.trim()) {
        requested.endpoint_ca = Some(server_ca.clone());
    }
}

/// An endpoint CA path the request names (not the server's own) is read here, under the
/// request path rules, and passed on as PEM: the S3 client never opens a request's path.
fn read_ca_from_request(
    s3: &mut S3Settings,
    server: Option<&S3Settings>,
    allowed: &[std::path::PathBuf],
) -> Result<(), HandlerError> {
    let Some(value) = s3.endpoint_ca.as_deref() else {
        return Ok(());
    };
    let own = server.and_then(|s| s.endpoint_ca.as_deref()) == Some(value);
    if own || is_inline_pem(value) {
        return Ok(());
    }
    let pem = read_request_ca(value, allowed).map_err(forbidden)?;
    s3.endpoint_ca = Some(pem);
    Ok(())
}

fn forbidden(error: PathError) -> HandlerError {
    HandlerError {
        status: 403,
        message: error.to_string(),
    }
}

fn bad_request(message: String) -> HandlerError {
    HandlerError {
        status: 400,
        message,
    }
}

fn operation_failed(error: OperationError) -> HandlerError {
    let message = error_chain(&error);
    tracing::error!(error = %message, "snapshot request failed");
    HandlerError {
        status: if error.is_bad_request() { 400 } else { 500 },
        message,
    }
}
