# The operations of bench/matrix.sh (source it after bench/lib.sh): each `op_<name>` measures
# etcd-snapshot and its contender on the current etcd (`ep`), snapshot (`snap`), mix and size,
# and appends one tab-separated row per contender to $results:
#   mix  size_mib  db_bytes  operation  contender  wall_s  cpu_s  peak_rss_mib  output_bytes  ours

# record OPERATION CONTENDER OURS(0|1) COMMAND: measures COMMAND and appends its row.
record() {
  local op="$1" contender="$2" is_ours="$3"; shift 3
  echo "  $mix $SIZE_MIB MiB: $op: $contender" >&2
  measure_run "$@"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mix" "$SIZE_MIB" "$db_size" "$op" "$contender" \
    "$m_wall" "$m_cpu" "$m_rss" "$m_out" "$is_ours" >>"$results"
}

op_save() {
  unset -f pre_run
  record save "etcdctl snapshot save" 0 "$(etcdctl_save)"
  record save "etcd-snapshot save" 1 "$(ours save)"
}

op_zip() {
  unset -f pre_run
  record "compressed save" "etcdctl snapshot save + zip" 0 "$(etcdctl_zip)"
  record "compressed save" "etcd-snapshot save --snapshot-compress" 1 "$(ours save --snapshot-compress)"
}

op_s3() {
  pre_run() { rm -rf "$s3root/bench/base" "$s3root/bench/ours"; }
  record "save + S3 upload" "etcdctl snapshot save + zip + aws s3 cp" 0 "$(etcdctl_zip_aws)"
  record "save + S3 upload" "etcd-snapshot save --snapshot-compress --s3" 1 \
    "$(ours save --snapshot-compress "$(s3_flags)" --s3-folder=ours)"
  rm -rf "$s3root/bench/base" "$s3root/bench/ours"
}

# ls does not depend on the database: bench/matrix.sh runs it once, over the 10,000 objects of
# `many/` (fill_s3_folder). `ours ls` needs no etcd: it lists S3 directly.
op_ls() {
  unset -f pre_run
  local ep=http://127.0.0.1:1
  record "ls (10,000 S3 objects)" "aws s3api list-objects-v2 (all pages)" 0 "$(aws_list many)"
  record "ls (10,000 S3 objects)" "etcd-snapshot ls --s3" 1 "$(ours ls "$(s3_flags)" --s3-folder=many)"
}

op_restore() {
  pre_run() { rm -rf "$work/es/server/db" "$work/alone"; }
  local c_port p_port
  c_port=$(free_port); p_port=$(free_port)
  record restore "$TOOL snapshot restore" 0 \
    "$TOOL snapshot restore $snap --data-dir $work/alone --name bench --initial-cluster bench=http://127.0.0.1:$p_port --initial-advertise-peer-urls http://127.0.0.1:$p_port"
  record restore "etcd-snapshot restore" 1 \
    "$BIN restore --data-dir $work/es --node-name bench --etcd-client-address 127.0.0.1:$c_port --etcd-peer-address 127.0.0.1:$p_port --token bench-token $snap"
  rm -rf "$work/es/server/db" "$work/alone"
}

op_inspect() {
  unset -f pre_run
  record inspect "$TOOL snapshot status" 0 "$TOOL snapshot status -w json $snap"
  record inspect "etcd-snapshot inspect" 1 "$BIN --data-dir $work/es inspect -o json $snap"
}

# verify drills a copy named like a saved snapshot in a data dir of its own (as
# bench/verify-bench.sh does).
op_verify() {
  pre_run() { rm -rf "$work/restored"; }
  local name
  name="bench-n1-$(date +%s)"
  local dir="$work/drill/server/db/snapshots"
  mkdir -p "$dir"
  ln "$snap" "$dir/$name" 2>/dev/null || cp "$snap" "$dir/$name"
  local port
  port=$(free_port)
  record verify "$TOOL snapshot restore" 0 "$TOOL snapshot restore $snap --data-dir $work/restored"
  record verify "etcd-snapshot verify (one drill)" 1 \
    "$BIN --data-dir $work/drill --node-name n1 --etcd-server https://127.0.0.1:$port --progress none verify -o json $name"
  rm -rf "$work/drill" "$work/restored"
}
