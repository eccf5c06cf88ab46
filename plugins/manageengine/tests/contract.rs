//! Contract tests: the plugin, driven through its exported root module the way the
//! agent drives it, posts to the strict local HTTPS server of `tfo-plugin-common`
//! (own CA, requests recorded as they arrived, gzip undone, scripted answers).
//! Each test checks method, path, the documented `api-key` header and the content
//! type, decodes the protobuf bodies with the opentelemetry-proto message types
//! (independently of the encoder's mapping code), and plays the answers an OTLP/HTTP
//! endpoint gives: 200 with `partial_success`, 429 + `Retry-After`, 503, 400 with a
//! `google.rpc.Status`, 500, 401.

use std::time::Duration;

use tfo_manageengine::client::Status;
use tfo_plugin_api::{
    testing::{export, TestHost},
    AnyValue, Batch, DataTypes, ErrorKind, KeyValue, LogRecord, Metric, PluginInstanceBox,
    PluginModRef, Resource, Span, SpanKind, StatusCode,
};
use tfo_plugin_common::{
    otlp::{
        opentelemetry_proto::tonic::{
            collector::{
                logs::v1::{
                    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
                },
                metrics::v1::ExportMetricsServiceRequest,
            },
            common::v1::{any_value, KeyValue as OtlpKeyValue},
            metrics::v1::metric,
        },
        prost::Message as _,
    },
    testing::{RecordedRequest, ScriptedResponse, TestServer},
};

const KEY: &str = "us_SECRETLICENSEKEY0123456789";
const WAIT: Duration = Duration::from_secs(10);
const T: u64 = 1_700_000_000_000_000_000;

fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_manageengine)
}

fn config(server: &TestServer, extra: &str) -> String {
    format!(
        r#"{{"api_key": "{KEY}", "base_url": "{}", "ca_file": "{}", "service_name": "tfo-agent"{extra}}}"#,
        server.url("/otlp"),
        server.ca_file().display()
    )
}

fn create(host: &TestHost, config: &str) -> PluginInstanceBox {
    match tfo_plugin_api::testing::create(module(), host, "manageengine", config) {
        Ok(i) => i,
        Err(e) => panic!("create: {e:?}"),
    }
}

fn batch() -> Batch {
    Batch {
        resource: Resource {
            attributes: vec![KeyValue::new("host.name", "db-1")].into(),
        },
        metrics: vec![Metric::gauge(
            "system.filesystem.utilization",
            "1",
            T,
            0.91,
            vec![KeyValue::new("mountpoint", "/")],
        )]
        .into(),
        spans: vec![Span {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: [0; 8],
            name: "never sent".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: T,
            end_time_unix_nano: T + 1,
            status_code: StatusCode::Unset,
            status_message: "".into(),
            attributes: vec![].into(),
            events: vec![].into(),
        }]
        .into(),
        logs: vec![LogRecord {
            time_unix_nano: T,
            observed_time_unix_nano: T,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: AnyValue::from("checkpoint took 12s"),
            attributes: vec![KeyValue::new("log.file.name", "postgresql.log")].into(),
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

fn check_headers(r: &RecordedRequest) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(r.header("api-key"), Some(KEY));
    assert_eq!(r.header("authorization"), None);
}

fn all_logs(host: &TestHost) -> String {
    host.logs()
        .into_iter()
        .map(|(_, l)| l)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn declares_metrics_and_logs_only() {
    let d = (module().descriptor())();
    assert_eq!(d.name.as_str(), "manageengine");
    assert!(d.data_types.contains(DataTypes::METRICS));
    assert!(d.data_types.contains(DataTypes::LOGS));
    assert!(!d.data_types.contains(DataTypes::TRACES));
}

#[test]
fn metrics_and_logs_go_to_their_otlp_paths_with_the_api_key() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, r#", "tags": {"env": "prod"}"#));
    assert_eq!(export(&mut inst, &batch()).unwrap().accepted, 2);
    let reqs = server.wait_for_requests(2, WAIT);
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, vec!["/otlp/v1/metrics", "/otlp/v1/logs"]);
    for r in &reqs {
        check_headers(r);
    }
    let m = ExportMetricsServiceRequest::decode(&reqs[0].body[..]).unwrap();
    let rm = &m.resource_metrics[0];
    let rattrs = &rm.resource.as_ref().unwrap().attributes;
    assert_eq!(attr(rattrs, "host.name"), Some("db-1"));
    assert_eq!(attr(rattrs, "service.name"), Some("tfo-agent"));
    assert_eq!(attr(rattrs, "env"), Some("prod"));
    let metric = &rm.scope_metrics[0].metrics[0];
    assert_eq!(metric.name, "system.filesystem.utilization");
    match &metric.data {
        Some(metric::Data::Gauge(g)) => {
            let p = &g.data_points[0];
            assert_eq!(p.time_unix_nano, T);
            assert_eq!(attr(&p.attributes, "mountpoint"), Some("/"));
        }
        other => panic!("{other:?}"),
    }
    let l = ExportLogsServiceRequest::decode(&reqs[1].body[..]).unwrap();
    let rec = &l.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(rec.severity_number, 17);
    assert_eq!(
        attr(&rec.attributes, "log.file.name"),
        Some("postgresql.log")
    );
    match rec.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => assert_eq!(s, "checkpoint took 12s"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_spans_only_batch_sends_nothing() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, ""));
    let mut b = batch();
    b.metrics = vec![].into();
    b.logs = vec![].into();
    assert_eq!(export(&mut inst, &b).unwrap().accepted, 0);
    assert!(server.requests().is_empty());
}

#[test]
fn gzip_and_signal_selection() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(
        &host,
        &config(&server, r#", "compression": "gzip", "signals": ["logs"]"#),
    );
    export(&mut inst, &batch()).unwrap();
    let reqs = server.wait_for_requests(1, WAIT);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/otlp/v1/logs");
    assert_eq!(reqs[0].header("content-encoding"), Some("gzip"));
    assert_ne!(reqs[0].raw_body, reqs[0].body);
    ExportLogsServiceRequest::decode(&reqs[0].body[..]).expect("gunzipped body is OTLP");
}

#[test]
fn partial_success_is_accepted_logged_and_not_retried() {
    let server = TestServer::https();
    server.push_response(
        ScriptedResponse::status(200)
            .header("content-type", "application/x-protobuf")
            .body(
                ExportLogsServiceResponse {
                    partial_success: Some(ExportLogsPartialSuccess {
                        rejected_log_records: 1,
                        error_message: "log record too large".into(),
                    }),
                }
                .encode_to_vec(),
            ),
    );
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, r#", "signals": ["logs"]"#));
    assert_eq!(export(&mut inst, &batch()).unwrap().accepted, 0);
    assert_eq!(server.requests().len(), 1);
    assert!(all_logs(&host).contains("log record too large"));
    assert!(inst.health().reason.contains("rejected 1 item"));
}

#[test]
fn throttling_is_retryable_and_resumes_after_the_delivered_signal() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(200));
    server.push_response(ScriptedResponse::status(429).header("Retry-After", "30"));
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, ""));
    let b = batch();
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), Some(30_000));
    assert_eq!(e.accepted, 1);
    assert_eq!(export(&mut inst, &b).unwrap().accepted, 2);
    let paths: Vec<String> = server
        .wait_for_requests(3, WAIT)
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(
        paths,
        vec!["/otlp/v1/metrics", "/otlp/v1/logs", "/otlp/v1/logs"]
    );
}

#[test]
fn errors_follow_the_otlp_rules() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, r#", "signals": ["metrics"]"#));
    let b = |v: f64| {
        let mut b = batch();
        b.metrics = vec![Metric::gauge("m", "1", T, v, vec![])].into();
        b
    };
    server.push_response(ScriptedResponse::status(503));
    assert_eq!(
        export(&mut inst, &b(1.0)).unwrap_err().kind,
        ErrorKind::Retryable
    );
    server.push_response(
        ScriptedResponse::status(400)
            .header("content-type", "application/x-protobuf")
            .body(
                Status {
                    code: 3,
                    message: "unsupported metric type".into(),
                }
                .encode_to_vec(),
            ),
    );
    let e = export(&mut inst, &b(2.0)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(
        e.message.contains("HTTP 400: unsupported metric type"),
        "{e}"
    );
    server.push_response(ScriptedResponse::status(500));
    assert_eq!(
        export(&mut inst, &b(3.0)).unwrap_err().kind,
        ErrorKind::Permanent
    );
    server.push_response(ScriptedResponse::status(401).body("invalid license key"));
    let e = export(&mut inst, &b(4.0)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(e.message.contains("invalid license key"), "{e}");
}

#[test]
fn tls_is_verified() {
    let server = TestServer::https();
    let host = TestHost::default();
    let cfg = format!(
        r#"{{"api_key": "{KEY}", "base_url": "{}"}}"#,
        server.url("")
    );
    let mut inst = create(&host, &cfg);
    assert_eq!(
        export(&mut inst, &batch()).unwrap_err().kind,
        ErrorKind::Retryable
    );
    assert!(server.requests().is_empty());
}

#[test]
fn the_api_key_never_appears_in_logs_or_errors() {
    let server = TestServer::https();
    server.push_response(
        ScriptedResponse::status(403)
            .header("content-type", "text/plain")
            .body(format!("license {KEY} suspended")),
    );
    server.push_response(
        ScriptedResponse::status(200)
            .header("content-type", "application/x-protobuf")
            .body(
                ExportLogsServiceResponse {
                    partial_success: Some(ExportLogsPartialSuccess {
                        rejected_log_records: 1,
                        error_message: format!("quota of {KEY} exceeded"),
                    }),
                }
                .encode_to_vec(),
            ),
    );
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, r#", "signals": ["logs"]"#));
    let mut texts = vec![export(&mut inst, &batch()).unwrap_err().message.to_string()];
    let mut other = batch();
    other.logs[0].body = AnyValue::from("other");
    export(&mut inst, &other).unwrap();
    texts.push(inst.health().reason.to_string());
    texts.push(all_logs(&host));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = format!(r#"{{"api_key": "{KEY}", "base_url": "https://127.0.0.1:{port}"}}"#);
    let mut dead = create(&host, &cfg);
    texts.push(export(&mut dead, &batch()).unwrap_err().message.to_string());
    let cfg = format!(r#"{{"api_key": "{KEY}", "base_url": "not a url"}}"#);
    texts.push(format!(
        "{:?}",
        tfo_plugin_api::testing::create(module(), &host, "m", &cfg)
            .err()
            .unwrap()
    ));
    for t in &texts {
        assert!(!t.contains("SECRETLICENSEKEY"), "key leaked: {t}");
    }
    assert!(texts[0].contains("403"), "{}", texts[0]);
}

#[test]
fn config_errors_carry_field_paths() {
    let host = TestHost::default();
    let e = tfo_plugin_api::testing::create(
        module(),
        &host,
        "m",
        r#"{"api_key": "", "base_url": "ftp://x", "signals": []}"#,
    )
    .err()
    .unwrap();
    let paths: Vec<String> = e.config_errors.iter().map(|c| c.path.to_string()).collect();
    assert_eq!(paths, vec!["base_url", "api_key", "signals"]);
    let e = tfo_plugin_api::testing::create(
        module(),
        &host,
        "m",
        r#"{"api_key": "k", "base_url": "https://x", "product": "opmanager"}"#,
    )
    .err()
    .unwrap();
    assert!(e.config_errors[0].message.contains("product"), "{e:?}");
}
