//! Golden tests of the encoder: keys, topics (signals), splitting, what is left out,
//! and the exact JSON documents of `encoding: json` and `otlp_json`, written from
//! `docs/integrations/kafka.md` and the OTLP/JSON rules of the OTLP specification.

use serde_json::{json, Value};
use tfo_plugin_api::{HistogramValue, KeyValue, Quantile, Resource, SpanEvent, SummaryValue};

use super::*;

const T: u64 = 1_700_000_000_000_000_000;

fn res() -> Resource {
    Resource {
        attributes: vec![KeyValue::new("service.name", "svc")].into(),
    }
}

fn span(trace: u8, id: u8, name: &str) -> Span {
    Span {
        trace_id: [trace; 16],
        span_id: [id; 8],
        parent_span_id: [0; 8],
        name: name.into(),
        kind: SpanKind::Client,
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        status_code: StatusCode::Unset,
        status_message: "".into(),
        attributes: vec![].into(),
        events: vec![].into(),
    }
}

fn log(body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: T,
        observed_time_unix_nano: T + 1,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: AnyValue::Str(body.into()),
        attributes: vec![KeyValue::new("b", 2i64), KeyValue::new("a", true)].into(),
        trace_id: [0; 16],
        span_id: [0; 8],
    }
}

fn json_of(r: &Record) -> Value {
    serde_json::from_slice(&r.payload).expect("JSON payload")
}

#[test]
fn hex_is_lowercase() {
    assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
}

#[test]
fn plain_json_golden_point_span_and_log() {
    let mut counter = Metric::counter("reqs", "1", T - 5, T, 3.5, vec![KeyValue::new("z", "1")]);
    counter.description = "requests".into();
    let mut s = span(0xab, 0x01, "GET /");
    s.parent_span_id = [0x02; 8];
    s.status_code = StatusCode::Error;
    s.status_message = "boom".into();
    s.attributes = vec![KeyValue::new(
        "bytes",
        AnyValue::Bytes(vec![1, 2, 3].into()),
    )]
    .into();
    s.events = vec![SpanEvent {
        name: "retry".into(),
        time_unix_nano: 5,
        attributes: vec![KeyValue::new("n", 1i64)].into(),
    }]
    .into();
    let b = Batch {
        resource: res(),
        metrics: vec![counter].into(),
        spans: vec![s].into(),
        logs: vec![log("oops")].into(),
    };
    let enc = Encoder::new(Encoding::Json, 1_000_000).unwrap().encode(&b);
    assert_eq!(enc.records.len(), 3);
    let [m, t, l] = &enc.records[..] else {
        panic!()
    };

    assert_eq!(
        (m.signal, m.key.as_deref(), m.items),
        (Signal::Metrics, Some(&b"reqs"[..]), 1)
    );
    assert_eq!(
        json_of(m),
        json!({
            "name": "reqs", "description": "requests", "unit": "1", "type": "sum",
            "temporality": "cumulative", "monotonic": true, "value": 3.5,
            "start_time_unix_nano": T - 5, "time_unix_nano": T,
            "attributes": {"z": "1"}, "resource": {"service.name": "svc"}
        })
    );

    assert_eq!(t.signal, Signal::Traces);
    assert_eq!(t.key.as_deref(), Some("ab".repeat(16).as_bytes()));
    assert_eq!(
        json_of(t),
        json!({
            "trace_id": "ab".repeat(16), "span_id": "0101010101010101",
            "parent_span_id": "0202020202020202", "name": "GET /", "kind": "client",
            "start_time_unix_nano": 1, "end_time_unix_nano": 2,
            "status": {"code": "error", "message": "boom"},
            "attributes": {"bytes": "AQID"},
            "events": [{"name": "retry", "time_unix_nano": 5, "attributes": {"n": 1}}],
            "resource": {"service.name": "svc"}
        })
    );

    assert_eq!((l.signal, l.key.as_deref()), (Signal::Logs, None));
    assert_eq!(
        json_of(l),
        json!({
            "time_unix_nano": T, "observed_time_unix_nano": T + 1,
            "severity_number": 17, "severity_text": "ERROR", "body": "oops",
            "attributes": {"a": true, "b": 2}, "resource": {"service.name": "svc"}
        })
    );
}

#[test]
fn plain_json_histogram_summary_and_non_finite_values() {
    let mut h = Metric::gauge("lat", "s", T, 0.0, vec![]);
    h.kind = MetricKind::Histogram;
    h.temporality = Temporality::Delta;
    h.points[0].value = PointValue::Histogram(HistogramValue {
        count: 3,
        sum: Some(f64::INFINITY).into(),
        bounds: vec![1.0].into(),
        bucket_counts: vec![1, 2].into(),
        min: None.into(),
        max: Some(2.0).into(),
    });
    let mut s = Metric::gauge("q", "s", T, 0.0, vec![]);
    s.kind = MetricKind::Summary;
    s.points[0].value = PointValue::Summary(SummaryValue {
        count: 1,
        sum: f64::NEG_INFINITY,
        quantiles: vec![Quantile {
            quantile: 0.5,
            value: f64::NAN,
        }]
        .into(),
    });
    let g = Metric::gauge("nan", "1", T, f64::NAN, vec![]);
    let b = Batch {
        metrics: vec![h, s, g].into(),
        ..Batch::default()
    };
    let enc = Encoder::new(Encoding::Json, 1_000_000).unwrap().encode(&b);
    let vals: Vec<Value> = enc
        .records
        .iter()
        .map(|r| json_of(r)["value"].clone())
        .collect();
    assert_eq!(
        vals,
        [
            json!({"count": 3, "sum": "Infinity", "bounds": [1.0], "bucket_counts": [1, 2], "max": 2.0}),
            json!({"count": 1, "sum": "-Infinity", "quantiles": [{"quantile": 0.5, "value": "NaN"}]}),
            json!("NaN"),
        ]
    );
    assert_eq!(json_of(&enc.records[0])["temporality"], "delta");
}

/// OTLP/JSON of a small span request, written out from the OTLP spec: camelCase
/// keys, hex ids, enum as an integer, 64-bit integers as strings, defaults omitted.
#[test]
fn otlp_json_golden_of_a_small_span() {
    let b = Batch {
        spans: vec![span(1, 2, "n")].into(),
        ..Batch::default()
    };
    let enc = Encoder::new(Encoding::OtlpJson, 1_000_000)
        .unwrap()
        .encode(&b);
    assert_eq!(enc.records.len(), 1);
    assert_eq!(
        enc.records[0].key.as_deref(),
        Some("01".repeat(16).as_bytes())
    );
    assert_eq!(
        json_of(&enc.records[0]),
        json!({"resourceSpans": [{
            "resource": {},
            "scopeSpans": [{
                "scope": {},
                "spans": [{
                    "traceId": "01".repeat(16), "spanId": "0202020202020202", "name": "n",
                    "kind": 3, "startTimeUnixNano": "1", "endTimeUnixNano": "2"
                }]
            }]
        }]})
    );
}

/// The protobuf value is exactly the shared encoder's request for that part of the
/// batch (one trace), so the bytes are pinned by the common crate's golden test.
#[test]
fn otlp_proto_records_per_metric_name_and_trace_id() {
    use tfo_plugin_common::otlp::prost::Message as _;
    let mut dup = Metric::gauge("a", "1", T, 2.0, vec![]);
    dup.points[0].attributes = vec![KeyValue::new("k", "v")].into();
    let b = Batch {
        resource: res(),
        metrics: vec![
            Metric::gauge("a", "1", T, 1.0, vec![]),
            Metric::gauge("b", "1", T, 1.0, vec![]),
            dup,
        ]
        .into(),
        spans: vec![span(1, 1, "x"), span(2, 2, "y"), span(1, 3, "z")].into(),
        logs: vec![log("1"), log("2")].into(),
    };
    let enc = Encoder::new(Encoding::OtlpProto, 1_000_000)
        .unwrap()
        .encode(&b);
    let summary: Vec<(Signal, Option<String>, u64)> = enc
        .records
        .iter()
        .map(|r| {
            (
                r.signal,
                r.key.clone().map(|k| String::from_utf8(k).unwrap()),
                r.items,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Signal::Metrics, Some("a".into()), 2),
            (Signal::Metrics, Some("b".into()), 1),
            (Signal::Traces, Some("01".repeat(16)), 2),
            (Signal::Traces, Some("02".repeat(16)), 1),
            (Signal::Logs, None, 2),
        ]
    );
    let trace1 = Batch {
        resource: res(),
        spans: vec![span(1, 1, "x"), span(1, 3, "z")].into(),
        ..Batch::default()
    };
    assert_eq!(
        enc.records[2].payload,
        otlp::traces(&trace1).unwrap().encode_to_vec()
    );
    assert_eq!((enc.too_big, enc.skipped), (0, 0));
}

#[test]
fn large_requests_are_split_and_every_item_is_kept_once() {
    use tfo_plugin_common::otlp::prost::Message as _;
    let mut m = Metric::gauge("big.metric", "1", T, 0.0, vec![]);
    m.points = (0..1000)
        .map(|i| DataPoint {
            attributes: vec![KeyValue::new("i", i as i64)].into(),
            start_time_unix_nano: 0,
            time_unix_nano: T,
            value: PointValue::Double(i as f64),
        })
        .collect();
    let b = Batch {
        metrics: vec![m].into(),
        ..Batch::default()
    };
    let enc = Encoder::new(Encoding::OtlpProto, 5_000).unwrap().encode(&b);
    assert!(enc.records.len() > 5, "{} records", enc.records.len());
    let mut seen = Vec::new();
    for r in &enc.records {
        assert_eq!(r.key.as_deref(), Some(&b"big.metric"[..]));
        assert!(r.payload.len() + 10 <= 5_000 - RECORD_OVERHEAD);
        let req = otlp::opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::decode(&r.payload[..]).unwrap();
        let Some(otlp::opentelemetry_proto::tonic::metrics::v1::metric::Data::Gauge(g)) =
            &req.resource_metrics[0].scope_metrics[0].metrics[0].data
        else {
            panic!()
        };
        assert_eq!(r.items, g.data_points.len() as u64);
        for p in &g.data_points {
            let Some(
                otlp::opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(
                    v,
                ),
            ) = p.value
            else {
                panic!()
            };
            seen.push(v as i64);
        }
    }
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    assert_eq!(enc.too_big, 0);
}

#[test]
fn an_item_too_big_alone_is_left_out_and_the_rest_kept() {
    for encoding in [Encoding::OtlpProto, Encoding::OtlpJson, Encoding::Json] {
        let huge = "x".repeat(10_000);
        let mut big = span(1, 1, "big");
        big.attributes = vec![KeyValue::new("blob", huge.as_str())].into();
        let b = Batch {
            spans: vec![span(1, 2, "a"), big, span(1, 3, "b")].into(),
            logs: vec![log(&huge), log("small")].into(),
            ..Batch::default()
        };
        let enc = Encoder::new(encoding, 5_000).unwrap().encode(&b);
        assert_eq!(enc.too_big, 2, "{encoding:?}");
        let items: u64 = enc.records.iter().map(|r| r.items).sum();
        assert_eq!(items, 3, "{encoding:?}: two spans and one log kept");
        assert!(enc
            .first_problem
            .as_deref()
            .unwrap()
            .contains("over the limit"));
        assert!(enc
            .records
            .iter()
            .all(|r| r.payload.len() <= 5_000 - RECORD_OVERHEAD));
    }
}

#[test]
fn otlp_points_that_do_not_fit_their_kind_are_counted_not_sent() {
    let mut m = Metric::gauge("g", "1", T, 1.0, vec![]);
    m.points.push(DataPoint {
        attributes: vec![].into(),
        start_time_unix_nano: 0,
        time_unix_nano: T,
        value: PointValue::Summary(SummaryValue {
            count: 1,
            sum: 1.0,
            quantiles: vec![].into(),
        }),
    });
    let b = Batch {
        metrics: vec![m].into(),
        ..Batch::default()
    };
    let enc = Encoder::new(Encoding::OtlpProto, 1_000_000)
        .unwrap()
        .encode(&b);
    assert_eq!(enc.records.len(), 1);
    assert_eq!(enc.records[0].items, 1);
    assert_eq!(enc.skipped, 1);
}

#[test]
fn an_empty_batch_gives_no_record() {
    for encoding in [Encoding::OtlpProto, Encoding::OtlpJson, Encoding::Json] {
        let enc = Encoder::new(encoding, 1_000_000)
            .unwrap()
            .encode(&Batch::default());
        assert_eq!(enc, Encoded::default());
    }
}
