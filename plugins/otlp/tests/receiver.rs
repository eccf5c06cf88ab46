//! The receiver, driven through the plugin's exported entry points with a fake host
//! whose `emit` records batches:
//! - the official OpenTelemetry Python SDK and its OTLP/HTTP exporters send spans,
//!   logs and metrics (`otlp_sdk_send.py`), and what reached `emit` is checked field
//!   by field;
//! - the official OTLP/JSON examples sent by a raw HTTP client;
//! - every documented error answer (400, 404, 405, 413, 415, 503 + Retry-After,
//!   partial success), and the connection staying usable after a bad request;
//! - SO_REUSEPORT (two generations on one port) and shutdown closing the port.

mod common;

use std::{io::Write as _, net::TcpStream, time::Duration};

use common::*;
use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::ExportLogsServiceResponse,
        metrics::v1::ExportMetricsServiceResponse,
        trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    },
    common::v1::{any_value, AnyValue as OAny, KeyValue as OKeyValue},
    resource::v1::Resource as OResource,
    trace::v1::{ResourceSpans, ScopeSpans, Span as OSpan},
};
use prost::Message as _;
use tfo_otlp::status::Status;
use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, AnyValue, DataTypes, EmitStatus, MetricKind,
    PluginKind, PointValue, SpanKind, StatusCode, Temporality,
};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn example(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn shutdown(mut inst: tfo_plugin_api::PluginInstanceBox) {
    if let RResult::RErr(e) = inst.shutdown(5000) {
        panic!("shutdown: {e}");
    }
}

fn span(name: &str, trace_id: Vec<u8>) -> OSpan {
    OSpan {
        trace_id,
        span_id: vec![7; 8],
        name: name.into(),
        ..Default::default()
    }
}

fn traces_request(resources: Vec<(&str, Vec<OSpan>)>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: resources
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: Some(OResource {
                    attributes: vec![OKeyValue {
                        key: "service.name".into(),
                        value: Some(OAny {
                            value: Some(any_value::Value::StringValue(service.into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
    .encode_to_vec()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn descriptor_is_a_source_and_sink_for_all_data() {
    let d = (module().descriptor())();
    assert_eq!(d.name.as_str(), "otlp");
    assert_eq!(d.kind, PluginKind::SourceAndSink);
    assert_eq!(d.data_types, DataTypes::ALL);
    assert_eq!(d.version.as_str(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn config_errors_carry_their_paths() {
    let h = TestHost::default();
    let e = create(&h, "{}").err().expect("neither block is an error");
    assert_eq!(e.config_errors[0].path.as_str(), "receiver");
    let e = create(&h, r#"{"receiver": {"listen": "nowhere"}}"#)
        .err()
        .unwrap();
    assert_eq!(e.config_errors[0].path.as_str(), "receiver.listen");
    let e = create(&h, r#"{"receiver": {"max_body": 1}}"#)
        .err()
        .unwrap();
    assert_eq!(e.config_errors[0].path.as_str(), "receiver.max_body");
    assert!(
        e.config_errors[0]
            .message
            .contains("unknown field `max_body`"),
        "{e:?}"
    );
    // `create` alone binds nothing (what `tfo-agent validate` does).
    let mut inst = create(&h, r#"{"receiver": {"listen": "127.0.0.1:0"}}"#).unwrap();
    assert!(!h.logs().iter().any(|(_, l)| l.contains("listening")));
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn python_sdk_spans_logs_and_metrics_reach_emit() {
    if !python_has(
        "opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http",
        "python_sdk_spans_logs_and_metrics_reach_emit",
    ) {
        return;
    }
    let h = TestHost::default();
    let (inst, addr) = start_receiver(&h, "");
    let out = run_python("otlp_sdk_send.py", &[&format!("http://{addr}")], b"");
    let ids: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let batches = h.take_batches();
    shutdown(inst);
    assert!(h.panics().is_empty(), "{:?}", h.panics());

    // Every batch carries the SDK's resource.
    for b in &batches {
        let r = &b.resource.attributes;
        assert_eq!(attr_str(r, "service.name").as_deref(), Some("py-sdk-test"));
        assert_eq!(attr_str(r, "deployment.environment").as_deref(), Some("ci"));
        assert_eq!(
            attr_str(r, "telemetry.sdk.language").as_deref(),
            Some("python")
        );
    }
    assert_eq!(batches.len(), 3, "one batch per request: {batches:#?}");

    // Traces.
    let spans: Vec<_> = batches.iter().flat_map(|b| b.spans.iter()).collect();
    assert_eq!(spans.len(), 2);
    let parent = spans
        .iter()
        .find(|s| s.name.as_str() == "checkout")
        .unwrap();
    let child = spans
        .iter()
        .find(|s| s.name.as_str() == "db.query")
        .unwrap();
    assert_eq!(hex(&parent.trace_id), ids["trace_id"]);
    assert_eq!(hex(&child.trace_id), ids["trace_id"]);
    assert_eq!(hex(&parent.span_id), ids["parent_span_id"]);
    assert_eq!(hex(&child.span_id), ids["child_span_id"]);
    assert_eq!(child.parent_span_id, parent.span_id);
    assert_eq!(parent.parent_span_id, [0; 8], "root span");
    assert_eq!(parent.kind, SpanKind::Server);
    assert_eq!(child.kind, SpanKind::Client);
    assert_eq!(child.status_code, StatusCode::Error);
    assert_eq!(child.status_message.as_str(), "connection reset");
    assert_eq!(parent.status_code, StatusCode::Unset);
    assert!(parent.start_time_unix_nano > 1_600_000_000_000_000_000);
    assert!(parent.end_time_unix_nano >= child.end_time_unix_nano);
    assert_eq!(
        attr_str(&parent.attributes, "http.route").as_deref(),
        Some("/checkout")
    );
    assert_eq!(attr(&parent.attributes, "retries"), Some(&AnyValue::Int(2)));
    assert_eq!(
        attr_str(&parent.attributes, "otel.scope.name").as_deref(),
        Some("tfo.test.tracer")
    );
    assert_eq!(
        attr_str(&parent.attributes, "otel.scope.version").as_deref(),
        Some("1.2.3")
    );
    assert_eq!(parent.events.len(), 1);
    assert_eq!(parent.events[0].name.as_str(), "cache miss");
    assert_eq!(
        attr_str(&parent.events[0].attributes, "key").as_deref(),
        Some("cart:42")
    );

    // Logs, correlated with the spans they were written in.
    let logs: Vec<_> = batches.iter().flat_map(|b| b.logs.iter()).collect();
    assert_eq!(logs.len(), 2);
    let err = logs
        .iter()
        .find(|l| l.body == AnyValue::Str("disk full".into()))
        .unwrap();
    assert_eq!(err.severity_number, 17);
    assert_eq!(err.severity_text.as_str(), "ERROR");
    assert_eq!(hex(&err.trace_id), ids["trace_id"]);
    assert_eq!(hex(&err.span_id), ids["child_span_id"]);
    assert_eq!(attr_str(&err.attributes, "disk").as_deref(), Some("sda"));
    assert_eq!(
        attr_str(&err.attributes, "otel.scope.name").as_deref(),
        Some("tfo.test.logger")
    );
    assert!(err.time_unix_nano > 0 && err.observed_time_unix_nano > 0);
    let warn = logs
        .iter()
        .find(|l| l.body == AnyValue::Str("slow checkout".into()))
        .unwrap();
    assert_eq!(warn.severity_number, 13);
    assert_eq!(hex(&warn.span_id), ids["parent_span_id"]);

    // Metrics.
    let metrics: Vec<_> = batches.iter().flat_map(|b| b.metrics.iter()).collect();
    let m = |name: &str| {
        metrics
            .iter()
            .find(|m| m.name.as_str() == name)
            .unwrap_or_else(|| panic!("no metric {name}: {metrics:#?}"))
    };
    let requests = m("requests");
    assert_eq!(
        (requests.kind, requests.temporality, requests.is_monotonic),
        (MetricKind::Sum, Temporality::Cumulative, true)
    );
    assert_eq!(requests.unit.as_str(), "1");
    assert_eq!(requests.description.as_str(), "handled requests");
    assert_eq!(requests.points.len(), 1);
    assert_eq!(requests.points[0].value, PointValue::Int(7));
    assert_eq!(
        attr_str(&requests.points[0].attributes, "route").as_deref(),
        Some("/a")
    );
    assert_eq!(
        attr_str(&requests.points[0].attributes, "otel.scope.name").as_deref(),
        Some("tfo.test.meter")
    );
    assert!(requests.points[0].start_time_unix_nano > 0);
    let depth = m("queue.depth");
    assert_eq!(
        (depth.kind, depth.temporality, depth.is_monotonic),
        (MetricKind::Sum, Temporality::Cumulative, false)
    );
    assert_eq!(depth.points[0].value, PointValue::Int(3));
    let latency = m("latency");
    assert_eq!(
        (latency.kind, latency.temporality),
        (MetricKind::Histogram, Temporality::Cumulative)
    );
    let PointValue::Histogram(h) = &latency.points[0].value else {
        panic!("{latency:?}")
    };
    assert_eq!(h.count, 3);
    assert_eq!(h.sum.into_option(), Some(333.0));
    assert_eq!(h.min.into_option(), Some(3.0));
    assert_eq!(h.max.into_option(), Some(300.0));
    assert_eq!(h.bucket_counts.len(), h.bounds.len() + 1);
    assert_eq!(h.bucket_counts.iter().sum::<u64>(), 3);
    let temperature = m("temperature");
    assert_eq!(temperature.kind, MetricKind::Gauge);
    assert_eq!(temperature.points[0].value, PointValue::Double(21.5));
    assert_eq!(
        attr_str(&temperature.points[0].attributes, "room").as_deref(),
        Some("lab")
    );
}

#[test]
fn official_json_examples_from_a_raw_client() {
    let h = TestHost::default();
    let (inst, addr) = start_receiver(&h, "");
    let mut c = RawClient::connect(addr);
    for (path, file) in [
        ("/v1/traces", "trace.json"),
        ("/v1/metrics", "metrics.json"),
        ("/v1/logs", "logs.json"),
    ] {
        let r = c.request("POST", path, &[("Content-Type", JSON)], &example(file));
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.header("content-type"), Some(JSON));
        // Full success: partial_success left unset, so the message is empty.
        assert_eq!(r.body, b"{}", "{path}");
    }
    // gzip, and a charset parameter.
    let r = c.request(
        "POST",
        "/v1/traces",
        &[
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Encoding", "gzip"),
        ],
        &gzip(&example("trace.json")),
    );
    assert_eq!(r.status, 200);
    let batches = h.take_batches();
    shutdown(inst);

    assert_eq!(batches.len(), 4);
    let span = &batches[0].spans[0];
    assert_eq!(hex(&span.trace_id), "5b8efff798038103d269b633813fc60c");
    assert_eq!(hex(&span.span_id), "eee19b7ec3c1b174");
    assert_eq!(hex(&span.parent_span_id), "eee19b7ec3c1b173");
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(
        attr_str(&batches[0].resource.attributes, "service.name").as_deref(),
        Some("my.service")
    );
    let names: Vec<&str> = batches[1].metrics.iter().map(|m| m.name.as_str()).collect();
    assert!(
        names.contains(&"my.counter") && names.contains(&"my.histogram"),
        "{names:?}"
    );
    let counter = &batches[1].metrics[0];
    assert_eq!(
        (counter.kind, counter.temporality, counter.is_monotonic),
        (MetricKind::Sum, Temporality::Delta, true)
    );
    assert_eq!(counter.points[0].value, PointValue::Double(5.0));
    let log = &batches[2].logs[0];
    assert_eq!(log.severity_number, 10);
    assert_eq!(log.body, AnyValue::Str("Example log record".into()));
    assert_eq!(
        attr(&log.attributes, "int.attribute"),
        Some(&AnyValue::Int(10))
    );
    assert_eq!(
        attr_str(&log.attributes, "array.attribute").as_deref(),
        Some(r#"["many","values"]"#)
    );
    assert_eq!(
        batches[3], batches[0],
        "gzip body decodes to the same batch"
    );
}

#[test]
fn json_with_enum_names_and_unknown_fields_is_accepted() {
    let h = TestHost::default();
    let (inst, addr) = start_receiver(&h, "");
    let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
        "traceId":"0102030405060708090A0B0C0D0E0F10","spanId":"0102030405060708",
        "name":"n","kind":"SPAN_KIND_PRODUCER","startTimeUnixNano":"5",
        "endTimeUnixNano":6,"status":{"code":"STATUS_CODE_OK"},"newField":[1,2]}]}]}]}"#;
    let r = post(addr, "/v1/traces", JSON, body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let b = h.take_batches();
    shutdown(inst);
    let s = &b[0].spans[0];
    assert_eq!(s.kind, SpanKind::Producer);
    assert_eq!(s.status_code, StatusCode::Ok);
    assert_eq!((s.start_time_unix_nano, s.end_time_unix_nano), (5, 6));
    assert_eq!(hex(&s.trace_id), "0102030405060708090a0b0c0d0e0f10");
}

#[test]
fn malformed_bodies_get_400_and_the_receiver_keeps_working() {
    let h = TestHost::default();
    let (inst, addr) = start_receiver(&h, "");
    let mut c = RawClient::connect(addr);
    /// (content type, extra headers, body, expected words in the Status message)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Vec<u8>, &'a str);
    let bad: [Case; 6] = [
        (
            PROTOBUF,
            &[],
            vec![0xff, 0xff, 0xff, 0xff],
            "invalid protobuf",
        ),
        // Field 1 (resource_spans) declared 100 bytes long, 2 present.
        (PROTOBUF, &[], vec![0x0a, 100, 1, 2], "invalid protobuf"),
        (JSON, &[], b"{\"resourceSpans\": [".to_vec(), "invalid JSON"),
        (
            JSON,
            &[],
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"not hex"}]}]}]}"#.to_vec(),
            "traceId",
        ),
        (
            JSON,
            &[],
            br#"{"resourceSpans": 5}"#.to_vec(),
            "ExportTraceServiceRequest",
        ),
        (
            PROTOBUF,
            &[("Content-Encoding", "gzip")],
            b"not gzip at all".to_vec(),
            "gzip",
        ),
    ];
    for (ct, extra, body, want) in bad {
        let mut headers = vec![("Content-Type", ct)];
        headers.extend_from_slice(extra);
        let r = c.request("POST", "/v1/traces", &headers, &body);
        assert_eq!(r.status, 400, "{want}");
        assert_eq!(
            r.header("content-type"),
            Some(ct),
            "same content type as the request"
        );
        let status: Status = if ct == JSON {
            serde_json::from_slice(&r.body).unwrap()
        } else {
            Status::decode(&r.body[..]).unwrap()
        };
        assert_eq!(status.code, 3);
        assert!(status.message.contains(want), "{want}: {}", status.message);
    }
    assert!(
        h.take_batches().is_empty(),
        "nothing of a bad request is emitted"
    );
    // Same connection, valid request.
    let r = c.request(
        "POST",
        "/v1/traces",
        &[("Content-Type", PROTOBUF)],
        &traces_request(vec![("svc", vec![span("ok", vec![1; 16])])]),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(PROTOBUF));
    let resp = ExportTraceServiceResponse::decode(&r.body[..]).unwrap();
    assert_eq!(resp.partial_success, None);
    assert_eq!(h.take_batches().len(), 1);
    shutdown(inst);
    assert!(h.panics().is_empty());
}

#[test]
fn wrong_path_method_type_encoding_and_size() {
    let h = TestHost::default();
    let (inst, addr) = start_receiver(&h, r#", "max_body_bytes": 1024"#);
    let mut c = RawClient::connect(addr);
    let ok_body = traces_request(vec![("svc", vec![span("a", vec![1; 16])])]);

    for path in ["/", "/v1/trace", "/v1development/profiles", "/v1/traces/x"] {
        let r = c.request("POST", path, &[("Content-Type", PROTOBUF)], &ok_body);
        assert_eq!(r.status, 404, "{path}");
        let st = Status::decode(&r.body[..]).unwrap();
        assert!(st.message.contains("/v1/traces"), "{}", st.message);
    }
    for method in ["GET", "PUT", "DELETE"] {
        let r = c.request(method, "/v1/metrics", &[("Content-Type", PROTOBUF)], b"");
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("POST"));
    }
    for ct in ["text/plain", "application/protobuf", "application/grpc"] {
        let r = c.request("POST", "/v1/logs", &[("Content-Type", ct)], &ok_body);
        assert_eq!(r.status, 415, "{ct}");
        assert!(Status::decode(&r.body[..])
            .unwrap()
            .message
            .contains("Content-Type"));
    }
    let r = c.request("POST", "/v1/logs", &[], &ok_body);
    assert_eq!(r.status, 415, "no content type");
    let r = c.request(
        "POST",
        "/v1/logs",
        &[("Content-Type", PROTOBUF), ("Content-Encoding", "br")],
        &ok_body,
    );
    assert_eq!(r.status, 415);
    assert!(Status::decode(&r.body[..])
        .unwrap()
        .message
        .contains("Content-Encoding"));

    // Over the limit as sent.
    let big = vec![b' '; 2000];
    let r = c.request("POST", "/v1/traces", &[("Content-Type", JSON)], &big);
    assert_eq!(r.status, 413);
    let st: Status = serde_json::from_slice(&r.body).unwrap();
    assert!(st.message.contains("1024"), "{}", st.message);
    // Refused on the declared length, before any body byte is sent.
    let mut c2 = RawClient::connect(addr);
    let r = c2.request_head_only(&format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {PROTOBUF}\r\n\
         Content-Length: 1000000000\r\n\r\n"
    ));
    assert_eq!(r.status, 413);
    // A small gzip body that expands over the limit.
    let mut c3 = RawClient::connect(addr);
    let bomb = gzip(&[b' '; 100_000]);
    assert!(bomb.len() < 1024);
    let r = c3.request(
        "POST",
        "/v1/traces",
        &[("Content-Type", JSON), ("Content-Encoding", "gzip")],
        &bomb,
    );
    assert_eq!(r.status, 413);
    assert!(serde_json::from_slice::<Status>(&r.body)
        .unwrap()
        .message
        .contains("decompressed"));

    assert!(h.take_batches().is_empty());
    // Still serving.
    let r = post(addr, "/v1/traces", PROTOBUF, &ok_body);
    assert_eq!(r.status, 200);
    shutdown(inst);
}

#[test]
fn invalid_items_are_a_partial_success() {
    let h = TestHost::default();
    let (inst, addr) = start_receiver(&h, "");
    let body = traces_request(vec![
        (
            "a",
            vec![span("good", vec![1; 16]), span("no trace id", vec![])],
        ),
        (
            "b",
            vec![span("short id", vec![1; 5]), span("good too", vec![2; 16])],
        ),
    ]);
    let r = post(addr, "/v1/traces", PROTOBUF, &body);
    assert_eq!(r.status, 200);
    let ps = ExportTraceServiceResponse::decode(&r.body[..])
        .unwrap()
        .partial_success
        .expect("partial_success is set");
    assert_eq!(ps.rejected_spans, 2);
    assert!(
        ps.error_message
            .contains("trace_id must be 16 bytes, got 0"),
        "{}",
        ps.error_message
    );
    assert!(ps.error_message.contains("got 5"), "{}", ps.error_message);
    let b = h.take_batches();
    assert_eq!(b.len(), 2, "one batch per resource");
    assert_eq!(b[0].spans[0].name.as_str(), "good");
    assert_eq!(b[1].spans[0].name.as_str(), "good too");

    // JSON metrics: a data point without a value.
    let body = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g",
        "gauge":{"dataPoints":[{"asInt":"1"},{"timeUnixNano":"1"}]}}]}]}]}"#;
    let r = post(addr, "/v1/metrics", JSON, body);
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedDataPoints"], "1");
    let resp: ExportMetricsServiceResponse = tfo_otlp::json::JsonCodec::new()
        .unwrap()
        .decode(&r.body)
        .unwrap();
    assert_eq!(resp.partial_success.unwrap().rejected_data_points, 1);
    assert_eq!(
        h.take_batches()[0].metrics[0].points[0].value,
        PointValue::Int(1)
    );
    shutdown(inst);
}

#[test]
fn a_request_waits_for_room_while_the_host_is_full() {
    let h = TestHost::default();
    let (inst, addr) = start_receiver(&h, "");
    let body = traces_request(vec![("a", vec![span("1", vec![1; 16])])]);
    // Full for a while, then room: taken whole within `receiver.queue_wait`.
    h.answer(&[EmitStatus::Full, EmitStatus::Full, EmitStatus::Full]);
    let r = post(addr, "/v1/traces", PROTOBUF, &body);
    assert_eq!(r.status, 200);
    assert_eq!(h.take_batches().len(), 1);
    shutdown(inst);
    // No room within the wait: 503 (more answers than 50 ms of 1 ms pauses).
    let (inst, addr) = start_receiver(&h, r#", "queue_wait": "50ms""#);
    h.answer(&[EmitStatus::Full; 100]);
    let r = post(addr, "/v1/traces", PROTOBUF, &body);
    assert_eq!(r.status, 503);
    assert!(h.take_batches().is_empty());
    shutdown(inst);
}

#[test]
fn a_full_host_gets_503_with_retry_after() {
    let h = TestHost::default();
    // No wait: answered at once (the wait has its own test).
    let (inst, addr) = start_receiver(&h, r#", "queue_wait": "0s""#);
    let body = traces_request(vec![
        ("a", vec![span("1", vec![1; 16])]),
        ("b", vec![span("2", vec![1; 16]), span("3", vec![1; 16])]),
    ]);
    // Nothing taken: 503, the client retries the whole request.
    h.answer(&[EmitStatus::Full]);
    let r = post(addr, "/v1/traces", PROTOBUF, &body);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    let st = Status::decode(&r.body[..]).unwrap();
    assert_eq!(st.code, 14);
    assert!(st.message.contains("queue is full"), "{}", st.message);
    assert!(h.take_batches().is_empty());
    // JSON requests get a JSON Status.
    h.answer(&[EmitStatus::Closed]);
    let r = post(addr, "/v1/logs", JSON, &example("logs.json"));
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some(JSON));
    let st: Status = serde_json::from_slice(&r.body).unwrap();
    assert!(st.message.contains("shutting down"), "{}", st.message);

    // The queue fills between the receiver's probe (an empty emit before the body
    // is read) and the first batch: 503 as well, nothing taken.
    h.answer(&[EmitStatus::Accepted, EmitStatus::Full]);
    let r = post(addr, "/v1/traces", PROTOBUF, &body);
    assert_eq!(r.status, 503);
    assert!(h.take_batches().is_empty());

    // The first resource taken, then full: retrying would duplicate it, so the
    // rest is a partial success. (The first answer is the probe's.)
    h.answer(&[EmitStatus::Accepted, EmitStatus::Accepted, EmitStatus::Full]);
    let r = post(addr, "/v1/traces", PROTOBUF, &body);
    assert_eq!(r.status, 200);
    let ps = ExportTraceServiceResponse::decode(&r.body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(ps.rejected_spans, 2);
    assert!(ps.error_message.contains("queue is full"));
    assert_eq!(h.take_batches().len(), 1);
    h.wait_for_log("2 spans dropped", Duration::from_secs(5));
    shutdown(inst);
}

#[test]
fn logs_response_is_the_logs_message() {
    let h = TestHost::default();
    let (inst, addr) = start_receiver(&h, "");
    let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"x"}},
        {"traceId":"abcd","body":{"stringValue":"y"}}]}]}]}"#;
    let r = post(addr, "/v1/logs", JSON, body);
    assert_eq!(r.status, 200);
    let resp: ExportLogsServiceResponse = tfo_otlp::json::JsonCodec::new()
        .unwrap()
        .decode(&r.body)
        .unwrap();
    assert_eq!(resp.partial_success.unwrap().rejected_log_records, 1);
    shutdown(inst);
}

#[test]
fn two_generations_share_the_port_and_shutdown_closes_it() {
    let h1 = TestHost::default();
    let (old, addr) = start_receiver(&h1, "");
    // The upgraded instance binds the same address while the old one runs.
    let h2 = TestHost::default();
    let mut new = create(&h2, &format!(r#"{{"receiver": {{"listen": "{addr}"}}}}"#)).unwrap();
    if let RResult::RErr(e) = new.start() {
        panic!("second bind failed (SO_REUSEPORT?): {e}");
    }
    assert_eq!(listening_addr(&h2), addr);
    shutdown(old);
    // Only the new generation is left to answer.
    let body = traces_request(vec![("svc", vec![span("after", vec![1; 16])])]);
    assert_eq!(post(addr, "/v1/traces", PROTOBUF, &body).status, 200);
    assert_eq!(h2.take_batches().len(), 1);
    assert!(h1.take_batches().is_empty());
    shutdown(new);
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(refused.is_err(), "the port is closed after shutdown");
    h2.wait_for_log(
        "otlp receiver stopped: 1 request(s) accepted",
        Duration::from_secs(1),
    );
}

#[test]
fn a_port_in_use_without_reuseport_fails_start_cleanly() {
    // A listener of someone else (no SO_REUSEPORT) on the port.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = other.local_addr().unwrap();
    let h = TestHost::default();
    let mut inst = create(&h, &format!(r#"{{"receiver": {{"listen": "{addr}"}}}}"#)).unwrap();
    match inst.start() {
        RResult::RErr(e) => assert!(e.message.contains(&addr.to_string()), "{e}"),
        RResult::ROk(()) => panic!("binding a port in use must fail"),
    }
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn a_receiver_only_instance_takes_no_exports() {
    let h = TestHost::default();
    let (mut inst, _) = start_receiver(&h, "");
    let batch = tfo_plugin_api::Batch {
        metrics: vec![tfo_plugin_api::Metric::gauge("g", "1", 1, 1.0, vec![])].into(),
        ..Default::default()
    };
    match inst.export(&batch) {
        RResult::ROk(ok) => assert_eq!(ok.accepted, 0),
        RResult::RErr(e) => panic!("{e}"),
    }
    h.wait_for_log("no `exporter` block", Duration::from_secs(1));
    shutdown(inst);
}

/// `max_requests_per_second` is a token bucket: a burst beyond it gets 429 with
/// `Retry-After` (which OTLP clients honour) and the accepted ones are delivered.
#[test]
fn the_rate_limit_answers_429_with_retry_after() {
    let h = TestHost::default();
    let (inst, addr) = start_receiver(&h, r#", "max_requests_per_second": 2"#);
    let body = traces_request(vec![("a", vec![span("1", vec![1; 16])])]);
    let began = std::time::Instant::now();
    let mut client = RawClient::connect(addr);
    let codes: Vec<u16> = (0..20)
        .map(|_| {
            client
                .request("POST", "/v1/traces", &[("Content-Type", PROTOBUF)], &body)
                .status
        })
        .collect();
    let elapsed = began.elapsed().as_secs_f64();
    let ok = codes.iter().filter(|c| **c == 200).count();
    let limited = codes.iter().filter(|c| **c == 429).count();
    assert_eq!(ok + limited, 20, "{codes:?}");
    // At most the burst (2) plus what refilled while sending.
    assert!(
        (ok as f64) <= 2.0 + 2.0 * elapsed + 1.0,
        "{ok} accepted in {elapsed:.2}s: {codes:?}"
    );
    assert!(limited > 0, "{codes:?}");
    let r = client.request("POST", "/v1/logs", &[("Content-Type", JSON)], b"{}");
    if r.status == 429 {
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.header("content-type"), Some(JSON));
        let st: Status = serde_json::from_slice(&r.body).unwrap();
        assert!(
            st.message.contains("max_requests_per_second"),
            "{}",
            st.message
        );
    }
    assert_eq!(h.take_batches().len(), ok, "every 200 was delivered");
    shutdown(inst);
    assert!(
        h.logs()
            .iter()
            .any(|(_, l)| l.contains(&format!("{limited} rate-limited"))
                || l.contains(&format!("{} rate-limited", limited + 1))),
        "{:?}",
        h.logs()
    );
}

/// `max_connections`: with three idle connections open, the next is closed
/// unanswered; once they go, the receiver serves again.
#[test]
fn the_connection_limit_closes_extra_connections() {
    use std::io::Read as _;
    let h = TestHost::default();
    let (inst, addr) = start_receiver(&h, r#", "max_connections": 3"#);
    let idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        if buf.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a 4th connection was served"
        );
    }
    drop(idle);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let body = traces_request(vec![("a", vec![span("1", vec![1; 16])])]);
    loop {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = write!(c, "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {PROTOBUF}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        let _ = c.write_all(&body);
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        if buf.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not served again after the idle connections closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    shutdown(inst);
    assert!(
        h.logs()
            .iter()
            .any(|(_, l)| l.contains("connection(s) over the limit")
                && !l.contains(" 0 connection(s)")),
        "{:?}",
        h.logs()
    );
}
