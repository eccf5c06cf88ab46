//! What the sink produces: a batch becomes Kafka records (key + value), one topic per
//! signal. Pure functions, pinned by golden tests (`encode/tests.rs`).
//!
//! ## Keys
//! - metrics: the metric name (UTF-8), so every point of one metric lands on one
//!   partition, in order;
//! - spans: the trace id as 32 lowercase hex digits, so a consumer sees a whole
//!   trace on one partition (what the OpenTelemetry Collector's kafka exporter
//!   does with `partition_traces_by_id`);
//! - logs: no key (librdkafka's partitioner spreads them).
//!
//! ## `encoding: otlp_proto` (default) and `otlp_json`
//! The value is an OTLP export request (`ExportMetricsServiceRequest`,
//! `ExportTraceServiceRequest`, `ExportLogsServiceRequest` of opentelemetry-proto,
//! <https://github.com/open-telemetry/opentelemetry-proto>), built by the shared
//! encoder [`tfo_plugin_common::otlp`] (the one the otlp exporter uses) from a part
//! of the batch: one record per metric name, one per trace id, and one for all
//! log records. `otlp_proto` is its protobuf encoding, `otlp_json` its OTLP/JSON
//! encoding (<https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding>:
//! lowerCamelCase keys, enums as integers, 64-bit integers as strings, trace and
//! span ids as hex, `"NaN"`/`"Infinity"` for non-finite doubles).
//!
//! A record whose key + value would exceed the size limit
//! (`max_message_bytes` minus [`RECORD_OVERHEAD`]) is split: its items are cut in
//! two halves, each encoded again, until every part fits. One item that does not fit
//! alone (a 2 MB log body, say) is left out and counted in [`Encoded::too_big`];
//! the rest of the batch is still sent. Metric points whose value does not fit
//! their metric's kind are left out by the OTLP encoder and counted in
//! [`Encoded::skipped`].
//!
//! ## `encoding: json`
//! One JSON object per metric data point, span or log record ([`point_json`],
//! [`span_json`], [`log_json`]), the shape the Go agent meant to send, carrying
//! everything in the model: attributes and the resource are objects; integers are
//! JSON integers, doubles JSON numbers and the doubles JSON cannot carry the
//! strings `"NaN"`, `"Infinity"`, `"-Infinity"`; bytes are standard base64; ids are
//! lowercase hex (all-zero ids are left out). An object larger than the limit is
//! left out and counted in [`Encoded::too_big`].

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use tfo_plugin_api::{
    AnyValue, Batch, DataPoint, KeyValue, LogRecord, Metric, MetricKind, PointValue, Span,
    SpanKind, StatusCode, Temporality,
};
use tfo_plugin_common::{auth::base64, otlp};

use tfo_plugin_common::otlp_json::{JsonCodec, OtlpMessage};

use crate::config::Encoding;

/// Bytes reserved per record for what Kafka adds around key and value (record
/// header varints, timestamp, record-batch header), so a record librdkafka
/// frames never exceeds `message.max.bytes`.
pub const RECORD_OVERHEAD: usize = 256;

/// The signal a record carries; it selects the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    /// Metrics.
    Metrics,
    /// Spans.
    Traces,
    /// Log records.
    Logs,
}

impl Signal {
    /// `metrics`, `traces`, `logs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Traces => "traces",
            Signal::Logs => "logs",
        }
    }
}

/// One Kafka record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Which topic.
    pub signal: Signal,
    /// Message key, if any.
    pub key: Option<Vec<u8>>,
    /// Message value.
    pub payload: Vec<u8>,
    /// Items (metric points, spans, log records) in the value; `export` reports
    /// the sum over delivered records.
    pub items: u64,
}

/// A batch turned into records.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Records: metrics first, then spans, then logs.
    pub records: Vec<Record>,
    /// Items left out because one alone exceeds the size limit.
    pub too_big: u64,
    /// Items left out because the encoding cannot carry them (OTLP: a point
    /// whose value does not fit its metric's kind).
    pub skipped: u64,
    /// Why the first item was left out.
    pub first_problem: Option<String>,
}

impl Encoded {
    fn problem(&mut self, why: impl FnOnce() -> String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(why());
        }
    }
}

/// Turns batches into records for one instance (holds the OTLP/JSON descriptors
/// when that encoding is used).
#[derive(Debug, Clone)]
pub struct Encoder {
    encoding: Encoding,
    /// Largest key + value.
    limit: usize,
    json: Option<JsonCodec>,
}

/// What one encoded part of a batch holds.
struct Part {
    payload: Option<Vec<u8>>,
    items: u64,
    skipped: u64,
}

impl Encoder {
    /// An encoder for `encoding` keeping every record within `max_message_bytes`.
    pub fn new(encoding: Encoding, max_message_bytes: usize) -> Result<Self, String> {
        let json = match encoding {
            Encoding::OtlpJson => Some(JsonCodec::new()?),
            _ => None,
        };
        Ok(Encoder {
            encoding,
            limit: max_message_bytes.saturating_sub(RECORD_OVERHEAD).max(1),
            json,
        })
    }

    /// Largest key + value this encoder produces.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Encodes a whole batch.
    pub fn encode(&self, batch: &Batch) -> Encoded {
        let mut out = Encoded::default();
        match self.encoding {
            Encoding::Json => self.encode_json(batch, &mut out),
            Encoding::OtlpProto | Encoding::OtlpJson => self.encode_otlp(batch, &mut out),
        }
        out
    }

    // -----------------------------------------------------------------------
    // OTLP

    fn encode_otlp(&self, batch: &Batch, out: &mut Encoded) {
        // Metrics: one record per metric name (several Metric entries may share one).
        let mut by_name: Vec<(&str, Vec<(usize, usize)>)> = Vec::new();
        for (mi, m) in batch.metrics.iter().enumerate() {
            let refs = (0..m.points.len()).map(|pi| (mi, pi));
            match by_name.iter_mut().find(|(n, _)| *n == m.name.as_str()) {
                Some((_, v)) => v.extend(refs),
                None => by_name.push((m.name.as_str(), refs.collect())),
            }
        }
        for (name, points) in by_name {
            let key = name.as_bytes().to_vec();
            self.split(Signal::Metrics, &key, &points, out, &|part| {
                self.otlp_metrics(batch, part)
            });
        }
        // Spans: one record per trace id.
        let mut by_trace: Vec<([u8; 16], Vec<usize>)> = Vec::new();
        for (i, s) in batch.spans.iter().enumerate() {
            match by_trace.iter_mut().find(|(t, _)| *t == s.trace_id) {
                Some((_, v)) => v.push(i),
                None => by_trace.push((s.trace_id, vec![i])),
            }
        }
        for (trace, spans) in by_trace {
            let key = hex(&trace).into_bytes();
            self.split(Signal::Traces, &key, &spans, out, &|part| {
                let sub = Batch {
                    resource: batch.resource.clone(),
                    spans: part.iter().map(|i| batch.spans[*i].clone()).collect(),
                    ..Batch::default()
                };
                let payload = otlp::traces(&sub).map(|r| self.otlp_bytes(&r));
                Part {
                    payload,
                    items: part.len() as u64,
                    skipped: 0,
                }
            });
        }
        // Logs: all in one record, unkeyed.
        let logs: Vec<usize> = (0..batch.logs.len()).collect();
        if !logs.is_empty() {
            self.split(Signal::Logs, &[], &logs, out, &|part| {
                let sub = Batch {
                    resource: batch.resource.clone(),
                    logs: part.iter().map(|i| batch.logs[*i].clone()).collect(),
                    ..Batch::default()
                };
                let payload = otlp::logs(&sub).map(|r| self.otlp_bytes(&r));
                Part {
                    payload,
                    items: part.len() as u64,
                    skipped: 0,
                }
            });
        }
    }

    /// The metrics request of some points of `batch`, each `(metric, point)`.
    fn otlp_metrics(&self, batch: &Batch, part: &[(usize, usize)]) -> Part {
        let mut metrics: Vec<Metric> = Vec::new();
        let mut last = None;
        for &(mi, pi) in part {
            let point = batch.metrics[mi].points[pi].clone();
            if last == Some(mi) {
                if let Some(m) = metrics.last_mut() {
                    m.points.push(point);
                }
            } else {
                let mut m = batch.metrics[mi].clone();
                m.points = vec![point].into();
                metrics.push(m);
                last = Some(mi);
            }
        }
        let sub = Batch {
            resource: batch.resource.clone(),
            metrics: metrics.into(),
            ..Batch::default()
        };
        let (req, skipped) = otlp::metrics(&sub);
        Part {
            payload: req.map(|r| self.otlp_bytes(&r)),
            items: part.len() as u64 - skipped,
            skipped,
        }
    }

    fn otlp_bytes<T: OtlpMessage>(&self, msg: &T) -> Vec<u8> {
        match &self.json {
            // The descriptors and the generated types come from one crate version
            // (checked in `JsonCodec::new`), so encoding cannot fail; an empty
            // request is the harmless answer if it ever did.
            Some(codec) => codec.encode(msg).unwrap_or_else(|_| b"{}".to_vec()),
            None => msg.encode_to_vec(),
        }
    }

    /// Encodes `pieces` as one record, or in halves until every record fits.
    fn split<T: Copy>(
        &self,
        signal: Signal,
        key: &[u8],
        pieces: &[T],
        out: &mut Encoded,
        build: &dyn Fn(&[T]) -> Part,
    ) {
        if pieces.is_empty() {
            return;
        }
        let part = build(pieces);
        out.skipped += part.skipped;
        if part.skipped > 0 {
            out.problem(|| {
                "OTLP cannot carry a metric point whose value does not fit its metric's kind"
                    .to_string()
            });
        }
        let Some(payload) = part.payload else {
            return;
        };
        if key.len() + payload.len() <= self.limit {
            out.records.push(Record {
                signal,
                key: (!key.is_empty()).then(|| key.to_vec()),
                payload,
                items: part.items,
            });
            return;
        }
        if pieces.len() == 1 {
            out.too_big += part.items;
            let (len, limit) = (key.len() + payload.len(), self.limit);
            out.problem(|| {
                format!(
                    "one {} item encodes to {len} bytes, over the limit of {limit} (max_message_bytes minus {RECORD_OVERHEAD})",
                    signal.as_str()
                )
            });
            return;
        }
        // The skipped points are counted again in the halves.
        out.skipped -= part.skipped;
        let (a, b) = pieces.split_at(pieces.len() / 2);
        self.split(signal, key, a, out, build);
        self.split(signal, key, b, out, build);
    }

    // -----------------------------------------------------------------------
    // Plain JSON

    fn encode_json(&self, batch: &Batch, out: &mut Encoded) {
        let resource = attrs_json(&batch.resource.attributes);
        let mut push = |signal: Signal, key: Option<Vec<u8>>, value: Value| {
            let payload = serde_json::to_vec(&value).unwrap_or_default();
            let len = payload.len() + key.as_ref().map_or(0, Vec::len);
            if len > self.limit {
                out.too_big += 1;
                let limit = self.limit;
                out.problem(|| {
                    format!(
                        "one {} item encodes to {len} bytes, over the limit of {limit} (max_message_bytes minus {RECORD_OVERHEAD})",
                        signal.as_str()
                    )
                });
                return;
            }
            out.records.push(Record {
                signal,
                key,
                payload,
                items: 1,
            });
        };
        for m in batch.metrics.iter() {
            for p in m.points.iter() {
                push(
                    Signal::Metrics,
                    Some(m.name.as_bytes().to_vec()),
                    point_json(&resource, m, p),
                );
            }
        }
        for s in batch.spans.iter() {
            push(
                Signal::Traces,
                Some(hex(&s.trace_id).into_bytes()),
                span_json(&resource, s),
            );
        }
        for l in batch.logs.iter() {
            push(Signal::Logs, None, log_json(&resource, l));
        }
    }
}

/// Lowercase hex of `bytes` (the shared helper).
pub use tfo_plugin_common::hex::encode as hex;

/// A double as JSON: a number, or `"NaN"` / `"Infinity"` / `"-Infinity"`.
pub fn f64_json(v: f64) -> Value {
    if v.is_nan() {
        Value::from("NaN")
    } else if v.is_infinite() {
        Value::from(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        Value::from(v)
    }
}

fn any_json(v: &AnyValue) -> Value {
    match v {
        AnyValue::Str(s) => Value::from(s.as_str()),
        AnyValue::Bool(b) => Value::from(*b),
        AnyValue::Int(i) => Value::from(*i),
        AnyValue::Double(d) => f64_json(*d),
        AnyValue::Bytes(b) => Value::from(base64(b)),
    }
}

/// Attributes as an object with sorted keys (the last duplicate wins).
fn attrs_json(attrs: &[KeyValue]) -> Value {
    let sorted: BTreeMap<&str, Value> = attrs
        .iter()
        .map(|kv| (kv.key.as_str(), any_json(&kv.value)))
        .collect();
    Value::Object(
        sorted
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Map<_, _>>(),
    )
}

fn kind_name(k: MetricKind) -> &'static str {
    match k {
        MetricKind::Gauge => "gauge",
        MetricKind::Sum => "sum",
        MetricKind::Histogram => "histogram",
        MetricKind::Summary => "summary",
    }
}

fn temporality_name(t: Temporality) -> &'static str {
    match t {
        Temporality::Unspecified => "unspecified",
        Temporality::Delta => "delta",
        Temporality::Cumulative => "cumulative",
    }
}

/// One metric data point as plain JSON.
pub fn point_json(resource: &Value, m: &Metric, p: &DataPoint) -> Value {
    let value = match &p.value {
        PointValue::Double(d) => f64_json(*d),
        PointValue::Int(i) => Value::from(*i),
        PointValue::Histogram(h) => {
            let mut o = Map::new();
            o.insert("count".into(), Value::from(h.count));
            if let Some(s) = h.sum.into_option() {
                o.insert("sum".into(), f64_json(s));
            }
            o.insert(
                "bounds".into(),
                Value::Array(h.bounds.iter().map(|b| f64_json(*b)).collect()),
            );
            o.insert(
                "bucket_counts".into(),
                Value::Array(h.bucket_counts.iter().map(|c| Value::from(*c)).collect()),
            );
            if let Some(v) = h.min.into_option() {
                o.insert("min".into(), f64_json(v));
            }
            if let Some(v) = h.max.into_option() {
                o.insert("max".into(), f64_json(v));
            }
            Value::Object(o)
        }
        PointValue::Summary(s) => json!({
            "count": s.count,
            "sum": f64_json(s.sum),
            "quantiles": s.quantiles.iter().map(|q| json!({
                "quantile": f64_json(q.quantile),
                "value": f64_json(q.value),
            })).collect::<Vec<_>>(),
        }),
    };
    let mut o = Map::new();
    o.insert("name".into(), Value::from(m.name.as_str()));
    if !m.description.is_empty() {
        o.insert("description".into(), Value::from(m.description.as_str()));
    }
    o.insert("unit".into(), Value::from(m.unit.as_str()));
    o.insert("type".into(), Value::from(kind_name(m.kind)));
    if matches!(m.kind, MetricKind::Sum | MetricKind::Histogram) {
        o.insert(
            "temporality".into(),
            Value::from(temporality_name(m.temporality)),
        );
    }
    if m.kind == MetricKind::Sum {
        o.insert("monotonic".into(), Value::from(m.is_monotonic));
    }
    o.insert("value".into(), value);
    if p.start_time_unix_nano != 0 {
        o.insert(
            "start_time_unix_nano".into(),
            Value::from(p.start_time_unix_nano),
        );
    }
    o.insert("time_unix_nano".into(), Value::from(p.time_unix_nano));
    o.insert("attributes".into(), attrs_json(&p.attributes));
    o.insert("resource".into(), resource.clone());
    Value::Object(o)
}

fn span_kind_name(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

fn status_name(c: StatusCode) -> &'static str {
    match c {
        StatusCode::Unset => "unset",
        StatusCode::Ok => "ok",
        StatusCode::Error => "error",
    }
}

fn is_zero(id: &[u8]) -> bool {
    id.iter().all(|b| *b == 0)
}

/// One span as plain JSON.
pub fn span_json(resource: &Value, s: &Span) -> Value {
    let mut o = Map::new();
    o.insert("trace_id".into(), Value::from(hex(&s.trace_id)));
    o.insert("span_id".into(), Value::from(hex(&s.span_id)));
    if !is_zero(&s.parent_span_id) {
        o.insert("parent_span_id".into(), Value::from(hex(&s.parent_span_id)));
    }
    o.insert("name".into(), Value::from(s.name.as_str()));
    o.insert("kind".into(), Value::from(span_kind_name(s.kind)));
    o.insert(
        "start_time_unix_nano".into(),
        Value::from(s.start_time_unix_nano),
    );
    o.insert(
        "end_time_unix_nano".into(),
        Value::from(s.end_time_unix_nano),
    );
    let mut status = Map::new();
    status.insert("code".into(), Value::from(status_name(s.status_code)));
    if !s.status_message.is_empty() {
        status.insert("message".into(), Value::from(s.status_message.as_str()));
    }
    o.insert("status".into(), Value::Object(status));
    o.insert("attributes".into(), attrs_json(&s.attributes));
    o.insert(
        "events".into(),
        Value::Array(
            s.events
                .iter()
                .map(|e| {
                    json!({
                        "name": e.name.as_str(),
                        "time_unix_nano": e.time_unix_nano,
                        "attributes": attrs_json(&e.attributes),
                    })
                })
                .collect(),
        ),
    );
    o.insert("resource".into(), resource.clone());
    Value::Object(o)
}

/// One log record as plain JSON.
pub fn log_json(resource: &Value, l: &LogRecord) -> Value {
    let mut o = Map::new();
    o.insert("time_unix_nano".into(), Value::from(l.time_unix_nano));
    o.insert(
        "observed_time_unix_nano".into(),
        Value::from(l.observed_time_unix_nano),
    );
    o.insert("severity_number".into(), Value::from(l.severity_number));
    o.insert(
        "severity_text".into(),
        Value::from(l.severity_text.as_str()),
    );
    o.insert("body".into(), any_json(&l.body));
    o.insert("attributes".into(), attrs_json(&l.attributes));
    if !is_zero(&l.trace_id) {
        o.insert("trace_id".into(), Value::from(hex(&l.trace_id)));
    }
    if !is_zero(&l.span_id) {
        o.insert("span_id".into(), Value::from(hex(&l.span_id)));
    }
    o.insert("resource".into(), resource.clone());
    Value::Object(o)
}

#[cfg(test)]
mod tests;
