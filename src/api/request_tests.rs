//! Tests of `plan_request`: the layer each request shape forms, and what the config engine
//! makes of a request's S3 values.

use super::*;

fn request(json: &str) -> SnapshotRequest {
    serde_json::from_str(json).unwrap()
}

#[test]
fn save_with_name_and_compress_overrides_config() {
    let (op, layer) = plan_request(&request(
        r#"{"operation":"save","name":["ALIVEBEEF"],"compress":true}"#,
    ))
    .unwrap();
    assert_eq!(op, PlannedOperation::Save);
    assert_eq!(
        layer.get("name").unwrap().value,
        RawValue::String("ALIVEBEEF".into())
    );
    assert_eq!(
        layer.get("etcd-snapshot-compress").unwrap().value,
        RawValue::Bool(true)
    );
    assert_eq!(layer.get("name").unwrap().source, Source::Request);
}

#[test]
fn delete_names_are_not_a_base_name() {
    let (op, layer) = plan_request(&request(
        r#"{"operation":"delete","name":["a-n-1","b-n-2"]}"#,
    ))
    .unwrap();
    assert_eq!(
        op,
        PlannedOperation::Delete {
            names: vec!["a-n-1".into(), "b-n-2".into()]
        }
    );
    assert!(layer.get("name").is_none());
}

#[test]
fn prune_maps_name_retention_and_dry_run() {
    let (op, layer) = plan_request(&request(
        r#"{"operation":"prune","name":["PRUNE_TEST"],"retention":2,"dryRun":true}"#,
    ))
    .unwrap();
    assert_eq!(op, PlannedOperation::Prune { dry_run: true });
    assert_eq!(
        layer.get("etcd-snapshot-retention").unwrap().value,
        RawValue::Int(2)
    );
    assert_eq!(
        layer.get("name").unwrap().value,
        RawValue::String("PRUNE_TEST".into())
    );
}

#[test]
fn bad_requests_are_refused() {
    assert_eq!(
        plan_request(&request(r#"{}"#)).unwrap_err(),
        RequestError::MissingOperation
    );
    assert_eq!(
        plan_request(&request(r#"{"operation":"delete"}"#)).unwrap_err(),
        RequestError::NoNamesToDelete
    );
    assert_eq!(
        plan_request(&request(r#"{"operation":"prune","retention":-1}"#)).unwrap_err(),
        RequestError::NegativeRetention(-1)
    );
    assert_eq!(
        plan_request(&request(
            r#"{"operation":"save","s3":{"bucket":"b"},"skipS3":true}"#
        ))
        .unwrap_err(),
        RequestError::ConflictingS3
    );
}

/// What RKE2's CLI sends for `save --s3 --s3-bucket=b --s3-access-key=AK --s3-secret-key=SK`:
/// the whole block, defaults included, "" for everything left unset.
const RKE2_CLI_SAVE: &str = r#"{"operation":"save","name":["on-demand"],"s3":{
    "accessKey":"AKIDRKE2","secretKey":"SKRKE2SECRET","sessionToken":"","bucket":"b",
    "bucketLookup":"","configSecret":"","endpoint":"s3.amazonaws.com","endpointCA":"",
    "folder":"","proxy":"","region":"us-east-1","insecure":false,"skipSSLVerify":false,
    "retention":5,"timeout":"5m0s"}}"#;

fn resolve(layer: &Layer) -> Result<crate::config::Resolved, crate::config::ConfigErrors> {
    let host = crate::config::resolve::HostFacts {
        hostname: Some("node1".into()),
    };
    crate::config::resolve::resolve_with(&[layer], &host)
}

#[test]
fn rke2_cli_s3_block_maps_onto_etcd_s3_keys() {
    let (op, layer) = plan_request(&request(RKE2_CLI_SAVE)).unwrap();
    assert_eq!(op, PlannedOperation::Save);
    let text = |key: &str| match layer.get(key).map(|s| &s.value) {
        Some(RawValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    assert_eq!(layer.get("etcd-s3").unwrap().value, RawValue::Bool(true));
    assert_eq!(text("etcd-s3-bucket").as_deref(), Some("b"));
    assert_eq!(
        text("etcd-s3-endpoint").as_deref(),
        Some("s3.amazonaws.com")
    );
    assert_eq!(text("etcd-s3-region").as_deref(), Some("us-east-1"));
    assert_eq!(text("etcd-s3-timeout").as_deref(), Some("5m0s"));
    assert_eq!(
        layer.get("etcd-s3-insecure").unwrap().value,
        RawValue::Bool(false)
    );
    assert_eq!(
        layer.get("etcd-s3-retention").unwrap().value,
        RawValue::Int(5)
    );
    assert_eq!(
        layer.get("etcd-s3-access-key").unwrap().value,
        RawValue::Secret("AKIDRKE2".into())
    );
    assert!(matches!(
        layer.get("etcd-s3-secret-key").map(|s| &s.value),
        Some(RawValue::Secret(_))
    ));
    // "" is RKE2's "not set": the server's own config fills these.
    for unset in [
        "etcd-s3-session-token",
        "etcd-s3-bucket-lookup-type",
        "etcd-s3-config-secret",
        "etcd-s3-endpoint-ca",
        "etcd-s3-folder",
        "etcd-s3-proxy",
    ] {
        assert!(layer.get(unset).is_none(), "{unset} should be unset");
    }
    assert!(layer.iter().all(|(_, v)| v.source == Source::Request));
}

#[test]
fn rke2_cli_s3_block_resolves_to_s3_settings() {
    let (_, layer) = plan_request(&request(RKE2_CLI_SAVE)).unwrap();
    let s3 = resolve(&layer).unwrap().config.s3.expect("s3 is on");
    assert_eq!(s3.bucket, "b");
    assert_eq!(s3.endpoint, "s3.amazonaws.com");
    assert_eq!(s3.timeout, std::time::Duration::from_secs(300));
    assert_eq!(s3.retention, 5);
    assert_eq!(
        s3.secret_key.as_ref().map(|s| s.expose_secret()),
        Some("SKRKE2SECRET")
    );
    assert!(s3.folder.is_empty() && s3.session_token.is_none());
}

#[test]
fn secrets_never_show_in_the_layer_debug() {
    let (_, layer) = plan_request(&request(RKE2_CLI_SAVE)).unwrap();
    let debug = format!("{layer:?}");
    assert!(debug.contains("etcd-s3-secret-key"), "{debug}");
    assert!(!debug.contains("AKIDRKE2") && !debug.contains("SKRKE2SECRET"));
}

#[test]
fn blank_strings_in_s3_are_unset() {
    let (_, layer) = plan_request(&request(
        r#"{"operation":"list","s3":{"bucket":"","endpoint":"  ","accessKey":"","region":null}}"#,
    ))
    .unwrap();
    let keys: Vec<&str> = layer.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec!["etcd-s3"]);
}

#[test]
fn unknown_s3_field_is_refused_by_name() {
    let err = serde_json::from_str::<SnapshotRequest>(
        r#"{"operation":"save","s3":{"bucket":"b","secretKeyy":"x"}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown field \"secretKeyy\" in s3"), "{err}");
}

#[test]
fn bad_s3_values_are_reported_as_from_the_request() {
    let (_, layer) = plan_request(&request(
        r#"{"operation":"save","s3":{"bucket":"b","bucketLookup":"bogus","timeout":"abc","retention":-1}}"#,
    ))
    .unwrap();
    let errors = resolve(&layer).unwrap_err().to_string();
    for key in [
        "\"bogus\" for etcd-s3-bucket-lookup-type from API request",
        "\"abc\" for etcd-s3-timeout from API request",
        "\"-1\" for etcd-s3-retention from API request",
    ] {
        assert!(errors.contains(key), "missing {key:?} in {errors}");
    }
}

#[test]
fn skip_s3_turns_s3_off_for_the_request() {
    let (_, layer) = plan_request(&request(r#"{"operation":"save","skipS3":true}"#)).unwrap();
    assert_eq!(layer.get("etcd-s3").unwrap().value, RawValue::Bool(false));
    let (_, layer) = plan_request(&request(r#"{"operation":"save","skipS3":false}"#)).unwrap();
    assert!(layer.get("etcd-s3").is_none());
}

#[test]
fn hidden_long_and_unprintable_base_names_are_refused_with_the_rule() {
    let node = "ip-172-31-7-118.us-east-2.compute.internal";
    let errors = |base: &str| {
        let body = serde_json::json!({"operation": "save", "name": [base]}).to_string();
        let (_, layer) = plan_request(&request(&body)).unwrap();
        let mut host_layer = Layer::new();
        host_layer.set("node-name", RawValue::String(node.into()), Source::Default);
        crate::config::resolve::resolve_with(
            &[&host_layer, &layer],
            &crate::config::resolve::HostFacts { hostname: None },
        )
        .err()
        .map(|e| e.to_string())
    };
    for bad in [".hidden", "a/b", "a\u{1b}[2Jb", &"x".repeat(5000)] {
        let message = errors(bad).unwrap_or_else(|| panic!("{bad:?} was accepted"));
        assert!(message.contains("for name from API request"), "{message}");
    }
    let hidden = errors(".hidden").unwrap();
    assert!(hidden.contains("does not start with '.'"), "{hidden}");
    // Short enough for a name part, too long with this node in one file name.
    let long = errors(&"x".repeat(200)).unwrap();
    // 183 before `.age` was reserved: the longest name is now `...zip.age.part`.
    assert!(long.contains("at most 179 bytes"), "{long}");
    for good in ["on-demand", "PRUNE_TEST", "weekly.backup", &"x".repeat(179)] {
        assert_eq!(errors(good), None, "{good:?}");
    }
}
