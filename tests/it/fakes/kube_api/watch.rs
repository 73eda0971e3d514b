//! Watches of the Kubernetes API stand-in, and the response body type that can stream them.
//! A watch replays the store's change history after the requested resourceVersion (or sends the
//! current objects as ADDED when none is given), then streams live changes as newline-delimited
//! `{"type":..,"object":..}` in a chunked body until `timeoutSeconds`, the client hanging up or
//! the server stopping. Selectors apply to both the old and the new object, so an object leaving
//! the selection arrives as DELETED, as from the apiserver.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::paths::Target;
use super::selectors::Selector;
use super::status::{self, ApiError};
use super::store::{Change, ChangeType, Store};

/// A whole JSON body or a stream of watch lines.
pub enum ResponseBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Stream(rx) => rx
                .poll_recv(cx)
                .map(|line| line.map(|b| Ok(Frame::data(b)))),
        }
    }
}

/// What a watch request asked for.
pub struct WatchRequest {
    pub target: Target,
    pub labels: Selector,
    pub fields: Selector,
    pub resource_version: Option<u64>,
    pub timeout: Duration,
    pub bookmarks: bool,
    pub send_initial_events: bool,
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(&json!({ "type": kind, "object": object })).expect("json");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

impl WatchRequest {
    fn in_scope(&self, change: &Change) -> bool {
        change.key.0 == self.target.collection
            && self
                .target
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == change.key.1)
    }

    /// Selectors, and the name for a watch on an object path (`.../configmaps/x?watch=1`).
    fn selects(&self, object: &Value) -> bool {
        let name = &object["metadata"]["name"];
        if self
            .target
            .name
            .as_ref()
            .is_some_and(|n| name != n.as_str())
        {
            return false;
        }
        self.labels.matches_labels(object) && self.fields.matches_fields(object)
    }

    /// The watch line for a change, if this watch sees it.
    fn render(&self, change: &Change) -> Option<Bytes> {
        if !self.in_scope(change) {
            return None;
        }
        let now = self.selects(&change.object);
        let before = change.previous.as_ref().is_some_and(|p| self.selects(p));
        let kind = match (change.kind, before, now) {
            (ChangeType::Deleted, b, n) if b || n => "DELETED",
            (ChangeType::Added, _, true) | (ChangeType::Modified, false, true) => "ADDED",
            (ChangeType::Modified, true, true) => "MODIFIED",
            (ChangeType::Modified, true, false) => "DELETED",
            _ => return None,
        };
        Some(line(kind, &change.object))
    }

    fn bookmark(&self, kind: &str, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({ "resourceVersion": rv.to_string() });
        if initial_end {
            meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        let object =
            json!({ "kind": kind, "apiVersion": self.target.api_version(), "metadata": meta });
        line("BOOKMARK", &object)
    }
}

/// Everything a watch sends before going live, and the resourceVersion it is current at.
fn opening(
    store: &Store,
    request: &WatchRequest,
    history: &[Arc<Change>],
    oldest: u64,
) -> Result<(Vec<Bytes>, u64), ApiError> {
    let from = request
        .resource_version
        .filter(|rv| *rv != 0 && !request.send_initial_events);
    let Some(from) = from else {
        let namespace = request.target.namespace.as_deref();
        let mut lines: Vec<Bytes> = store
            .list(&request.target.collection, namespace)
            .into_iter()
            .filter(|(_, object)| request.selects(object))
            .map(|(_, object)| line("ADDED", object))
            .collect();
        let rv = store.resource_version();
        if request.send_initial_events && request.bookmarks {
            lines.push(request.bookmark(&store.kind_of(&request.target), rv, true));
        }
        return Ok((lines, rv));
    };
    if from < oldest {
        return Err(status::expired(&from.to_string()));
    }
    let lines = history
        .iter()
        .filter(|c| c.rv > from)
        .filter_map(|c| request.render(c))
        .collect();
    Ok((lines, store.resource_version()))
}

/// Starts a watch; the receiver is the response body. Errors before streaming (an expired
/// resourceVersion) arrive as a single ERROR event, as the apiserver sends them.
pub fn start(
    store: &Mutex<Store>,
    request: WatchRequest,
    mut shutdown: tokio::sync::watch::Receiver<()>,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let (mut changes, opening, kind) = {
        let store = store.lock().expect("store lock");
        let (changes, history, oldest) = store.subscribe();
        (
            changes,
            opening(&store, &request, &history, oldest),
            store.kind_of(&request.target),
        )
    };
    tokio::spawn(async move {
        let (lines, mut current) = match opening {
            Ok(opening) => opening,
            Err(error) => {
                let _ = tx.send(line("ERROR", &error.body)).await;
                return;
            }
        };
        for line in lines {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::Instant::now() + request.timeout;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = tx.closed() => return,
                _ = shutdown.changed() => return,
                change = changes.recv() => match change {
                    Ok(change) if change.rv <= current => {}
                    Ok(change) => {
                        current = change.rv;
                        if let Some(line) = request.render(&change)
                            && tx.send(line).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(line("ERROR", &status::expired(&current.to_string()).body)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
        // Like the apiserver, a watch ending on its timeout tells the client where it got to.
        if request.bookmarks {
            let _ = tx.send(request.bookmark(&kind, current, false)).await;
        }
    });
    rx
}
