//! Go-style durations (`90s`, `1h30m`, `500ms`), the format RKE2 uses for every duration-valued
//! flag, parsed exactly (integer nanoseconds, Go's range). Pure; used by the config engine for
//! duration keys and by `Schedule` for `@every`.

use std::time::Duration;

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
