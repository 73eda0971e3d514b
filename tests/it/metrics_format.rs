//! `/metrics` as real parsers read it: the server's default rendering through Prometheus's own
//! `promtool check metrics` (the 0.0.4 text parser plus its lint), and the OpenMetrics
//! rendering (served when `Accept` asks for it, as Prometheus does) through the strict
//! OpenMetrics parser of the Python `prometheus_client` library. Each scrape goes through curl,
//! so the `Accept` and `Content-Type` headers are the ones on the wire.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::{TestEtcd, TestServer, require_binary};

/// What Prometheus 2.x sends when scraping (OpenMetrics first, then 0.0.4).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// `curl` GET of `/metrics` with an optional `Accept`; returns (content type, body).
fn scrape(server: &TestServer, accept: Option<&str>) -> (String, String) {
    let ca = server.data_dir.join("server/tls/etcd-snapshot-ca.crt");
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--fail", "--max-time", "10", "--cacert"])
        .arg(&ca)
        .args(["-w", "\n%{content_type}"]);
    if let Some(accept) = accept {
        curl.args(["-H", &format!("Accept: {accept}")]);
    }
    let out = curl
        .arg(format!("{}/metrics", server.url()))
        .output()
        .unwrap();
    assert!(out.status.success(), "curl: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, content_type) = text.rsplit_once('\n').unwrap();
    (content_type.to_owned(), body.to_owned())
}

/// Runs `program args` with `input` on stdin; returns (success, stdout + stderr).
fn pipe(program: &str, args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut report = String::from_utf8_lossy(&out.stdout).into_owned();
    report.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), report)
}

/// Strict OpenMetrics parse; prints `family type sample-count` per family.
const OPENMETRICS_CHECK: &str = "import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse
for f in parse(sys.stdin.read()):
    print(f.name, f.type, len(f.samples))
";

/// A python3 that can import the parser: the one on PATH, or Debian's (which
/// `python3-prometheus-client` installs for, when a pyenv or venv python comes first on PATH).
fn python_openmetrics_parser() -> Option<&'static str> {
    require_binary("python3")?;
    let found = ["python3", "/usr/bin/python3"].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import prometheus_client.openmetrics.parser"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "python3 module prometheus_client is missing (package python3-prometheus-client)"
            );
        }
        eprintln!("SKIPPING the OpenMetrics parse: python3 module prometheus_client is missing");
    }
    found
}

#[test]
fn both_renderings_pass_real_parsers_with_types_matching_samples() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let (Some(_), Some(_)) = (require_binary("promtool"), require_binary("curl")) else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start(data.path(), &["--etcd-endpoints", &etcd.endpoint]);
    assert!(server.cli(&["save"]).status.success());

    let (content_type, text) = scrape(&server, None);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let (ok, report) = pipe("promtool", &["check", "metrics"], &text);
    assert!(ok && report.trim().is_empty(), "promtool: {report}\n{text}");
    // The counter's family is named after its sample, so 0.0.4 readers see a typed counter.
    assert!(
        text.contains("# TYPE etcd_snapshot_skipped_ticks_total counter\netcd_snapshot_skipped_ticks_total 0\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
    let (_, plain_again) = scrape(&server, Some("text/plain;version=0.0.4"));
    assert!(plain_again.contains("# TYPE etcd_snapshot_skipped_ticks_total counter"));

    let (content_type, text) = scrape(&server, Some(PROMETHEUS_ACCEPT));
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    if let Some(python) = python_openmetrics_parser() {
        let (ok, report) = pipe(python, &["-c", OPENMETRICS_CHECK], &text);
        assert!(ok, "OpenMetrics parser: {report}\n{text}");
        assert!(
            report.contains("etcd_snapshot_skipped_ticks counter 1\n"),
            "{report}"
        );
        assert!(
            report.contains("etcd_snapshot_save_duration_seconds histogram "),
            "{report}"
        );
    }
}
