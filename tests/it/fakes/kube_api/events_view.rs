//! One Event storage, two API views, as on a real apiserver: `events.k8s.io/v1` Events and core
//! `v1` Events are the same objects, so an event published through one is listed through the
//! other (`kubectl describe` reads core `v1`; kube's recorder writes `events.k8s.io/v1`).
//!
//! The store keeps the core shape. Requests to `events.k8s.io/v1` are converted to core on the
//! way in and back on the way out, renaming the fields the two versions spell differently. Pure
//! functions only; the routing decides when to call them.

use serde_json::{Map, Value};

use super::paths::Target;

/// `events.k8s.io/v1` field name → core `v1` field name, for the fields that differ.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

const EVENTS_GROUP: &str = "events.k8s.io";

/// True for a request to `events.k8s.io/v1` Events.
pub fn is_events_view(target: &Target) -> bool {
    target.group == EVENTS_GROUP && target.resource == "events"
}

/// The same request, addressed to the core storage.
pub fn core_target(target: &Target) -> Target {
    Target {
        collection: "/api/v1/events".into(),
        group: String::new(),
        version: "v1".into(),
        ..target.clone()
    }
}

/// An `events.k8s.io/v1` object (or merge patch) in core shape.
pub fn to_core(object: Value) -> Value {
    convert(object, Direction::ToCore)
}

/// A stored core object in `events.k8s.io/v1` shape.
pub fn to_view(object: Value) -> Value {
    convert(object, Direction::ToView)
}

#[derive(Clone, Copy)]
enum Direction {
    ToCore,
    ToView,
}

impl Direction {
    fn rename(self, name: &str) -> Option<&'static str> {
        RENAMED.iter().find_map(|(view, core)| match self {
            Self::ToCore => (*view == name).then_some(*core),
            Self::ToView => (*core == name).then_some(*view),
        })
    }

    fn api_version(self) -> String {
        match self {
            Self::ToCore => "v1".into(),
            Self::ToView => format!("{EVENTS_GROUP}/v1"),
        }
    }
}

fn convert(object: Value, direction: Direction) -> Value {
    let Value::Object(fields) = object else {
        return object;
    };
    let converted: Map<String, Value> = fields
        .into_iter()
        .map(|(name, value)| match name.as_str() {
            "apiVersion" if value.is_string() => (name, Value::String(direction.api_version())),
            _ => match direction.rename(&name) {
                Some(renamed) => (renamed.to_string(), value),
                None => (name, value),
            },
        })
        .collect();
    Value::Object(converted)
}

/// A response body from the core storage in `events.k8s.io/v1` shape: one Event, or a list
/// whose items are Events. Status bodies pass through.
pub fn response_to_view(body: Value) -> Value {
    match body["kind"].as_str() {
        Some("Event") => to_view(body),
        Some("EventList") => {
            let mut list = body;
            list["apiVersion"] = Value::String(format!("{EVENTS_GROUP}/v1"));
            if let Some(items) = list["items"].as_array_mut() {
                for item in items.iter_mut() {
                    *item = to_view(item.take());
                }
            }
            list
        }
        _ => body,
    }
}

/// A request body (object, merge patch or JSON patch) sent to the view, in core terms.
/// Bodies that are not JSON pass through for the store to reject.
pub fn request_to_core(content_type: &str, body: &[u8]) -> Vec<u8> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    let converted = if content_type.contains("json-patch") {
        json_patch_to_core(value)
    } else {
        to_core(value)
    };
    serde_json::to_vec(&converted).expect("json")
}

/// A JSON patch against the view, with its paths rewritten to the core fields.
pub fn json_patch_to_core(mut patch: Value) -> Value {
    for op in patch.as_array_mut().into_iter().flatten() {
        for field in ["path", "from"] {
            if let Some(path) = op[field].as_str() {
                let mut segments: Vec<String> = path.split('/').map(str::to_string).collect();
                if let Some(first) = segments.get_mut(1)
                    && let Some(core) = Direction::ToCore.rename(first)
                {
                    *first = core.to_string();
                }
                op[field] = Value::String(segments.join("/"));
            }
        }
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_round_trip_between_the_views() {
        let view = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e1", "namespace": "default"},
            "regarding": {"kind": "ETCDSnapshotFile", "name": "local-a"},
            "note": "Snapshot a saved on n1", "reason": "ETCDSnapshotCreated",
            "reportingController": "etcd-snapshot", "reportingInstance": "n1",
            "eventTime": "2025-08-11T10:08:01.000000Z", "type": "Normal"
        });
        let core = to_core(view.clone());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "local-a");
        assert_eq!(core["message"], "Snapshot a saved on n1");
        assert_eq!(core["reportingComponent"], "etcd-snapshot");
        assert_eq!(core["reportingInstance"], "n1");
        assert!(core.get("regarding").is_none() && core.get("note").is_none());
        assert_eq!(to_view(core), view);
    }

    #[test]
    fn lists_and_patches_are_converted() {
        let list = json!({"kind": "EventList", "apiVersion": "v1",
            "items": [{"kind": "Event", "apiVersion": "v1", "message": "m", "count": 2}]});
        let view = response_to_view(list);
        assert_eq!(view["apiVersion"], "events.k8s.io/v1");
        assert_eq!(view["items"][0]["note"], "m");
        assert_eq!(view["items"][0]["deprecatedCount"], 2);
        let status = json!({"kind": "Status", "code": 404});
        assert_eq!(response_to_view(status.clone()), status);
        let patch = json!([{"op": "replace", "path": "/note", "value": "x"},
            {"op": "add", "path": "/series/count", "value": 3}]);
        let core = json_patch_to_core(patch);
        assert_eq!(core[0]["path"], "/message");
        assert_eq!(core[1]["path"], "/series/count");
    }

    #[test]
    fn only_events_k8s_io_events_are_the_view() {
        let target =
            super::super::paths::parse("/apis/events.k8s.io/v1/namespaces/default/events").unwrap();
        assert!(is_events_view(&target));
        let core = core_target(&target);
        assert_eq!(core.collection, "/api/v1/events");
        assert_eq!(core.api_version(), "v1");
        assert_eq!(core.namespace.as_deref(), Some("default"));
        let core_events = super::super::paths::parse("/api/v1/events").unwrap();
        assert!(!is_events_view(&core_events));
    }
}
