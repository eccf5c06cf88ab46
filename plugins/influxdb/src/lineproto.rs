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
//! and its key and value strings. [`parse_body_reusing`] writes those into an
//! earlier batch's memory instead (the host hands exported batches back,
//! `Context::reclaimed_batch`), so a body shaped like the previous ones allocates
//! nothing per point.

use std::collections::HashMap;

use tfo_plugin_api::{Batch, DataPoint, KeyValue, Metric, PointValue};
// Re-exported so the receiver, the fuzz target and the benches name one module.
pub use tfo_plugin_common::lineproto::{parse_line, parse_line_into, FieldValue, Line, Precision};
pub use tfo_plugin_common::reuse::Spare;

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
    parse_body_reusing(body, precision, now_ns, extra, None)
}

/// [`parse_body`] writing into the strings and vectors of `earlier` (a batch
/// this receiver emitted before, handed back after its export) where they fit:
/// the same result, without a `malloc` per string while bodies keep their
/// shape. What `earlier` had beyond this body's need is freed here.
pub fn parse_body_reusing(
    body: &[u8],
    precision: Precision,
    now_ns: u64,
    extra: &[(String, String)],
    earlier: Option<Batch>,
) -> Parsed {
    let mut spare = Spare::default();
    if let Some(b) = earlier {
        spare.take_apart(b);
    }
    parse_body_with(body, precision, now_ns, extra, &mut spare, &mut || None)
}

/// [`parse_body`] writing into the memory in `spare`, and when that runs out,
/// into the batches `refill` hands over (the receiver's reclaimed batches),
/// until it has none; then allocating. What is not used stays in `spare` for
/// the next body (the host hands back merged batches, larger than one body).
pub fn parse_body_with(
    body: &[u8],
    precision: Precision,
    now_ns: u64,
    extra: &[(String, String)],
    spare: &mut Spare,
    refill: &mut dyn FnMut() -> Option<Batch>,
) -> Parsed {
    let mut out = Parsed::default();
    let mut metrics = Metrics {
        spare: std::mem::take(spare),
        ..Default::default()
    };
    // `refill` had nothing during this body: not asked again.
    let mut dry = false;
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
        let tags = &line.tags;
        let pairs = || {
            let extra = extra
                .iter()
                .filter(|(k, _)| !tags.iter().any(|(t, _)| t == k))
                .map(|(k, v)| (k.as_str(), v.as_str()));
            tags.iter()
                .map(|(k, v)| (k.as_ref(), v.as_ref()))
                .chain(extra)
        };
        // Built once and cloned for the line's other fields, unless there is
        // spare memory to write each point's copy into.
        if metrics.spare.attribute_vectors() == 0 && !dry {
            match refill() {
                Some(b) => metrics.spare.take_apart(b),
                None => dry = true,
            }
        }
        let mut attrs = if metrics.spare.attribute_vectors() == 0 {
            let mut attrs: Vec<KeyValue> = Vec::with_capacity(tags.len() + extra.len());
            attrs.extend(pairs().map(|(k, v)| KeyValue::new(k, v)));
            Some(attrs)
        } else {
            None
        };
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
            // The line's attributes are moved into its last point, cloned for the
            // others; or each written into an earlier point's attribute vector.
            let attributes = match metrics.spare.attributes_from(pairs()) {
                Some(spare) => spare,
                None if attrs.is_none() => pairs().map(|(k, v)| KeyValue::new(k, v)).collect(),
                None if i == last_numeric => attrs.take().unwrap_or_default().into(),
                None => attrs.clone().unwrap_or_default().into(),
            };
            metrics.push(
                i,
                &line.measurement,
                key,
                DataPoint {
                    attributes,
                    start_time_unix_nano: 0,
                    time_unix_nano: time,
                    value,
                },
            );
        }
    }
    *spare = std::mem::take(&mut metrics.spare);
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
    /// Memory of an earlier batch to build the body's metrics and points in.
    spare: Spare,
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
                        let m = self.spare.metric(&self.name, "", "");
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
