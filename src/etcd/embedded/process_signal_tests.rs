//! Stopping a leftover etcd with a real process: the pid file names it, its command line names
//! our data dir, and it is gone after `stop_leftover`, signalled through `kill(2)` directly.

use std::path::Path;
use std::time::Duration;

use super::*;

/// A stand-in for an etcd orphaned by a crash: `sh` looping, with the data dir as an argument
/// (a lone `sleep` would be exec'd and lose it). Returns once its command line shows it.
fn leftover(data_dir: &Path) -> std::process::Child {
    let child = std::process::Command::new("sh")
        .args(["-c", "while :; do sleep 1; done", "sh"])
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sh");
    let cmdline = format!("/proc/{}/cmdline", child.id());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read(&cmdline).is_ok_and(|c| cmdline_names_data_dir(&c, data_dir)) {
        assert!(std::time::Instant::now() < deadline, "no command line");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

#[tokio::test]
async fn a_leftover_named_by_the_pid_file_is_terminated() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("etcd");
    let mut child = leftover(&data_dir);
    let pid_file = root.path().join("etcd.pid");
    std::fs::write(&pid_file, format!("{}\n", child.id())).unwrap();
    // Reaped by the waiting thread as soon as it dies, so /proc/<pid> goes away.
    let reaper = std::thread::spawn(move || child.wait());
    stop_leftover(&pid_file, &data_dir).await;
    let status = reaper.join().unwrap().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15), "ended by SIGTERM: {status:?}");
}

#[tokio::test]
async fn a_process_on_another_data_dir_is_left_alone() {
    let root = tempfile::tempdir().unwrap();
    let mut child = leftover(&root.path().join("other"));
    let pid_file = root.path().join("etcd.pid");
    std::fs::write(&pid_file, format!("{}\n", child.id())).unwrap();
    stop_leftover(&pid_file, &root.path().join("etcd")).await;
    assert!(child.try_wait().unwrap().is_none(), "it must still run");
    signal(child.id(), Signal::KILL);
    assert!(child.wait().is_ok());
}

#[test]
fn pids_that_would_reach_a_process_group_are_never_targets() {
    // kill(0, ..) is our own process group, kill(-1, ..) every process we may signal.
    assert_eq!(single_process(0), None);
    assert_eq!(single_process(u32::MAX), None);
    assert_eq!(single_process(1 << 31), None);
    assert_eq!(single_process(42), Pid::from_raw(42));
}
