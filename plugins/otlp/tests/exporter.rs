//! The exporter, driven through the plugin's exported entry points against the
//! strict local server of `tfo-plugin-common` (feature `testing`), which records
//! each request as it arrived and answers from a script:
//! - the captured bodies, protobuf and OTLP/JSON, are decoded by an independent
//!   decoder, the official Python `opentelemetry-proto` package
//!   (`otlp_decode.py`), and checked field by field;
//! - method, paths (only the signals present), content type, gzip, configured
//!   headers, TLS verification;
//! - the documented answers: 429 + Retry-After (retryable with the delay), 400
//!   (permanent, with the Status message), 503 on the second signal (retryable, and
//!   the retry does not resend the delivered signal), 200 with `partial_success`
//!   (logged, counted, `accepted` reduced, shown in health).

mod common;

use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::collector::{
    logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceResponse},
    trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse},
};
use prost::Message as _;
use serde_json::Value;
use tfo_plugin_api::testing::{create_started, export};
use tfo_plugin_api::{
    AnyValue, Batch, DataPoint, ErrorKind, HistogramValue, KeyValue, LogRecord, Metric, MetricKind,
    PluginInstanceBox, PointValue, Quantile, Resource, Span, SpanEvent, SpanKind, StatusCode,
    SummaryValue, Temporality,
};
use tfo_plugin_common::testing::{ScriptedResponse, TestServer};

const WAIT: Duration = Duration::from_secs(10);
const PY_MODULES: &str =
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2, google.protobuf";

const TRACE_ID: [u8; 16] = [
    0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c,
];
const PARENT_ID: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74];
const CHILD_ID: [u8; 8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];

fn point(value: PointValue, attrs: Vec<KeyValue>) -> DataPoint {
    DataPoint {
        attributes: attrs.into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        time_unix_nano: 1_700_000_010_000_000_000,
        value,
    }
}

fn metric(
    name: &str,
    kind: MetricKind,
    t: Temporality,
    mono: bool,
    points: Vec<DataPoint>,
) -> Metric {
    let mut m = Metric::gauge(name, "1", 0, 0.0, vec![]);
    m.kind = kind;
    m.temporality = t;
    m.is_monotonic = mono;
    m.points = points.into();
    m
}

fn metrics() -> Vec<Metric> {
    let mut temp = Metric::gauge(
        "temperature",
        "Cel",
        1_700_000_010_000_000_000,
        21.5,
        vec![KeyValue::new("room", "lab")],
    );
    temp.description = "room temperature".into();
    vec![
        metric(
            "requests",
            MetricKind::Sum,
            Temporality::Cumulative,
            true,
            vec![
                point(
                    PointValue::Int(7),
                    vec![
                        KeyValue::new("route", "/a"),
                        KeyValue::new("otel.scope.name", "tfo.scope"),
                        KeyValue::new("otel.scope.version", "2.0"),
                    ],
                ),
                point(PointValue::Double(1.5), vec![KeyValue::new("route", "/b")]),
            ],
        ),
        temp,
        metric(
            "latency",
            MetricKind::Histogram,
            Temporality::Delta,
            false,
            vec![point(
                PointValue::Histogram(HistogramValue {
                    count: 3,
                    sum: Some(333.0).into(),
                    bounds: vec![10.0, 100.0].into(),
                    bucket_counts: vec![1, 1, 1].into(),
                    min: Some(3.0).into(),
                    max: Some(300.0).into(),
                }),
                vec![],
            )],
        ),
        metric(
            "rpc",
            MetricKind::Summary,
            Temporality::Unspecified,
            false,
            vec![point(
                PointValue::Summary(SummaryValue {
                    count: 4,
                    sum: 10.0,
                    quantiles: vec![
                        Quantile {
                            quantile: 0.5,
                            value: 2.0,
                        },
                        Quantile {
                            quantile: 0.99,
                            value: 5.0,
                        },
                    ]
                    .into(),
                }),
                vec![],
            )],
        ),
    ]
}

fn spans() -> Vec<Span> {
    let parent = Span {
        trace_id: TRACE_ID,
        span_id: PARENT_ID,
        parent_span_id: [0; 8],
        name: "checkout".into(),
        kind: SpanKind::Server,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_001_000_000_000,
        status_code: StatusCode::Error,
        status_message: "boom".into(),
        attributes: vec![
            KeyValue::new("http.status_code", 500i64),
            KeyValue::new("ratio", 0.25),
            KeyValue::new("cached", false),
            KeyValue {
                key: "blob".into(),
                value: AnyValue::Bytes(vec![0xde, 0xad].into()),
            },
        ]
        .into(),
        events: vec![SpanEvent {
            name: "retry".into(),
            time_unix_nano: 1_700_000_000_500_000_000,
            attributes: vec![KeyValue::new("attempt", 2i64)].into(),
        }]
        .into(),
    };
    let child = Span {
        span_id: CHILD_ID,
        parent_span_id: PARENT_ID,
        name: "db.query".into(),
        kind: SpanKind::Client,
        status_code: StatusCode::Unset,
        status_message: "".into(),
        attributes: vec![].into(),
        events: vec![].into(),
        ..parent.clone()
    };
    vec![parent, child]
}

fn logs() -> Vec<LogRecord> {
    vec![
        LogRecord {
            time_unix_nano: 1_700_000_000_100_000_000,
            observed_time_unix_nano: 1_700_000_000_200_000_000,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: AnyValue::Str("disk full".into()),
            attributes: vec![KeyValue::new("disk", "sda")].into(),
            trace_id: TRACE_ID,
            span_id: CHILD_ID,
        },
        LogRecord {
            time_unix_nano: 0,
            observed_time_unix_nano: 1_700_000_000_300_000_000,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: AnyValue::Int(42),
            attributes: vec![].into(),
            trace_id: [0; 16],
            span_id: [0; 8],
        },
    ]
}

fn resource() -> Resource {
    Resource {
        attributes: vec![
            KeyValue::new("service.name", "tfo-test"),
            KeyValue::new("host.name", "h1"),
        ]
        .into(),
    }
}

fn full_batch() -> Batch {
    Batch {
        resource: resource(),
        metrics: metrics().into(),
        spans: spans().into(),
        logs: logs().into(),
    }
}

fn exporter(host: &TestHost, server: &TestServer, extra: &str) -> PluginInstanceBox {
    let ca = if server.scheme() == "https" {
        format!(r#", "ca_file": {:?}"#, server.ca_file())
    } else {
        String::new()
    };
    let config = format!(
        r#"{{"exporter": {{"endpoint": "{}"{ca}{extra}}}}}"#,
        server.url("/")
    );
    create_started(module(), host, "otlp", &config)
}

fn decode_with_python(signal: &str, encoding: &str, body: &[u8]) -> Value {
    serde_json::from_str(&run_python("otlp_decode.py", &[signal, encoding], body)).unwrap()
}

/// An attribute list of MessageToDict output as (key, value object) pairs.
fn attrs(v: &Value) -> Vec<(String, Value)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|kv| (kv["key"].as_str().unwrap().to_string(), kv["value"].clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn check_resource(resource: &Value) {
    assert_eq!(
        attrs(&resource["attributes"]),
        [
            (
                "service.name".to_string(),
                serde_json::json!({"stringValue": "tfo-test"})
            ),
            (
                "host.name".to_string(),
                serde_json::json!({"stringValue": "h1"})
            ),
        ]
    );
}

fn check_metrics(v: &Value) {
    let rm = &v["resourceMetrics"];
    assert_eq!(rm.as_array().unwrap().len(), 1, "{v}");
    check_resource(&rm[0]["resource"]);
    let scopes = rm[0]["scopeMetrics"].as_array().unwrap();
    assert_eq!(scopes.len(), 2, "{v}");
    assert_eq!(
        scopes[0]["scope"],
        serde_json::json!({"name": "tfo.scope", "version": "2.0"})
    );
    let scoped = &scopes[0]["metrics"][0];
    assert_eq!(scoped["name"], "requests");
    assert_eq!(scoped["sum"]["isMonotonic"], true);
    assert_eq!(
        scoped["sum"]["aggregationTemporality"],
        "AGGREGATION_TEMPORALITY_CUMULATIVE"
    );
    let p = &scoped["sum"]["dataPoints"][0];
    assert_eq!(p["asInt"], "7");
    assert_eq!(p["startTimeUnixNano"], "1700000000000000000");
    assert_eq!(p["timeUnixNano"], "1700000010000000000");
    assert_eq!(
        attrs(&p["attributes"]),
        [(
            "route".to_string(),
            serde_json::json!({"stringValue": "/a"})
        )],
        "the scope attributes are removed"
    );
    let rest = scopes[1]["metrics"].as_array().unwrap();
    assert!(
        scopes[1]
            .get("scope")
            .is_none_or(|s| s.get("name").is_none()),
        "{}",
        scopes[1]
    );
    let names: Vec<&str> = rest.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["requests", "temperature", "latency", "rpc"]);
    assert_eq!(rest[0]["sum"]["dataPoints"][0]["asDouble"], 1.5);
    let gauge = &rest[1];
    assert_eq!(gauge["unit"], "Cel");
    assert_eq!(gauge["description"], "room temperature");
    assert_eq!(gauge["gauge"]["dataPoints"][0]["asDouble"], 21.5);
    let h = &rest[2]["histogram"];
    assert_eq!(h["aggregationTemporality"], "AGGREGATION_TEMPORALITY_DELTA");
    let hp = &h["dataPoints"][0];
    assert_eq!(hp["count"], "3");
    assert_eq!(hp["sum"], 333.0);
    assert_eq!(hp["min"], 3.0);
    assert_eq!(hp["max"], 300.0);
    assert_eq!(hp["bucketCounts"], serde_json::json!(["1", "1", "1"]));
    assert_eq!(hp["explicitBounds"], serde_json::json!([10.0, 100.0]));
    let sp = &rest[3]["summary"]["dataPoints"][0];
    assert_eq!(sp["count"], "4");
    assert_eq!(sp["sum"], 10.0);
    assert_eq!(
        sp["quantileValues"],
        serde_json::json!([{"quantile": 0.5, "value": 2.0}, {"quantile": 0.99, "value": 5.0}])
    );
}

fn check_traces(v: &Value) {
    let rs = &v["resourceSpans"][0];
    check_resource(&rs["resource"]);
    let spans = rs["scopeSpans"][0]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    let (p, c) = (&spans[0], &spans[1]);
    assert_eq!(p["traceId"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(p["spanId"], "eee19b7ec3c1b174");
    assert!(p.get("parentSpanId").is_none(), "root span: {p}");
    assert_eq!(p["name"], "checkout");
    assert_eq!(p["kind"], "SPAN_KIND_SERVER");
    assert_eq!(p["startTimeUnixNano"], "1700000000000000000");
    assert_eq!(p["endTimeUnixNano"], "1700000001000000000");
    assert_eq!(
        p["status"],
        serde_json::json!({"code": "STATUS_CODE_ERROR", "message": "boom"})
    );
    assert_eq!(
        attrs(&p["attributes"]),
        [
            (
                "http.status_code".to_string(),
                serde_json::json!({"intValue": "500"})
            ),
            (
                "ratio".to_string(),
                serde_json::json!({"doubleValue": 0.25})
            ),
            (
                "cached".to_string(),
                serde_json::json!({"boolValue": false})
            ),
            (
                "blob".to_string(),
                serde_json::json!({"bytesValue": "3q0="})
            ),
        ]
    );
    assert_eq!(p["events"][0]["name"], "retry");
    assert_eq!(p["events"][0]["timeUnixNano"], "1700000000500000000");
    assert_eq!(
        attrs(&p["events"][0]["attributes"]),
        [("attempt".to_string(), serde_json::json!({"intValue": "2"}))]
    );
    assert_eq!(c["spanId"], "0102030405060708");
    assert_eq!(c["parentSpanId"], "eee19b7ec3c1b174");
    assert_eq!(c["kind"], "SPAN_KIND_CLIENT");
    assert!(c.get("status").is_none(), "unset status is not sent: {c}");
}

fn check_logs(v: &Value) {
    let rl = &v["resourceLogs"][0];
    check_resource(&rl["resource"]);
    let recs = rl["scopeLogs"][0]["logRecords"].as_array().unwrap();
    assert_eq!(recs.len(), 2);
    let e = &recs[0];
    assert_eq!(e["severityNumber"], "SEVERITY_NUMBER_ERROR");
    assert_eq!(e["severityText"], "ERROR");
    assert_eq!(e["body"], serde_json::json!({"stringValue": "disk full"}));
    assert_eq!(e["traceId"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(e["spanId"], "0102030405060708");
    assert_eq!(e["timeUnixNano"], "1700000000100000000");
    assert_eq!(e["observedTimeUnixNano"], "1700000000200000000");
    assert_eq!(
        attrs(&e["attributes"]),
        [(
            "disk".to_string(),
            serde_json::json!({"stringValue": "sda"})
        )]
    );
    let i = &recs[1];
    assert_eq!(i["severityNumber"], "SEVERITY_NUMBER_INFO");
    assert_eq!(i["body"], serde_json::json!({"intValue": "42"}));
    assert!(
        i.get("traceId").is_none() && i.get("spanId").is_none(),
        "{i}"
    );
    assert!(i.get("timeUnixNano").is_none(), "{i}");
}

fn check_all(encoding: &str, reqs: &[tfo_plugin_common::testing::RecordedRequest]) {
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/v1/metrics", "/v1/traces", "/v1/logs"]);
    check_metrics(&decode_with_python("metrics", encoding, &reqs[0].body));
    check_traces(&decode_with_python("traces", encoding, &reqs[1].body));
    check_logs(&decode_with_python("logs", encoding, &reqs[2].body));
}

#[test]
fn protobuf_over_https_with_gzip_and_headers_decoded_by_python() {
    if !python_has(
        PY_MODULES,
        "protobuf_over_https_with_gzip_and_headers_decoded_by_python",
    ) {
        return;
    }
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = exporter(
        &h,
        &server,
        r#", "compression": "gzip", "headers": {"Authorization": "Bearer s3cret", "X-Tenant": "acme"}"#,
    );
    let batch = full_batch();
    let ok = export(&mut inst, &batch).unwrap();
    assert_eq!(ok.accepted, batch.item_count());
    assert_eq!(batch.item_count(), 9);
    let reqs = server.wait_for_requests(3, WAIT);
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_ne!(r.raw_body, r.body, "the wire body is compressed");
        assert!(r.decode_error.is_none());
        assert_eq!(r.header("authorization"), Some("Bearer s3cret"));
        assert_eq!(r.header("x-tenant"), Some("acme"));
        assert!(r.header("user-agent").unwrap().starts_with("tfo-agent/"));
    }
    check_all("protobuf", &reqs);
    assert!(inst.shutdown(1000).is_ok());
    assert!(h.panics().is_empty());
}

#[test]
fn json_encoding_decoded_strictly_by_python() {
    if !python_has(PY_MODULES, "json_encoding_decoded_strictly_by_python") {
        return;
    }
    let server = TestServer::http();
    let h = TestHost::default();
    let mut inst = exporter(&h, &server, r#", "encoding": "json""#);
    export(&mut inst, &full_batch()).unwrap();
    let reqs = server.wait_for_requests(3, WAIT);
    for r in &reqs {
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.header("content-encoding").is_none());
        assert_eq!(r.raw_body, r.body);
    }
    // The OTLP/JSON specifics, on the raw text: hex ids, integer enums, int64 as
    // strings.
    let traces: Value = serde_json::from_slice(&reqs[1].body).unwrap();
    let span = &traces["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(span["kind"], 2);
    assert_eq!(span["startTimeUnixNano"], "1700000000000000000");
    check_all("json", &reqs);
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn only_the_signals_present_are_sent() {
    let server = TestServer::http();
    let h = TestHost::default();
    let mut inst = exporter(&h, &server, "");
    let only_logs = Batch {
        resource: resource(),
        logs: logs().into(),
        ..Batch::default()
    };
    assert_eq!(export(&mut inst, &only_logs).unwrap().accepted, 2);
    let only_spans = Batch {
        spans: spans().into(),
        ..Batch::default()
    };
    assert_eq!(export(&mut inst, &only_spans).unwrap().accepted, 2);
    // An empty batch sends nothing.
    assert_eq!(export(&mut inst, &Batch::default()).unwrap().accepted, 0);
    let reqs = server.wait_for_requests(2, WAIT);
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/v1/logs", "/v1/traces"]);
    assert_eq!(server.requests().len(), 2);
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn throttling_429_is_retryable_with_the_servers_delay() {
    let server = TestServer::http();
    server.push_response(ScriptedResponse::status(429).header("Retry-After", "3"));
    let h = TestHost::default();
    let mut inst = exporter(&h, &server, "");
    let batch = Batch {
        logs: logs().into(),
        ..Batch::default()
    };
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.retry_after_ms.into_option(), Some(3000));
    assert!(
        e.message.contains("/v1/logs") && e.message.contains("429"),
        "{e}"
    );
    // The retry goes through.
    assert_eq!(export(&mut inst, &batch).unwrap().accepted, 2);
    assert_eq!(server.wait_for_requests(2, WAIT).len(), 2);
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn bad_request_400_is_permanent_and_quotes_the_status() {
    let server = TestServer::http();
    let status = tfo_otlp::status::Status {
        code: 3,
        message: "span 7 has an invalid trace id".into(),
    };
    server.push_response(
        ScriptedResponse::status(400)
            .header("Content-Type", "application/x-protobuf")
            .body(status.encode_to_vec()),
    );
    server.push_response(ScriptedResponse::status(500).header("Retry-After", "1"));
    let h = TestHost::default();
    let mut inst = exporter(&h, &server, "");
    let batch = Batch {
        spans: spans().into(),
        ..Batch::default()
    };
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(
        e.message
            .contains("HTTP 400 Bad Request: span 7 has an invalid trace id"),
        "{e}"
    );
    assert_eq!(e.retry_after_ms.into_option(), None);
    // 500 is not in the spec's retryable list.
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn a_retried_batch_does_not_resend_what_was_delivered() {
    let server = TestServer::http();
    server.push_response(ScriptedResponse::status(200)); // metrics
    server.push_response(ScriptedResponse::status(503).header("Retry-After", "2")); // traces
    let h = TestHost::default();
    let mut inst = exporter(&h, &server, "");
    let batch = full_batch();
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), Some(2000));
    assert_eq!(e.accepted, 5, "the metric points were delivered");
    // The host hands the same batch again.
    assert_eq!(export(&mut inst, &batch).unwrap().accepted, 9);
    let paths: Vec<String> = server
        .wait_for_requests(4, WAIT)
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(
        paths,
        ["/v1/metrics", "/v1/traces", "/v1/traces", "/v1/logs"]
    );
    // A different batch starts from scratch.
    export(&mut inst, &full_batch()).unwrap();
    assert_eq!(server.wait_for_requests(7, WAIT)[4].path, "/v1/metrics");
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn partial_success_is_logged_counted_and_reduces_accepted() {
    let server = TestServer::http();
    let traces_resp = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 1,
            error_message: "span too old".into(),
        }),
    };
    server.push_response(
        ScriptedResponse::status(200)
            .header("Content-Type", "application/x-protobuf")
            .body(traces_resp.encode_to_vec()),
    );
    // JSON answer for logs (the exporter sends protobuf, a server may still answer
    // JSON; the content type says which).
    server.push_response(
        ScriptedResponse::status(200)
            .header("Content-Type", "application/json")
            .body(r#"{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"quota"}}"#),
    );
    let h = TestHost::default();
    let mut inst = exporter(&h, &server, "");
    let batch = Batch {
        spans: spans().into(),
        logs: logs().into(),
        ..Batch::default()
    };
    let ok = export(&mut inst, &batch).unwrap();
    assert_eq!(ok.accepted, 1, "4 items, 3 rejected; not retried");
    assert_eq!(server.requests().len(), 2);
    let line = h.wait_for_log("rejected 1 of 2 spans", WAIT);
    assert!(line.contains("span too old"), "{line}");
    h.wait_for_log("rejected 2 of 2 log records: quota", WAIT);
    let health = inst.health();
    assert_eq!(health.state, tfo_plugin_api::HealthState::Healthy);
    assert!(
        health.reason.contains("backend rejected 3 item(s) so far"),
        "{health:?}"
    );
    // A warning without rejections is not counted.
    let warn = ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: 0,
            error_message: "deprecated attribute".into(),
        }),
    };
    server.push_response(
        ScriptedResponse::status(200)
            .header("Content-Type", "application/x-protobuf")
            .body(warn.encode_to_vec()),
    );
    let only_logs = Batch {
        logs: logs().into(),
        ..Batch::default()
    };
    assert_eq!(export(&mut inst, &only_logs).unwrap().accepted, 2);
    h.wait_for_log("backend warning", WAIT);
    assert!(inst.health().reason.contains("3 item(s)"));
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn tls_is_verified() {
    let server = TestServer::https();
    let h = TestHost::default();
    // No ca_file: the test CA is not trusted.
    let config = format!(r#"{{"exporter": {{"endpoint": "{}"}}}}"#, server.url(""));
    let mut inst = create(&h, &config).unwrap();
    let batch = Batch {
        logs: logs().into(),
        ..Batch::default()
    };
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::Retryable,
        "transport errors are retryable: {e}"
    );
    assert!(server.requests().is_empty());
    assert!(inst.shutdown(1000).is_ok());
    // insecure_skip_verify accepts it.
    let config = format!(
        r#"{{"exporter": {{"endpoint": "{}", "insecure_skip_verify": true}}}}"#,
        server.url("")
    );
    let mut inst = create(&h, &config).unwrap();
    export(&mut inst, &batch).unwrap();
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn exporter_config_errors_carry_their_paths() {
    let h = TestHost::default();
    let e = create(
        &h,
        r#"{"exporter": {"endpoint": "ftp://x", "headers": {"Content-Type": "text/plain"}, "timeout": "0s"}}"#,
    )
    .err()
    .unwrap();
    let paths: Vec<&str> = e.config_errors.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "exporter.endpoint",
            "exporter.headers.Content-Type",
            "exporter.timeout"
        ]
    );
    let e = create(
        &h,
        r#"{"exporter": {"endpoint": "http://x", "encoding": "xml"}}"#,
    )
    .err()
    .unwrap();
    assert_eq!(e.config_errors[0].path.as_str(), "exporter.encoding");
    // A CA file that is not PEM.
    let dir = std::env::temp_dir().join(format!("tfo-otlp-ca-{}", std::process::id()));
    std::fs::write(&dir, "not a certificate").unwrap();
    let e = create(
        &h,
        &format!(r#"{{"exporter": {{"endpoint": "https://x", "ca_file": {dir:?}}}}}"#),
    )
    .err()
    .unwrap();
    std::fs::remove_file(&dir).unwrap();
    assert_eq!(
        e.config_errors[0].path.as_str(),
        "exporter.ca_file",
        "{e:?}"
    );
}
