//! Installing the `ETCDSnapshotFile` CRD at server start when the operator opts in
//! (`etcd-snapshot-install-crd`): create it, or update one that differs from ours.
//!
//! A CRD is cluster-wide and may belong to RKE2 or to an operator who applied
//! `manifests/crd.yaml`, so only a CRD this product created (it carries `MANAGED_BY_LABEL`) is
//! ever updated; any other that differs is reported and left alone. A server without the right
//! to manage CRDs (403) is an outcome, not an error. The definition itself comes from
//! `crate::kube::crd`; this file only writes it.

use ::kube::api::{Api, PostParams};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use super::ResourceError;
use crate::kube::crd::{CRD_NAME, etcd_snapshot_file_crd};

/// The label (with the value `MANAGED_BY`) on a CRD this product created: the only kind it
/// will ever update.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of `MANAGED_BY_LABEL` on a CRD of ours.
pub const MANAGED_BY: &str = "etcd-snapshot";

/// What `install_crd` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrdInstall {
    Created,
    Updated,
    /// The installed definition already matches ours.
    Unchanged,
    /// A definition written by someone else differs from ours; it is left as it is.
    Foreign,
    /// The apiserver refused (403): log once and carry on with whatever definition exists.
    NotAllowed {
        message: String,
    },
}

/// Creates or updates the `ETCDSnapshotFile` CRD. One retry covers the race with another
/// server installing it at the same moment.
pub async fn install_crd(client: &::kube::Client) -> Result<CrdInstall, ResourceError> {
    let wanted = wanted_crd()?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut last = None;
    for _ in 0..3 {
        match try_install(&api, &wanted).await {
            Ok(done) => return Ok(done),
            Err((_, ::kube::Error::Api(status))) if status.code == 403 => {
                return Ok(CrdInstall::NotAllowed {
                    message: status.message.clone(),
                });
            }
            Err((_, ::kube::Error::Api(status))) if status.code == 409 => {
                last = Some(("install", ::kube::Error::Api(status)));
            }
            Err(other) => {
                last = Some(other);
                break;
            }
        }
    }
    let (action, source) = last.expect("the loop runs at least once");
    Err(ResourceError::Crd {
        action,
        name: CRD_NAME.into(),
        source,
    })
}

async fn try_install(
    api: &Api<CustomResourceDefinition>,
    wanted: &CustomResourceDefinition,
) -> Result<CrdInstall, (&'static str, ::kube::Error)> {
    let params = PostParams::default();
    let current = match api.get_opt(CRD_NAME).await.map_err(|e| ("get", e))? {
        None => {
            api.create(&params, wanted)
                .await
                .map_err(|e| ("create", e))?;
            return Ok(CrdInstall::Created);
        }
        Some(current) => current,
    };
    if spec_covers(&current, wanted) {
        return Ok(CrdInstall::Unchanged);
    }
    if !is_ours(&current) {
        return Ok(CrdInstall::Foreign);
    }
    let mut updated = current;
    updated.spec = wanted.spec.clone();
    api.replace(CRD_NAME, &params, &updated)
        .await
        .map_err(|e| ("update", e))?;
    Ok(CrdInstall::Updated)
}

/// Our definition in the API type, labelled as ours.
fn wanted_crd() -> Result<CustomResourceDefinition, ResourceError> {
    let value = serde_json::to_value(etcd_snapshot_file_crd());
    let mut crd: CustomResourceDefinition =
        value
            .and_then(serde_json::from_value)
            .map_err(|source| ResourceError::CrdConvert {
                name: CRD_NAME.into(),
                source,
            })?;
    crd.metadata.labels = Some([(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string())].into());
    Ok(crd)
}

/// True when the installed CRD was created by this product.
fn is_ours(crd: &CustomResourceDefinition) -> bool {
    crd.metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(MANAGED_BY_LABEL))
        .is_some_and(|value| value == MANAGED_BY)
}

/// Whether the installed spec already says everything ours says. The apiserver adds defaults
/// (conversion strategy, preserveUnknownFields...), so extra fields do not count as a difference.
fn spec_covers(current: &CustomResourceDefinition, wanted: &CustomResourceDefinition) -> bool {
    match (
        serde_json::to_value(&current.spec),
        serde_json::to_value(&wanted.spec),
    ) {
        (Ok(current), Ok(wanted)) => contains(&current, &wanted),
        _ => false,
    }
}

/// `want` is a sub-document of `have`: objects may have extra keys, everything else is equal.
fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => want
            .iter()
            .all(|(k, w)| have.get(k).is_some_and(|h| contains(h, w))),
        (Value::Array(have), Value::Array(want)) => {
            have.len() == want.len() && have.iter().zip(want).all(|(h, w)| contains(h, w))
        }
        _ => have == want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn our_definition_converts_to_the_api_type() {
        let crd = wanted_crd().unwrap();
        assert_eq!(crd.metadata.name.as_deref(), Some(CRD_NAME));
        assert_eq!(crd.spec.group, "k3s.cattle.io");
        assert_eq!(crd.spec.scope, "Cluster");
        assert!(spec_covers(&crd, &crd));
        assert!(is_ours(&crd));
        let mut foreign = crd.clone();
        foreign.metadata.labels = None;
        assert!(!is_ours(&foreign));
        foreign.metadata.labels = Some([(MANAGED_BY_LABEL.into(), "rke2".into())].into());
        assert!(!is_ours(&foreign));
    }

    #[test]
    fn defaults_added_by_the_apiserver_are_not_a_difference() {
        let wanted = wanted_crd().unwrap();
        let mut defaulted = serde_json::to_value(&wanted).unwrap();
        defaulted["spec"]["conversion"] = json!({"strategy": "None"});
        let defaulted: CustomResourceDefinition = serde_json::from_value(defaulted).unwrap();
        assert!(spec_covers(&defaulted, &wanted));
        let mut stale = defaulted.clone();
        stale.spec.versions[0].additional_printer_columns = None;
        assert!(!spec_covers(&stale, &wanted));
    }

    #[test]
    fn contains_is_a_subdocument_check() {
        let cases = [
            (json!({"a": 1, "b": 2}), json!({"a": 1}), true),
            (json!({"a": 1}), json!({"a": 2}), false),
            (
                json!({"a": [1, {"x": 1, "y": 2}]}),
                json!({"a": [1, {"x": 1}]}),
                true,
            ),
            (json!({"a": [1]}), json!({"a": [1, 2]}), false),
            (json!({}), json!({"a": null}), false),
        ];
        for (have, want, expected) in cases {
            assert_eq!(contains(&have, &want), expected, "{have} vs {want}");
        }
    }
}
