//! Contract tests: the plugin, driven through its exported root module the way the
//! agent drives it, posts to the strict local HTTPS server of `tfo-plugin-common`
//! (own CA, every request recorded as it arrived, scripted answers). Each test
//! checks method, path, headers and the `Api-Token` authorization, decodes the body
//! independently of the encoder (a small line-protocol parser written here from the
//! protocol page, serde_json for logs, the opentelemetry-proto types for OTLP), and
//! plays the answers the Dynatrace API pages document: 202/400 `ValidationResponse`
//! with invalid lines (partial acceptance, not retried), 204/200 for logs, 429 with
//! `Retry-After`, 401, 413, 5xx.

use std::time::Duration;

use serde_json::{json, Value};
use tfo_plugin_api::{
    testing::{export, TestHost},
    AnyValue, Batch, ErrorKind, KeyValue, LogRecord, Metric, PluginInstanceBox, PluginModRef,
    Resource, Span, SpanKind, StatusCode, Temporality,
};
use tfo_plugin_common::{
    otlp::{
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        prost::Message as _,
    },
    testing::{RecordedRequest, ScriptedResponse, TestServer},
};

const TOKEN: &str = "dt0c01.ST2EY72KQINMH574WMNVI7YN.SECRETSECRETSECRETSECRET";
const WAIT: Duration = Duration::from_secs(10);
const T: u64 = 1_700_000_000_000_000_000;

fn module() -> PluginModRef {
    tfo_plugin_api::plugin_module!(tfo_dynatrace)
}

fn config(server: &TestServer, extra: &str) -> String {
    format!(
        r#"{{"api_token": "{TOKEN}", "environment_url": "{}", "ca_file": "{}"{extra}}}"#,
        server.url("/e/abc12345"),
        server.ca_file().display()
    )
}

fn create(host: &TestHost, config: &str) -> PluginInstanceBox {
    match tfo_plugin_api::testing::create(module(), host, "dynatrace", config) {
        Ok(i) => i,
        Err(e) => panic!("create: {e:?}"),
    }
}

fn resource() -> Resource {
    Resource {
        attributes: vec![KeyValue::new("host.name", "web-1")].into(),
    }
}

fn metrics_batch() -> Batch {
    let mut delta = Metric::counter(
        "http.requests",
        "1",
        T - 10_000_000_000,
        T,
        3.0,
        vec![KeyValue::new("route", "/a \"b\"")],
    );
    delta.temporality = Temporality::Delta;
    Batch {
        resource: resource(),
        metrics: vec![
            Metric::gauge(
                "cpu.temperature",
                "Cel",
                T,
                55.5,
                vec![KeyValue::new("cpu", 1i64)],
            ),
            delta,
        ]
        .into(),
        ..Default::default()
    }
}

fn log(body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: T,
        observed_time_unix_nano: T,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: AnyValue::from(body),
        attributes: vec![KeyValue::new("log.source", "/var/log/app.log")].into(),
        trace_id: [0xab; 16],
        span_id: [0xcd; 8],
    }
}

fn span() -> Span {
    Span {
        trace_id: [7; 16],
        span_id: [8; 8],
        parent_span_id: [0; 8],
        name: "GET /a".into(),
        kind: SpanKind::Server,
        start_time_unix_nano: T,
        end_time_unix_nano: T + 5_000_000,
        status_code: StatusCode::Ok,
        status_message: "".into(),
        attributes: vec![KeyValue::new("http.method", "GET")].into(),
        events: vec![].into(),
    }
}

/// One parsed metric line.
#[derive(Debug, PartialEq)]
struct Line {
    key: String,
    dims: Vec<(String, String)>,
    payload: String,
    ts: Option<u64>,
}

/// Parses a line of the metric ingestion protocol, written from the protocol page
/// (not from the encoder): key, then `,k="v"` dimensions with `\"` and `\\`
/// escapes inside quotes, a space, the payload, optionally a space and a timestamp.
fn parse_line(line: &str) -> Line {
    let key_end = line.find([',', ' ']).expect("key ends");
    let key = line[..key_end].to_string();
    let mut rest = &line[key_end..];
    let mut dims = Vec::new();
    while let Some(r) = rest.strip_prefix(',') {
        let eq = r.find('=').expect("dimension =");
        let k = r[..eq].to_string();
        let r = &r[eq + 1..];
        let mut chars = r.char_indices();
        assert_eq!(
            chars.next().map(|c| c.1),
            Some('"'),
            "quoted value in {line}"
        );
        let mut v = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => v.push(chars.next().expect("escaped char").1),
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                c => v.push(c),
            }
        }
        dims.push((k, v));
        rest = &r[end.expect("closing quote")..];
    }
    let rest = rest.strip_prefix(' ').expect("space before payload");
    let mut parts = rest.split(' ');
    let payload = parts.next().unwrap().to_string();
    let ts = parts.next().map(|t| t.parse().expect("timestamp"));
    assert!(parts.next().is_none(), "trailing fields in {line}");
    Line {
        key,
        dims,
        payload,
        ts,
    }
}

fn check_common(r: &RecordedRequest, path: &str, content_type: &str) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, path);
    assert_eq!(
        r.header("authorization"),
        Some(format!("Api-Token {TOKEN}").as_str())
    );
    assert_eq!(r.header("content-type"), Some(content_type));
    assert!(r
        .header("user-agent")
        .is_some_and(|u| u.starts_with("tfo-agent/")));
}

fn accepted(n: u64, invalid: u64) -> ScriptedResponse {
    ScriptedResponse::status(202)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"linesOk":{n},"linesInvalid":{invalid},"error":null,"warnings":null}}"#
        ))
}

fn all_text(host: &TestHost) -> String {
    host.logs()
        .into_iter()
        .map(|(_, l)| l)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn metrics_are_posted_in_the_line_protocol() {
    let server = TestServer::https();
    server.push_response(accepted(2, 0));
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, r#", "tags": {"team": "infra"}"#));
    let ok = export(&mut inst, &metrics_batch()).expect("export");
    assert_eq!(ok.accepted, 2);
    let reqs = server.wait_for_requests(1, WAIT);
    assert_eq!(reqs.len(), 1);
    check_common(
        &reqs[0],
        "/e/abc12345/api/v2/metrics/ingest",
        "text/plain; charset=utf-8",
    );
    let lines: Vec<Line> = reqs[0].text().lines().map(parse_line).collect();
    let ms = T / 1_000_000;
    let dims = |extra: Vec<(&str, &str)>| {
        extra
            .into_iter()
            .chain([("host.name", "web-1"), ("team", "infra")])
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        lines,
        vec![
            Line {
                key: "cpu.temperature".into(),
                dims: dims(vec![("cpu", "1")]),
                payload: "gauge,55.5".into(),
                ts: Some(ms),
            },
            Line {
                key: "http.requests".into(),
                dims: dims(vec![("route", "/a \"b\"")]),
                payload: "count,delta=3".into(),
                ts: Some(ms),
            },
        ]
    );
}

#[test]
fn cumulative_counters_are_sent_as_deltas_from_the_second_point() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, ""));
    let counter = |v: f64, t: u64| Batch {
        metrics: vec![Metric::counter("bytes.sent", "By", T - 1, t, v, vec![])].into(),
        ..Default::default()
    };
    // First point: the baseline, consumed without a request.
    assert_eq!(export(&mut inst, &counter(100.0, T)).unwrap().accepted, 1);
    assert!(server.requests().is_empty());
    server.push_response(accepted(1, 0));
    export(&mut inst, &counter(160.0, T + 10_000_000_000)).unwrap();
    let reqs = server.wait_for_requests(1, WAIT);
    let line = parse_line(reqs[0].text().trim());
    assert_eq!(line.payload, "count,delta=60");
}

#[test]
fn a_400_validation_response_is_partial_acceptance_and_not_retried() {
    let server = TestServer::https();
    server.push_response(
        ScriptedResponse::status(400)
            .header("content-type", "application/json")
            .body(
                r#"{"linesOk":1,"linesInvalid":1,"error":{"code":400,"message":"1 invalid line",
                "invalidLines":[{"line":2,"error":"invalid dimension value"}]},"warnings":null}"#,
            ),
    );
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, ""));
    let ok = export(&mut inst, &metrics_batch()).expect("partial success is success");
    assert_eq!(ok.accepted, 1);
    assert_eq!(server.requests().len(), 1, "not retried");
    let logs = all_text(&host);
    assert!(
        logs.contains("1 of 2 metric line(s) rejected")
            && logs.contains("line 2: invalid dimension value"),
        "{logs}"
    );
    let health = inst.health();
    assert!(
        health.reason.contains("rejected 1 item"),
        "{}",
        health.reason
    );
}

#[test]
fn a_400_with_no_valid_line_is_permanent() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(400).body(
        r#"{"linesOk":0,"linesInvalid":2,"error":{"code":400,"message":"2 invalid lines","invalidLines":[]}}"#,
    ));
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, ""));
    let e = export(&mut inst, &metrics_batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(e.message.contains("all 2 line(s) invalid"), "{e}");
    // An ErrorEnvelope 400 (no line counts) is permanent too.
    server.push_response(
        ScriptedResponse::status(400).body(r#"{"error":{"code":400,"message":"empty request"}}"#),
    );
    let e = export(&mut inst, &metrics_batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(e.message.contains("empty request"), "{e}");
}

#[test]
fn throttling_is_retryable_and_the_retry_sends_only_what_is_left() {
    let server = TestServer::https();
    server.push_response(accepted(1, 0));
    server.push_response(ScriptedResponse::status(429).header("Retry-After", "7"));
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, r#", "max_lines_per_request": 1"#));
    let batch = metrics_batch();
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), Some(7000));
    assert_eq!(e.accepted, 1);
    let first_two = server.wait_for_requests(2, WAIT);
    assert_eq!(first_two[0].text().lines().count(), 1);
    // The host retries the same batch: only the refused chunk goes out again.
    server.push_response(accepted(1, 0));
    let ok = export(&mut inst, &batch).unwrap();
    assert_eq!(ok.accepted, 2);
    let reqs = server.wait_for_requests(3, WAIT);
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[2].body, reqs[1].body);
    assert!(
        reqs[2].text().starts_with("http.requests"),
        "{}",
        reqs[2].text()
    );
}

#[test]
fn server_errors_are_retryable_auth_errors_permanent() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(503));
    server.push_response(
        ScriptedResponse::status(401)
            .body(r#"{"error":{"code":401,"message":"Missing authorization parameter."}}"#),
    );
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, ""));
    let e = export(&mut inst, &metrics_batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    // A different batch: a fresh attempt.
    let mut other = metrics_batch();
    other.resource = Resource::default();
    let e = export(&mut inst, &other).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(e.message.contains("401"), "{e}");
    assert!(e.message.contains("Missing authorization parameter"), "{e}");
}

#[test]
fn logs_are_posted_as_a_json_array() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(204));
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, r#", "tags": {"env": "prod"}"#));
    let batch = Batch {
        resource: resource(),
        logs: vec![log("disk full"), log("retrying")].into(),
        ..Default::default()
    };
    assert_eq!(export(&mut inst, &batch).unwrap().accepted, 2);
    let reqs = server.wait_for_requests(1, WAIT);
    check_common(
        &reqs[0],
        "/e/abc12345/api/v2/logs/ingest",
        "application/json; charset=utf-8",
    );
    let v: Value = serde_json::from_slice(&reqs[0].body).expect("JSON body");
    assert_eq!(
        v[0],
        json!({
            "content": "disk full",
            "timestamp": "2023-11-14T22:13:20.000Z",
            "severity": "error",
            "log.source": "/var/log/app.log",
            "host.name": "web-1",
            "env": "prod",
            "trace_id": "ab".repeat(16),
            "span_id": "cd".repeat(8),
        })
    );
    assert_eq!(v[1]["content"], "retrying");
}

#[test]
fn log_answers_partial_throttled_and_too_large() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, ""));
    let batch = |b: &str| Batch {
        logs: vec![log(b)].into(),
        ..Default::default()
    };
    server.push_response(ScriptedResponse::status(200).body(
        r#"{"details":{"code":200,"message":"1 log events were not ingested due to event invalidity"}}"#,
    ));
    assert!(export(&mut inst, &batch("a")).is_ok());
    assert!(all_text(&host).contains("event invalidity"));
    server.push_response(ScriptedResponse::status(429).header("Retry-After", "3"));
    let e = export(&mut inst, &batch("b")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), Some(3000));
    server.push_response(
        ScriptedResponse::status(413)
            .body(r#"{"error":{"code":413,"message":"Payload too large"}}"#),
    );
    let e = export(&mut inst, &batch("c")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    server.push_response(ScriptedResponse::status(501));
    let e = export(&mut inst, &batch("d")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn spans_go_to_the_otlp_endpoint_as_protobuf() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, ""));
    let batch = Batch {
        resource: resource(),
        spans: vec![span()].into(),
        ..Default::default()
    };
    assert_eq!(export(&mut inst, &batch).unwrap().accepted, 1);
    let reqs = server.wait_for_requests(1, WAIT);
    check_common(
        &reqs[0],
        "/e/abc12345/api/v2/otlp/v1/traces",
        "application/x-protobuf",
    );
    let req = ExportTraceServiceRequest::decode(&reqs[0].body[..]).expect("OTLP protobuf");
    let rs = &req.resource_spans[0];
    let attr = &rs.resource.as_ref().unwrap().attributes[0];
    assert_eq!(attr.key, "host.name");
    let s = &rs.scope_spans[0].spans[0];
    assert_eq!(s.trace_id, vec![7; 16]);
    assert_eq!(s.span_id, vec![8; 8]);
    assert_eq!(s.name, "GET /a");
    assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 5_000_000);
    server.push_response(ScriptedResponse::status(415));
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
}

#[test]
fn a_mixed_batch_resumes_without_resending_delivered_signals() {
    let server = TestServer::https();
    server.push_response(accepted(2, 0));
    server.push_response(ScriptedResponse::status(503).header("Retry-After", "1"));
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, ""));
    let mut batch = metrics_batch();
    batch.logs = vec![log("x")].into();
    batch.spans = vec![span()].into();
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.accepted, 2);
    server.push_response(ScriptedResponse::status(204));
    let ok = export(&mut inst, &batch).unwrap();
    assert_eq!(ok.accepted, 4);
    let paths: Vec<String> = server
        .wait_for_requests(4, WAIT)
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(
        paths,
        vec![
            "/e/abc12345/api/v2/metrics/ingest",
            "/e/abc12345/api/v2/logs/ingest",
            "/e/abc12345/api/v2/logs/ingest",
            "/e/abc12345/api/v2/otlp/v1/traces",
        ]
    );
}

#[test]
fn signals_not_configured_are_not_sent() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, r#", "signals": ["logs"]"#));
    let mut batch = metrics_batch();
    batch.spans = vec![span()].into();
    batch.logs = vec![log("only me")].into();
    server.push_response(ScriptedResponse::status(204));
    export(&mut inst, &batch).unwrap();
    let reqs = server.wait_for_requests(1, WAIT);
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].path.ends_with("/logs/ingest"));
}

#[test]
fn tls_is_verified() {
    let server = TestServer::https();
    let host = TestHost::default();
    let cfg = format!(
        r#"{{"api_token": "{TOKEN}", "environment_url": "{}"}}"#,
        server.url("")
    );
    let mut inst = create(&host, &cfg);
    let e = export(&mut inst, &metrics_batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(server.requests().is_empty());
}

#[test]
fn the_token_never_appears_in_logs_or_errors() {
    let server = TestServer::https();
    // A backend (or proxy) that echoes the credentials back in its error body.
    server.push_response(
        ScriptedResponse::status(401)
            .body(format!(r#"{{"error":{{"message":"bad token {TOKEN}"}}}}"#)),
    );
    server.push_response(ScriptedResponse::status(202).body(format!(
        r#"{{"linesOk":1,"linesInvalid":1,"error":{{"message":"{TOKEN}","invalidLines":[]}}}}"#
    )));
    let host = TestHost::default();
    let mut inst = create(&host, &config(&server, ""));
    let e = export(&mut inst, &metrics_batch()).unwrap_err();
    let mut texts = vec![e.message.to_string()];
    let mut other = metrics_batch();
    other.resource = Resource::default();
    export(&mut inst, &other).unwrap();
    texts.push(inst.health().reason.to_string());
    texts.push(all_text(&host));
    // A transport error (nothing listening).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg =
        format!(r#"{{"api_token": "{TOKEN}", "environment_url": "https://127.0.0.1:{port}"}}"#);
    let mut dead = create(&host, &cfg);
    texts.push(
        export(&mut dead, &metrics_batch())
            .unwrap_err()
            .message
            .to_string(),
    );
    // A config error.
    let e = tfo_plugin_api::testing::create(
        module(),
        &host,
        "dt",
        &format!(r#"{{"api_token": "{TOKEN}"}}"#),
    )
    .err()
    .expect("config error");
    texts.push(format!("{e:?}"));
    for t in texts {
        assert!(!t.contains("SECRETSECRET"), "token leaked: {t}");
    }
    assert!(server.requests().len() == 2);
}

#[test]
fn config_errors_carry_field_paths() {
    let host = TestHost::default();
    let e = tfo_plugin_api::testing::create(
        module(),
        &host,
        "dt",
        r#"{"api_token": "", "environment_url": "ftp://x", "signals": []}"#,
    )
    .err()
    .expect("invalid");
    let paths: Vec<String> = e.config_errors.iter().map(|c| c.path.to_string()).collect();
    assert_eq!(paths, vec!["api_token", "environment_url", "signals"]);
    let e = tfo_plugin_api::testing::create(
        module(),
        &host,
        "dt",
        r#"{"api_token": "t", "environment_id": "a", "timeout": "soon"}"#,
    )
    .err()
    .expect("invalid");
    assert_eq!(e.config_errors[0].path.as_str(), "timeout");
}
