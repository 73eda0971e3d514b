#!/usr/bin/env bash
# Point-in-time capture benchmark: what the delta capture costs and how far behind etcd it runs.
# A database of SIZE MiB, then the same paced load (RATE requests/s of 1 KiB values for DURATION
# seconds, bench/pitr-load.rs) three times over the same etcd:
#   capture    the server with --etcd-snapshot-delta (period PERIOD_S): the recovery point
#              (etcd_snapshot_delta_recovery_point_seconds from its /metrics every 0.5 s; p50,
#              p99, max against the target of the period + 2 s), segments and bytes written;
#   server     the same server without the capture;
#   none       no server at all.
# In each: the server's and etcd's CPU seconds (utime + stime, /proc/<pid>/stat) and RSS (sampled
# every 0.5 s) over the load window, and the load's achieved rate and latency (from when each
# request was due, so a stall of etcd counts for every request it delayed). Scheduled snapshots
# are off in both servers (--etcd-disable-snapshots), so the capture is the only difference; the
# capture's own full snapshot (the chain's anchor) is taken before its window starts.
#
#   [DATA=k8s|hex] [PERIOD_S=10] [MIX=put=100] [CONNECTIONS=8] [RUNS_OF="capture server none"] \
#     bench/pitr-lag.sh [size-in-MiB (default 1024)] [rate (default 1000)] [seconds (default 300)]
#
# MIX is the load generator's --mix (e.g. put=70,delete=10,txn=10,lease=10). Needs: etcd,
# etcdctl, python3, and a release build with the load generator:
#   cargo build --release --bin etcd-snapshot --bin etcd-snapshot-pitr-load
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${1:-1024}"
RATE="${2:-1000}"
DURATION="${3:-300}"
RUNS=1
DATA="${DATA:-k8s}"
PERIOD_S="${PERIOD_S:-10}"
MIX="${MIX:-put=100}"
CONNECTIONS="${CONNECTIONS:-8}"
RUNS_OF="${RUNS_OF:-capture server none}"
BIN="${BIN:-target/release/etcd-snapshot}"
LOAD="${LOAD:-$(dirname "$BIN")/etcd-snapshot-pitr-load}"
for exe in "$BIN" "$LOAD"; do
  [ -x "$exe" ] || { echo "build first: cargo build --release --bin etcd-snapshot --bin etcd-snapshot-pitr-load" >&2; exit 1; }
done
grep -qw capture <<<"$RUNS_OF" || { echo "RUNS_OF must include capture: $RUNS_OF" >&2; exit 1; }
source bench/lib.sh
start_etcd
fill_etcd
commands="$work/commands"
: >"$commands"

# start_server NAME [FLAGS...]: the server on the bench etcd, data in $work/NAME; sets `server`
# (its pid) and `metrics_url`; waits for its API (and the capture, when asked for).
start_server() {
  local name="$1"; shift
  local port; port=$(free_port)
  local cmd=("$BIN" server --data-dir "$work/$name" --node-name bench --token bench-token
    --etcd-endpoints "$ep" --supervisor-port "$port" --etcd-disable-snapshots "$@")
  echo "${cmd[*]}" >>"$commands"
  "${cmd[@]}" >"$work/$name.log" 2>&1 &
  server=$!
  cleanup_pids+=($server)
  metrics_url="https://127.0.0.1:$port/metrics"
  local ready="snapshot API listening"
  [ $# -eq 0 ] || ready="delta capture started"
  # The capture first takes its anchor, a full snapshot of the database: minutes at 1 GiB.
  for _ in $(seq 6000); do
    grep -q "$ready" "$work/$name.log" && return
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server ($name) did not start: $(tail -5 "$work/$name.log")" >&2; exit 1
}

stop_server() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }

# The sampler: every 0.5 s until the stop file appears, the RSS of each pid and the delta
# metrics; CPU seconds at both ends. Writes one JSON object.
cat >"$work/sampler.py" <<'PY'
import json, os, ssl, sys, time, urllib.request
out, stop, url, cafile = sys.argv[1:5]
pids = dict((n, int(p)) for n, p in (a.split("=") for a in sys.argv[5:]))
tick = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15)
def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        kib = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return kib / 1024
ctx = ssl.create_default_context(cafile=cafile) if url else None
def scrape():
    text = urllib.request.urlopen(url, context=ctx, timeout=5).read().decode()
    pairs = (l.split() for l in text.splitlines() if l and not l.startswith("#"))
    return {p[0]: float(p[1]) for p in pairs if len(p) == 2}
def counter(m, name):
    return m.get(name + "_total", m.get(name))
started, cpu0 = time.monotonic(), {n: cpu(p) for n, p in pids.items()}
lags, rss, first, failures = [], {n: [] for n in pids}, None, 0
while not os.path.exists(stop):
    t = time.monotonic()
    for n, p in pids.items():
        rss[n].append(rss_mib(p))
    if url:
        try:
            m = scrape()
        except Exception:
            failures += 1
        else:
            lags.append(m["etcd_snapshot_delta_recovery_point_seconds"])
            counters = (counter(m, "etcd_snapshot_delta_segments"), counter(m, "etcd_snapshot_delta_bytes"))
            first = first or counters
    time.sleep(max(0.0, 0.5 - (time.monotonic() - t)))
seconds = time.monotonic() - started
result = {"seconds": seconds, "lags": lags, "scrape_failures": failures, "first": first}
for n, p in pids.items():
    result[n] = {"cpu_s": cpu(p) - cpu0[n], "rss_avg": sum(rss[n]) / max(len(rss[n]), 1),
                 "rss_peak": max(rss[n], default=0)}
with open(out, "w") as f:
    json.dump(result, f)
PY

# window NAME: the load for DURATION seconds, sampled; results in $work/NAME.json and .load.
window() {
  local name="$1" url="" ca="" pids=("etcd=$etcd_pid")
  if [ "$name" != none ]; then
    url="$metrics_url" ca="$work/$name/server/tls/etcd-snapshot-ca.crt" pids+=("server=$server")
  fi
  local load_cmd=("$LOAD" "$ep" 0 1024 "$CONNECTIONS" --rate "$RATE" --duration "$DURATION" --mix "$MIX" --values hex --stats)
  [ "$name" != capture ] || echo "${load_cmd[*]}" >>"$commands"
  echo "$name: $RATE requests/s for $DURATION s..." >&2
  rm -f "$work/stop"
  python3 "$work/sampler.py" "$work/$name.json" "$work/stop" "$url" "$ca" "${pids[@]}" &
  local sampler=$!
  "${load_cmd[@]}" >"$work/$name.load" || { touch "$work/stop"; wait "$sampler" || true; echo "the load failed ($name)" >&2; exit 1; }
  touch "$work/stop"
  wait "$sampler" || { echo "the sampler failed ($name)" >&2; exit 1; }
}

# settle: waits (up to the period + 60 s) for the capture to persist the window's last revision,
# then keeps its segment counters: the bytes of the window's events are the counters' growth
# from the window's start (nothing was pending then) to this point.
settle() {
  local last; last=$(cut -d' ' -f3 "$work/capture.load" | head -1)
  local scrape=(curl -sf --cacert "$work/capture/server/tls/etcd-snapshot-ca.crt" "$metrics_url")
  for _ in $(seq $(( (PERIOD_S + 60) * 10 ))); do
    "${scrape[@]}" >"$work/capture.metrics" || true
    awk -v last="$last" '$1 == "etcd_snapshot_delta_last_revision" && $2 >= last { ok = 1 } END { exit !ok }' \
      "$work/capture.metrics" && return
    sleep 0.1
  done
  echo "the capture did not persist revision $last within $((PERIOD_S + 60)) s" >&2; exit 1
}

for name in $RUNS_OF; do
  case "$name" in
    capture)
      start_server capture --etcd-snapshot-delta --etcd-snapshot-delta-period "${PERIOD_S}s"
      # The recovery point reads 0 until the capture first confirms it is current.
      for _ in $(seq 600); do
        curl -sf --cacert "$work/capture/server/tls/etcd-snapshot-ca.crt" "$metrics_url" \
          | grep -qE '^etcd_snapshot_delta_recovery_point_seconds [0-9.]*[1-9]' && break
        sleep 0.1
      done || true
      grep -qE '^etcd_snapshot_delta_recovery_point_seconds [0-9.]*[1-9]' <(curl -sf --cacert \
        "$work/capture/server/tls/etcd-snapshot-ca.crt" "$metrics_url") \
        || echo "warning: the recovery point still reads 0; its samples start at 0" >&2
      window capture
      settle
      stop_server
      rm -rf "$work/capture/server/db" ;;
    server) start_server server; window server; stop_server ;;
    none) window none ;;
    *) echo "unknown run $name in RUNS_OF (capture, server, none)" >&2; exit 1 ;;
  esac
done

echo '```sh'
echo "# $(etcd --version | head -1), database $db_size bytes of $DATA values"
cat "$commands"
echo '```'
echo
python3 - "$work" "$PERIOD_S" "$RATE" "$RUNS_OF" <<'PY'
import json, math, sys
work, period, rate, runs = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4].split()
def load(name):
    with open(f"{work}/{name}.json") as f:
        r = json.load(f)
    with open(f"{work}/{name}.load") as f:
        lines = f.read().split("\n")
    r["load"] = dict(kv.split("=") for kv in lines[1].split())
    return r
res = {n: load(n) for n in runs}
def pct(xs, q):
    xs = sorted(xs)
    return xs[max(math.ceil(q * len(xs)) - 1, 0)] if xs else float("nan")
cap = res["capture"]
lags, target = cap["lags"], period + 2
p99 = pct(lags, 0.99)
print("| period s | target s | samples | p50 s | p99 s | max s | verdict |")
print("|---|---|---|---|---|---|---|")
verdict = "met" if p99 <= target else "NOT met"
print(f"| {period:g} | {target:g} | {len(lags)} | {pct(lags, .5):.2f} | {p99:.2f} | {max(lags, default=float('nan')):.2f} | {verdict} |")
print()
labels = {"capture": "server with the capture", "server": "server without the capture", "none": "no server"}
print(f"| run | achieved requests/s (target {rate}) | latency p50 ms | latency p99 ms | latency max ms "
      "| server CPU % of a core | server RSS avg MiB | server RSS peak MiB | etcd CPU % of a core | etcd RSS peak MiB "
      "| latency p99 ms from sending |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
def cpu_pct(r, who):
    return f"{100 * r[who]['cpu_s'] / r['seconds']:.1f}" if who in r else "-"
def rss(r, who, k):
    return f"{r[who][k]:.0f}" if who in r else "-"
for n in runs:
    r, l = res[n], res[n]["load"]
    print(f"| {labels[n]} | {l['rate']} | {l['p50_ms']} | {l['p99_ms']} | {l['max_ms']} | {cpu_pct(r, 'server')} "
          f"| {rss(r, 'server', 'rss_avg')} | {rss(r, 'server', 'rss_peak')} | {cpu_pct(r, 'etcd')} | {rss(r, 'etcd', 'rss_peak')} "
          f"| {l['service_p99_ms']} |")
print()
baselines = [n for n in runs if n != "capture"]
if baselines:
    print("| the capture's overhead, against | server CPU % of a core | server RSS avg MiB | etcd CPU % of a core | achieved requests/s | latency p99 ms |")
    print("|---|---|---|---|---|---|")
def pcs(r, who):
    return 100 * r[who]["cpu_s"] / r["seconds"] if who in r else 0.0
for n in baselines:
    b = res[n]
    d_rss = cap["server"]["rss_avg"] - b["server"]["rss_avg"] if "server" in b else cap["server"]["rss_avg"]
    d_rate = float(cap["load"]["rate"]) - float(b["load"]["rate"])
    d_p99 = float(cap["load"]["p99_ms"]) - float(b["load"]["p99_ms"])
    print(f"| {labels[n]} | {pcs(cap, 'server') - pcs(b, 'server'):+.1f} | {d_rss:+.0f} | {pcs(cap, 'etcd') - pcs(b, 'etcd'):+.1f} "
          f"| {d_rate:+.1f} | {d_p99:+.2f} |")
if baselines:
    print()
final = {}
with open(f"{work}/capture.metrics") as f:
    for line in f:
        p = line.split()
        if len(p) == 2 and not line.startswith("#"):
            final[p[0].removesuffix("_total")] = float(p[1])
first = cap["first"] or [0, 0]
cap["segments"] = final["etcd_snapshot_delta_segments"] - first[0]
cap["bytes"] = final["etcd_snapshot_delta_bytes"] - first[1]
hours = cap["seconds"] / 3600
requests = int(cap["load"]["put"]) + int(cap["load"]["delete"]) + int(cap["load"]["txn"]) + int(cap["load"]["lease"])
print("| window s | requests | segments | segment bytes | bytes per request | segment bytes per hour | segments per hour | scrape failures |")
print("|---|---|---|---|---|---|---|---|")
print(f"| {cap['seconds']:.1f} | {requests} | {cap['segments']:.0f} | {cap['bytes']:.0f} | {cap['bytes'] / max(requests, 1):.0f} "
      f"| {cap['bytes'] / hours:.0f} | {cap['segments'] / hours:.0f} | {cap['scrape_failures']} |")
PY
