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

/// The server's own S3 config: its keys and session token, a MinIO endpoint and a folder.
fn server_layer() -> Layer {
    let mut layer = Layer::new();
    for (k, v) in [
        ("etcd-s3", "true"),
        ("etcd-s3-bucket", "b"),
        ("etcd-s3-endpoint", "minio.internal:9000"),
        ("etcd-s3-folder", "snaps"),
        ("etcd-s3-endpoint-ca", "/etc/ssl/minio-ca.pem"),
    ] {
        layer.set(k, RawValue::String(v.into()), Source::Default);
    }
    for (k, v) in [
        ("etcd-s3-access-key", "SERVERAK"),
        ("etcd-s3-secret-key", "SERVERSK"),
        ("etcd-s3-session-token", "SERVERTOKEN"),
    ] {
        layer.set(k, RawValue::Secret(v.into()), Source::Default);
    }
    layer
}

/// `check_own_credentials` for an `s3` block sent to a server with `server_layer`'s config
/// (or, without it, a server with no S3 settings).
fn check_s3_block(s3: &str, server_has_s3: bool) -> Result<(), RequestError> {
    let base = if server_has_s3 {
        server_layer()
    } else {
        Layer::new()
    };
    check_against(s3, &base)
}

fn check_against(s3: &str, base: &Layer) -> Result<(), RequestError> {
    let host = crate::config::resolve::HostFacts {
        hostname: Some("node1".into()),
    };
    let (_, layer) =
        plan_request(&request(&format!(r#"{{"operation":"save","s3":{s3}}}"#))).unwrap();
    let requested = crate::config::resolve::resolve_with(&[base, &layer], &host)
        .unwrap()
        .config
        .s3;
    let mut s3_on = base.clone();
    s3_on.set("etcd-s3", RawValue::Bool(true), Source::Default);
    let server = resolve(&s3_on).ok().and_then(|r| r.config.s3);
    check_own_credentials(&layer, requested.as_ref(), server.as_ref())
}

#[test]
fn any_change_of_destination_or_transport_needs_the_requests_own_keys() {
    let elsewhere = |fields: &str| Err(RequestError::CredentialsElsewhere(fields.into()));
    let table: &[(&str, Result<(), RequestError>)] = &[
        // The issue's example: plain HTTP to another bucket, signed with the server's key.
        (
            r#"{"insecure":true,"bucket":"x"}"#,
            elsewhere("bucket, insecure"),
        ),
        (r#"{"endpoint":"evil.example:443"}"#, elsewhere("endpoint")),
        (
            r#"{"proxy":"http://evil.example:3128"}"#,
            elsewhere("proxy"),
        ),
        (r#"{"folder":"other-cluster"}"#, elsewhere("folder")),
        (r#"{"region":"eu-west-1"}"#, elsewhere("region")),
        (r#"{"skipSSLVerify":true}"#, elsewhere("skipSSLVerify")),
        (r#"{"endpointCA":"/tmp/evil.pem"}"#, elsewhere("endpointCA")),
        (r#"{"bucketLookup":"dns"}"#, elsewhere("bucketLookup")),
        // One key is not enough; a session token alone is not a key.
        (
            r#"{"accessKey":"A","endpoint":"evil.example:443"}"#,
            elsewhere("endpoint"),
        ),
        (
            r#"{"sessionToken":"T","insecure":true}"#,
            elsewhere("insecure"),
        ),
        // Restating the server's values (any case, slashes, spelled-out default) is no change.
        (
            r#"{"endpoint":"MINIO.internal:9000","bucket":"b","folder":"/snaps/","region":"us-east-1",
               "insecure":false,"skipSSLVerify":false,"bucketLookup":"auto","proxy":"",
               "endpointCA":"/etc/ssl/minio-ca.pem"}"#,
            Ok(()),
        ),
        // Neither retention nor timeout moves data anywhere.
        (r#"{"retention":2,"timeout":"1m"}"#, Ok(())),
        // With both keys of its own, a request may point anywhere.
        (
            r#"{"accessKey":"A","secretKey":"S","endpoint":"elsewhere:9000","insecure":true,"bucket":"x"}"#,
            Ok(()),
        ),
        // A Secret named beside other S3 settings is ignored (RKE2's rule): nothing to refuse.
        (
            r#"{"accessKey":"A","secretKey":"S","configSecret":"other"}"#,
            Ok(()),
        ),
    ];
    for (s3, expected) in table {
        assert_eq!(&check_s3_block(s3, true), expected, "{s3}");
    }
}

#[test]
fn rke2_cli_body_restating_the_servers_values_is_accepted() {
    // RKE2's CLI sends every field, "" for unset ones, and the defaults it knows.
    let body = r#"{"accessKey":"","secretKey":"","sessionToken":"","bucket":"b",
        "bucketLookup":"","configSecret":"","endpoint":"minio.internal:9000",
        "endpointCA":"/etc/ssl/minio-ca.pem","folder":"snaps","proxy":"","region":"us-east-1",
        "insecure":false,"skipSSLVerify":false,"retention":5,"timeout":"5m0s"}"#;
    assert_eq!(check_s3_block(body, true), Ok(()));
}

#[test]
fn a_request_may_only_restate_the_servers_config_secret() {
    let mut base = Layer::new();
    base.set(
        "etcd-s3-config-secret",
        RawValue::String("s3-config".into()),
        Source::Default,
    );
    assert_eq!(
        check_against(r#"{"configSecret":"s3-config"}"#, &base),
        Ok(())
    );
    assert_eq!(check_against(r#"{"region":"us-east-1"}"#, &base), Ok(()));
    assert_eq!(
        check_against(r#"{"configSecret":"other"}"#, &base),
        Err(RequestError::OtherConfigSecret("other".into()))
    );
    assert_eq!(
        check_against(r#"{"configSecret":"other"}"#, &Layer::new()),
        Err(RequestError::OtherConfigSecret("other".into()))
    );
}

#[test]
fn without_server_s3_settings_a_request_needs_its_own_keys() {
    assert_eq!(
        check_s3_block(r#"{"bucket":"b"}"#, false),
        Err(RequestError::NoServerS3)
    );
    assert_eq!(
        check_s3_block(r#"{"bucket":"b","accessKey":"A","secretKey":"S"}"#, false),
        Ok(())
    );
    let (_, layer) = plan_request(&request(r#"{"operation":"save"}"#)).unwrap();
    assert_eq!(check_own_credentials(&layer, None, None), Ok(()));
    let message = RequestError::CredentialsElsewhere("bucket, insecure".into()).to_string();
    assert!(
        message.contains("changes s3 bucket, insecure") && message.contains("own credentials"),
        "{message}"
    );
}

#[test]
fn the_servers_session_token_never_goes_with_the_requests_keys() {
    let effective = |s3: &str| {
        let (_, layer) =
            plan_request(&request(&format!(r#"{{"operation":"save","s3":{s3}}}"#))).unwrap();
        let host = crate::config::resolve::HostFacts {
            hostname: Some("node1".into()),
        };
        let mut s3 = crate::config::resolve::resolve_with(&[&server_layer(), &layer], &host)
            .unwrap()
            .config
            .s3
            .unwrap();
        own_credentials_only(&mut s3, &layer);
        let show =
            |s: &Option<secrecy::SecretString>| s.as_ref().map(|s| s.expose_secret().to_string());
        (
            show(&s3.access_key),
            show(&s3.secret_key),
            show(&s3.session_token),
        )
    };
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        effective(r#"{"accessKey":"A","secretKey":"S"}"#),
        (some("A"), some("S"), None)
    );
    assert_eq!(
        effective(r#"{"accessKey":"A","secretKey":"S","sessionToken":"T"}"#),
        (some("A"), some("S"), some("T"))
    );
    assert_eq!(
        effective(r#"{"bucket":"b"}"#),
        (some("SERVERAK"), some("SERVERSK"), some("SERVERTOKEN"))
    );
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
    assert!(long.contains("at most 183 bytes"), "{long}");
    for good in ["on-demand", "PRUNE_TEST", "weekly.backup", &"x".repeat(183)] {
        assert_eq!(errors(good), None, "{good:?}");
    }
}
