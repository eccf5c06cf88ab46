//! Contract tests: the plugin, driven through its exported root module the way the
//! agent drives it, posts to the strict local HTTP(S) server of `tfo-plugin-common`
//! (own CA, requests recorded as they arrived, gzip undone, scripted answers).
//! Each test checks method, path, the documented `x-instana-key` /
//! `x-instana-host` headers and the content type, decodes the protobuf bodies with
//! the opentelemetry-proto message types (independently of the encoder's mapping
//! code), and plays the answers an OTLP/HTTP acceptor gives: 200 with
//! `partial_success`, 429 + `Retry-After`, 503, 400 with a `google.rpc.Status`, 500,
//! 401/403.

use std::time::Duration;

use tfo_instana::client::Status;
use tfo_plugin_api::{
    testing::{export, TestHost},
    AnyValue, Batch, ErrorKind, KeyValue, LogRecord, Metric, PluginInstanceBox, PluginModRef,
    Resource, Span, SpanKind, StatusCode,
};
use tfo_plugin_common::{
    otlp::{
        opentelemetry_proto::tonic::{
            collector::{
                logs::v1::ExportLogsServiceRequest,
                metrics::v1::ExportMetricsServiceRequest,
                trace::v1::{
                    ExportTracePartialSuccess, ExportTraceServiceRequest,
                    ExportTraceServiceResponse,
                },
            },
            common::v1::{any_value, KeyValue as OtlpKeyValue},
            metrics::v1::metric,
        },
        prost::Message as _,
    },
    testing::{RecordedRequest, ScriptedResponse, TestServer},
};

const KEY: &str = "SECRETAGENTKEY-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(10);
const T: u64 = 1_700_000_000_000_000_000;

fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_instana)
}

fn config(server: &TestServer, extra: &str) -> String {
    format!(
        r#"{{"agent_key": "{KEY}", "endpoint_url": "{}", "ca_file": "{}", "service_name": "tfo-agent"{extra}}}"#,
        server.url(""),
        server.ca_file().display()
    )
}

fn create(host: &TestHost, config: &str) -> PluginInstanceBox {
    match tfo_plugin_api::testing::create(module(), host, "instana", config) {
        Ok(i) => i,
        Err(e) => panic!("create: {e:?}"),
    }
}

fn full_batch() -> Batch {
    Batch {
        resource: Resource {
            attributes: vec![KeyValue::new("host.name", "web-1")].into(),
        },
        metrics: vec![Metric::gauge(
            "system.cpu.utilization",
            "1",
            T,
            0.25,
            vec![KeyValue::new("cpu", "0")],
        )]
        .into(),
        spans: vec![Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: [0; 8],
            name: "GET /".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: T,
            end_time_unix_nano: T + 1_000,
            status_code: StatusCode::Error,
            status_message: "boom".into(),
            attributes: vec![].into(),
            events: vec![].into(),
        }]
        .into(),
        logs: vec![LogRecord {
            time_unix_nano: T,
            observed_time_unix_nano: T,
            severity_number: 13,
            severity_text: "WARN".into(),
            body: AnyValue::from("disk 91% full"),
            attributes: vec![].into(),
            trace_id: [0; 16],
            span_id: [0; 8],
        }]
        .into(),
    }
}

fn attr<'a>(attrs: &'a [OtlpKeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        }
    })
}

fn check_headers(r: &RecordedRequest, key: Option<&str>, host: Option<&str>) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(r.header("x-instana-key"), key);
    assert_eq!(r.header("x-instana-host"), host);
}

fn all_logs(host: &TestHost) -> String {
    host.logs()
        .into_iter()
        .map(|(_, l)| l)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_signal_goes_to_its_otlp_path_with_the_instana_headers() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, r#", "tags": {"env": "prod"}"#));
    assert_eq!(export(&mut inst, &full_batch()).unwrap().accepted, 3);
    let reqs = server.wait_for_requests(3, WAIT);
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, vec!["/v1/metrics", "/v1/traces", "/v1/logs"]);
    for r in &reqs {
        check_headers(r, Some(KEY), Some("web-1"));
    }
    let m = ExportMetricsServiceRequest::decode(&reqs[0].body[..]).unwrap();
    let rm = &m.resource_metrics[0];
    let rattrs = &rm.resource.as_ref().unwrap().attributes;
    assert_eq!(attr(rattrs, "host.name"), Some("web-1"));
    assert_eq!(attr(rattrs, "service.name"), Some("tfo-agent"));
    assert_eq!(attr(rattrs, "env"), Some("prod"));
    let metric = &rm.scope_metrics[0].metrics[0];
    assert_eq!(metric.name, "system.cpu.utilization");
    match &metric.data {
        Some(metric::Data::Gauge(g)) => {
            assert_eq!(g.data_points[0].time_unix_nano, T);
            assert_eq!(attr(&g.data_points[0].attributes, "cpu"), Some("0"));
        }
        other => panic!("{other:?}"),
    }
    let t = ExportTraceServiceRequest::decode(&reqs[1].body[..]).unwrap();
    let span = &t.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.trace_id, vec![1; 16]);
    assert_eq!(span.name, "GET /");
    assert_eq!(span.status.as_ref().unwrap().message, "boom");
    let l = ExportLogsServiceRequest::decode(&reqs[2].body[..]).unwrap();
    let rec = &l.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(rec.severity_text, "WARN");
    match rec.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => assert_eq!(s, "disk 91% full"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn host_header_rules() {
    let server = TestServer::https();
    let host = TestHost::default();
    // A resource with host.id needs no header.
    let mut inst = create(&host, &config(&server, r#", "signals": ["logs"]"#));
    let mut b = full_batch();
    b.resource
        .attributes
        .push(KeyValue::new("host.id", "h-123"));
    export(&mut inst, &b).unwrap();
    // The configured host_id always wins.
    let mut inst2 = create(
        &host,
        &config(&server, r#", "signals": ["logs"], "host_id": "cfg-host""#),
    );
    export(&mut inst2, &full_batch()).unwrap();
    let reqs = server.wait_for_requests(2, WAIT);
    check_headers(&reqs[0], Some(KEY), None);
    check_headers(&reqs[1], Some(KEY), Some("cfg-host"));
}

#[test]
fn agent_mode_needs_no_key_and_gzip_is_sent_when_asked() {
    let server = TestServer::http();
    let host = TestHost::default();
    let cfg = format!(
        r#"{{"mode": "agent", "endpoint_url": "{}", "compression": "gzip", "signals": ["traces"]}}"#,
        server.url("")
    );
    let mut inst = create(&host, &cfg);
    export(&mut inst, &full_batch()).unwrap();
    let reqs = server.wait_for_requests(1, WAIT);
    check_headers(&reqs[0], None, Some("web-1"));
    assert_eq!(reqs[0].header("content-encoding"), Some("gzip"));
    assert_ne!(reqs[0].raw_body, reqs[0].body);
    ExportTraceServiceRequest::decode(&reqs[0].body[..]).expect("gunzipped body is OTLP");
}

#[test]
fn partial_success_is_accepted_logged_and_not_retried() {
    let server = TestServer::https();
    server.push_response(
        ScriptedResponse::status(200)
            .header("content-type", "application/x-protobuf")
            .body(
                ExportTraceServiceResponse {
                    partial_success: Some(ExportTracePartialSuccess {
                        rejected_spans: 1,
                        error_message: "span too old".into(),
                    }),
                }
                .encode_to_vec(),
            ),
    );
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, r#", "signals": ["traces"]"#));
    let ok = export(&mut inst, &full_batch()).unwrap();
    assert_eq!(ok.accepted, 0);
    assert_eq!(server.requests().len(), 1);
    assert!(all_logs(&host).contains("span too old"));
    assert!(inst.health().reason.contains("rejected 1 item"));
}

#[test]
fn throttling_is_retryable_and_resumes_after_the_delivered_signals() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(200));
    server.push_response(ScriptedResponse::status(429).header("Retry-After", "12"));
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, ""));
    let batch = full_batch();
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), Some(12_000));
    assert_eq!(e.accepted, 1);
    assert_eq!(export(&mut inst, &batch).unwrap().accepted, 3);
    let paths: Vec<String> = server
        .wait_for_requests(4, WAIT)
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(
        paths,
        vec!["/v1/metrics", "/v1/traces", "/v1/traces", "/v1/logs"]
    );
}

#[test]
fn errors_follow_the_otlp_rules() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, r#", "signals": ["logs"]"#));
    let b = |s: &str| {
        let mut b = full_batch();
        b.logs[0].body = AnyValue::from(s);
        b
    };
    server.push_response(ScriptedResponse::status(503));
    assert_eq!(
        export(&mut inst, &b("1")).unwrap_err().kind,
        ErrorKind::Retryable
    );
    server.push_response(
        ScriptedResponse::status(400)
            .header("content-type", "application/x-protobuf")
            .body(
                Status {
                    code: 3,
                    message: "invalid resource".into(),
                }
                .encode_to_vec(),
            ),
    );
    let e = export(&mut inst, &b("2")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(e.message.contains("HTTP 400: invalid resource"), "{e}");
    // OTLP: 500 "MUST NOT be retried" (only 429, 502, 503, 504 are).
    server.push_response(ScriptedResponse::status(500).header("Retry-After", "5"));
    let e = export(&mut inst, &b("3")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert_eq!(e.retry_after_ms.into_option(), None);
    server.push_response(ScriptedResponse::status(401));
    assert_eq!(
        export(&mut inst, &b("4")).unwrap_err().kind,
        ErrorKind::Permanent
    );
}

#[test]
fn tls_is_verified() {
    let server = TestServer::https();
    let host = TestHost::default();
    let cfg = format!(
        r#"{{"agent_key": "{KEY}", "endpoint_url": "{}"}}"#,
        server.url("")
    );
    let mut inst = create(&host, &cfg);
    assert_eq!(
        export(&mut inst, &full_batch()).unwrap_err().kind,
        ErrorKind::Retryable
    );
    assert!(server.requests().is_empty());
}

#[test]
fn the_agent_key_never_appears_in_logs_or_errors() {
    let server = TestServer::https();
    server.push_response(
        ScriptedResponse::status(403)
            .header("content-type", "text/plain")
            .body(format!("invalid key {KEY}")),
    );
    server.push_response(
        ScriptedResponse::status(200)
            .header("content-type", "application/x-protobuf")
            .body(
                ExportTraceServiceResponse {
                    partial_success: Some(ExportTracePartialSuccess {
                        rejected_spans: 1,
                        error_message: format!("key {KEY} over quota"),
                    }),
                }
                .encode_to_vec(),
            ),
    );
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, r#", "signals": ["traces"]"#));
    let mut texts = vec![export(&mut inst, &full_batch())
        .unwrap_err()
        .message
        .to_string()];
    let mut other = full_batch();
    other.spans[0].name = "other".into();
    export(&mut inst, &other).unwrap();
    texts.push(inst.health().reason.to_string());
    texts.push(all_logs(&host));
    let cfg = format!(r#"{{"agent_key": "{KEY}", "region": "no such region!"}}"#);
    texts.push(format!(
        "{:?}",
        tfo_plugin_api::testing::create(module(), &host, "i", &cfg)
            .err()
            .unwrap()
    ));
    for t in &texts {
        assert!(!t.contains("SECRETAGENTKEY"), "key leaked: {t}");
    }
    assert!(texts[0].contains("403"), "{}", texts[0]);
}

#[test]
fn config_errors_carry_field_paths() {
    let host = TestHost::default();
    let e = tfo_plugin_api::testing::create(module(), &host, "i", r#"{"signals": []}"#)
        .err()
        .unwrap();
    let paths: Vec<String> = e.config_errors.iter().map(|c| c.path.to_string()).collect();
    assert_eq!(paths, vec!["agent_key", "region", "signals"]);
    let e =
        tfo_plugin_api::testing::create(module(), &host, "i", r#"{"mode": "agent", "zone": "z"}"#)
            .err()
            .unwrap();
    assert!(e.config_errors[0].message.contains("zone"), "{e:?}");
}
