#!/usr/bin/env bash
# `etcd-snapshot inspect` against `etcdutl snapshot status` (etcd 3.5) on one >= 1 GiB snapshot:
# wall time with only that file evicted from the page cache (posix_fadvise DONTNEED) and warm,
# and peak RSS, median of RUNS. Both read the same file; inspect also checks the sha256 trailer.
#
#   [SNAPSHOT=file] bench/inspect-bench.sh [runs (default 3)]
#
# Without SNAPSHOT it starts a throwaway etcd, fills it with bench/inspect-populate.py and saves a
# snapshot with etcdctl. Needs: etcd, etcdctl, etcdutl (scripts/install-deps), python3,
# /usr/bin/time, a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
BIN="${BIN:-target/release/etcd-snapshot}"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v etcdutl >/dev/null || { echo "etcdutl (etcd 3.5) is needed: scripts/install-deps" >&2; exit 1; }
source bench/lib.sh
snap="${SNAPSHOT:-}"
if [ -z "$snap" ]; then
  start_etcd
  python3 bench/inspect-populate.py "$ep"
  snap="$work/snapshot.db"
  etcdctl --endpoints "$ep" snapshot save "$snap" >/dev/null
fi
echo "snapshot: $(stat -c %s "$snap") bytes" >&2

evict() { python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$snap"; }
warm() { cat "$snap" >/dev/null; }

# run_case NAME PREP COMMAND...: one Markdown row, median wall seconds and peak RSS of RUNS.
run_case() {
  local name="$1" prep="$2"; shift 2
  local results=()
  for _ in $(seq "$RUNS"); do
    $prep
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    results+=("$(cat "$work/time")")
  done
  local median
  median=$(printf '%s\n' "${results[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  printf '| %s | %s | %s |\n' "$name" "$(cut -d' ' -f1 <<<"$median")" "$(( $(cut -d' ' -f2 <<<"$median") / 1024 ))"
}

echo "| contender | wall s (median of $RUNS) | peak RSS MiB |"
echo "|---|---|---|"
run_case "etcdutl snapshot status (cold file)" evict etcdutl snapshot status -w json "$snap"
run_case "etcd-snapshot inspect (cold file)" evict "$BIN" --data-dir "$work/es" inspect -o json "$snap"
run_case "etcdutl snapshot status (warm)" warm etcdutl snapshot status -w json "$snap"
run_case "etcd-snapshot inspect (warm)" warm "$BIN" --data-dir "$work/es" inspect -o json "$snap"
