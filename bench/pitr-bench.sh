#!/usr/bin/env bash
# Point-in-time restore benchmark: a full snapshot of a database of SIZE MiB, then EVENTS puts of
# 1 KiB values (each its own revision) captured into delta segments by the server, then
# `etcd-snapshot restore` of that snapshot alone against
# `etcd-snapshot restore --cluster-reset-restore-to latest` (the same snapshot plus the replay of
# every event, checked against the recorded keyspace hashes). The replay rate is the events over
# the difference of the two, beside the rate the load generator wrote them at.
#
#   [DATA=k8s|hex] bench/pitr-bench.sh [size-in-MiB (default 1024)] [events (default 1000000)] [runs (default 1)]
#
# Needs: etcd, etcdctl, python3, /usr/bin/time, and a release build with the load generator:
#   cargo build --release --bin etcd-snapshot --bin etcd-snapshot-pitr-load
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${1:-1024}"
EVENTS="${2:-1000000}"
RUNS="${3:-1}"
DATA="${DATA:-k8s}"
BIN="${BIN:-target/release/etcd-snapshot}"
LOAD="${LOAD:-$(dirname "$BIN")/etcd-snapshot-pitr-load}"
for exe in "$BIN" "$LOAD"; do
  [ -x "$exe" ] || { echo "build first: cargo build --release --bin etcd-snapshot --bin etcd-snapshot-pitr-load" >&2; exit 1; }
done
source bench/lib.sh
start_etcd
fill_etcd

# The capture: a server on that etcd takes the full snapshot the chain starts from, then writes
# every change into segments (1 s period).
cap="$work/cap"
api_port=$(free_port)
"$BIN" server --data-dir "$cap" --node-name bench --token bench-token --etcd-endpoints "$ep" \
  --supervisor-port "$api_port" --etcd-snapshot-delta --etcd-snapshot-delta-period 1s \
  >"$work/server.log" 2>&1 &
server=$!
cleanup_pids+=($server)
for _ in $(seq 600); do
  grep -q "delta capture started" "$work/server.log" && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
grep -q "delta capture started" "$work/server.log" || { echo "the capture did not start:" >&2; tail -5 "$work/server.log" >&2; exit 1; }
anchor=$(ls "$cap/server/db/snapshots" | head -1)
chain="$cap/server/db/.deltas/$anchor"

echo "writing $EVENTS events..." >&2
read -r written load_s last < <("$LOAD" "$ep" "$EVENTS" 1024 8)
# chain_end: the highest revision in a published segment (the chain has no hole here).
chain_end() { ls "$chain" 2>/dev/null | sed -n 's/^[0-9]*-0*\([0-9][0-9]*\)\.seg$/\1/p' | sort -n | tail -1; }
for _ in $(seq 1200); do
  [ "$(chain_end || echo 0)" -ge "$last" ] 2>/dev/null && break
  sleep 0.5
done
[ "$(chain_end)" -ge "$last" ] || { echo "the chain reached $(chain_end), not $last" >&2; exit 1; }
kill "$server"; wait "$server" || true
echo "chain: $(ls "$chain" | wc -l) segments, $(du -sb "$chain" | cut -f1) bytes" >&2

c_port=$(free_port); p_port=$(free_port)
pre_run() { rm -rf "$work/es/server/db"; }
common="--data-dir $work/es --node-name bench --etcd-client-address 127.0.0.1:$c_port --etcd-peer-address 127.0.0.1:$p_port --token bench-token"
snap="$cap/server/db/snapshots/$anchor"
echo "| contender | wall s (median of $RUNS) | peak RSS MiB | output bytes |"
echo "|---|---|---|---|"
plain=$(measure "etcd-snapshot restore (the full snapshot alone)" "$BIN restore $common $snap")
echo "$plain"
pitr=$(measure "etcd-snapshot restore --cluster-reset-restore-to latest (the snapshot and $EVENTS events)" \
  "$BIN restore $common $snap --cluster-reset-restore-to latest")
echo "$pitr"
echo
python3 - "$written" "$load_s" "$(echo "$plain" | cut -d'|' -f3)" "$(echo "$pitr" | cut -d'|' -f3)" <<'PY'
import sys
events, load_s, plain_s, pitr_s = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
replay_s = max(pitr_s - plain_s, 0.001)
print("| contender | events | seconds | events/s |")
print("|---|---|---|---|")
print(f"| load generator (8 connections, 1 KiB puts) | {events} | {load_s:.2f} | {events / max(load_s, 0.001):.0f} |")
print(f"| replay (restore-to minus the plain restore) | {events} | {replay_s:.2f} | {events / replay_s:.0f} |")
PY
