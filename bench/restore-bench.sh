#!/usr/bin/env bash
# Restore benchmark on a >= 1 GiB snapshot: `etcd-snapshot restore` end to end (verify, restore
# into staging, start and check the member, swap in, reset-flag) against the restore tool alone
# (`etcdutl snapshot restore` where installed, else Debian 12's `etcdctl snapshot restore`).
#
#   [DATA=k8s|hex|b64|mix] bench/restore-bench.sh [size-in-MiB (default 1100)] [runs (default 3)]
#
# The encrypted rows restore the same database age-encrypted, decrypted on the fly: once as
# the `age` tool encrypted it (its plaintext's trailer is hashed during the restore), once as
# `etcd-snapshot save` encrypted it (its record holds the file's seal, so the trailer the save
# checked is not hashed again). The last two rows restore the same database zipped by
# `etcd-snapshot save --snapshot-compress`, plain and encrypted.
#
# Needs: etcd, etcdctl, python3, /usr/bin/time, age and age-keygen, a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB="${1:-1100}"
RUNS="${2:-3}"
DATA="${DATA:-k8s}"
BIN="${BIN:-target/release/etcd-snapshot}"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
source bench/lib.sh
start_etcd
fill_etcd
snap="$work/snapshot.db"
etcdctl --endpoints "$ep" snapshot save "$snap" >/dev/null
TOOL=$(restore_tool)
pre_run() { rm -rf "$work/es/server/db" "$work/alone"; }

c_port=$(free_port); p_port=$(free_port)
echo "| contender | wall s (median of $RUNS) | peak RSS MiB | output bytes |"
echo "|---|---|---|---|"
measure "$TOOL snapshot restore (alone)" \
  "$TOOL snapshot restore $snap --data-dir $work/alone --name bench --initial-cluster bench=http://127.0.0.1:$p_port --initial-advertise-peer-urls http://127.0.0.1:$p_port"
measure "etcd-snapshot restore (verify + restore + start/check + swap)" \
  "$BIN restore --data-dir $work/es --node-name bench --etcd-client-address 127.0.0.1:$c_port --etcd-peer-address 127.0.0.1:$p_port --token bench-token $snap"
age-keygen -o "$work/age.key" 2>/dev/null
age -r "$(age-keygen -y "$work/age.key")" -o "$work/snapshot-bench-1.age" "$snap"
measure "etcd-snapshot restore, encrypted by the age tool (decrypt + the same steps)" \
  "$BIN restore --data-dir $work/es --node-name bench --etcd-client-address 127.0.0.1:$c_port --etcd-peer-address 127.0.0.1:$p_port --token bench-token --etcd-snapshot-encryption-identity-file $work/age.key $work/snapshot-bench-1.age"
# Our own saves of the same database, moved with their encryption records (the snapshot dir's
# sibling .encryption) out of $work/out, which every measured run empties: encrypted, zipped,
# and zipped and encrypted. Their .metadata records stay behind, so, as for etcdctl's snapshot,
# no keyspace hash recorded at save is compared.
pub=$(age-keygen -y "$work/age.key")
$(ours --etcd-snapshot-encryption-recipients="$pub" save --name sealed) >/dev/null 2>&1
$(ours save --snapshot-compress --name zipped) >/dev/null 2>&1
$(ours --etcd-snapshot-encryption-recipients="$pub" save --snapshot-compress --name both) >/dev/null 2>&1
mkdir -p "$work/saved/snapshots"
mv "$work"/out/sealed-* "$work"/out/zipped-* "$work"/out/both-* "$work/saved/snapshots/"
mv "$work/.encryption" "$work/saved/.encryption"
saved() { ls "$work"/saved/snapshots/"$1"-*; }
ours_restore() {
  echo "$BIN restore --data-dir $work/es --node-name bench --etcd-client-address 127.0.0.1:$c_port --etcd-peer-address 127.0.0.1:$p_port --token bench-token --etcd-snapshot-encryption-identity-file $work/age.key $1"
}
measure "etcd-snapshot restore, encrypted by etcd-snapshot save (decrypt + the same steps)" "$(ours_restore "$(saved sealed)")"
measure "etcd-snapshot restore, zipped by etcd-snapshot save (unzip + the same steps)" "$(ours_restore "$(saved zipped)")"
measure "etcd-snapshot restore, zipped and encrypted by etcd-snapshot save" "$(ours_restore "$(saved both)")"
