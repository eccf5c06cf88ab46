//! Golden tests of the encoder: the expected NDJSON is written by hand from the
//! Bulk API page (action line + document line, `\n` after each, `create` for data
//! streams) and the ECS field reference, not produced by the code. Object keys are
//! sorted (serde_json's default map), so the text is stable.

use tfo_plugin_api::{
    AnyValue, Batch, DataPoint, HistogramValue, KeyValue, LogRecord, Metric, MetricKind,
    PointValue, Quantile, Resource, Span, SpanEvent, SpanKind, StatusCode, SummaryValue,
    Temporality,
};

use super::*;
use crate::config::{Config, Mode};

const T: u64 = 1_700_000_000_000_000_000; // 2023-11-14T22:13:20Z
const TRACE: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

fn target(mode: Mode) -> Target {
    let mut c: Config = serde_json::from_str(r#"{"endpoints": ["http://x"]}"#).unwrap();
    c.mode = mode;
    Target::from_config(&c)
}

fn resource(kv: &[(&str, AnyValue)]) -> Resource {
    Resource {
        attributes: kv
            .iter()
            .map(|(k, v)| KeyValue::new(*k, v.clone()))
            .collect::<Vec<_>>()
            .into(),
    }
}

fn ndjson(e: &Encoded) -> String {
    let all: Vec<usize> = (0..e.items.len()).collect();
    String::from_utf8(body(&all, &e.items)).unwrap()
}

fn log(time: u64, sev: u8, text: &str, body: AnyValue, attrs: Vec<KeyValue>) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: 0,
        severity_number: sev,
        severity_text: text.into(),
        body,
        attributes: attrs.into(),
        trace_id: [0; 16],
        span_id: [0; 8],
    }
}

fn point(time: u64, value: PointValue, attrs: Vec<KeyValue>) -> DataPoint {
    DataPoint {
        attributes: attrs.into(),
        start_time_unix_nano: 0,
        time_unix_nano: time,
        value,
    }
}

fn metric(
    name: &str,
    unit: &str,
    kind: MetricKind,
    t: Temporality,
    points: Vec<DataPoint>,
) -> Metric {
    let mut m = Metric::gauge(name, unit, 0, 0.0, vec![]);
    m.kind = kind;
    m.temporality = t;
    m.is_monotonic = kind == MetricKind::Sum;
    m.points = points.into();
    m
}

#[test]
fn logs_into_a_data_stream() {
    let mut first = log(
        T + 123_456_789,
        17,
        "ERROR",
        "payment failed".into(),
        vec![
            KeyValue::new("http.method", "POST"),
            KeyValue::new("retry", 3i64),
            KeyValue::new("ratio", f64::NAN),
            KeyValue::new("cloud.region", "override"),
        ],
    );
    first.trace_id = TRACE;
    first.span_id = [0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8];
    let second = log(0, 9, "", AnyValue::Int(42), vec![]);
    let third = log(
        T,
        0,
        "",
        "line \"one\"\nzwei \u{fc}".into(),
        vec![KeyValue::new(
            "raw",
            AnyValue::Bytes(vec![0xfb, 0xff].into()),
        )],
    );
    let batch = Batch {
        resource: resource(&[
            ("service.name", "checkout".into()),
            ("service.version", "1.2.0".into()),
            ("host.name", "web-1".into()),
            ("cloud.region", "eu-west-1".into()),
        ]),
        logs: vec![first, second, third].into(),
        ..Default::default()
    };
    let now = T + 100_000_000_000; // 22:15:00
    let e = encode_batch(&batch, &target(Mode::DataStream), now);
    assert_eq!((e.skipped, e.filtered), (0, 0));
    let action = r#"{"create":{"_index":"logs-tfo_agent-default"}}"#;
    let ds = r#""data_stream":{"dataset":"tfo_agent","namespace":"default","type":"logs"}"#;
    let svc = r#""service":{"name":"checkout","version":"1.2.0"}"#;
    let want = [
        action.to_string(),
        format!(
            r#"{{"@timestamp":"2023-11-14T22:13:20.123Z",{ds},"event":{{"severity":17}},"host":{{"name":"web-1"}},"labels":{{"cloud_region":"override","http_method":"POST","retry":3}},"log":{{"level":"ERROR"}},"message":"payment failed",{svc},"span":{{"id":"a1a2a3a4a5a6a7a8"}},"trace":{{"id":"0102030405060708090a0b0c0d0e0f10"}}}}"#
        ),
        action.to_string(),
        format!(
            r#"{{"@timestamp":"2023-11-14T22:15:00.000Z",{ds},"event":{{"severity":9}},"host":{{"name":"web-1"}},"labels":{{"cloud_region":"eu-west-1"}},"log":{{"level":"INFO"}},"message":"42",{svc}}}"#
        ),
        action.to_string(),
        format!(
            r#"{{"@timestamp":"2023-11-14T22:13:20.000Z",{ds},"host":{{"name":"web-1"}},"labels":{{"cloud_region":"eu-west-1","raw":"+/8="}},"message":"line \"one\"\nzwei ü",{svc}}}"#
        ),
    ];
    assert_eq!(ndjson(&e), want.join("\n") + "\n");
}

#[test]
fn metrics_into_dated_indices() {
    let leap_day = 1_709_164_800_000_000_000; // 2024-02-29T00:00:00Z
    let batch = Batch {
        resource: resource(&[
            ("service.name", "node-agent".into()),
            ("host.name", "h1".into()),
        ]),
        metrics: vec![
            Metric::gauge(
                "system.cpu.utilization",
                "1",
                T,
                0.25,
                vec![KeyValue::new("cpu", "0"), KeyValue::new("state", "user")],
            ),
            metric(
                "http.requests",
                "{request}",
                MetricKind::Sum,
                Temporality::Cumulative,
                vec![point(T, PointValue::Int(1027), vec![])],
            ),
            metric(
                "rpc.duration",
                "ms",
                MetricKind::Histogram,
                Temporality::Delta,
                vec![
                    point(
                        T,
                        PointValue::Histogram(HistogramValue {
                            count: 4,
                            sum: Some(12.5).into(),
                            bounds: vec![1.0, 5.0].into(),
                            bucket_counts: vec![1, 2, 1].into(),
                            min: Some(0.5).into(),
                            max: None.into(),
                        }),
                        vec![],
                    ),
                    // Bad: 2 counts for 2 bounds.
                    point(
                        T,
                        PointValue::Histogram(HistogramValue {
                            count: 4,
                            sum: None.into(),
                            bounds: vec![1.0, 5.0].into(),
                            bucket_counts: vec![1, 3].into(),
                            min: None.into(),
                            max: None.into(),
                        }),
                        vec![],
                    ),
                ],
            ),
            metric(
                "gc.pause",
                "s",
                MetricKind::Summary,
                Temporality::Unspecified,
                vec![point(
                    leap_day,
                    PointValue::Summary(SummaryValue {
                        count: 10,
                        sum: 0.5,
                        quantiles: vec![
                            Quantile {
                                quantile: 0.5,
                                value: 0.01,
                            },
                            Quantile {
                                quantile: 0.99,
                                value: f64::NAN,
                            },
                        ]
                        .into(),
                    }),
                    vec![],
                )],
            ),
            Metric::gauge("bad", "1", T, f64::NAN, vec![]),
            Metric::gauge("worse", "1", T, f64::INFINITY, vec![]),
        ]
        .into(),
        ..Default::default()
    };
    let e = encode_batch(&batch, &target(Mode::Index), 0);
    assert_eq!(e.skipped, 3);
    assert_eq!(
        e.first_skip_reason.as_deref(),
        Some("metric rpc.duration: histogram has 2 bucket counts for 2 bounds (want bounds + 1)")
    );
    let action = r#"{"index":{"_index":"tfo-metrics-2023.11.14"}}"#;
    let common = r#""host":{"name":"h1""#;
    let svc = r#""service":{"name":"node-agent"}"#;
    let want = [
        action.to_string(),
        format!(
            r#"{{"@timestamp":"2023-11-14T22:13:20.000Z",{common}}},"labels":{{"cpu":"0","state":"user"}},"metric":{{"name":"system.cpu.utilization","type":"gauge","unit":"1"}},{svc},"value":0.25}}"#
        ),
        action.to_string(),
        format!(
            r#"{{"@timestamp":"2023-11-14T22:13:20.000Z",{common}}},"metric":{{"monotonic":true,"name":"http.requests","temporality":"cumulative","type":"sum","unit":"{{request}}"}},{svc},"value":1027}}"#
        ),
        action.to_string(),
        format!(
            r#"{{"@timestamp":"2023-11-14T22:13:20.000Z","histogram":{{"bounds":[1.0,5.0],"count":4,"counts":[1,2,1],"min":0.5,"sum":12.5}},{common}}},"metric":{{"name":"rpc.duration","temporality":"delta","type":"histogram","unit":"ms"}},{svc}}}"#
        ),
        r#"{"index":{"_index":"tfo-metrics-2024.02.29"}}"#.to_string(),
        format!(
            r#"{{"@timestamp":"2024-02-29T00:00:00.000Z",{common}}},"metric":{{"name":"gc.pause","type":"summary","unit":"s"}},{svc},"summary":{{"count":10,"quantiles":[{{"quantile":0.5,"value":0.01}}],"sum":0.5}}}}"#
        ),
    ];
    assert_eq!(ndjson(&e), want.join("\n") + "\n");
}

#[test]
fn spans_as_documents() {
    let span = |id: u8, parent: u8, kind, status, start: u64, end: u64| Span {
        trace_id: TRACE,
        span_id: [id; 8],
        parent_span_id: [parent; 8],
        name: "GET /cart".into(),
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        status_code: status,
        status_message: "".into(),
        attributes: vec![].into(),
        events: vec![].into(),
    };
    let mut child = span(
        0x1a,
        0x2b,
        SpanKind::Server,
        StatusCode::Error,
        T,
        T + 1_500_000,
    );
    child.status_message = "timeout".into();
    child.attributes = vec![KeyValue::new("http.route", "/cart")].into();
    child.events = vec![SpanEvent {
        name: "exception".into(),
        time_unix_nano: T + 1_000_000,
        attributes: vec![KeyValue::new("exception.type", "Timeout")].into(),
    }]
    .into();
    // End before start: a clock problem, not a reason to fail the batch.
    let root = span(0x3c, 0, SpanKind::Client, StatusCode::Ok, T, T - 5);
    let batch = Batch {
        resource: resource(&[("service.name", "checkout".into())]),
        spans: vec![child, root].into(),
        ..Default::default()
    };
    let e = encode_batch(&batch, &target(Mode::DataStream), 0);
    let action = r#"{"create":{"_index":"traces-tfo_agent-default"}}"#;
    let ds = r#""data_stream":{"dataset":"tfo_agent","namespace":"default","type":"traces"}"#;
    let want = [
        action.to_string(),
        format!(
            r#"{{"@timestamp":"2023-11-14T22:13:20.000Z",{ds},"event":{{"duration":1500000,"outcome":"failure"}},"labels":{{"http_route":"/cart"}},"parent":{{"id":"2b2b2b2b2b2b2b2b"}},"service":{{"name":"checkout"}},"span":{{"events":[{{"@timestamp":"2023-11-14T22:13:20.001Z","labels":{{"exception_type":"Timeout"}},"name":"exception"}}],"id":"1a1a1a1a1a1a1a1a","kind":"server","name":"GET /cart","status":{{"code":"error","message":"timeout"}}}},"trace":{{"id":"0102030405060708090a0b0c0d0e0f10"}}}}"#
        ),
        action.to_string(),
        format!(
            r#"{{"@timestamp":"2023-11-14T22:13:20.000Z",{ds},"event":{{"duration":0,"outcome":"success"}},"service":{{"name":"checkout"}},"span":{{"id":"3c3c3c3c3c3c3c3c","kind":"client","name":"GET /cart","status":{{"code":"ok"}}}},"trace":{{"id":"0102030405060708090a0b0c0d0e0f10"}}}}"#
        ),
    ];
    assert_eq!(ndjson(&e), want.join("\n") + "\n");
}

#[test]
fn switched_off_signals_are_counted_not_sent() {
    let mut t = target(Mode::DataStream);
    t.traces = false;
    t.metrics = false;
    let batch = Batch {
        metrics: vec![Metric::gauge("g", "1", T, 1.0, vec![])].into(),
        spans: vec![Span {
            trace_id: TRACE,
            span_id: [1; 8],
            parent_span_id: [0; 8],
            name: "s".into(),
            kind: SpanKind::Internal,
            start_time_unix_nano: T,
            end_time_unix_nano: T,
            status_code: StatusCode::Unset,
            status_message: "".into(),
            attributes: vec![].into(),
            events: vec![].into(),
        }]
        .into(),
        logs: vec![log(T, 0, "", "x".into(), vec![])].into(),
        ..Default::default()
    };
    let e = encode_batch(&batch, &t, 0);
    assert_eq!(e.filtered, 2);
    assert_eq!(e.items.len(), 1);
    assert_eq!(e.items[0].signal, Signal::Logs);
}

#[test]
fn dates() {
    assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339_millis(T + 999_999_999), "2023-11-14T22:13:20.999Z");
    assert_eq!(
        rfc3339_millis(951_868_800_000_000_000),
        "2000-03-01T00:00:00.000Z"
    );
    assert_eq!(
        rfc3339_millis(951_782_399_000_000_000),
        "2000-02-28T23:59:59.000Z"
    );
    assert_eq!(
        rfc3339_millis(4_107_542_400_000_000_000),
        "2100-03-01T00:00:00.000Z"
    );
    assert_eq!(
        render_index("tfo-{type}-%Y.%m.%d-%H%%", "traces", T).unwrap(),
        "tfo-traces-2023.11.14-22%"
    );
    assert!(render_index("x-%j", "logs", T).is_err());
    assert!(render_index("x-%", "logs", T).is_err());
    assert!(render_index("x-{kind}", "logs", T).is_err());
    assert!(render_index("x-{type", "logs", T).is_err());
}

#[test]
fn splitting_respects_the_byte_limit() {
    let item = |n: usize| BulkItem {
        signal: Signal::Logs,
        action: "a".repeat(n),
        source: "b".repeat(n),
    };
    // wire_len = 2n + 2
    let items = vec![item(4), item(4), item(4), item(49), item(1)];
    assert_eq!(items[0].wire_len(), 10);
    let all: Vec<usize> = (0..items.len()).collect();
    let (chunks, oversized) = split(&all, &items, 20);
    assert_eq!(chunks, vec![vec![0, 1], vec![2, 4]]);
    assert_eq!(oversized, vec![3]);
    let (chunks, _) = split(&[4, 2], &items, 20);
    assert_eq!(chunks, vec![vec![4, 2]]);
    let joined = body(&[0, 4], &items);
    assert_eq!(joined, b"aaaa\nbbbb\na\nb\n");
}

#[test]
fn the_documented_failed_actions_response() {
    // docs-bulk.html, "Example with failed actions": two 404s and one 201.
    let body = include_str!("../tests/data/bulk_failed_actions.json");
    let r = parse_bulk_response(body.as_bytes(), 3).unwrap();
    assert_eq!(
        r,
        [
            ItemResult::Drop("404 document_missing_exception: [5]: document missing".into()),
            ItemResult::Drop("404 document_missing_exception: [6]: document missing".into()),
            ItemResult::Ok,
        ]
    );
    assert!(parse_bulk_response(body.as_bytes(), 2).is_err());
}

#[test]
fn item_statuses_are_told_apart() {
    let body = r#"{"took":3,"errors":true,"items":[
        {"create":{"_index":"logs-a-b","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"}}},
        {"create":{"_index":"logs-a-b","status":400,"error":{"type":"document_parsing_exception","reason":"failed to parse field [labels.retry] of type [long]"}}},
        {"create":{"_index":"logs-a-b","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}},
        {"create":{"_index":"logs-a-b","_id":"x","status":201,"result":"created"}},
        {"index":{"_index":"i","status":409,"error":"conflict"}}
    ]}"#;
    let r = parse_bulk_response(body.as_bytes(), 5).unwrap();
    assert!(
        matches!(&r[0], ItemResult::Retry(w) if w.starts_with("429 es_rejected_execution_exception"))
    );
    assert!(matches!(&r[1], ItemResult::Drop(w) if w.contains("document_parsing_exception")));
    assert!(matches!(&r[2], ItemResult::Retry(w) if w.contains("unavailable_shards_exception")));
    assert_eq!(r[3], ItemResult::Ok);
    assert_eq!(r[4], ItemResult::Drop("409: conflict".into()));
    // No errors: the items need not be read.
    assert_eq!(
        parse_bulk_response(br#"{"took":1,"errors":false,"items":[]}"#, 2).unwrap(),
        [ItemResult::Ok, ItemResult::Ok]
    );
    assert!(parse_bulk_response(b"<html>", 1).is_err());
    assert!(parse_bulk_response(br#"{"items":[]}"#, 1).is_err());
}
