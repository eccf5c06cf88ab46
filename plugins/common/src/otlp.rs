//! OTLP encoding of the agent's data model ([`Batch`]) -> OpenTelemetry export
//! requests (`Export{Metrics,Trace,Logs}ServiceRequest`, the messages of
//! opentelemetry-proto, <https://github.com/open-telemetry/opentelemetry-proto>).
//! Shared here (cargo feature `otlp`) because more than one plugin sends OTLP: the
//! `otlp` exporter posts these requests over OTLP/HTTP, the `mqtt` sink publishes
//! them as protobuf payloads. Pure functions, golden-tested here; the plugins'
//! tests decode their output with an independent decoder (the Python
//! `opentelemetry-proto` package).
//!
//! A batch becomes at most one request per signal, each holding one `Resource*`
//! entry with the batch's resource. Items are grouped into instrumentation scopes by
//! their [`SCOPE_NAME`] and [`SCOPE_VERSION`] attributes (which the otlp receiver
//! adds when it turns OTLP into the model), and those two attributes are removed
//! again, so OTLP in -> agent -> OTLP out keeps the scopes. Items without them go to
//! a scope with an empty name.
//!
//! Metric points whose value does not fit the metric's kind (a histogram value in a
//! gauge, say; the model allows it, OTLP cannot carry it) are skipped and counted,
//! never sent half-formed.
//!
//! The prost and opentelemetry-proto crates are re-exported ([`prost`],
//! [`opentelemetry_proto`]) so a plugin encodes the requests with the same versions.

pub use opentelemetry_proto;
pub use prost;

use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    },
    common::v1::{self as otlp_common, any_value, InstrumentationScope},
    logs::v1 as otlp_logs,
    metrics::v1::{self as otlp_metrics, metric, number_data_point, summary_data_point},
    resource::v1::Resource as OtlpResource,
    trace::v1 as otlp_trace,
};
use tfo_plugin_api::{
    AnyValue, Batch, DataPoint, KeyValue, LogRecord, Metric, MetricKind, PointValue, Resource,
    Span, SpanKind, StatusCode, Temporality,
};

/// Attribute carrying the instrumentation scope name of an item (the convention
/// OpenTelemetry uses for formats without scopes); the encoder turns it back into
/// the item's scope.
pub const SCOPE_NAME: &str = "otel.scope.name";
/// Attribute carrying the instrumentation scope version of an item.
pub const SCOPE_VERSION: &str = "otel.scope.version";

/// Scope identity: (name, version).
type ScopeKey = (String, String);

/// Groups items by scope, keeping the order in which scopes first appear.
struct Scopes<T> {
    groups: Vec<(ScopeKey, Vec<T>)>,
}

impl<T> Scopes<T> {
    fn new() -> Self {
        Scopes { groups: Vec::new() }
    }

    fn push(&mut self, key: ScopeKey, item: T) {
        match self.groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, items)) => items.push(item),
            None => self.groups.push((key, vec![item])),
        }
    }
}

fn scope(key: ScopeKey) -> Option<InstrumentationScope> {
    let (name, version) = key;
    Some(InstrumentationScope {
        name,
        version,
        ..Default::default()
    })
}

/// Splits the scope attributes off an item's attributes.
fn split_scope(attrs: &[KeyValue]) -> (ScopeKey, Vec<otlp_common::KeyValue>) {
    let mut key = ScopeKey::default();
    let mut rest = Vec::with_capacity(attrs.len());
    for kv in attrs {
        match (kv.key.as_str(), &kv.value) {
            (SCOPE_NAME, AnyValue::Str(s)) => key.0 = s.to_string(),
            (SCOPE_VERSION, AnyValue::Str(s)) => key.1 = s.to_string(),
            _ => rest.push(key_value(kv)),
        }
    }
    (key, rest)
}

fn resource(r: &Resource) -> Option<OtlpResource> {
    Some(OtlpResource {
        attributes: attributes(&r.attributes),
        ..Default::default()
    })
}

/// Model attributes as OTLP `KeyValue`s.
pub fn attributes(attrs: &[KeyValue]) -> Vec<otlp_common::KeyValue> {
    attrs.iter().map(key_value).collect()
}

fn key_value(kv: &KeyValue) -> otlp_common::KeyValue {
    otlp_common::KeyValue {
        key: kv.key.to_string(),
        value: Some(any_value(&kv.value)),
        ..Default::default()
    }
}

/// A model value as an OTLP `AnyValue`.
pub fn any_value(v: &AnyValue) -> otlp_common::AnyValue {
    let value = match v {
        AnyValue::Str(s) => any_value::Value::StringValue(s.to_string()),
        AnyValue::Bool(b) => any_value::Value::BoolValue(*b),
        AnyValue::Int(i) => any_value::Value::IntValue(*i),
        AnyValue::Double(d) => any_value::Value::DoubleValue(*d),
        AnyValue::Bytes(b) => any_value::Value::BytesValue(b.to_vec()),
    };
    otlp_common::AnyValue { value: Some(value) }
}

/// An all-zero id means "absent", which OTLP writes as an empty byte string.
fn opt_id(id: &[u8]) -> Vec<u8> {
    if id.iter().all(|b| *b == 0) {
        Vec::new()
    } else {
        id.to_vec()
    }
}

/// The traces request of a batch; `None` when it has no spans.
pub fn traces(batch: &Batch) -> Option<ExportTraceServiceRequest> {
    if batch.spans.is_empty() {
        return None;
    }
    let mut scopes = Scopes::new();
    for s in batch.spans.iter() {
        let (key, attrs) = split_scope(&s.attributes);
        scopes.push(key, span(s, attrs));
    }
    Some(ExportTraceServiceRequest {
        resource_spans: vec![otlp_trace::ResourceSpans {
            resource: resource(&batch.resource),
            scope_spans: scopes
                .groups
                .into_iter()
                .map(|(key, spans)| otlp_trace::ScopeSpans {
                    scope: scope(key),
                    spans,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
    })
}

fn span(s: &Span, attributes: Vec<otlp_common::KeyValue>) -> otlp_trace::Span {
    let status = (s.status_code != StatusCode::Unset || !s.status_message.is_empty()).then(|| {
        otlp_trace::Status {
            code: status_code(s.status_code),
            message: s.status_message.to_string(),
        }
    });
    otlp_trace::Span {
        trace_id: s.trace_id.to_vec(),
        span_id: s.span_id.to_vec(),
        parent_span_id: opt_id(&s.parent_span_id),
        name: s.name.to_string(),
        kind: span_kind(s.kind),
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        attributes,
        events: s
            .events
            .iter()
            .map(|e| otlp_trace::span::Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name.to_string(),
                attributes: self::attributes(&e.attributes),
                ..Default::default()
            })
            .collect(),
        status,
        ..Default::default()
    }
}

/// Model span kind -> OTLP `Span.SpanKind` number.
pub fn span_kind(k: SpanKind) -> i32 {
    match k {
        SpanKind::Unspecified => 0,
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// Model status -> OTLP `Status.StatusCode` number.
pub fn status_code(c: StatusCode) -> i32 {
    match c {
        StatusCode::Unset => 0,
        StatusCode::Ok => 1,
        StatusCode::Error => 2,
    }
}

/// The logs request of a batch; `None` when it has no log records.
pub fn logs(batch: &Batch) -> Option<ExportLogsServiceRequest> {
    if batch.logs.is_empty() {
        return None;
    }
    let mut scopes = Scopes::new();
    for l in batch.logs.iter() {
        let (key, attrs) = split_scope(&l.attributes);
        scopes.push(key, log(l, attrs));
    }
    Some(ExportLogsServiceRequest {
        resource_logs: vec![otlp_logs::ResourceLogs {
            resource: resource(&batch.resource),
            scope_logs: scopes
                .groups
                .into_iter()
                .map(|(key, log_records)| otlp_logs::ScopeLogs {
                    scope: scope(key),
                    log_records,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
    })
}

fn log(l: &LogRecord, attributes: Vec<otlp_common::KeyValue>) -> otlp_logs::LogRecord {
    otlp_logs::LogRecord {
        time_unix_nano: l.time_unix_nano,
        observed_time_unix_nano: l.observed_time_unix_nano,
        severity_number: i32::from(l.severity_number),
        severity_text: l.severity_text.to_string(),
        body: Some(any_value(&l.body)),
        attributes,
        trace_id: opt_id(&l.trace_id),
        span_id: opt_id(&l.span_id),
        ..Default::default()
    }
}

/// Model temporality -> OTLP `AggregationTemporality` number.
pub fn temporality(t: Temporality) -> i32 {
    match t {
        Temporality::Unspecified => 0,
        Temporality::Delta => 1,
        Temporality::Cumulative => 2,
    }
}

/// The metrics request of a batch (`None` when it has no data point) and the number
/// of points skipped because their value does not fit their metric's kind.
pub fn metrics(batch: &Batch) -> (Option<ExportMetricsServiceRequest>, u64) {
    let mut skipped = 0;
    let mut scopes: Scopes<otlp_metrics::Metric> = Scopes::new();
    for m in batch.metrics.iter() {
        // A metric's points may carry different scopes: one OTLP metric per scope.
        let mut by_scope: Scopes<(&DataPoint, Vec<otlp_common::KeyValue>)> = Scopes::new();
        for p in m.points.iter() {
            let (key, attrs) = split_scope(&p.attributes);
            by_scope.push(key, (p, attrs));
        }
        for (key, points) in by_scope.groups {
            let (data, bad) = metric_data(m, points);
            skipped += bad;
            if let Some(data) = data {
                scopes.push(
                    key,
                    otlp_metrics::Metric {
                        name: m.name.to_string(),
                        description: m.description.to_string(),
                        unit: m.unit.to_string(),
                        data: Some(data),
                        ..Default::default()
                    },
                );
            }
        }
    }
    if scopes.groups.is_empty() {
        return (None, skipped);
    }
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![otlp_metrics::ResourceMetrics {
            resource: resource(&batch.resource),
            scope_metrics: scopes
                .groups
                .into_iter()
                .map(|(key, metrics)| otlp_metrics::ScopeMetrics {
                    scope: scope(key),
                    metrics,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
    };
    (Some(req), skipped)
}

/// The OTLP data of one metric for the given points, and how many points did not fit.
fn metric_data(
    m: &Metric,
    points: Vec<(&DataPoint, Vec<otlp_common::KeyValue>)>,
) -> (Option<metric::Data>, u64) {
    let total = points.len() as u64;
    let temporality = temporality(m.temporality);
    let data = match m.kind {
        MetricKind::Gauge | MetricKind::Sum => {
            let data_points: Vec<_> = points
                .into_iter()
                .filter_map(|(p, attributes)| {
                    let value = match p.value {
                        PointValue::Double(d) => number_data_point::Value::AsDouble(d),
                        PointValue::Int(i) => number_data_point::Value::AsInt(i),
                        _ => return None,
                    };
                    Some(otlp_metrics::NumberDataPoint {
                        attributes,
                        start_time_unix_nano: p.start_time_unix_nano,
                        time_unix_nano: p.time_unix_nano,
                        value: Some(value),
                        ..Default::default()
                    })
                })
                .collect();
            let kept = data_points.len() as u64;
            let data = if m.kind == MetricKind::Gauge {
                metric::Data::Gauge(otlp_metrics::Gauge { data_points })
            } else {
                metric::Data::Sum(otlp_metrics::Sum {
                    data_points,
                    aggregation_temporality: temporality,
                    is_monotonic: m.is_monotonic,
                })
            };
            (data, kept)
        }
        MetricKind::Histogram => {
            let data_points: Vec<_> = points
                .into_iter()
                .filter_map(|(p, attributes)| {
                    let PointValue::Histogram(h) = &p.value else {
                        return None;
                    };
                    // The model's invariant; a point breaking it would be refused
                    // by the backend, so it is not sent.
                    if h.bucket_counts.len() != h.bounds.len() + 1 {
                        return None;
                    }
                    // One bucket and no bounds is how the model says "no buckets".
                    let (bucket_counts, explicit_bounds) = if h.bounds.is_empty() {
                        (Vec::new(), Vec::new())
                    } else {
                        (h.bucket_counts.to_vec(), h.bounds.to_vec())
                    };
                    Some(otlp_metrics::HistogramDataPoint {
                        attributes,
                        start_time_unix_nano: p.start_time_unix_nano,
                        time_unix_nano: p.time_unix_nano,
                        count: h.count,
                        sum: h.sum.into_option(),
                        bucket_counts,
                        explicit_bounds,
                        min: h.min.into_option(),
                        max: h.max.into_option(),
                        ..Default::default()
                    })
                })
                .collect();
            let kept = data_points.len() as u64;
            (
                metric::Data::Histogram(otlp_metrics::Histogram {
                    data_points,
                    aggregation_temporality: temporality,
                }),
                kept,
            )
        }
        MetricKind::Summary => {
            let data_points: Vec<_> = points
                .into_iter()
                .filter_map(|(p, attributes)| {
                    let PointValue::Summary(s) = &p.value else {
                        return None;
                    };
                    Some(otlp_metrics::SummaryDataPoint {
                        attributes,
                        start_time_unix_nano: p.start_time_unix_nano,
                        time_unix_nano: p.time_unix_nano,
                        count: s.count,
                        sum: s.sum,
                        quantile_values: s
                            .quantiles
                            .iter()
                            .map(|q| summary_data_point::ValueAtQuantile {
                                quantile: q.quantile,
                                value: q.value,
                            })
                            .collect(),
                        ..Default::default()
                    })
                })
                .collect();
            let kept = data_points.len() as u64;
            (
                metric::Data::Summary(otlp_metrics::Summary { data_points }),
                kept,
            )
        }
    };
    let (data, kept) = data;
    ((kept > 0).then_some(data), total - kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use tfo_plugin_api::{HistogramValue, Quantile, SpanEvent, SummaryValue};

    fn res() -> Resource {
        Resource {
            attributes: vec![KeyValue::new("service.name", "svc")].into(),
        }
    }

    fn span_fixture(name: &str, scope: Option<(&str, &str)>) -> Span {
        let mut attrs = vec![KeyValue::new("k", 1i64)];
        if let Some((n, v)) = scope {
            attrs.push(KeyValue::new(SCOPE_NAME, n));
            attrs.push(KeyValue::new(SCOPE_VERSION, v));
        }
        Span {
            trace_id: [0xab; 16],
            span_id: [0x01; 8],
            parent_span_id: [0; 8],
            name: name.into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            status_code: StatusCode::Ok,
            status_message: "".into(),
            attributes: attrs.into(),
            events: vec![SpanEvent {
                name: "e".into(),
                time_unix_nano: 1,
                attributes: vec![KeyValue::new("x", true)].into(),
            }]
            .into(),
        }
    }

    #[test]
    fn empty_signals_give_no_request() {
        let b = Batch::default();
        assert!(traces(&b).is_none());
        assert!(logs(&b).is_none());
        assert_eq!(metrics(&b).0, None);
    }

    #[test]
    fn spans_are_grouped_by_scope_and_scope_attributes_removed() {
        let b = Batch {
            resource: res(),
            spans: vec![
                span_fixture("a", Some(("lib", "1"))),
                span_fixture("b", None),
                span_fixture("c", Some(("lib", "1"))),
            ]
            .into(),
            ..Batch::default()
        };
        let req = traces(&b).unwrap();
        assert_eq!(req.resource_spans.len(), 1);
        let rs = &req.resource_spans[0];
        assert_eq!(
            rs.resource.as_ref().unwrap().attributes[0].key,
            "service.name"
        );
        assert_eq!(rs.scope_spans.len(), 2);
        let lib = &rs.scope_spans[0];
        assert_eq!(lib.scope.as_ref().unwrap().name, "lib");
        assert_eq!(lib.scope.as_ref().unwrap().version, "1");
        let names: Vec<&str> = lib.spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(rs.scope_spans[1].scope.as_ref().unwrap().name, "");
        let s = &lib.spans[0];
        assert_eq!(s.attributes.len(), 1, "{:?}", s.attributes);
        assert_eq!(s.trace_id, vec![0xab; 16]);
        assert!(s.parent_span_id.is_empty(), "root span: no parent id");
        assert_eq!(s.kind, 2);
        assert_eq!(s.status.as_ref().unwrap().code, 1);
        assert_eq!(s.events[0].name, "e");
    }

    /// Pins the protobuf bytes of a small span request: a change in field numbers or
    /// wire types would show here first.
    #[test]
    fn golden_protobuf_of_a_small_span() {
        let b = Batch {
            spans: vec![Span {
                trace_id: [1; 16],
                span_id: [2; 8],
                parent_span_id: [0; 8],
                name: "n".into(),
                kind: SpanKind::Client,
                start_time_unix_nano: 1,
                end_time_unix_nano: 2,
                status_code: StatusCode::Unset,
                status_message: "".into(),
                attributes: vec![].into(),
                events: vec![].into(),
            }]
            .into(),
            ..Batch::default()
        };
        let bytes = traces(&b).unwrap().encode_to_vec();
        let mut span = vec![0x0a, 16];
        span.extend([1; 16]); // 1: trace_id
        span.extend([0x12, 8]);
        span.extend([2; 8]); // 2: span_id
        span.extend([0x2a, 1, b'n']); // 5: name
        span.extend([0x30, 3]); // 6: kind = CLIENT
        span.extend([0x39, 1, 0, 0, 0, 0, 0, 0, 0]); // 7: start, fixed64
        span.extend([0x41, 2, 0, 0, 0, 0, 0, 0, 0]); // 8: end, fixed64
        let mut scope_spans = vec![0x0a, 0]; // 1: empty scope
        scope_spans.extend([0x12, span.len() as u8]);
        scope_spans.extend(&span); // 2: spans
        let mut resource_spans = vec![0x0a, 0]; // 1: empty resource
        resource_spans.extend([0x12, scope_spans.len() as u8]);
        resource_spans.extend(&scope_spans); // 2: scope_spans
        let mut want = vec![0x0a, resource_spans.len() as u8];
        want.extend(&resource_spans);
        assert_eq!(bytes, want);
    }

    fn point(value: PointValue, scope: Option<&str>) -> DataPoint {
        let mut attributes = vec![KeyValue::new("host", "a")];
        if let Some(s) = scope {
            attributes.push(KeyValue::new(SCOPE_NAME, s));
        }
        DataPoint {
            attributes: attributes.into(),
            start_time_unix_nano: 5,
            time_unix_nano: 6,
            value,
        }
    }

    fn metric_fixture(kind: MetricKind, points: Vec<DataPoint>) -> Metric {
        let mut m = Metric::gauge("m", "By", 0, 0.0, vec![]);
        m.kind = kind;
        m.temporality = Temporality::Cumulative;
        m.is_monotonic = true;
        m.points = points.into();
        m
    }

    #[test]
    fn metrics_of_every_kind_and_mismatched_points_are_skipped() {
        let hist = HistogramValue {
            count: 3,
            sum: Some(4.0).into(),
            bounds: vec![1.0].into(),
            bucket_counts: vec![1, 2].into(),
            min: None.into(),
            max: Some(3.0).into(),
        };
        let b = Batch {
            resource: res(),
            metrics: vec![
                metric_fixture(
                    MetricKind::Sum,
                    vec![
                        point(PointValue::Int(7), Some("s1")),
                        point(PointValue::Double(1.5), Some("s2")),
                        point(PointValue::Histogram(hist.clone()), Some("s1")),
                    ],
                ),
                metric_fixture(
                    MetricKind::Histogram,
                    vec![point(PointValue::Histogram(hist), None)],
                ),
                metric_fixture(
                    MetricKind::Summary,
                    vec![point(
                        PointValue::Summary(SummaryValue {
                            count: 1,
                            sum: 2.0,
                            quantiles: vec![Quantile {
                                quantile: 0.99,
                                value: 2.0,
                            }]
                            .into(),
                        }),
                        None,
                    )],
                ),
                metric_fixture(
                    MetricKind::Gauge,
                    vec![point(PointValue::Double(f64::NAN), None)],
                ),
            ]
            .into(),
            ..Batch::default()
        };
        let (req, skipped) = metrics(&b);
        assert_eq!(skipped, 1);
        let req = req.unwrap();
        let scopes = &req.resource_metrics[0].scope_metrics;
        let names: Vec<&str> = scopes
            .iter()
            .map(|s| s.scope.as_ref().unwrap().name.as_str())
            .collect();
        assert_eq!(names, ["s1", "s2", ""]);
        let Some(metric::Data::Sum(sum)) = &scopes[0].metrics[0].data else {
            panic!()
        };
        assert_eq!(sum.aggregation_temporality, 2);
        assert!(sum.is_monotonic);
        assert_eq!(sum.data_points.len(), 1);
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsInt(7))
        );
        assert_eq!(sum.data_points[0].attributes.len(), 1);
        assert_eq!(scopes[2].metrics.len(), 3);
        let Some(metric::Data::Histogram(h)) = &scopes[2].metrics[0].data else {
            panic!()
        };
        assert_eq!(h.data_points[0].bucket_counts, [1, 2]);
        assert_eq!(h.data_points[0].explicit_bounds, [1.0]);
        assert_eq!(h.data_points[0].max, Some(3.0));
        assert!(matches!(
            scopes[2].metrics[1].data,
            Some(metric::Data::Summary(_))
        ));
        assert!(matches!(
            scopes[2].metrics[2].data,
            Some(metric::Data::Gauge(_))
        ));
    }
}
