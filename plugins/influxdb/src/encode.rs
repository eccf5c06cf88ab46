//! The agent's data model -> InfluxDB line protocol; pure and golden-tested.
//!
//! Line protocol as documented in the InfluxDB 1.x "Line protocol reference"
//! (<https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/>)
//! and the 2.x page (<https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/>):
//!
//! ```text
//! <measurement>[,<tag_key>=<tag_value>...] <field_key>=<field_value>[,...] <timestamp>
//! ```
//!
//! Escaping ("Special characters"): in measurements a backslash escapes commas and
//! spaces; in tag keys, tag values and field keys it escapes commas, equals signs and
//! spaces; in string field values (in double quotes) it escapes double quotes and
//! backslashes. Line protocol has no way to carry a newline, NaN or infinity, and no
//! escape for a backslash outside string fields, so:
//! - a newline or carriage return anywhere is written as the two characters `\n`
//!   (`\r`);
//! - a run of backslashes standing before a character that is escaped is doubled.
//!   Parsers disagree here: VictoriaMetrics pairs backslashes (so an undoubled
//!   `a\\,b` would split the tag there and lose the line), InfluxDB 1.x treats any
//!   character after a backslash as escaped and keeps the doubled backslash. Doubling
//!   keeps the line parseable by both; InfluxDB then stores one extra backslash;
//! - trailing backslashes of a name are removed (counted): InfluxDB reads the
//!   separator after them as escaped, however many there are;
//! - a NaN or infinite value is never written: a gauge or sum point holding one is
//!   skipped, a histogram's or log's non-finite field is left out, and both are
//!   counted in [`Skipped`].
//!
//! Mapping (one line per data point, log record or span, so the host's item count is
//! the line count):
//! - **metrics**: measurement = metric name. Tags = resource attributes, then the
//!   point's attributes (which win on equal keys), sorted by key; empty keys and
//!   empty values are left out (line protocol has no empty tag). Gauge and sum
//!   points: field `value` (a float, or an integer `42i` for integer points).
//!   Histogram points (Telegraf's prometheus `metric_version = 1` layout): `count`
//!   (integer), `sum`, `min`, `max` when known, and one field per bucket named after
//!   its upper bound (`0.1`, `0.5`, ..., `+Inf`) holding the *cumulative* count.
//!   Summary points: `count`, `sum`, and one field per quantile named after it
//!   (`0.5`, `0.99`).
//! - **logs** (measurement `logs`): tags = resource attributes plus `level` (the
//!   severity text, or the OpenTelemetry name of the severity number); fields =
//!   `message` (the body as a string), `severity_number`, `trace_id` and `span_id`
//!   (hex) when set, and the record's attributes as typed fields.
//! - **spans** (measurement `spans`): tags = resource attributes plus `span_name`,
//!   `span_kind`, `status_code`; fields = `trace_id`, `span_id`, `parent_span_id`
//!   (hex), `duration_ns`, `status_message` when set, and the span's attributes as
//!   typed fields; timestamp = the span's start.
//! - Keys the InfluxDB docs reserve (`time`, `_measurement`, `_field`) and a tag key
//!   equal to one of the line's field keys get a `_` appended (repeatedly until
//!   unique), as does an attribute field colliding with a fixed field.
//! - Timestamps: the point's time in the configured precision (truncated); a point
//!   without time (0) gets the export time. Times past 2262 (beyond a signed 64-bit
//!   nanosecond count) are skipped and counted.
//! - Limits: string field values are cut to `max_string_bytes` at a character
//!   boundary; a line longer than `max_line_bytes`, or whose series key
//!   (measurement and tags) exceeds InfluxDB's 65,535 bytes, is skipped and counted.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use tfo_plugin_api::{
    AnyValue, Batch, HistogramValue, KeyValue, LogRecord, PointValue, Span, SpanKind, StatusCode,
    SummaryValue,
};
use tfo_plugin_common::hex;

use crate::config::Precision;

/// Longest series key (measurement plus tag set) InfluxDB accepts ("max key length
/// exceeded" above it).
pub const MAX_SERIES_KEY_BYTES: usize = 65_535;

/// Keys the InfluxDB docs reserve ("Naming restrictions"): a point using them as a
/// tag or field key is refused.
pub const RESERVED_KEYS: [&str; 3] = ["time", "_measurement", "_field"];

/// How the encoder writes lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Timestamp precision.
    pub precision: Precision,
    /// Longest line written (bytes, without the newline).
    pub max_line_bytes: usize,
    /// Longest string field value (bytes).
    pub max_string_bytes: usize,
    /// Measurement of log records; empty: logs are skipped (counted as disabled).
    pub logs_measurement: String,
    /// Measurement of spans; empty: spans are skipped (counted as disabled).
    pub spans_measurement: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            precision: Precision::Ns,
            max_line_bytes: crate::config::DEFAULT_MAX_LINE_BYTES,
            max_string_bytes: crate::config::DEFAULT_MAX_STRING_BYTES,
            logs_measurement: crate::config::DEFAULT_LOGS_MEASUREMENT.into(),
            spans_measurement: crate::config::DEFAULT_SPANS_MEASUREMENT.into(),
        }
    }
}

/// What the encoder could not write as given, by reason. Items (points, records,
/// spans) in the first five counters produced no line; the other counters
/// are about parts of lines that were still written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Gauge/sum points whose value was NaN or infinite.
    pub non_finite: u64,
    /// Items with nothing writable: an empty metric name or one starting with `#`
    /// (a comment in line protocol), or no finite field left.
    pub invalid: u64,
    /// Lines over `max_line_bytes`, or with a series key over 65,535 bytes.
    pub too_long: u64,
    /// Items with a timestamp beyond the signed 64-bit nanosecond range.
    pub bad_timestamp: u64,
    /// Logs or spans whose measurement is configured empty.
    pub disabled: u64,
    /// Non-finite fields left out of a line that was written (histogram sum/min/max,
    /// a quantile, a float attribute of a log or span).
    pub non_finite_fields: u64,
    /// Histogram points whose bucket layout was malformed (counts not one more than
    /// bounds, or a non-finite bound): written without bucket fields.
    pub bad_buckets: u64,
    /// String field values cut to `max_string_bytes`.
    pub truncated_strings: u64,
    /// Names (measurements, tag keys and values, field keys) that ended in
    /// backslashes, which were removed (line protocol cannot carry them).
    pub trimmed_backslashes: u64,
}

impl Skipped {
    /// Items that produced no line.
    pub fn items(&self) -> u64 {
        self.non_finite + self.invalid + self.too_long + self.bad_timestamp + self.disabled
    }

    /// True when nothing was skipped or altered.
    pub fn is_empty(&self) -> bool {
        *self == Skipped::default()
    }

    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &Skipped) {
        self.non_finite += other.non_finite;
        self.invalid += other.invalid;
        self.too_long += other.too_long;
        self.bad_timestamp += other.bad_timestamp;
        self.disabled += other.disabled;
        self.non_finite_fields += other.non_finite_fields;
        self.bad_buckets += other.bad_buckets;
        self.truncated_strings += other.truncated_strings;
        self.trimmed_backslashes += other.trimmed_backslashes;
    }

    /// `non_finite=2 too_long=1`: the non-zero counters, for logs.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (name, n) in [
            ("non_finite", self.non_finite),
            ("invalid", self.invalid),
            ("too_long", self.too_long),
            ("bad_timestamp", self.bad_timestamp),
            ("disabled", self.disabled),
            ("non_finite_fields", self.non_finite_fields),
            ("bad_buckets", self.bad_buckets),
            ("truncated_strings", self.truncated_strings),
            ("trimmed_backslashes", self.trimmed_backslashes),
        ] {
            if n > 0 {
                if !out.is_empty() {
                    out.push(' ');
                }
                let _ = write!(out, "{name}={n}");
            }
        }
        out
    }
}

/// The lines of one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    /// One line per written item, without newlines.
    pub lines: Vec<String>,
    /// What was skipped or altered.
    pub skipped: Skipped,
}

/// One field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Float (finite; non-finite values never get here).
    Float(f64),
    /// Signed integer, written `42i`.
    Int(i64),
    /// Boolean.
    Bool(bool),
    /// String, written in double quotes.
    Str(String),
}

/// Encodes a whole batch; `now_unix_nano` stands in for missing timestamps.
pub fn encode(batch: &Batch, opts: &Options, now_unix_nano: u64) -> Encoded {
    let mut enc = Encoder {
        opts,
        now: now_unix_nano,
        out: Encoded::default(),
    };
    let resource = &batch.resource.attributes[..];
    for m in batch.metrics.iter() {
        for p in m.points.iter() {
            enc.metric_point(
                m.name.as_str(),
                resource,
                &p.attributes,
                p.time_unix_nano,
                &p.value,
            );
        }
    }
    for l in batch.logs.iter() {
        enc.log(resource, l);
    }
    for s in batch.spans.iter() {
        enc.span(resource, s);
    }
    enc.out
}

struct Encoder<'a> {
    opts: &'a Options,
    now: u64,
    out: Encoded,
}

impl Encoder<'_> {
    fn metric_point(
        &mut self,
        name: &str,
        resource: &[KeyValue],
        attrs: &[KeyValue],
        time: u64,
        value: &PointValue,
    ) {
        if name.is_empty() {
            self.out.skipped.invalid += 1;
            return;
        }
        let mut fields = Vec::new();
        match value {
            PointValue::Double(v) => {
                if !v.is_finite() {
                    self.out.skipped.non_finite += 1;
                    return;
                }
                fields.push(("value".to_string(), FieldValue::Float(*v)));
            }
            PointValue::Int(v) => fields.push(("value".to_string(), FieldValue::Int(*v))),
            PointValue::Histogram(h) => self.histogram_fields(h, &mut fields),
            PointValue::Summary(s) => self.summary_fields(s, &mut fields),
        }
        let tags = merge_tags(resource, attrs, &[], &mut self.out.skipped);
        self.push(name, tags, fields, time);
    }

    fn float_field(&mut self, fields: &mut Vec<(String, FieldValue)>, key: String, v: f64) {
        if v.is_finite() {
            fields.push((key, FieldValue::Float(v)));
        } else {
            self.out.skipped.non_finite_fields += 1;
        }
    }

    fn histogram_fields(&mut self, h: &HistogramValue, fields: &mut Vec<(String, FieldValue)>) {
        fields.push(("count".into(), FieldValue::Int(sat_i64(h.count))));
        if let Some(sum) = h.sum.into_option() {
            self.float_field(fields, "sum".into(), sum);
        }
        if let Some(min) = h.min.into_option() {
            self.float_field(fields, "min".into(), min);
        }
        if let Some(max) = h.max.into_option() {
            self.float_field(fields, "max".into(), max);
        }
        if h.bounds.is_empty() && h.bucket_counts.is_empty() {
            return;
        }
        if h.bucket_counts.len() != h.bounds.len() + 1 || h.bounds.iter().any(|b| !b.is_finite()) {
            self.out.skipped.bad_buckets += 1;
            return;
        }
        let mut cumulative: u64 = 0;
        for (i, c) in h.bucket_counts.iter().enumerate() {
            cumulative = cumulative.saturating_add(*c);
            let key = match h.bounds.get(i) {
                Some(b) => format_float(*b),
                None => "+Inf".to_string(),
            };
            fields.push((key, FieldValue::Int(sat_i64(cumulative))));
        }
    }

    fn summary_fields(&mut self, s: &SummaryValue, fields: &mut Vec<(String, FieldValue)>) {
        fields.push(("count".into(), FieldValue::Int(sat_i64(s.count))));
        self.float_field(fields, "sum".into(), s.sum);
        for q in s.quantiles.iter() {
            if !q.quantile.is_finite() {
                self.out.skipped.non_finite_fields += 1;
                continue;
            }
            self.float_field(fields, format_float(q.quantile), q.value);
        }
    }

    fn log(&mut self, resource: &[KeyValue], l: &LogRecord) {
        let measurement = self.opts.logs_measurement.clone();
        if measurement.is_empty() {
            self.out.skipped.disabled += 1;
            return;
        }
        let level = if !l.severity_text.is_empty() {
            l.severity_text.to_string()
        } else {
            severity_name(l.severity_number).to_string()
        };
        let tags = merge_tags(resource, &[], &[("level", level)], &mut self.out.skipped);
        let mut fields = vec![(
            "message".to_string(),
            FieldValue::Str(any_to_string(&l.body)),
        )];
        if l.severity_number > 0 {
            fields.push((
                "severity_number".into(),
                FieldValue::Int(i64::from(l.severity_number)),
            ));
        }
        if l.trace_id != [0; 16] {
            fields.push(("trace_id".into(), FieldValue::Str(hex::encode(&l.trace_id))));
        }
        if l.span_id != [0; 8] {
            fields.push(("span_id".into(), FieldValue::Str(hex::encode(&l.span_id))));
        }
        self.attribute_fields(&l.attributes, &mut fields);
        let time = if l.time_unix_nano != 0 {
            l.time_unix_nano
        } else {
            l.observed_time_unix_nano
        };
        self.push(&measurement, tags, fields, time);
    }

    fn span(&mut self, resource: &[KeyValue], s: &Span) {
        let measurement = self.opts.spans_measurement.clone();
        if measurement.is_empty() {
            self.out.skipped.disabled += 1;
            return;
        }
        let tags = merge_tags(
            resource,
            &[],
            &[
                ("span_name", s.name.to_string()),
                ("span_kind", span_kind(s.kind).to_string()),
                ("status_code", status_code(s.status_code).to_string()),
            ],
            &mut self.out.skipped,
        );
        let mut fields = vec![
            (
                "trace_id".to_string(),
                FieldValue::Str(hex::encode(&s.trace_id)),
            ),
            (
                "span_id".to_string(),
                FieldValue::Str(hex::encode(&s.span_id)),
            ),
        ];
        if s.parent_span_id != [0; 8] {
            fields.push((
                "parent_span_id".into(),
                FieldValue::Str(hex::encode(&s.parent_span_id)),
            ));
        }
        let duration = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano);
        fields.push(("duration_ns".into(), FieldValue::Int(sat_i64(duration))));
        if !s.status_message.is_empty() {
            fields.push((
                "status_message".into(),
                FieldValue::Str(s.status_message.to_string()),
            ));
        }
        self.attribute_fields(&s.attributes, &mut fields);
        self.push(&measurement, tags, fields, s.start_time_unix_nano);
    }

    /// Attributes of a log record or span as typed fields, after the fixed ones.
    fn attribute_fields(&mut self, attrs: &[KeyValue], fields: &mut Vec<(String, FieldValue)>) {
        let mut taken: BTreeSet<String> = fields.iter().map(|(k, _)| k.clone()).collect();
        for kv in attrs {
            let key = trim_backslashes(kv.key.as_str(), &mut self.out.skipped);
            if key.is_empty() {
                continue;
            }
            let value = match &kv.value {
                AnyValue::Str(s) => FieldValue::Str(s.to_string()),
                AnyValue::Bool(b) => FieldValue::Bool(*b),
                AnyValue::Int(i) => FieldValue::Int(*i),
                AnyValue::Double(d) if d.is_finite() => FieldValue::Float(*d),
                AnyValue::Double(_) => {
                    self.out.skipped.non_finite_fields += 1;
                    continue;
                }
                AnyValue::Bytes(b) => FieldValue::Str(tfo_plugin_common::auth::base64(b)),
            };
            let key = unique_key(key, &taken);
            taken.insert(key.clone());
            fields.push((key, value));
        }
    }

    /// Writes one line, or counts why it cannot be written.
    fn push(
        &mut self,
        measurement: &str,
        tags: BTreeMap<String, String>,
        fields: Vec<(String, FieldValue)>,
        time: u64,
    ) {
        let measurement = trim_backslashes(measurement, &mut self.out.skipped);
        // A line starting with `#` is a comment ("Comments" in the 2.x reference),
        // and no escape for it is documented: such a measurement cannot be written.
        if measurement.is_empty() || measurement.starts_with('#') || fields.is_empty() {
            self.out.skipped.invalid += 1;
            return;
        }
        let time = if time == 0 { self.now } else { time };
        if time > i64::MAX as u64 {
            self.out.skipped.bad_timestamp += 1;
            return;
        }
        let ts = time / self.opts.precision.nanos();

        // Tag keys must not be reserved nor equal a field key of this line.
        let field_keys: BTreeSet<String> = fields.iter().map(|(k, _)| k.clone()).collect();
        let mut final_tags: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in tags {
            let mut taken = field_keys.clone();
            taken.extend(final_tags.keys().cloned());
            let k = unique_key(&k, &taken);
            final_tags.insert(k, v);
        }

        let mut line = String::with_capacity(64);
        escape_into(&mut line, measurement, MEASUREMENT_SPECIALS);
        for (k, v) in &final_tags {
            line.push(',');
            escape_into(&mut line, k, KEY_SPECIALS);
            line.push('=');
            escape_into(&mut line, v, KEY_SPECIALS);
        }
        if line.len() > MAX_SERIES_KEY_BYTES {
            self.out.skipped.too_long += 1;
            return;
        }
        line.push(' ');
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            escape_into(&mut line, &unique_key_reserved(k), KEY_SPECIALS);
            line.push('=');
            match v {
                FieldValue::Float(f) => line.push_str(&format_float(*f)),
                FieldValue::Int(n) => {
                    let _ = write!(line, "{n}i");
                }
                FieldValue::Bool(b) => line.push_str(if *b { "true" } else { "false" }),
                FieldValue::Str(s) => {
                    let s = match truncate(s, self.opts.max_string_bytes) {
                        Some(cut) => {
                            self.out.skipped.truncated_strings += 1;
                            cut
                        }
                        None => s.as_str(),
                    };
                    line.push('"');
                    escape_string_field(&mut line, s);
                    line.push('"');
                }
            }
        }
        let _ = write!(line, " {ts}");
        if line.len() > self.opts.max_line_bytes {
            self.out.skipped.too_long += 1;
            return;
        }
        self.out.lines.push(line);
    }
}

/// Characters escaped in measurements.
pub const MEASUREMENT_SPECIALS: &[char] = &[',', ' '];
/// Characters escaped in tag keys, tag values and field keys.
pub const KEY_SPECIALS: &[char] = &[',', '=', ' '];

/// Appends `s` escaped for a measurement (`specials` = [`MEASUREMENT_SPECIALS`]) or
/// a tag key, tag value or field key ([`KEY_SPECIALS`]); see the module docs for
/// newlines and backslashes.
pub fn escape_into(out: &mut String, s: &str, specials: &[char]) {
    if !s
        .chars()
        .any(|c| c == '\\' || c == '\n' || c == '\r' || specials.contains(&c))
    {
        out.push_str(s);
        return;
    }
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let start = i;
            while i < chars.len() && chars[i] == '\\' {
                i += 1;
            }
            let run = i - start;
            // A run before the end, an escaped character or a newline (written as
            // `\n`) is doubled, so the parser's pairs stay aligned.
            let double = match chars.get(i) {
                None => true,
                Some(n) => specials.contains(n) || *n == '\n' || *n == '\r',
            };
            for _ in 0..(if double { 2 * run } else { run }) {
                out.push('\\');
            }
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if specials.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
        i += 1;
    }
}

/// Appends a string field value (without its quotes): `"` and `\` are
/// backslash-escaped, newlines become `\n` (`\r`).
pub fn escape_string_field(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// `s` cut to at most `max` bytes at a character boundary, or `None` when it fits.
fn truncate(s: &str, max: usize) -> Option<&str> {
    if s.len() <= max {
        return None;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Some(&s[..end])
}

/// `key` with `_` appended until it is neither reserved nor in `taken`.
pub fn unique_key(key: &str, taken: &BTreeSet<String>) -> String {
    let mut k = key.to_string();
    while RESERVED_KEYS.contains(&k.as_str()) || taken.contains(&k) {
        k.push('_');
    }
    k
}

fn unique_key_reserved(key: &str) -> String {
    unique_key(key, &BTreeSet::new())
}

/// Resource attributes, then `attrs` (which win), then `extra` (which win over
/// both), as text; empty keys and values dropped.
fn merge_tags(
    resource: &[KeyValue],
    attrs: &[KeyValue],
    extra: &[(&str, String)],
    skipped: &mut Skipped,
) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    for kv in resource.iter().chain(attrs.iter()) {
        let key = trim_backslashes(kv.key.as_str(), skipped);
        let value = any_to_string(&kv.value);
        let value = trim_backslashes(&value, skipped);
        tags.insert(key.to_string(), value.to_string());
    }
    for (k, v) in extra {
        let v = trim_backslashes(v, skipped);
        tags.insert(k.to_string(), v.to_string());
    }
    tags.retain(|k, v| !k.is_empty() && !v.is_empty());
    tags
}

/// `s` without trailing backslashes (counted): InfluxDB reads the separator after
/// a trailing backslash as escaped whatever precedes it, so such a name cannot be
/// written.
fn trim_backslashes<'s>(s: &'s str, skipped: &mut Skipped) -> &'s str {
    let t = s.trim_end_matches('\\');
    if t.len() != s.len() {
        skipped.trimmed_backslashes += 1;
    }
    t
}

/// An attribute or log body as text: strings as they are, numbers and booleans
/// in their usual spelling, bytes in base64.
pub fn any_to_string(v: &AnyValue) -> String {
    match v {
        AnyValue::Str(s) => s.to_string(),
        AnyValue::Bool(b) => b.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => format_float(*d),
        AnyValue::Bytes(b) => tfo_plugin_common::auth::base64(b),
    }
}

/// A float as line protocol writes it (and as a bucket's or quantile's field key):
/// integral values below 1e15 without a fraction (`82`, which line protocol reads as
/// a float since it has no `i`), others in Rust's shortest round-trip form (`0.1`,
/// `1e-9`, `1.5e20`); `+Inf`/`-Inf`/`NaN` only ever as keys.
pub fn format_float(b: f64) -> String {
    if b.is_nan() {
        "NaN".into()
    } else if b.is_infinite() {
        if b > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if b == b.trunc() && b.abs() < 1e15 {
        format!("{}", b as i64)
    } else {
        format!("{b:?}")
    }
}

fn sat_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// OpenTelemetry's short name of a severity number (logs data model, "Displaying
/// Severity"), empty for 0 (unspecified).
pub fn severity_name(n: u8) -> &'static str {
    match n {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "",
    }
}

fn span_kind(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

fn status_code(c: StatusCode) -> &'static str {
    match c {
        StatusCode::Unset => "unset",
        StatusCode::Ok => "ok",
        StatusCode::Error => "error",
    }
}

/// One request body and the number of lines in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Lines, each ended by `\n` (uncompressed).
    pub body: Vec<u8>,
    /// Lines in the body (= items).
    pub lines: usize,
}

/// Splits `lines` into request bodies of at most `max_lines` lines and at most
/// `max_bytes` bytes (a single longer line still gets a body of its own).
pub fn chunks(lines: &[String], max_lines: usize, max_bytes: usize) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut cur = Chunk {
        body: Vec::new(),
        lines: 0,
    };
    for line in lines {
        let need = line.len() + 1;
        if cur.lines > 0 && (cur.lines >= max_lines || cur.body.len() + need > max_bytes) {
            out.push(std::mem::replace(
                &mut cur,
                Chunk {
                    body: Vec::new(),
                    lines: 0,
                },
            ));
        }
        cur.body.extend_from_slice(line.as_bytes());
        cur.body.push(b'\n');
        cur.lines += 1;
    }
    if cur.lines > 0 {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests;
