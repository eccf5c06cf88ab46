//! InfluxDB line protocol **parser** (the receiver's side): pure, never panics,
//! fuzzed (`fuzz/fuzz_targets/influx_lines.rs`).
//!
//! Syntax followed: the line protocol reference
//! (<https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/> and
//! <https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/>):
//!
//! ```text
//! measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] [timestamp]
//! ```
//!
//! - escaping: in measurements `\,` and `\ `; in tag keys, tag values and field
//!   keys `\,`, `\=` and `\ `; in string field values `\"` and `\\`; `\\` is one
//!   backslash everywhere; a backslash before any other character is literal;
//! - field values: float (`1`, `-1.5`, `1e3`), integer (`1i`), unsigned integer
//!   (`1u`), string (`"..."`), boolean (`t`, `T`, `true`, `True`, `TRUE`, `f`, `F`,
//!   `false`, `False`, `FALSE`);
//! - timestamp: optional signed integer in the request's precision (`ns` default,
//!   `us`, `ms`, `s`; the v1 API also `n`, `u`, `µ`, `m`, `h`); without one the
//!   point gets the time of the request;
//! - empty lines and lines starting with `#` (comments) are skipped; `\r\n` line
//!   ends are accepted.
//!
//! A line that does not parse is reported (its number and why) and skipped; the
//! good lines of the same body are kept (a partial write).
//!
//! Mapping to the agent's data model (the naming vmagent uses for `/write`, and
//! Telegraf's Prometheus output for multi-field metrics): every numeric or boolean
//! field becomes a **gauge** named `<measurement>_<field>` (`cpu usage_idle=99` ->
//! `cpu_usage_idle`), tags become point attributes (string values), floats stay
//! doubles, integers stay integers (unsigned ones above `i64::MAX` become doubles),
//! booleans become 1 / 0. String fields have no metric equivalent and are skipped
//! (counted in [`Parsed::string_fields`]), as vmagent and Telegraf's Prometheus
//! output do.

use std::collections::HashMap;

use tfo_plugin_api::{Batch, DataPoint, KeyValue, Metric, PointValue};

/// Timestamp precision of a write request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Nanoseconds (the default).
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
    /// Minutes (v1 API only).
    M,
    /// Hours (v1 API only).
    H,
}

impl Precision {
    /// The `precision` query value: v2 names (`ns`, `us`, `ms`, `s`) and the v1 ones
    /// (`n`, `u`, `µ`, `ms`, `s`, `m`, `h`); `None` when unknown.
    pub fn parse(s: &str) -> Option<Precision> {
        Some(match s {
            "" | "n" | "ns" => Precision::Ns,
            "u" | "us" | "µ" | "µs" => Precision::Us,
            "ms" => Precision::Ms,
            "s" => Precision::S,
            "m" => Precision::M,
            "h" => Precision::H,
            _ => return None,
        })
    }

    /// Nanoseconds per unit.
    pub fn nanos(self) -> i128 {
        match self {
            Precision::Ns => 1,
            Precision::Us => 1_000,
            Precision::Ms => 1_000_000,
            Precision::S => 1_000_000_000,
            Precision::M => 60_000_000_000,
            Precision::H => 3_600_000_000_000,
        }
    }
}

/// A field value as written.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// `1.5`, `1`.
    Float(f64),
    /// `1i`.
    Int(i64),
    /// `1u`.
    UInt(u64),
    /// `"text"` (unescaped).
    Str(String),
    /// `t`, `false`...
    Bool(bool),
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Measurement (unescaped).
    pub measurement: String,
    /// Tags in line order (unescaped).
    pub tags: Vec<(String, String)>,
    /// Fields in line order (keys unescaped).
    pub fields: Vec<(String, FieldValue)>,
    /// Timestamp as written (in the request's precision), if any.
    pub timestamp: Option<i64>,
}

/// Parses one line (without its `\n`); `Ok(None)` for an empty or comment line.
pub fn parse_line(line: &[u8]) -> Result<Option<Line>, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let start = line
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(line.len());
    let line = &line[start..];
    if line.is_empty() || line[0] == b'#' {
        return Ok(None);
    }
    let mut p = Cursor { s: line, i: 0 };
    let measurement = p.token(b", ", b",\\ ")?;
    if measurement.is_empty() {
        return Err("missing measurement".into());
    }
    let mut tags = Vec::new();
    while p.peek() == Some(b',') {
        p.i += 1;
        let key = p.token(b"=, ", b",= \\")?;
        if key.is_empty() {
            return Err("empty tag key".into());
        }
        if p.peek() != Some(b'=') {
            return Err(format!("tag {key:?} has no value (missing '=')"));
        }
        p.i += 1;
        let value = p.token(b", ", b",= \\")?;
        if value.is_empty() {
            return Err(format!("tag {key:?} has an empty value"));
        }
        tags.push((key, value));
    }
    if p.peek() != Some(b' ') {
        return Err("missing fields (expected a space after the measurement and tags)".into());
    }
    p.skip_spaces();
    let mut fields = Vec::new();
    loop {
        let key = p.token(b"=, ", b",= \\")?;
        if key.is_empty() {
            return Err("missing field key".into());
        }
        if p.peek() != Some(b'=') {
            return Err(format!("field {key:?} has no value (missing '=')"));
        }
        p.i += 1;
        let value = p.field_value().map_err(|e| format!("field {key:?}: {e}"))?;
        fields.push((key, value));
        if p.peek() == Some(b',') {
            p.i += 1;
            continue;
        }
        break;
    }
    let timestamp = match p.peek() {
        None => None,
        Some(b' ') => {
            p.skip_spaces();
            let rest = &p.s[p.i..];
            let end = rest
                .iter()
                .position(|b| matches!(b, b' ' | b'\t'))
                .unwrap_or(rest.len());
            let (ts, tail) = rest.split_at(end);
            if tail.iter().any(|b| !matches!(b, b' ' | b'\t')) {
                return Err("unexpected text after the timestamp".into());
            }
            if ts.is_empty() {
                None
            } else {
                let t = std::str::from_utf8(ts)
                    .ok()
                    .filter(|t| {
                        let digits = t.strip_prefix('-').unwrap_or(t);
                        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                    })
                    .and_then(|t| t.parse::<i64>().ok())
                    .ok_or_else(|| {
                        format!("invalid timestamp {:?}", String::from_utf8_lossy(ts))
                    })?;
                Some(t)
            }
        }
        Some(c) => return Err(format!("unexpected {:?} after the fields", c as char)),
    };
    Ok(Some(Line {
        measurement,
        tags,
        fields,
        timestamp,
    }))
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    /// Reads up to an unescaped byte of `stop`; `\` + a byte of `escapable` is that
    /// byte, any other `\` is literal.
    fn token(&mut self, stop: &[u8], escapable: &[u8]) -> Result<String, String> {
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            if c == b'\\' {
                match self.s.get(self.i + 1) {
                    Some(n) if escapable.contains(n) => {
                        out.push(*n);
                        self.i += 2;
                    }
                    _ => {
                        out.push(b'\\');
                        self.i += 1;
                    }
                }
                continue;
            }
            if stop.contains(&c) {
                break;
            }
            out.push(c);
            self.i += 1;
        }
        String::from_utf8(out).map_err(|_| "not valid UTF-8".to_string())
    }

    fn field_value(&mut self) -> Result<FieldValue, String> {
        if self.peek() == Some(b'"') {
            self.i += 1;
            let mut out = Vec::new();
            loop {
                match self.peek() {
                    None => return Err("unterminated string".into()),
                    Some(b'"') => {
                        self.i += 1;
                        break;
                    }
                    Some(b'\\') if matches!(self.s.get(self.i + 1), Some(b'"' | b'\\')) => {
                        out.push(self.s[self.i + 1]);
                        self.i += 2;
                    }
                    Some(c) => {
                        out.push(c);
                        self.i += 1;
                    }
                }
            }
            return String::from_utf8(out)
                .map(FieldValue::Str)
                .map_err(|_| "string not valid UTF-8".into());
        }
        let rest = &self.s[self.i..];
        let end = rest
            .iter()
            .position(|b| matches!(b, b',' | b' '))
            .unwrap_or(rest.len());
        self.i += end;
        let raw = std::str::from_utf8(&rest[..end]).map_err(|_| "not valid UTF-8".to_string())?;
        number_or_bool(raw).ok_or_else(|| format!("invalid value {raw:?}"))
    }
}

fn number_or_bool(raw: &str) -> Option<FieldValue> {
    match raw {
        "t" | "T" | "true" | "True" | "TRUE" => return Some(FieldValue::Bool(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Some(FieldValue::Bool(false)),
        _ => {}
    }
    if let Some(i) = raw.strip_suffix('i') {
        let digits = i.strip_prefix('-').unwrap_or(i);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return i.parse().ok().map(FieldValue::Int);
    }
    if let Some(u) = raw.strip_suffix('u') {
        if u.is_empty() || !u.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return u.parse().ok().map(FieldValue::UInt);
    }
    // Rust's float syntax also takes "inf", "NaN", "+1": line protocol does not.
    let body = raw.strip_prefix('-').unwrap_or(raw);
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        || !raw
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
    {
        return None;
    }
    raw.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(FieldValue::Float)
}

/// What a request body became.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Parsed {
    /// One batch with every point of the good lines (may be empty).
    pub batch: Batch,
    /// Lines parsed (not counting empty and comment lines).
    pub lines_ok: u64,
    /// Lines refused: `(line number from 1, why)`, at most [`MAX_ERRORS_KEPT`]
    /// kept; [`Parsed::lines_bad`] counts them all.
    pub errors: Vec<(usize, String)>,
    /// All refused lines.
    pub lines_bad: u64,
    /// String fields skipped (no metric equivalent).
    pub string_fields: u64,
}

/// How many line errors are kept for the answer (the count is always exact).
pub const MAX_ERRORS_KEPT: usize = 10;

/// Parses a request body into one batch. `extra` attributes (e.g. `db`) are added to
/// every point whose line has no tag of that name; `now_ns` stamps lines without a
/// timestamp.
pub fn parse_body(
    body: &[u8],
    precision: Precision,
    now_ns: u64,
    extra: &[(String, String)],
) -> Parsed {
    let mut out = Parsed::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut metrics: Vec<Metric> = Vec::new();
    for (n, raw) in body.split(|b| *b == b'\n').enumerate() {
        let line = match parse_line(raw) {
            Ok(None) => continue,
            Ok(Some(l)) => l,
            Err(e) => {
                out.lines_bad += 1;
                if out.errors.len() < MAX_ERRORS_KEPT {
                    out.errors.push((n + 1, e));
                }
                continue;
            }
        };
        let time = match line.timestamp {
            None => now_ns,
            Some(t) => match u64::try_from(i128::from(t) * precision.nanos()) {
                Ok(ns) => ns,
                Err(_) => {
                    out.lines_bad += 1;
                    if out.errors.len() < MAX_ERRORS_KEPT {
                        out.errors.push((
                            n + 1,
                            format!("timestamp {t} out of range (before 1970 or after 2554)"),
                        ));
                    }
                    continue;
                }
            },
        };
        out.lines_ok += 1;
        let mut attrs: Vec<KeyValue> = line
            .tags
            .iter()
            .map(|(k, v)| KeyValue::new(k.as_str(), v.as_str()))
            .collect();
        for (k, v) in extra {
            if !line.tags.iter().any(|(t, _)| t == k) {
                attrs.push(KeyValue::new(k.as_str(), v.as_str()));
            }
        }
        for (key, value) in line.fields {
            let value = match value {
                FieldValue::Float(f) => PointValue::Double(f),
                FieldValue::Int(i) => PointValue::Int(i),
                FieldValue::UInt(u) => match i64::try_from(u) {
                    Ok(i) => PointValue::Int(i),
                    Err(_) => PointValue::Double(u as f64),
                },
                FieldValue::Bool(b) => PointValue::Int(i64::from(b)),
                FieldValue::Str(_) => {
                    out.string_fields += 1;
                    continue;
                }
            };
            let name = format!("{}_{}", line.measurement, key);
            match index.get(&name) {
                Some(&i) => metrics[i].points.push(DataPoint {
                    attributes: attrs.clone().into(),
                    start_time_unix_nano: 0,
                    time_unix_nano: time,
                    value,
                }),
                None => {
                    index.insert(name.clone(), metrics.len());
                    let mut m = Metric::gauge(&name, "", time, 0.0, attrs.clone());
                    if let Some(p) = m.points.first_mut() {
                        p.value = value;
                    }
                    metrics.push(m);
                }
            }
        }
    }
    out.batch.metrics = metrics.into();
    out
}

#[cfg(test)]
mod tests;
