#!/usr/bin/env bash
# `etcd-snapshot inspect` against `etcdutl snapshot status` (etcd 3.5) on one >= 1 GiB snapshot:
# wall time with only that file evicted from the page cache (posix_fadvise DONTNEED, checked with
# fincore) and warm, and peak RSS, median of RUNS rounds in which the contenders take turns.
# Both read the same file and must report the same figures; inspect also checks the sha256
# trailer and walks every page.
#
#   [SNAPSHOT=file] bench/inspect-bench.sh [runs (default 3)]
#   bench/inspect-bench.sh --make FILE     # only make the snapshot, keep it at FILE
#
# Without SNAPSHOT it starts a throwaway etcd, fills it with bench/inspect-populate.py and saves a
# snapshot with etcdctl (with --make, into FILE, for several later runs). Needs: etcd, etcdctl, etcdutl (scripts/install-deps), python3,
# /usr/bin/time, a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
make_only=""
if [ "${1:-}" = "--make" ]; then
  make_only="${2:?--make needs a file}"
  set -- 1
fi
RUNS="${1:-3}"
BIN="${BIN:-target/release/etcd-snapshot}"
source bench/lib.sh
snap="${SNAPSHOT:-}"
if [ -z "$snap" ]; then
  start_etcd
  python3 bench/inspect-populate.py "$ep"
  snap="${make_only:-$work/snapshot.db}"
  etcdctl --endpoints "$ep" snapshot save "$snap" >/dev/null
  [ -n "$make_only" ] && { echo "saved $snap ($(stat -c %s "$snap") bytes)" >&2; exit 0; }
fi
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set BIN)" >&2; exit 1; }
command -v etcdutl >/dev/null || { echo "etcdutl (etcd 3.5) is needed: scripts/install-deps" >&2; exit 1; }
echo "snapshot: $(stat -c %s "$snap") bytes" >&2

# evict: drops only this file from the page cache, then checks with fincore that it is gone.
evict() {
  python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$snap"
  local cached
  cached=$(fincore -b -n -o RES "$snap" | tr -d ' ')
  [ "$cached" -le $((1024 * 1024)) ] || { echo "still cached after eviction: $cached bytes" >&2; exit 1; }
}
warm() { cat "$snap" >/dev/null; }

names=("etcdutl snapshot status (cold file)" "etcd-snapshot inspect (cold file)"
  "etcdutl snapshot status (warm)" "etcd-snapshot inspect (warm)")
preps=(evict evict warm warm)
etcdutl_cmd=(etcdutl snapshot status -w json "$snap")
inspect_cmd=("$BIN" --data-dir "$work/es" inspect -o json "$snap")

# one CASE: runs case CASE once; appends "wall rss_kib" to $work/case-CASE.
one() {
  local c="$1"
  ${preps[$c]}
  if [ $((c % 2)) -eq 0 ]; then set -- "${etcdutl_cmd[@]}"; else set -- "${inspect_cmd[@]}"; fi
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out-$c" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  cat "$work/time" >>"$work/case-$c"
}

# The contenders take turns in every round, so a change in the machine's load hits all of them.
for _ in $(seq "$RUNS"); do
  for c in 0 1 2 3; do one "$c"; done
done
# Both read the same figures from the file.
python3 - "$work/out-0" "$work/out-1" <<'PY'
import json, sys
theirs = json.load(open(sys.argv[1])); ours = json.load(open(sys.argv[2]))["etcd_status"]
pairs = [("hash", "hash"), ("revision", "revision"), ("totalKey", "total_key"), ("totalSize", "total_size")]
bad = [(t, theirs[t], ours[o]) for t, o in pairs if theirs[t] != ours[o]]
sys.exit(f"figures differ: {bad}" if bad else 0)
PY

echo "| contender | wall s (median of $RUNS) | peak RSS MiB |"
echo "|---|---|---|"
for c in 0 1 2 3; do
  median=$(sort -n "$work/case-$c" | sed -n "$(( (RUNS + 1) / 2 ))p")
  printf '| %s | %s | %s |\n' "${names[$c]}" "$(cut -d' ' -f1 <<<"$median")" "$(( $(cut -d' ' -f2 <<<"$median") / 1024 ))"
  echo "${names[$c]}: all runs (s KiB): $(tr '\n' ';' <"$work/case-$c")" >&2
done
