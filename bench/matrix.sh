#!/usr/bin/env bash
# The benchmark matrix, one command: every operation of etcd-snapshot beside what a user would
# run instead, on each data mix and database size, in one run on one machine.
#
#   [MIXES="k8s b64 mix"] [SIZES_MB="1024 4096 8192"] [RUNS=3] [OPS="..."] bench/matrix.sh
#
# Mixes (bench/gen-values.py): k8s (Kubernetes-like JSON objects), b64 (random base64 text),
# mix (the two in turns, half and half). Sizes are the MiB of values put into a fresh etcd, in
# values of VALUE_KIB KiB (default 64: etcd keeps its recent raft entries in memory, values
# included, so 1 MiB values made an 8 GiB fill take 18 GB of RAM); a size that would not fit on
# the disk is skipped with a message. Operations (OPS, all by
# default), each against its contender:
#   save     etcd-snapshot save                              | etcdctl snapshot save
#   zip      etcd-snapshot save --snapshot-compress          | etcdctl snapshot save + zip
#   s3       etcd-snapshot save --snapshot-compress --s3     | etcdctl + zip + aws s3 cp
#   ls       etcd-snapshot ls --s3 over 10,000 objects       | aws s3api list-objects-v2 (once)
#   restore  etcd-snapshot restore                           | etcdutl snapshot restore
#   inspect  etcd-snapshot inspect                           | etcdutl snapshot status
#   verify   etcd-snapshot verify (one restore drill)        | etcdutl snapshot restore
# The save rows run against the filled etcd; it is then stopped, as it is for a restore, and
# the restore, inspect and verify rows read the snapshot etcdctl saved.
# Every row: median wall seconds of RUNS, that run's CPU seconds (user + system, with children)
# and peak RSS (GNU time: the largest process of the command). Then a scaling table: seconds per
# GB at each size (linear when they stay within 25%) and peak RSS at each size (flat when it
# moves by at most 16 MiB or 25%). Page caches are dropped before every run (BENCH_KEEP_CACHES=1
# leaves them). Needs: etcd, etcdctl, etcdutl (scripts/install-deps), zip, the AWS CLI, python3,
# /usr/bin/time, and release builds:
#   cargo build --release --bin etcd-snapshot --example s3-bench-server
set -euo pipefail
cd "$(dirname "$0")/.."
MIXES="${MIXES:-k8s b64 mix}"
SIZES_MB="${SIZES_MB:-1024 4096 8192}"
RUNS="${RUNS:-3}"
export VALUE_KIB="${VALUE_KIB:-64}"
OPS="${OPS:-save zip s3 ls restore inspect verify}"
BIN="${BIN:-target/release/etcd-snapshot}"
SERVER="${SERVER:-target/release/examples/s3-bench-server}"
build="build first: cargo build --release --bin etcd-snapshot --example s3-bench-server"
[ -x "$BIN" ] || { echo "$build" >&2; exit 1; }
# S3_PORT (with S3_ROOT and keys, see start_s3 in bench/lib.sh) names a running server instead.
[ -n "${S3_PORT:-}" ] || [ -x "$SERVER" ] || { echo "$build" >&2; exit 1; }
for tool in etcd etcdctl zip aws python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (see the header of $0)" >&2; exit 1; }
done
source bench/lib.sh
source bench/matrix-ops.sh
TOOL=$(restore_tool)
results="$work/results.tsv"
: >"$results"

# fits SIZE: whether SIZE MiB of values fit in the scratch dir's file system. Peak use is the
# etcd database, the saved snapshot the restore rows read, one output, and one restored or
# uploaded copy: four times the size, plus 1 GiB of WAL and slack.
fits() {
  local need=$(( $1 * 4 + 1024 )) avail
  avail=$(df -Pm "$work" | awk 'NR == 2 { print $4 }')
  if [ "$avail" -lt "$need" ]; then
    echo "skipping $mix at $1 MiB: it needs about $need MiB free in $work, and $avail MiB are available" >&2
    return 1
  fi
}

start_s3
if [[ " $OPS " == *" ls "* ]]; then
  fill_s3_folder many 10000
  mix=- SIZE_MIB=- db_size=0
  op_ls
fi
for mix in $MIXES; do
  for SIZE_MIB in $SIZES_MB; do
    fits "$SIZE_MIB" || continue
    DATA=$mix
    start_etcd
    fill_etcd
    snap="$work/snapshot.db"
    etcdctl --endpoints "$ep" snapshot save "$snap" >/dev/null
    for op in $OPS; do
      case $op in save | zip | s3) "op_$op" ;; esac
    done
    # A restore runs with the cluster's etcd stopped, and nothing after the saves needs it: its
    # memory and its mapped database would otherwise squeeze the page cache the restores and
    # their check members read through (a third of this machine's RAM at 8 GiB).
    stop_etcd
    for op in $OPS; do
      case $op in save | zip | s3 | ls) ;; *) "op_$op" ;; esac
    done
    rm -rf "$snap" "$work/es" "$work/drill" "$work/out" "$work/restored" "$work/alone"
  done
done
python3 bench/matrix-report.py "$results" "$RUNS"
