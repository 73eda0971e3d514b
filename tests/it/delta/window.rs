//! The point-in-time window `ls` shows for a full snapshot with a chain: while writes go on, its
//! end moves forward; once they stop, it is exactly the last persisted segment (its `to`
//! revision, and the arrival time of its last revision read back from the segment itself).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use super::*;

/// The one listed item's `status.pointInTime`, from the server's `ls -o json`.
fn listed_window(server: &TestServer) -> Value {
    let out = server.cli(&["ls", "-o", "json"]);
    let (stdout, stderr) = crate::support::text(&out);
    assert!(out.status.success(), "{stderr}");
    let list: Value = serde_json::from_str(&stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "the full snapshot alone: {stdout}");
    items[0]["status"]["pointInTime"].clone()
}

fn unix_ms(rfc3339: &Value) -> i64 {
    let text = rfc3339
        .as_str()
        .unwrap_or_else(|| panic!("a time: {rfc3339}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .timestamp_millis()
}

/// The last cell of the table's second line.
fn last_cell(table: &str) -> String {
    let row = table
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("a row: {table}"));
    row.split_whitespace().last().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_shows_the_window_of_the_full_snapshot_and_its_end_follows_the_segments() {
    let Some(etcd) = TestEtcd::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path(), &etcd, "1s", "64MiB");
    let chain = wait_for_chain(data.path(), &server);
    let client = Client::connect([etcd.endpoint.as_str()], None)
        .await
        .unwrap();
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (mut client, writing) = (client.clone(), writing.clone());
        tokio::spawn(async move {
            let mut last = 0;
            for i in 0.. {
                if !writing.load(Ordering::Relaxed) {
                    break;
                }
                let r = client
                    .put(format!("/w/{}", i % 50), "x", None)
                    .await
                    .unwrap();
                last = revision_of(r.header());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            last
        })
    };

    // While writes go on, the window's end advances, in revision and in time.
    let server = Arc::new(server);
    let probe = server.clone();
    let samples = tokio::task::spawn_blocking(move || {
        let mut samples: Vec<(i64, i64)> = Vec::new();
        wait_logged(&probe, "three windows, each further on", || {
            let window = listed_window(&probe);
            if let (Some(to_revision), Some(_)) = (window["toRevision"].as_i64(), window.get("to"))
            {
                let sample = (to_revision, unix_ms(&window["to"]));
                if samples.last().is_none_or(|last| sample.0 > last.0) {
                    samples.push(sample);
                }
            }
            samples.len() >= 3
        });
        samples
    })
    .await
    .unwrap();
    assert!(
        samples
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "{samples:?}"
    );

    writing.store(false, Ordering::Relaxed);
    let last = writer.await.unwrap();
    wait_for("the last write persisted", WAIT, || {
        chain_end(&chain) >= last
    });
    let segments = segments(&chain);
    let tail = segments.last().unwrap();
    assert_eq!(tail.footer.to_revision, last);
    let anchor = segments[0].header.anchor_revision;
    let mut window = Value::Null;
    wait_for("the window at the last segment", WAIT, || {
        window = listed_window(&server);
        window["toRevision"] == last && window.get("to").is_some()
    });
    assert_eq!(window["fromRevision"], anchor, "{window}");
    assert_eq!(
        unix_ms(&window["to"]),
        tail.footer.last_event_unix_ms,
        "{window}"
    );
    let name = anchor_name_of(&chain);
    let created: i64 = name.rsplit('-').next().unwrap().parse().unwrap();
    assert_eq!(unix_ms(&window["from"]), created * 1000, "{window}");

    // `-o wide` shows the end time; the default table stays RKE2's four columns.
    let out = server.cli(&["ls", "-o", "wide"]);
    let (wide, stderr) = crate::support::text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        wide.lines().next().unwrap().ends_with("RestorableTo"),
        "{wide}"
    );
    assert_eq!(last_cell(&wide), window["to"].as_str().unwrap(), "{wide}");
    let out = server.cli(&["ls"]);
    let (table, _) = crate::support::text(&out);
    assert_eq!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["Name", "Location", "Size", "Created"],
        "{table}"
    );

    // A chain without its window record (from before records existed) shows revisions only.
    std::fs::remove_file(chain.join(".window.json")).unwrap();
    let window = listed_window(&server);
    assert_eq!(window["toRevision"], last, "{window}");
    assert!(
        window.get("to").is_none(),
        "no time without the record: {window}"
    );
    let out = server.cli(&["ls", "-o", "wide"]);
    let (wide, _) = crate::support::text(&out);
    assert_eq!(last_cell(&wide), format!("revision:{last}"), "{wide}");

    // With the server down, the direct-mode listing reads the same chain.
    let mut server = Arc::into_inner(server).expect("no other handle on the server");
    assert!(server.terminate().success(), "{}", server.log_text());
    let out = crate::support::run(&["ls", "-o", "wide"], data.path());
    let (wide, stderr) = crate::support::text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(last_cell(&wide), format!("revision:{last}"), "{wide}");
}
