//! How a verdict's rule is shown: a stable code for `-o json` and a sentence for the table
//! (`api::wire` puts them into prune's wire form).

use std::fmt;

use super::Rule;

impl Rule {
    /// A stable identifier for machine output, named after the config key's suffix.
    pub fn code(&self) -> &'static str {
        match self {
            Rule::KeepAll => "retention-0",
            Rule::Count(_) => "retention",
            Rule::KeepLast(_) => "keep-last",
            Rule::KeepHourly(_) => "keep-hourly",
            Rule::KeepDaily(_) => "keep-daily",
            Rule::KeepWeekly(_) => "keep-weekly",
            Rule::KeepMonthly(_) => "keep-monthly",
            Rule::Newest => "newest",
            Rule::NewestVerified => "newest-verified",
            Rule::MinCount(_) => "min-count",
            Rule::BeyondCount(_) => "retention",
            Rule::NotKept => "not-kept",
            Rule::MaxAge(_) => "max-age",
            Rule::MaxTotalSize(_) => "max-total-size",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::KeepAll => write!(f, "retention is 0: all snapshots are kept"),
            Rule::Count(n) => write!(f, "among the newest {n} (retention {n})"),
            Rule::KeepLast(n) => write!(f, "among the newest {n} (keep-last {n})"),
            Rule::KeepHourly(n) => write!(f, "newest of its hour, UTC (keep-hourly {n})"),
            Rule::KeepDaily(n) => write!(f, "newest of its day, UTC (keep-daily {n})"),
            Rule::KeepWeekly(n) => write!(f, "newest of its ISO week, UTC (keep-weekly {n})"),
            Rule::KeepMonthly(n) => write!(f, "newest of its month, UTC (keep-monthly {n})"),
            Rule::Newest => write!(f, "the newest snapshot is always kept"),
            Rule::NewestVerified => write!(f, "the newest verified snapshot is always kept"),
            Rule::MinCount(n) => write!(f, "kept so that at least {n} remain (min-count {n})"),
            Rule::BeyondCount(n) => write!(f, "older than the newest {n} (retention {n})"),
            Rule::NotKept => write!(f, "no keep rule keeps it"),
            Rule::MaxAge(d) => write!(f, "older than max-age {}", humantime(*d)),
            Rule::MaxTotalSize(n) => {
                write!(f, "removed, oldest first, to fit max-total-size {n} bytes")
            }
        }
    }
}

/// A duration as whole hours, minutes and seconds (`720h`, `90m`, `45s`), like the config.
fn humantime(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s % 3_600 == 0 && s > 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
