//! Contract tests: the plugin, driven through its exported root module as the
//! agent drives it, posts to the strict local HTTPS server of `tfo-plugin-common`
//! (its own CA; TLS verification stays on). The server records each request as it
//! arrived; these tests check method, path, headers and the `DD-API-KEY`, decode
//! each body themselves (gzip undone by the server, then `serde_json::Value`, or
//! the OTLP protobuf message for traces) and play Datadog's documented answers:
//! 202 (with and without non-fatal `errors`), 400, 403, 413, 429 with
//! `Retry-After` or `X-RateLimit-Reset`, 500/503.

use std::time::Duration;

use serde_json::Value;
use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult,
    testing::{export, TestHost},
    AnyValue, Batch, ErrorKind, HealthState, KeyValue, LogRecord, Metric, PluginInstanceBox,
    Resource, Span, SpanKind, StatusCode,
};
use tfo_plugin_common::{
    otlp::{
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        prost::Message as _,
    },
    testing::{RecordedRequest, ScriptedResponse, TestServer},
};

const KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const NOW_NS: u64 = 1_764_000_000_000_000_000;

fn create(host: &TestHost, config: &str) -> Result<PluginInstanceBox, tfo_plugin_api::CreateError> {
    tfo_plugin_api::testing::create(
        tfo_plugin_api::plugin_module!(tfo_datadog),
        host,
        "datadog",
        config,
    )
}

/// Config pointing every endpoint at `server`, trusting its CA.
fn config(server: &TestServer, extra: &str) -> String {
    format!(
        r#"{{"api_key": "{KEY}",
            "metrics_endpoint": "{}", "logs_endpoint": "{}", "traces_endpoint": "{}",
            "ca_file": "{}" {extra}}}"#,
        server.url("/api/v2/series"),
        server.url("/api/v2/logs"),
        server.url("/v1/traces"),
        server.ca_file().display()
    )
}

fn instance(host: &TestHost, cfg: &str) -> PluginInstanceBox {
    create(host, cfg).unwrap_or_else(|e| panic!("create: {e:?}"))
}

fn log_record(msg: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: NOW_NS,
        observed_time_unix_nano: 0,
        severity_number: 13,
        severity_text: "WARN".into(),
        body: AnyValue::from(msg),
        attributes: vec![KeyValue::new("user.id", 7i64)].into(),
        trace_id: [0; 16],
        span_id: [0; 8],
    }
}

fn batch() -> Batch {
    Batch {
        resource: Resource {
            attributes: vec![
                KeyValue::new("host.name", "web-1"),
                KeyValue::new("service.name", "shop"),
                KeyValue::new("deployment.environment", "prod"),
            ]
            .into(),
        },
        metrics: vec![
            Metric::gauge(
                "system.load.1",
                "",
                NOW_NS,
                0.7,
                vec![KeyValue::new("cpu", "all")],
            ),
            Metric::counter(
                "http.requests",
                "1",
                NOW_NS - 10_000_000_000,
                NOW_NS,
                42.0,
                vec![],
            ),
        ]
        .into(),
        spans: vec![Span {
            trace_id: [7; 16],
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent_span_id: [0; 8],
            name: "GET /cart".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: NOW_NS - 5_000_000,
            end_time_unix_nano: NOW_NS,
            status_code: StatusCode::Ok,
            status_message: "".into(),
            attributes: vec![KeyValue::new("http.route", "/cart")].into(),
            events: Default::default(),
        }]
        .into(),
        logs: vec![log_record("cart is empty")].into(),
    }
}

fn json(r: &RecordedRequest) -> Value {
    assert!(r.decode_error.is_none(), "{:?}", r.decode_error);
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{}: {e}: {}", r.path, r.text()))
}

fn accepted() -> ScriptedResponse {
    ScriptedResponse::status(202)
        .header("Content-Type", "application/json")
        .body(r#"{"errors":[]}"#)
}

fn assert_no_key(host: &TestHost, texts: &[String]) {
    for (_, line) in host.logs() {
        assert!(!line.contains(KEY), "API key in a log line: {line}");
    }
    for t in texts {
        assert!(!t.contains(KEY), "API key in an error: {t}");
    }
}

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn metrics_logs_and_traces_reach_their_apis_in_their_documented_shapes() {
    let server = TestServer::https();
    server.push_response(accepted());
    server.push_response(accepted());
    server.push_response(ScriptedResponse::status(200));
    let host = TestHost::default();
    let mut inst = instance(
        &host,
        &config(&server, r#", "traces": true, "tags": ["team:infra"]"#),
    );
    let ok = export(&mut inst, &batch()).unwrap();
    assert_eq!(ok.accepted, 4, "2 points + 1 log + 1 span");
    let reqs = server.wait_for_requests(3, WAIT);
    assert_eq!(reqs.len(), 3);

    // Metrics: v2 series.
    let m = &reqs[0];
    assert_eq!(
        (m.method.as_str(), m.path.as_str()),
        ("POST", "/api/v2/series")
    );
    assert_eq!(m.header("dd-api-key"), Some(KEY));
    assert_eq!(m.header("content-type"), Some("application/json"));
    assert_eq!(m.header("content-encoding"), Some("gzip"));
    assert_ne!(m.raw_body, m.body, "sent compressed");
    let body = json(m);
    let series = body["series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    let load = &series[0];
    assert_eq!(load["metric"], "system.load.1");
    assert_eq!(load["type"], 3);
    assert_eq!(
        load["points"],
        serde_json::json!([{"timestamp": 1_764_000_000i64, "value": 0.7}])
    );
    assert_eq!(
        load["resources"],
        serde_json::json!([{"name": "web-1", "type": "host"}])
    );
    assert_eq!(
        load["tags"],
        serde_json::json!(["service:shop", "env:prod", "team:infra", "cpu:all"])
    );
    // A cumulative counter is sent as a gauge of its total (documented).
    assert_eq!(series[1]["metric"], "http.requests");
    assert_eq!(series[1]["type"], 3);
    assert_eq!(series[1]["points"][0]["value"], 42.0);

    // Logs: v2 intake, a JSON array.
    let l = &reqs[1];
    assert_eq!(
        (l.method.as_str(), l.path.as_str()),
        ("POST", "/api/v2/logs")
    );
    assert_eq!(l.header("dd-api-key"), Some(KEY));
    assert_eq!(l.header("content-encoding"), Some("gzip"));
    let logs = json(l);
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 1);
    let log = &logs[0];
    assert_eq!(log["message"], "cart is empty");
    assert_eq!(log["ddsource"], "tfo-agent");
    assert_eq!(log["ddtags"], "env:prod,team:infra");
    assert_eq!(log["hostname"], "web-1");
    assert_eq!(log["service"], "shop");
    assert_eq!(log["status"], "warning");
    assert_eq!(log["timestamp"], 1_764_000_000_000i64);
    assert_eq!(log["user.id"], 7);

    // Traces: OTLP protobuf to the Agent, without the API key.
    let t = &reqs[2];
    assert_eq!((t.method.as_str(), t.path.as_str()), ("POST", "/v1/traces"));
    assert_eq!(t.header("dd-api-key"), None, "the Agent needs no key");
    assert_eq!(t.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(t.header("content-encoding"), Some("gzip"));
    let req = ExportTraceServiceRequest::decode(&t.body[..]).expect("an OTLP traces request");
    let rs = &req.resource_spans[0];
    let service = rs
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .unwrap();
    assert_eq!(
        format!("{:?}", service.value),
        format!(
            "{:?}",
            Some(tfo_plugin_common::otlp::any_value(&AnyValue::from("shop")))
        )
    );
    let span = &rs.scope_spans[0].spans[0];
    assert_eq!(span.name, "GET /cart");
    assert_eq!(span.trace_id, vec![7u8; 16]);
    assert_eq!(span.span_id, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        span.end_time_unix_nano - span.start_time_unix_nano,
        5_000_000
    );

    assert_eq!(
        match inst.health().state {
            HealthState::Healthy => "healthy",
            _ => "other",
        },
        "healthy"
    );
    assert_no_key(&host, &[]);
}

#[test]
fn v1_and_uncompressed_bodies_on_request() {
    let server = TestServer::https();
    let host = TestHost::default();
    let cfg = format!(
        r#"{{"api_key": "{KEY}", "api_version": "v1", "compression": "none", "logs": false,
            "metrics_endpoint": "{}", "ca_file": "{}"}}"#,
        server.url("/api/v1/series"),
        server.ca_file().display()
    );
    let mut inst = instance(&host, &cfg);
    let ok = export(&mut inst, &batch()).unwrap();
    assert_eq!(
        ok.accepted, 2,
        "the log and the span are not sent by this instance"
    );
    let reqs = server.wait_for_requests(1, WAIT);
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/api/v1/series");
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.raw_body, r.body);
    let body = json(r);
    let s = &body["series"][0];
    assert_eq!(s["type"], "gauge");
    assert_eq!(s["points"], serde_json::json!([[1_764_000_000i64, 0.7]]));
    assert_eq!(s["host"], "web-1");
}

#[test]
fn throttling_is_retryable_with_the_servers_delay() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&server, r#", "logs": false"#));
    server.push_response(
        ScriptedResponse::status(429)
            .header("Retry-After", "5")
            .body(r#"{"errors":["Too many requests"]}"#),
    );
    let e = export(&mut inst, &batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), Some(5000));
    assert!(e.message.contains("429"), "{e}");

    // Datadog's own rate-limit header when there is no Retry-After.
    server.push_response(
        ScriptedResponse::status(429)
            .header("X-RateLimit-Limit", "100")
            .header("X-RateLimit-Period", "60")
            .header("X-RateLimit-Remaining", "0")
            .header("X-RateLimit-Reset", "12"),
    );
    let e = export(&mut inst, &batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), Some(12_000));

    for status in [500, 503, 408] {
        server.push_response(ScriptedResponse::status(status));
        let e = export(&mut inst, &batch()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Retryable, "{status}");
    }
}

#[test]
fn a_refused_key_is_permanent_unhealthy_and_never_logged() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&server, ""));
    // A server that echoes the key back must not make it appear anywhere.
    server.push_response(
        ScriptedResponse::status(403).body(format!(r#"{{"errors":["Forbidden: bad key {KEY}"]}}"#)),
    );
    let e = export(&mut inst, &batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(e.message.contains("API key was refused"), "{e}");
    assert_eq!(server.requests().len(), 1, "stops at the first 403");
    let h = inst.health();
    assert_eq!(h.state, HealthState::Unhealthy);
    assert_no_key(&host, &[e.message.to_string(), h.reason.to_string()]);
    // The key did go out, in its header only.
    assert_eq!(server.requests()[0].header("dd-api-key"), Some(KEY));
    assert!(!server.requests()[0].text().contains(KEY));
}

#[test]
fn bad_request_is_permanent_and_other_payloads_still_go() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&server, ""));
    // Series refused (the answer quoting the key, which is logged as a warning
    // and must come out redacted), logs accepted: the export succeeds for the log.
    server.push_response(
        ScriptedResponse::status(400).body(format!(r#"{{"errors":["Bad Request for {KEY}"]}}"#)),
    );
    server.push_response(accepted());
    let ok = export(&mut inst, &batch()).unwrap();
    assert_eq!(ok.accepted, 1);
    assert_eq!(server.requests().len(), 2);
    assert!(inst.health().reason.contains("400"));
    assert!(!inst.health().reason.contains(KEY));
    assert!(
        host.logs()
            .iter()
            .any(|(_, l)| l.contains("Bad Request for ***")),
        "the refusal is logged, redacted: {:?}",
        host.logs()
    );

    // Everything refused: a permanent error.
    server.push_response(ScriptedResponse::status(400).body(r#"{"errors":["Bad Request"]}"#));
    server.push_response(ScriptedResponse::status(400).body(r#"{"errors":["Bad Request"]}"#));
    let e = export(&mut inst, &batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(e.message.contains("Bad Request"), "{e}");
    assert_no_key(&host, &[e.message.to_string()]);
}

#[test]
fn non_fatal_errors_of_an_accepted_payload_show_in_health() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&server, r#", "logs": false"#));
    server.push_response(
        ScriptedResponse::status(202)
            .body(r#"{"errors":["metric http.requests: timestamp too old"]}"#),
    );
    let ok = export(&mut inst, &batch()).unwrap();
    assert_eq!(ok.accepted, 2);
    let h = inst.health();
    assert_eq!(h.state, HealthState::Healthy);
    assert!(h.reason.contains("timestamp too old"), "{:?}", h.reason);
    assert!(host
        .logs()
        .iter()
        .any(|(_, l)| l.contains("timestamp too old")));
}

#[test]
fn a_retry_does_not_resend_what_was_delivered() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&server, ""));
    server.push_response(accepted());
    server.push_response(ScriptedResponse::status(503).header("Retry-After", "1"));
    let b = batch();
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.accepted, 2, "the series were delivered");
    // The host retries the same batch: only the logs go again.
    let ok = export(&mut inst, &b).unwrap();
    assert_eq!(ok.accepted, 3);
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/api/v2/series", "/api/v2/logs", "/api/v2/logs"]);
    // A different batch starts from scratch.
    export(&mut inst, &batch()).unwrap();
    assert_eq!(server.requests().len(), 5);
}

#[test]
fn too_large_payloads_are_halved_and_a_single_entry_is_dropped() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&server, r#", "metrics": false"#));
    let mut b = batch();
    b.logs = (0..4)
        .map(|i| log_record(&format!("line {i}")))
        .collect::<Vec<_>>()
        .into();
    server.push_response(ScriptedResponse::status(413).body(r#"{"errors":["Payload too large"]}"#));
    let ok = export(&mut inst, &b).unwrap();
    assert_eq!(ok.accepted, 4);
    let reqs = server.requests();
    let sizes: Vec<usize> = reqs
        .iter()
        .map(|r| json(r).as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [4, 2, 2]);
    let messages: Vec<String> = reqs[1..]
        .iter()
        .flat_map(|r| json(r).as_array().unwrap().clone())
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(messages, ["line 0", "line 1", "line 2", "line 3"]);

    // One log refused as too large: nothing left to split, a permanent error.
    b.logs = vec![log_record("only")].into();
    server.push_response(ScriptedResponse::status(413));
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
}

#[test]
fn requests_respect_the_documented_limits() {
    let server = TestServer::https();
    let host = TestHost::default();
    // Logs: at most 1000 entries per request.
    let mut inst = instance(&host, &config(&server, r#", "metrics": false"#));
    let mut b = batch();
    b.logs = (0..2500)
        .map(|i| log_record(&format!("l{i}")))
        .collect::<Vec<_>>()
        .into();
    assert_eq!(export(&mut inst, &b).unwrap().accepted, 2500);
    let sizes: Vec<usize> = server
        .requests()
        .iter()
        .map(|r| json(r).as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [1000, 1000, 500]);

    // Series, uncompressed: at most 512000 bytes per request.
    let server = TestServer::https();
    let mut inst = instance(
        &host,
        &config(&server, r#", "logs": false, "compression": "none""#),
    );
    let mut b = batch();
    b.metrics = (0..8000)
        .map(|i| {
            Metric::gauge(
                &format!("app.metric.number.{i:05}"),
                "",
                NOW_NS,
                i as f64,
                vec![KeyValue::new("padding", "x".repeat(40))],
            )
        })
        .collect::<Vec<_>>()
        .into();
    assert_eq!(export(&mut inst, &b).unwrap().accepted, 8000);
    let reqs = server.requests();
    assert!(reqs.len() >= 2, "{}", reqs.len());
    let mut total = 0;
    for r in &reqs {
        assert!(r.raw_body.len() <= 512_000, "{}", r.raw_body.len());
        total += json(r)["series"].as_array().unwrap().len();
    }
    assert_eq!(total, 8000);
}

#[test]
fn tls_verification_is_on() {
    let server = TestServer::https();
    let host = TestHost::default();
    let cfg = format!(
        r#"{{"api_key": "{KEY}", "metrics_endpoint": "{}", "logs": false}}"#,
        server.url("/api/v2/series")
    );
    let mut inst = instance(&host, &cfg);
    let e = export(&mut inst, &batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(server.requests().is_empty());
    assert_no_key(&host, &[e.message.to_string()]);
}

#[test]
fn config_errors_carry_their_paths() {
    let host = TestHost::default();
    let e = create(&host, r#"{"site": "datadoghq.org"}"#).err().unwrap();
    let paths: Vec<String> = e.config_errors.iter().map(|c| c.path.to_string()).collect();
    assert_eq!(paths, ["api_key", "site"]);
    let e = create(&host, r#"{"api_key": "k", "app_key": "x"}"#)
        .err()
        .unwrap();
    assert!(format!("{e:?}").contains("app_key"), "{e:?}");
    let e = create(
        &host,
        &format!(r#"{{"api_key": "{KEY}", "timeout": "soon"}}"#),
    )
    .err()
    .unwrap();
    assert_eq!(e.config_errors[0].path.as_str(), "timeout");
    assert!(!format!("{e:?}").contains(KEY));
}

#[test]
fn preview_renders_without_sending() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&server, r#", "traces": true"#));
    let text = match inst.preview(&batch()) {
        RResult::ROk(t) => t.to_string(),
        RResult::RErr(e) => panic!("{e}"),
    };
    assert!(text.contains("/api/v2/series"), "{text}");
    assert!(text.contains("\"metric\":\"system.load.1\""), "{text}");
    assert!(text.contains("cart is empty"), "{text}");
    assert!(text.contains("OTLP protobuf"), "{text}");
    assert!(!text.contains(KEY));
    assert!(server.requests().is_empty());
}
