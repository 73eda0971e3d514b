//! Integration tests: bootstrap data in a real etcd. Save, load, no-op saves that leave the
//! key's revision alone, and the wrong-token errors.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use etcd_snapshot::bootstrap::{
    BootstrapData, BootstrapError, BootstrapFile, SaveOutcome, WRONG_TOKEN_HINT, decrypt, encrypt,
    load_from_etcd, save_to_etcd, storage_key,
};

use crate::support::TestEtcd;

fn sample(ca: &[u8]) -> BootstrapData {
    let at = |secs| Some(Utc.timestamp_opt(secs, 250_000_000).unwrap());
    let mut files = BTreeMap::new();
    for (field, content, secs) in [
        ("ServerCA", ca, 1_700_000_000),
        ("ServerCAKey", b"server ca key".as_slice(), 1_700_000_001),
        (
            "PasswdFile",
            b"secret,server,server,rke2:server\n",
            1_700_000_002,
        ),
    ] {
        let file = BootstrapFile {
            timestamp: at(secs),
            content: content.to_vec(),
        };
        files.insert(field.to_owned(), file);
    }
    BootstrapData { files }
}

async fn connect(etcd: &TestEtcd) -> etcd_client::Client {
    etcd_client::Client::connect([etcd.endpoint.as_str()], None)
        .await
        .expect("connect to test etcd")
}

/// (value, mod_revision) of `key`, read with the plain client.
async fn stored(client: &mut etcd_client::Client, key: &str) -> Option<(String, i64)> {
    let response = client.get(key, None).await.unwrap();
    let kv = response.kvs().first()?;
    Some((kv.value_str().unwrap().to_owned(), kv.mod_revision()))
}

#[tokio::test]
async fn save_load_and_unchanged_save_does_not_write() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let mut client = connect(&etcd).await;
    let passphrase = "cluster-token";
    let key = storage_key(passphrase);
    assert_eq!(load_from_etcd(&mut client, passphrase).await.unwrap(), None);

    let data = sample(b"ca one");
    let outcome = save_to_etcd(&mut client, passphrase, &data).await.unwrap();
    assert_eq!(outcome, SaveOutcome::Created);
    let (value, first_revision) = stored(&mut client, &key).await.expect("key written");
    // The value is the k3s cipher text of the JSON, openable with the passphrase alone.
    let plain = decrypt(passphrase, &value).unwrap();
    assert_eq!(BootstrapData::from_json(&plain).unwrap(), data);
    let loaded = load_from_etcd(&mut client, passphrase).await.unwrap();
    assert_eq!(loaded, Some(data.clone()));

    let again = save_to_etcd(&mut client, passphrase, &data).await.unwrap();
    assert_eq!(again, SaveOutcome::Unchanged);
    let (_, revision) = stored(&mut client, &key).await.unwrap();
    assert_eq!(revision, first_revision, "an unchanged save wrote the key");

    let changed = sample(b"ca two");
    let outcome = save_to_etcd(&mut client, passphrase, &changed)
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Updated);
    let (_, revision) = stored(&mut client, &key).await.unwrap();
    assert!(revision > first_revision);
    let loaded = load_from_etcd(&mut client, passphrase).await.unwrap();
    assert_eq!(loaded, Some(changed));
}

#[tokio::test]
async fn wrong_passphrase_load_says_the_token_differs() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let mut client = connect(&etcd).await;
    save_to_etcd(&mut client, "original", &sample(b"ca"))
        .await
        .unwrap();

    let err = load_from_etcd(&mut client, "another").await.unwrap_err();
    assert!(err.is_wrong_token(), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(WRONG_TOKEN_HINT), "{message}");
    assert!(message.contains(&storage_key("original")), "{message}");
    // Keys are hashes; neither token appears in the message.
    assert!(!message.contains("original") && !message.contains("another"));
}

#[tokio::test]
async fn key_encrypted_with_another_token_is_never_overwritten() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    // Data at our key that our passphrase cannot open, written with etcdctl.
    let key = storage_key("mine");
    let foreign = encrypt("theirs", &sample(b"their ca").to_json()).unwrap();
    etcd.put(&key, &foreign);
    let mut client = connect(&etcd).await;
    let (_, before) = stored(&mut client, &key).await.unwrap();

    let err = save_to_etcd(&mut client, "mine", &sample(b"my ca"))
        .await
        .unwrap_err();
    match &err {
        BootstrapError::DifferentToken { key: reported } => assert_eq!(reported, &key),
        other => panic!("expected DifferentToken, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("bootstrap data already found and encrypted with a different token"),
        "{err}"
    );
    let (value, after) = stored(&mut client, &key).await.unwrap();
    assert_eq!((value.as_str(), after), (foreign.as_str(), before));

    let err = load_from_etcd(&mut client, "mine").await.unwrap_err();
    assert!(
        matches!(err, BootstrapError::DifferentToken { .. }),
        "{err:?}"
    );
}
