//! Request paths of the Kubernetes API stand-in: splitting a URL path into collection, namespace,
//! name and subresource, and naming things (apiVersion, kind, qualified resource) the way the
//! apiserver does. Pure functions only; no store access, no HTTP.

/// Where a request points. `collection` is the namespace-free key of the resource type
/// (`/api/v1/secrets`, `/apis/k3s.cattle.io/v1/etcdsnapshotfiles`), so a namespaced object and an
/// all-namespaces list of the same type meet in the same collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub collection: String,
    /// Empty for the core group.
    pub group: String,
    pub version: String,
    pub resource: String,
    /// `None` for cluster-scoped paths and all-namespaces lists.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    /// `v1` or `group/version`, as objects of this type carry it.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `secrets` or `etcdsnapshotfiles.k3s.cattle.io`, as the apiserver names types in messages.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...`; `None` for anything else (discovery
/// documents, `/version`, malformed paths), which the server answers with 404.
pub fn parse(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    if rest.is_empty() || rest.iter().any(|s| s.is_empty()) {
        return None;
    }
    // `namespaces/{ns}/{resource}...` is namespaced, except the namespace object's own
    // subresources (`namespaces/{ns}/status`, `namespaces/{ns}/finalize`).
    let namespaced = rest[0] == "namespaces"
        && rest.len() >= 3
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    let (namespace, rest) = if namespaced {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.len() > 3 {
        return None;
    }
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    Some(Target {
        collection: format!("{prefix}/{}", rest[0]),
        group: group.to_string(),
        version: version.to_string(),
        resource: rest[0].to_string(),
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()),
    })
}

/// The kind of a well-known resource, or a best guess from the plural (`widgets` → `Widget`);
/// the store prefers a kind it has seen on an object or in a registered CRD.
pub fn guess_kind(resource: &str) -> String {
    let known = [
        ("secrets", "Secret"),
        ("configmaps", "ConfigMap"),
        ("events", "Event"),
        ("nodes", "Node"),
        ("namespaces", "Namespace"),
        ("pods", "Pod"),
        ("services", "Service"),
        ("endpoints", "Endpoints"),
        ("leases", "Lease"),
        ("etcdsnapshotfiles", "ETCDSnapshotFile"),
        ("customresourcedefinitions", "CustomResourceDefinition"),
    ];
    if let Some((_, kind)) = known.iter().find(|(plural, _)| *plural == resource) {
        return kind.to_string();
    }
    let singular = resource.strip_suffix('s').unwrap_or(resource);
    let mut chars = singular.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
pub fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string as decoded `(key, value)` pairs, in order.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_core_object_with_subresource() {
        let t = parse("/api/v1/namespaces/kube-system/secrets/s3/status").unwrap();
        assert_eq!(t.collection, "/api/v1/secrets");
        assert_eq!(t.namespace.as_deref(), Some("kube-system"));
        assert_eq!(t.name.as_deref(), Some("s3"));
        assert_eq!(t.subresource.as_deref(), Some("status"));
        assert_eq!(t.api_version(), "v1");
    }

    #[test]
    fn cluster_scoped_group_collection() {
        let t = parse("/apis/k3s.cattle.io/v1/etcdsnapshotfiles").unwrap();
        assert_eq!(t.collection, "/apis/k3s.cattle.io/v1/etcdsnapshotfiles");
        assert_eq!((&t.namespace, &t.name), (&None, &None));
        assert_eq!(t.qualified_resource(), "etcdsnapshotfiles.k3s.cattle.io");
        assert_eq!(t.api_version(), "k3s.cattle.io/v1");
    }

    #[test]
    fn namespace_objects_are_cluster_scoped() {
        let t = parse("/api/v1/namespaces/default").unwrap();
        assert_eq!(
            (t.resource.as_str(), t.name.as_deref()),
            ("namespaces", Some("default"))
        );
        let s = parse("/api/v1/namespaces/default/status").unwrap();
        assert_eq!(s.subresource.as_deref(), Some("status"));
        assert_eq!(s.namespace, None);
    }

    #[test]
    fn other_paths_are_not_resources() {
        assert_eq!(parse("/version"), None);
        assert_eq!(parse("/api/v1"), None);
        assert_eq!(parse("/api/v1/namespaces/a/secrets/b/c/d"), None);
    }

    #[test]
    fn kinds_and_query_decoding() {
        assert_eq!(guess_kind("configmaps"), "ConfigMap");
        assert_eq!(guess_kind("widgets"), "Widget");
        let q = parse_query("labelSelector=app+in+%28a%2Cb%29&watch=1&x");
        assert_eq!(q[0], ("labelSelector".into(), "app in (a,b)".into()));
        assert_eq!(q[1], ("watch".into(), "1".into()));
        assert_eq!(q[2], ("x".into(), String::new()));
        assert_eq!(percent_decode("100%"), "100%");
    }
}
