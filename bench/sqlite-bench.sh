#!/usr/bin/env bash
# SQLite benchmark: `etcd-snapshot save` of a k3s-style SQLite datastore (kine's state.db in WAL
# mode) against `sqlite3 .backup` of the same file, both while a writer keeps committing, in one
# run, with the writer's throughput during each.
#
#   bench/sqlite-bench.sh [size-in-MiB (default 1100)] [runs (default 1)] [writer rows/s (0: max)]
#
# Builds the database with bench/sqlite-populate.py, then for each contender starts
# bench/sqlite-writer.py (20 rows of 1 KiB per transaction), lets it run alone for 5 s (the
# baseline), runs the contender under GNU time (wall seconds, peak RSS) with a 900 s limit, and
# reads the writer's progress (max(id), through the sqlite3 CLI) before and after: rows/s alone
# and during the copy. Prints a Markdown table of the median run. `sqlite3 .backup` copies 100
# pages a step and restarts whenever another process writes, so under a busy writer it may not
# finish: it is then reported as `timeout`. Needs: sqlite3, python3, /usr/bin/time, a release
# build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${1:-1100}"
RUNS="${2:-1}"
RATE="${3:-0}"
BASELINE_SECS="${BASELINE_SECS:-5}"
LIMIT_SECS="${LIMIT_SECS:-900}"
BIN="${BIN:-target/release/etcd-snapshot}"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d /tmp/etcd-snapshot-sqlite-bench.XXXXXX)
writer=""
trap '[ -z "$writer" ] || kill "$writer" 2>/dev/null || true; rm -rf "$work"' EXIT
db="$work/data/server/db/state.db"
mkdir -p "$(dirname "$db")" "$work/out"
echo "populating a ${SIZE_MIB} MiB kine database..." >&2
python3 bench/sqlite-populate.py "$db" "$SIZE_MIB"
echo "db size: $(stat -c %s "$db") bytes" >&2

max_id() { sqlite3 "file:$db?mode=ro" "SELECT max(id) FROM kine" 2>/dev/null || echo 0; }

# one NAME COMMAND: one timed run under the writer; prints "wall rss_kib out_bytes alone_rps during_rps".
one() {
  rm -rf "$work/out"; mkdir -p "$work/out"
  [ -n "${BENCH_KEEP_CACHES:-}" ] || { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
  python3 bench/sqlite-writer.py "$db" "$RATE" & writer=$!
  local a0 a1 t0 t1 b1 wall
  sleep 0.5; a0=$(max_id); t0=$(date +%s.%N)
  sleep "$BASELINE_SECS"; a1=$(max_id); t1=$(date +%s.%N)
  if timeout "$LIMIT_SECS" /usr/bin/time -f "%e %M" -o "$work/time" bash -c "$1" >/dev/null 2>"$work/err"; then
    wall_rss=$(cat "$work/time")
  else
    wall_rss="timeout 0"
  fi
  b1=$(max_id)
  kill "$writer"; wait "$writer" 2>/dev/null || true; writer=""
  wall=$(echo "$wall_rss" | cut -d' ' -f1)
  local alone during out
  alone=$(python3 -c "print(round(($a1 - $a0) / ($t1 - $t0)))")
  if [ "$wall" = timeout ]; then
    during=$(python3 -c "print(round(($b1 - $a1) / $LIMIT_SECS))")
  else
    during=$(python3 -c "print(round(($b1 - $a1) / max($wall, 0.01)))")
  fi
  out=$(du -b "$work/out" | tail -1 | cut -f1)
  echo "$wall $(echo "$wall_rss" | cut -d' ' -f2) $out $alone $during"
}

# measure NAME COMMAND: the median run (by wall time) as a Markdown row.
measure() {
  local name="$1" results=()
  for _ in $(seq "$RUNS"); do results+=("$(one "$2")"); done
  local m
  m=$(printf '%s\n' "${results[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  read -r wall rss out alone during <<<"$m"
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$wall" "$(( rss / 1024 ))" "$out" "$alone" "$during"
}

common="--data-dir $work/data --node-name bench --etcd-server https://127.0.0.1:1 --etcd-snapshot-dir $work/out"
echo "| contender | wall s (median of $RUNS) | peak RSS MiB | output bytes | writer rows/s alone | writer rows/s during |"
echo "|---|---|---|---|---|---|"
measure "sqlite3 .backup" "sqlite3 $db '.backup $work/out/snap.db'"
measure "etcd-snapshot save" "$BIN $common save"
measure "etcd-snapshot save --snapshot-compress" "$BIN $common save --snapshot-compress"
