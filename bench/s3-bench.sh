#!/usr/bin/env bash
# S3 benchmark, in one run on the same >= 1 GiB etcd database and the same loopback S3 server:
#   - `etcd-snapshot save --snapshot-compress --s3` (one pass: stream, verify, zip, write and
#     upload concurrently) against the sequential baseline `etcdctl snapshot save` + `zip` +
#     `aws s3 cp`;
#   - `etcd-snapshot ls --s3` over a folder of 10,000 snapshot objects.
#
#   [DATA=k8s|hex|b64|mix] bench/s3-bench.sh [size-in-MiB (default 1100)] [runs (default 3)]
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

start_s3
pre_run() { rm -rf "$s3root/bench/base" "$s3root/bench/ours"; }

echo "| contender | wall s (median of $RUNS) | peak RSS MiB | local output bytes |"
echo "|---|---|---|---|"
measure "etcdctl snapshot save + zip + aws s3 cp (sequential)" "$(etcdctl_zip_aws)"
measure "etcd-snapshot save --snapshot-compress --s3" "$(ours save --snapshot-compress "$(s3_flags)" --s3-folder=ours)"

# A folder of 10,000 snapshot objects (3 nodes, one per second) for the listing.
fill_s3_folder many 10000
pre_run() { :; }
measure "etcd-snapshot ls --s3 (10,000 objects)" "$(ours ls "$(s3_flags)" --s3-folder=many)"
