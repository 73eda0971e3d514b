use super::*;

fn step(total: Option<u64>, started: Instant) -> StepState {
    StepState {
        operation: Operation::Save,
        name: "on-demand-n1-1".into(),
        total,
        bytes: 0,
        started,
        last_emitted: Some(started),
    }
}

#[test]
fn progress_lines_are_rate_limited_and_monotone() {
    let t0 = Instant::now();
    let mut s = step(Some(300), t0);
    assert_eq!(s.advance(100, t0 + Duration::from_millis(50)), None);
    let first = s.advance(100, t0 + JSON_INTERVAL).expect("due");
    assert_eq!(
        (first.event, first.bytes, first.total),
        ("progress", 200, Some(300))
    );
    assert_eq!(first.elapsed_ms, 200);
    assert_eq!(
        s.advance(50, t0 + JSON_INTERVAL + Duration::from_millis(1)),
        None
    );
    let done = s.finish(true, t0 + Duration::from_secs(1));
    assert_eq!(
        (done.event, done.bytes, done.total, done.ok),
        ("finish", 250, Some(250), Some(true))
    );
}

#[test]
fn a_failed_step_keeps_its_expected_total() {
    let t0 = Instant::now();
    let mut s = step(Some(300), t0);
    s.advance(10, t0);
    let done = s.finish(false, t0);
    assert_eq!(
        (done.bytes, done.total, done.ok),
        (10, Some(300), Some(false))
    );
}

#[test]
fn events_serialize_to_the_documented_schema() {
    let t0 = Instant::now();
    let s = step(None, t0);
    let line = serde_json::to_value(s.event("start", t0, None)).unwrap();
    assert_eq!(
        line,
        serde_json::json!({"event": "start", "operation": "save", "name": "on-demand-n1-1",
            "bytes": 0, "total": null, "elapsed_ms": 0})
    );
}

#[test]
fn mode_values_parse() {
    for value in ProgressMode::VALUES {
        assert!(ProgressMode::parse(value).is_some(), "{value}");
    }
    assert_eq!(ProgressMode::parse("json"), Some(ProgressMode::Json));
    assert_eq!(ProgressMode::parse("bar"), None);
}
