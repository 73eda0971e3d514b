//! Parsing one raw value for its key's `Kind`, and rendering a parsed value back to text.
//!
//! Pure. Knows nothing about layers or precedence; a failure is the text of what was expected,
//! which `resolve` wraps with the key, the value and its source.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::desired::{LogFormat, redact_userinfo};
use super::keys::Kind;
use super::layer::RawValue;
use crate::config::duration::parse_go_duration;
use crate::config::schedule::Schedule;

/// A value parsed for its kind.
#[derive(Debug, Clone)]
pub enum Value {
    Bool(bool),
    Int(u32),
    Port(u16),
    Text(String),
    Path(PathBuf),
    List(Vec<String>),
    Cron(Schedule),
    Ip(IpAddr),
    Socket(SocketAddr),
    LogFormat(LogFormat),
    Secret(SecretString),
    Duration(Duration),
    /// `Kind::ProxyUrl`: kept secret as a whole, since its user info may hold a password.
    Proxy(SecretString),
}

/// Go's `strconv.ParseBool`, which RKE2 uses for boolean settings.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `raw` as `kind`; the error says what was expected.
pub fn parse(kind: Kind, raw: &RawValue) -> Result<Value, String> {
    if kind.is_list() {
        return Ok(Value::List(list_items(raw)));
    }
    if kind == Kind::Secret {
        return match raw {
            RawValue::Secret(s) => Ok(Value::Secret(s.clone())),
            RawValue::List(_) => Err("a single value, not a list".into()),
            other => Ok(Value::Secret(SecretString::from(scalar_text(other)))),
        };
    }
    if kind == Kind::Bool {
        return match raw {
            RawValue::Bool(b) => Ok(Value::Bool(*b)),
            RawValue::Int(0) => Ok(Value::Bool(false)),
            RawValue::Int(1) => Ok(Value::Bool(true)),
            RawValue::List(_) => Err("a single value, not a list".into()),
            other => parse_go_bool(scalar_text(other).trim())
                .map(Value::Bool)
                .ok_or_else(|| {
                    "a boolean (true, false, 1, 0, t, f, TRUE, FALSE, True, False)".into()
                }),
        };
    }
    if matches!(raw, RawValue::List(_)) {
        return Err("a single value, not a list".into());
    }
    parse_scalar(kind, scalar_text(raw).trim())
}

/// The text of a scalar raw value (a secret is exposed only to be parsed).
fn scalar_text(raw: &RawValue) -> String {
    match raw {
        RawValue::String(s) => s.clone(),
        RawValue::Bool(b) => b.to_string(),
        RawValue::Int(i) => i.to_string(),
        RawValue::List(items) => items.join(","),
        RawValue::Secret(s) => s.expose_secret().to_string(),
    }
}

/// List items: a list as given, or one string split on commas; blanks are dropped.
fn list_items(raw: &RawValue) -> Vec<String> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect()
    };
    match raw {
        RawValue::List(items) => items.iter().flat_map(|item| split(item)).collect(),
        other => split(&scalar_text(other)),
    }
}

fn parse_scalar(kind: Kind, text: &str) -> Result<Value, String> {
    match kind {
        Kind::Int => text
            .parse::<u32>()
            .map(Value::Int)
            .map_err(|_| format!("a non-negative integer no larger than {}", u32::MAX)),
        Kind::Port => match text.parse::<u16>() {
            Ok(port) if port > 0 => Ok(Value::Port(port)),
            _ => Err("a TCP port number from 1 to 65535".into()),
        },
        Kind::String => Ok(Value::Text(text.to_string())),
        Kind::Name => check_name(text).map(|()| Value::Text(text.to_string())),
        Kind::Path if text.is_empty() => Err("a non-empty path".into()),
        Kind::Path => Ok(Value::Path(PathBuf::from(text))),
        Kind::Cron => Schedule::parse(text).map(Value::Cron),
        Kind::Url => check_url(text).map(|()| Value::Text(text.to_string())),
        Kind::ProxyUrl => Ok(Value::Proxy(SecretString::from(text))),
        Kind::IpAddr => text
            .parse()
            .map(Value::Ip)
            .map_err(|_| "an IP address such as 127.0.0.1 or ::1".into()),
        Kind::SocketAddr => text
            .parse()
            .map(Value::Socket)
            .map_err(|_| "an address with a port such as 127.0.0.1:2379".into()),
        Kind::LogFormat => match text.to_ascii_lowercase().as_str() {
            "text" => Ok(Value::LogFormat(LogFormat::Text)),
            "json" => Ok(Value::LogFormat(LogFormat::Json)),
            _ => Err("one of: text, json".into()),
        },
        Kind::Duration => parse_go_duration(text)
            .map(Value::Duration)
            .map_err(|e| format!("a duration such as 5m0s or 90s ({e})")),
        Kind::Bool | Kind::Secret | Kind::PathList | Kind::StringList => {
            Err("a value this key cannot take".into())
        }
    }
}

/// Snapshot base names and node names end up in file names and S3 keys: the snapshot module's
/// rule, so the API, the CLI's direct mode and the files refuse the same names.
fn check_name(text: &str) -> Result<(), String> {
    crate::snapshot::name::check_name_part(text).map_err(str::to_string)
}

fn check_url(text: &str) -> Result<(), String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(()),
        _ => Err("an http:// or https:// URL such as https://127.0.0.1:9345".into()),
    }
}

/// The value as `config show` prints it; secrets are `<redacted>`.
pub fn render(value: &Value) -> String {
    match value {
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Port(p) => p.to_string(),
        Value::Text(t) => t.clone(),
        Value::Path(p) => p.display().to_string(),
        Value::List(items) => items.join(","),
        Value::Cron(s) => s.spec().to_string(),
        Value::Ip(ip) => ip.to_string(),
        Value::Socket(addr) => addr.to_string(),
        Value::LogFormat(LogFormat::Text) => "text".into(),
        Value::LogFormat(LogFormat::Json) => "json".into(),
        Value::Secret(_) => "<redacted>".into(),
        Value::Duration(d) => go_duration(*d),
        Value::Proxy(url) => redact_userinfo(url.expose_secret()).into_owned(),
    }
}

/// A raw value of `kind` as an error message may quote it: the user info of a proxy URL is
/// redacted (secret keys are never quoted at all).
pub fn quotable(kind: Kind, text: String) -> String {
    match kind {
        Kind::ProxyUrl => redact_userinfo(&text).into_owned(),
        _ => text,
    }
}

/// A duration the way Go prints it (`5m0s`, `1h0m0s`, `1.5s`, `500ms`), as RKE2 users write them.
fn go_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    if d < Duration::from_secs(1) {
        return go_sub_second(d.subsec_nanos());
    }
    let total = d.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        out.push_str(&format!("{seconds}s"));
    } else {
        let frac = format!("{nanos:09}");
        out.push_str(&format!("{seconds}.{}s", frac.trim_end_matches('0')));
    }
    out
}

/// Under a second Go prints the largest unit that fits, with the exact fraction (`1ns`,
/// `1.5µs`, `250ms`), so what `config show` prints reads back as the same duration.
fn go_sub_second(nanos: u32) -> String {
    let (per_unit, unit, width) = match nanos {
        0..1_000 => return format!("{nanos}ns"),
        1_000..1_000_000 => (1_000, "µs", 3),
        _ => (1_000_000, "ms", 6),
    };
    let (whole, fraction) = (nanos / per_unit, nanos % per_unit);
    if fraction == 0 {
        return format!("{whole}{unit}");
    }
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}{unit}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_second_durations_print_as_go_does() {
        let cases = [
            (1, "1ns"),
            (999, "999ns"),
            (1_000, "1µs"),
            (1_500, "1.5µs"),
            (250_000_000, "250ms"),
            (1_000_001, "1.000001ms"),
        ];
        for (nanos, text) in cases {
            assert_eq!(go_duration(Duration::from_nanos(nanos)), text);
        }
    }

    fn s(text: &str) -> RawValue {
        RawValue::String(text.into())
    }

    #[test]
    fn go_bool_spellings() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert!(
                matches!(parse(Kind::Bool, &s(t)), Ok(Value::Bool(true))),
                "{t}"
            );
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert!(
                matches!(parse(Kind::Bool, &s(f)), Ok(Value::Bool(false))),
                "{f}"
            );
        }
        for bad in ["yes", "on", "tRUE", ""] {
            assert!(parse(Kind::Bool, &s(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn ints_must_be_non_negative() {
        assert!(matches!(
            parse(Kind::Int, &RawValue::Int(7)),
            Ok(Value::Int(7))
        ));
        assert!(matches!(parse(Kind::Int, &s(" 3 ")), Ok(Value::Int(3))));
        assert!(parse(Kind::Int, &RawValue::Int(-1)).is_err());
        assert!(parse(Kind::Int, &s("five")).is_err());
        assert!(parse(Kind::Port, &s("0")).is_err());
        assert!(parse(Kind::Port, &s("70000")).is_err());
    }

    #[test]
    fn names_reject_path_tricks() {
        for bad in ["", ".", "..", "a/b", "a b", "a\tb"] {
            assert!(parse(Kind::Name, &s(bad)).is_err(), "{bad:?}");
        }
        assert!(parse(Kind::Name, &s("node-1.example.com")).is_ok());
    }

    #[test]
    fn lists_split_commas_from_strings_and_items() {
        let parsed = parse(Kind::StringList, &s("a, b,,c"));
        assert!(matches!(parsed, Ok(Value::List(ref v)) if v == &["a", "b", "c"]));
        let parsed = parse(
            Kind::PathList,
            &RawValue::List(vec!["x,y".into(), "z".into()]),
        );
        assert!(matches!(parsed, Ok(Value::List(ref v)) if v == &["x", "y", "z"]));
        assert!(matches!(parse(Kind::StringList, &s("")), Ok(Value::List(ref v)) if v.is_empty()));
    }

    #[test]
    fn a_proxy_value_renders_and_quotes_without_its_user_info() {
        let url = "http://alice:s3cr3t@proxy:3128";
        let proxy = parse(Kind::ProxyUrl, &s(url)).expect("any text parses");
        assert_eq!(render(&proxy), "http://<redacted>@proxy:3128");
        assert!(!format!("{proxy:?}").contains("s3cr3t"));
        assert_eq!(
            quotable(Kind::ProxyUrl, url.into()),
            "http://<redacted>@proxy:3128"
        );
        assert_eq!(
            quotable(Kind::String, url.into()),
            url,
            "other kinds as given"
        );
        let plain = parse(Kind::ProxyUrl, &s("none")).unwrap();
        assert_eq!(render(&plain), "none");
    }

    #[test]
    fn scalars_reject_lists_and_secrets_render_redacted() {
        assert!(parse(Kind::Int, &RawValue::List(vec!["1".into()])).is_err());
        let secret = parse(Kind::Secret, &s("hunter2")).expect("secret parses");
        assert_eq!(render(&secret), "<redacted>");
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn other_kinds() {
        assert!(parse(Kind::Cron, &s("0 */12 * * *")).is_ok());
        assert!(parse(Kind::Cron, &s("61 * * * *")).is_err());
        assert!(parse(Kind::Url, &s("https://127.0.0.1:9345")).is_ok());
        assert!(parse(Kind::Url, &s("127.0.0.1:9345")).is_err());
        assert!(parse(Kind::SocketAddr, &s("127.0.0.1")).is_err());
        assert!(parse(Kind::IpAddr, &s("::1")).is_ok());
        assert!(matches!(
            parse(Kind::LogFormat, &s("JSON")),
            Ok(Value::LogFormat(LogFormat::Json))
        ));
        assert!(parse(Kind::LogFormat, &s("xml")).is_err());
        assert!(
            matches!(parse(Kind::Duration, &s("5m0s")), Ok(Value::Duration(d)) if d.as_secs() == 300)
        );
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    }
}
