//! What the sink publishes: a batch becomes one MQTT message per item (metric data
//! point, span, log record), each with a topic rendered from the `topic` template.
//! Pure functions, pinned by golden tests.
//!
//! ## Topics
//! Placeholders of the template: `{type}` = `metrics`, `logs` or `traces`; `{name}` =
//! the metric name, the span name, or the log record's severity text in lower case
//! (`unspecified` when empty); `{host}` = resource attribute `host.name`; `{service}`
//! = resource attribute `service.name` (`unknown` when absent or empty). In a
//! substituted value, the characters MQTT gives a meaning to in topic names (`/`
//! level separator, `+` and `#` wildcards, NUL) become `_`, so one value is always one
//! topic level and never a wildcard (MQTT 3.1.1 §4.7,
//! <https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html>).
//!
//! ## `format: json`
//! One JSON object per item ([`metric_json`], [`span_json`], [`log_json`]); keys
//! always come out in the order documented in `docs/integrations/mqtt.md`:
//! - attributes and the resource are objects (`{"key": value}`; with duplicate keys
//!   the last one wins; keys sorted);
//! - integers are JSON integers, doubles JSON numbers, and the doubles JSON cannot
//!   carry are the strings `"NaN"`, `"Infinity"`, `"-Infinity"` (as proto3 JSON);
//!   bytes are standard base64;
//! - trace and span ids are lowercase hex; an all-zero parent span id and all-zero
//!   ids on a log record are omitted.
//!
//! ## `format: otlp`
//! One message per signal present in the batch, whose payload is the
//! protobuf-encoded OTLP export request of that signal (`ExportMetricsServiceRequest`,
//! `ExportTraceServiceRequest`, `ExportLogsServiceRequest` of opentelemetry-proto,
//! <https://github.com/open-telemetry/opentelemetry-proto>), built by the encoder the
//! otlp exporter uses ([`tfo_plugin_common::otlp`]): one resource, items grouped by
//! instrumentation scope. `{type}` is the signal (`metrics`, `traces`, `logs`) and
//! `{name}` is `otlp`, since one message carries many items. Metric points whose value
//! does not fit their metric's kind are left out and counted as skipped.
//!
//! ## `format: influx`
//! InfluxDB line protocol, one line per metric data point, following the reference
//! <https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/>
//! (syntax, data types, special characters) and laid out like Telegraf's Prometheus
//! "metric version 1" schema, which InfluxDB documents for Prometheus-style data
//! (<https://docs.influxdata.com/influxdb/v2/reference/prometheus-metrics/>):
//! measurement = metric name; tags = resource attributes, then point attributes (a
//! point attribute wins over a resource attribute of the same key), sorted by key as
//! the reference recommends; fields: a gauge or non-monotonic sum is `gauge`, a
//! monotonic sum `counter` (integer points as integers, `5i`); a histogram has one
//! field per bucket upper bound holding the cumulative count (`0.5=3`, `+Inf=6`)
//! plus `count` and `sum`; a summary one field per quantile plus `count` and `sum`;
//! the timestamp is the point's, in nanoseconds (left out when zero, so the server
//! stamps it). Escaping: commas and spaces in the measurement, commas, equal signs
//! and spaces in tag keys, tag values and field keys, each with a backslash. A
//! backslash that would otherwise form an escape sequence with the next character
//! (or end the element) is itself doubled, so no value can break the line; a
//! newline (which line protocol cannot carry) becomes an escaped space. NaN and
//! infinite values cannot be written and are left out; a point left without any
//! field, and every span and log record, is not published.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};
use tfo_plugin_api::{
    AnyValue, Batch, DataPoint, KeyValue, LogRecord, Metric, MetricKind, PointValue, Resource,
    Span, SpanKind, StatusCode, Temporality,
};
use tfo_plugin_common::{
    auth::base64,
    hex,
    otlp::{self, prost::Message as _},
};

use crate::config::{Format, TopicPart, TopicTemplate};

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Rendered topic.
    pub topic: String,
    /// Payload bytes (UTF-8 text in JSON and Influx, protobuf in OTLP).
    pub payload: Vec<u8>,
    /// Number of items (points, spans, log records) the message carries: 1, or a
    /// whole signal of the batch in OTLP format. `export` reports their sum.
    pub items: u64,
}

/// A batch turned into messages.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Messages, metric points first, then spans, then log records (OTLP: metrics,
    /// traces, logs).
    pub messages: Vec<Message>,
    /// Items that produce no message (spans and logs in Influx format, points
    /// without a representable value, OTLP points whose value does not fit their
    /// metric's kind), with the first reason seen.
    pub skipped: u64,
    /// Why the first skipped item was skipped.
    pub skip_reason: Option<String>,
}

impl Encoded {
    fn skip(&mut self, n: u64, why: impl FnOnce() -> String) {
        if n == 0 {
            return;
        }
        self.skipped += n;
        if self.skip_reason.is_none() {
            self.skip_reason = Some(why());
        }
    }
}

/// Encodes a whole batch in `format`, with topics from `template`.
pub fn encode_batch(batch: &Batch, template: &TopicTemplate, format: Format) -> Encoded {
    let res = ResourceInfo::new(&batch.resource);
    if format == Format::Otlp {
        return encode_otlp(batch, template, &res);
    }
    let mut out = Encoded::default();
    for metric in batch.metrics.iter() {
        let topic = render_topic(template, "metrics", &metric.name, &res);
        for point in metric.points.iter() {
            let payload = match format {
                Format::Json => Some(metric_json(&batch.resource, metric, point)),
                Format::Influx => influx_line(&batch.resource, metric, point),
                Format::Otlp => unreachable!("handled above"),
            };
            match payload {
                Some(p) => out.messages.push(Message {
                    topic: topic.clone(),
                    payload: p.into_bytes(),
                    items: 1,
                }),
                None => out.skip(1, || {
                    format!(
                        "metric {:?}: a point without a finite value cannot be written as line protocol",
                        metric.name.as_str()
                    )
                }),
            }
        }
    }
    match format {
        Format::Json => {
            for span in batch.spans.iter() {
                out.messages.push(Message {
                    topic: render_topic(template, "traces", &span.name, &res),
                    payload: span_json(&batch.resource, span).into_bytes(),
                    items: 1,
                });
            }
            for log in batch.logs.iter() {
                out.messages.push(Message {
                    topic: render_topic(template, "logs", &log_name(log), &res),
                    payload: log_json(&batch.resource, log).into_bytes(),
                    items: 1,
                });
            }
        }
        Format::Otlp => unreachable!("handled above"),
        Format::Influx => {
            let n = (batch.spans.len() + batch.logs.len()) as u64;
            out.skip(n, || {
                "format influx publishes metrics only; spans and log records are not published"
                    .to_string()
            });
        }
    }
    out
}

/// The `{name}` of every OTLP message: one message carries many items.
pub const OTLP_NAME: &str = "otlp";

/// `format: otlp`: one protobuf export request per signal present in the batch.
fn encode_otlp(batch: &Batch, template: &TopicTemplate, res: &ResourceInfo) -> Encoded {
    let mut out = Encoded::default();
    let mut push = |kind: &str, payload: Vec<u8>, items: u64| {
        out.messages.push(Message {
            topic: render_topic(template, kind, OTLP_NAME, res),
            payload,
            items,
        })
    };
    let (metrics, skipped) = otlp::metrics(batch);
    if let Some(req) = metrics {
        let points: u64 = batch.metrics.iter().map(|m| m.points.len() as u64).sum();
        push("metrics", req.encode_to_vec(), points - skipped);
    }
    if let Some(req) = otlp::traces(batch) {
        push("traces", req.encode_to_vec(), batch.spans.len() as u64);
    }
    if let Some(req) = otlp::logs(batch) {
        push("logs", req.encode_to_vec(), batch.logs.len() as u64);
    }
    out.skip(skipped, || {
        "OTLP cannot carry a metric point whose value does not fit its metric's kind".to_string()
    });
    out
}

/// The resource attributes the topic placeholders use.
struct ResourceInfo {
    host: String,
    service: String,
}

impl ResourceInfo {
    fn new(r: &Resource) -> Self {
        let get = |key: &str| {
            r.attributes
                .iter()
                .rev()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| any_text(&kv.value))
                .unwrap_or_default()
        };
        ResourceInfo {
            host: get("host.name"),
            service: get("service.name"),
        }
    }
}

fn log_name(log: &LogRecord) -> String {
    if log.severity_text.is_empty() {
        "unspecified".to_string()
    } else {
        log.severity_text.to_lowercase()
    }
}

/// Renders the template for one item.
fn render_topic(t: &TopicTemplate, kind: &str, name: &str, res: &ResourceInfo) -> String {
    let mut out = String::new();
    for part in &t.parts {
        match part {
            TopicPart::Lit(s) => out.push_str(s),
            TopicPart::Type => out.push_str(kind),
            TopicPart::Name => push_level(&mut out, name),
            TopicPart::Host => push_level(&mut out, &res.host),
            TopicPart::Service => push_level(&mut out, &res.service),
        }
    }
    out
}

/// Appends a substituted value as one safe topic level.
fn push_level(out: &mut String, value: &str) {
    if value.is_empty() {
        out.push_str("unknown");
        return;
    }
    out.extend(value.chars().map(|c| match c {
        '/' | '+' | '#' | '\0' => '_',
        c => c,
    }));
}

/// An attribute value as text (tag values, topic levels).
fn any_text(v: &AnyValue) -> String {
    match v {
        AnyValue::Str(s) => s.to_string(),
        AnyValue::Bool(b) => b.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => d.to_string(),
        AnyValue::Bytes(b) => base64(b),
    }
}

// ---------------------------------------------------------------------------
// JSON

/// A double as JSON: a number, or `"NaN"` / `"Infinity"` / `"-Infinity"`.
struct JsonF64(f64);

impl Serialize for JsonF64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v.is_infinite() {
            s.serialize_str(if v > 0.0 { "Infinity" } else { "-Infinity" })
        } else {
            s.serialize_f64(v)
        }
    }
}

/// An attribute or body value as JSON.
struct JsonAny<'a>(&'a AnyValue);

impl Serialize for JsonAny<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            AnyValue::Str(v) => s.serialize_str(v),
            AnyValue::Bool(v) => s.serialize_bool(*v),
            AnyValue::Int(v) => s.serialize_i64(*v),
            AnyValue::Double(v) => JsonF64(*v).serialize(s),
            AnyValue::Bytes(v) => s.serialize_str(&base64(v)),
        }
    }
}

/// Attributes as a JSON object with sorted keys (the last duplicate wins).
struct JsonAttrs<'a>(BTreeMap<&'a str, JsonAny<'a>>);

impl<'a> JsonAttrs<'a> {
    fn new(attrs: &'a [KeyValue]) -> Self {
        JsonAttrs(
            attrs
                .iter()
                .map(|kv| (kv.key.as_str(), JsonAny(&kv.value)))
                .collect(),
        )
    }
}

impl Serialize for JsonAttrs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum JsonValue<'a> {
    Int(i64),
    Double(JsonF64),
    Histogram {
        count: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        sum: Option<JsonF64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        min: Option<JsonF64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<JsonF64>,
        bounds: Vec<JsonF64>,
        bucket_counts: &'a [u64],
    },
    Summary {
        count: u64,
        sum: JsonF64,
        quantiles: Vec<JsonQuantile>,
    },
}

#[derive(Serialize)]
struct JsonQuantile {
    quantile: JsonF64,
    value: JsonF64,
}

#[derive(Serialize)]
struct JsonMetric<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    name: &'a str,
    description: &'a str,
    unit: &'a str,
    kind: &'static str,
    temporality: &'static str,
    monotonic: bool,
    time_unix_nano: u64,
    start_time_unix_nano: u64,
    attributes: JsonAttrs<'a>,
    value: JsonValue<'a>,
    resource: JsonAttrs<'a>,
}

/// The JSON message of one metric data point.
pub fn metric_json(resource: &Resource, metric: &Metric, point: &DataPoint) -> String {
    let value = match &point.value {
        PointValue::Int(v) => JsonValue::Int(*v),
        PointValue::Double(v) => JsonValue::Double(JsonF64(*v)),
        PointValue::Histogram(h) => JsonValue::Histogram {
            count: h.count,
            sum: h.sum.into_option().map(JsonF64),
            min: h.min.into_option().map(JsonF64),
            max: h.max.into_option().map(JsonF64),
            bounds: h.bounds.iter().map(|b| JsonF64(*b)).collect(),
            bucket_counts: &h.bucket_counts,
        },
        PointValue::Summary(s) => JsonValue::Summary {
            count: s.count,
            sum: JsonF64(s.sum),
            quantiles: s
                .quantiles
                .iter()
                .map(|q| JsonQuantile {
                    quantile: JsonF64(q.quantile),
                    value: JsonF64(q.value),
                })
                .collect(),
        },
    };
    let msg = JsonMetric {
        ty: "metric",
        name: &metric.name,
        description: &metric.description,
        unit: &metric.unit,
        kind: metric_kind(metric.kind),
        temporality: temporality(metric.temporality),
        monotonic: metric.is_monotonic,
        time_unix_nano: point.time_unix_nano,
        start_time_unix_nano: point.start_time_unix_nano,
        attributes: JsonAttrs::new(&point.attributes),
        value,
        resource: JsonAttrs::new(&resource.attributes),
    };
    to_json(&msg)
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    name: &'a str,
    time_unix_nano: u64,
    attributes: JsonAttrs<'a>,
}

#[derive(Serialize)]
struct JsonSpan<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<String>,
    name: &'a str,
    kind: &'static str,
    start_time_unix_nano: u64,
    end_time_unix_nano: u64,
    status_code: &'static str,
    status_message: &'a str,
    attributes: JsonAttrs<'a>,
    events: Vec<JsonEvent<'a>>,
    resource: JsonAttrs<'a>,
}

/// The JSON message of one span.
pub fn span_json(resource: &Resource, span: &Span) -> String {
    let msg = JsonSpan {
        ty: "span",
        trace_id: hex::encode(&span.trace_id),
        span_id: hex::encode(&span.span_id),
        parent_span_id: nonzero_hex(&span.parent_span_id),
        name: &span.name,
        kind: span_kind(span.kind),
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        status_code: status_code(span.status_code),
        status_message: &span.status_message,
        attributes: JsonAttrs::new(&span.attributes),
        events: span
            .events
            .iter()
            .map(|e| JsonEvent {
                name: &e.name,
                time_unix_nano: e.time_unix_nano,
                attributes: JsonAttrs::new(&e.attributes),
            })
            .collect(),
        resource: JsonAttrs::new(&resource.attributes),
    };
    to_json(&msg)
}

#[derive(Serialize)]
struct JsonLog<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    time_unix_nano: u64,
    observed_time_unix_nano: u64,
    severity_number: u8,
    severity_text: &'a str,
    body: JsonAny<'a>,
    attributes: JsonAttrs<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    span_id: Option<String>,
    resource: JsonAttrs<'a>,
}

/// The JSON message of one log record.
pub fn log_json(resource: &Resource, log: &LogRecord) -> String {
    let msg = JsonLog {
        ty: "log",
        time_unix_nano: log.time_unix_nano,
        observed_time_unix_nano: log.observed_time_unix_nano,
        severity_number: log.severity_number,
        severity_text: &log.severity_text,
        body: JsonAny(&log.body),
        attributes: JsonAttrs::new(&log.attributes),
        trace_id: nonzero_hex(&log.trace_id),
        span_id: nonzero_hex(&log.span_id),
        resource: JsonAttrs::new(&resource.attributes),
    };
    to_json(&msg)
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Serializing these types cannot fail: every map key is a string and no custom
    // serializer returns an error.
    serde_json::to_string(v).unwrap_or_default()
}

fn nonzero_hex(bytes: &[u8]) -> Option<String> {
    bytes.iter().any(|b| *b != 0).then(|| hex::encode(bytes))
}

/// Lower-case name of a metric kind, as in the JSON messages.
pub fn metric_kind(k: MetricKind) -> &'static str {
    match k {
        MetricKind::Gauge => "gauge",
        MetricKind::Sum => "sum",
        MetricKind::Histogram => "histogram",
        MetricKind::Summary => "summary",
    }
}

/// Lower-case name of a temporality, as in the JSON messages.
pub fn temporality(t: Temporality) -> &'static str {
    match t {
        Temporality::Unspecified => "unspecified",
        Temporality::Delta => "delta",
        Temporality::Cumulative => "cumulative",
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

// ---------------------------------------------------------------------------
// Influx line protocol

/// Characters escaped in a measurement.
const MEASUREMENT_SPECIAL: &[char] = &[',', ' '];
/// Characters escaped in tag keys, tag values and field keys.
const KEY_SPECIAL: &[char] = &[',', '=', ' '];

/// Appends `s` escaped for a line-protocol element whose special characters are
/// `special` (see the module docs).
fn escape_into(out: &mut String, s: &str, special: &[char]) {
    let chars: Vec<char> = s
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    for (i, &c) in chars.iter().enumerate() {
        if special.contains(&c) {
            out.push('\\');
            out.push(c);
        } else if c == '\\' {
            let next = chars.get(i + 1);
            let forms_escape = match next {
                None => true,
                Some(n) => *n == '\\' || special.contains(n),
            };
            out.push_str(if forms_escape { "\\\\" } else { "\\" });
        } else {
            out.push(c);
        }
    }
}

fn escaped(s: &str, special: &[char]) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s, special);
    out
}

/// A float as line protocol writes it (`1`, `0.5`, `-3.25`); `None` for NaN and
/// infinities, which line protocol cannot carry.
fn lp_float(v: f64) -> Option<String> {
    v.is_finite().then(|| format!("{v}"))
}

/// The line of one metric data point, or `None` when it has no finite value.
pub fn influx_line(resource: &Resource, metric: &Metric, point: &DataPoint) -> Option<String> {
    if metric.name.is_empty() {
        return None;
    }
    let mut fields: Vec<(String, String)> = Vec::new();
    let scalar_key = if metric.kind == MetricKind::Sum && metric.is_monotonic {
        "counter"
    } else {
        "gauge"
    };
    match &point.value {
        PointValue::Int(v) => fields.push((scalar_key.into(), format!("{v}i"))),
        PointValue::Double(v) => {
            if let Some(f) = lp_float(*v) {
                fields.push((scalar_key.into(), f));
            }
        }
        PointValue::Histogram(h) => {
            let mut cumulative = 0u64;
            for (i, bound) in h.bounds.iter().enumerate() {
                cumulative =
                    cumulative.saturating_add(h.bucket_counts.get(i).copied().unwrap_or(0));
                if let Some(key) = lp_float(*bound) {
                    fields.push((key, format!("{cumulative}")));
                }
            }
            fields.push(("+Inf".into(), format!("{}", h.count)));
            fields.push(("count".into(), format!("{}", h.count)));
            if let Some(sum) = h.sum.into_option().and_then(lp_float) {
                fields.push(("sum".into(), sum));
            }
        }
        PointValue::Summary(s) => {
            for q in s.quantiles.iter() {
                if let (Some(k), Some(v)) = (lp_float(q.quantile), lp_float(q.value)) {
                    fields.push((k, v));
                }
            }
            fields.push(("count".into(), format!("{}", s.count)));
            if let Some(sum) = lp_float(s.sum) {
                fields.push(("sum".into(), sum));
            }
        }
    }
    if fields.is_empty() {
        return None;
    }

    let mut tags: BTreeMap<&str, String> = BTreeMap::new();
    for kv in resource.attributes.iter().chain(point.attributes.iter()) {
        tags.insert(kv.key.as_str(), any_text(&kv.value));
    }

    let mut line = String::new();
    let name = metric.name.as_str();
    if let Some(rest) = name.strip_prefix('#') {
        // A line starting with '#' is a comment.
        line.push_str("\\#");
        escape_into(&mut line, rest, MEASUREMENT_SPECIAL);
    } else {
        escape_into(&mut line, name, MEASUREMENT_SPECIAL);
    }
    for (k, v) in &tags {
        if k.is_empty() || v.is_empty() {
            continue; // line protocol has no empty tag keys or values
        }
        line.push(',');
        escape_into(&mut line, k, KEY_SPECIAL);
        line.push('=');
        escape_into(&mut line, v, KEY_SPECIAL);
    }
    line.push(' ');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&escaped(k, KEY_SPECIAL));
        line.push('=');
        line.push_str(v);
    }
    if point.time_unix_nano != 0 {
        line.push(' ');
        line.push_str(&point.time_unix_nano.to_string());
    }
    Some(line)
}

/// The text `preview` shows: one `topic payload` line per message (for binary OTLP
/// payloads, their size and item count instead of the bytes).
pub fn preview(encoded: &Encoded, format: Format) -> String {
    let mut out = String::new();
    for m in &encoded.messages {
        out.push_str(&m.topic);
        out.push(' ');
        if format == Format::Otlp {
            out.push_str(&format!(
                "<OTLP protobuf, {} bytes, {} item(s)>",
                m.payload.len(),
                m.items
            ));
        } else {
            out.push_str(&String::from_utf8_lossy(&m.payload));
        }
        out.push('\n');
    }
    if encoded.skipped > 0 {
        out.push_str(&format!(
            "# {} item(s) not published: {}\n",
            encoded.skipped,
            encoded.skip_reason.as_deref().unwrap_or("")
        ));
    }
    out
}

#[cfg(test)]
mod tests;
