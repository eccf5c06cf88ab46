//! The scrape endpoint's two text formats and the choice between them.
//!
//! - Prometheus text exposition format 0.0.4
//!   (<https://prometheus.io/docs/instrumenting/exposition_formats/>),
//!   `Content-Type: text/plain; version=0.0.4; charset=utf-8`: `# HELP` then
//!   `# TYPE` per family; a counter's TYPE line names the sample (`x_total`);
//!   HELP escapes `\` and newline; label values escape `\`, `"` and newline.
//! - OpenMetrics 1.0.0
//!   (<https://github.com/OpenObservability/OpenMetrics/blob/main/specification/OpenMetrics.md>),
//!   `Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8`:
//!   `# TYPE`, `# UNIT` (only when the family name ends with `_<unit>`, as the
//!   spec requires), `# HELP` (escaped like label values) per family; a counter
//!   family is named without `_total` and its sample with it; `_created` samples
//!   (start time in seconds) for counters, histograms and summaries whose start time
//!   is known; `target_info` as an `info` family named `target`; `# EOF` last.
//!
//! Both: `le` and `quantile` values in the canonical form of OpenMetrics
//! ("Canonical Numbers": `0.5`, `1.0`, `+Inf`), other numbers as Go prints them
//! ([`format_double`]), no timestamps (the scraper stamps
//! samples with the scrape time), a histogram's buckets cumulative and ending with
//! `+Inf`, families sorted by name and series by labels so output is deterministic.
//! [`negotiate`] picks the format from the request's `Accept` header as Prometheus
//! sends it (OpenMetrics preferred when its q-value is highest, text otherwise).

use std::fmt::Write as _;

use super::{canonical_float, format_double, Family, FamilyMeta, FamilyType, Point, Value};

/// `Content-Type` of the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of OpenMetrics 1.0.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which exposition format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    /// The response `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Picks the format for an `Accept` header: OpenMetrics when an
/// `application/openmetrics-text` range (version absent, `1.0.0` or `0.0.1`) has a
/// q-value above 0 and at least that of the best text range (`text/plain` with
/// version absent or `0.0.4`, `text/*`, `*/*`); the text format otherwise,
/// including for a missing header.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text;
    };
    let (mut q_om, mut q_text) = (0.0f64, 0.0f64);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1.0;
        let mut version: Option<String> = None;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.parse::<f64>().unwrap_or(0.0).clamp(0.0, 1.0),
                    "version" => version = Some(v.to_string()),
                    _ => {}
                }
            }
        }
        match media.as_str() {
            "application/openmetrics-text"
                if matches!(version.as_deref(), None | Some("1.0.0") | Some("0.0.1")) =>
            {
                q_om = q_om.max(q)
            }
            "text/plain" if matches!(version.as_deref(), None | Some("0.0.4")) => {
                q_text = q_text.max(q)
            }
            "text/*" | "*/*" => q_text = q_text.max(q),
            _ => {}
        }
    }
    if q_om > 0.0 && q_om >= q_text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// Renders whole families (in the given order) and the format's trailer.
pub fn render(families: &[Family], format: Format) -> String {
    let mut out = String::new();
    for f in families {
        write_family(&mut out, &f.meta, &f.points, format);
    }
    finish(&mut out, format);
    out
}

/// Ends an exposition: `# EOF` for OpenMetrics, nothing for text.
pub fn finish(out: &mut String, format: Format) {
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
}

/// Writes one family: its metadata lines and every point's samples, points in the
/// given order. A family without points writes nothing.
pub fn write_family<'a>(
    out: &mut String,
    meta: &FamilyMeta,
    points: impl IntoIterator<Item = &'a Point>,
    format: Format,
) {
    let mut points = points.into_iter().peekable();
    if points.peek().is_none() {
        return;
    }
    let name = meta.name.as_str();
    match format {
        Format::Text => {
            let (type_name, type_word) = match meta.kind {
                FamilyType::Counter => (format!("{name}_total"), "counter"),
                FamilyType::Info => (format!("{name}_info"), "gauge"),
                k => (name.to_string(), k.as_str()),
            };
            if !meta.help.is_empty() {
                let _ = writeln!(out, "# HELP {type_name} {}", escape_help_text(&meta.help));
            }
            let _ = writeln!(out, "# TYPE {type_name} {type_word}");
        }
        Format::OpenMetrics => {
            let _ = writeln!(out, "# TYPE {name} {}", meta.kind.as_str());
            if !meta.unit.is_empty() && name.ends_with(&format!("_{}", meta.unit)) {
                let _ = writeln!(out, "# UNIT {name} {}", meta.unit);
            }
            if !meta.help.is_empty() {
                let _ = writeln!(out, "# HELP {name} {}", escape_value(&meta.help));
            }
        }
    }
    for p in points {
        write_point(out, name, meta.kind, p, format);
    }
}

fn write_point(out: &mut String, name: &str, kind: FamilyType, p: &Point, format: Format) {
    let om = format == Format::OpenMetrics;
    match (&p.value, kind) {
        (Value::Histogram(h), _) => {
            let mut cumulative = 0u64;
            for (bound, count) in h.bounds.iter().zip(&h.counts) {
                cumulative = cumulative.saturating_add(*count);
                sample(
                    out,
                    name,
                    "_bucket",
                    &p.labels,
                    Some(("le", &canonical_float(*bound))),
                    &cumulative.to_string(),
                );
            }
            sample(
                out,
                name,
                "_bucket",
                &p.labels,
                Some(("le", "+Inf")),
                &h.count.to_string(),
            );
            if let Some(s) = h.sum {
                sample(out, name, "_sum", &p.labels, None, &format_double(s));
            }
            sample(out, name, "_count", &p.labels, None, &h.count.to_string());
            if om {
                created(out, name, p);
            }
        }
        (Value::Summary(s), _) => {
            for (q, v) in &s.quantiles {
                sample(
                    out,
                    name,
                    "",
                    &p.labels,
                    Some(("quantile", &canonical_float(*q))),
                    &format_double(*v),
                );
            }
            if let Some(sum) = s.sum {
                sample(out, name, "_sum", &p.labels, None, &format_double(sum));
            }
            sample(out, name, "_count", &p.labels, None, &s.count.to_string());
            if om {
                created(out, name, p);
            }
        }
        (v, FamilyType::Counter) => {
            sample(out, name, "_total", &p.labels, None, &number(v));
            if om {
                created(out, name, p);
            }
        }
        (_, FamilyType::Info) => sample(out, name, "_info", &p.labels, None, "1"),
        (v, _) => sample(out, name, "", &p.labels, None, &number(v)),
    }
}

fn number(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        other => format_double(other.as_f64()),
    }
}

/// `<name>_created` with the start time in seconds (millisecond precision, no
/// exponent), when the start time is known.
fn created(out: &mut String, name: &str, p: &Point) {
    if p.start_unix_nano == 0 {
        return;
    }
    let secs = p.start_unix_nano / 1_000_000_000;
    let millis = (p.start_unix_nano % 1_000_000_000) / 1_000_000;
    sample(
        out,
        name,
        "_created",
        &p.labels,
        None,
        &format!("{secs}.{millis:03}"),
    );
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(String, String)],
    extra: Option<(&str, &str)>,
    value: &str,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || extra.is_some() {
        out.push('{');
        let mut first = true;
        let pairs = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra);
        for (k, v) in pairs {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            out.push_str(&escape_value(v));
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// Escapes a label value (both formats) or an OpenMetrics HELP text: `\` -> `\\`,
/// `"` -> `\"`, newline -> `\n`.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a text-format HELP line: `\` -> `\\`, newline -> `\n` (quotes stay).
pub fn escape_help_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}
