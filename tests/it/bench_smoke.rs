//! The benchmark scripts in `bench/`, run at a tiny size so they cannot rot: each must finish,
//! print its Markdown table with every contender, and report figures that parse. The numbers
//! mean nothing at this size (and the debug binary stands in for the release build); the real
//! runs and their figures are in BENCHMARKS.md. Page caches are left alone
//! (`BENCH_KEEP_CACHES`) because other tests share the machine. The matrix (`bench/matrix.sh`)
//! runs every operation at two tiny sizes against the tests' own S3 server; the capture's
//! benchmark (`pitr-lag.sh`) runs its three load windows for 4 s each. The `ls` script needs a
//! SeaweedFS server and is not covered here.

use std::path::Path;
use std::process::Command;

use crate::fakes::s3_support::{ACCESS_KEY, S3Server, SECRET_KEY, Tls};
use crate::support::{bin, require_binary};

/// Runs `bench/<script> args…` from the repository root; its standard output.
fn run_bench(script: &str, args: &[&str], envs: &[(&str, &Path)]) -> String {
    run_bench_with_stderr(script, args, envs).0
}

/// `run_bench`, with the script's standard error beside its output.
fn run_bench_with_stderr(script: &str, args: &[&str], envs: &[(&str, &Path)]) -> (String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new(root.join("bench").join(script));
    command
        .args(args)
        .current_dir(root)
        .env("BIN", bin())
        .env("BENCH_KEEP_CACHES", "1");
    for (key, value) in envs {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{script} failed: {stderr}\n{stdout}");
    (stdout, stderr)
}

/// The table's rows (after the header and the separator): contender name and numeric cells.
fn rows(table: &str) -> Vec<(String, Vec<f64>)> {
    table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| contender"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let numbers = cells[1..]
                .iter()
                .map(|c| c.parse::<f64>().unwrap_or_else(|_| panic!("{c:?} in {l}")))
                .collect();
            (cells[0].to_string(), numbers)
        })
        .collect()
}

/// A snapshot of a fresh etcd holding `keys` pod keys, saved by `etcdctl` into `dir`; None when
/// etcd is missing (and CI is unset).
fn small_snapshot(dir: &Path, keys: usize) -> Option<std::path::PathBuf> {
    let etcd = crate::support::TestEtcd::start()?;
    for i in 0..keys {
        etcd.put(&format!("/registry/pods/p{i}"), "v");
    }
    let snapshot = dir.join("small.db");
    let save = Command::new("etcdctl")
        .args(["--endpoints", &etcd.endpoint, "snapshot", "save"])
        .arg(&snapshot)
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap();
    assert!(save.status.success(), "{save:?}");
    Some(snapshot)
}

fn needs(tools: &[&str]) -> bool {
    tools.iter().all(|t| require_binary(t).is_some())
}

#[test]
fn the_save_benchmark_runs_every_contender() {
    if !needs(&["etcd", "etcdctl", "zip", "age", "age-keygen", "python3"]) {
        return;
    }
    let table = rows(&run_bench("save-bench.sh", &["4", "1"], &[]));
    let names: Vec<&str> = table.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 7, "{names:?}");
    assert!(names.contains(&"etcd-snapshot save --snapshot-compress, encrypted"));
    assert!(names.contains(&"etcd-snapshot save --snapshot-compress, no keyspace hash"));
    for (name, figures) in &table {
        // wall seconds, peak RSS MiB, output bytes: a 4 MiB database leaves output behind.
        assert!(figures[2] > 0.0, "{name}: no output: {figures:?}");
    }
}

#[test]
fn the_restore_benchmark_runs_every_contender() {
    if !needs(&["etcd", "etcdctl", "age", "age-keygen", "python3"]) {
        return;
    }
    let table = rows(&run_bench("restore-bench.sh", &["4", "1"], &[]));
    assert_eq!(table.len(), 6, "{table:?}");
    assert!(
        table[2].0.contains("encrypted by the age tool"),
        "{table:?}"
    );
    assert!(
        table[3].0.contains("encrypted by etcd-snapshot save"),
        "{table:?}"
    );
    assert!(table[5].0.contains("zipped and encrypted"), "{table:?}");
}

#[test]
fn the_inspect_benchmark_agrees_with_etcdutl_on_a_small_snapshot() {
    if !needs(&["etcd", "etcdctl", "etcdutl", "fincore", "python3"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(snapshot) = small_snapshot(dir.path(), 50) else {
        return;
    };
    // The script itself fails when the two tools' figures differ.
    let table = rows(&run_bench(
        "inspect-bench.sh",
        &["1"],
        &[("SNAPSHOT", &snapshot)],
    ));
    assert_eq!(table.len(), 4, "{table:?}");
}

#[test]
fn the_verify_benchmark_drills_a_small_snapshot_beside_etcdutl_restore() {
    if !needs(&["etcd", "etcdctl", "etcdutl", "python3"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(snapshot) = small_snapshot(dir.path(), 20) else {
        return;
    };
    // The script itself fails when the drill does not pass.
    let table = rows(&run_bench(
        "verify-bench.sh",
        &["1"],
        &[("SNAPSHOT", &snapshot)],
    ));
    assert_eq!(table.len(), 2, "{table:?}");
    // Wall seconds and the largest process are always measured. The command's own RSS is
    // polled, so a restore of a tiny snapshot can end (or be sampled) under 1 MiB, which the
    // table rounds to 0; the drill runs long enough to be sampled.
    for (name, figures) in &table {
        assert!(figures[0] > 0.0 && figures[2] > 0.0, "{name}: {figures:?}");
    }
    assert!(table[1].1[1] > 0.0, "the drill's own RSS: {table:?}");
}

/// The Markdown tables of `text` (separated by blank lines): each a list of rows of cells,
/// without the header and separator lines.
fn tables(text: &str) -> Vec<Vec<Vec<String>>> {
    text.split("\n\n")
        .map(|block| {
            block
                .lines()
                .filter(|l| l.starts_with('|'))
                .skip(2)
                .map(|l| {
                    l.trim_matches('|')
                        .split('|')
                        .map(|c| c.trim().to_string())
                        .collect()
                })
                .collect::<Vec<Vec<String>>>()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_matrix_runs_every_operation_and_checks_scaling() {
    if !needs(&["etcd", "etcdctl", "etcdutl", "zip", "aws", "python3"]) {
        return;
    }
    // The test's own S3 server (SigV4-checking, objects as files), in place of the example.
    let s3 = S3Server::start(Tls::Plain).await;
    let port = s3.addr.port().to_string();
    let root = s3.root.path().to_path_buf();
    // The last size cannot fit on any disk: it is skipped with a message, not attempted.
    let (stdout, stderr) = tokio::task::spawn_blocking(move || {
        let envs: [(&str, &Path); 7] = [
            ("S3_PORT", Path::new(&port)),
            ("S3_ROOT", &root),
            ("S3_ACCESS_KEY", Path::new(ACCESS_KEY)),
            ("S3_SECRET_KEY", Path::new(SECRET_KEY)),
            ("MIXES", Path::new("mix")),
            ("SIZES_MB", Path::new("4 8 100000000000")),
            ("RUNS", Path::new("1")),
        ];
        run_bench_with_stderr("matrix.sh", &[], &envs)
    })
    .await
    .unwrap();
    assert!(
        stderr.contains("skipping mix at 100000000000 MiB: it needs about"),
        "{stderr}"
    );
    let tables = tables(&stdout);
    assert_eq!(tables.len(), 3, "rows, scaling, largest size: {stdout}");
    // Every operation at both sizes, ours beside its contender, plus one pair for `ls`.
    let rows = &tables[0];
    assert_eq!(rows.len(), 2 + 2 * 6 * 2, "{stdout}");
    for row in rows {
        let figures: Vec<f64> = row[5..9].iter().map(|c| c.parse().unwrap()).collect();
        assert!(figures[2] > 0.0, "peak RSS: {row:?}");
        let ours = row[4].starts_with("etcd-snapshot");
        assert_eq!(
            ours,
            row[9].ends_with('x'),
            "ratio only on our rows: {row:?}"
        );
    }
    let operations: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[3].as_str()).collect();
    assert_eq!(operations.len(), 7, "{operations:?}");
    // The scaling check: one verdict pair per operation and contender measured at both sizes.
    assert_eq!(tables[1].len(), 6 * 2, "{stdout}");
    for row in &tables[1] {
        assert!(
            ["linear", "NOT linear"].contains(&row[4].as_str()),
            "{row:?}"
        );
        assert!(["flat", "GROWS"].contains(&row[6].as_str()), "{row:?}");
        assert_eq!(row[3].split(", ").count(), 2, "{row:?}");
    }
    assert_eq!(
        tables[2].len(),
        6,
        "one row per operation at the largest size: {stdout}"
    );
}

#[test]
fn the_pitr_benchmark_replays_a_small_chain_beside_the_plain_restore() {
    if !needs(&["etcd", "etcdctl", "python3"]) {
        return;
    }
    let load = std::path::PathBuf::from(env!("CARGO_BIN_EXE_etcd-snapshot-pitr-load"));
    let table = rows(&run_bench(
        "pitr-bench.sh",
        &["1", "300", "1"],
        &[("LOAD", load.as_path())],
    ));
    let names: Vec<&str> = table.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(table.len(), 4, "{names:?}");
    assert!(
        names[1].contains("--cluster-reset-restore-to latest"),
        "{names:?}"
    );
    // Both rates count the 300 events the load generator wrote, over a time that was measured.
    for (name, figures) in &table[2..] {
        assert_eq!(figures[0], 300.0, "{name}: {figures:?}");
        assert!(figures[1] > 0.0 && figures[2] > 0.0, "{name}: {figures:?}");
    }
}

#[test]
fn the_pitr_lag_benchmark_samples_the_recovery_point_and_compares_three_runs() {
    if !needs(&["etcd", "etcdctl", "python3", "curl"]) {
        return;
    }
    // 1 MiB, 200 requests/s of the mixed load for 4 s per run, a 1 s delta period.
    let load = std::path::PathBuf::from(env!("CARGO_BIN_EXE_etcd-snapshot-pitr-load"));
    let envs: [(&str, &Path); 3] = [
        ("LOAD", &load),
        ("PERIOD_S", Path::new("1")),
        ("MIX", Path::new("put=70,delete=10,txn=10,lease=10")),
    ];
    let stdout = run_bench("pitr-lag.sh", &["1", "200", "4"], &envs);
    assert!(
        stdout.contains("--etcd-snapshot-delta-period 1s") && stdout.contains("--rate 200"),
        "the commands: {stdout}"
    );
    let tables = tables(&stdout);
    assert_eq!(tables.len(), 4, "{stdout}");
    let number = |cell: &str| -> f64 {
        cell.parse()
            .unwrap_or_else(|_| panic!("{cell:?}: {stdout}"))
    };
    // The recovery point: period 1, target 3, about 8 samples, the verdict one of two words.
    let lag = &tables[0][0];
    assert_eq!((number(&lag[0]), number(&lag[1])), (1.0, 3.0), "{lag:?}");
    assert!(number(&lag[2]) >= 4.0, "samples: {lag:?}");
    assert!(
        number(&lag[4]) >= number(&lag[3]) && number(&lag[5]) >= number(&lag[4]),
        "{lag:?}"
    );
    assert!(["met", "NOT met"].contains(&lag[6].as_str()), "{lag:?}");
    // Three runs; the load ran in each, etcd worked in each, the server only where there was one.
    let runs = &tables[1];
    assert_eq!(runs.len(), 3, "{runs:?}");
    for (run, server) in runs.iter().zip([true, true, false]) {
        assert!(
            number(&run[1]) > 0.0 && number(&run[1]) <= 210.0,
            "rate: {run:?}"
        );
        assert!(
            number(&run[3]) >= number(&run[2]),
            "latency p99 >= p50: {run:?}"
        );
        assert_eq!(run[5] != "-", server, "server CPU: {run:?}");
        assert!(number(&run[8]) > 0.0, "etcd CPU: {run:?}");
        assert!(number(&run[10]) > 0.0, "latency from sending: {run:?}");
    }
    assert!(
        number(&runs[0][6]) > 0.0,
        "the capturing server's RSS: {runs:?}"
    );
    assert_eq!(
        tables[2].len(),
        2,
        "overhead against both other runs: {stdout}"
    );
    // Segments were written during the window, with bytes to scale to an hour.
    let segments = &tables[3][0];
    assert!(
        number(&segments[1]) > 0.0 && number(&segments[2]) >= 1.0,
        "{segments:?}"
    );
    assert!(
        number(&segments[3]) > 0.0 && number(&segments[5]) > number(&segments[3]),
        "{segments:?}"
    );
}

#[test]
fn the_sqlite_benchmark_runs_every_contender_under_a_writer() {
    if !needs(&["sqlite3", "python3"]) {
        return;
    }
    // 4 MiB, one run, a writer slowed to 200 rows/s, a 1 s baseline.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("bench/sqlite-bench.sh"))
        .args(["4", "1", "200"])
        .current_dir(root)
        .env("BIN", bin())
        .env("BENCH_KEEP_CACHES", "1")
        .env("BASELINE_SECS", "1")
        .env("LIMIT_SECS", "120")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = rows(&stdout);
    let names: Vec<&str> = table.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "sqlite3 .backup",
            "etcd-snapshot save",
            "etcd-snapshot save --snapshot-compress"
        ]
    );
    for (name, figures) in &table {
        assert_eq!(figures.len(), 5, "{name}: {figures:?}");
        assert!(figures[2] > 0.0, "{name} wrote nothing: {figures:?}");
        assert!(
            figures[3] > 0.0,
            "{name}: the writer wrote nothing alone: {figures:?}"
        );
    }
}
