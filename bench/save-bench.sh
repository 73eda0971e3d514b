#!/usr/bin/env bash
# Save benchmark: etcd-snapshot against etcdctl on the same >= 1 GiB etcd database, in one run.
#
#   [DATA=k8s|hex|b64|mix] bench/save-bench.sh [size-in-MiB (default 1100)] [runs (default 3)]
#
# Starts a throwaway etcd on loopback, fills it with 1 MiB values from bench/gen-values.py
# (DATA=k8s: Kubernetes-like JSON objects, the default; DATA=hex or b64: random text; DATA=mix:
# b64 and k8s values in turns), then times each contender `runs` times with GNU time (wall seconds, peak RSS) and
# prints a Markdown table of the median run. Needs: etcd, etcdctl, zip, python3, /usr/bin/time,
# age and age-keygen (the encrypted rows), a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${1:-1100}"
RUNS="${2:-3}"
DATA="${DATA:-k8s}"
BIN="${BIN:-target/release/etcd-snapshot}"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
source bench/lib.sh
start_etcd
fill_etcd

echo "| contender | wall s (median of $RUNS) | peak RSS MiB | output bytes |"
echo "|---|---|---|---|"
measure "etcdctl snapshot save" "$(etcdctl_save)"
measure "etcdctl snapshot save + zip" "$(etcdctl_zip)"
measure "etcd-snapshot save" "$(ours save)"
measure "etcd-snapshot save --snapshot-compress" "$(ours save --snapshot-compress)"
measure "etcd-snapshot save --snapshot-compress, no keyspace hash" "$(ours save --snapshot-compress --etcd-snapshot-hashkv-max-db-size 0)"
# Encryption: the same compressed save, age-encrypted in the same pass, beside what a user would
# otherwise script (etcdctl + zip + the age tool).
age-keygen -o "$work/age.key" 2>/dev/null
age_pub=$(age-keygen -y "$work/age.key")
measure "etcdctl snapshot save + zip + age" "$(etcdctl_zip) && age -r $age_pub -o $work/out/snap.db.zip.age $work/out/snap.db.zip && rm $work/out/snap.db.zip"
measure "etcd-snapshot save --snapshot-compress, encrypted" "$(ours --etcd-snapshot-encryption-recipients=$age_pub save --snapshot-compress)"
