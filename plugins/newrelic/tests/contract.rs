//! Contract tests: the plugin, driven through its exported root module as the
//! agent drives it, posts to the strict local HTTPS server of `tfo-plugin-common`
//! (its own CA; TLS verification stays on). The server records each request as it
//! arrived; these tests check method, path, headers (`Api-Key` or
//! `X-Insert-Key`, `Data-Format` on traces), decode each body themselves (gzip
//! undone by the server, then `serde_json::Value`) and play New Relic's documented
//! answers: 202 with a `requestId`, 400, 403, 413, 429 with `Retry-After`,
//! 408/500/503.

use std::time::Duration;

use serde_json::{json, Value};
use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult,
    testing::{export, TestHost},
    AnyValue, Batch, ErrorKind, HealthState, KeyValue, LogRecord, Metric, PluginInstanceBox,
    Resource, Span, SpanKind, StatusCode,
};
use tfo_plugin_common::testing::{RecordedRequest, ScriptedResponse, TestServer};

const KEY: &str = "eu01xx0123456789abcdef0123456789abcdNRAL";
const NOW_MS: u64 = 1_764_000_000_000;
const WAIT: Duration = Duration::from_secs(10);

fn create(host: &TestHost, config: &str) -> Result<PluginInstanceBox, tfo_plugin_api::CreateError> {
    tfo_plugin_api::testing::create(
        tfo_plugin_api::plugin_module!(tfo_newrelic),
        host,
        "newrelic",
        config,
    )
}

fn config(server: &TestServer, extra: &str) -> String {
    format!(
        r#"{{"license_key": "{KEY}",
            "metrics_endpoint": "{}", "logs_endpoint": "{}", "traces_endpoint": "{}",
            "ca_file": "{}" {extra}}}"#,
        server.url("/metric/v1"),
        server.url("/log/v1"),
        server.url("/trace/v1"),
        server.ca_file().display()
    )
}

fn instance(host: &TestHost, cfg: &str) -> PluginInstanceBox {
    create(host, cfg).unwrap_or_else(|e| panic!("create: {e:?}"))
}

fn log_record(msg: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: NOW_MS * 1_000_000,
        observed_time_unix_nano: 0,
        severity_number: 9,
        severity_text: "".into(),
        body: AnyValue::from(msg),
        attributes: vec![KeyValue::new("user.id", 7i64)].into(),
        trace_id: [0x0a; 16],
        span_id: [0x0b; 8],
    }
}

fn batch() -> Batch {
    let now_ns = NOW_MS * 1_000_000;
    let mut delta = Metric::counter(
        "http.requests",
        "1",
        now_ns - 10_000_000_000,
        now_ns,
        42.0,
        vec![],
    );
    delta.temporality = tfo_plugin_api::Temporality::Delta;
    Batch {
        resource: Resource {
            attributes: vec![
                KeyValue::new("host.name", "web-1"),
                KeyValue::new("service.name", "shop"),
            ]
            .into(),
        },
        metrics: vec![
            Metric::gauge(
                "memory.heap",
                "By",
                now_ns,
                2.3,
                vec![KeyValue::new("pool", "eden")],
            ),
            delta,
        ]
        .into(),
        spans: vec![Span {
            trace_id: [0x0a; 16],
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent_span_id: [0; 8],
            name: "GET /cart".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: now_ns - 12_530_000,
            end_time_unix_nano: now_ns,
            status_code: StatusCode::Unset,
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
        .header("Content-Type", "application/json; charset=UTF-8")
        .body(r#"{"requestId":"f0e7bfff-001a-b000-0000-01682bcf4565"}"#)
}

fn assert_no_key(host: &TestHost, texts: &[String]) {
    for (_, line) in host.logs() {
        assert!(!line.contains(KEY), "key in a log line: {line}");
    }
    for t in texts {
        assert!(!t.contains(KEY), "key in an error: {t}");
    }
}

#[test]
fn metrics_logs_and_traces_reach_their_apis_in_their_documented_shapes() {
    let server = TestServer::https();
    for _ in 0..3 {
        server.push_response(accepted());
    }
    let host = TestHost::default();
    let mut inst = instance(
        &host,
        &config(
            &server,
            r#", "attributes": {"team": "infra"}, "environment": "prod""#,
        ),
    );
    assert_eq!(export(&mut inst, &batch()).unwrap().accepted, 4);
    let reqs = server.wait_for_requests(3, WAIT);
    assert_eq!(reqs.len(), 3);
    let common = json!({"attributes": {"host.name": "web-1", "service.name": "shop",
                                       "environment": "prod", "team": "infra"}});
    for r in &reqs {
        assert_eq!(r.method.as_str(), "POST");
        assert_eq!(r.header("api-key"), Some(KEY));
        assert_eq!(r.header("x-insert-key"), None);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_ne!(r.raw_body, r.body, "sent compressed");
    }

    let m = &reqs[0];
    assert_eq!(m.path, "/metric/v1");
    assert_eq!(m.header("data-format"), None);
    let body = json(m);
    assert_eq!(body[0]["common"], common);
    assert_eq!(
        body[0]["metrics"],
        json!([
            {"name": "memory.heap", "type": "gauge", "value": 2.3, "timestamp": NOW_MS,
             "attributes": {"pool": "eden"}},
            {"name": "http.requests", "type": "count", "value": 42.0,
             "timestamp": NOW_MS - 10_000, "interval.ms": 10_000}
        ])
    );

    let l = &reqs[1];
    assert_eq!(l.path, "/log/v1");
    let body = json(l);
    assert_eq!(body[0]["common"], common);
    assert_eq!(
        body[0]["logs"],
        json!([{"timestamp": NOW_MS, "message": "cart is empty",
                "attributes": {"user.id": 7, "level": "INFO",
                               "trace.id": "0a".repeat(16), "span.id": "0b".repeat(8)}}])
    );

    let t = &reqs[2];
    assert_eq!(t.path, "/trace/v1");
    assert_eq!(t.header("data-format"), Some("newrelic"));
    assert_eq!(t.header("data-format-version"), Some("1"));
    let body = json(t);
    assert_eq!(body[0]["common"], common);
    let span = &body[0]["spans"][0];
    assert_eq!(span["id"], "0102030405060708");
    assert_eq!(span["trace.id"], "0a".repeat(16));
    assert_eq!(span["timestamp"], NOW_MS - 13, "start time, floored to ms");
    assert_eq!(span["attributes"]["name"], "GET /cart");
    assert_eq!(span["attributes"]["duration.ms"], 12.53);
    assert_eq!(span["attributes"]["span.kind"], "server");
    assert_eq!(span["attributes"]["http.route"], "/cart");
    assert!(span["attributes"].get("parent.id").is_none(), "a root span");

    assert_eq!(inst.health().state, HealthState::Healthy);
    assert_no_key(&host, &[]);
}

#[test]
fn an_insert_key_goes_in_x_insert_key_and_compression_can_be_off() {
    let server = TestServer::https();
    let host = TestHost::default();
    let cfg = format!(
        r#"{{"insights_insert_key": "{KEY}", "compression": false, "logs": false, "traces": false,
            "metrics_endpoint": "{}", "ca_file": "{}"}}"#,
        server.url("/metric/v1"),
        server.ca_file().display()
    );
    let mut inst = instance(&host, &cfg);
    assert_eq!(
        export(&mut inst, &batch()).unwrap().accepted,
        2,
        "logs and spans not sent"
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("x-insert-key"), Some(KEY));
    assert_eq!(reqs[0].header("api-key"), None);
    assert_eq!(reqs[0].header("content-encoding"), None);
    assert_eq!(reqs[0].raw_body, reqs[0].body);
    assert_eq!(json(&reqs[0])[0]["metrics"].as_array().unwrap().len(), 2);
}

#[test]
fn throttling_and_server_errors_are_retryable() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(
        &host,
        &config(&server, r#", "logs": false, "traces": false"#),
    );
    server.push_response(ScriptedResponse::status(429).header("Retry-After", "30"));
    let e = export(&mut inst, &batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), Some(30_000));
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
    server.push_response(ScriptedResponse::status(403).body(format!("invalid key {KEY}")));
    let e = export(&mut inst, &batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(e.message.contains("refused the key"), "{e}");
    assert_eq!(server.requests().len(), 1, "stops at the first 403");
    let h = inst.health();
    assert_eq!(h.state, HealthState::Unhealthy);
    assert_no_key(&host, &[e.message.to_string(), h.reason.to_string()]);
    assert!(
        !server.requests()[0].text().contains(KEY),
        "the key is not in the body"
    );
}

#[test]
fn a_bad_request_drops_that_payload_only() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&server, ""));
    // The refusal quotes the key: it is logged as a warning and must come out
    // redacted.
    server.push_response(ScriptedResponse::status(400).body(format!("bad payload for {KEY}")));
    server.push_response(accepted());
    server.push_response(accepted());
    assert_eq!(
        export(&mut inst, &batch()).unwrap().accepted,
        2,
        "log and span"
    );
    assert!(
        host.logs()
            .iter()
            .any(|(_, l)| l.contains("bad payload for ***")),
        "the refusal is logged, redacted: {:?}",
        host.logs()
    );
    assert_no_key(&host, &[inst.health().reason.to_string()]);
    assert_eq!(server.requests().len(), 3);
    assert!(
        inst.health().reason.contains("400"),
        "{:?}",
        inst.health().reason
    );

    for _ in 0..3 {
        server.push_response(ScriptedResponse::status(400));
    }
    let e = export(&mut inst, &batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
}

#[test]
fn a_retry_does_not_resend_what_was_delivered() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&server, ""));
    server.push_response(accepted());
    server.push_response(accepted());
    server.push_response(ScriptedResponse::status(503).header("Retry-After", "1"));
    let b = batch();
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), Some(1000));
    assert_eq!(e.accepted, 3);
    assert_eq!(export(&mut inst, &b).unwrap().accepted, 4);
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/metric/v1", "/log/v1", "/trace/v1", "/trace/v1"]);
}

#[test]
fn too_large_payloads_are_halved() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(
        &host,
        &config(&server, r#", "metrics": false, "traces": false"#),
    );
    let mut b = batch();
    b.logs = (0..4)
        .map(|i| log_record(&format!("line {i}")))
        .collect::<Vec<_>>()
        .into();
    server.push_response(ScriptedResponse::status(413));
    assert_eq!(export(&mut inst, &b).unwrap().accepted, 4);
    let sizes: Vec<usize> = server
        .requests()
        .iter()
        .map(|r| json(r)[0]["logs"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [4, 2, 2]);
    // The common block is repeated in every half.
    for r in server.requests() {
        assert_eq!(json(&r)[0]["common"]["attributes"]["service.name"], "shop");
    }
    b.logs = vec![log_record("one")].into();
    server.push_response(ScriptedResponse::status(413));
    assert_eq!(
        export(&mut inst, &b).unwrap_err().kind,
        ErrorKind::Permanent
    );
}

#[test]
fn requests_stay_under_one_megabyte_as_sent() {
    // Hard-to-compress messages, so that gzip alone does not fit them in 1 MB.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut noise = || {
        (0..64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{:016x}", x)
            })
            .collect::<String>()
    };
    let mut b = batch();
    b.logs = (0..3000)
        .map(|_| log_record(&noise()))
        .collect::<Vec<_>>()
        .into();
    for compression in ["gzip", "none"] {
        let server = TestServer::https();
        let host = TestHost::default();
        let extra =
            format!(r#", "metrics": false, "traces": false, "compression": "{compression}""#);
        let mut inst = instance(&host, &config(&server, &extra));
        assert_eq!(export(&mut inst, &b).unwrap().accepted, 3000);
        let reqs = server.requests();
        assert!(reqs.len() >= 2, "{compression}: {}", reqs.len());
        let mut n = 0;
        for r in &reqs {
            assert!(
                r.raw_body.len() <= 1_000_000,
                "{compression}: {}",
                r.raw_body.len()
            );
            n += json(r)[0]["logs"].as_array().unwrap().len();
        }
        assert_eq!(n, 3000);
    }
}

#[test]
fn tls_verification_is_on() {
    let server = TestServer::https();
    let host = TestHost::default();
    let cfg = format!(
        r#"{{"license_key": "{KEY}", "metrics_endpoint": "{}", "logs": false, "traces": false}}"#,
        server.url("/metric/v1")
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
    let e = create(&host, r#"{"region": "us", "timeout": 0}"#)
        .err()
        .unwrap();
    let paths: Vec<String> = e.config_errors.iter().map(|c| c.path.to_string()).collect();
    assert_eq!(paths, ["license_key", "timeout"]);
    let e = create(&host, r#"{"license_key": "k", "region": "ap"}"#)
        .err()
        .unwrap();
    assert_eq!(e.config_errors[0].path.as_str(), "region");
    let e = create(
        &host,
        &format!(r#"{{"license_key": "{KEY}", "account_id": 1}}"#),
    )
    .err()
    .unwrap();
    assert!(format!("{e:?}").contains("account_id"));
    assert!(!format!("{e:?}").contains(KEY));
}

#[test]
fn preview_renders_without_sending() {
    let server = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&server, ""));
    let text = match inst.preview(&batch()) {
        RResult::ROk(t) => t.to_string(),
        RResult::RErr(e) => panic!("{e}"),
    };
    for needle in [
        "/metric/v1",
        "/log/v1",
        "/trace/v1",
        "memory.heap",
        "cart is empty",
        "GET /cart",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    assert!(!text.contains(KEY));
    assert!(server.requests().is_empty());
}
