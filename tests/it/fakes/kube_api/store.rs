//! The in-memory object store behind the Kubernetes API stand-in: objects keyed by collection,
//! namespace and name, one global resourceVersion counter, the change history that watches
//! replay, the request log and the injected faults. It owns the bookkeeping every write shares
//! (uid, creationTimestamp, resourceVersion, generation, deletion with finalizers) and must not
//! know about HTTP: routes turn its results into responses.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::ids::{new_uid, now_timestamp};
use super::paths::{Target, guess_kind};

/// How many changes watches can replay; an older resourceVersion gets 410 Expired.
const HISTORY: usize = 10_000;

/// `(collection, namespace or "", name)`.
pub type Key = (String, String, String);

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub query: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One committed write, as watches see it (`previous` lets a selector watch turn an object
/// leaving its selection into DELETED, as the apiserver does).
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub key: Key,
    pub kind: ChangeType,
    pub object: Value,
    pub previous: Option<Value>,
}

struct Fault {
    method: String,
    path_prefix: String,
    code: u16,
    remaining: usize,
}

pub struct Store {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    /// The oldest resourceVersion a watch may resume from (raised by history trimming).
    oldest_rv: u64,
    changes: broadcast::Sender<Arc<Change>>,
    requests: Vec<SeenRequest>,
    faults: Vec<Fault>,
    /// Serve custom resources only once their CRD is stored (`KubeApi::require_crds`).
    pub require_crds: bool,
}

pub fn key_of(target: &Target, name: &str) -> Key {
    let ns = target.namespace.clone().unwrap_or_default();
    (target.collection.clone(), ns, name.to_string())
}

impl Store {
    pub fn new() -> Store {
        Store {
            objects: BTreeMap::new(),
            rv: 100,
            history: VecDeque::new(),
            oldest_rv: 100,
            changes: broadcast::channel(4096).0,
            requests: Vec::new(),
            faults: Vec::new(),
            require_crds: false,
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of a collection (in one namespace, or all), in key order.
    pub fn list(&self, collection: &str, namespace: Option<&str>) -> Vec<(&Key, &Value)> {
        self.objects
            .iter()
            .filter(|(k, _)| k.0 == collection && namespace.is_none_or(|ns| k.1 == ns))
            .collect()
    }

    /// The kind of a collection: from a stored object, a registered CRD, or the plural.
    pub fn kind_of(&self, target: &Target) -> String {
        let seen = self.objects.iter().find(|(k, _)| k.0 == target.collection);
        if let Some(kind) = seen.and_then(|(_, v)| v["kind"].as_str()) {
            return kind.to_string();
        }
        if let Some(kind) = self
            .crd(target)
            .and_then(|crd| crd["spec"]["names"]["kind"].as_str())
        {
            return kind.to_string();
        }
        guess_kind(&target.resource)
    }

    /// The CustomResourceDefinition registered for a target's group and resource, if any.
    pub fn crd(&self, target: &Target) -> Option<&Value> {
        if target.group.is_empty() {
            return None;
        }
        let name = format!("{}.{}", target.resource, target.group);
        self.objects.iter().find_map(|(k, v)| {
            (k.0 == "/apis/apiextensions.k8s.io/v1/customresourcedefinitions" && k.2 == name)
                .then_some(v)
        })
    }

    /// Subscribes to changes and snapshots the replayable history, atomically.
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<Change>>, Vec<Arc<Change>>, u64) {
        let history = self.history.iter().cloned().collect();
        (self.changes.subscribe(), history, self.oldest_rv)
    }

    /// Forgets the history, so watches resuming from any earlier resourceVersion get 410
    /// (what etcd compaction does to a real apiserver).
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest_rv = self.rv;
    }

    /// Fills the server-owned metadata of a new object and stores it.
    pub fn insert_new(&mut self, target: &Target, key: Key, mut object: Value) -> Value {
        let meta = &mut object["metadata"];
        meta["name"] = json!(key.2);
        match &target.namespace {
            Some(ns) => meta["namespace"] = json!(ns),
            None => {
                if let Some(m) = meta.as_object_mut() {
                    m.remove("namespace");
                }
            }
        }
        meta["uid"] = json!(new_uid());
        meta["creationTimestamp"] = json!(now_timestamp());
        meta["generation"] = json!(1);
        if let Some(m) = meta.as_object_mut() {
            m.remove("deletionTimestamp");
        }
        self.fill_type(target, &mut object);
        self.commit(key, object, None)
    }

    /// Stores a new version of an existing object: server-owned metadata is kept, generation
    /// goes up when anything outside metadata and status changed; an object being deleted
    /// whose finalizers are now empty goes away.
    pub fn replace(&mut self, target: &Target, key: Key, mut object: Value) -> Value {
        let old = self.objects.get(&key).cloned().unwrap_or(Value::Null);
        let old_meta = &old["metadata"];
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "namespace",
            "name",
        ] {
            match old_meta.get(field) {
                Some(value) => object["metadata"][field] = value.clone(),
                None => {
                    if let Some(m) = object["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        let generation = old_meta["generation"].as_i64().unwrap_or(1);
        let bumped = spec_changed(&old, &object);
        object["metadata"]["generation"] = json!(generation + i64::from(bumped));
        self.fill_type(target, &mut object);
        let finalizers_done = object["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
        if object["metadata"].get("deletionTimestamp").is_some() && finalizers_done {
            self.objects.insert(key.clone(), object);
            return self.delete(&key).expect("just stored");
        }
        self.commit(key, object, Some(old))
    }

    /// Deletes now, or marks for deletion when finalizers remain (MODIFIED, kept).
    pub fn delete(&mut self, key: &Key) -> Option<Value> {
        let current = self.objects.get(key)?.clone();
        let pending = current["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if pending {
            if current["metadata"].get("deletionTimestamp").is_some() {
                return Some(current);
            }
            let mut marked = current.clone();
            marked["metadata"]["deletionTimestamp"] = json!(now_timestamp());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            return Some(self.commit(key.clone(), marked, Some(current)));
        }
        self.objects.remove(key);
        self.rv += 1;
        let mut gone = current.clone();
        gone["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(
            key.clone(),
            ChangeType::Deleted,
            gone.clone(),
            Some(current),
        );
        Some(gone)
    }

    /// Removes an object outright, finalizers or not (fixtures).
    pub fn purge(&mut self, key: &Key) -> Option<Value> {
        if let Some(m) = self
            .objects
            .get_mut(key)
            .and_then(|o| o["metadata"].as_object_mut())
        {
            m.remove("finalizers");
        }
        self.delete(key)
    }

    fn fill_type(&self, target: &Target, object: &mut Value) {
        object["apiVersion"] = json!(target.api_version());
        if object["kind"].as_str().is_none_or(str::is_empty) {
            object["kind"] = json!(self.kind_of(target));
        }
    }

    fn commit(&mut self, key: Key, mut object: Value, previous: Option<Value>) -> Value {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key.clone(), object.clone());
        let kind = if previous.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        self.record(key, kind, object.clone(), previous);
        object
    }

    fn record(&mut self, key: Key, kind: ChangeType, object: Value, previous: Option<Value>) {
        let change = Arc::new(Change {
            rv: self.rv,
            key,
            kind,
            object,
            previous,
        });
        self.history.push_back(change.clone());
        if self.history.len() > HISTORY
            && let Some(dropped) = self.history.pop_front()
        {
            self.oldest_rv = dropped.rv;
        }
        // No receiver is fine: nobody is watching.
        let _ = self.changes.send(change);
    }

    pub fn log_request(&mut self, request: SeenRequest) {
        self.requests.push(request);
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.requests.clone()
    }

    pub fn add_fault(&mut self, method: &str, path_prefix: &str, code: u16, count: usize) {
        self.faults.push(Fault {
            method: method.to_ascii_uppercase(),
            path_prefix: path_prefix.to_string(),
            code,
            remaining: count,
        });
    }

    /// The code of the first armed fault matching this request, consuming one use of it.
    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<u16> {
        let fault = self.faults.iter_mut().find(|f| {
            f.remaining > 0
                && f.method.eq_ignore_ascii_case(method)
                && path.starts_with(&f.path_prefix)
        })?;
        fault.remaining -= 1;
        let code = fault.code;
        self.faults.retain(|f| f.remaining > 0);
        Some(code)
    }
}

/// True when anything but metadata and status differs (what bumps metadata.generation).
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::kube_api::paths::parse;

    fn secret_target() -> Target {
        parse("/api/v1/namespaces/ns/secrets/a").unwrap()
    }

    #[test]
    fn writes_bump_the_global_resource_version_and_generation_on_spec_changes() {
        let mut store = Store::new();
        let t = secret_target();
        let key = key_of(&t, "a");
        let created = store.insert_new(&t, key.clone(), json!({"metadata": {}, "data": {}}));
        assert_eq!(created["metadata"]["resourceVersion"], "101");
        assert_eq!(created["kind"], "Secret");
        assert_eq!(created["metadata"]["namespace"], "ns");
        let mut next = created.clone();
        next["metadata"]["labels"] = json!({"x": "y"});
        let relabelled = store.replace(&t, key.clone(), next.clone());
        assert_eq!(relabelled["metadata"]["generation"], 1);
        assert_eq!(relabelled["metadata"]["uid"], created["metadata"]["uid"]);
        next["data"] = json!({"k": "dg=="});
        assert_eq!(store.replace(&t, key, next)["metadata"]["generation"], 2);
        assert_eq!(store.resource_version(), 103);
    }

    #[test]
    fn finalizers_hold_deletion_until_removed() {
        let mut store = Store::new();
        let t = secret_target();
        let key = key_of(&t, "a");
        let obj = json!({"metadata": {"finalizers": ["x/y"]}});
        store.insert_new(&t, key.clone(), obj);
        let marked = store.delete(&key).unwrap();
        assert!(marked["metadata"]["deletionTimestamp"].is_string());
        assert!(store.get(&key).is_some());
        let mut released = marked.clone();
        released["metadata"]["finalizers"] = json!([]);
        store.replace(&t, key.clone(), released);
        assert!(store.get(&key).is_none());
        let kinds: Vec<_> = store.history.iter().map(|c| c.kind).collect();
        use ChangeType::*;
        assert_eq!(kinds, [Added, Modified, Deleted]);
    }

    #[test]
    fn faults_are_consumed_in_order() {
        let mut store = Store::new();
        store.add_fault("get", "/api/v1/namespaces/a", 403, 2);
        assert_eq!(store.take_fault("PUT", "/api/v1/namespaces/a/x"), None);
        assert_eq!(store.take_fault("GET", "/api/v1/namespaces/a/x"), Some(403));
        assert_eq!(store.take_fault("GET", "/api/v1/namespaces/a/y"), Some(403));
        assert_eq!(store.take_fault("GET", "/api/v1/namespaces/a/x"), None);
    }
}
