//! InfluxDB line protocol request bodies -> the agent's data model (the receiver's
//! side). The parser itself is shared with the mqtt plugin:
//! [`tfo_plugin_common::lineproto`] (syntax, escaping, value types, precision);
//! this module is the receiver's **mapping**, fuzzed through [`parse_body`]
//! (`fuzz/fuzz_targets/influx_lines.rs`).
//!
//! A line that does not parse is reported (its number and why) and skipped; the
//! good lines of the same body are kept (a partial write). Without a timestamp a
//! point gets the time of the request.
//!
//! Mapping to the agent's data model (the naming vmagent uses for `/write`, and
//! Telegraf's Prometheus output for multi-field metrics): every numeric or boolean
//! field becomes a **gauge** named `<measurement>_<field>` (`cpu usage_idle=99` ->
//! `cpu_usage_idle`), tags become point attributes (string values), floats stay
//! doubles, integers stay integers (unsigned ones above `i64::MAX` become doubles),
//! booleans become 1 / 0. String fields have no metric equivalent and are skipped
//! (counted in [`Parsed::string_fields`]), as vmagent and Telegraf's Prometheus
//! output do.
//!
//! Speed (issue 9, `examples/ingest_profile.rs`, `benches/ingest.rs`): the body is
//! parsed in place into one reused [`Line`]; a line's attributes are built once
//! and cloned for its other fields; the metric of each field position is
//! remembered from the previous line (a run of lines of the same measurement and
//! fields finds its metrics without building the name or hashing), so what is
//! allocated per point is what the data model owns: the point's attribute vector
//! and its key and value strings.

use std::collections::HashMap;

use tfo_plugin_api::{Batch, DataPoint, KeyValue, Metric, PointValue};
// Re-exported so the receiver, the fuzz target and the benches name one module.
pub use tfo_plugin_common::lineproto::{parse_line, parse_line_into, FieldValue, Line, Precision};

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
    let mut metrics = Metrics::default();
    let mut line = Line::default();
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    for (n, end) in ends.enumerate() {
        let raw = &body[start..end];
        start = end + 1;
        match parse_line_into(raw, &mut line) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                out.reject(n + 1, e);
                continue;
            }
        }
        let time = match line.timestamp {
            None => now_ns,
            Some(t) => match precision.to_unix_nanos(t) {
                Some(ns) => ns,
                None => {
                    out.reject(
                        n + 1,
                        format!("timestamp {t} out of range (before 1970 or after 2554)"),
                    );
                    continue;
                }
            },
        };
        out.lines_ok += 1;
        // The points of this line, in field order: (field position, value).
        let mut last_numeric = None;
        for (i, (_, value)) in line.fields.iter().enumerate() {
            if matches!(value, FieldValue::Str(_)) {
                out.string_fields += 1;
            } else {
                last_numeric = Some(i);
            }
        }
        let Some(last_numeric) = last_numeric else {
            continue;
        };
        let mut attrs: Vec<KeyValue> = Vec::with_capacity(line.tags.len() + extra.len());
        attrs.extend(
            line.tags
                .iter()
                .map(|(k, v)| KeyValue::new(k.as_ref(), v.as_ref())),
        );
        for (k, v) in extra {
            if !line.tags.iter().any(|(t, _)| t == k) {
                attrs.push(KeyValue::new(k.as_str(), v.as_str()));
            }
        }
        let mut attrs = Some(attrs);
        for (i, (key, value)) in line.fields.iter().enumerate() {
            let value = match value {
                FieldValue::Float(f) => PointValue::Double(*f),
                FieldValue::Int(i) => PointValue::Int(*i),
                FieldValue::UInt(u) => match i64::try_from(*u) {
                    Ok(i) => PointValue::Int(i),
                    Err(_) => PointValue::Double(*u as f64),
                },
                FieldValue::Bool(b) => PointValue::Int(i64::from(*b)),
                FieldValue::Str(_) => continue,
            };
            // The line's attributes are moved into its last point, cloned for the others.
            let attributes = if i == last_numeric {
                attrs.take().unwrap_or_default()
            } else {
                attrs.clone().unwrap_or_default()
            };
            metrics.push(
                i,
                &line.measurement,
                key,
                DataPoint {
                    attributes: attributes.into(),
                    start_time_unix_nano: 0,
                    time_unix_nano: time,
                    value,
                },
            );
        }
    }
    out.batch.metrics = metrics.list.into();
    out
}

impl Parsed {
    /// Counts a refused line and keeps its reason while fewer than
    /// [`MAX_ERRORS_KEPT`] are kept.
    fn reject(&mut self, line_number: usize, why: String) {
        self.lines_bad += 1;
        if self.errors.len() < MAX_ERRORS_KEPT {
            self.errors.push((line_number, why));
        }
    }
}

/// The metrics of one body, in order of first appearance, found by name.
#[derive(Default)]
struct Metrics {
    list: Vec<Metric>,
    /// Name -> index in `list`.
    index: HashMap<String, usize>,
    /// Per field position: the metric the previous line's field at that position
    /// went to (most bodies repeat one measurement and field set line after line).
    recent: Vec<usize>,
    /// `<measurement>_<field>` is built here for a lookup (no allocation).
    name: String,
}

impl Metrics {
    /// Adds `point` to the gauge `<measurement>_<field>`, creating it if new.
    fn push(&mut self, position: usize, measurement: &str, field: &str, point: DataPoint) {
        let recent = self.recent.get(position).copied().filter(|&i| {
            let n = self.list[i].name.as_str();
            n.len() == measurement.len() + 1 + field.len()
                && n.starts_with(measurement)
                && n.ends_with(field)
                && n.as_bytes()[measurement.len()] == b'_'
        });
        let i = match recent {
            Some(i) => i,
            None => {
                self.name.clear();
                self.name.push_str(measurement);
                self.name.push('_');
                self.name.push_str(field);
                let i = match self.index.get(self.name.as_str()) {
                    Some(&i) => i,
                    None => {
                        let i = self.list.len();
                        self.index.insert(self.name.clone(), i);
                        let mut m = Metric::gauge(&self.name, "", 0, 0.0, Vec::new());
                        m.points = Default::default();
                        self.list.push(m);
                        i
                    }
                };
                if self.recent.len() <= position {
                    self.recent.resize(position + 1, i);
                }
                self.recent[position] = i;
                i
            }
        };
        self.list[i].points.push(point);
    }
}

#[cfg(test)]
mod tests;
