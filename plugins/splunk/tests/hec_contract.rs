//! The Splunk sink driven through its exported entry points (as the agent does)
//! against the strict local HTTPS server of `tfo-plugin-common` (feature
//! `testing`), which records every request as it arrived and answers from a
//! script. No Splunk runs here (Splunk is not packaged for Debian), so the server
//! plays the HEC answers documented in "Troubleshoot HTTP Event Collector" and
//! "About HTTP Event Collector Indexer Acknowledgment".
//!
//! Checked: method, paths, `Authorization: Splunk <token>`, content type, the
//! request channel (a version-4 UUID, the same on every request of an instance),
//! TLS verification, gzip, splitting; the bodies are decoded independently as a
//! stream of concatenated JSON objects (serde_json's `StreamDeserializer`) and
//! checked field by field; the documented answers: 429 + Retry-After, 400 (bad
//! event: dropped alone), 401, 500, 503 "Server is busy" (code 9), acknowledgement
//! pending then given, acknowledgement never given (retryable, then resent).

use std::time::Duration;

use serde_json::{json, Value};
use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult,
    testing::{export, TestHost},
    AnyValue, Batch, CreateError, ErrorKind, KeyValue, LogRecord, Metric, PluginInstanceBox,
    Resource, Span, SpanKind, StatusCode,
};
use tfo_plugin_common::testing::{RecordedRequest, ScriptedResponse, TestServer};

const TOKEN: &str = "12345678-1234-1234-1234-123456789012";
const WAIT: Duration = Duration::from_secs(10);
const EVENT_PATH: &str = "/services/collector/event";
const ACK_PATH: &str = "/services/collector/ack";

fn create(config: &str) -> Result<PluginInstanceBox, CreateError> {
    let module = tfo_plugin_api::plugin_module!(tfo_splunk);
    tfo_plugin_api::testing::create(module, &TestHost::default(), "splunk", config)
}

fn sink(server: &TestServer, extra: &str) -> PluginInstanceBox {
    let config = format!(
        r#"{{"endpoint": "{}", "token": "{TOKEN}", "tls": {{"ca_file": {:?}}}{extra}}}"#,
        server.url(""),
        server.ca_file()
    );
    let module = tfo_plugin_api::plugin_module!(tfo_splunk);
    tfo_plugin_api::testing::create_started(module, &TestHost::default(), "splunk", &config)
}

fn ok_json(body: Value) -> ScriptedResponse {
    ScriptedResponse::status(200)
        .header("Content-Type", "application/json; charset=UTF-8")
        .body(body.to_string())
}

fn hec_error(status: u16, text: &str, code: i64) -> ScriptedResponse {
    ScriptedResponse::status(status)
        .header("Content-Type", "application/json; charset=UTF-8")
        .body(json!({"text": text, "code": code}).to_string())
}

/// The events of a request body: JSON objects one after the other.
fn events(req: &RecordedRequest) -> Vec<Value> {
    serde_json::Deserializer::from_slice(&req.body)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("body is not concatenated JSON: {e}: {}", req.text()))
}

fn check_headers(req: &RecordedRequest, path: &str) {
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, path);
    assert_eq!(
        req.header("authorization"),
        Some(format!("Splunk {TOKEN}").as_str())
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    let channel = req
        .header("x-splunk-request-channel")
        .expect("a request channel");
    assert!(
        is_uuid_v4(channel),
        "channel {channel:?} is not a version-4 UUID"
    );
    assert!(req.decode_error.is_none());
}

fn is_uuid_v4(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
        && groups[2].starts_with('4')
        && matches!(groups[3].chars().next(), Some('8' | '9' | 'a' | 'b'))
}

fn log(i: i64, body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000 + i as u64 * 1_000_000,
        observed_time_unix_nano: 0,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: AnyValue::Str(body.into()),
        attributes: vec![KeyValue::new("n", i)].into(),
        trace_id: [0; 16],
        span_id: [0; 8],
    }
}

fn logs(n: i64) -> Batch {
    Batch {
        resource: resource(),
        logs: (0..n).map(|i| log(i, &format!("line {i}"))).collect(),
        ..Default::default()
    }
}

fn resource() -> Resource {
    Resource {
        attributes: vec![
            KeyValue::new("service.name", "shop"),
            KeyValue::new("host.name", "h1"),
        ]
        .into(),
    }
}

fn full_batch() -> Batch {
    Batch {
        resource: resource(),
        metrics: vec![
            Metric::gauge(
                "cpu.usr",
                "%",
                1_700_000_000_000_000_000,
                11.12,
                vec![KeyValue::new("cpu", "0")],
            ),
            Metric::gauge(
                "cpu.sys",
                "%",
                1_700_000_000_000_000_000,
                12.23,
                vec![KeyValue::new("cpu", "0")],
            ),
        ]
        .into(),
        spans: vec![Span {
            trace_id: [0x5b; 16],
            span_id: [0xee; 8],
            parent_span_id: [0; 8],
            name: "checkout".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 1_700_000_000_500_000_000,
            end_time_unix_nano: 1_700_000_001_000_000_000,
            status_code: StatusCode::Ok,
            status_message: "".into(),
            attributes: vec![KeyValue::new("http.route", "/cart")].into(),
            events: vec![].into(),
        }]
        .into(),
        logs: vec![log(0, "disk full")].into(),
    }
}

#[test]
fn sends_logs_spans_and_metrics_as_hec_events() {
    let server = TestServer::https();
    server.push_response(ok_json(json!({"text": "Success", "code": 0})));
    let mut inst = sink(&server, r#", "index": "main", "metrics_index": "metrics""#);
    let ok = export(&mut inst, &full_batch()).expect("export");
    assert_eq!(ok.accepted, 4);
    let reqs = server.wait_for_requests(1, WAIT);
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    check_headers(req, EVENT_PATH);
    assert!(req.header("content-encoding").is_none());
    let ev = events(req);
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert_eq!(
        ev[0],
        json!({
            "time": 1700000000,
            "event": "metric",
            "host": "h1",
            "source": "tfo-agent",
            "sourcetype": "tfo-agent:metric",
            "index": "metrics",
            "fields": {
                "service.name": "shop",
                "host.name": "h1",
                "cpu": "0",
                "metric_name:cpu.usr": 11.12,
                "metric_name:cpu.sys": 12.23
            }
        })
    );
    assert_eq!(ev[1]["time"], json!(1700000000.5));
    assert_eq!(ev[1]["sourcetype"], "tfo-agent:span");
    assert_eq!(ev[1]["index"], "main");
    assert_eq!(ev[1]["event"]["name"], "checkout");
    assert_eq!(ev[1]["event"]["trace_id"], "5b".repeat(16));
    assert_eq!(ev[1]["event"]["duration_ms"], 500.0);
    assert_eq!(ev[1]["event"]["attributes"], json!({"http.route": "/cart"}));
    assert_eq!(ev[2]["event"], "disk full");
    assert_eq!(ev[2]["sourcetype"], "tfo-agent:log");
    assert_eq!(ev[2]["fields"]["severity"], "INFO");
    assert_eq!(ev[2]["fields"]["n"], "0");
}

#[test]
fn tls_verification_is_on() {
    let server = TestServer::https();
    let config = format!(
        r#"{{"endpoint": "{}", "token": "{TOKEN}"}}"#,
        server.url("")
    );
    let mut inst = create(&config).unwrap();
    let e = export(&mut inst, &logs(1)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.message.to_lowercase().contains("certificate"), "{e}");
    assert!(server.requests().is_empty());

    // With insecure_skip_verify the same server is accepted.
    let config = format!(
        r#"{{"endpoint": "{}", "token": "{TOKEN}", "tls": {{"insecure_skip_verify": true}}}}"#,
        server.url("")
    );
    let mut inst = create(&config).unwrap();
    export(&mut inst, &logs(1)).expect("export without verification");
}

#[test]
fn gzip_and_splitting_by_count_and_size() {
    let server = TestServer::https();
    let mut inst = sink(&server, r#", "compression": "gzip", "batch_size": 2"#);
    assert_eq!(export(&mut inst, &logs(5)).unwrap().accepted, 5);
    let reqs = server.wait_for_requests(3, WAIT);
    assert_eq!(reqs.len(), 3);
    let mut seen = Vec::new();
    let channel = reqs[0]
        .header("x-splunk-request-channel")
        .unwrap()
        .to_string();
    for r in &reqs {
        check_headers(r, EVENT_PATH);
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(&r.raw_body[..2], &[0x1f, 0x8b], "gzip magic on the wire");
        assert_eq!(r.header("x-splunk-request-channel"), Some(channel.as_str()));
        seen.extend(events(r).into_iter().map(|e| e["event"].clone()));
    }
    assert_eq!(events(&reqs[0]).len(), 2);
    assert_eq!(events(&reqs[2]).len(), 1);
    let want: Vec<Value> = (0..5).map(|i| json!(format!("line {i}"))).collect();
    assert_eq!(seen, want);

    // Size: each event is a few hundred bytes; 1024 bytes holds at most a few.
    let server = TestServer::https();
    let mut inst = sink(&server, r#", "max_request_bytes": 1024"#);
    let big = Batch {
        logs: (0..6).map(|i| log(i, &"y".repeat(300))).collect(),
        ..Default::default()
    };
    assert_eq!(export(&mut inst, &big).unwrap().accepted, 6);
    let reqs = server.requests();
    assert!(reqs.len() >= 2, "{} requests", reqs.len());
    assert!(reqs.iter().all(|r| r.body.len() <= 1024));
    assert_eq!(reqs.iter().map(|r| events(r).len()).sum::<usize>(), 6);
}

#[test]
fn throttled_429_is_retryable_and_the_retry_does_not_resend_delivered_events() {
    let server = TestServer::https();
    server.push_response(ok_json(json!({"text": "Success", "code": 0})));
    server.push_response(ScriptedResponse::status(429).header("Retry-After", "3"));
    let mut inst = sink(&server, r#", "batch_size": 1"#);
    let batch = logs(3);
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.retry_after_ms.into_option(), Some(3000));
    assert_eq!(e.accepted, 1);
    assert_eq!(server.requests().len(), 2);

    // The host hands the same batch again: only events 1 and 2 are sent.
    assert_eq!(export(&mut inst, &batch).unwrap().accepted, 3);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 4);
    let sent: Vec<Value> = reqs.iter().map(|r| events(r)[0]["event"].clone()).collect();
    assert_eq!(
        sent,
        [
            json!("line 0"),
            json!("line 1"),
            json!("line 1"),
            json!("line 2")
        ]
    );
}

#[test]
fn busy_and_server_errors_are_retryable() {
    let server = TestServer::https();
    server.push_response(hec_error(503, "Server is busy", 9).header("Retry-After", "5"));
    server.push_response(hec_error(500, "Internal server error", 8));
    server.push_response(ScriptedResponse::status(500).body("oops"));
    let mut inst = sink(&server, "");
    for want_retry_after in [Some(5000), None, None] {
        let e = export(&mut inst, &logs(1)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
        assert_eq!(e.retry_after_ms.into_option(), want_retry_after, "{e}");
    }
    assert_eq!(export(&mut inst, &logs(1)).unwrap().accepted, 1);
}

#[test]
fn busy_with_an_event_number_keeps_the_processed_events() {
    let server = TestServer::https();
    server.push_response(
        ScriptedResponse::status(503).body(
            json!({"text": "Server is busy", "code": 9, "invalid-event-number": 2}).to_string(),
        ),
    );
    let mut inst = sink(&server, "");
    let batch = logs(4);
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.accepted, 2);
    export(&mut inst, &batch).unwrap();
    let reqs = server.requests();
    let resent: Vec<Value> = events(&reqs[1])
        .into_iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(resent, [json!("line 2"), json!("line 3")]);
}

#[test]
fn a_bad_event_is_dropped_alone() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(400).body(
        json!({"text": "Invalid data format", "code": 6, "invalid-event-number": 1}).to_string(),
    ));
    let mut inst = sink(&server, "");
    let ok = export(&mut inst, &logs(4)).expect("the rest is delivered");
    assert_eq!(ok.accepted, 3);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let resent: Vec<Value> = events(&reqs[1])
        .into_iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(resent, [json!("line 2"), json!("line 3")]);
}

#[test]
fn token_and_index_problems_are_permanent() {
    let server = TestServer::https();
    server.push_response(hec_error(403, "Invalid token", 4));
    server.push_response(hec_error(400, "Incorrect index", 7));
    server.push_response(ScriptedResponse::status(400).body("bad request"));
    let mut inst = sink(&server, "");
    for want in ["Invalid token", "Incorrect index", "bad request"] {
        let e = export(&mut inst, &logs(1)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
        assert!(e.message.contains(want), "{e}");
    }
}

#[test]
fn bad_data_does_not_poison_the_batch() {
    let server = TestServer::https();
    let mut inst = sink(&server, r#", "max_request_bytes": 2048"#);
    let mut batch = logs(2);
    batch.logs.push(log(2, &"z".repeat(5000)));
    batch.metrics = vec![
        Metric::gauge("ok", "1", 1_700_000_000_000_000_000, 1.0, vec![]),
        Metric::gauge("nan", "1", 1_700_000_000_000_000_000, f64::NAN, vec![]),
        Metric::gauge("0bad", "1", 1_700_000_000_000_000_000, 1.0, vec![]),
    ]
    .into();
    let ok = export(&mut inst, &batch).unwrap();
    assert_eq!(ok.accepted, 3, "2 logs and 1 metric point");
    let reqs = server.wait_for_requests(1, WAIT);
    let ev = events(&reqs[0]);
    assert_eq!(ev.len(), 3);
    assert_eq!(
        ev[0]["fields"],
        json!({"service.name": "shop", "host.name": "h1", "metric_name:ok": 1.0})
    );
    assert!(!reqs[0].text().contains("NaN") && !reqs[0].text().contains("null"));
}

#[test]
fn acknowledgement_pending_then_given() {
    let server = TestServer::https();
    server.push_response(ok_json(json!({"text": "Success", "code": 0, "ackId": 7})));
    server.push_response(ok_json(json!({"acks": {"7": false}})));
    server.push_response(ok_json(json!({"acks": {"7": true}})));
    let mut inst = sink(&server, r#", "ack": true, "ack_poll_interval": "20ms""#);
    assert_eq!(export(&mut inst, &logs(2)).unwrap().accepted, 2);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    check_headers(&reqs[0], EVENT_PATH);
    let channel = reqs[0].header("x-splunk-request-channel").unwrap();
    for r in &reqs[1..] {
        check_headers(r, ACK_PATH);
        assert_eq!(r.header("x-splunk-request-channel"), Some(channel));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body, json!({"acks": [7]}));
    }
}

#[test]
fn acknowledgement_never_given_is_retryable_and_the_data_is_resent() {
    let server = TestServer::https();
    server.push_response(ok_json(json!({"text": "Success", "code": 0, "ackId": 0})));
    for _ in 0..50 {
        server.push_response(ok_json(json!({"acks": {"0": false}})));
    }
    let mut inst = sink(
        &server,
        r#", "ack": true, "ack_timeout": "300ms", "ack_poll_interval": "50ms""#,
    );
    let batch = logs(1);
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert!(e.message.contains("not acknowledged"), "{e}");
    assert_eq!(e.accepted, 0);
    let polls = server
        .requests()
        .iter()
        .filter(|r| r.path == ACK_PATH)
        .count();
    assert!((1..=10).contains(&polls), "{polls} polls in 300ms at 50ms");
}

#[test]
fn unacknowledged_data_is_sent_again_on_retry() {
    let server = TestServer::https();
    // First try: accepted as ackId 0, never acknowledged.
    server.push_response(ok_json(json!({"text": "Success", "code": 0, "ackId": 0})));
    server.push_response(ok_json(json!({"acks": {"0": false}})));
    let mut inst = sink(
        &server,
        r#", "ack": true, "ack_timeout": "100ms", "ack_poll_interval": "100ms""#,
    );
    let batch = logs(1);
    assert!(export(&mut inst, &batch).is_err());
    let first = server.requests().len();
    // Second try: the event goes again and is acknowledged.
    server.push_response(ok_json(json!({"text": "Success", "code": 0, "ackId": 1})));
    server.push_response(ok_json(json!({"acks": {"1": true}})));
    assert_eq!(export(&mut inst, &batch).unwrap().accepted, 1);
    let reqs = server.requests();
    let posts: Vec<&RecordedRequest> = reqs.iter().filter(|r| r.path == EVENT_PATH).collect();
    assert_eq!(posts.len(), 2, "the event is sent again (at-least-once)");
    assert_eq!(posts[0].body, posts[1].body);
    assert_eq!(reqs.len(), first + 2);
    let last: Value = serde_json::from_slice(&reqs.last().unwrap().body).unwrap();
    assert_eq!(last, json!({"acks": [1]}));
}

#[test]
fn ack_disabled_on_the_token_is_permanent() {
    let server = TestServer::https();
    server.push_response(ok_json(json!({"text": "Success", "code": 0, "ackId": 3})));
    server.push_response(hec_error(400, "ACK is disabled", 14));
    let mut inst = sink(&server, r#", "ack": true, "ack_poll_interval": "10ms""#);
    let e = export(&mut inst, &logs(1)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(e.message.contains("ack: false"), "{e}");
}

#[test]
fn config_errors_carry_their_paths() {
    let e = match create(r#"{"endpoint": "splunk:8088", "token": "", "batch_size": 0}"#) {
        Err(e) => e,
        Ok(_) => panic!("an invalid config was accepted"),
    };
    let paths: Vec<String> = e.config_errors.iter().map(|c| c.path.to_string()).collect();
    assert_eq!(paths, ["endpoint", "token", "batch_size"]);
    let e = match create(r#"{"endpoint": "https://s", "token": "t", "hec_endpoint": "x"}"#) {
        Err(e) => e,
        Ok(_) => panic!("an unknown key was accepted"),
    };
    assert!(e.config_errors[0].message.contains("hec_endpoint"), "{e:?}");
}

#[test]
fn preview_renders_the_requests_without_sending() {
    let server = TestServer::https();
    let mut inst = sink(&server, r#", "batch_size": 1"#);
    let text = match inst.preview(&logs(2)) {
        RResult::ROk(s) => s.to_string(),
        RResult::RErr(e) => panic!("{e}"),
    };
    assert!(text.contains("request 2 of 2"), "{text}");
    assert!(text.contains("\"event\":\"line 1\""), "{text}");
    assert!(server.requests().is_empty());
}

#[test]
fn a_partly_acknowledged_batch_resends_only_the_unconfirmed_request() {
    let server = TestServer::https();
    server.push_response(ok_json(json!({"text": "Success", "code": 0, "ackId": 0})));
    server.push_response(ok_json(json!({"text": "Success", "code": 0, "ackId": 1})));
    server.push_response(ok_json(json!({"acks": {"0": true, "1": false}})));
    // A poll interval as long as the timeout: exactly one poll per export.
    let mut inst = sink(
        &server,
        r#", "batch_size": 1, "ack": true, "ack_timeout": "200ms", "ack_poll_interval": "200ms""#,
    );
    let batch = logs(2);
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.accepted, 1, "the acknowledged request counts");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    let poll: Value = serde_json::from_slice(&reqs[2].body).unwrap();
    assert_eq!(poll, json!({"acks": [0, 1]}));

    server.push_response(ok_json(json!({"text": "Success", "code": 0, "ackId": 2})));
    server.push_response(ok_json(json!({"acks": {"2": true}})));
    assert_eq!(export(&mut inst, &batch).unwrap().accepted, 2);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 5, "one POST of the unconfirmed event, one poll");
    assert_eq!(reqs[3].path, EVENT_PATH);
    assert_eq!(
        reqs[3].body, reqs[1].body,
        "the unconfirmed event, not the confirmed one"
    );
    let poll: Value = serde_json::from_slice(&reqs[4].body).unwrap();
    assert_eq!(poll, json!({"acks": [2]}));
}

/// The block in `config.example.yaml` (uncommented), minus the keys the host
/// consumes, as the host would hand it to the plugin.
fn example_config() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml"))
        .unwrap();
    let yaml: String = text
        .lines()
        .filter_map(|l| l.strip_prefix('#').filter(|r| r.starts_with("  ")))
        .map(|l| format!("{l}\n"))
        .collect();
    let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    let mut v: Value = serde_json::to_value(&doc["splunk"]).unwrap();
    v.as_object_mut().unwrap().remove("enabled");
    v
}

#[test]
fn the_documented_example_config_is_accepted() {
    let v = example_config();
    assert_eq!(v["endpoint"], "https://splunk.example:8088");
    assert!(create(&v.to_string()).is_ok(), "{v}");
}

#[test]
fn a_refused_event_stays_counted_as_refused_across_a_retry() {
    let server = TestServer::https();
    server.push_response(ScriptedResponse::status(400).body(
        json!({"text": "Invalid data format", "code": 6, "invalid-event-number": 0}).to_string(),
    ));
    server.push_response(hec_error(503, "Server is busy", 9));
    let mut inst = sink(&server, r#", "batch_size": 2"#);
    let batch = logs(4);
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.accepted, 0);
    assert_eq!(
        export(&mut inst, &batch).unwrap().accepted,
        3,
        "line 0 refused"
    );
    let sent: Vec<Vec<Value>> = server
        .requests()
        .iter()
        .map(|r| events(r).into_iter().map(|e| e["event"].clone()).collect())
        .collect();
    assert_eq!(
        sent,
        [
            vec![json!("line 0"), json!("line 1")],
            vec![json!("line 1"), json!("line 2")],
            vec![json!("line 1"), json!("line 2")],
            vec![json!("line 3")],
        ]
    );
}
