//! OTLP messages (as received) -> the agent's data model ([`Batch`]). Pure functions,
//! unit-tested here and driven end to end by `tests/receiver.rs`.
//!
//! One [`Batch`] per `Resource*` entry of the request, carrying the resource's
//! attributes; resources that end up with no item are dropped (the spec's "Empty
//! Telemetry Envelopes": receivers MAY ignore them).
//!
//! Mapping rules, and what the agent's model cannot hold:
//! - the instrumentation scope becomes the attributes `otel.scope.name` and
//!   `otel.scope.version` (when non-empty) on every span, log record and data point,
//!   the convention OpenTelemetry uses for formats without scopes; the exporter
//!   ([`tfo_plugin_common::otlp`]) turns them back into scopes. Scope attributes and schema URLs
//!   are dropped;
//! - attribute values that are arrays or key-value lists (the model has no nesting)
//!   become their OTLP/JSON-like text: `["a",1]`, `{"k":"v"}`; an empty value becomes
//!   the empty string;
//! - metrics: gauge, sum (temporality and monotonicity kept), histogram, summary map
//!   one to one. **Exponential histograms are converted** to explicit-bucket
//!   histograms whose bounds are the exponential bucket boundaries
//!   (`±base^index`, `base = 2^(2^-scale)`) around a bucket `(.., zero_threshold]`
//!   for the zero count; count, sum, min, max and temporality are kept, the scale is
//!   not. Exemplars and metric metadata are dropped;
//! - spans keep ids, name, kind, times, status, attributes and events; links, trace
//!   state, flags and dropped-counts are dropped;
//! - logs keep times, severity, body, attributes and trace/span ids; `event_name`,
//!   when set, becomes the attribute `event.name`; flags are dropped.
//!
//! Invalid items are rejected one by one and counted, so the receiver can answer with
//! a `partial_success` (spec, "Partial Success"): a span whose trace id is not 16
//! bytes or whose span id is not 8 bytes (both are required), a parent span id or a
//! log's ids of the wrong length, a number data point without a value, a histogram
//! whose bucket counts do not match its bounds, an exponential histogram that does not
//! give increasing finite bounds, a metric without data.

use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    },
    common::v1::{self as otlp_common, any_value, InstrumentationScope},
    logs::v1 as otlp_logs,
    metrics::v1::{self as otlp_metrics, metric, number_data_point},
    resource::v1::Resource as OtlpResource,
    trace::v1 as otlp_trace,
};
use tfo_plugin_api::{
    AnyValue, Batch, DataPoint, HistogramValue, KeyValue, LogRecord, Metric, MetricKind,
    PointValue, Quantile, Resource, Span, SpanEvent, SpanKind, StatusCode, SummaryValue,
    Temporality,
};

/// The scope attributes, defined next to the encoder that reads them back.
pub use tfo_plugin_common::otlp::{SCOPE_NAME, SCOPE_VERSION};

/// How many distinct rejection reasons are kept for the response's `error_message`.
const MAX_REASONS: usize = 5;

/// The result of converting one request.
#[derive(Debug, Default)]
pub struct Converted {
    /// One batch per non-empty resource, in request order.
    pub batches: Vec<Batch>,
    /// Items (spans, data points, log records) that were rejected.
    pub rejected: u64,
    /// Why, deduplicated, at most a few.
    pub reasons: Vec<String>,
}

impl Converted {
    /// Counts `n` rejected items and keeps the reason (deduplicated, at most a few).
    pub fn reject(&mut self, n: u64, reason: impl Into<String>) {
        self.rejected += n;
        let reason = reason.into();
        if self.reasons.len() < MAX_REASONS && !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    fn push(&mut self, batch: Batch) {
        if !batch.is_empty() {
            self.batches.push(batch);
        }
    }

    /// Items in all batches.
    pub fn item_count(&self) -> u64 {
        self.batches.iter().map(Batch::item_count).sum()
    }

    /// The human-readable message for a partial success: the reasons joined.
    pub fn error_message(&self) -> String {
        self.reasons.join("; ")
    }
}

/// Converts an `ExportTraceServiceRequest`.
pub fn traces(req: ExportTraceServiceRequest) -> Converted {
    let mut out = Converted::default();
    for rs in req.resource_spans {
        let mut batch = Batch {
            resource: resource(rs.resource),
            ..Batch::default()
        };
        let mut spans = Vec::new();
        for ss in rs.scope_spans {
            let scope = scope_attributes(ss.scope.as_ref());
            for s in ss.spans {
                match span(s, &scope) {
                    Ok(s) => spans.push(s),
                    Err(reason) => out.reject(1, reason),
                }
            }
        }
        batch.spans = spans.into();
        out.push(batch);
    }
    out
}

/// Converts an `ExportLogsServiceRequest`.
pub fn logs(req: ExportLogsServiceRequest) -> Converted {
    let mut out = Converted::default();
    for rl in req.resource_logs {
        let mut batch = Batch {
            resource: resource(rl.resource),
            ..Batch::default()
        };
        let mut logs = Vec::new();
        for sl in rl.scope_logs {
            let scope = scope_attributes(sl.scope.as_ref());
            for l in sl.log_records {
                match log(l, &scope) {
                    Ok(l) => logs.push(l),
                    Err(reason) => out.reject(1, reason),
                }
            }
        }
        batch.logs = logs.into();
        out.push(batch);
    }
    out
}

/// Converts an `ExportMetricsServiceRequest`.
pub fn metrics(req: ExportMetricsServiceRequest) -> Converted {
    let mut out = Converted::default();
    for rm in req.resource_metrics {
        let mut batch = Batch {
            resource: resource(rm.resource),
            ..Batch::default()
        };
        let mut metrics = Vec::new();
        for sm in rm.scope_metrics {
            let scope = scope_attributes(sm.scope.as_ref());
            for m in sm.metrics {
                if let Some(m) = metric(m, &scope, &mut out) {
                    metrics.push(m);
                }
            }
        }
        batch.metrics = metrics.into();
        out.push(batch);
    }
    out
}

fn resource(r: Option<OtlpResource>) -> Resource {
    Resource {
        attributes: r
            .map(|r| attributes(r.attributes, &[]).into())
            .unwrap_or_default(),
    }
}

/// The scope as attributes to append to each item.
fn scope_attributes(scope: Option<&InstrumentationScope>) -> Vec<KeyValue> {
    let mut v = Vec::new();
    if let Some(s) = scope {
        if !s.name.is_empty() {
            v.push(KeyValue::new(SCOPE_NAME, s.name.as_str()));
        }
        if !s.version.is_empty() {
            v.push(KeyValue::new(SCOPE_VERSION, s.version.as_str()));
        }
    }
    v
}

/// OTLP attributes plus the scope attributes.
fn attributes(attrs: Vec<otlp_common::KeyValue>, scope: &[KeyValue]) -> Vec<KeyValue> {
    let mut v: Vec<KeyValue> = Vec::with_capacity(attrs.len() + scope.len());
    v.extend(attrs.into_iter().map(|kv| KeyValue {
        key: kv.key.into(),
        value: any_value(kv.value),
    }));
    v.extend(scope.iter().cloned());
    v
}

/// An OTLP `AnyValue` as the model's flat [`AnyValue`].
pub fn any_value(v: Option<otlp_common::AnyValue>) -> AnyValue {
    match v.and_then(|v| v.value) {
        None => AnyValue::Str("".into()),
        Some(any_value::Value::StringValue(s)) => AnyValue::Str(s.into()),
        Some(any_value::Value::BoolValue(b)) => AnyValue::Bool(b),
        Some(any_value::Value::IntValue(i)) => AnyValue::Int(i),
        Some(any_value::Value::DoubleValue(d)) => AnyValue::Double(d),
        Some(any_value::Value::BytesValue(b)) => AnyValue::Bytes(b.into()),
        Some(other) => AnyValue::Str(nested_json(Some(other)).to_string().into()),
    }
}

/// Arrays and key-value lists as JSON text: scalars as JSON values, bytes as
/// lowercase hex, key-value lists as objects.
fn nested_json(v: Option<any_value::Value>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        None | Some(any_value::Value::StringValueStrindex(_)) => J::Null,
        Some(any_value::Value::StringValue(s)) => J::String(s),
        Some(any_value::Value::BoolValue(b)) => J::Bool(b),
        Some(any_value::Value::IntValue(i)) => J::from(i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(d).map_or_else(|| J::String(d.to_string()), J::Number)
        }
        Some(any_value::Value::BytesValue(b)) => J::String(crate::hex::encode(&b)),
        Some(any_value::Value::ArrayValue(a)) => {
            J::Array(a.values.into_iter().map(|v| nested_json(v.value)).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => J::Object(
            kv.values
                .into_iter()
                .map(|kv| (kv.key, nested_json(kv.value.and_then(|v| v.value))))
                .collect(),
        ),
    }
}

fn id<const N: usize>(bytes: &[u8], what: &str, required: bool) -> Result<[u8; N], String> {
    if bytes.is_empty() && !required {
        return Ok([0; N]);
    }
    bytes
        .try_into()
        .map_err(|_| format!("{what} must be {N} bytes, got {}", bytes.len()))
}

fn span(s: otlp_trace::Span, scope: &[KeyValue]) -> Result<Span, String> {
    let trace_id = id::<16>(&s.trace_id, "span trace_id", true)?;
    let span_id = id::<8>(&s.span_id, "span span_id", true)?;
    let parent_span_id = id::<8>(&s.parent_span_id, "span parent_span_id", false)?;
    let (status_code, status_message) = match s.status {
        Some(st) => (status_code(st.code), st.message),
        None => (StatusCode::Unset, String::new()),
    };
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        name: s.name.into(),
        kind: span_kind(s.kind),
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        status_code,
        status_message: status_message.into(),
        attributes: attributes(s.attributes, scope).into(),
        events: s
            .events
            .into_iter()
            .map(|e| SpanEvent {
                name: e.name.into(),
                time_unix_nano: e.time_unix_nano,
                attributes: attributes(e.attributes, &[]).into(),
            })
            .collect::<Vec<_>>()
            .into(),
    })
}

/// OTLP `Span.SpanKind` number -> model; unknown numbers are `Unspecified`.
pub fn span_kind(k: i32) -> SpanKind {
    match k {
        1 => SpanKind::Internal,
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        _ => SpanKind::Unspecified,
    }
}

/// OTLP `Status.StatusCode` number -> model; unknown numbers are `Unset`.
pub fn status_code(c: i32) -> StatusCode {
    match c {
        1 => StatusCode::Ok,
        2 => StatusCode::Error,
        _ => StatusCode::Unset,
    }
}

fn log(l: otlp_logs::LogRecord, scope: &[KeyValue]) -> Result<LogRecord, String> {
    let trace_id = id::<16>(&l.trace_id, "log record trace_id", false)?;
    let span_id = id::<8>(&l.span_id, "log record span_id", false)?;
    let mut attrs = attributes(l.attributes, scope);
    if !l.event_name.is_empty() {
        attrs.push(KeyValue::new("event.name", l.event_name));
    }
    Ok(LogRecord {
        time_unix_nano: l.time_unix_nano,
        observed_time_unix_nano: l.observed_time_unix_nano,
        // 1..=24 are defined; anything else is "unspecified".
        severity_number: u8::try_from(l.severity_number)
            .ok()
            .filter(|n| *n <= 24)
            .unwrap_or(0),
        severity_text: l.severity_text.into(),
        body: any_value(l.body),
        attributes: attrs.into(),
        trace_id,
        span_id,
    })
}

/// OTLP `AggregationTemporality` number -> model.
pub fn temporality(t: i32) -> Temporality {
    match t {
        1 => Temporality::Delta,
        2 => Temporality::Cumulative,
        _ => Temporality::Unspecified,
    }
}

fn metric(m: otlp_metrics::Metric, scope: &[KeyValue], out: &mut Converted) -> Option<Metric> {
    let (kind, temporality, is_monotonic, points) = match m.data {
        None => {
            out.reject(0, format!("metric {:?} has no data", m.name));
            return None;
        }
        Some(metric::Data::Gauge(g)) => (
            MetricKind::Gauge,
            Temporality::Unspecified,
            false,
            number_points(g.data_points, scope, out),
        ),
        Some(metric::Data::Sum(s)) => (
            MetricKind::Sum,
            temporality(s.aggregation_temporality),
            s.is_monotonic,
            number_points(s.data_points, scope, out),
        ),
        Some(metric::Data::Histogram(h)) => (
            MetricKind::Histogram,
            temporality(h.aggregation_temporality),
            false,
            h.data_points
                .into_iter()
                .filter_map(|p| keep(histogram_point(p, scope), out))
                .collect(),
        ),
        Some(metric::Data::ExponentialHistogram(h)) => (
            MetricKind::Histogram,
            temporality(h.aggregation_temporality),
            false,
            h.data_points
                .into_iter()
                .filter_map(|p| keep(exponential_point(p, scope), out))
                .collect(),
        ),
        Some(metric::Data::Summary(s)) => (
            MetricKind::Summary,
            Temporality::Unspecified,
            false,
            s.data_points
                .into_iter()
                .map(|p| DataPoint {
                    attributes: attributes(p.attributes, scope).into(),
                    start_time_unix_nano: p.start_time_unix_nano,
                    time_unix_nano: p.time_unix_nano,
                    value: PointValue::Summary(SummaryValue {
                        count: p.count,
                        sum: p.sum,
                        quantiles: p
                            .quantile_values
                            .into_iter()
                            .map(|q| Quantile {
                                quantile: q.quantile,
                                value: q.value,
                            })
                            .collect::<Vec<_>>()
                            .into(),
                    }),
                })
                .collect(),
        ),
    };
    if points.is_empty() {
        return None;
    }
    Some(Metric {
        name: m.name.into(),
        description: m.description.into(),
        unit: m.unit.into(),
        kind,
        temporality,
        is_monotonic,
        points: points.into(),
    })
}

fn keep(r: Result<DataPoint, String>, out: &mut Converted) -> Option<DataPoint> {
    r.map_err(|reason| out.reject(1, reason)).ok()
}

fn number_points(
    points: Vec<otlp_metrics::NumberDataPoint>,
    scope: &[KeyValue],
    out: &mut Converted,
) -> Vec<DataPoint> {
    points
        .into_iter()
        .filter_map(|p| {
            let value = match p.value {
                Some(number_data_point::Value::AsDouble(d)) => PointValue::Double(d),
                Some(number_data_point::Value::AsInt(i)) => PointValue::Int(i),
                None => {
                    out.reject(1, "number data point has no value");
                    return None;
                }
            };
            Some(DataPoint {
                attributes: attributes(p.attributes, scope).into(),
                start_time_unix_nano: p.start_time_unix_nano,
                time_unix_nano: p.time_unix_nano,
                value,
            })
        })
        .collect()
}

fn histogram_point(
    p: otlp_metrics::HistogramDataPoint,
    scope: &[KeyValue],
) -> Result<DataPoint, String> {
    let (bounds, bucket_counts) = if p.bucket_counts.is_empty() {
        // Only count and sum were recorded: one bucket holding everything.
        (Vec::new(), vec![p.count])
    } else if p.bucket_counts.len() == p.explicit_bounds.len() + 1 {
        (p.explicit_bounds, p.bucket_counts)
    } else {
        return Err(format!(
            "histogram data point has {} bucket counts for {} bounds (want bounds + 1)",
            p.bucket_counts.len(),
            p.explicit_bounds.len()
        ));
    };
    Ok(DataPoint {
        attributes: attributes(p.attributes, scope).into(),
        start_time_unix_nano: p.start_time_unix_nano,
        time_unix_nano: p.time_unix_nano,
        value: PointValue::Histogram(HistogramValue {
            count: p.count,
            sum: p.sum.into(),
            bounds: bounds.into(),
            bucket_counts: bucket_counts.into(),
            min: p.min.into(),
            max: p.max.into(),
        }),
    })
}

fn exponential_point(
    p: otlp_metrics::ExponentialHistogramDataPoint,
    scope: &[KeyValue],
) -> Result<DataPoint, String> {
    let (bounds, bucket_counts) = exponential_buckets(&p)?;
    Ok(DataPoint {
        attributes: attributes(p.attributes, scope).into(),
        start_time_unix_nano: p.start_time_unix_nano,
        time_unix_nano: p.time_unix_nano,
        value: PointValue::Histogram(HistogramValue {
            count: p.count,
            sum: p.sum.into(),
            bounds: bounds.into(),
            bucket_counts: bucket_counts.into(),
            min: p.min.into(),
            max: p.max.into(),
        }),
    })
}

/// Explicit bounds and counts equivalent to an exponential histogram point.
///
/// Bucket `index` of the positive range covers `(base^index, base^(index+1)]`, of the
/// negative range `[-base^(index+1), -base^index)`, with `base = 2^(2^-scale)` (data
/// model, "ExponentialHistogram"). In increasing order: an empty `(-inf, lowest]`
/// bucket when there are negative buckets, the negative buckets from the largest
/// index down, the zero bucket `(.., zero_threshold]`, the positive buckets, and an
/// empty overflow bucket.
pub fn exponential_buckets(
    p: &otlp_metrics::ExponentialHistogramDataPoint,
) -> Result<(Vec<f64>, Vec<u64>), String> {
    const MAX_BUCKETS: usize = 16_384;
    let empty = Vec::new();
    let (neg_offset, neg) = p
        .negative
        .as_ref()
        .map_or((0, &empty), |b| (b.offset, &b.bucket_counts));
    let (pos_offset, pos) = p
        .positive
        .as_ref()
        .map_or((0, &empty), |b| (b.offset, &b.bucket_counts));
    if neg.len() + pos.len() > MAX_BUCKETS {
        return Err(format!(
            "exponential histogram has more than {MAX_BUCKETS} buckets"
        ));
    }
    if !(-10..=20).contains(&p.scale) {
        return Err(format!(
            "exponential histogram scale {} is outside -10..=20",
            p.scale
        ));
    }
    // base^index, computed as 2^(index * 2^-scale) to keep precision.
    let step = (-p.scale as f64).exp2();
    let boundary = |index: i64| (index as f64 * step).exp2();
    let mut bounds = Vec::with_capacity(neg.len() + pos.len() + 2);
    let mut counts = Vec::with_capacity(neg.len() + pos.len() + 3);
    if !neg.is_empty() {
        let top = neg_offset as i64 + neg.len() as i64;
        bounds.push(-boundary(top));
        counts.push(0);
        for (i, c) in neg.iter().enumerate().rev() {
            bounds.push(-boundary(neg_offset as i64 + i as i64));
            counts.push(*c);
        }
    }
    bounds.push(p.zero_threshold);
    counts.push(p.zero_count);
    for (i, c) in pos.iter().enumerate() {
        bounds.push(boundary(pos_offset as i64 + i as i64 + 1));
        counts.push(*c);
    }
    counts.push(0);
    let increasing = bounds.windows(2).all(|w| w[0] < w[1]);
    if !increasing || !bounds.iter().all(|b| b.is_finite()) {
        return Err(
            "exponential histogram buckets do not give increasing finite bounds".to_string(),
        );
    }
    Ok((bounds, counts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::{
        common::v1::{AnyValue as OAny, ArrayValue, KeyValueList},
        metrics::v1::exponential_histogram_data_point::Buckets,
    };

    fn kv(key: &str, v: any_value::Value) -> otlp_common::KeyValue {
        otlp_common::KeyValue {
            key: key.into(),
            value: Some(OAny { value: Some(v) }),
            ..Default::default()
        }
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    fn scope() -> Option<InstrumentationScope> {
        Some(InstrumentationScope {
            name: "lib".into(),
            version: "1.2".into(),
            ..Default::default()
        })
    }

    fn good_span(name: &str) -> otlp_trace::Span {
        otlp_trace::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn nested_values_become_json_text() {
        let arr = any_value::Value::ArrayValue(ArrayValue {
            values: vec![
                OAny {
                    value: Some(s("a")),
                },
                OAny {
                    value: Some(any_value::Value::IntValue(1)),
                },
                OAny {
                    value: Some(any_value::Value::BytesValue(vec![0xab, 1])),
                },
            ],
        });
        assert_eq!(
            any_value(Some(OAny { value: Some(arr) })),
            AnyValue::Str(r#"["a",1,"ab01"]"#.into())
        );
        let map = any_value::Value::KvlistValue(KeyValueList {
            values: vec![kv("k", s("v")), kv("n", any_value::Value::DoubleValue(0.5))],
        });
        assert_eq!(
            any_value(Some(OAny { value: Some(map) })),
            AnyValue::Str(r#"{"k":"v","n":0.5}"#.into())
        );
        assert_eq!(any_value(None), AnyValue::Str("".into()));
        assert_eq!(
            any_value(Some(OAny {
                value: Some(any_value::Value::BytesValue(vec![1, 2]))
            })),
            AnyValue::Bytes(vec![1, 2].into())
        );
    }

    #[test]
    fn spans_keep_ids_status_events_and_scope() {
        let mut sp = good_span("op");
        sp.parent_span_id = vec![3; 8];
        sp.kind = 3;
        sp.start_time_unix_nano = 10;
        sp.end_time_unix_nano = 20;
        sp.status = Some(otlp_trace::Status {
            code: 2,
            message: "boom".into(),
        });
        sp.attributes = vec![kv("http.method", s("GET"))];
        sp.events = vec![otlp_trace::span::Event {
            name: "exception".into(),
            time_unix_nano: 15,
            attributes: vec![kv("exception.type", s("E"))],
            ..Default::default()
        }];
        let req = ExportTraceServiceRequest {
            resource_spans: vec![otlp_trace::ResourceSpans {
                resource: Some(OtlpResource {
                    attributes: vec![kv("service.name", s("svc"))],
                    ..Default::default()
                }),
                scope_spans: vec![otlp_trace::ScopeSpans {
                    scope: scope(),
                    spans: vec![sp],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let c = traces(req);
        assert_eq!(c.rejected, 0);
        assert_eq!(c.batches.len(), 1);
        let b = &c.batches[0];
        assert_eq!(
            b.resource.attributes.as_slice(),
            [KeyValue::new("service.name", "svc")]
        );
        let sp = &b.spans[0];
        assert_eq!(sp.trace_id, [1; 16]);
        assert_eq!(sp.span_id, [2; 8]);
        assert_eq!(sp.parent_span_id, [3; 8]);
        assert_eq!(sp.kind, SpanKind::Client);
        assert_eq!(sp.status_code, StatusCode::Error);
        assert_eq!(sp.status_message.as_str(), "boom");
        assert_eq!((sp.start_time_unix_nano, sp.end_time_unix_nano), (10, 20));
        assert_eq!(
            sp.attributes.as_slice(),
            [
                KeyValue::new("http.method", "GET"),
                KeyValue::new(SCOPE_NAME, "lib"),
                KeyValue::new(SCOPE_VERSION, "1.2"),
            ]
        );
        assert_eq!(sp.events[0].name.as_str(), "exception");
        assert_eq!(sp.events[0].time_unix_nano, 15);
        assert_eq!(sp.events[0].attributes.len(), 1);
    }

    #[test]
    fn bad_span_ids_are_rejected_and_counted() {
        let mut no_trace = good_span("a");
        no_trace.trace_id.clear();
        let mut short_span = good_span("b");
        short_span.span_id = vec![1; 4];
        let mut bad_parent = good_span("c");
        bad_parent.parent_span_id = vec![1; 16];
        let req = ExportTraceServiceRequest {
            resource_spans: vec![otlp_trace::ResourceSpans {
                scope_spans: vec![otlp_trace::ScopeSpans {
                    spans: vec![no_trace, short_span, good_span("ok"), bad_parent],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let c = traces(req);
        assert_eq!(c.rejected, 3);
        assert_eq!(c.item_count(), 1);
        assert_eq!(c.batches[0].spans[0].name.as_str(), "ok");
        assert_eq!(c.reasons.len(), 3, "{:?}", c.reasons);
        assert!(c
            .error_message()
            .contains("trace_id must be 16 bytes, got 0"));
    }

    #[test]
    fn one_batch_per_resource_and_empty_resources_are_dropped() {
        let rs = |name: &str, spans: Vec<otlp_trace::Span>| otlp_trace::ResourceSpans {
            resource: Some(OtlpResource {
                attributes: vec![kv("service.name", s(name))],
                ..Default::default()
            }),
            scope_spans: vec![otlp_trace::ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        };
        let c = traces(ExportTraceServiceRequest {
            resource_spans: vec![
                rs("a", vec![good_span("1"), good_span("2")]),
                rs("empty", vec![]),
                rs("b", vec![good_span("3")]),
            ],
        });
        assert_eq!(c.batches.len(), 2);
        assert_eq!(c.batches[0].spans.len(), 2);
        assert_eq!(c.batches[1].spans.len(), 1);
        assert_eq!(c.item_count(), 3);
    }

    #[test]
    fn logs_keep_severity_body_and_ids() {
        let rec = otlp_logs::LogRecord {
            time_unix_nano: 5,
            observed_time_unix_nano: 6,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: Some(OAny {
                value: Some(s("disk full")),
            }),
            trace_id: vec![9; 16],
            span_id: vec![8; 8],
            event_name: "app.crash".into(),
            ..Default::default()
        };
        let uncorrelated = otlp_logs::LogRecord {
            severity_number: 99,
            ..Default::default()
        };
        let bad = otlp_logs::LogRecord {
            trace_id: vec![1; 3],
            ..Default::default()
        };
        let c = logs(ExportLogsServiceRequest {
            resource_logs: vec![otlp_logs::ResourceLogs {
                scope_logs: vec![otlp_logs::ScopeLogs {
                    scope: scope(),
                    log_records: vec![rec, uncorrelated, bad],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        });
        assert_eq!(c.rejected, 1);
        let l = &c.batches[0].logs;
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].severity_number, 17);
        assert_eq!(l[0].severity_text.as_str(), "ERROR");
        assert_eq!(l[0].body, AnyValue::Str("disk full".into()));
        assert_eq!((l[0].trace_id, l[0].span_id), ([9; 16], [8; 8]));
        assert_eq!((l[0].time_unix_nano, l[0].observed_time_unix_nano), (5, 6));
        assert_eq!(
            l[0].attributes.as_slice(),
            [
                KeyValue::new(SCOPE_NAME, "lib"),
                KeyValue::new(SCOPE_VERSION, "1.2"),
                KeyValue::new("event.name", "app.crash"),
            ]
        );
        assert_eq!(l[1].severity_number, 0);
        assert_eq!((l[1].trace_id, l[1].span_id), ([0; 16], [0; 8]));
    }

    fn metrics_req(ms: Vec<otlp_metrics::Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![otlp_metrics::ResourceMetrics {
                scope_metrics: vec![otlp_metrics::ScopeMetrics {
                    metrics: ms,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn num(v: Option<number_data_point::Value>) -> otlp_metrics::NumberDataPoint {
        otlp_metrics::NumberDataPoint {
            time_unix_nano: 7,
            start_time_unix_nano: 3,
            value: v,
            attributes: vec![kv("cpu", s("0"))],
            ..Default::default()
        }
    }

    fn named(name: &str, data: metric::Data) -> otlp_metrics::Metric {
        otlp_metrics::Metric {
            name: name.into(),
            unit: "s".into(),
            description: "d".into(),
            data: Some(data),
            ..Default::default()
        }
    }

    #[test]
    fn metric_kinds_temporality_and_monotonicity() {
        let c = metrics(metrics_req(vec![
            named(
                "g",
                metric::Data::Gauge(otlp_metrics::Gauge {
                    data_points: vec![num(Some(number_data_point::Value::AsDouble(1.5)))],
                }),
            ),
            named(
                "s",
                metric::Data::Sum(otlp_metrics::Sum {
                    data_points: vec![num(Some(number_data_point::Value::AsInt(4))), num(None)],
                    aggregation_temporality: 1,
                    is_monotonic: true,
                }),
            ),
            named(
                "h",
                metric::Data::Histogram(otlp_metrics::Histogram {
                    data_points: vec![
                        otlp_metrics::HistogramDataPoint {
                            count: 3,
                            sum: Some(6.0),
                            bucket_counts: vec![1, 2],
                            explicit_bounds: vec![1.0],
                            min: Some(0.5),
                            ..Default::default()
                        },
                        otlp_metrics::HistogramDataPoint {
                            count: 3,
                            bucket_counts: vec![1, 2],
                            explicit_bounds: vec![1.0, 2.0],
                            ..Default::default()
                        },
                        otlp_metrics::HistogramDataPoint {
                            count: 9,
                            ..Default::default()
                        },
                    ],
                    aggregation_temporality: 2,
                }),
            ),
            named(
                "q",
                metric::Data::Summary(otlp_metrics::Summary {
                    data_points: vec![otlp_metrics::SummaryDataPoint {
                        count: 2,
                        sum: 3.0,
                        quantile_values: vec![otlp_metrics::summary_data_point::ValueAtQuantile {
                            quantile: 0.5,
                            value: 1.0,
                        }],
                        ..Default::default()
                    }],
                }),
            ),
            otlp_metrics::Metric {
                name: "nodata".into(),
                ..Default::default()
            },
        ]));
        assert_eq!(c.rejected, 2, "{:?}", c.reasons);
        let m = &c.batches[0].metrics;
        assert_eq!(m.len(), 4);
        assert_eq!(
            (m[0].kind, m[0].temporality, m[0].is_monotonic),
            (MetricKind::Gauge, Temporality::Unspecified, false)
        );
        assert_eq!(m[0].points[0].value, PointValue::Double(1.5));
        assert_eq!(
            (
                m[0].points[0].start_time_unix_nano,
                m[0].points[0].time_unix_nano
            ),
            (3, 7)
        );
        assert_eq!(m[0].points[0].attributes[0], KeyValue::new("cpu", "0"));
        assert_eq!(
            (m[1].kind, m[1].temporality, m[1].is_monotonic),
            (MetricKind::Sum, Temporality::Delta, true)
        );
        assert_eq!(m[1].points.len(), 1);
        assert_eq!(m[1].points[0].value, PointValue::Int(4));
        assert_eq!(
            (m[2].kind, m[2].temporality),
            (MetricKind::Histogram, Temporality::Cumulative)
        );
        assert_eq!(m[2].points.len(), 2);
        let PointValue::Histogram(h) = &m[2].points[0].value else {
            panic!("not a histogram")
        };
        assert_eq!(h.bounds.as_slice(), [1.0]);
        assert_eq!(h.bucket_counts.as_slice(), [1, 2]);
        assert_eq!(h.sum.into_option(), Some(6.0));
        assert_eq!(h.min.into_option(), Some(0.5));
        assert_eq!(h.max.into_option(), None);
        let PointValue::Histogram(h) = &m[2].points[1].value else {
            panic!("not a histogram")
        };
        assert_eq!(h.bounds.len(), 0);
        assert_eq!(h.bucket_counts.as_slice(), [9]);
        assert_eq!(m[3].kind, MetricKind::Summary);
        let PointValue::Summary(q) = &m[3].points[0].value else {
            panic!("not a summary")
        };
        assert_eq!((q.count, q.sum), (2, 3.0));
        assert_eq!(q.quantiles[0].quantile, 0.5);
        assert!(c.error_message().contains("nodata"));
        assert!(c.error_message().contains("bucket counts"));
    }

    #[test]
    fn exponential_histograms_become_explicit_buckets() {
        // scale 0: base 2. Positive offset 0: (1,2], (2,4]; negative offset 1:
        // [-4,-2); zero bucket threshold 0.
        let p = otlp_metrics::ExponentialHistogramDataPoint {
            count: 10,
            sum: Some(1.0),
            scale: 0,
            zero_count: 2,
            positive: Some(Buckets {
                offset: 0,
                bucket_counts: vec![3, 4],
            }),
            negative: Some(Buckets {
                offset: 1,
                bucket_counts: vec![1],
            }),
            min: Some(-3.0),
            max: Some(3.5),
            ..Default::default()
        };
        let (bounds, counts) = exponential_buckets(&p).unwrap();
        assert_eq!(bounds, [-4.0, -2.0, 0.0, 2.0, 4.0]);
        assert_eq!(counts, [0, 1, 2, 3, 4, 0]);
        assert_eq!(counts.iter().sum::<u64>(), p.count);

        // scale 1: base sqrt(2); only positives from offset -2.
        let p = otlp_metrics::ExponentialHistogramDataPoint {
            count: 2,
            scale: 1,
            positive: Some(Buckets {
                offset: -2,
                bucket_counts: vec![1, 1],
            }),
            ..Default::default()
        };
        let (bounds, counts) = exponential_buckets(&p).unwrap();
        assert_eq!(bounds.len(), 3);
        assert_eq!(bounds[0], 0.0);
        assert!(
            (bounds[1] - 2f64.sqrt().powi(-1)).abs() < 1e-12,
            "{bounds:?}"
        );
        assert!((bounds[2] - 1.0).abs() < 1e-12, "{bounds:?}");
        assert_eq!(counts, [0, 1, 1, 0]);

        // Through the metric conversion, temporality kept.
        let c = metrics(metrics_req(vec![named(
            "e",
            metric::Data::ExponentialHistogram(otlp_metrics::ExponentialHistogram {
                data_points: vec![
                    p.clone(),
                    otlp_metrics::ExponentialHistogramDataPoint {
                        zero_threshold: 5.0,
                        ..p
                    },
                ],
                aggregation_temporality: 1,
            }),
        )]));
        assert_eq!(c.rejected, 1, "threshold above the first bound is invalid");
        let m = &c.batches[0].metrics[0];
        assert_eq!(
            (m.kind, m.temporality),
            (MetricKind::Histogram, Temporality::Delta)
        );
        let PointValue::Histogram(h) = &m.points[0].value else {
            panic!("not a histogram")
        };
        assert_eq!(h.count, 2);
        assert_eq!(h.bucket_counts.len(), h.bounds.len() + 1);
    }

    #[test]
    fn absurd_exponential_scales_are_rejected() {
        let p = otlp_metrics::ExponentialHistogramDataPoint {
            scale: 100,
            positive: Some(Buckets {
                offset: 0,
                bucket_counts: vec![1],
            }),
            ..Default::default()
        };
        assert!(exponential_buckets(&p).is_err());
        let p = otlp_metrics::ExponentialHistogramDataPoint {
            scale: -10,
            positive: Some(Buckets {
                offset: i32::MAX - 1,
                bucket_counts: vec![1],
            }),
            ..Default::default()
        };
        assert!(exponential_buckets(&p).is_err(), "overflows to infinity");
    }

    /// OTLP -> model -> OTLP keeps what the model holds, scopes included.
    #[test]
    fn receiver_output_round_trips_through_the_encoder() {
        use tfo_plugin_common::otlp as encode;
        let codec = crate::json::JsonCodec::new().unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
        let read = |n: &str| std::fs::read(format!("{dir}/{n}")).unwrap();

        let req: ExportTraceServiceRequest = codec.decode(&read("trace.json")).unwrap();
        let batch = &traces(req.clone()).batches[0];
        let out = encode::traces(batch).unwrap();
        let (a, b) = (
            &req.resource_spans[0].scope_spans[0],
            &out.resource_spans[0].scope_spans[0],
        );
        assert_eq!(a.spans, b.spans);
        assert_eq!(
            a.scope.as_ref().map(|s| (&s.name, &s.version)),
            b.scope.as_ref().map(|s| (&s.name, &s.version))
        );

        let req: ExportLogsServiceRequest = codec.decode(&read("logs.json")).unwrap();
        let batch = &logs(req.clone()).batches[0];
        let out = encode::logs(batch).unwrap();
        let (a, b) = (
            &req.resource_logs[0].scope_logs[0].log_records[0],
            &out.resource_logs[0].scope_logs[0].log_records[0],
        );
        assert_eq!(
            (
                a.time_unix_nano,
                a.severity_number,
                &a.severity_text,
                &a.trace_id,
                &a.span_id,
                &a.body
            ),
            (
                b.time_unix_nano,
                b.severity_number,
                &b.severity_text,
                &b.trace_id,
                &b.span_id,
                &b.body
            )
        );
        // Scalars survive as they are; the array and map attributes became strings.
        assert_eq!(a.attributes[..4], b.attributes[..4]);

        let req: ExportMetricsServiceRequest = codec.decode(&read("metrics.json")).unwrap();
        let batch = &metrics(req.clone()).batches[0];
        let (out, skipped) = encode::metrics(batch);
        assert_eq!(skipped, 0);
        let out = out.unwrap();
        let (a, b) = (
            &req.resource_metrics[0].scope_metrics[0].metrics,
            &out.resource_metrics[0].scope_metrics[0].metrics,
        );
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            if matches!(x.data, Some(metric::Data::ExponentialHistogram(_))) {
                assert!(matches!(y.data, Some(metric::Data::Histogram(_))));
                continue;
            }
            // Exemplars are not part of the model.
            let strip = |m: &otlp_metrics::Metric| {
                let mut m = m.clone();
                if let Some(metric::Data::Histogram(h)) = &mut m.data {
                    h.data_points.iter_mut().for_each(|p| p.exemplars.clear());
                }
                if let Some(metric::Data::Sum(s)) = &mut m.data {
                    s.data_points.iter_mut().for_each(|p| p.exemplars.clear());
                }
                if let Some(metric::Data::Gauge(s)) = &mut m.data {
                    s.data_points.iter_mut().for_each(|p| p.exemplars.clear());
                }
                m
            };
            assert_eq!(strip(x), strip(y));
        }
    }
}
