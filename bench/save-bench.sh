#!/usr/bin/env bash
# Save benchmark: etcd-snapshot against etcdctl on the same >= 1 GiB etcd database, in one run.
#
#   [DATA=k8s|hex] bench/save-bench.sh [size-in-MiB (default 1100)] [runs (default 3)]
#
# Starts a throwaway etcd on loopback, fills it with 1 MiB values from bench/gen-values.py
# (DATA=k8s: Kubernetes-like JSON objects, the default; DATA=hex: random hex text, the slow case
# for Deflate), then times each contender `runs` times with GNU time (wall seconds, peak RSS) and
# prints a Markdown table of the median run. Needs: etcd, etcdctl, zip, python3, /usr/bin/time,
# a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${1:-1100}"
RUNS="${2:-3}"
DATA="${DATA:-k8s}"
BIN="${BIN:-target/release/etcd-snapshot}"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }

work=$(mktemp -d /tmp/etcd-snapshot-bench.XXXXXX)
port_c=$((20000 + RANDOM % 20000)); port_p=$((port_c + 1))
ep="http://127.0.0.1:$port_c"
etcd --name bench --data-dir "$work/etcd" --quota-backend-bytes $((16 * 1024 * 1024 * 1024)) \
  --listen-client-urls "$ep" --advertise-client-urls "$ep" \
  --listen-peer-urls "http://127.0.0.1:$port_p" --initial-advertise-peer-urls "http://127.0.0.1:$port_p" \
  --initial-cluster "bench=http://127.0.0.1:$port_p" >"$work/etcd.log" 2>&1 &
etcd_pid=$!
trap 'kill $etcd_pid 2>/dev/null; wait $etcd_pid 2>/dev/null; rm -rf "$work"' EXIT
export ETCDCTL_API=3
for _ in $(seq 100); do etcdctl --endpoints "$ep" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done

echo "filling etcd with ${SIZE_MIB} MiB of $DATA values..." >&2
python3 bench/gen-values.py "$DATA" "$SIZE_MIB" > "$work/values"
i=0
while IFS= read -r value; do
  printf '%s' "$value" | etcdctl --endpoints "$ep" put "/bench/$i" >/dev/null
  i=$((i + 1))
done < "$work/values"
rm -f "$work/values"
db_size=$(etcdctl --endpoints "$ep" endpoint status -w json | sed -n 's/.*"dbSize":\([0-9]*\).*/\1/p')
echo "db size: $db_size bytes" >&2

measure() { # name, command...
  local name="$1"; shift
  local results=()
  for r in $(seq "$RUNS"); do
    rm -rf "$work/out"; mkdir -p "$work/out"
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    /usr/bin/time -f "%e %M" -o "$work/time" bash -c "$*" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    results+=("$(cat "$work/time")")
  done
  local median
  median=$(printf '%s\n' "${results[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  local out_size
  out_size=$(du -b "$work/out" | tail -1 | cut -f1)
  printf '| %s | %s | %s | %s |\n' "$name" "$(echo "$median" | cut -d' ' -f1)" \
    "$(( $(echo "$median" | cut -d' ' -f2) / 1024 ))" "$out_size"
}

common="--data-dir $work/es --node-name bench --etcd-endpoints $ep --etcd-server https://127.0.0.1:1 --etcd-snapshot-dir $work/out"
mkdir -p "$work/es"
echo "| contender | wall s (median of $RUNS) | peak RSS MiB | output bytes |"
echo "|---|---|---|---|"
measure "etcdctl snapshot save" "etcdctl --endpoints $ep snapshot save $work/out/snap.db"
measure "etcdctl snapshot save + zip" "etcdctl --endpoints $ep snapshot save $work/out/snap.db && zip -q -j $work/out/snap.db.zip $work/out/snap.db && rm $work/out/snap.db"
measure "etcd-snapshot save" "$BIN $common save"
measure "etcd-snapshot save --snapshot-compress" "$BIN $common save --snapshot-compress"
