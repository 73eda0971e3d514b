//! The embedded etcd's process plumbing: finding the binary, spawning it tied to our life,
//! forwarding its output, its pid file, and stopping it (ours or a crash leftover). The
//! standalone one-off etcd (`etcd::standalone`) spawns and stops through the same functions.
//!
//! No supervision decisions here (`embedded.rs` owns restarts). Signals are sent with rustix's
//! safe `kill(2)` wrapper (`unsafe`, and so libc, is forbidden in this crate), so stopping etcd
//! needs no `kill` program on the machine.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tokio::task::JoinHandle;

use super::EmbeddedOptions;
use super::startup::https_url;
use crate::etcd::certs::EtcdTlsFiles;

/// util-linux `setpriv`: with `--pdeathsig KILL` the kernel kills etcd if we die, even by
/// SIGKILL. The death signal is tied to the spawning thread; we spawn from runtime worker
/// threads, which live as long as the runtime.
const SETPRIV: &str = "/usr/bin/setpriv";
/// How many of etcd's last output lines are kept for error messages.
const KEPT_LINES: usize = 20;
/// How long a stopping etcd gets after SIGTERM before SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);

/// The last lines etcd printed, shared between the output forwarders and error reporting.
/// Bounded by a line count and a byte count, whichever is reached first.
#[derive(Debug, Clone)]
pub(crate) struct RecentOutput(Arc<Mutex<Recent>>);

#[derive(Debug)]
struct Recent {
    lines: VecDeque<String>,
    bytes: usize,
    max_lines: usize,
    max_bytes: usize,
}

impl Default for RecentOutput {
    fn default() -> Self {
        Self::bounded(KEPT_LINES, usize::MAX)
    }
}

impl RecentOutput {
    /// Keeps at most `max_lines` lines and `max_bytes` bytes of the newest output.
    pub(crate) fn bounded(max_lines: usize, max_bytes: usize) -> Self {
        Self(Arc::new(Mutex::new(Recent {
            lines: VecDeque::new(),
            bytes: 0,
            max_lines: max_lines.max(1),
            max_bytes: max_bytes.max(1),
        })))
    }

    fn push(&self, mut line: String) {
        let mut recent = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if line.len() > recent.max_bytes {
            let mut cut = line.len() - recent.max_bytes;
            while !line.is_char_boundary(cut) {
                cut += 1;
            }
            line.drain(..cut);
        }
        recent.bytes += line.len();
        recent.lines.push_back(line);
        while recent.lines.len() > recent.max_lines || recent.bytes > recent.max_bytes {
            let Some(old) = recent.lines.pop_front() else {
                break;
            };
            recent.bytes -= old.len();
        }
    }

    /// A summary for error messages.
    pub(crate) fn describe(&self) -> String {
        let recent = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if recent.lines.is_empty() {
            return "etcd printed nothing".into();
        }
        let joined: Vec<&str> = recent.lines.iter().map(String::as_str).collect();
        format!("last etcd output:\n{}", joined.join("\n"))
    }
}

/// Resolves `binary` like a shell would: a path is used as is, a bare name is searched on PATH.
pub(crate) fn find_binary(binary: &Path) -> Option<PathBuf> {
    if binary.components().count() > 1 || binary.is_absolute() {
        return binary.is_file().then(|| binary.to_path_buf());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}

/// etcd's command line: a single-member cluster, or the joined cluster's members; TLS only.
pub(super) fn etcd_args(opts: &EmbeddedOptions) -> Vec<OsString> {
    let client = https_url(opts.client_address);
    let peer = https_url(opts.peer_address);
    let mut args = member_args(&opts.name, &opts.data_dir, &client, &peer, &peer);
    args.extend(EtcdTlsFiles::new(&opts.tls_dir).etcd_flags());
    args.push("--initial-cluster".into());
    match &opts.initial_cluster {
        Some(cluster) => {
            args.push(cluster.into());
            args.push("--initial-cluster-state".into());
            args.push("existing".into());
        }
        None => args.push(format!("{}={peer}", opts.name).into()),
    }
    args
}

/// The flags every member we run shares: name, data dir, listeners and advertised URLs.
pub(crate) fn member_args(
    name: &str,
    data_dir: &Path,
    client_url: &str,
    peer_listen_url: &str,
    advertised_peer_url: &str,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--name".into(), name.into()];
    args.push("--data-dir".into());
    args.push(data_dir.as_os_str().to_owned());
    for (flag, value) in [
        ("--listen-client-urls", client_url),
        ("--advertise-client-urls", client_url),
        ("--listen-peer-urls", peer_listen_url),
        ("--initial-advertise-peer-urls", advertised_peer_url),
    ] {
        args.push(flag.into());
        args.push(value.into());
    }
    args
}

/// Creates the data dir (parents too) with mode 0700, as etcd expects.
pub(super) fn prepare_data_dir(data_dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
}

/// `<data-dir>.pid`, beside the data dir so wiping the member's data keeps it.
pub(super) fn pid_file_for(data_dir: &Path) -> PathBuf {
    let mut name = data_dir.file_name().unwrap_or_default().to_os_string();
    name.push(".pid");
    data_dir.with_file_name(name)
}

/// A spawned etcd and the tasks forwarding its output (they end at the pipes' EOF).
pub(crate) struct Spawned {
    pub child: Child,
    pub forwarders: Vec<JoinHandle<()>>,
}

/// Spawns etcd with piped output forwarded to tracing and recorded in `recent`.
pub(super) fn spawn(
    binary: &Path,
    opts: &EmbeddedOptions,
    recent: &RecentOutput,
) -> std::io::Result<Spawned> {
    spawn_with_args(binary, etcd_args(opts), recent)
}

/// Spawns etcd with `args`, tied to our life (death signal, own process group, killed on
/// drop), its output forwarded to tracing and recorded in `recent`.
pub(crate) fn spawn_with_args(
    binary: &Path,
    args: Vec<OsString>,
    recent: &RecentOutput,
) -> std::io::Result<Spawned> {
    let mut command = if Path::new(SETPRIV).is_file() {
        let mut c = crate::child::command(SETPRIV);
        c.args(["--pdeathsig", "KILL", "--"]).arg(binary);
        c
    } else {
        crate::child::command(binary)
    };
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C in the operator's terminal reaches only the server,
        // which lets a running snapshot finish before it stops etcd itself.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let mut forwarders = Vec::new();
    if let Some(out) = child.stdout.take() {
        forwarders.push(tokio::spawn(forward(out, recent.clone())));
    }
    if let Some(err) = child.stderr.take() {
        forwarders.push(tokio::spawn(forward(err, recent.clone())));
    }
    Ok(Spawned { child, forwarders })
}

async fn forward(stream: impl AsyncRead + Unpin, recent: RecentOutput) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        // Masked before it is logged or kept for an error message.
        let line = crate::child::mask_known(&line);
        tracing::debug!(target: "etcd", "{line}");
        recent.push(line);
    }
}

/// Records `pid` so a later start can clean up after a crash of ours.
pub(super) fn write_pid_file(path: &Path, pid: u32) {
    if let Err(err) = crate::fsutil::write_atomic(path, format!("{pid}\n").as_bytes(), 0o600) {
        tracing::warn!(path = %path.display(), error = %err, "failed to write etcd pid file");
    }
}

pub(super) fn remove_pid_file(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "failed to remove etcd pid file")
        }
    }
}

/// True when a process command line (NUL-separated, as in /proc) names `data_dir` as an argument.
pub(super) fn cmdline_names_data_dir(cmdline: &[u8], data_dir: &Path) -> bool {
    let wanted = data_dir.as_os_str().as_encoded_bytes();
    cmdline
        .split(|&b| b == 0)
        .any(|arg| arg == wanted || arg.strip_prefix(b"--data-dir=".as_slice()) == Some(wanted))
}

/// Stops an etcd left running on `data_dir` by a previous crash of ours (per the pid file).
pub(super) async fn stop_leftover(pid_file: &Path, data_dir: &Path) {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
    else {
        return;
    };
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let ours = std::fs::read(proc_dir.join("cmdline"))
        .map(|cmdline| cmdline_names_data_dir(&cmdline, data_dir))
        .unwrap_or(false);
    if !ours {
        return;
    }
    tracing::warn!(pid, data_dir = %data_dir.display(), "stopping etcd left over from a previous run");
    signal(pid, Signal::TERM);
    if !wait_gone(&proc_dir, STOP_GRACE).await {
        signal(pid, Signal::KILL);
        wait_gone(&proc_dir, STOP_GRACE).await;
    }
}

/// Polls until /proc/<pid> disappears (a process we did not spawn cannot be waited on).
async fn wait_gone(proc_dir: &Path, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if !proc_dir.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    !proc_dir.exists()
}

/// Sends `sig` to the single process `pid`. A pid that is not a positive `i32` is refused
/// rather than converted: 0 or a negative value would signal a whole process group, or every
/// process we may signal.
pub(super) fn signal(pid: u32, sig: Signal) {
    let Some(target) = single_process(pid) else {
        tracing::warn!(pid, "not signalling an invalid pid");
        return;
    };
    if let Err(err) = rustix::process::kill_process(target, sig) {
        tracing::debug!(pid, signal = ?sig, error = %err, "the signal was not delivered (process gone?)");
    }
}

/// `pid` as the target of a one-process `kill(2)`: None for 0 and for values that are negative
/// as an `i32`, which `kill(2)` reads as process groups.
fn single_process(pid: u32) -> Option<Pid> {
    i32::try_from(pid).ok().and_then(Pid::from_raw)
}

/// SIGTERM, wait up to `STOP_GRACE`, then SIGKILL; returns the exit status when known.
pub(crate) async fn terminate(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    if let Some(pid) = child.id() {
        signal(pid, Signal::TERM);
    }
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            tracing::warn!("etcd ignored SIGTERM for {STOP_GRACE:?}; killing it");
            let _ = child.start_kill();
            child.wait().await.ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    #[test]
    fn cmdline_match_requires_the_exact_data_dir() {
        let dir = Path::new("/var/lib/x/server/db/etcd");
        let cmdline = b"etcd\0--name\0n1\0--data-dir\0/var/lib/x/server/db/etcd\0";
        assert!(cmdline_names_data_dir(cmdline, dir));
        assert!(cmdline_names_data_dir(
            b"etcd\0--data-dir=/var/lib/x/server/db/etcd\0",
            dir
        ));
        assert!(!cmdline_names_data_dir(
            b"etcd\0--data-dir\0/var/lib/x/server/db/etcd2\0",
            dir
        ));
        assert!(!cmdline_names_data_dir(b"sleep\x00600\x00", dir));
    }

    #[test]
    fn args_describe_a_single_member_cluster() {
        let opts = EmbeddedOptions {
            binary: "etcd".into(),
            data_dir: "/d/etcd".into(),
            tls_dir: "/d/tls".into(),
            name: "n1".into(),
            client_address: "127.0.0.1:2379".parse::<SocketAddr>().unwrap(),
            peer_address: "127.0.0.1:2380".parse::<SocketAddr>().unwrap(),
            join: None,
            initial_cluster: None,
        };
        let args: Vec<String> = etcd_args(&opts)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let value = |flag: &str| {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1].clone()
        };
        assert_eq!(value("--data-dir"), "/d/etcd");
        assert_eq!(value("--listen-client-urls"), "https://127.0.0.1:2379");
        assert_eq!(value("--advertise-client-urls"), "https://127.0.0.1:2379");
        assert_eq!(value("--listen-peer-urls"), "https://127.0.0.1:2380");
        assert_eq!(
            value("--initial-advertise-peer-urls"),
            "https://127.0.0.1:2380"
        );
        assert_eq!(value("--initial-cluster"), "n1=https://127.0.0.1:2380");
        // No plain-HTTP listener, and both sides demand a certificate from their CA.
        assert!(!args.iter().any(|a| a.contains("http://")), "{args:?}");
        assert!(args.contains(&"--client-cert-auth".to_string()));
        assert!(args.contains(&"--peer-client-cert-auth".to_string()));
        assert_eq!(value("--trusted-ca-file"), "/d/tls/server-ca.crt");
        assert_eq!(value("--cert-file"), "/d/tls/server-client.crt");
        assert_eq!(value("--key-file"), "/d/tls/server-client.key");
        assert_eq!(value("--peer-trusted-ca-file"), "/d/tls/peer-ca.crt");
        assert_eq!(value("--peer-cert-file"), "/d/tls/peer-server-client.crt");
        assert_eq!(value("--peer-key-file"), "/d/tls/peer-server-client.key");
    }

    #[test]
    fn pid_file_sits_beside_the_data_dir() {
        assert_eq!(
            pid_file_for(Path::new("/a/server/db/etcd")),
            PathBuf::from("/a/server/db/etcd.pid")
        );
    }

    #[test]
    fn recent_output_keeps_the_last_lines() {
        let recent = RecentOutput::default();
        assert_eq!(recent.describe(), "etcd printed nothing");
        for i in 0..30 {
            recent.push(format!("line {i}"));
        }
        let text = recent.describe();
        assert!(
            text.contains("line 29") && text.contains("line 10"),
            "{text}"
        );
        assert!(!text.contains("line 9\n"), "{text}");
    }

    #[test]
    fn recent_output_can_be_bounded_by_bytes() {
        let recent = RecentOutput::bounded(usize::MAX, 10);
        for line in ["aaaa", "bbbb", "cccc"] {
            recent.push(line.into());
        }
        assert_eq!(recent.describe(), "last etcd output:\nbbbb\ncccc");
        recent.push("0123456789xyz".into());
        assert_eq!(recent.describe(), "last etcd output:\n3456789xyz");
    }

    #[test]
    fn bare_names_are_searched_on_path() {
        assert!(find_binary(Path::new("sh")).is_some());
        assert!(find_binary(Path::new("definitely-not-a-binary-xyz")).is_none());
        assert!(find_binary(Path::new("/nonexistent/etcd")).is_none());
    }
}

#[cfg(test)]
#[path = "process_signal_tests.rs"]
mod signal_tests;
