# Shared by the bench scripts (source it): a throwaway etcd on loopback filled with generated
# values, a loopback S3 server, the contenders' commands, and `measure`/`measure_run`, which
# time a command with GNU time (median wall seconds, CPU seconds, peak RSS).
#
# Callers set SIZE_MIB, RUNS and DATA (k8s|hex|b64|mix) first; `work` is the scratch dir, removed on exit.
# BENCH_KEEP_CACHES=1 skips dropping page caches (for the small CI smoke, which shares the machine).

work=$(mktemp -d /tmp/etcd-snapshot-bench.XXXXXX)
cleanup_pids=()
# `|| true` everywhere: under `set -e` a failing kill (the process already exited) would end the
# trap before the scratch dir (gigabytes of etcd data) is removed.
trap 'for p in "${cleanup_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
export ETCDCTL_API=3

# free_port: a loopback port free a moment ago (a random pick can hit a port in use while other
# tests or benchmarks run).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_etcd: sets `ep` to the client URL of a fresh single-member etcd (its pid in `etcd_pid`).
# Ports are picked at random, so a taken pair is retried on new ones (three tries). A raft
# snapshot every 1,000 entries lets etcd purge its WAL while it is filled, so the WAL does not
# hold a second copy of every value on disk.
start_etcd() {
  local attempt
  for attempt in 1 2 3; do
    local port_c=$((20000 + RANDOM % 20000))
    local port_p=$((port_c + 1))
    ep="http://127.0.0.1:$port_c"
    rm -rf "$work/etcd"
    etcd --name bench --data-dir "$work/etcd" --quota-backend-bytes $((16 * 1024 * 1024 * 1024)) \
      --snapshot-count 1000 \
      --listen-client-urls "$ep" --advertise-client-urls "$ep" \
      --listen-peer-urls "http://127.0.0.1:$port_p" --initial-advertise-peer-urls "http://127.0.0.1:$port_p" \
      --initial-cluster "bench=http://127.0.0.1:$port_p" >"$work/etcd.log" 2>&1 &
    etcd_pid=$!
    cleanup_pids+=($etcd_pid)
    for _ in $(seq 100); do
      etcdctl --endpoints "$ep" endpoint health >/dev/null 2>&1 && return
      kill -0 "$etcd_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$etcd_pid" 2>/dev/null || true
  done
  echo "etcd did not start (attempt $attempt): $(tail -3 "$work/etcd.log")" >&2; exit 1
}

# stop_etcd: stops the etcd of start_etcd and removes its data.
stop_etcd() {
  kill "$etcd_pid" 2>/dev/null || true
  wait "$etcd_pid" 2>/dev/null || true
  rm -rf "$work/etcd"
}

# fill_etcd: SIZE_MIB of DATA values, VALUE_KIB each (default 1 MiB), put as /bench/<i> through
# etcd's JSON gateway (no copy of the values on disk); sets `db_size` and prints it on stderr.
fill_etcd() {
  echo "filling etcd with ${SIZE_MIB} MiB of $DATA values of ${VALUE_KIB:-1024} KiB..." >&2
  python3 bench/gen-values.py "$DATA" "$SIZE_MIB" --put "$ep"
  db_size=$(etcdctl --endpoints "$ep" endpoint status -w json | sed -n 's/.*"dbSize":\([0-9]*\).*/\1/p')
  echo "db size: $db_size bytes" >&2
}

# start_s3: the loopback S3 server (examples/s3-bench-server: s3s with SigV4 checks over s3s-fs)
# on a random port, serving $work/s3 (bucket `bench`); sets `s3port` and `s3root` and exports the
# AWS CLI's credentials. Needs SERVER (the built example). With S3_PORT, S3_ROOT, S3_ACCESS_KEY
# and S3_SECRET_KEY set, it uses that running server of the same kind instead (the CI smoke's
# in-process one; objects are files under S3_ROOT/<bucket>/).
start_s3() {
  export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
  if [ -n "${S3_PORT:-}" ]; then
    export AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY"
    s3port=$S3_PORT s3root=$S3_ROOT
    mkdir -p "$s3root/bench"
    return
  fi
  export AWS_ACCESS_KEY_ID=bench-access AWS_SECRET_ACCESS_KEY=bench-secret
  s3root="$work/s3"
  mkdir -p "$s3root/bench"
  s3port=$((20000 + RANDOM % 20000))
  "$SERVER" "$s3root" "$s3port" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >/dev/null 2>"$work/s3.log" &
  cleanup_pids+=($!)
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$s3port") 2>/dev/null && return; sleep 0.1; done
  echo "the S3 server did not start: $(tail -3 "$work/s3.log")" >&2; exit 1
}

# fill_s3_folder FOLDER COUNT: COUNT snapshot objects (3 nodes, one per second, 1 KiB each)
# written straight into the server's directory (not timed).
fill_s3_folder() {
  python3 - "$s3root/bench/$1" "$2" <<'PY'
import os, sys
d, count = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
for i in range(count):
    with open(os.path.join(d, f"etcd-snapshot-node{i % 3}-{1700000000 + i}"), "wb") as f:
        f.write(b"x" * 1024)
PY
}

# The contenders' commands, as strings for `measure`: outputs go to $work/out (emptied before
# each run). They need `ep` (start_etcd) and, for S3, `s3port` (start_s3).
etcdctl_save() { echo "etcdctl --endpoints $ep snapshot save $work/out/snap.db"; }
etcdctl_zip() { echo "$(etcdctl_save) && zip -q -j $work/out/snap.db.zip $work/out/snap.db && rm $work/out/snap.db"; }
etcdctl_zip_aws() {
  echo "$(etcdctl_zip) && aws --endpoint-url http://127.0.0.1:$s3port s3 cp --only-show-errors $work/out/snap.db.zip s3://bench/base/"
}
# ours ARGS...: etcd-snapshot in direct mode against the bench etcd, snapshots into $work/out.
ours() {
  mkdir -p "$work/es"
  echo "$BIN --data-dir $work/es --node-name bench --etcd-endpoints $ep --etcd-server https://127.0.0.1:1 --etcd-snapshot-dir $work/out $*"
}
s3_flags() { echo "--s3 --s3-endpoint=127.0.0.1:$s3port --s3-insecure --s3-bucket=bench"; }
aws_list() { echo "aws --endpoint-url http://127.0.0.1:$s3port s3api list-objects-v2 --bucket bench --prefix $1/ --delimiter / --output json"; }

# restore_tool: `etcdutl` where installed (etcd 3.5), else Debian 12's `etcdctl`.
restore_tool() { if command -v etcdutl >/dev/null; then echo etcdutl; else echo etcdctl; fi; }

# measure_run COMMAND: runs COMMAND RUNS times (`pre_run` first when defined, page caches dropped
# unless BENCH_KEEP_CACHES) and sets, from the run with the median wall time: m_wall (seconds),
# m_cpu (user + system seconds of the command and its children), m_rss (peak RSS of the largest
# process, MiB) and m_out (bytes left in $work/out).
measure_run() {
  local results=()
  for _ in $(seq "$RUNS"); do
    rm -rf "$work/out"; mkdir -p "$work/out"
    if declare -F pre_run >/dev/null; then pre_run; fi
    [ -n "${BENCH_KEEP_CACHES:-}" ] || { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
    /usr/bin/time -f "%e %M %U %S" -o "$work/time" bash -c "$*" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    results+=("$(tail -1 "$work/time")")
  done
  local median user sys rss_kib
  median=$(printf '%s\n' "${results[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  read -r m_wall rss_kib user sys <<<"$median"
  m_rss=$((rss_kib / 1024))
  m_cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  m_out=$(du -b "$work/out" | tail -1 | cut -f1)
}

# measure NAME COMMAND: one Markdown row (median of RUNS) with wall seconds, peak RSS and the
# bytes left in $work/out.
measure() {
  local name="$1"; shift
  # ONLY=<extended regex>: measure just the contenders whose name matches (a re-run of some rows).
  if [ -n "${ONLY:-}" ] && ! grep -qE -- "$ONLY" <<<"$name"; then return 0; fi
  measure_run "$@"
  printf '| %s | %s | %s | %s |\n' "$name" "$m_wall" "$m_rss" "$m_out"
}
