#!/usr/bin/env bash
# A restore drill (`etcd-snapshot verify`) against `etcdutl snapshot restore` alone (etcd 3.5) on
# one >= 1 GiB snapshot: wall time and peak RSS, median of RUNS rounds in which the two take turns.
# The drill does more than the restore (inspect, restore, start the member, count, HashKV, read
# every key), so the target is a drill at most 1.5x the restore alone.
#
#   [SNAPSHOT=file] bench/verify-bench.sh [runs (default 3)]
#
# SNAPSHOT defaults to /tmp/inspect-bench/snapshot.db (make one with
# `bench/inspect-bench.sh --make /tmp/inspect-bench/snapshot.db`). The drill runs in direct mode on
# a copy named like a saved snapshot in a scratch data dir (no hash record: the hashkv check says
# "not compared"). Peak RSS is given twice: the command's own process (VmHWM, polled: for the
# drill, etcd-snapshot itself, the number the 64 MiB target is about), and the largest process
# overall (for the drill, the restore tool or the throwaway etcd member; from getrusage). Needs: etcd, etcdutl
# (scripts/install-deps), python3, a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
BIN="${BIN:-target/release/etcd-snapshot}"
source bench/lib.sh
snap="${SNAPSHOT:-/tmp/inspect-bench/snapshot.db}"
[ -f "$snap" ] || { echo "no snapshot at $snap: bench/inspect-bench.sh --make $snap" >&2; exit 1; }
[ -x "$BIN" ] || { echo "build first: cargo build --release (or set BIN)" >&2; exit 1; }
command -v etcdutl >/dev/null || { echo "etcdutl (etcd 3.5) is needed: scripts/install-deps" >&2; exit 1; }
echo "snapshot: $(stat -c %s "$snap") bytes" >&2

name="bench-n1-$(date +%s)"
dir="$work/es/server/db/snapshots"
mkdir -p "$dir"
ln "$snap" "$dir/$name" 2>/dev/null || cp "$snap" "$dir/$name"
port=$(free_port)
verify_cmd=("$BIN" --data-dir "$work/es" --node-name n1 --etcd-server "https://127.0.0.1:$port"
  --progress none verify -o json "$name")

# run OUT CMD...: runs CMD, polling our own process's VmHWM; appends "wall own_kib max_kib" to OUT.
run() {
  local out="$1"; shift
  python3 - "$out" "$@" <<'PY'
import resource, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
start = time.monotonic()
proc = subprocess.Popen(cmd, stdout=open(out + ".stdout", "wb"), stderr=open(out + ".stderr", "wb"))
own = 0
while proc.poll() is None:
    try:
        for line in open(f"/proc/{proc.pid}/status"):
            if line.startswith("VmHWM:"):
                own = max(own, int(line.split()[1]))
    except OSError:
        pass
    time.sleep(0.05)
wall = time.monotonic() - start
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
if own == 0:
    # Ended before the first sample: its children's figure is the best there is.
    own = children
if proc.returncode != 0:
    sys.exit(f"{cmd[0]} failed ({proc.returncode}): " + open(out + ".stderr").read()[-2000:])
with open(out, "a") as f:
    f.write(f"{wall:.2f} {own} {children}\n")
PY
}

for _ in $(seq "$RUNS"); do
  rm -rf "$work/restored"
  run "$work/case-0" etcdutl snapshot restore "$snap" --data-dir "$work/restored"
  rm -rf "$work/restored"
  run "$work/case-1" "${verify_cmd[@]}"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["drills"][0]; sys.exit(0 if d["result"]=="passed" else f"drill {d}")' "$work/case-1.stdout"
done

names=("etcdutl snapshot restore (alone)" "etcd-snapshot verify (one drill)")
echo "| contender | wall s (median of $RUNS) | peak RSS of the command's own process MiB | largest process MiB |"
echo "|---|---|---|---|"
for c in 0 1; do
  median=$(sort -n "$work/case-$c" | sed -n "$(( (RUNS + 1) / 2 ))p")
  read -r wall own most <<<"$median"
  printf '| %s | %s | %s | %s |\n' "${names[$c]}" "$wall" "$((own / 1024))" "$((most / 1024))"
  echo "${names[$c]}: all runs (s own_KiB max_KiB): $(tr '\n' ';' <"$work/case-$c")" >&2
done
