//! Cron schedules for scheduled snapshots: parsing and "when is the next tick".
//!
//! Accepts what RKE2's robfig/cron parser accepts for `--etcd-snapshot-schedule-cron`: standard
//! 5-field specs, the `@yearly`..`@hourly` descriptors and `@every <duration>`. A leading seconds
//! field (6 fields) is also accepted so that tests and impatient operators can schedule per second.
//! Pure: no clock is read here; callers pass `now`.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeZone};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use super::duration::parse_go_duration;

/// A parsed `--etcd-snapshot-schedule-cron` value.
#[derive(Clone)]
pub struct Schedule {
    spec: String,
    kind: ScheduleKind,
}

#[derive(Clone)]
enum ScheduleKind {
    Cron(Box<Cron>),
    Every(Duration),
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.spec).finish()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Schedule {
    /// Parses a spec; the error says what was expected, for the config engine to wrap with the
    /// key and the value's source.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let trimmed = spec.trim();
        if trimmed.is_empty() {
            return Err(
                "a cron spec such as \"0 */12 * * *\" or \"@hourly\"; got an empty value".into(),
            );
        }
        if let Some(rest) = strip_prefix_ignore_case(trimmed, "@every") {
            let every = parse_go_duration(rest.trim())
                .map_err(|e| format!("\"@every <duration>\" with a duration like 1h30m: {e}"))?;
            if every < Duration::from_secs(1) {
                return Err("an @every interval of at least 1s".into());
            }
            return Ok(Self {
                spec: trimmed.to_string(),
                kind: ScheduleKind::Every(every),
            });
        }
        let fields = trimmed.split_whitespace().count();
        if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!(
                "a cron spec with 5 fields (minute hour day-of-month month day-of-week), \
                 or 6 with a leading seconds field; got {fields} field(s)"
            ));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(trimmed).map_err(|e| {
            format!("a valid cron spec such as \"0 */12 * * *\" or \"@hourly\": {e}")
        })?;
        Ok(Self {
            spec: trimmed.to_string(),
            kind: ScheduleKind::Cron(Box::new(cron)),
        })
    }

    /// The spec as written.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The first fire time strictly after `after`, or None when the spec never fires again.
    pub fn next_fire<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        match &self.kind {
            ScheduleKind::Cron(cron) => cron.find_next_occurrence(after, false).ok(),
            ScheduleKind::Every(every) => {
                let step = chrono::Duration::from_std(*every).ok()?;
                // robfig's @every fires at whole seconds after the previous fire.
                let next = after.clone() + step;
                Some(
                    next.clone()
                        - chrono::Duration::nanoseconds(i64::from(next.timestamp_subsec_nanos())),
                )
            }
        }
    }

    /// The gap between the two fire times after `now`; None when the schedule fires fewer
    /// than twice more. For an irregular spec such as `0 1,2 * * *` it is the gap coming up,
    /// which is what the next save will be late against (`snapshot::freshness`).
    pub fn period<Tz: TimeZone>(&self, now: &DateTime<Tz>) -> Option<Duration> {
        let first = self.next_fire(now)?;
        let second = self.next_fire(&first)?;
        (second - first).to_std().ok()
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::duration::MAX_GO_DURATION;
    use chrono::{TimeZone, Utc};

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, h, m, s).unwrap()
    }

    #[test]
    fn durations_beyond_go_range_are_errors_not_panics() {
        assert_eq!(
            parse_go_duration("2562047h47m16.854775807s"),
            Ok(MAX_GO_DURATION)
        );
        for text in [
            "99999999999999999999h",
            "2562048h",
            "2562047h47m17s",
            "9999999999999999999999999999999999999999999s",
            "2000000h2000000h",
        ] {
            let err = parse_go_duration(text).unwrap_err();
            assert!(
                err.contains("out of range (at most 2562047h47m16.854775807s)"),
                "{text}: {err}"
            );
        }
        let every = Schedule::parse("@every 99999999999999999999h").unwrap_err();
        assert!(every.contains("out of range"), "{every}");
    }

    #[test]
    fn default_spec_fires_at_midnight_and_noon() {
        let s = Schedule::parse("0 */12 * * *").unwrap();
        assert_eq!(s.next_fire(&at(0, 0, 0)).unwrap(), at(12, 0, 0));
        assert_eq!(
            s.next_fire(&at(12, 0, 0)).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn descriptors_and_every() {
        assert_eq!(
            Schedule::parse("@hourly")
                .unwrap()
                .next_fire(&at(3, 15, 0))
                .unwrap(),
            at(4, 0, 0)
        );
        assert_eq!(
            Schedule::parse("@daily")
                .unwrap()
                .next_fire(&at(3, 15, 0))
                .unwrap()
                .timestamp(),
            at(0, 0, 0).timestamp() + 86400
        );
        assert_eq!(
            Schedule::parse("@every 90s")
                .unwrap()
                .next_fire(&at(3, 15, 0))
                .unwrap(),
            at(3, 16, 30)
        );
    }

    #[test]
    fn seconds_field_allows_per_second_schedules() {
        let s = Schedule::parse("*/2 * * * * *").unwrap();
        assert_eq!(s.next_fire(&at(1, 0, 0)).unwrap(), at(1, 0, 2));
    }

    #[test]
    fn invalid_specs_are_errors() {
        for bad in [
            "",
            "0 */12 * *",
            "61 * * * *",
            "not a cron",
            "* * * * * * *",
            "@every",
            "@every 5",
            "@every 0s",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    fn at_unix(unix: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(unix, 0).unwrap()
    }

    #[test]
    fn the_period_is_the_gap_between_the_next_two_fires() {
        // 2024-01-01 00:30 UTC.
        let now = at_unix(1_704_069_000);
        let cases = [
            ("0 */12 * * *", 12 * 3_600),
            ("*/5 * * * *", 300),
            ("@every 90s", 90),
            // Irregular: fires at 01:00 and 02:00, then 01:00 the next day; the gap coming up.
            ("0 1,2 * * *", 3_600),
        ];
        for (spec, want) in cases {
            let schedule = Schedule::parse(spec).unwrap();
            assert_eq!(
                schedule.period(&now),
                Some(Duration::from_secs(want)),
                "{spec}"
            );
        }
        // At 01:30 the next fires are 02:00 and 01:00 the next day: 23 hours.
        let schedule = Schedule::parse("0 1,2 * * *").unwrap();
        assert_eq!(
            schedule.period(&at_unix(1_704_069_000 + 3_600)),
            Some(Duration::from_secs(23 * 3_600))
        );
    }
}
