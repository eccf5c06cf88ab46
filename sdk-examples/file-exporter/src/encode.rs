//! Pure functions turning a [`Batch`] into NDJSON lines, kept apart from the I/O so
//! the format can be pinned by golden tests.
//!
//! One line per item, the unit the host counts in: a line per metric data point, per
//! span and per log record, so `lines.len() == batch.item_count()`. Each line is
//! self-contained (it repeats the batch's resource), so a file can be split, rotated
//! or `grep`ped without losing context. Every line has a `type` of `metric`, `span`
//! or `log`.
//!
//! Mapping rules:
//! - attributes become a JSON object (`{"key": value}`); with duplicate keys the last
//!   one wins;
//! - bytes values are standard base64 (padded), as in OTLP/JSON;
//! - doubles that JSON cannot carry are the strings `"NaN"`, `"Infinity"` and
//!   `"-Infinity"`, as in proto3 JSON;
//! - trace and span ids are lowercase hex; an all-zero parent span id (a root span)
//!   and an all-zero trace or span id on a log record (not correlated) are omitted;
//! - histogram `sum`, `min` and `max` are omitted when unknown;
//! - object keys come out in lexicographic order (`serde_json`'s default map), which
//!   makes the output deterministic.

use serde_json::{json, Map, Value};
use tfo_plugin_api::{
    AnyValue, Batch, DataPoint, HistogramValue, KeyValue, LogRecord, Metric, MetricKind,
    PointValue, Resource, Span, SpanKind, StatusCode, SummaryValue, Temporality,
};

/// Encodes a whole batch: metric points first, then spans, then log records, each
/// in batch order. Lines have no trailing newline.
pub fn encode_batch(batch: &Batch) -> Vec<String> {
    let resource = resource(&batch.resource);
    let mut lines = Vec::with_capacity(batch.item_count() as usize);
    for metric in batch.metrics.iter() {
        lines.extend(metric_lines(&resource, metric));
    }
    for span in batch.spans.iter() {
        lines.push(span_line(&resource, span));
    }
    for log in batch.logs.iter() {
        lines.push(log_line(&resource, log));
    }
    lines
}

/// One line per data point of `metric`; `resource` is the already-encoded
/// [`resource`] of the batch.
pub fn metric_lines(resource: &Value, metric: &Metric) -> Vec<String> {
    metric
        .points
        .iter()
        .map(|point| metric_point(resource, metric, point).to_string())
        .collect()
}

fn metric_point(resource: &Value, metric: &Metric, point: &DataPoint) -> Value {
    json!({
        "type": "metric",
        "resource": resource,
        "name": metric.name.as_str(),
        "description": metric.description.as_str(),
        "unit": metric.unit.as_str(),
        "kind": metric_kind(metric.kind),
        "monotonic": metric.is_monotonic,
        "temporality": temporality(metric.temporality),
        "time_unix_nano": point.time_unix_nano,
        "start_time_unix_nano": point.start_time_unix_nano,
        "attributes": attributes(&point.attributes),
        "value": point_value(&point.value),
    })
}

/// The line of one span; `resource` is the already-encoded [`resource`] of the batch.
pub fn span_line(resource: &Value, span: &Span) -> String {
    let mut v = json!({
        "type": "span",
        "resource": resource,
        "trace_id": hex(&span.trace_id),
        "span_id": hex(&span.span_id),
        "name": span.name.as_str(),
        "kind": span_kind(span.kind),
        "start_time_unix_nano": span.start_time_unix_nano,
        "end_time_unix_nano": span.end_time_unix_nano,
        "status_code": status_code(span.status_code),
        "status_message": span.status_message.as_str(),
        "attributes": attributes(&span.attributes),
        "events": span.events.iter().map(|e| json!({
            "name": e.name.as_str(),
            "time_unix_nano": e.time_unix_nano,
            "attributes": attributes(&e.attributes),
        })).collect::<Vec<_>>(),
    });
    if !is_zero(&span.parent_span_id) {
        v["parent_span_id"] = Value::String(hex(&span.parent_span_id));
    }
    v.to_string()
}

/// The line of one log record; `resource` is the already-encoded [`resource`] of
/// the batch.
pub fn log_line(resource: &Value, log: &LogRecord) -> String {
    let mut v = json!({
        "type": "log",
        "resource": resource,
        "time_unix_nano": log.time_unix_nano,
        "observed_time_unix_nano": log.observed_time_unix_nano,
        "severity_number": log.severity_number,
        "severity_text": log.severity_text.as_str(),
        "body": any_value(&log.body),
        "attributes": attributes(&log.attributes),
    });
    if !is_zero(&log.trace_id) {
        v["trace_id"] = Value::String(hex(&log.trace_id));
    }
    if !is_zero(&log.span_id) {
        v["span_id"] = Value::String(hex(&log.span_id));
    }
    v.to_string()
}

/// A resource as a JSON object of its attributes.
pub fn resource(resource: &Resource) -> Value {
    attributes(&resource.attributes)
}

/// Attributes as a JSON object; with duplicate keys the last one wins.
pub fn attributes(attrs: &[KeyValue]) -> Value {
    let map: Map<String, Value> = attrs
        .iter()
        .map(|kv| (kv.key.as_str().to_string(), any_value(&kv.value)))
        .collect();
    Value::Object(map)
}

/// An attribute or log-body value as JSON (bytes as base64, non-finite doubles as
/// strings).
pub fn any_value(value: &AnyValue) -> Value {
    match value {
        AnyValue::Str(s) => Value::String(s.as_str().to_string()),
        AnyValue::Bool(b) => Value::Bool(*b),
        AnyValue::Int(i) => Value::from(*i),
        AnyValue::Double(d) => double(*d),
        AnyValue::Bytes(b) => Value::String(base64(b)),
    }
}

/// A data point's value: a number for gauges and sums, an object for histograms and
/// summaries.
pub fn point_value(value: &PointValue) -> Value {
    match value {
        PointValue::Double(d) => double(*d),
        PointValue::Int(i) => Value::from(*i),
        PointValue::Histogram(h) => histogram(h),
        PointValue::Summary(s) => summary(s),
    }
}

fn histogram(h: &HistogramValue) -> Value {
    let mut v = json!({
        "count": h.count,
        "bounds": h.bounds.iter().map(|b| double(*b)).collect::<Vec<_>>(),
        "bucket_counts": h.bucket_counts.as_slice(),
    });
    for (key, opt) in [("sum", h.sum), ("min", h.min), ("max", h.max)] {
        if let Some(x) = opt.into_option() {
            v[key] = double(x);
        }
    }
    v
}

fn summary(s: &SummaryValue) -> Value {
    json!({
        "count": s.count,
        "sum": double(s.sum),
        "quantiles": s.quantiles.iter().map(|q| json!({
            "quantile": double(q.quantile),
            "value": double(q.value),
        })).collect::<Vec<_>>(),
    })
}

/// A double as JSON; NaN and infinities, which JSON numbers cannot carry, become the
/// strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub fn double(d: f64) -> Value {
    if d.is_nan() {
        Value::String("NaN".into())
    } else if d.is_infinite() {
        Value::String(if d > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        Value::from(d)
    }
}

/// `gauge`, `sum`, `histogram` or `summary`.
pub fn metric_kind(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Gauge => "gauge",
        MetricKind::Sum => "sum",
        MetricKind::Histogram => "histogram",
        MetricKind::Summary => "summary",
    }
}

/// `unspecified`, `delta` or `cumulative`.
pub fn temporality(t: Temporality) -> &'static str {
    match t {
        Temporality::Unspecified => "unspecified",
        Temporality::Delta => "delta",
        Temporality::Cumulative => "cumulative",
    }
}

/// `unspecified`, `internal`, `server`, `client`, `producer` or `consumer`.
pub fn span_kind(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

/// `unset`, `ok` or `error`.
pub fn status_code(code: StatusCode) -> &'static str {
    match code {
        StatusCode::Unset => "unset",
        StatusCode::Ok => "ok",
        StatusCode::Error => "error",
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// Standard base64 (RFC 4648 alphabet, `=` padding) of `bytes`.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfo_plugin_api::{Quantile, SpanEvent};

    fn resource_batch() -> Batch {
        Batch {
            resource: Resource {
                attributes: vec![KeyValue::new("host.name", "h1")].into(),
            },
            ..Batch::default()
        }
    }

    fn metric(kind: MetricKind, temporality: Temporality, value: PointValue) -> Metric {
        Metric {
            name: "m".into(),
            description: "d".into(),
            unit: "1".into(),
            kind,
            temporality,
            is_monotonic: false,
            points: vec![DataPoint {
                attributes: vec![KeyValue::new("k", "v")].into(),
                start_time_unix_nano: 5,
                time_unix_nano: 10,
                value,
            }]
            .into(),
        }
    }

    #[test]
    fn golden_metrics() {
        let mut batch = resource_batch();
        batch.metrics = vec![
            Metric::gauge("cpu", "1", 100, 0.5, vec![KeyValue::new("cpu", 0i64)]),
            Metric::counter("bytes", "By", 10, 100, 42.0, vec![]),
            metric(MetricKind::Sum, Temporality::Delta, PointValue::Int(-3)),
            metric(
                MetricKind::Histogram,
                Temporality::Cumulative,
                PointValue::Histogram(HistogramValue {
                    count: 3,
                    sum: Some(6.5).into(),
                    bounds: vec![1.0, 5.0].into(),
                    bucket_counts: vec![1, 1, 1].into(),
                    min: Some(0.5).into(),
                    max: None.into(),
                }),
            ),
            metric(
                MetricKind::Summary,
                Temporality::Unspecified,
                PointValue::Summary(SummaryValue {
                    count: 2,
                    sum: 3.0,
                    quantiles: vec![
                        Quantile {
                            quantile: 0.5,
                            value: 1.0,
                        },
                        Quantile {
                            quantile: 1.0,
                            value: 2.0,
                        },
                    ]
                    .into(),
                }),
            ),
        ]
        .into();
        let lines = encode_batch(&batch);
        let expected = [
            r#"{"attributes":{"cpu":0},"description":"","kind":"gauge","monotonic":false,"name":"cpu","resource":{"host.name":"h1"},"start_time_unix_nano":0,"temporality":"unspecified","time_unix_nano":100,"type":"metric","unit":"1","value":0.5}"#,
            r#"{"attributes":{},"description":"","kind":"sum","monotonic":true,"name":"bytes","resource":{"host.name":"h1"},"start_time_unix_nano":10,"temporality":"cumulative","time_unix_nano":100,"type":"metric","unit":"By","value":42.0}"#,
            r#"{"attributes":{"k":"v"},"description":"d","kind":"sum","monotonic":false,"name":"m","resource":{"host.name":"h1"},"start_time_unix_nano":5,"temporality":"delta","time_unix_nano":10,"type":"metric","unit":"1","value":-3}"#,
            r#"{"attributes":{"k":"v"},"description":"d","kind":"histogram","monotonic":false,"name":"m","resource":{"host.name":"h1"},"start_time_unix_nano":5,"temporality":"cumulative","time_unix_nano":10,"type":"metric","unit":"1","value":{"bounds":[1.0,5.0],"bucket_counts":[1,1,1],"count":3,"min":0.5,"sum":6.5}}"#,
            r#"{"attributes":{"k":"v"},"description":"d","kind":"summary","monotonic":false,"name":"m","resource":{"host.name":"h1"},"start_time_unix_nano":5,"temporality":"unspecified","time_unix_nano":10,"type":"metric","unit":"1","value":{"count":2,"quantiles":[{"quantile":0.5,"value":1.0},{"quantile":1.0,"value":2.0}],"sum":3.0}}"#,
        ];
        assert_eq!(lines, expected);
        assert_eq!(lines.len() as u64, batch.item_count());
    }

    #[test]
    fn one_line_per_point() {
        let mut m = Metric::gauge("g", "1", 1, 1.0, vec![]);
        let mut p2 = m.points[0].clone();
        p2.time_unix_nano = 2;
        p2.value = PointValue::Double(2.0);
        m.points.push(p2);
        let lines = metric_lines(&json!({}), &m);
        assert_eq!(lines.len(), 2);
        assert!(lines[1].contains(r#""time_unix_nano":2"#), "{}", lines[1]);
        assert!(lines[1].contains(r#""value":2.0"#), "{}", lines[1]);
    }

    #[test]
    fn golden_spans() {
        let mut batch = resource_batch();
        let root = Span {
            trace_id: [
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0, 0, 0, 0, 0, 0, 0, 0xff,
            ],
            span_id: [0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1],
            parent_span_id: [0; 8],
            name: "GET /".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 2_000,
            status_code: StatusCode::Error,
            status_message: "boom".into(),
            attributes: vec![KeyValue::new("http.status_code", 500i64)].into(),
            events: vec![SpanEvent {
                name: "exception".into(),
                time_unix_nano: 1_500,
                attributes: vec![KeyValue::new("retry", true)].into(),
            }]
            .into(),
        };
        let child = Span {
            span_id: [0, 0, 0, 0, 0, 0, 0, 2],
            parent_span_id: root.span_id,
            name: "db".into(),
            kind: SpanKind::Client,
            status_code: StatusCode::Unset,
            status_message: "".into(),
            attributes: vec![].into(),
            events: vec![].into(),
            ..root.clone()
        };
        batch.spans = vec![root, child].into();
        let lines = encode_batch(&batch);
        let expected = [
            r#"{"attributes":{"http.status_code":500},"end_time_unix_nano":2000,"events":[{"attributes":{"retry":true},"name":"exception","time_unix_nano":1500}],"kind":"server","name":"GET /","resource":{"host.name":"h1"},"span_id":"deadbeef00000001","start_time_unix_nano":1000,"status_code":"error","status_message":"boom","trace_id":"0123456789abcdef00000000000000ff","type":"span"}"#,
            r#"{"attributes":{},"end_time_unix_nano":2000,"events":[],"kind":"client","name":"db","parent_span_id":"deadbeef00000001","resource":{"host.name":"h1"},"span_id":"0000000000000002","start_time_unix_nano":1000,"status_code":"unset","status_message":"","trace_id":"0123456789abcdef00000000000000ff","type":"span"}"#,
        ];
        assert_eq!(lines, expected);
    }

    #[test]
    fn golden_logs() {
        let mut batch = resource_batch();
        let plain = LogRecord {
            time_unix_nano: 7,
            observed_time_unix_nano: 8,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: AnyValue::from("hello \"world\"\n"),
            attributes: vec![
                KeyValue::new("ratio", 0.25),
                KeyValue::new("raw", AnyValue::Bytes(vec![0xff, 0x00, 0x41].into())),
            ]
            .into(),
            trace_id: [0; 16],
            span_id: [0; 8],
        };
        let correlated = LogRecord {
            body: AnyValue::Int(12),
            attributes: vec![].into(),
            trace_id: [0xaa; 16],
            span_id: [0xbb; 8],
            ..plain.clone()
        };
        batch.logs = vec![plain, correlated].into();
        let lines = encode_batch(&batch);
        let expected = [
            r#"{"attributes":{"ratio":0.25,"raw":"/wBB"},"body":"hello \"world\"\n","observed_time_unix_nano":8,"resource":{"host.name":"h1"},"severity_number":9,"severity_text":"INFO","time_unix_nano":7,"type":"log"}"#,
            r#"{"attributes":{},"body":12,"observed_time_unix_nano":8,"resource":{"host.name":"h1"},"severity_number":9,"severity_text":"INFO","span_id":"bbbbbbbbbbbbbbbb","time_unix_nano":7,"trace_id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","type":"log"}"#,
        ];
        assert_eq!(lines, expected);
    }

    #[test]
    fn mixed_batch_order_is_metrics_spans_logs() {
        // Logs listed before metrics: the output order does not follow field order.
        let batch = Batch {
            logs: vec![LogRecord {
                time_unix_nano: 0,
                observed_time_unix_nano: 0,
                severity_number: 0,
                severity_text: "".into(),
                body: AnyValue::Bool(false),
                attributes: vec![].into(),
                trace_id: [0; 16],
                span_id: [0; 8],
            }]
            .into(),
            metrics: vec![Metric::gauge("g", "1", 1, 1.0, vec![])].into(),
            ..Batch::default()
        };
        let lines = encode_batch(&batch);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains(r#""type":"metric""#));
        assert!(lines[1].contains(r#""type":"log""#));
        assert!(lines.iter().all(|l| !l.contains('\n')));
        assert!(encode_batch(&Batch::default()).is_empty());
    }

    #[test]
    fn non_finite_doubles_are_strings() {
        assert_eq!(double(f64::NAN), json!("NaN"));
        assert_eq!(double(f64::INFINITY), json!("Infinity"));
        assert_eq!(double(f64::NEG_INFINITY), json!("-Infinity"));
        assert_eq!(double(-0.5), json!(-0.5));
        let h = PointValue::Histogram(HistogramValue {
            count: 0,
            sum: None.into(),
            bounds: vec![f64::INFINITY].into(),
            bucket_counts: vec![0, 0].into(),
            min: None.into(),
            max: None.into(),
        });
        assert_eq!(
            point_value(&h).to_string(),
            r#"{"bounds":["Infinity"],"bucket_counts":[0,0],"count":0}"#
        );
    }

    #[test]
    fn hex_and_base64() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        // RFC 4648 test vectors.
        for (input, out) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), out, "{input}");
        }
    }

    #[test]
    fn duplicate_attribute_keys_keep_the_last() {
        let v = attributes(&[KeyValue::new("a", 1i64), KeyValue::new("a", 2i64)]);
        assert_eq!(v, json!({"a": 2}));
    }
}
