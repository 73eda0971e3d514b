//! The rows of the config key table (`keys::KEYS`): one row per setting, nothing else.
//!
//! Add a setting by adding a row here; flags, env names, YAML keys, defaults, help and redaction
//! follow from it. Row order is the order of `--help` and `config show`.

use super::{DefaultValue, KeySpec, Kind, Scope};

/// A row with everything but the name, kind, help and scope at its usual value.
const ROW: KeySpec = KeySpec {
    name: "",
    aliases: &[],
    short: None,
    kind: Kind::String,
    default: DefaultValue::None,
    help: "",
    scope: Scope::Global,
    secret: false,
    in_file: true,
};

/// Every config key, in the order `config show` and `--help` list them.
pub static KEYS: &[KeySpec] = &[
    // Global.
    KeySpec {
        name: "config",
        short: Some('c'),
        kind: Kind::Path,
        default: DefaultValue::Value(crate::config::DEFAULT_CONFIG_FILE),
        help: "Config file; YAML drop-ins are read from <config>.d/*.yaml",
        in_file: false,
        ..ROW
    },
    KeySpec {
        name: "data-dir",
        short: Some('d'),
        kind: Kind::Path,
        default: DefaultValue::Value("/var/lib/etcd-snapshot"),
        help: "Data directory (RKE2 layout: server/db/snapshots, server/token, ...)",
        ..ROW
    },
    KeySpec {
        name: "node-name",
        kind: Kind::Name,
        default: DefaultValue::HostName,
        help: "Node name used in snapshot names",
        ..ROW
    },
    KeySpec {
        name: "debug",
        kind: Kind::Bool,
        default: DefaultValue::Value("false"),
        help: "Turn on debug logs (etcd-snapshot and the embedded etcd's output; libraries stay at info)",
        ..ROW
    },
    KeySpec {
        name: "log-format",
        kind: Kind::LogFormat,
        default: DefaultValue::Value("text"),
        help: "Log format: text or json",
        ..ROW
    },
    KeySpec {
        name: "etcd-endpoints",
        kind: Kind::StringList,
        help: "Endpoints of an existing etcd cluster; empty runs an embedded etcd (TLS only). Plain http:// only to a loopback host",
        ..ROW
    },
    KeySpec {
        name: "datastore-endpoint",
        help: "The datastore to snapshot when it is not etcd, as RKE2/k3s name it: sqlite://<path> for kine's SQLite database (e.g. sqlite:///var/lib/rancher/k3s/server/db/state.db). Unset: etcd, unless etcd-endpoints is empty and <data-dir>/server/db/state.db exists (then that SQLite database). MySQL and PostgreSQL are backed up with their own tools",
        ..ROW
    },
    KeySpec {
        name: "etcd-cafile",
        kind: Kind::Path,
        help: "CA bundle to verify etcd's server certificate [default for the embedded etcd: <data-dir>/server/tls/etcd/server-ca.crt, unless any etcd-*file key is set]",
        ..ROW
    },
    KeySpec {
        name: "etcd-certfile",
        kind: Kind::Path,
        help: "Client certificate for etcd (needs --etcd-keyfile) [default for the embedded etcd: <data-dir>/server/tls/etcd/client.crt]",
        ..ROW
    },
    KeySpec {
        name: "etcd-keyfile",
        kind: Kind::Path,
        help: "Client key for etcd (needs --etcd-certfile) [default for the embedded etcd: <data-dir>/server/tls/etcd/client.key]",
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-dir",
        aliases: &["dir"],
        kind: Kind::Path,
        default: DefaultValue::UnderDataDir("server/db/snapshots"),
        help: "Directory to save snapshots in",
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-allowed-dirs",
        kind: Kind::PathList,
        help: "Directories an API request's dir (RKE2's --dir) may name besides etcd-snapshot-dir; any other is refused with 403 [default: none]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-allowed-ca-dirs",
        kind: Kind::PathList,
        help: "Directories holding CA files an API request's S3 endpoint CA may name (regular files up to 1 MiB); otherwise a request's CA is inline PEM or the server's own [default: none]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-compress",
        aliases: &["snapshot-compress"],
        kind: Kind::Bool,
        default: DefaultValue::Value("false"),
        help: "Compress snapshots (zip)",
        ..ROW
    },
    // Encryption (config::encryption).
    KeySpec {
        name: "etcd-snapshot-encryption-recipients",
        kind: Kind::StringList,
        help: "Encrypt new snapshots with age to these X25519 public keys (age1...); files are named <name>[.zip].age and only the matching private keys can restore them [default: unset, not encrypted]",
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-encryption-recipients-file",
        kind: Kind::Path,
        help: "File of age public keys (one age1... per line, # comments), re-read by every save; adds to --etcd-snapshot-encryption-recipients",
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-encryption-identity-file",
        kind: Kind::Path,
        help: "File of age private keys (age-keygen output) used to decrypt snapshots for restore, inspect and rekey; keep it off the server and away from the snapshots. Never read by a save",
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-encryption-passphrase-file",
        kind: Kind::Path,
        help: "File whose first line is a passphrase: new snapshots are encrypted with age's scrypt passphrase recipient instead of public keys, and restore, inspect and rekey decrypt with it (for people without key tooling; the passphrase itself is never a flag or variable). Cannot be combined with the recipients keys or the encryption Secret",
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-encryption-secret",
        kind: Kind::Name,
        help: "Name of a kube-system Secret whose key etcd-snapshot-encryption-recipients adds age1... recipients (commas or new lines) and whose optional key etcd-snapshot-encryption-identity holds private keys for restore, inspect and rekey; read afresh by every operation, so rotation is a kubectl apply. With it set, a save that cannot read it fails rather than write plaintext",
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-retention",
        aliases: &["snapshot-retention"],
        kind: Kind::Int,
        default: DefaultValue::Value("5"),
        help: "Number of snapshots to retain; 0 keeps all",
        ..ROW
    },
    // Retention policy rules (config::retention), local dir.
    KeySpec {
        name: "etcd-snapshot-retention-keep-last",
        kind: Kind::Int,
        help: "Keep the newest N local snapshots; any keep rule replaces the etcd-snapshot-retention count [default: unset]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-retention-keep-hourly",
        kind: Kind::Int,
        help: "Keep the newest local snapshot of each of the last N hours (UTC) that have one; any keep rule replaces the etcd-snapshot-retention count [default: unset]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-retention-keep-daily",
        kind: Kind::Int,
        help: "Keep the newest local snapshot of each of the last N days (UTC) that have one; any keep rule replaces the etcd-snapshot-retention count [default: unset]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-retention-keep-weekly",
        kind: Kind::Int,
        help: "Keep the newest local snapshot of each of the last N ISO weeks (UTC) that have one; any keep rule replaces the etcd-snapshot-retention count [default: unset]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-retention-keep-monthly",
        kind: Kind::Int,
        help: "Keep the newest local snapshot of each of the last N months (UTC) that have one; any keep rule replaces the etcd-snapshot-retention count [default: unset]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-retention-max-age",
        kind: Kind::Duration,
        help: "Remove local snapshots older than this (e.g. 720h), oldest first, down to the min-count floor [default: unset]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-retention-max-total-size",
        kind: Kind::String,
        help: "Remove the oldest local snapshots until the rest fit in this size (e.g. 500GiB), down to the min-count floor [default: unset]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-retention-min-count",
        kind: Kind::Int,
        help: "Never keep fewer local snapshots than this, whatever the other retention rules say [default: 0]",
        scope: Scope::Server,
        ..ROW
    },
    // S3 replication: accepted by the server and by every client subcommand.
    KeySpec {
        name: "etcd-s3",
        aliases: &["s3"],
        kind: Kind::Bool,
        default: DefaultValue::Value("false"),
        help: "Replicate snapshots to an S3-compatible object store",
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-endpoint",
        aliases: &["s3-endpoint"],
        default: DefaultValue::Value("s3.amazonaws.com"),
        help: "S3 endpoint host[:port], without scheme",
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-endpoint-ca",
        aliases: &["s3-endpoint-ca"],
        help: "CA bundle for the S3 endpoint: a PEM file path or inline PEM; added to the system roots",
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-skip-ssl-verify",
        aliases: &["s3-skip-ssl-verify"],
        kind: Kind::Bool,
        default: DefaultValue::Value("false"),
        help: "Do not verify the S3 endpoint's TLS certificate",
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-access-key",
        aliases: &["s3-access-key"],
        kind: Kind::Secret,
        help: "S3 access key [default: AWS_ACCESS_KEY_ID or the shared credentials file]; a flag shows in `ps`: prefer the config file, the environment or etcd-s3-config-secret",
        secret: true,
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-secret-key",
        aliases: &["s3-secret-key"],
        kind: Kind::Secret,
        help: "S3 secret key [default: AWS_SECRET_ACCESS_KEY or the shared credentials file]; a flag shows in `ps`: prefer the config file, the environment or etcd-s3-config-secret",
        secret: true,
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-session-token",
        aliases: &["s3-session-token"],
        kind: Kind::Secret,
        help: "S3 session token for temporary credentials [default: AWS_SESSION_TOKEN]; a flag shows in `ps`: prefer the config file, the environment or etcd-s3-config-secret",
        secret: true,
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-bucket",
        aliases: &["s3-bucket"],
        help: "S3 bucket name",
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-bucket-lookup-type",
        aliases: &["s3-bucket-lookup-type"],
        help: "S3 addressing: auto, dns (virtual-host style) or path [default: auto]",
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-region",
        aliases: &["s3-region"],
        default: DefaultValue::Value("us-east-1"),
        help: "S3 region (signed into every request)",
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-folder",
        aliases: &["s3-folder"],
        help: "S3 folder (key prefix) for snapshots",
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-proxy",
        aliases: &["s3-proxy"],
        kind: Kind::ProxyUrl,
        help: "Proxy URL for S3 traffic only; \"none\" ignores the proxy environment variables",
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-insecure",
        aliases: &["s3-insecure"],
        kind: Kind::Bool,
        default: DefaultValue::Value("false"),
        help: "Use plain HTTP for S3",
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-timeout",
        aliases: &["s3-timeout"],
        kind: Kind::Duration,
        default: DefaultValue::Value("5m"),
        help: "Time limit of each S3 operation",
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-retention",
        aliases: &["s3-retention"],
        kind: Kind::Int,
        help: "Number of S3 snapshots to retain; 0 keeps all [default: etcd-snapshot-retention]",
        ..ROW
    },
    // Retention policy rules (config::retention), S3.
    KeySpec {
        name: "etcd-s3-retention-keep-last",
        kind: Kind::Int,
        help: "Keep the newest N S3 snapshots; any keep rule replaces the etcd-s3-retention count [default: the etcd-snapshot-retention-* value]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-retention-keep-hourly",
        kind: Kind::Int,
        help: "Keep the newest S3 snapshot of each of the last N hours (UTC) that have one; any keep rule replaces the etcd-s3-retention count [default: the etcd-snapshot-retention-* value]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-retention-keep-daily",
        kind: Kind::Int,
        help: "Keep the newest S3 snapshot of each of the last N days (UTC) that have one; any keep rule replaces the etcd-s3-retention count [default: the etcd-snapshot-retention-* value]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-retention-keep-weekly",
        kind: Kind::Int,
        help: "Keep the newest S3 snapshot of each of the last N ISO weeks (UTC) that have one; any keep rule replaces the etcd-s3-retention count [default: the etcd-snapshot-retention-* value]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-retention-keep-monthly",
        kind: Kind::Int,
        help: "Keep the newest S3 snapshot of each of the last N months (UTC) that have one; any keep rule replaces the etcd-s3-retention count [default: the etcd-snapshot-retention-* value]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-retention-max-age",
        kind: Kind::Duration,
        help: "Remove S3 snapshots older than this (e.g. 720h), oldest first, down to the min-count floor [default: the etcd-snapshot-retention-* value]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-retention-max-total-size",
        kind: Kind::String,
        help: "Remove the oldest S3 snapshots until the rest fit in this size (e.g. 500GiB), down to the min-count floor [default: the etcd-snapshot-retention-* value]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-retention-min-count",
        kind: Kind::Int,
        help: "Never keep fewer S3 snapshots than this, whatever the other retention rules say [default: the etcd-snapshot-retention-* value]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "cluster-id",
        kind: Kind::Name,
        help: "Identifies this cluster's snapshots in a shared bucket (object metadata Rke2-Cluster-Id): S3 retention never deletes another cluster's objects. Empty means objects without a cluster id",
        ..ROW
    },
    KeySpec {
        name: "etcd-s3-config-secret",
        aliases: &["s3-config-secret"],
        kind: Kind::Name,
        help: "Name of a kube-system Secret holding the whole S3 configuration",
        ..ROW
    },
    KeySpec {
        name: "kubeconfig",
        kind: Kind::Path,
        help: "Kubeconfig for the S3 config Secret and ETCDSnapshotFile resources [default: KUBECONFIG, then the pod's service account; with neither, Kubernetes features are off]",
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-install-crd",
        kind: Kind::Bool,
        default: DefaultValue::Value("false"),
        help: "Create the ETCDSnapshotFile CRD at start, or update one this server created (needs create/update on customresourcedefinitions); off: apply manifests/crd.yaml yourself. A CRD written by anything else is never replaced",
        scope: Scope::Server,
        ..ROW
    },
    // Server.
    KeySpec {
        name: "token",
        short: Some('t'),
        kind: Kind::Secret,
        help: "Server token clients authenticate with",
        scope: Scope::Server,
        secret: true,
        ..ROW
    },
    KeySpec {
        name: "token-file",
        kind: Kind::Path,
        help: "File holding the server token",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-disable-snapshots",
        kind: Kind::Bool,
        default: DefaultValue::Value("false"),
        help: "Disable scheduled snapshots",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-name",
        kind: Kind::Name,
        default: DefaultValue::Value("etcd-snapshot"),
        help: "Base name of scheduled snapshots",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-join-endpoint",
        kind: Kind::Url,
        help: "Client URL of a member of an existing etcd cluster: when this node's embedded etcd has no data yet, it adds itself to that cluster and joins it (e.g. peers rejoining after a restore elsewhere); https:// only, with the cluster's four etcd CA files copied into <data-dir>/server/tls/etcd/ first",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "cluster-reset",
        kind: Kind::Bool,
        default: DefaultValue::Value("false"),
        help: "Reset the embedded etcd to a single-member cluster (restoring --cluster-reset-restore-path when given), then exit",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "cluster-reset-restore-path",
        kind: Kind::String,
        help: "Snapshot to restore with --cluster-reset: a local path, or an S3 object name when etcd-s3 is on",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "cluster-reset-restore-to",
        kind: Kind::String,
        help: "Point-in-time restore with --cluster-reset (or restore): after the full snapshot, replay its delta chain up to latest, a revision, or an RFC 3339 time; without --cluster-reset-restore-path the newest local full snapshot before that point is used",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "cluster-reset-backup-retention",
        kind: Kind::Int,
        default: DefaultValue::Value("3"),
        help: "etcd-old-* data dirs and tls-* certificate backups kept (each) after a restore or reset; 0 keeps all",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-reconcile-interval",
        kind: Kind::Duration,
        default: DefaultValue::Value("10m"),
        help: "How often the server reconciles its snapshots (uploads local snapshots missing from S3)",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-schedule-cron",
        kind: Kind::Cron,
        default: DefaultValue::Value("0 */12 * * *"),
        help: "Snapshot schedule in cron spec, e.g. every 5 hours \"0 */5 * * *\"",
        scope: Scope::Server,
        ..ROW
    },
    // Delta capture (config::delta, delta).
    KeySpec {
        name: "etcd-snapshot-delta",
        kind: Kind::Bool,
        default: DefaultValue::Value("false"),
        help: "Capture every change between full snapshots into delta segments beside the snapshot dir (<snapshot-dir>/../.deltas/<snapshot>/), chained from the newest full snapshot; without one, a full snapshot is taken first",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-delta-period",
        kind: Kind::Duration,
        default: DefaultValue::Value("10s"),
        help: "Longest time a delta segment stays open before it is written out (the recovery point); above zero",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-delta-max-size",
        kind: Kind::String,
        default: DefaultValue::Value("64MiB"),
        help: "Size at which a delta segment is written out before its period ends (e.g. 64MiB; 4KiB to 1GiB)",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-delta-hashkv-interval",
        kind: Kind::Duration,
        default: DefaultValue::Value("0s"),
        help: "Least time between the delta segment ends that record etcd's keyspace hash (HashKV), which a point-in-time restore checks its replay against; etcd holds every write while it hashes, so on a large database raise it (e.g. 5m); 0s records one at every segment end",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-verify-schedule-cron",
        help: "Restore-drill schedule in cron spec, e.g. weekly \"0 3 * * 0\": this node's snapshot copies (local, and the S3 objects it uploaded) are each restored into a throwaway low-priority etcd member, one at a time, and the verdict recorded; empty turns scheduled drills off [default: \"\" (off)]",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-verify-after-save",
        kind: Kind::Bool,
        default: DefaultValue::Value("false"),
        help: "Drill the copies of each snapshot the server saves right after the save (on its own task, after any running drill)",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-snapshot-hashkv-max-db-size",
        kind: Kind::String,
        default: DefaultValue::Value("2GiB"),
        help: "Largest etcd database (its dbSize) whose keyspace hash (HashKV) a save records for restore drills to compare, asked after the snapshot stream (etcd holds its read lock, and so every write, while it hashes); bigger databases are saved without a hash (e.g. 2GiB; 0 never hashes)",
        ..ROW
    },
    KeySpec {
        name: "etcd-binary",
        kind: Kind::Path,
        default: DefaultValue::Value("etcd"),
        help: "etcd executable for the embedded etcd",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-client-address",
        kind: Kind::SocketAddr,
        default: DefaultValue::Value("127.0.0.1:2379"),
        help: "Client listener of the embedded etcd",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "etcd-peer-address",
        kind: Kind::SocketAddr,
        default: DefaultValue::Value("127.0.0.1:2380"),
        help: "Peer listener of the embedded etcd",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "bind-address",
        kind: Kind::IpAddr,
        default: DefaultValue::Value("127.0.0.1"),
        help: "Address the snapshot API listens on",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "tls-san",
        kind: Kind::StringList,
        help: "Extra host names or IPv4/IPv6 addresses to add as Subject Alternative Names on the API serving certificate (besides localhost, 127.0.0.1, ::1, the host name and bind-address)",
        scope: Scope::Server,
        ..ROW
    },
    KeySpec {
        name: "supervisor-port",
        kind: Kind::Port,
        default: DefaultValue::Value("9345"),
        help: "Port of the snapshot API",
        scope: Scope::Server,
        ..ROW
    },
    // Client.
    KeySpec {
        name: "etcd-server",
        short: Some('s'),
        kind: Kind::Url,
        default: DefaultValue::Value("https://127.0.0.1:9345"),
        help: "Server to send the request to (when unset: this node's server at https://<bind-address>:<supervisor-port>)",
        scope: Scope::Client,
        ..ROW
    },
    KeySpec {
        name: "etcd-token",
        short: Some('t'),
        kind: Kind::Secret,
        help: "Token to authenticate with [default: contents of <data-dir>/server/token]",
        scope: Scope::Client,
        secret: true,
        ..ROW
    },
    KeySpec {
        name: "etcd-server-ca",
        kind: Kind::Path,
        help: "CA bundle that signs the server's API certificate (the server's <data-dir>/server/tls/etcd-snapshot-ca.crt). Needed for a remote --etcd-server unless the token has the K10<ca-hash>::server:<password> form [default: this node's CA file, for a loopback --etcd-server only]",
        scope: Scope::Client,
        ..ROW
    },
    KeySpec {
        name: "name",
        kind: Kind::Name,
        default: DefaultValue::Value("on-demand"),
        help: "Base name of on-demand snapshots",
        scope: Scope::Client,
        ..ROW
    },
];
