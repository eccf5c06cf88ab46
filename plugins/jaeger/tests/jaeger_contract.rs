//! The Jaeger sink driven through its exported entry points (as the agent does)
//! against the strict local HTTPS server of `tfo-plugin-common` (feature
//! `testing`), which records each request as it arrived and answers from a script.
//! Jaeger is not packaged for Debian, so the server plays the collector's OTLP/HTTP
//! receiver, including the answers the OTLP specification documents.
//!
//! Checked: method, path `/v1/traces`, content type, Basic credentials and
//! configured headers, TLS verification, gzip; the protobuf bodies are decoded by
//! an independent decoder, the official Python `opentelemetry-proto` package
//! (`otlp_traces_decode.py`), and checked field by field; the answers: 429 +
//! Retry-After, 503 (retryable; the retry does not resend delivered requests),
//! 400 with a `google.rpc.Status` (permanent, message quoted), 500 (permanent, as
//! the spec says), 200 with `partial_success` (accepted reduced, shown in health),
//! a closed port (retryable).
//!
//! The decoder needs `python3` with `opentelemetry-proto` (`pip install
//! opentelemetry-proto`); without it the tests that decode print `SKIP ...` and
//! return, unless `TFO_REQUIRE_SERVICES=1`, where they fail.

use std::{
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::{json, Value};
use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult,
    testing::{create_started, export, TestHost},
    AnyValue, Batch, CreateError, ErrorKind, HealthState, KeyValue, LogRecord, Metric,
    PluginInstanceBox, Resource, Span, SpanEvent, SpanKind, StatusCode,
};
use tfo_plugin_common::{
    otlp::{
        opentelemetry_proto::tonic::collector::trace::v1::{
            ExportTracePartialSuccess, ExportTraceServiceResponse,
        },
        prost::Message as _,
    },
    testing::{RecordedRequest, ScriptedResponse, TestServer},
};

const WAIT: Duration = Duration::from_secs(10);
const TRACE_ID: [u8; 16] = [
    0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c,
];
const PARENT_ID: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74];
const CHILD_ID: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

fn create(config: &str) -> Result<PluginInstanceBox, CreateError> {
    let module = tfo_plugin_api::plugin_module!(tfo_jaeger);
    tfo_plugin_api::testing::create(module, &TestHost::default(), "jaeger", config)
}

fn sink(server: &TestServer, extra: &str) -> PluginInstanceBox {
    let config = format!(
        r#"{{"endpoint": "{}", "tls": {{"ca_file": {:?}}}{extra}}}"#,
        server.url(""),
        server.ca_file()
    );
    create_started(
        tfo_plugin_api::plugin_module!(tfo_jaeger),
        &TestHost::default(),
        "jaeger",
        &config,
    )
}

/// True when python3 can import the decoder's modules; otherwise prints what is
/// skipped (or fails with `TFO_REQUIRE_SERVICES=1`).
fn python_decoder(what: &str) -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import opentelemetry.proto.collector.trace.v1.trace_service_pb2, google.protobuf",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        let msg = format!(
            "SKIP {what}: python3 cannot import opentelemetry.proto (pip install opentelemetry-proto)"
        );
        if std::env::var("TFO_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{msg}, and TFO_REQUIRE_SERVICES=1");
        }
        println!("{msg}");
        eprintln!("{msg}");
    }
    ok
}

/// The body decoded by `otlp_traces_decode.py`.
fn decode(body: &[u8]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp_traces_decode.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "decoder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
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

fn trace_batch() -> Batch {
    Batch {
        resource: Resource {
            attributes: vec![KeyValue::new("host.name", "h1")].into(),
        },
        spans: spans().into(),
        ..Default::default()
    }
}

fn attrs(v: &Value) -> Vec<(String, Value)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|kv| (kv["key"].as_str().unwrap().to_string(), kv["value"].clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn check_headers(req: &RecordedRequest) {
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/traces");
    assert_eq!(req.header("content-type"), Some("application/x-protobuf"));
    assert!(req
        .header("user-agent")
        .is_some_and(|u| u.starts_with("tfo-agent/")));
    assert!(req.decode_error.is_none());
}

#[test]
fn sends_spans_as_otlp_protobuf() {
    if !python_decoder("sends_spans_as_otlp_protobuf") {
        return;
    }
    let server = TestServer::https();
    let mut inst = sink(
        &server,
        r#", "username": "agent", "password": "s3cret", "headers": {"X-Scope-OrgID": "team-a"},
           "tags": {"deployment.environment": "prod"}"#,
    );
    // A mixed batch: metrics and logs are not Jaeger's and count as accepted.
    let mut batch = trace_batch();
    batch.metrics = vec![Metric::gauge("m", "1", 1, 1.0, vec![])].into();
    batch.logs = vec![LogRecord {
        time_unix_nano: 1,
        observed_time_unix_nano: 1,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: "x".into(),
        attributes: vec![].into(),
        trace_id: [0; 16],
        span_id: [0; 8],
    }]
    .into();
    assert_eq!(export(&mut inst, &batch).unwrap().accepted, 4);
    let reqs = server.wait_for_requests(1, WAIT);
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    check_headers(req);
    assert_eq!(req.header("authorization"), Some("Basic YWdlbnQ6czNjcmV0"));
    assert_eq!(req.header("x-scope-orgid"), Some("team-a"));
    assert!(req.header("content-encoding").is_none());

    let v = decode(&req.body);
    let rs = &v["resourceSpans"];
    assert_eq!(rs.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        attrs(&rs[0]["resource"]["attributes"]),
        [
            ("host.name".to_string(), json!({"stringValue": "h1"})),
            (
                "service.name".to_string(),
                json!({"stringValue": "tfo-agent"})
            ),
            (
                "deployment.environment".to_string(),
                json!({"stringValue": "prod"})
            ),
        ]
    );
    let spans = rs[0]["scopeSpans"][0]["spans"].as_array().unwrap();
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
        json!({"code": "STATUS_CODE_ERROR", "message": "boom"})
    );
    assert_eq!(
        attrs(&p["attributes"]),
        [
            ("http.status_code".to_string(), json!({"intValue": "500"})),
            ("ratio".to_string(), json!({"doubleValue": 0.25})),
            ("cached".to_string(), json!({"boolValue": false})),
            ("blob".to_string(), json!({"bytesValue": "3q0="})),
        ]
    );
    assert_eq!(p["events"][0]["name"], "retry");
    assert_eq!(p["events"][0]["timeUnixNano"], "1700000000500000000");
    assert_eq!(c["spanId"], "0102030405060708");
    assert_eq!(c["parentSpanId"], "eee19b7ec3c1b174");
    assert_eq!(c["kind"], "SPAN_KIND_CLIENT");
    assert!(c.get("status").is_none(), "unset status is not sent: {c}");
}

#[test]
fn gzip_bodies_decode_to_the_same_request() {
    if !python_decoder("gzip_bodies_decode_to_the_same_request") {
        return;
    }
    let plain = TestServer::https();
    let zipped = TestServer::https();
    export(&mut sink(&plain, ""), &trace_batch()).unwrap();
    export(
        &mut sink(&zipped, r#", "compression": "gzip""#),
        &trace_batch(),
    )
    .unwrap();
    let (p, z) = (&plain.requests()[0], &zipped.requests()[0]);
    check_headers(z);
    assert_eq!(z.header("content-encoding"), Some("gzip"));
    assert_eq!(&z.raw_body[..2], &[0x1f, 0x8b], "gzip magic on the wire");
    assert_eq!(z.body, p.body);
    assert_eq!(decode(&z.body), decode(&p.body));
}

#[test]
fn tls_verification_is_on() {
    let server = TestServer::https();
    let mut inst = create(&format!(r#"{{"endpoint": "{}"}}"#, server.url(""))).unwrap();
    let e = export(&mut inst, &trace_batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.message.to_lowercase().contains("certificate"), "{e}");
    assert!(server.requests().is_empty());
}

#[test]
fn documented_answers() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(429).header("Retry-After", "3"));
    server.push_response(ScriptedResponse::status(503));
    let status = tfo_jaeger::client::Status {
        code: 3,
        message: "span id is invalid".into(),
    };
    server.push_response(
        ScriptedResponse::status(400)
            .header("Content-Type", "application/x-protobuf")
            .body(status.encode_to_vec()),
    );
    server.push_response(ScriptedResponse::status(500).body("internal"));
    let mut inst = sink(&server, "");
    let batch = trace_batch();

    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.retry_after_ms.into_option(), Some(3000));

    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.retry_after_ms.into_option(), None);

    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(e.message.contains("span id is invalid"), "{e}");

    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::Permanent,
        "500 must not be retried (OTLP): {e}"
    );
    assert!(e.message.contains("internal"), "{e}");

    assert_eq!(export(&mut inst, &batch).unwrap().accepted, 2);
    assert_eq!(server.requests().len(), 5);
    assert!(matches!(inst.health().state, HealthState::Healthy));
}

#[test]
fn a_retry_does_not_resend_delivered_requests() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(200));
    server.push_response(ScriptedResponse::status(503).header("Retry-After", "1"));
    let mut inst = sink(&server, r#", "batch_size": 1"#);
    let batch = trace_batch();
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.accepted, 1);
    assert!(matches!(inst.health().state, HealthState::Unhealthy));
    assert_eq!(export(&mut inst, &batch).unwrap().accepted, 2);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3, "span 1, span 2 (503), span 2 again");
    assert_ne!(reqs[0].body, reqs[1].body);
    assert_eq!(reqs[1].body, reqs[2].body);
    assert!(matches!(inst.health().state, HealthState::Healthy));
}

#[test]
fn partial_success_reduces_accepted_and_shows_in_health() {
    let server = TestServer::https();
    let body = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 1,
            error_message: "span too old".into(),
        }),
    }
    .encode_to_vec();
    server.push_response(
        ScriptedResponse::status(200)
            .header("Content-Type", "application/x-protobuf")
            .body(body),
    );
    let mut inst = sink(&server, "");
    assert_eq!(export(&mut inst, &trace_batch()).unwrap().accepted, 1);
    let h = inst.health();
    assert!(h.reason.contains("span too old"), "{:?}", h.reason);
}

#[test]
fn invalid_spans_do_not_poison_the_batch() {
    let server = TestServer::https();
    let mut inst = sink(&server, "");
    let mut batch = trace_batch();
    let mut bad = batch.spans[0].clone();
    bad.trace_id = [0; 16];
    batch.spans.push(bad);
    assert_eq!(export(&mut inst, &batch).unwrap().accepted, 2);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_closed_port_is_retryable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut inst = create(&format!(r#"{{"endpoint": "http://127.0.0.1:{port}"}}"#)).unwrap();
    let e = export(&mut inst, &trace_batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
}

#[test]
fn the_old_thrift_endpoint_is_refused_at_create() {
    let e = match create(r#"{"endpoint": "http://jaeger:14268/api/traces", "protocol": "grpc"}"#) {
        Err(e) => e,
        Ok(_) => panic!("the Thrift endpoint was accepted"),
    };
    let paths: Vec<String> = e.config_errors.iter().map(|c| c.path.to_string()).collect();
    assert_eq!(paths, ["endpoint", "protocol"]);
    assert!(e.config_errors[0].message.contains("4318"), "{e:?}");
}

#[test]
fn the_documented_example_config_is_accepted() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml"))
        .unwrap();
    let yaml: String = text
        .lines()
        .filter_map(|l| l.strip_prefix('#').filter(|r| r.starts_with("  ")))
        .map(|l| format!("{l}\n"))
        .collect();
    let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    let mut v: Value = serde_json::to_value(&doc["jaeger"]).unwrap();
    v.as_object_mut().unwrap().remove("enabled");
    assert_eq!(v["endpoint"], "http://jaeger:4318");
    assert!(create(&v.to_string()).is_ok(), "{v}");
}

#[test]
fn preview_sends_nothing() {
    let server = TestServer::https();
    let mut inst = sink(&server, "");
    let text = match inst.preview(&trace_batch()) {
        RResult::ROk(s) => s.to_string(),
        RResult::RErr(e) => panic!("{e}"),
    };
    assert!(
        text.contains("/v1/traces (request 1 of 1, 2 spans"),
        "{text}"
    );
    assert!(text.contains("checkout"), "{text}");
    assert!(server.requests().is_empty());
}
