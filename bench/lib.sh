# Shared by the bench scripts (source it): a throwaway etcd on loopback filled with generated
# values, and a `measure` that times a command with GNU time (median wall seconds, peak RSS).
#
# Callers set SIZE_MIB, RUNS and DATA (k8s|hex) first; `work` is the scratch dir, removed on exit.
# BENCH_KEEP_CACHES=1 skips dropping page caches (for the small CI smoke, which shares the machine).

work=$(mktemp -d /tmp/etcd-snapshot-bench.XXXXXX)
cleanup_pids=()
# `|| true` everywhere: under `set -e` a failing kill (the process already exited) would end the
# trap before the scratch dir (gigabytes of etcd data) is removed.
trap 'for p in "${cleanup_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
export ETCDCTL_API=3

# start_etcd: sets `ep` to the client URL of a fresh single-member etcd. Ports are picked at
# random, so a taken pair is retried on new ones (three tries).
start_etcd() {
  local attempt
  for attempt in 1 2 3; do
    local port_c=$((20000 + RANDOM % 20000))
    local port_p=$((port_c + 1))
    ep="http://127.0.0.1:$port_c"
    rm -rf "$work/etcd"
    etcd --name bench --data-dir "$work/etcd" --quota-backend-bytes $((16 * 1024 * 1024 * 1024)) \
      --listen-client-urls "$ep" --advertise-client-urls "$ep" \
      --listen-peer-urls "http://127.0.0.1:$port_p" --initial-advertise-peer-urls "http://127.0.0.1:$port_p" \
      --initial-cluster "bench=http://127.0.0.1:$port_p" >"$work/etcd.log" 2>&1 &
    local pid=$!
    cleanup_pids+=($pid)
    for _ in $(seq 100); do
      etcdctl --endpoints "$ep" endpoint health >/dev/null 2>&1 && return
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
  done
  echo "etcd did not start (attempt $attempt): $(tail -3 "$work/etcd.log")" >&2; exit 1
}

# fill_etcd: SIZE_MIB of DATA values, 1 MiB each; prints the db size on stderr.
fill_etcd() {
  echo "filling etcd with ${SIZE_MIB} MiB of $DATA values..." >&2
  python3 bench/gen-values.py "$DATA" "$SIZE_MIB" > "$work/values"
  local i=0
  while IFS= read -r value; do
    printf '%s' "$value" | etcdctl --endpoints "$ep" put "/bench/$i" >/dev/null
    i=$((i + 1))
  done < "$work/values"
  rm -f "$work/values"
  db_size=$(etcdctl --endpoints "$ep" endpoint status -w json | sed -n 's/.*"dbSize":\([0-9]*\).*/\1/p')
  echo "db size: $db_size bytes" >&2
}

# measure NAME COMMAND: one Markdown row (median of RUNS) with wall seconds, peak RSS and the
# bytes left in $work/out. `pre_run`, when defined, runs before each attempt.
measure() {
  local name="$1"; shift
  # ONLY=<extended regex>: measure just the contenders whose name matches (a re-run of some rows).
  if [ -n "${ONLY:-}" ] && ! grep -qE -- "$ONLY" <<<"$name"; then return 0; fi
  local results=()
  for _ in $(seq "$RUNS"); do
    rm -rf "$work/out"; mkdir -p "$work/out"
    if declare -F pre_run >/dev/null; then pre_run; fi
    # BENCH_KEEP_CACHES=1 (the CI smoke) leaves the machine's page cache alone.
    [ -n "${BENCH_KEEP_CACHES:-}" ] || { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
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
