//! The plugin, driven through its exported root module as the agent drives it,
//! against the strict local HTTPS server: the request the Bulk API page describes
//! (method, path, `Content-Type: application/x-ndjson`, credentials), the body
//! read back independently (split into NDJSON lines and parsed by the test, not by
//! the plugin's code), and the documented answers: a partial failure (`errors:
//! true`, the page's own example), item-level 429 retried alone, whole-request 429
//! with `Retry-After`, 400, 500, 401/403, TLS verification and endpoint failover.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, testing::TestHost, AnyValue, Batch, ErrorKind,
    HealthState, KeyValue, LogRecord, Metric, PluginError, PluginInstanceBox, Resource, Span,
    SpanKind, StatusCode,
};
use tfo_plugin_common::testing::{RecordedRequest, ScriptedResponse, TestServer};

const WAIT: Duration = Duration::from_secs(10);

fn create(h: &TestHost, config: &str) -> Result<PluginInstanceBox, tfo_plugin_api::CreateError> {
    let module = tfo_plugin_api::plugin_module!(tfo_elasticsearch);
    tfo_plugin_api::testing::create(module, h, "es", config)
}

fn started(h: &TestHost, config: &str) -> PluginInstanceBox {
    let module = tfo_plugin_api::plugin_module!(tfo_elasticsearch);
    tfo_plugin_api::testing::create_started(module, h, "es", config)
}

fn config(server: &TestServer, extra: &str) -> String {
    format!(
        r#"{{"endpoints": ["{}"], "ca_file": {:?}, "timeout": "5s" {extra}}}"#,
        server.url(""),
        server.ca_file().display().to_string(),
    )
}

fn export(inst: &mut PluginInstanceBox, b: &Batch) -> Result<u64, PluginError> {
    tfo_plugin_api::testing::export(inst, b).map(|ok| ok.accepted)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn log(msg: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000,
        observed_time_unix_nano: 0,
        severity_number: 13,
        severity_text: "WARN".into(),
        body: AnyValue::Str(msg.into()),
        attributes: vec![KeyValue::new("user.id", 7i64)].into(),
        trace_id: [0xab; 16],
        span_id: [0xcd; 8],
    }
}

fn logs(msgs: &[&str]) -> Batch {
    Batch {
        resource: Resource {
            attributes: vec![
                KeyValue::new("service.name", "shop"),
                KeyValue::new("host.name", "node-1"),
            ]
            .into(),
        },
        logs: msgs.iter().map(|m| log(m)).collect::<Vec<_>>().into(),
        ..Default::default()
    }
}

/// The NDJSON body as (action, document) pairs, parsed by the test: every line
/// must be one JSON value and the body must end with a newline.
fn pairs(req: &RecordedRequest) -> Vec<(Value, Value)> {
    let text = req.text();
    assert!(
        text.ends_with('\n'),
        "NDJSON must end with a newline: {text:?}"
    );
    let lines: Vec<Value> = text
        .trim_end_matches('\n')
        .split('\n')
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {l:?}: {e}")))
        .collect();
    assert_eq!(lines.len() % 2, 0, "action/document pairs: {text}");
    lines
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect()
}

fn messages(req: &RecordedRequest) -> Vec<String> {
    pairs(req)
        .iter()
        .map(|(_, d)| d["message"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A 200 bulk answer with every one of `n` items created.
fn all_created(n: usize) -> ScriptedResponse {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"create": {"_index": "logs-tfo_agent-default", "_id": format!("id{i}"), "result": "created", "status": 201}}))
        .collect();
    ScriptedResponse::status(200)
        .header("Content-Type", "application/json")
        .body(json!({"took": 2, "errors": false, "items": items}).to_string())
}

#[test]
fn bulk_request_follows_the_api() {
    let server = TestServer::https();
    server.push_response(all_created(3));
    let h = TestHost::default();
    let mut inst = started(
        &h,
        &config(
            &server,
            r#", "api_key": "VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw", "pipeline": "tfo-enrich""#,
        ),
    );
    let t = now_ns();
    let mut b = logs(&["disk almost full"]);
    b.metrics.push(Metric::gauge(
        "disk.usage",
        "By",
        t,
        1.5e9,
        vec![KeyValue::new("mount", "/")],
    ));
    b.spans.push(Span {
        trace_id: [0xab; 16],
        span_id: [0x01; 8],
        parent_span_id: [0; 8],
        name: "checkout".into(),
        kind: SpanKind::Server,
        start_time_unix_nano: t,
        end_time_unix_nano: t + 2_000_000,
        status_code: StatusCode::Ok,
        status_message: "".into(),
        attributes: vec![].into(),
        events: vec![].into(),
    });
    assert_eq!(export(&mut inst, &b).unwrap(), 3);

    let reqs = server.wait_for_requests(1, WAIT);
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.method, http::Method::POST);
    assert_eq!(req.path, "/_bulk?pipeline=tfo-enrich");
    assert_eq!(req.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(req.header("content-encoding"), None);
    // The encoded form from the create-API-key docs: base64("id:api_key").
    assert_eq!(
        req.header("authorization"),
        Some("ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==")
    );
    assert_eq!(
        req.header("user-agent"),
        Some(concat!("tfo-agent/", env!("CARGO_PKG_VERSION")))
    );

    let p = pairs(req);
    let actions: Vec<&Value> = p.iter().map(|(a, _)| a).collect();
    assert_eq!(
        actions,
        [
            &json!({"create": {"_index": "metrics-tfo_agent-default"}}),
            &json!({"create": {"_index": "traces-tfo_agent-default"}}),
            &json!({"create": {"_index": "logs-tfo_agent-default"}}),
        ]
    );
    let (metric, span, log) = (&p[0].1, &p[1].1, &p[2].1);
    assert_eq!(metric["metric"]["name"], "disk.usage");
    assert_eq!(metric["metric"]["unit"], "By");
    assert_eq!(metric["value"], 1.5e9);
    assert_eq!(metric["labels"]["mount"], "/");
    assert_eq!(metric["data_stream"]["type"], "metrics");
    assert_eq!(span["span"]["name"], "checkout");
    assert_eq!(span["trace"]["id"], "ab".repeat(16));
    assert_eq!(span["event"]["duration"], 2_000_000);
    assert_eq!(span["event"]["outcome"], "success");
    assert_eq!(log["@timestamp"], "2023-11-14T22:13:20.000Z");
    assert_eq!(log["message"], "disk almost full");
    assert_eq!(log["log"]["level"], "WARN");
    assert_eq!(log["service"]["name"], "shop");
    assert_eq!(log["host"]["name"], "node-1");
    assert_eq!(log["span"]["id"], "cd".repeat(8));
    assert_eq!(log["labels"]["user_id"], 7);
    assert_eq!(
        log["data_stream"],
        json!({"type": "logs", "dataset": "tfo_agent", "namespace": "default"})
    );
    assert_eq!(inst.health().state, HealthState::Healthy);
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn basic_auth_gzip_and_dated_indices() {
    let server = TestServer::https();
    server.push_response(all_created(2));
    let h = TestHost::default();
    let mut inst = started(
        &h,
        &config(
            &server,
            r#", "username": "elastic", "password": "changeme", "compression": "gzip",
               "mode": "index", "index": "agent-{type}-%Y.%m.%d""#,
        ),
    );
    assert_eq!(export(&mut inst, &logs(&["a", "b"])).unwrap(), 2);
    let req = &server.wait_for_requests(1, WAIT)[0];
    assert_eq!(req.path, "/_bulk");
    assert_eq!(req.header("content-encoding"), Some("gzip"));
    assert_ne!(req.raw_body, req.body, "the body went compressed");
    assert_eq!(
        req.header("authorization"),
        Some("Basic ZWxhc3RpYzpjaGFuZ2VtZQ==")
    );
    let p = pairs(req);
    assert_eq!(
        p[0].0,
        json!({"index": {"_index": "agent-logs-2023.11.14"}})
    );
    assert_eq!(
        p[1].0,
        json!({"index": {"_index": "agent-logs-2023.11.14"}})
    );
    assert!(p[0].1.get("data_stream").is_none());
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn the_documented_failed_actions_answer_drops_those_items_only() {
    let server = TestServer::https();
    server.push_response(
        ScriptedResponse::status(200)
            .header("Content-Type", "application/json")
            .body(include_str!("data/bulk_failed_actions.json")),
    );
    let h = TestHost::default();
    let mut inst = started(&h, &config(&server, ""));
    // Two 404s (permanent) and one 201: accepted 1, nothing retried.
    assert_eq!(export(&mut inst, &logs(&["x", "y", "z"])).unwrap(), 1);
    assert_eq!(server.requests().len(), 1);
    let health = inst.health();
    assert_eq!(health.state, HealthState::Healthy);
    assert!(
        health.reason.contains("2 document(s) dropped")
            && health.reason.contains("document_missing_exception"),
        "{health:?}"
    );
    h.wait_for_log("2 document(s) dropped; first reason: 404 document_missing_exception: [5]: document missing", WAIT);
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn only_items_refused_with_429_are_sent_again() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(200).body(
        json!({"took": 5, "errors": true, "items": [
            {"create": {"_index": "logs-tfo_agent-default", "status": 429, "error": {
                "type": "es_rejected_execution_exception",
                "reason": "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=512, max_coordinating_and_primary_bytes=0]"}}},
            {"create": {"_index": "logs-tfo_agent-default", "status": 400, "error": {
                "type": "document_parsing_exception",
                "reason": "[1:120] failed to parse field [labels.user_id] of type [long] in document"}}},
            {"create": {"_index": "logs-tfo_agent-default", "_id": "x", "result": "created", "status": 201}}
        ]})
        .to_string(),
    ));
    server.push_response(all_created(1));
    let h = TestHost::default();
    let mut inst = started(&h, &config(&server, ""));
    let b = logs(&["first", "second", "third"]);
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.accepted, 1);
    assert!(e.message.contains("1 document(s) refused for now"), "{e}");
    assert!(e.message.contains("es_rejected_execution_exception"), "{e}");
    assert_eq!(inst.health().state, HealthState::Unhealthy);

    // The host hands the same batch again: only "first" goes.
    assert_eq!(export(&mut inst, &b).unwrap(), 2);
    let reqs = server.wait_for_requests(2, WAIT);
    assert_eq!(messages(&reqs[0]), ["first", "second", "third"]);
    assert_eq!(messages(&reqs[1]), ["first"]);
    let health = inst.health();
    assert_eq!(health.state, HealthState::Healthy);
    assert!(
        health.reason.contains("document_parsing_exception"),
        "{health:?}"
    );

    // A different batch is encoded afresh.
    assert_eq!(export(&mut inst, &logs(&["next"])).unwrap(), 1);
    assert_eq!(messages(&server.wait_for_requests(3, WAIT)[2]), ["next"]);
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn whole_request_429_is_retryable_with_the_servers_delay() {
    let server = TestServer::https();
    server.push_response(
        ScriptedResponse::status(429)
            .header("Retry-After", "7")
            .header("Content-Type", "application/json")
            .body(
                json!({"error": {"root_cause": [{"type": "es_rejected_execution_exception",
                    "reason": "rejected execution of coordinating operation"}],
                    "type": "es_rejected_execution_exception",
                    "reason": "rejected execution of coordinating operation"}, "status": 429})
                .to_string(),
            ),
    );
    server.push_response(all_created(2));
    let h = TestHost::default();
    let mut inst = started(&h, &config(&server, ""));
    let b = logs(&["a", "b"]);
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.retry_after_ms.into_option(), Some(7000));
    assert!(
        e.message.contains("429") && e.message.contains("/_bulk"),
        "{e}"
    );
    assert_eq!(inst.health().state, HealthState::Unhealthy);
    assert_eq!(export(&mut inst, &b).unwrap(), 2);
    let reqs = server.wait_for_requests(2, WAIT);
    assert_eq!(
        reqs[0].body, reqs[1].body,
        "the retry resends the same documents"
    );
    assert_eq!(inst.health().state, HealthState::Healthy);
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn split_requests_400_drops_one_500_keeps_the_rest_for_the_retry() {
    let server = TestServer::https();
    // Each document is 500 bytes: two per 1024-byte request, three requests.
    server.push_response(ScriptedResponse::status(400).body(
        json!({"error": {"type": "illegal_argument_exception", "reason": "The bulk request must be terminated by a newline [\\n]"}, "status": 400}).to_string(),
    ));
    server.push_response(all_created(2));
    server.push_response(ScriptedResponse::status(500).body("internal"));
    server.push_response(all_created(2));
    let h = TestHost::default();
    let mut inst = started(&h, &config(&server, r#", "max_bulk_bytes": 1024"#));
    let long = |c: char| c.to_string().repeat(120);
    let msgs: Vec<String> = "abcdef".chars().map(long).collect();
    let refs: Vec<&str> = msgs.iter().map(String::as_str).collect();
    let b = logs(&refs);
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.accepted, 2);
    assert!(e.message.contains("500"), "{e}");
    assert_eq!(export(&mut inst, &b).unwrap(), 4);
    let reqs = server.wait_for_requests(4, WAIT);
    let firsts: Vec<Vec<char>> = reqs
        .iter()
        .map(|r| {
            messages(r)
                .iter()
                .map(|m| m.chars().next().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        firsts,
        [
            vec!['a', 'b'],
            vec!['c', 'd'],
            vec!['e', 'f'],
            vec!['e', 'f']
        ]
    );
    for r in &reqs {
        assert!(r.body.len() <= 1024, "{} bytes", r.body.len());
    }
    assert!(inst.health().reason.contains("illegal_argument_exception"));
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn credentials_refused_is_permanent() {
    let server = TestServer::https();
    let body = json!({"error": {"root_cause": [{"type": "security_exception",
        "reason": "unable to authenticate with provided credentials and anonymous access is not allowed for this request"}],
        "type": "security_exception", "reason": "unable to authenticate with provided credentials"}, "status": 401});
    server.push_response(
        ScriptedResponse::status(401)
            .header("WWW-Authenticate", "ApiKey")
            .body(body.to_string()),
    );
    server.push_response(ScriptedResponse::status(403).body(
        r#"{"error":{"type":"security_exception","reason":"action [indices:data/write/bulk] is unauthorized"},"status":403}"#,
    ));
    let h = TestHost::default();
    let mut inst = started(&h, &config(&server, r#", "api_key": "encodedkey==""#));
    for code in ["401", "403"] {
        let e = export(&mut inst, &logs(&["x"])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
        assert!(
            e.message.contains(code) && e.message.contains("security_exception"),
            "{e}"
        );
    }
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("ApiKey encodedkey==")
    );
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn bad_data_does_not_poison_the_batch() {
    let server = TestServer::https();
    server.push_response(all_created(2));
    let h = TestHost::default();
    let mut inst = started(&h, &config(&server, r#", "max_bulk_bytes": 4096"#));
    let t = now_ns();
    let mut b = logs(&["fine", &"x".repeat(10_000)]);
    b.metrics
        .push(Metric::gauge("temp", "Cel", t, f64::NAN, vec![]));
    b.metrics
        .push(Metric::gauge("temp", "Cel", t, 21.0, vec![]));
    assert_eq!(b.item_count(), 4);
    // The huge line and the NaN point are dropped, the rest goes.
    assert_eq!(export(&mut inst, &b).unwrap(), 2);
    let req = &server.wait_for_requests(1, WAIT)[0];
    let p = pairs(req);
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].1["value"], 21.0);
    assert_eq!(p[1].1["message"], "fine");
    assert!(
        inst.health().reason.contains("2 document(s) dropped"),
        "{:?}",
        inst.health()
    );
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn tls_verification_is_on() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = started(&h, &format!(r#"{{"endpoints": ["{}"]}}"#, server.url("")));
    let e = export(&mut inst, &logs(&["x"])).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.message.contains("certificate"), "{e}");
    assert!(server.requests().is_empty());
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn a_dead_endpoint_fails_over_to_the_next() {
    let server = TestServer::https();
    server.push_response(all_created(1));
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = TestHost::default();
    let cfg = format!(
        r#"{{"endpoints": ["https://127.0.0.1:{dead}", "{}"], "ca_file": {:?}}}"#,
        server.url(""),
        server.ca_file().display().to_string()
    );
    let mut inst = started(&h, &cfg);
    let b = logs(&["x"]);
    let e = export(&mut inst, &b).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.message.contains(&dead.to_string()), "{e}");
    assert_eq!(export(&mut inst, &b).unwrap(), 1);
    assert_eq!(server.requests().len(), 1);
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn config_errors_carry_their_paths() {
    let h = TestHost::default();
    let e = create(
        &h,
        r#"{"endpoints": ["localhost:9200"], "api_key": "k", "username": "u", "password": "p"}"#,
    )
    .err()
    .expect("refused");
    let paths: Vec<&str> = e.config_errors.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["endpoints.0", "api_key"]);
    let e = create(
        &h,
        r#"{"endpoints": ["https://h"], "ca_file": "/nonexistent/ca.pem"}"#,
    )
    .err()
    .expect("refused");
    assert_eq!(e.config_errors[0].path.as_str(), "ca_file");
    let e = create(
        &h,
        r#"{"endpoints": ["https://h"], "flush_interval": "10s"}"#,
    )
    .err()
    .expect("refused");
    assert!(
        e.config_errors[0].message.contains("unknown field"),
        "{e:?}"
    );
}

#[test]
fn preview_shows_the_bulk_body_without_sending() {
    let server = TestServer::https();
    let h = TestHost::default();
    let mut inst = started(&h, &config(&server, ""));
    let text = match inst.preview(&logs(&["hello"])) {
        RResult::ROk(t) => t.to_string(),
        RResult::RErr(e) => panic!("{e}"),
    };
    assert!(
        text.contains(r#"{"create":{"_index":"logs-tfo_agent-default"}}"#),
        "{text}"
    );
    assert!(text.contains(r#""message":"hello""#), "{text}");
    assert!(server.requests().is_empty());
    assert!(inst.shutdown(1000).is_ok());
}

/// `tfo_plugin_api::testing::create_started` (behind `started`) must fail loudly,
/// naming the instance, when the config is refused, not hand back a dead instance.
#[test]
#[should_panic(expected = "create \"es\"")]
fn started_panics_with_the_create_error() {
    started(&TestHost::default(), r#"{"endpoints": ["localhost:9200"]}"#);
}
