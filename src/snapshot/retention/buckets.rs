//! Calendar buckets in UTC for the keep-hourly/-daily/-weekly/-monthly rules.
//!
//! Plain integer arithmetic on unix seconds, defined for every `i64` (names can carry any
//! digits), so a bucket never fails and never depends on the host's time zone.

/// The period a keep rule buckets by; `Last` puts every snapshot in its own bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Period {
    Last,
    Hour,
    Day,
    Week,
    Month,
}

const DAY: i64 = 86_400;

/// The bucket of `unix` for `period`; `index` (the snapshot's position) makes `Last` unique.
pub(super) fn bucket(period: Period, unix: i64, index: usize) -> i64 {
    match period {
        Period::Last => index as i64,
        Period::Hour => unix.div_euclid(3_600),
        Period::Day => unix.div_euclid(DAY),
        // 1970-01-01 was a Thursday; ISO weeks start on Monday, three days earlier.
        Period::Week => (unix.div_euclid(DAY) + 3).div_euclid(7),
        Period::Month => {
            let (year, month) = year_month(unix.div_euclid(DAY));
            year * 12 + (month - 1)
        }
    }
}

/// The proleptic Gregorian (year, month 1..=12) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn year_month(days: i64) -> (i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Utc};

    #[test]
    fn buckets_agree_with_the_calendar() {
        // Around a year end, a leap day, the epoch and before it.
        let samples = [
            0,
            -1,
            951_782_400,   // 2000-02-29
            1_703_980_799, // 2023-12-30 23:59:59 (Saturday)
            1_704_067_199, // 2023-12-31 23:59:59 (Sunday)
            1_704_067_200, // 2024-01-01 00:00:00 (Monday)
            -2_208_988_800,
        ];
        for unix in samples {
            let time = Utc.timestamp_opt(unix, 0).unwrap();
            let month = time.year() as i64 * 12 + time.month0() as i64;
            assert_eq!(bucket(Period::Month, unix, 0), month, "{time}");
            let monday = time.date_naive()
                - chrono::Days::new(u64::from(time.weekday().num_days_from_monday()));
            let next = bucket(Period::Week, unix + 7 * DAY, 0);
            assert_eq!(next, bucket(Period::Week, unix, 0) + 1, "{time}");
            let monday_unix = Utc
                .from_utc_datetime(&monday.and_hms_opt(0, 0, 0).unwrap())
                .timestamp();
            assert_eq!(
                bucket(Period::Week, monday_unix, 0),
                bucket(Period::Week, unix, 0)
            );
            assert_eq!(
                bucket(Period::Week, monday_unix - 1, 0),
                bucket(Period::Week, unix, 0) - 1,
                "{time}: the week starts on Monday 00:00 UTC"
            );
        }
    }

    #[test]
    fn hours_and_days_split_at_utc_boundaries() {
        assert_eq!(bucket(Period::Hour, 3_599, 0), 0);
        assert_eq!(bucket(Period::Hour, 3_600, 0), 1);
        assert_eq!(bucket(Period::Day, -1, 0), -1);
        assert_eq!(bucket(Period::Day, DAY, 0), 1);
    }

    #[test]
    fn extreme_times_do_not_panic() {
        for unix in [i64::MIN, i64::MAX] {
            for period in [Period::Hour, Period::Day, Period::Week, Period::Month] {
                let _ = bucket(period, unix, 0);
            }
        }
    }
}
