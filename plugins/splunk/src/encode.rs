//! The agent's data model -> HEC JSON events. Pure functions, golden-tested against
//! the examples of Splunk's documentation.
//!
//! Formats followed:
//! - "Format events for HTTP Event Collector"
//!   (<https://docs.splunk.com/Documentation/Splunk/latest/Data/FormatEventsforHTTPEventCollector>):
//!   an event is a JSON object with `time` (epoch seconds, here with a millisecond
//!   fraction), `host`, `source`, `sourcetype`, `index`, `event` and `fields`
//!   (indexed fields, string values); several events are sent in one request by
//!   concatenating the objects ("Event data" batch example);
//! - "Get metrics in from other sources", the multiple-metric JSON format
//!   (<https://docs.splunk.com/Documentation/Splunk/latest/Metrics/GetMetricsInOther#The_multiple-metric_JSON_format>):
//!   `"event":"metric"`, and in `fields` one `metric_name:<name>` key per
//!   measurement plus the dimensions. Points with the same time, metadata and
//!   dimensions share one event.
//!
//! Mapping:
//! - **logs**: `event` is the body (a string, or a JSON number / boolean; bytes as
//!   base64); `fields` are the resource and record attributes plus `severity`,
//!   `severity_number`, `trace_id`, `span_id` when set; `time` is the record's time,
//!   else its observed time, else absent (Splunk uses the arrival time);
//! - **spans**: `event` is an object (`trace_id`, `span_id`, `parent_span_id`,
//!   `name`, `kind`, `start_time` / `end_time` in Unix nanoseconds, `duration_ms`,
//!   `status`, `attributes`, `events`), like the Splunk OpenTelemetry Collector's
//!   HEC exporter; `fields` are the resource attributes plus `trace_id`; `time` is
//!   the start;
//! - **metrics**: gauges and sums are one measurement; a histogram point is
//!   `<name>_count`, `<name>_sum` (`_min`, `_max` when known) and one cumulative
//!   `<name>_bucket` measurement per bucket with an `le` dimension (the last one
//!   `+Inf`); a summary point is `<name>_count`, `<name>_sum` and one `<name>`
//!   measurement per quantile with a `quantile` dimension. Dimensions are the
//!   resource and point attributes, as strings.
//!
//! Metadata: `index`, `source` and `sourcetype` come from the config unless the
//! item or its resource carries `com.splunk.index`, `com.splunk.source` or
//! `com.splunk.sourcetype` (the Splunk OpenTelemetry Collector's convention; these
//! attributes are not sent as fields). `host` is the configured one, else
//! `host.name` of the item or the resource.
//!
//! Bad data never poisons a request; what cannot be sent is dropped and counted
//! ([`Encoded::dropped_items`], with the reasons in [`Encoded::problems`]):
//! - a metric value that is NaN or infinite (JSON has no such numbers and Splunk
//!   metrics must be numeric): that measurement is left out;
//! - a metric name that is empty or starts with a digit or `_` (Splunk refuses
//!   those names): the point is left out; whitespace in names becomes `_`;
//! - a log record whose body is empty or blank (HEC error 13, "Event field cannot
//!   be blank");
//! - an event larger than the request size limit.
//!
//! Field (and dimension) names are made safe rather than dropped: whitespace and
//! control characters become `_`; leading `_` are removed (Splunk reserves them
//! for internal fields); a name equal to a default field (`host`, `source`,
//! `sourcetype`, `index`, `time`) or starting with `metric_name` (which would turn
//! a dimension into a measurement) gets the prefix `attr.`; an empty name is
//! dropped. Renamed keys are counted in [`Encoded::renamed_keys`].

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Number, Value};
use tfo_plugin_api::{
    AnyValue, Batch, KeyValue, LogRecord, Metric, PointValue, Span, SpanKind, StatusCode,
};
use tfo_plugin_common::{auth::base64, hex};

use crate::config::{Config, SourceTypes};

/// Attribute overriding an item's index (Splunk OpenTelemetry Collector convention).
pub const INDEX_ATTR: &str = "com.splunk.index";
/// Attribute overriding an item's source.
pub const SOURCE_ATTR: &str = "com.splunk.source";
/// Attribute overriding an item's sourcetype.
pub const SOURCETYPE_ATTR: &str = "com.splunk.sourcetype";
/// Resource / item attribute giving the event's `host`.
pub const HOST_ATTR: &str = "host.name";

/// Field names that are Splunk default fields; an attribute with such a name is
/// sent as `attr.<name>`.
const RESERVED_FIELDS: [&str; 5] = ["host", "source", "sourcetype", "index", "time"];

/// What the encoder needs from the config.
#[derive(Debug, Clone)]
pub struct Options {
    /// Index of log and span events ("" = token default).
    pub index: String,
    /// Index of metric events.
    pub metrics_index: String,
    /// `source`.
    pub source: String,
    /// Sourcetypes per signal.
    pub source_types: SourceTypes,
    /// Configured `host` ("" = from `host.name`).
    pub host: String,
    /// Encode metrics.
    pub metrics: bool,
    /// Encode logs.
    pub logs: bool,
    /// Encode spans.
    pub traces: bool,
    /// Largest event (serialized) that can be sent.
    pub max_event_bytes: usize,
}

impl Options {
    /// The options of a validated config.
    pub fn from_config(c: &Config) -> Options {
        Options {
            index: c.index.clone(),
            metrics_index: c.metrics_index().to_string(),
            source: c.source.clone(),
            source_types: c.source_types(),
            host: c.host.clone(),
            metrics: c.metrics,
            logs: c.logs,
            traces: c.traces,
            max_event_bytes: c.max_request_bytes,
        }
    }
}

/// One serialized HEC event and how many of the batch's items it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The JSON object, serialized.
    pub json: Vec<u8>,
    /// Items of the batch (log records, spans, metric points) it accounts for.
    pub items: u64,
}

/// A batch as HEC events.
#[derive(Debug, Default, Clone)]
pub struct Encoded {
    /// The events, in order: metrics, spans, logs.
    pub events: Vec<Event>,
    /// Items not sent (bad data, disabled signal not counted).
    pub dropped_items: u64,
    /// Why items were dropped (one line per distinct reason, at most 20).
    pub problems: Vec<String>,
    /// Attribute names rewritten to be valid field names.
    pub renamed_keys: u64,
    /// Items of signals switched off in the config (accepted, not sent).
    pub disabled_items: u64,
}

impl Encoded {
    fn problem(&mut self, items: u64, why: String) {
        self.dropped_items += items;
        if self.problems.len() < 20 && !self.problems.contains(&why) {
            self.problems.push(why);
        }
    }

    fn push(&mut self, value: Value, items: u64, max: usize, what: &str) {
        let json = serde_json::to_vec(&value).unwrap_or_default();
        if json.len() > max {
            self.problem(
                items,
                format!(
                    "{what}: event of {} bytes is larger than max_request_bytes ({max})",
                    json.len()
                ),
            );
            return;
        }
        self.events.push(Event { json, items });
    }
}

/// Encodes a batch (see the module docs for the mapping).
pub fn encode(batch: &Batch, opts: &Options) -> Encoded {
    let mut out = Encoded::default();
    let resource = &batch.resource.attributes[..];
    if opts.metrics {
        encode_metrics(&batch.metrics, resource, opts, &mut out);
    } else {
        out.disabled_items += batch
            .metrics
            .iter()
            .map(|m| m.points.len() as u64)
            .sum::<u64>();
    }
    if opts.traces {
        for span in batch.spans.iter() {
            encode_span(span, resource, opts, &mut out);
        }
    } else {
        out.disabled_items += batch.spans.len() as u64;
    }
    if opts.logs {
        for log in batch.logs.iter() {
            encode_log(log, resource, opts, &mut out);
        }
    } else {
        out.disabled_items += batch.logs.len() as u64;
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Signal {
    Metrics,
    Traces,
    Logs,
}

/// The metadata of one event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Meta {
    index: String,
    source: String,
    sourcetype: String,
    host: String,
}

fn str_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find_map(|kv| match &kv.value {
        AnyValue::Str(s) if kv.key.as_str() == key && !s.is_empty() => Some(s.as_str()),
        _ => None,
    })
}

fn meta(opts: &Options, signal: Signal, resource: &[KeyValue], item: &[KeyValue]) -> Meta {
    let pick = |key: &str, default: &str| -> String {
        str_attr(item, key)
            .or_else(|| str_attr(resource, key))
            .unwrap_or(default)
            .to_string()
    };
    let (index, sourcetype) = match signal {
        Signal::Metrics => (&opts.metrics_index, &opts.source_types.metrics),
        Signal::Traces => (&opts.index, &opts.source_types.traces),
        Signal::Logs => (&opts.index, &opts.source_types.logs),
    };
    let host = if opts.host.is_empty() {
        pick(HOST_ATTR, "")
    } else {
        opts.host.clone()
    };
    Meta {
        index: pick(INDEX_ATTR, index),
        source: pick(SOURCE_ATTR, &opts.source),
        sourcetype: pick(SOURCETYPE_ATTR, sourcetype),
        host,
    }
}

/// The envelope of an event: `time` and the non-empty metadata.
fn envelope(time_unix_nano: u64, meta: &Meta) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(t) = hec_time(time_unix_nano) {
        m.insert("time".into(), Value::Number(t));
    }
    for (k, v) in [
        ("host", &meta.host),
        ("source", &meta.source),
        ("sourcetype", &meta.sourcetype),
        ("index", &meta.index),
    ] {
        if !v.is_empty() {
            m.insert(k.into(), Value::String(v.clone()));
        }
    }
    m
}

/// Epoch seconds with a millisecond fraction (`1700000000.123`), an integer when the
/// fraction is zero; `None` for 0 (unknown: Splunk then uses the arrival time).
pub fn hec_time(unix_nano: u64) -> Option<Number> {
    if unix_nano == 0 {
        return None;
    }
    let ms = unix_nano / 1_000_000;
    let (secs, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        return Some(Number::from(secs));
    }
    // Parsing the decimal text gives the double nearest to it, which prints back
    // as the same digits.
    format!("{secs}.{frac:03}")
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
}

/// A valid field / dimension name for `key`, or `None` when nothing is left.
/// The bool says whether the name had to change.
pub fn field_name(key: &str) -> Option<(String, bool)> {
    let cleaned: String = key
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = cleaned.trim_start_matches('_');
    if trimmed.is_empty() {
        return None;
    }
    let name = if RESERVED_FIELDS.contains(&trimmed) || trimmed.starts_with("metric_name") {
        format!("attr.{trimmed}")
    } else {
        trimmed.to_string()
    };
    let changed = name != key;
    Some((name, changed))
}

/// An attribute value as an indexed-field string.
fn field_text(v: &AnyValue) -> String {
    match v {
        AnyValue::Str(s) => s.to_string(),
        AnyValue::Bool(b) => b.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => double_text(*d),
        AnyValue::Bytes(b) => base64(b),
    }
}

fn double_text(d: f64) -> String {
    if d.is_nan() {
        "NaN".into()
    } else if d.is_infinite() {
        if d > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        // Display: shortest text that reads back as the same double, no `.0`.
        format!("{d}")
    }
}

/// An attribute value as JSON (non-finite doubles as their text).
fn json_value(v: &AnyValue) -> Value {
    match v {
        AnyValue::Str(s) => Value::String(s.to_string()),
        AnyValue::Bool(b) => Value::Bool(*b),
        AnyValue::Int(i) => Value::from(*i),
        AnyValue::Double(d) => Number::from_f64(*d)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(double_text(*d))),
        AnyValue::Bytes(b) => Value::String(base64(b)),
    }
}

fn is_meta_attr(key: &str) -> bool {
    matches!(key, INDEX_ATTR | SOURCE_ATTR | SOURCETYPE_ATTR)
}

/// Adds attributes as indexed fields (later ones win).
fn add_fields(fields: &mut BTreeMap<String, String>, attrs: &[KeyValue], out: &mut Encoded) {
    for kv in attrs {
        if is_meta_attr(&kv.key) {
            continue;
        }
        match field_name(&kv.key) {
            Some((name, changed)) => {
                if changed {
                    out.renamed_keys += 1;
                }
                fields.insert(name, field_text(&kv.value));
            }
            None => out.renamed_keys += 1,
        }
    }
}

fn fields_value(fields: BTreeMap<String, String>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

fn is_zero(id: &[u8]) -> bool {
    id.iter().all(|b| *b == 0)
}

fn encode_log(log: &LogRecord, resource: &[KeyValue], opts: &Options, out: &mut Encoded) {
    let event = match &log.body {
        AnyValue::Str(s) if s.trim().is_empty() => {
            out.problem(
                1,
                "log record with an empty body (HEC refuses blank events)".into(),
            );
            return;
        }
        other => json_value(other),
    };
    let meta = meta(opts, Signal::Logs, resource, &log.attributes);
    let time = if log.time_unix_nano != 0 {
        log.time_unix_nano
    } else {
        log.observed_time_unix_nano
    };
    let mut env = envelope(time, &meta);
    env.insert("event".into(), event);
    let mut fields = BTreeMap::new();
    add_fields(&mut fields, resource, out);
    add_fields(&mut fields, &log.attributes, out);
    if !log.severity_text.is_empty() {
        fields.insert("severity".into(), log.severity_text.to_string());
    }
    if log.severity_number != 0 {
        fields.insert("severity_number".into(), log.severity_number.to_string());
    }
    if !is_zero(&log.trace_id) {
        fields.insert("trace_id".into(), hex::encode(&log.trace_id));
    }
    if !is_zero(&log.span_id) {
        fields.insert("span_id".into(), hex::encode(&log.span_id));
    }
    if !fields.is_empty() {
        env.insert("fields".into(), fields_value(fields));
    }
    out.push(Value::Object(env), 1, opts.max_event_bytes, "log record");
}

/// OTLP's name of a span kind.
pub fn span_kind(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        SpanKind::Internal => "SPAN_KIND_INTERNAL",
        SpanKind::Server => "SPAN_KIND_SERVER",
        SpanKind::Client => "SPAN_KIND_CLIENT",
        SpanKind::Producer => "SPAN_KIND_PRODUCER",
        SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    }
}

/// OTLP's name of a status code.
pub fn status_code(c: StatusCode) -> &'static str {
    match c {
        StatusCode::Unset => "STATUS_CODE_UNSET",
        StatusCode::Ok => "STATUS_CODE_OK",
        StatusCode::Error => "STATUS_CODE_ERROR",
    }
}

fn attr_object(attrs: &[KeyValue]) -> Value {
    Value::Object(
        attrs
            .iter()
            .filter(|kv| !is_meta_attr(&kv.key))
            .map(|kv| (kv.key.to_string(), json_value(&kv.value)))
            .collect(),
    )
}

fn encode_span(span: &Span, resource: &[KeyValue], opts: &Options, out: &mut Encoded) {
    let meta = meta(opts, Signal::Traces, resource, &span.attributes);
    let mut env = envelope(span.start_time_unix_nano, &meta);
    let duration_ns = span
        .end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano);
    let events: Vec<Value> = span
        .events
        .iter()
        .map(|e| {
            json!({
                "name": e.name.as_str(),
                "time": e.time_unix_nano,
                "attributes": attr_object(&e.attributes),
            })
        })
        .collect();
    let mut status = Map::new();
    status.insert("code".into(), status_code(span.status_code).into());
    if !span.status_message.is_empty() {
        status.insert("message".into(), span.status_message.as_str().into());
    }
    let event = json!({
        "trace_id": hex::encode(&span.trace_id),
        "span_id": hex::encode(&span.span_id),
        "parent_span_id": if is_zero(&span.parent_span_id) { String::new() } else { hex::encode(&span.parent_span_id) },
        "name": span.name.as_str(),
        "kind": span_kind(span.kind),
        "start_time": span.start_time_unix_nano,
        "end_time": span.end_time_unix_nano,
        "duration_ms": duration_ns as f64 / 1e6,
        "status": status,
        "attributes": attr_object(&span.attributes),
        "events": events,
    });
    env.insert("event".into(), event);
    let mut fields = BTreeMap::new();
    add_fields(&mut fields, resource, out);
    fields.insert("trace_id".into(), hex::encode(&span.trace_id));
    env.insert("fields".into(), fields_value(fields));
    out.push(Value::Object(env), 1, opts.max_event_bytes, "span");
}

/// The name of a measurement, or why it cannot be one.
pub fn metric_name(name: &str) -> Result<String, String> {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    match cleaned.chars().next() {
        None => Err("metric with an empty name".into()),
        Some(c) if c.is_ascii_digit() || c == '_' => Err(format!(
            "metric name {name:?} starts with a digit or '_', which Splunk refuses"
        )),
        Some(_) => Ok(cleaned),
    }
}

/// Measurements of one multiple-metric event under construction.
struct Group {
    time: u64,
    meta: Meta,
    dims: BTreeMap<String, String>,
    values: Vec<(String, Number)>,
    items: u64,
}

/// Key of a group: time, metadata and dimensions.
type GroupKey = (u64, Meta, Vec<(String, String)>);

#[derive(Default)]
struct Groups {
    groups: Vec<Group>,
    /// Open group (accepting more measurements) of each key.
    open: HashMap<GroupKey, usize>,
}

impl Groups {
    /// Adds one measurement; `count_item` when it is the first measurement of a
    /// data point (so every point is counted once).
    fn add(
        &mut self,
        time: u64,
        meta: &Meta,
        dims: &BTreeMap<String, String>,
        name: String,
        value: Number,
        count_item: bool,
    ) {
        let key: GroupKey = (
            time,
            meta.clone(),
            dims.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        );
        let idx = match self.open.get(&key) {
            Some(&i) if !self.groups[i].values.iter().any(|(n, _)| *n == name) => i,
            _ => {
                self.groups.push(Group {
                    time,
                    meta: meta.clone(),
                    dims: dims.clone(),
                    values: Vec::new(),
                    items: 0,
                });
                let i = self.groups.len() - 1;
                self.open.insert(key, i);
                i
            }
        };
        let g = &mut self.groups[idx];
        g.values.push((name, value));
        if count_item {
            g.items += 1;
        }
    }
}

/// One measurement of a point: name, an extra dimension (`le`, `quantile`), and
/// the value (`None` when it is not a finite number).
type Measure = (String, Option<(&'static str, String)>, Option<Number>);

/// A finite measurement value.
fn measure(v: f64) -> Option<Number> {
    Number::from_f64(v)
}

fn encode_metrics(metrics: &[Metric], resource: &[KeyValue], opts: &Options, out: &mut Encoded) {
    let mut groups = Groups::default();
    for m in metrics {
        let name = match metric_name(&m.name) {
            Ok(n) => n,
            Err(why) => {
                out.problem(m.points.len() as u64, why);
                continue;
            }
        };
        for p in m.points.iter() {
            let meta = meta(opts, Signal::Metrics, resource, &p.attributes);
            let mut dims = BTreeMap::new();
            add_fields(&mut dims, resource, out);
            add_fields(&mut dims, &p.attributes, out);
            let t = p.time_unix_nano;
            // (measurement name, extra dimension, value) of this point.
            let mut measures: Vec<Measure> = Vec::new();
            match &p.value {
                PointValue::Int(i) => measures.push((name.clone(), None, Some(Number::from(*i)))),
                PointValue::Double(d) => measures.push((name.clone(), None, measure(*d))),
                PointValue::Histogram(h) => {
                    measures.push((format!("{name}_count"), None, Some(Number::from(h.count))));
                    if let Some(s) = h.sum.into_option() {
                        measures.push((format!("{name}_sum"), None, measure(s)));
                    }
                    if let Some(v) = h.min.into_option() {
                        measures.push((format!("{name}_min"), None, measure(v)));
                    }
                    if let Some(v) = h.max.into_option() {
                        measures.push((format!("{name}_max"), None, measure(v)));
                    }
                    if h.bucket_counts.len() == h.bounds.len() + 1 {
                        let mut cumulative = 0u64;
                        for (i, c) in h.bucket_counts.iter().enumerate() {
                            cumulative = cumulative.saturating_add(*c);
                            let le = h
                                .bounds
                                .get(i)
                                .map(|b| double_text(*b))
                                .unwrap_or_else(|| "+Inf".into());
                            measures.push((
                                format!("{name}_bucket"),
                                Some(("le", le)),
                                Some(Number::from(cumulative)),
                            ));
                        }
                    } else {
                        out.problem(
                            0,
                            format!(
                                "histogram {:?}: {} bucket counts for {} bounds, buckets not sent",
                                m.name.as_str(),
                                h.bucket_counts.len(),
                                h.bounds.len()
                            ),
                        );
                    }
                }
                PointValue::Summary(s) => {
                    measures.push((format!("{name}_count"), None, Some(Number::from(s.count))));
                    measures.push((format!("{name}_sum"), None, measure(s.sum)));
                    for q in s.quantiles.iter() {
                        measures.push((
                            name.clone(),
                            Some(("quantile", double_text(q.quantile))),
                            measure(q.value),
                        ));
                    }
                }
            }
            let mut counted = false;
            let mut bad = false;
            for (mname, extra, value) in measures {
                let Some(value) = value else {
                    bad = true;
                    continue;
                };
                let key = format!("metric_name:{mname}");
                match extra {
                    None => groups.add(t, &meta, &dims, key, value, !counted),
                    Some((k, v)) => {
                        let mut d = dims.clone();
                        d.insert(k.to_string(), v);
                        groups.add(t, &meta, &d, key, value, !counted);
                    }
                }
                counted = true;
            }
            if bad {
                // The point is sent without its non-finite measurements; it is only
                // counted as dropped when nothing of it was left.
                let why = format!(
                    "metric {:?}: NaN or infinite value not sent (Splunk metrics must be finite numbers)",
                    m.name.as_str()
                );
                out.problem(u64::from(!counted), why);
            }
        }
    }
    for g in groups.groups {
        let mut env = envelope(g.time, &g.meta);
        env.insert("event".into(), Value::String("metric".into()));
        let mut fields: Map<String, Value> = g
            .dims
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        for (k, v) in g.values {
            fields.insert(k, Value::Number(v));
        }
        env.insert("fields".into(), Value::Object(fields));
        out.push(Value::Object(env), g.items, opts.max_event_bytes, "metric");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfo_plugin_api::{
        HistogramValue, MetricKind, Quantile, Resource, SpanEvent, SummaryValue, Temporality,
    };

    fn opts() -> Options {
        Options {
            index: String::new(),
            metrics_index: String::new(),
            source: "tfo-agent".into(),
            source_types: SourceTypes::default(),
            host: String::new(),
            metrics: true,
            logs: true,
            traces: true,
            max_event_bytes: 1 << 20,
        }
    }

    fn values(e: &Encoded) -> Vec<Value> {
        e.events
            .iter()
            .map(|ev| serde_json::from_slice(&ev.json).unwrap())
            .collect()
    }

    fn gauge(name: &str, t: u64, v: PointValue, attrs: Vec<KeyValue>) -> Metric {
        let mut m = Metric::gauge(name, "", t, 0.0, attrs);
        m.points[0].value = v;
        m
    }

    #[test]
    fn time_is_epoch_seconds_with_milliseconds() {
        assert_eq!(hec_time(0), None);
        assert_eq!(
            hec_time(1_426_279_439_000_000_000).unwrap().to_string(),
            "1426279439"
        );
        assert_eq!(
            hec_time(1_700_000_000_123_456_789).unwrap().to_string(),
            "1700000000.123"
        );
        assert_eq!(
            hec_time(1_700_000_000_100_000_000).unwrap().to_string(),
            "1700000000.1"
        );
        assert_eq!(
            hec_time(1_700_000_000_001_000_000).unwrap().to_string(),
            "1700000000.001"
        );
    }

    /// "Format events for HTTP Event Collector", the event metadata example:
    /// `{"time": 1426279439, "host": "localhost", "source": "random-data-generator",
    /// "sourcetype": "my_sample_data", "index": "main", "event": "Hello world!"}`.
    #[test]
    fn golden_event_metadata_example() {
        let batch = Batch {
            resource: Resource {
                attributes: vec![KeyValue::new("host.name", "localhost")].into(),
            },
            logs: vec![LogRecord {
                time_unix_nano: 1_426_279_439_000_000_000,
                observed_time_unix_nano: 0,
                severity_number: 0,
                severity_text: "".into(),
                body: "Hello world!".into(),
                attributes: vec![].into(),
                trace_id: [0; 16],
                span_id: [0; 8],
            }]
            .into(),
            ..Default::default()
        };
        let o = Options {
            index: "main".into(),
            source: "random-data-generator".into(),
            source_types: SourceTypes {
                logs: "my_sample_data".into(),
                ..SourceTypes::default()
            },
            ..opts()
        };
        let e = encode(&batch, &o);
        let want = json!({
            "time": 1426279439,
            "host": "localhost",
            "source": "random-data-generator",
            "sourcetype": "my_sample_data",
            "index": "main",
            "event": "Hello world!",
            "fields": {"host.name": "localhost"}
        });
        assert_eq!(values(&e), [want]);
        assert_eq!(e.events[0].items, 1);
    }

    /// The multiple-metric JSON format example of "Get metrics in from other
    /// sources" (three measurements sharing time, host, source, sourcetype and
    /// dimensions become one event).
    #[test]
    fn golden_multiple_metric_example() {
        let t = 1_486_683_865_000_000_000;
        let dims = || {
            vec![
                KeyValue::new("region", "us-west-1"),
                KeyValue::new("datacenter", "dc2"),
                KeyValue::new("rack", "63"),
                KeyValue::new("os", "Ubuntu16.10"),
                KeyValue::new("arch", "x64"),
                KeyValue::new("team", "LON"),
                KeyValue::new("service", "6"),
                KeyValue::new("service_version", "0"),
                KeyValue::new("service_environment", "test"),
                KeyValue::new("path", "/dev/sda1"),
                KeyValue::new("fstype", "ext3"),
            ]
        };
        let batch = Batch {
            metrics: vec![
                gauge("cpu.usr", t, PointValue::Double(11.12), dims()),
                gauge("cpu.sys", t, PointValue::Double(12.23), dims()),
                gauge("cpu.idle", t, PointValue::Double(13.34), dims()),
            ]
            .into(),
            ..Default::default()
        };
        let o = Options {
            host: "host_1.splunk.com".into(),
            source: "metrics".into(),
            source_types: SourceTypes {
                metrics: "perflog".into(),
                ..SourceTypes::default()
            },
            ..opts()
        };
        let e = encode(&batch, &o);
        let want = json!({
            "time": 1486683865,
            "event": "metric",
            "source": "metrics",
            "sourcetype": "perflog",
            "host": "host_1.splunk.com",
            "fields": {
                "region": "us-west-1",
                "datacenter": "dc2",
                "rack": "63",
                "os": "Ubuntu16.10",
                "arch": "x64",
                "team": "LON",
                "service": "6",
                "service_version": "0",
                "service_environment": "test",
                "path": "/dev/sda1",
                "fstype": "ext3",
                "metric_name:cpu.usr": 11.12,
                "metric_name:cpu.sys": 12.23,
                "metric_name:cpu.idle": 13.34
            }
        });
        assert_eq!(values(&e), [want]);
        assert_eq!(e.events[0].items, 3, "three points in one event");
        assert_eq!(e.dropped_items, 0);
    }

    #[test]
    fn different_dimensions_or_times_are_different_events() {
        let batch = Batch {
            metrics: vec![
                gauge(
                    "a",
                    1_000_000_000,
                    PointValue::Int(1),
                    vec![KeyValue::new("k", "1")],
                ),
                gauge(
                    "a",
                    1_000_000_000,
                    PointValue::Int(2),
                    vec![KeyValue::new("k", "2")],
                ),
                gauge(
                    "b",
                    2_000_000_000,
                    PointValue::Int(3),
                    vec![KeyValue::new("k", "1")],
                ),
                // Same name, same key as the first: must not overwrite it.
                gauge(
                    "a",
                    1_000_000_000,
                    PointValue::Int(4),
                    vec![KeyValue::new("k", "1")],
                ),
            ]
            .into(),
            ..Default::default()
        };
        let v = values(&encode(&batch, &opts()));
        assert_eq!(v.len(), 4, "{v:?}");
        assert_eq!(v[0]["fields"], json!({"k": "1", "metric_name:a": 1}));
        assert_eq!(v[1]["fields"], json!({"k": "2", "metric_name:a": 2}));
        assert_eq!(v[2]["time"], 2);
        assert_eq!(v[3]["fields"], json!({"k": "1", "metric_name:a": 4}));
    }

    #[test]
    fn histograms_and_summaries() {
        let t = 1_700_000_000_000_000_000;
        let mut h = gauge(
            "lat",
            t,
            PointValue::Histogram(HistogramValue {
                count: 3,
                sum: Some(333.0).into(),
                bounds: vec![10.0, 100.0].into(),
                bucket_counts: vec![1, 1, 1].into(),
                min: None.into(),
                max: Some(300.0).into(),
            }),
            vec![],
        );
        h.kind = MetricKind::Histogram;
        h.temporality = Temporality::Delta;
        let mut s = gauge(
            "rpc",
            t,
            PointValue::Summary(SummaryValue {
                count: 4,
                sum: 10.0,
                quantiles: vec![Quantile {
                    quantile: 0.5,
                    value: 2.0,
                }]
                .into(),
            }),
            vec![],
        );
        s.kind = MetricKind::Summary;
        let batch = Batch {
            metrics: vec![h, s].into(),
            ..Default::default()
        };
        let e = encode(&batch, &opts());
        let v = values(&e);
        let fields: Vec<&Value> = v.iter().map(|e| &e["fields"]).collect();
        assert_eq!(
            fields,
            [
                &json!({"metric_name:lat_count": 3, "metric_name:lat_sum": 333.0,
                        "metric_name:lat_max": 300.0, "metric_name:rpc_count": 4,
                        "metric_name:rpc_sum": 10.0}),
                &json!({"le": "10", "metric_name:lat_bucket": 1}),
                &json!({"le": "100", "metric_name:lat_bucket": 2}),
                &json!({"le": "+Inf", "metric_name:lat_bucket": 3}),
                &json!({"quantile": "0.5", "metric_name:rpc": 2.0}),
            ]
        );
        assert_eq!(e.events.iter().map(|e| e.items).sum::<u64>(), 2);
        assert_eq!(v[0]["sourcetype"], "tfo-agent:metric");
    }

    #[test]
    fn bad_metric_data_is_dropped_alone() {
        let t = 1_000_000_000;
        let batch = Batch {
            metrics: vec![
                gauge("ok", t, PointValue::Double(1.0), vec![]),
                gauge("nan", t, PointValue::Double(f64::NAN), vec![]),
                gauge("inf", t, PointValue::Double(f64::INFINITY), vec![]),
                gauge("9lives", t, PointValue::Double(1.0), vec![]),
                gauge("_hidden", t, PointValue::Double(1.0), vec![]),
                gauge(
                    "with space",
                    t,
                    PointValue::Double(2.0),
                    vec![
                        KeyValue::new("_internal", "x"),
                        KeyValue::new("metric_name:evil", "y"),
                        KeyValue::new("host", "h"),
                        KeyValue::new("two words", "z"),
                        KeyValue::new("___", "gone"),
                    ],
                ),
            ]
            .into(),
            ..Default::default()
        };
        let e = encode(&batch, &opts());
        assert_eq!(e.dropped_items, 4, "{:?}", e.problems);
        assert_eq!(e.problems.len(), 4, "{:?}", e.problems);
        let v = values(&e);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0]["fields"], json!({"metric_name:ok": 1.0}));
        assert_eq!(
            v[1]["fields"],
            json!({"internal": "x", "attr.metric_name:evil": "y", "attr.host": "h",
                   "two_words": "z", "metric_name:with_space": 2.0})
        );
        assert_eq!(e.renamed_keys, 5);
        let json = String::from_utf8(e.events[1].json.clone()).unwrap();
        assert!(!json.contains("NaN") && !json.contains("null"), "{json}");
    }

    #[test]
    fn a_histogram_sum_that_is_nan_keeps_the_rest_of_the_point() {
        let mut h = gauge(
            "lat",
            1_000_000_000,
            PointValue::Histogram(HistogramValue {
                count: 1,
                sum: Some(f64::NAN).into(),
                bounds: vec![].into(),
                bucket_counts: vec![1].into(),
                min: None.into(),
                max: None.into(),
            }),
            vec![],
        );
        h.kind = MetricKind::Histogram;
        let batch = Batch {
            metrics: vec![h].into(),
            ..Default::default()
        };
        let e = encode(&batch, &opts());
        assert_eq!(e.dropped_items, 0);
        assert_eq!(e.problems.len(), 1);
        let v = values(&e);
        assert_eq!(v[0]["fields"], json!({"metric_name:lat_count": 1}));
        assert_eq!(
            v[1]["fields"],
            json!({"le": "+Inf", "metric_name:lat_bucket": 1})
        );
    }

    fn log(body: AnyValue, attrs: Vec<KeyValue>) -> LogRecord {
        LogRecord {
            time_unix_nano: 0,
            observed_time_unix_nano: 1_700_000_000_250_000_000,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body,
            attributes: attrs.into(),
            trace_id: [0xab; 16],
            span_id: [0xcd; 8],
        }
    }

    #[test]
    fn logs_with_overrides_and_bad_records() {
        let batch = Batch {
            resource: Resource {
                attributes: vec![
                    KeyValue::new("service.name", "shop"),
                    KeyValue::new("com.splunk.index", "res-index"),
                ]
                .into(),
            },
            logs: vec![
                log(
                    "disk full".into(),
                    vec![KeyValue::new("com.splunk.sourcetype", "custom")],
                ),
                log("   ".into(), vec![]),
                log(
                    AnyValue::Int(42),
                    vec![KeyValue::new("host.name", "item-host")],
                ),
                log("x".repeat(2000).as_str().into(), vec![]),
                log(AnyValue::Double(f64::NAN), vec![]),
            ]
            .into(),
            ..Default::default()
        };
        let o = Options {
            index: "cfg-index".into(),
            max_event_bytes: 1500,
            ..opts()
        };
        let e = encode(&batch, &o);
        assert_eq!(e.dropped_items, 2, "{:?}", e.problems);
        let v = values(&e);
        assert_eq!(v.len(), 3);
        assert_eq!(
            v[0],
            json!({
                "time": 1700000000.25,
                "source": "tfo-agent",
                "sourcetype": "custom",
                "index": "res-index",
                "event": "disk full",
                "fields": {
                    "service.name": "shop",
                    "severity": "ERROR",
                    "severity_number": "17",
                    "trace_id": "abababababababababababababababab",
                    "span_id": "cdcdcdcdcdcdcdcd"
                }
            })
        );
        assert_eq!(v[1]["event"], 42);
        assert_eq!(v[1]["host"], "item-host");
        assert_eq!(v[1]["sourcetype"], "tfo-agent:log");
        assert_eq!(v[2]["event"], "NaN");
    }

    #[test]
    fn spans() {
        let span = Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: [0; 8],
            name: "GET /".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_012_500_000,
            status_code: StatusCode::Error,
            status_message: "boom".into(),
            attributes: vec![
                KeyValue::new("http.status_code", 500i64),
                KeyValue::new("ratio", f64::INFINITY),
            ]
            .into(),
            events: vec![SpanEvent {
                name: "retry".into(),
                time_unix_nano: 1_700_000_000_001_000_000,
                attributes: vec![KeyValue::new("n", 1i64)].into(),
            }]
            .into(),
        };
        let batch = Batch {
            resource: Resource {
                attributes: vec![KeyValue::new("service.name", "shop")].into(),
            },
            spans: vec![span].into(),
            ..Default::default()
        };
        let v = values(&encode(&batch, &opts()));
        assert_eq!(
            v,
            [json!({
                "time": 1700000000,
                "source": "tfo-agent",
                "sourcetype": "tfo-agent:span",
                "event": {
                    "trace_id": "01010101010101010101010101010101",
                    "span_id": "0202020202020202",
                    "parent_span_id": "",
                    "name": "GET /",
                    "kind": "SPAN_KIND_SERVER",
                    "start_time": 1700000000000000000u64,
                    "end_time": 1700000000012500000u64,
                    "duration_ms": 12.5,
                    "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
                    "attributes": {"http.status_code": 500, "ratio": "+Inf"},
                    "events": [{"name": "retry", "time": 1700000000001000000u64, "attributes": {"n": 1}}]
                },
                "fields": {"service.name": "shop", "trace_id": "01010101010101010101010101010101"}
            })]
        );
    }

    #[test]
    fn disabled_signals_are_not_encoded() {
        let batch = Batch {
            metrics: vec![gauge("a", 1, PointValue::Int(1), vec![])].into(),
            logs: vec![log("x".into(), vec![])].into(),
            ..Default::default()
        };
        let e = encode(
            &batch,
            &Options {
                metrics: false,
                ..opts()
            },
        );
        assert_eq!(e.events.len(), 1);
        assert_eq!(e.disabled_items, 1);
    }

    #[test]
    fn field_names() {
        assert_eq!(field_name("a.b"), Some(("a.b".into(), false)));
        assert_eq!(field_name("_a"), Some(("a".into(), true)));
        assert_eq!(field_name("index"), Some(("attr.index".into(), true)));
        assert_eq!(
            field_name("metric_name"),
            Some(("attr.metric_name".into(), true))
        );
        assert_eq!(field_name("a\tb"), Some(("a_b".into(), true)));
        assert_eq!(field_name(" "), None);
        assert_eq!(field_name(""), None);
        assert!(metric_name("").is_err());
        assert_eq!(metric_name("a b").unwrap(), "a_b");
    }
}
