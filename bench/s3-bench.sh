#!/usr/bin/env bash
# S3 benchmark, in one run on the same >= 1 GiB etcd database and the same loopback S3 server:
#   - `etcd-snapshot save --snapshot-compress --s3` (one pass: stream, verify, zip, write and
#     upload concurrently) against the sequential baseline `etcdctl snapshot save` + `zip` +
#     `aws s3 cp`;
#   - `etcd-snapshot ls --s3` over a folder of 10,000 snapshot objects.
#
#   [DATA=k8s|hex] bench/s3-bench.sh [size-in-MiB (default 1100)] [runs (default 3)]
#
# Needs: etcd, etcdctl, zip, python3, /usr/bin/time, the AWS CLI (`aws`), and release builds:
#   cargo build --release --bin etcd-snapshot --example s3-bench-server
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${1:-1100}"
RUNS="${2:-3}"
DATA="${DATA:-k8s}"
BIN="${BIN:-target/release/etcd-snapshot}"
SERVER="${SERVER:-target/release/examples/s3-bench-server}"
for exe in "$BIN" "$SERVER"; do
  [ -x "$exe" ] || { echo "build first: cargo build --release --bin etcd-snapshot --example s3-bench-server" >&2; exit 1; }
done
command -v aws >/dev/null || { echo "the AWS CLI is needed for the baseline (pip install awscli)" >&2; exit 1; }
source bench/lib.sh
start_etcd
fill_etcd

export AWS_ACCESS_KEY_ID=bench-access AWS_SECRET_ACCESS_KEY=bench-secret AWS_DEFAULT_REGION=us-east-1
s3root="$work/s3"
mkdir -p "$s3root/bench"
s3port=$((20000 + RANDOM % 20000))
"$SERVER" "$s3root" "$s3port" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >/dev/null 2>"$work/s3.log" &
cleanup_pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$s3port") 2>/dev/null && break; sleep 0.1; done
pre_run() { rm -rf "$s3root/bench/base" "$s3root/bench/ours"; }

common="--data-dir $work/es --node-name bench --etcd-endpoints $ep --etcd-server https://127.0.0.1:1 --etcd-snapshot-dir $work/out"
s3="--s3 --s3-endpoint=127.0.0.1:$s3port --s3-insecure --s3-bucket=bench"
mkdir -p "$work/es"
echo "| contender | wall s (median of $RUNS) | peak RSS MiB | local output bytes |"
echo "|---|---|---|---|"
measure "etcdctl snapshot save + zip + aws s3 cp (sequential)" \
  "etcdctl --endpoints $ep snapshot save $work/out/snap.db && zip -q -j $work/out/snap.db.zip $work/out/snap.db && rm $work/out/snap.db && aws --endpoint-url http://127.0.0.1:$s3port s3 cp --only-show-errors $work/out/snap.db.zip s3://bench/base/"
measure "etcd-snapshot save --snapshot-compress --s3" "$BIN $common save --snapshot-compress $s3 --s3-folder=ours"

# A folder of 10,000 snapshot objects (3 nodes, one per second) for the listing.
python3 - "$s3root/bench/many" <<'PY'
import os, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
for i in range(10000):
    with open(os.path.join(d, f"etcd-snapshot-node{i % 3}-{1700000000 + i}"), "wb") as f:
        f.write(b"x" * 1024)
PY
pre_run() { :; }
measure "etcd-snapshot ls --s3 (10,000 objects)" "$BIN $common ls $s3 --s3-folder=many"
