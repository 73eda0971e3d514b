//! The HTTP face of the Kubernetes API stand-in: bearer-token check, request log, injected
//! faults, discovery documents, then GET (one, list with selectors and pagination, watch), POST,
//! PUT, PATCH and DELETE dispatched to the store, with `events.k8s.io` Events served from the
//! core Event storage and Tables for clients that ask for them. JSON only. Writes live in
//! `writes.rs`, watches in `watch.rs`, discovery in `discovery.rs`, Tables in `table.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};

use super::discovery;
use super::events_view;
use super::paths::{self, Target, parse_query};
use super::selectors::Selector;
use super::status::{self, ApiError};
use super::store::{SeenRequest, Store, key_of};
use super::table;
use super::watch::{self, ResponseBody, WatchRequest};
use super::writes::{self, StatusMode, status_mode};

/// What every connection shares.
pub struct Shared {
    pub store: Mutex<Store>,
    pub token: String,
    pub shutdown: tokio::sync::watch::Receiver<()>,
}

type Params = [(String, String)];

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn flag(params: &Params, name: &str) -> bool {
    matches!(param(params, name), Some("true" | "1"))
}

fn json_response(code: u16, body: &Value) -> Response<ResponseBody> {
    let bytes = Bytes::from(serde_json::to_vec(body).expect("json"));
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(ResponseBody::Full(Some(bytes)))
        .expect("response")
}

fn error_response(error: ApiError) -> Response<ResponseBody> {
    json_response(error.code, &error.body)
}

/// The RBAC verb of a request (for Forbidden messages).
fn verb(method: &str, target: Option<&Target>, params: &Params) -> &'static str {
    let named = target.is_some_and(|t| t.name.is_some());
    match method {
        "GET" if flag(params, "watch") => "watch",
        "GET" if named => "get",
        "GET" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if named => "delete",
        "DELETE" => "deletecollection",
        _ => "get",
    }
}

pub async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<ResponseBody> {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let header = |name: &str| {
        let value = request.headers().get(name).and_then(|v| v.to_str().ok());
        value.unwrap_or_default().to_string()
    };
    let authorized = header("authorization") == format!("Bearer {}", shared.token);
    let content_type = header("content-type");
    let accept = header("accept");
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let target = paths::parse(&path);
    let params = parse_query(&query);
    let fault = {
        let mut store = shared.store.lock().expect("store lock");
        store.log_request(SeenRequest {
            method: method.clone(),
            path: path.clone(),
            query,
        });
        if authorized {
            store.take_fault(&method, &path)
        } else {
            None
        }
    };
    if !authorized {
        return error_response(status::unauthorized());
    }
    if let Some(code) = fault {
        return error_response(status::injected(
            code,
            target.as_ref(),
            verb(&method, target.as_ref(), &params),
        ));
    }
    let Some(target) = target else {
        let store = shared.store.lock().expect("store lock");
        return match discovery::answer(&store, &path) {
            Some(document) if method == "GET" => json_response(200, &document),
            _ => error_response(status::no_route(&path)),
        };
    };
    if !served(&shared.store, &target) {
        return not_served();
    }
    if method == "GET" && flag(&params, "watch") {
        return watch_response(&shared, target, &params);
    }
    let request = ResourceRequest {
        method: &method,
        params: &params,
        content_type: &content_type,
        accept: &accept,
    };
    respond(&shared, &request, target, body)
}

/// What the apiserver's mux answers for a group/resource nobody serves: not a Status.
fn not_served() -> Response<ResponseBody> {
    Response::builder()
        .status(404)
        .header("content-type", "text/plain; charset=utf-8")
        .body(ResponseBody::Full(Some(Bytes::from_static(
            b"404 page not found\n",
        ))))
        .expect("response")
}

/// A watch: a chunked stream of JSON lines until it times out or the server stops.
fn watch_response(shared: &Shared, target: Target, params: &Params) -> Response<ResponseBody> {
    match watch_request(target, params) {
        Ok(request) => {
            let rx = watch::start(&shared.store, request, shared.shutdown.clone());
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(ResponseBody::Stream(rx))
                .expect("response")
        }
        Err(error) => error_response(error),
    }
}

/// The parts of a request the store's answer depends on.
struct ResourceRequest<'a> {
    method: &'a str,
    params: &'a Params,
    content_type: &'a str,
    accept: &'a str,
}

/// A read or write of a served resource: `events.k8s.io` Events converted to and from the
/// core storage, and the answer turned into a Table when the client asked for one.
fn respond(
    shared: &Shared,
    request: &ResourceRequest<'_>,
    target: Target,
    body: Bytes,
) -> Response<ResponseBody> {
    // Watches of `events.k8s.io` Events stay on their own collection: nothing here watches
    // Events, and converting the stream is not worth it.
    let events_view = events_view::is_events_view(&target);
    let (target, body) = if events_view {
        let body = events_view::request_to_core(request.content_type, &body);
        (events_view::core_target(&target), Bytes::from(body))
    } else {
        (target, body)
    };
    let (method, params) = (request.method, request.params);
    let mut store = shared.store.lock().expect("store lock");
    match dispatch(
        &mut store,
        method,
        &target,
        params,
        request.content_type,
        &body,
    ) {
        Ok((code, mut value)) => {
            if events_view {
                value = events_view::response_to_view(value);
            }
            if method == "GET" && table::wants_table(request.accept) {
                let crd = store.crd(&target);
                let include = param(params, "includeObject");
                value = table::to_table(crd, &target.version, &value, include, chrono::Utc::now());
            }
            json_response(code, &value)
        }
        Err(error) => error_response(error),
    }
}

/// False for a custom resource without its CRD, when the test asked for CRDs to be required.
fn served(store: &Mutex<Store>, target: &Target) -> bool {
    let store = store.lock().expect("store lock");
    !store.require_crds || writes::is_builtin(target) || store.crd(target).is_some()
}

fn selectors(params: &Params) -> Result<(Selector, Selector), ApiError> {
    let labels = Selector::labels(param(params, "labelSelector").unwrap_or_default());
    let fields = Selector::fields(param(params, "fieldSelector").unwrap_or_default());
    Ok((
        labels.map_err(status::bad_request)?,
        fields.map_err(status::bad_request)?,
    ))
}

fn watch_request(target: Target, params: &Params) -> Result<WatchRequest, ApiError> {
    let (labels, fields) = selectors(params)?;
    let rv = param(params, "resourceVersion").filter(|rv| !rv.is_empty());
    let resource_version = match rv {
        Some(rv) => Some(
            rv.parse()
                .map_err(|_| status::bad_request(format!("invalid resource version: {rv}")))?,
        ),
        None => None,
    };
    // The apiserver picks a random 30-60 min timeout when none is asked for.
    let timeout = param(params, "timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1800);
    Ok(WatchRequest {
        target,
        labels,
        fields,
        resource_version,
        timeout: Duration::from_secs(timeout),
        bookmarks: flag(params, "allowWatchBookmarks"),
        send_initial_events: flag(params, "sendInitialEvents"),
    })
}

fn dispatch(
    store: &mut Store,
    method: &str,
    target: &Target,
    params: &Params,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    match target.subresource.as_deref() {
        None => {}
        Some("status") if status_mode(store, target) != StatusMode::Plain => {}
        Some(_) => return Err(status::no_route(&target.collection)),
    }
    let name = target.name.as_deref();
    match (method, name) {
        ("GET", None) => list(store, target, params).map(|v| (200, v)),
        ("GET", Some(name)) => {
            let found = store.get(&key_of(target, name)).cloned();
            found
                .map(|v| (200, v))
                .ok_or_else(|| status::not_found(target, name))
        }
        ("POST", None) if target.subresource.is_none() => writes::create(store, target, body),
        ("PUT", Some(name)) => writes::replace(store, target, name, body),
        ("PATCH", Some(name)) => writes::patch(store, target, name, content_type, params, body),
        ("DELETE", Some(name)) if target.subresource.is_none() => delete(store, target, name, body),
        ("DELETE", None) => delete_collection(store, target, params),
        _ => Err(status::method_not_allowed(method)),
    }
}

/// A continue token: the list's resourceVersion and the last key served.
fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    URL_SAFE_NO_PAD.encode(json!([rv, namespace, name]).to_string())
}

fn decode_continue(token: &str) -> Option<(u64, String, String)> {
    let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
    serde_json::from_slice(&raw).ok()
}

fn list(store: &Store, target: &Target, params: &Params) -> Result<Value, ApiError> {
    let (labels, fields) = selectors(params)?;
    let (rv, after) = match param(params, "continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, ns, name) = decode_continue(token)
                .ok_or_else(|| status::bad_request(format!("invalid continue token: {token}")))?;
            (rv, Some((ns, name)))
        }
        None => (store.resource_version(), None),
    };
    let matching: Vec<(&(String, String, String), &Value)> = store
        .list(&target.collection, target.namespace.as_deref())
        .into_iter()
        .filter(|(key, _)| {
            after
                .as_ref()
                .is_none_or(|(ns, name)| (&key.1, &key.2) > (ns, name))
        })
        .filter(|(_, v)| labels.matches_labels(v) && fields.matches_fields(v))
        .collect();
    let limit = param(params, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let page = limit.unwrap_or(matching.len()).min(matching.len());
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if page < matching.len() {
        let (last, _) = matching[page - 1];
        metadata["continue"] = json!(encode_continue(rv, &last.1, &last.2));
        metadata["remainingItemCount"] = json!(matching.len() - page);
    }
    let items: Vec<Value> = matching[..page].iter().map(|(_, v)| (*v).clone()).collect();
    Ok(json!({
        "kind": format!("{}List", store.kind_of(target)),
        "apiVersion": target.api_version(),
        "metadata": metadata,
        "items": items,
    }))
}

/// DELETE honours `preconditions` from DeleteOptions; built-in types answer with a Success
/// Status, custom resources with the deleted object (as the apiserver does).
fn delete(
    store: &mut Store,
    target: &Target,
    name: &str,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let key = key_of(target, name);
    let current = store
        .get(&key)
        .cloned()
        .ok_or_else(|| status::not_found(target, name))?;
    let options: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    for (field, meta) in [("uid", "uid"), ("resourceVersion", "resourceVersion")] {
        let wanted = options["preconditions"][field].as_str();
        if wanted.is_some_and(|w| current["metadata"][meta].as_str() != Some(w)) {
            return Err(status::conflict(target, name));
        }
    }
    let result = store.delete(&key).expect("present");
    let still_there = store.get(&key).is_some();
    let builtin_status = writes::is_builtin(target) && target.resource != "pods";
    if builtin_status && !still_there {
        let uid = current["metadata"]["uid"].as_str().unwrap_or_default();
        return Ok((200, status::deleted(target, name, uid)));
    }
    Ok((200, result))
}

fn delete_collection(
    store: &mut Store,
    target: &Target,
    params: &Params,
) -> Result<(u16, Value), ApiError> {
    let listed = list(store, target, params)?;
    let mut deleted = Vec::new();
    for item in listed["items"].as_array().into_iter().flatten() {
        let name = item["metadata"]["name"].as_str().unwrap_or_default();
        let mut key = key_of(target, name);
        key.1 = item["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        deleted.extend(store.delete(&key));
    }
    let mut response = listed;
    response["items"] = json!(deleted);
    Ok((200, response))
}
