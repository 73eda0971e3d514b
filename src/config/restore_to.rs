//! `cluster-reset-restore-to`: the point a restore replays the delta chain up to. It is read as
//! text and parsed here, so a bad value is reported with its key, its source and what was
//! expected; the chain itself is resolved against it by `delta::target`.

use chrono::DateTime;

use super::build::Parsed;
use super::resolve::ConfigError;

pub const RESTORE_TO: &str = "cluster-reset-restore-to";

/// What the value may be, for error messages and help text.
pub const EXPECTED: &str = "latest, a revision (a whole number of at least 1), or an RFC 3339 time such as 2026-12-07T06:30:00Z";

/// A point in time to restore to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreTo {
    /// The last revision the chain reaches without a hole.
    Latest,
    /// Exactly this revision.
    Revision(i64),
    /// The state as the capture had received it at this time: every revision that arrived at
    /// or before it, none after.
    Time {
        unix_ms: i64,
        /// As given, for messages.
        text: String,
    },
}

impl std::fmt::Display for RestoreTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestoreTo::Latest => f.write_str("latest"),
            RestoreTo::Revision(r) => write!(f, "revision {r}"),
            RestoreTo::Time { text, .. } => write!(f, "time {text}"),
        }
    }
}

/// Parses `latest`, a revision, or an RFC 3339 time (any offset; kept to the millisecond).
/// Pure; None for anything else.
pub fn parse_restore_to(text: &str) -> Option<RestoreTo> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("latest") {
        return Some(RestoreTo::Latest);
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .ok()
            .filter(|r| *r >= 1)
            .map(RestoreTo::Revision);
    }
    let time = DateTime::parse_from_rfc3339(text).ok()?;
    Some(RestoreTo::Time {
        unix_ms: time.timestamp_millis(),
        text: text.chars().take(64).collect(),
    })
}

/// The parsed value; `check_restore_to` refuses values that do not parse, so None means unset.
pub(super) fn setting(p: &Parsed) -> Option<RestoreTo> {
    p.text(RESTORE_TO)
        .filter(|t| !t.trim().is_empty())
        .and_then(|t| parse_restore_to(&t))
}

pub(super) fn check_restore_to(p: &Parsed, errors: &mut Vec<ConfigError>) {
    if let Some(text) = p.text(RESTORE_TO)
        && !text.trim().is_empty()
        && parse_restore_to(&text).is_none()
    {
        errors.push(p.error(RESTORE_TO, EXPECTED));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::resolve_flags as run;
    use super::*;

    #[test]
    fn latest_revisions_and_rfc3339_times_parse_and_nothing_else_does() {
        assert_eq!(parse_restore_to("latest"), Some(RestoreTo::Latest));
        assert_eq!(parse_restore_to(" LATEST "), Some(RestoreTo::Latest));
        assert_eq!(parse_restore_to("1"), Some(RestoreTo::Revision(1)));
        assert_eq!(
            parse_restore_to("9223372036854775807"),
            Some(RestoreTo::Revision(i64::MAX))
        );
        let at = |text: &str| match parse_restore_to(text) {
            Some(RestoreTo::Time { unix_ms, .. }) => Some(unix_ms),
            _ => None,
        };
        assert_eq!(at("2026-12-07T06:30:00Z"), Some(1_796_625_000_000));
        assert_eq!(at("2026-12-07T07:30:00.250+01:00"), Some(1_796_625_000_250));
        for bad in [
            "",
            "0",
            "-5",
            "+5",
            "9223372036854775808",
            "1e6",
            "yesterday",
            "2026-12-07",
            "2026-12-07 06:30:00",
            "2026-12-07T06:30:00",
        ] {
            assert_eq!(parse_restore_to(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_bad_value_names_the_key_the_source_and_the_expectation() {
        let text = run(&[(RESTORE_TO, "yesterday")]).err().unwrap().to_string();
        assert!(text.contains("--cluster-reset-restore-to"), "{text}");
        assert!(text.contains("yesterday"), "{text}");
        assert!(text.contains("RFC 3339"), "{text}");
        let r = run(&[(RESTORE_TO, "latest")]).unwrap();
        assert_eq!(r.config.reset.restore_to, Some(RestoreTo::Latest));
        assert_eq!(run(&[]).unwrap().config.reset.restore_to, None);
    }
}
