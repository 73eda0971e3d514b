//! Building the typed `DesiredConfig` from the values `resolve` parsed, key by key.
//!
//! Pure and infallible for a consistent key table: every key with a default has a value by the
//! time `build` runs. A new setting that `DesiredConfig` carries is read here.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use secrecy::SecretString;

use super::desired::{
    ApiSettings, DesiredConfig, EtcdSettings, LogFormat, LogSettings, SnapshotSettings,
};
use super::layer::Source;
use super::value::Value;
use crate::scheduler::Schedule;

/// One key's effective value; `None` is an optional key left unset (or set to "").
pub(super) struct Entry {
    pub value: Option<Value>,
    pub source: Source,
}

/// Every key's entry, by canonical name.
#[derive(Default)]
pub(super) struct Parsed(pub BTreeMap<&'static str, Entry>);

impl Parsed {
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.0.get(key).and_then(|e| e.value.as_ref())
    }
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.0.get(key).map(|e| &e.source)
    }
    pub fn path(&self, key: &str) -> Option<PathBuf> {
        match self.value(key)? {
            Value::Path(p) => Some(p.clone()),
            _ => None,
        }
    }
    pub fn text(&self, key: &str) -> Option<String> {
        match self.value(key)? {
            Value::Text(t) => Some(t.clone()),
            _ => None,
        }
    }
    pub fn flag(&self, key: &str) -> Option<bool> {
        match self.value(key)? {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn secret(&self, key: &str) -> Option<SecretString> {
        match self.value(key)? {
            Value::Secret(s) => Some(s.clone()),
            _ => None,
        }
    }
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        match self.value(key)? {
            Value::List(items) => Some(items.clone()),
            _ => None,
        }
    }
    pub fn int(&self, key: &str) -> Option<u32> {
        match self.value(key)? {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }
    pub fn port(&self, key: &str) -> Option<u16> {
        match self.value(key)? {
            Value::Port(p) => Some(*p),
            _ => None,
        }
    }
    pub fn socket(&self, key: &str) -> Option<SocketAddr> {
        match self.value(key)? {
            Value::Socket(a) => Some(*a),
            _ => None,
        }
    }
    pub fn ip(&self, key: &str) -> Option<IpAddr> {
        match self.value(key)? {
            Value::Ip(ip) => Some(*ip),
            _ => None,
        }
    }
    pub fn cron(&self, key: &str) -> Option<Schedule> {
        match self.value(key)? {
            Value::Cron(s) => Some(s.clone()),
            _ => None,
        }
    }
    pub fn log_format(&self, key: &str) -> Option<LogFormat> {
        match self.value(key)? {
            Value::LogFormat(f) => Some(*f),
            _ => None,
        }
    }
}

/// The typed config; None only if a key the table guarantees is missing (a bug).
pub(super) fn build(p: &Parsed) -> Option<DesiredConfig> {
    Some(DesiredConfig {
        config_file: p.path("config")?,
        data_dir: p.path("data-dir")?,
        node_name: p.text("node-name")?,
        token: p.secret("token"),
        token_file: p.path("token-file"),
        etcd: etcd(p)?,
        snapshot: snapshot(p)?,
        api: api(p)?,
        log: LogSettings {
            format: p.log_format("log-format")?,
            debug: p.flag("debug")?,
        },
    })
}

fn etcd(p: &Parsed) -> Option<EtcdSettings> {
    Some(EtcdSettings {
        endpoints: p.list("etcd-endpoints")?,
        ca_file: p.path("etcd-cafile"),
        cert_file: p.path("etcd-certfile"),
        key_file: p.path("etcd-keyfile"),
        binary: p.path("etcd-binary")?,
        client_address: p.socket("etcd-client-address")?,
        peer_address: p.socket("etcd-peer-address")?,
    })
}

fn snapshot(p: &Parsed) -> Option<SnapshotSettings> {
    Some(SnapshotSettings {
        disabled: p.flag("etcd-disable-snapshots")?,
        scheduled_name: p.text("etcd-snapshot-name")?,
        on_demand_name: p.text("name")?,
        compress: p.flag("etcd-snapshot-compress")?,
        dir: p.path("etcd-snapshot-dir")?,
        dir_is_default: p.source("etcd-snapshot-dir")? == &Source::Default,
        retention: p.int("etcd-snapshot-retention")?,
        schedule: p.cron("etcd-snapshot-schedule-cron")?,
    })
}

fn api(p: &Parsed) -> Option<ApiSettings> {
    Some(ApiSettings {
        bind_address: p.ip("bind-address")?,
        supervisor_port: p.port("supervisor-port")?,
        server_url: p.text("etcd-server")?,
        token: p.secret("etcd-token"),
    })
}
