//! Tests of `check_own_credentials` and `own_credentials_only`: which S3 changes need the
//! request's own keys, resolved through the real config engine over a server's config.

use secrecy::ExposeSecret;

use super::*;

fn request(json: &str) -> SnapshotRequest {
    serde_json::from_str(json).unwrap()
}

fn resolve(layer: &Layer) -> Result<crate::config::Resolved, crate::config::ConfigErrors> {
    let host = crate::config::resolve::HostFacts {
        hostname: Some("node1".into()),
    };
    crate::config::resolve::resolve_with(&[layer], &host)
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
