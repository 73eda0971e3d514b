//! The replay tests' load generator and oracle: puts, deletes, multi-operation transactions,
//! lease-bound keys, a lease revocation and a lease expiry against the embedded etcd over TLS,
//! and the key-value state (key, value, version, create/mod revision, lease) etcd itself
//! reports at a revision.

use std::path::Path;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, Identity, PutOptions, TlsOptions, Txn, TxnOp,
};

/// One key as etcd reports it: (key, value, version, create revision, mod revision, lease).
pub type KeyState = (String, String, i64, i64, i64, i64);

/// A client with the node's etcd client certificate.
pub async fn tls_client(endpoint: &str, tls_dir: &Path) -> Client {
    let read = |name: &str| std::fs::read(tls_dir.join(name)).unwrap();
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read("server-ca.crt")))
        .identity(Identity::from_pem(read("client.crt"), read("client.key")));
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(10))
        .with_tls(tls);
    Client::connect([endpoint], Some(options)).await.unwrap()
}

/// Every key at `revision` (the current one with None), in key order.
pub async fn state(client: &mut Client, revision: Option<i64>) -> Vec<KeyState> {
    let mut options = GetOptions::new().with_from_key();
    if let Some(r) = revision {
        options = options.with_revision(r);
    }
    let got = client.get(vec![0u8], Some(options)).await.unwrap();
    got.kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
                kv.version(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.lease(),
            )
        })
        .collect()
}

fn revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.expect("response header").revision()
}

/// The generator: a deterministic mix of writes; each call returns the last revision.
pub struct Load {
    pub client: Client,
    step: usize,
}

impl Load {
    pub fn new(client: Client) -> Self {
        Self { client, step: 0 }
    }

    /// `ops` writes: puts (some of 1 KiB), deletes, three-operation transactions and puts
    /// bound to `lease` (when not 0).
    pub async fn run(&mut self, ops: usize, lease: i64) -> i64 {
        let mut last = 0;
        for _ in 0..ops {
            let i = self.step;
            self.step += 1;
            let key = |n: usize| format!("/load/k{:02}", n % 17);
            let c = &mut self.client;
            last = match i % 6 {
                0 => revision(c.put(key(i), format!("v{i}"), None).await.unwrap().header()),
                1 => {
                    let big = format!("{i}-").repeat(300);
                    revision(c.put(key(i * 3), big, None).await.unwrap().header())
                }
                2 => {
                    // A delete of a key that is gone makes no revision; put it first then.
                    let r = c.delete(key(i * 7), None).await.unwrap();
                    if r.deleted() == 0 {
                        revision(c.put(key(i * 7), "back", None).await.unwrap().header())
                    } else {
                        revision(r.header())
                    }
                }
                3 => {
                    let txn = Txn::new().and_then([
                        TxnOp::put(format!("/load/t{}", i % 5), format!("txn{i}"), None),
                        TxnOp::put(key(i), format!("in-txn{i}"), None),
                        TxnOp::delete(key(i + 5), None),
                    ]);
                    revision(c.txn(txn).await.unwrap().header())
                }
                4 if lease != 0 => {
                    let options = PutOptions::new().with_lease(lease);
                    let key = format!("/load/lease/{}", i % 4);
                    revision(
                        c.put(key, format!("l{i}"), Some(options))
                            .await
                            .unwrap()
                            .header(),
                    )
                }
                _ => revision(
                    c.put(key(i + 1), format!("w{i}"), None)
                        .await
                        .unwrap()
                        .header(),
                ),
            };
        }
        last
    }
}
