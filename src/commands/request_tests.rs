//! Tests of the request a client command sends: which fields, and when the `s3` block goes.

use secrecy::ExposeSecret;

use super::*;
use crate::config::env::layer_from_vars;
use crate::operations::PlannedOperation;

fn parse(args: &[&str]) -> (Command, Layer) {
    let argv = std::iter::once("etcd-snapshot").chain(args.iter().copied());
    let invocation = crate::cli::parse(argv).unwrap();
    (invocation.command, invocation.flags)
}

fn side<'a>(flags: &'a Layer, env: &'a Layer, s3_on: bool) -> ClientSide<'a> {
    ClientSide {
        flags,
        env,
        s3_on,
        aws_credentials: Vec::new(),
        endpoint_ca_pem: None,
    }
}

fn json(request: &SnapshotRequest) -> String {
    serde_json::to_string(request).unwrap()
}

#[test]
fn seed_example_sends_only_the_s3_values_given() {
    let (command, flags) = parse(&[
        "save",
        "--s3",
        "--s3-bucket=b",
        "--s3-access-key=AK",
        "--s3-secret-key=SK",
    ]);
    let env = Layer::new();
    let request = request_for(&command, &side(&flags, &env, true));
    assert_eq!(
        json(&request),
        r#"{"operation":"save","s3":{"accessKey":"AK","secretKey":"SK","bucket":"b"}}"#
    );
}

#[test]
fn rke2_and_canonical_spellings_carry_every_kind_of_value() {
    let (command, flags) = parse(&[
        "--etcd-s3",
        "prune",
        "--etcd-s3-insecure",
        "--s3-skip-ssl-verify=false",
        "--s3-retention=3",
        "--s3-timeout=90s",
        "--s3-endpoint-ca=/ca.pem",
        "--s3-bucket-lookup-type=path",
    ]);
    let env = Layer::new();
    let s3 = request_for(&command, &side(&flags, &env, true))
        .s3
        .expect("s3 block");
    assert_eq!(s3.insecure, Some(true));
    assert_eq!(s3.skip_ssl_verify, Some(false));
    assert_eq!(s3.retention, Some(3));
    assert_eq!(s3.timeout.as_deref(), Some("90s"));
    assert_eq!(s3.endpoint_ca.as_deref(), Some("/ca.pem"));
    assert_eq!(s3.bucket_lookup.as_deref(), Some("path"));
    assert!(s3.endpoint.is_none() && s3.region.is_none() && s3.bucket.is_none());
}

#[test]
fn no_s3_flag_sends_no_s3_and_explicit_false_skips_it() {
    let env = Layer::new();
    let (command, flags) = parse(&["save"]);
    let request = request_for(&command, &side(&flags, &env, true));
    assert!(request.s3.is_none() && request.skip_s3.is_none());

    let (command, flags) = parse(&["save", "--s3=false"]);
    let request = request_for(&command, &side(&flags, &env, false));
    assert_eq!(json(&request), r#"{"operation":"save","skipS3":true}"#);
}

#[test]
fn environment_variables_count_as_explicit() {
    let (env, warnings) = layer_from_vars([
        ("ETCD_SNAPSHOT_ETCD_S3".to_string(), "true".to_string()),
        (
            "ETCD_SNAPSHOT_ETCD_S3_BUCKET".to_string(),
            "envb".to_string(),
        ),
        (
            "ETCD_SNAPSHOT_ETCD_S3_SECRET_KEY".to_string(),
            "envsk".to_string(),
        ),
    ]);
    assert!(warnings.is_empty());
    let (command, flags) = parse(&["ls", "--s3-bucket=flagb"]);
    let s3 = request_for(&command, &side(&flags, &env, true))
        .s3
        .expect("s3 block");
    assert_eq!(s3.bucket.as_deref(), Some("flagb"), "a flag beats the env");
    assert_eq!(
        s3.secret_key.as_ref().map(|s| s.expose_secret()),
        Some("envsk")
    );
}

#[test]
fn aws_credentials_fill_only_keys_not_set_explicitly() {
    let (command, flags) = parse(&["delete", "--s3", "--s3-access-key=FLAGAK", "x"]);
    let env = Layer::new();
    let mut client = side(&flags, &env, true);
    client.aws_credentials = vec![
        ("etcd-s3-access-key", SecretString::from("AWSAK")),
        ("etcd-s3-secret-key", SecretString::from("AWSSK")),
    ];
    let request = request_for(&command, &client);
    assert_eq!(request.name, Some(vec!["x".to_string()]));
    let s3 = request.s3.expect("s3 block");
    assert_eq!(
        s3.access_key.as_ref().map(|s| s.expose_secret()),
        Some("FLAGAK")
    );
    assert_eq!(
        s3.secret_key.as_ref().map(|s| s.expose_secret()),
        Some("AWSSK")
    );
    // Without --s3, credentials from the environment are never sent.
    let (command, flags) = parse(&["save"]);
    let mut client = side(&flags, &env, false);
    client.aws_credentials = vec![("etcd-s3-access-key", SecretString::from("AWSAK"))];
    assert!(request_for(&command, &client).s3.is_none());
}

#[test]
fn s3_settings_follow_a_config_that_turns_s3_on() {
    let env = Layer::new();
    let (command, flags) = parse(&["save", "--s3-folder=nightly"]);
    let on = request_for(&command, &side(&flags, &env, true));
    assert_eq!(on.s3.and_then(|s3| s3.folder).as_deref(), Some("nightly"));
    assert_eq!(unsent_s3_warning(&side(&flags, &env, true)), None);

    let off = request_for(&command, &side(&flags, &env, false));
    assert!(off.s3.is_none());
    let warning = unsent_s3_warning(&side(&flags, &env, false)).expect("warned");
    assert!(warning.starts_with("etcd-s3-folder ignored"), "{warning}");
}

#[test]
fn non_s3_fields_are_unchanged() {
    let env = Layer::new();
    let (command, flags) = parse(&[
        "prune",
        "--name=PRUNE",
        "--snapshot-retention=2",
        "--dir=/snaps",
        "--snapshot-compress",
        "--dry-run",
    ]);
    let request = request_for(&command, &side(&flags, &env, false));
    assert_eq!(
        json(&request),
        r#"{"operation":"prune","name":["PRUNE"],"dir":"/snaps","compress":true,"retention":2,"dryRun":true}"#
    );
}

#[test]
fn verify_sends_its_names_or_none_for_every_copy() {
    let env = Layer::new();
    let (command, flags) = parse(&["verify", "a-n1-1", "b-n1-2"]);
    let request = request_for(&command, &side(&flags, &env, false));
    assert_eq!(
        json(&request),
        r#"{"operation":"verify","name":["a-n1-1","b-n1-2"]}"#
    );
    let (command, flags) = parse(&["verify", "--s3=false"]);
    let request = request_for(&command, &side(&flags, &env, true));
    assert_eq!(json(&request), r#"{"operation":"verify","skipS3":true}"#);
    let (planned, _) = crate::api::request::plan_request(&request).unwrap();
    assert_eq!(planned, PlannedOperation::Verify { names: vec![] });
}

#[test]
fn an_endpoint_ca_file_is_sent_as_its_pem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ca.pem");
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    std::fs::write(&file, pem).unwrap();
    assert_eq!(read_ca(file.to_str().unwrap()).as_deref(), Some(pem));
    assert_eq!(read_ca(pem), None, "inline PEM is sent as it is");
    assert_eq!(read_ca("/dev/zero"), None, "never a device");
    let flag = format!("--s3-endpoint-ca={}", file.display());
    let (command, flags) = parse(&["--s3", "--s3-bucket=b", &flag, "save"]);
    let env = Layer::new();
    let mut client = side(&flags, &env, false);
    client.endpoint_ca_pem = read_ca(file.to_str().unwrap());
    let request = request_for(&command, &client);
    assert_eq!(request.s3.unwrap().endpoint_ca.as_deref(), Some(pem));
}
