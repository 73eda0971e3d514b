//! The benchmark scripts in `bench/`, run at a tiny size so they cannot rot: each must finish,
//! print its Markdown table with every contender, and report figures that parse. The numbers
//! mean nothing at this size (and the debug binary stands in for the release build); the real
//! runs and their figures are in BENCHMARKS.md (the drill benchmark, `verify-bench.sh`, and the
//! point-in-time benchmark, `pitr-bench.sh`, have no recorded figures yet). Page caches are left alone (`BENCH_KEEP_CACHES`)
//! because other tests share the machine. The S3 and `ls` scripts need a SeaweedFS server and
//! are not covered here.

use std::path::Path;
use std::process::Command;

use crate::support::{bin, require_binary};

/// Runs `bench/<script> args…` from the repository root; its standard output.
fn run_bench(script: &str, args: &[&str], envs: &[(&str, &Path)]) -> String {
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
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed: {stderr}\n{stdout}");
    stdout
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
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(names.contains(&"etcd-snapshot save --snapshot-compress, encrypted"));
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
    assert_eq!(table.len(), 3, "{table:?}");
    assert!(table[2].0.contains("encrypted"), "{table:?}");
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

#[test]
fn the_pitr_benchmark_replays_a_small_chain_beside_the_plain_restore() {
    if !needs(&["etcd", "etcdctl", "python3"]) {
        return;
    }
    let table = rows(&run_bench("pitr-bench.sh", &["1", "300", "1"], &[]));
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
