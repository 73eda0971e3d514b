//! Which text format `/metrics` speaks, and the OpenMetrics -> Prometheus 0.0.4 rewrite.
//!
//! The metrics library writes OpenMetrics 1.0 only. Its text differs from the classic
//! Prometheus text format (0.0.4) in ways a 0.0.4 parser rejects or misreads: a counter
//! family `x` has the sample `x_total` (0.0.4 wants the `# TYPE` line to name `x_total`, or
//! it reads an empty counter plus an untyped metric), `# UNIT` lines, the `unknown` type and
//! the closing `# EOF`. So the server negotiates: a scraper that asks for OpenMetrics in its
//! `Accept` header (Prometheus does, ahead of 0.0.4) gets it unchanged and declared as such;
//! everyone else (curl, older scrapers, `promtool check metrics`) gets a 0.0.4 rendering.
//! Both are pure string functions, tested here and against real parsers in `tests/it`.

/// The two exposition formats `/metrics` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (the default).
    Prometheus,
    /// OpenMetrics text 1.0.0, served only when the `Accept` header asks for it.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` that declares this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Picks the format from an `Accept` header: OpenMetrics when it is listed with a quality at
/// least that of any text/plain or wildcard range, else 0.0.4. A missing or unparsable header
/// means 0.0.4, which every Prometheus-compatible scraper reads.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Prometheus;
    };
    let (mut open_metrics, mut plain) = (0.0_f32, 0.0_f32);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/openmetrics-text" => open_metrics = open_metrics.max(quality),
            "text/plain" | "text/*" | "*/*" => plain = plain.max(quality),
            _ => {}
        }
    }
    if open_metrics > 0.0 && open_metrics >= plain {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}

/// Rewrites OpenMetrics text (as the metrics library writes it) into Prometheus 0.0.4 text:
/// counter and info families are renamed to their sample names (`x_total`, `x_info`),
/// `unknown` becomes `untyped`, `_created` samples of counters and `# UNIT` / `# EOF` lines
/// are dropped. Samples are unchanged: their names and label syntax are the same in both.
pub fn to_prometheus_text(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    // (family, suffix) of the family being written, from its `# TYPE` line.
    let mut renamed: Option<(String, &str)> = None;
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "unknown" => ("", "untyped"),
                other => ("", other),
            };
            renamed = Some((name.to_owned(), suffix));
            push_line(&mut out, &format!("# TYPE {name}{suffix} {kind}"));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            push_line(&mut out, &help_line(rest, open_metrics));
            continue;
        }
        if let Some((family, "_total")) = &renamed
            && line.starts_with(&format!("{family}_created"))
        {
            continue;
        }
        push_line(&mut out, line);
    }
    out
}

/// `# HELP` for a family, renamed like its `# TYPE` line (HELP comes first, so the type is
/// looked up in the whole text).
fn help_line(rest: &str, whole: &str) -> String {
    let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let kind = whole
        .lines()
        .find_map(|l| {
            l.strip_prefix("# TYPE ")?
                .strip_prefix(name)?
                .strip_prefix(' ')
        })
        .unwrap_or("");
    let suffix = match kind {
        "counter" => "_total",
        "info" => "_info",
        _ => "",
    };
    format!("# HELP {name}{suffix} {text}")
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
        application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

    #[test]
    fn negotiation_follows_the_accept_header() {
        assert_eq!(negotiate(None), Format::Prometheus);
        assert_eq!(negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(negotiate(Some("text/plain")), Format::Prometheus);
        assert_eq!(negotiate(Some(PROMETHEUS_ACCEPT)), Format::OpenMetrics);
        assert_eq!(
            negotiate(Some("application/openmetrics-text; version=1.0.0")),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")),
            Format::Prometheus
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0")),
            Format::Prometheus
        );
        assert_eq!(negotiate(Some(";;,,q=")), Format::Prometheus);
    }

    #[test]
    fn counters_are_renamed_and_openmetrics_only_lines_dropped() {
        let open_metrics = "# HELP ticks Skipped ticks.\n# TYPE ticks counter\n\
            ticks_total 2\nticks_created 1.5e9\n# HELP g A gauge.\n# TYPE g gauge\n# UNIT g seconds\n\
            g 1\n# TYPE u unknown\nu 3\n# TYPE v info\nv_info{a=\"b\"} 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(open_metrics),
            "# HELP ticks_total Skipped ticks.\n# TYPE ticks_total counter\nticks_total 2\n\
             # HELP g A gauge.\n# TYPE g gauge\ng 1\n# TYPE u untyped\nu 3\n\
             # TYPE v_info gauge\nv_info{a=\"b\"} 1\n"
        );
    }

    #[test]
    fn histograms_pass_through_unchanged() {
        let open_metrics = "# HELP h Durations.\n# TYPE h histogram\nh_sum{status=\"success\"} 0.5\n\
            h_count{status=\"success\"} 1\nh_bucket{le=\"+Inf\",status=\"success\"} 1\n# EOF\n";
        let expected = open_metrics.strip_suffix("# EOF\n").unwrap();
        assert_eq!(to_prometheus_text(open_metrics), expected);
    }
}
