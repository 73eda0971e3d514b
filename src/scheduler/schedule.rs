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
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// The longest duration Go (and so RKE2) accepts: `time.Duration` is int64 nanoseconds.
pub const MAX_GO_DURATION: Duration = Duration::from_nanos(i64::MAX as u64);
/// `MAX_GO_DURATION` as Go prints it, for error messages.
const MAX_GO_DURATION_TEXT: &str = "2562047h47m16.854775807s";

/// Parses a Go-style duration (`90s`, `1h30m`, `500ms`, `5m0s`), the format RKE2 uses for every
/// duration-valued flag. A bare `0` is zero. Longer than `MAX_GO_DURATION` is an error, never
/// a panic or a wrapped value.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let out_of_range = || format!("\"{text}\" is out of range (at most {MAX_GO_DURATION_TEXT})");
    let max_nanos = MAX_GO_DURATION.as_nanos();
    // Whole nanoseconds with checked arithmetic, as Go parses: floating point would panic on
    // huge values and round long ones, so `config show` would print a different duration.
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(format!(
                "\"{text}\" is not a duration (expected e.g. 30s, 5m, 1h30m)"
            ));
        }
        let number = &rest[..number_len];
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_nanos =
            unit_nanos(&rest[..unit_len]).map_err(|why| format!("\"{text}\" {why}"))?;
        rest = &rest[unit_len..];
        let part =
            part_nanos(number, unit_nanos).ok_or_else(|| format!("\"{text}\" has a bad number"))?;
        total = total
            .checked_add(part.ok_or_else(out_of_range)?)
            .filter(|sum| *sum <= max_nanos)
            .ok_or_else(out_of_range)?;
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Nanoseconds per Go duration unit.
fn unit_nanos(unit: &str) -> Result<u128, String> {
    match unit {
        "ns" => Ok(1),
        "us" | "µs" | "μs" => Ok(1_000),
        "ms" => Ok(1_000_000),
        "s" => Ok(1_000_000_000),
        "m" => Ok(60_000_000_000),
        "h" => Ok(3_600_000_000_000),
        "" => Err("is missing a unit (ns, us, ms, s, m, h)".into()),
        other => Err(format!("has an unknown unit \"{other}\"")),
    }
}

/// `number` (digits, at most one `.`) times `unit_nanos`, truncated to whole nanoseconds as Go
/// does. None: not a number; Some(None): too large for any duration.
fn part_nanos(number: &str, unit_nanos: u128) -> Option<Option<u128>> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') || (whole.is_empty() && fraction.is_empty()) {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    // 39 digits overflow u128; anything with more than 20 significant digits is out of range.
    if whole.len() > 20 {
        return Some(None);
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    // Past 20 fraction digits no unit contributes a nanosecond (1 h is 3.6e12 ns).
    let fraction = &fraction[..fraction.len().min(20)];
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    let nanos = whole
        .checked_mul(unit_nanos)
        .and_then(|n| n.checked_add(fraction * unit_nanos / scale));
    Some(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn durations_are_exact_to_the_nanosecond() {
        // Past 2^53 ns a floating-point sum rounds; Go and this parser do not.
        let long = parse_go_duration("2000000h1m0.000000001s").unwrap();
        assert_eq!(
            long.as_nanos(),
            2_000_000 * 3_600_000_000_000 + 60_000_000_000 + 1
        );
        assert_eq!(
            parse_go_duration("1.000000001s").unwrap().as_nanos(),
            1_000_000_001
        );
        assert_eq!(
            parse_go_duration(".5s").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_go_duration("1.5µs").unwrap(),
            Duration::from_nanos(1_500)
        );
        assert_eq!(
            parse_go_duration(MAX_GO_DURATION_TEXT).unwrap(),
            MAX_GO_DURATION
        );
        for bad in ["1.2.3s", ".s", "1..s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5m0s").unwrap(), Duration::from_secs(300));
        assert_eq!(
            parse_go_duration("1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert!(parse_go_duration("5 minutes").is_err());
        assert!(parse_go_duration("10").is_err());
    }
}
