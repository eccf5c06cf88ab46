//! The azure sink driven through its exported entry points against strict local
//! HTTPS servers standing in for Microsoft Entra ID (token endpoint), IMDS and the
//! Azure Monitor APIs. Each test checks what the servers received (method, path,
//! query, headers, the form of the token request, the JSON bodies decoded
//! independently) and plays the documented answers: token expiry and refresh, 401
//! -> one refresh then permanent, 429 + Retry-After and 5xx retryable, 400
//! permanent, Application Insights partial acceptance (only retryable items are
//! resent). Every test ends by checking that neither the client secret nor any
//! token appears in a log line or an error.

mod common;

use common::*;
use serde_json::json;
use tfo_plugin_api::testing::export;
use tfo_plugin_api::{
    AnyValue, Batch, ErrorKind, KeyValue, LogRecord, Metric, Resource, Span, SpanKind, StatusCode,
};
use tfo_plugin_common::testing::{ScriptedResponse, TestServer};

const T: u64 = 1_700_000_010_000_000_000; // 2023-11-14T22:13:30Z

fn metrics_batch() -> Batch {
    Batch {
        resource: Resource {
            attributes: vec![KeyValue::new("host.name", "h1")].into(),
        },
        metrics: vec![
            Metric::gauge("cpu", "1", T, 0.5, vec![KeyValue::new("core", "0")]),
            Metric::gauge("mem", "By", T, 1024.0, vec![]),
        ]
        .into(),
        ..Batch::default()
    }
}

fn span(i: u8, kind: SpanKind) -> Span {
    Span {
        trace_id: [0x11; 16],
        span_id: [i; 8],
        parent_span_id: [0; 8],
        name: format!("op{i}").into(),
        kind,
        start_time_unix_nano: T,
        end_time_unix_nano: T + 250_000_000,
        status_code: StatusCode::Ok,
        status_message: "".into(),
        attributes: vec![].into(),
        events: vec![].into(),
    }
}

fn full_batch() -> Batch {
    let mut b = metrics_batch();
    b.logs = vec![LogRecord {
        time_unix_nano: T,
        observed_time_unix_nano: T,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: AnyValue::Str("hello azure".into()),
        attributes: vec![KeyValue::new("k", "v")].into(),
        trace_id: [0; 16],
        span_id: [0; 8],
    }]
    .into();
    b.spans = vec![span(1, SpanKind::Server), span(2, SpanKind::Client)].into();
    b
}

fn breeze(received: u64, accepted: u64, errors: serde_json::Value) -> ScriptedResponse {
    ScriptedResponse::status(if errors.as_array().is_some_and(|a| a.is_empty()) {
        200
    } else {
        206
    })
    .header("Content-Type", "application/json")
    .body(
        json!({"itemsReceived": received, "itemsAccepted": accepted, "errors": errors}).to_string(),
    )
}

#[test]
fn sends_metrics_logs_and_traces_with_the_right_tokens() {
    let env = Env::new();
    let host = TestHost::default();
    let config = format!(
        r#"{{{}, {},
            "logs": {{"endpoint": "{}", "dcr_immutable_id": "dcr-0123abcd", "stream_name": "Custom-Tfo_CL"}},
            "traces": {{"connection_string": "InstrumentationKey=ikey-1;IngestionEndpoint={}/"}}}}"#,
        env.auth_json(),
        env.metrics_json(),
        env.api.url(""),
        env.api.url("")
    );
    let mut inst = create(&host, &config).unwrap_or_else(|e| panic!("{e:?}"));
    env.login.push_response(token("tok-metrics-1", 3599));
    env.login.push_response(token("tok-monitor-1", 3599));
    // metrics: two requests (cpu, mem), logs: 204, traces: all accepted.
    env.api.push_response(ScriptedResponse::status(200));
    env.api.push_response(ScriptedResponse::status(200));
    env.api.push_response(ScriptedResponse::status(204));
    env.api.push_response(breeze(2, 2, json!([])));

    let ok = export(&mut inst, &full_batch()).unwrap();
    assert_eq!(ok.accepted, 5);

    let logins = env.login.wait_for_requests(2, WAIT);
    check_token_request(&logins[0], "https://monitoring.azure.com//.default");
    check_token_request(&logins[1], "https://monitor.azure.com//.default");

    let reqs = env.api.wait_for_requests(4, WAIT);
    for r in &reqs[..2] {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("{RESOURCE}/metrics"));
        assert_eq!(r.header("authorization"), Some("Bearer tok-metrics-1"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    assert_eq!(
        json(&reqs[0]),
        json!({"time": "2023-11-14T22:13:30Z", "data": {"baseData": {
            "metric": "cpu", "namespace": "NS", "dimNames": ["core"],
            "series": [{"dimValues": ["0"], "min": 0.5, "max": 0.5, "sum": 0.5, "count": 1}]}}})
    );
    assert_eq!(json(&reqs[1])["data"]["baseData"]["metric"], "mem");

    let logs = &reqs[2];
    assert_eq!(
        logs.path,
        "/dataCollectionRules/dcr-0123abcd/streams/Custom-Tfo_CL?api-version=2023-01-01"
    );
    assert_eq!(logs.header("authorization"), Some("Bearer tok-monitor-1"));
    assert_eq!(logs.header("content-encoding"), Some("gzip"));
    assert!(logs.raw_body.starts_with(&[0x1f, 0x8b]), "gzip on the wire");
    assert_eq!(
        json(logs),
        json!([{"TimeGenerated": "2023-11-14T22:13:30.000000Z", "SeverityText": "INFO",
                "SeverityNumber": 9, "Body": "hello azure", "Attributes": {"k": "v"},
                "Resource": {"host.name": "h1"}}])
    );

    let track = &reqs[3];
    assert_eq!(track.path, "/v2.1/track");
    assert_eq!(track.header("authorization"), None, "iKey auth only");
    let env_json = json(track);
    let items = env_json.as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["name"], "Microsoft.ApplicationInsights.Request");
    assert_eq!(items[0]["iKey"], "ikey-1");
    assert_eq!(items[0]["data"]["baseType"], "RequestData");
    assert_eq!(
        items[0]["data"]["baseData"]["duration"],
        "0.00:00:00.2500000"
    );
    assert_eq!(
        items[0]["tags"]["ai.operation.id"],
        "11111111111111111111111111111111"
    );
    assert_eq!(
        items[1]["name"],
        "Microsoft.ApplicationInsights.RemoteDependency"
    );
    assert_eq!(items[1]["data"]["baseData"]["id"], "0202020202020202");

    assert_no_secrets(&host, &[], &["tok-metrics-1", "tok-monitor-1"]);
}

#[test]
fn tokens_are_cached_until_they_near_expiry() {
    let env = Env::new();
    let host = TestHost::default();
    let config = format!("{{{}, {}}}", env.auth_json(), env.metrics_json());
    let mut inst = create(&host, &config).unwrap();

    // A one-hour token serves both exports.
    env.login.push_response(token("tok-long", 3600));
    export(&mut inst, &metrics_batch()).unwrap();
    export(&mut inst, &metrics_batch()).unwrap();
    assert_eq!(env.login.requests().len(), 1);
    let reqs = env.api.wait_for_requests(4, WAIT);
    assert!(reqs
        .iter()
        .all(|r| r.header("authorization") == Some("Bearer tok-long")));

    // A token with no lifetime left is refreshed before every request (each
    // export is two requests here: cpu and mem).
    let mut inst = create(&host, &config).unwrap();
    for i in 1..=4 {
        env.login.push_response(token(&format!("tok-short-{i}"), 0));
    }
    export(&mut inst, &metrics_batch()).unwrap();
    export(&mut inst, &metrics_batch()).unwrap();
    assert_eq!(env.login.requests().len(), 5);
    let reqs = env.api.wait_for_requests(8, WAIT);
    let auth: Vec<_> = reqs[4..]
        .iter()
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    assert_eq!(
        auth,
        [
            "Bearer tok-short-1",
            "Bearer tok-short-2",
            "Bearer tok-short-3",
            "Bearer tok-short-4"
        ]
    );
    assert_no_secrets(&host, &[], &["tok-long", "tok-short-1", "tok-short-4"]);
}

#[test]
fn unauthorized_refreshes_once_then_fails_permanently() {
    let env = Env::new();
    let host = TestHost::default();
    let config = format!("{{{}, {}}}", env.auth_json(), env.metrics_json());
    let mut inst = create(&host, &config).unwrap();
    let one = Batch {
        metrics: vec![Metric::gauge("cpu", "1", T, 1.0, vec![])].into(),
        ..Batch::default()
    };

    // 401 (e.g. a revoked token): a new token, the same request again, success.
    env.login.push_response(token("tok-a", 3600));
    env.login.push_response(token("tok-b", 3600));
    env.api
        .push_response(ScriptedResponse::status(401).body(r#"{"error":"InvalidToken"}"#));
    env.api.push_response(ScriptedResponse::status(200));
    assert_eq!(export(&mut inst, &one).unwrap().accepted, 1);
    let reqs = env.api.wait_for_requests(2, WAIT);
    assert_eq!(reqs[0].header("authorization"), Some("Bearer tok-a"));
    assert_eq!(reqs[1].header("authorization"), Some("Bearer tok-b"));
    assert_eq!(reqs[0].body, reqs[1].body);
    assert_eq!(env.login.requests().len(), 2);

    // 401 twice: one refresh, then a permanent error (no third attempt).
    env.login.push_response(token("tok-c", 3600));
    env.api.push_response(ScriptedResponse::status(401));
    env.api.push_response(ScriptedResponse::status(401));
    let e = export(&mut inst, &one).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(e.message.contains("401"), "{e}");
    assert_eq!(env.api.requests().len(), 4);
    assert_eq!(env.login.requests().len(), 3);
    assert_no_secrets(&host, &[&e], &["tok-a", "tok-b", "tok-c"]);
}

#[test]
fn throttling_server_errors_and_bad_requests() {
    let env = Env::new();
    let host = TestHost::default();
    let config = format!("{{{}, {}}}", env.auth_json(), env.metrics_json());
    let mut inst = create(&host, &config).unwrap();
    env.login.push_response(token("tok", 3600));
    let batch = metrics_batch();

    env.api
        .push_response(ScriptedResponse::status(429).header("Retry-After", "7"));
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), Some(7000));

    // The first metric goes through, the second hits a 503: retryable, and the
    // retry of the same batch sends only the second.
    env.api.push_response(ScriptedResponse::status(200));
    env.api.push_response(ScriptedResponse::status(503));
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.accepted, 1);
    env.api.push_response(ScriptedResponse::status(200));
    assert_eq!(export(&mut inst, &batch).unwrap().accepted, 2);
    let reqs = env.api.wait_for_requests(4, WAIT);
    assert_eq!(json(&reqs[1])["data"]["baseData"]["metric"], "cpu");
    assert_eq!(json(&reqs[2])["data"]["baseData"]["metric"], "mem");
    assert_eq!(json(&reqs[3])["data"]["baseData"]["metric"], "mem");

    env.api.push_response(
        ScriptedResponse::status(400)
            .body(r#"{"error":{"code":"InvalidMetricName","message":"bad name"}}"#),
    );
    let e2 = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e2.kind, ErrorKind::Permanent);
    assert!(e2.message.contains("InvalidMetricName"), "{e2}");
    assert_no_secrets(&host, &[&e, &e2], &["tok"]);
}

#[test]
fn application_insights_partial_acceptance_resends_only_retryable_items() {
    let env = Env::new();
    let host = TestHost::default();
    let config = format!(
        r#"{{"traces": {{"connection_string": "InstrumentationKey=ikey-9;IngestionEndpoint={}"}},
             "ca_file": {}}}"#,
        env.api.url(""),
        serde_json::to_string(&env.ca_file).unwrap()
    );
    let mut inst = create(&host, &config).unwrap();
    let batch = Batch {
        spans: vec![
            span(1, SpanKind::Server),
            span(2, SpanKind::Server),
            span(3, SpanKind::Internal),
            span(4, SpanKind::Client),
        ]
        .into(),
        ..Batch::default()
    };
    env.api.push_response(breeze(
        4,
        1,
        json!([
            {"index": 1, "statusCode": 429, "message": "throttled"},
            {"index": 2, "statusCode": 400, "message": "invalid field"},
            {"index": 3, "statusCode": 503, "message": "unavailable"}
        ]),
    ));
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
    assert_eq!(e.accepted, 1);
    assert!(e.message.contains("2 to resend"), "{e}");

    // The host retries the batch: only items 1 and 3 go out again.
    env.api.push_response(breeze(2, 2, json!([])));
    let ok = export(&mut inst, &batch).unwrap();
    assert_eq!(ok.accepted, 3);
    let reqs = env.api.wait_for_requests(2, WAIT);
    let ids = |r| -> Vec<String> {
        json(r)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["data"]["baseData"]["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&reqs[0]).len(), 4);
    assert_eq!(ids(&reqs[1]), ["0202020202020202", "0404040404040404"]);

    // The item rejected for good is logged, counted and shown in health.
    host.wait_for_log("invalid field", WAIT);
    let health = inst.health();
    assert!(
        health.reason.contains("1 item(s) rejected"),
        "{}",
        health.reason
    );

    // A whole-request 400 is permanent; 439 (quota) is retryable.
    env.api.push_response(
        ScriptedResponse::status(400).body(r#"{"itemsReceived":4,"itemsAccepted":0,"errors":[]}"#),
    );
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    env.api.push_response(ScriptedResponse::status(439));
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
}

#[test]
fn managed_identity_tokens_come_from_imds() {
    let imds = TestServer::http();
    let env = Env::new();
    let host = TestHost::default();
    let config = format!(
        r#"{{"use_managed_identity": true, "client_id": "uami-1", "imds_endpoint": "{}",
             "ca_file": {}, {}}}"#,
        imds.url(""),
        serde_json::to_string(&env.ca_file).unwrap(),
        env.metrics_json()
    );
    let mut inst = create(&host, &config).unwrap();
    // IMDS answers expires_in as a string.
    imds.push_response(ScriptedResponse::status(200).body(
        r#"{"access_token":"tok-mi","refresh_token":"","expires_in":"3599","expires_on":"1700003600",
            "not_before":"1700000000","resource":"https://monitoring.azure.com/","token_type":"Bearer"}"#,
    ));
    export(&mut inst, &metrics_batch()).unwrap();
    let r = &imds.wait_for_requests(1, WAIT)[0];
    assert_eq!(r.method, "GET");
    assert_eq!(
        r.path,
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmonitoring.azure.com%2F&client_id=uami-1"
    );
    assert_eq!(r.header("metadata"), Some("true"));
    let reqs = env.api.wait_for_requests(2, WAIT);
    assert_eq!(reqs[0].header("authorization"), Some("Bearer tok-mi"));
    // Cached: the second export asks IMDS nothing.
    export(&mut inst, &metrics_batch()).unwrap();
    assert_eq!(imds.requests().len(), 1);

    // IMDS error classes: 404 (identity not ready) retryable, 400 (no identity)
    // permanent.
    let mut inst = create(&host, &config).unwrap();
    imds.push_response(ScriptedResponse::status(404).body(r#"{"error":"not_found"}"#));
    assert_eq!(
        export(&mut inst, &metrics_batch()).unwrap_err().kind,
        ErrorKind::Retryable
    );
    imds.push_response(
        ScriptedResponse::status(400)
            .body(r#"{"error":"invalid_request","error_description":"Identity not found"}"#),
    );
    let e = export(&mut inst, &metrics_batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(e.message.contains("Identity not found"), "{e}");
    assert_no_secrets(&host, &[&e], &["tok-mi"]);
}

#[test]
fn token_endpoint_errors() {
    let env = Env::new();
    let host = TestHost::default();
    let config = format!("{{{}, {}}}", env.auth_json(), env.metrics_json());
    let mut inst = create(&host, &config).unwrap();

    env.login.push_response(ScriptedResponse::status(401).body(
        r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#,
    ));
    let e1 = export(&mut inst, &metrics_batch()).unwrap_err();
    assert_eq!(e1.kind, ErrorKind::Permanent);
    assert!(e1.message.contains("invalid_client"), "{e1}");
    assert!(e1.message.contains("AADSTS7000215"), "{e1}");

    env.login
        .push_response(ScriptedResponse::status(429).header("Retry-After", "3"));
    let e2 = export(&mut inst, &metrics_batch()).unwrap_err();
    assert_eq!(e2.kind, ErrorKind::Retryable);
    assert_eq!(e2.retry_after_ms.into_option(), Some(3000));

    env.login.push_response(ScriptedResponse::status(503));
    let e3 = export(&mut inst, &metrics_batch()).unwrap_err();
    assert_eq!(e3.kind, ErrorKind::Retryable);
    // Nothing reached the API without a token.
    assert!(env.api.requests().is_empty());
    assert_no_secrets(&host, &[&e1, &e2, &e3], &[]);
}

#[test]
fn tls_is_verified() {
    let env = Env::new();
    let host = TestHost::default();
    // No ca_file: the test servers' CA is unknown, the token request must fail.
    let config = format!(
        r#"{{"tenant_id": "t", "client_id": "c", "client_secret": "s",
             "authority_host": "{}", {}}}"#,
        env.login.url(""),
        env.metrics_json()
    );
    let mut inst = create(&host, &config).unwrap();
    let e = export(&mut inst, &metrics_batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert!(env.login.requests().is_empty(), "no request got through");
}

#[test]
fn config_errors_carry_paths() {
    let host = TestHost::default();
    let e = create(
        &host,
        r#"{"metrics": {"resource_id": "vm-1"}, "logs": {"endpoint": "x", "dcr_immutable_id": "d"}}"#,
    )
    .err()
    .unwrap();
    let paths: Vec<_> = e.config_errors.iter().map(|c| c.path.to_string()).collect();
    assert_eq!(
        paths,
        [
            "tenant_id",
            "client_id",
            "client_secret",
            "metrics.resource_id",
            "logs.endpoint"
        ]
    );
    let e = create(&host, r#"{"traces": {"connection_string": 5}}"#)
        .err()
        .unwrap();
    assert_eq!(e.config_errors[0].path.as_str(), "traces.connection_string");
}

#[test]
fn application_insights_with_entra_auth_sends_a_monitor_token() {
    let env = Env::new();
    let host = TestHost::default();
    let config = format!(
        r#"{{{}, "traces": {{"connection_string":
            "InstrumentationKey=ikey-2;IngestionEndpoint={};Authorization=AAD"}}}}"#,
        env.auth_json(),
        env.api.url("")
    );
    let mut inst = create(&host, &config).unwrap();
    env.login.push_response(token("tok-ai", 3600));
    env.api.push_response(breeze(1, 1, json!([])));
    let batch = Batch {
        spans: vec![span(1, SpanKind::Server)].into(),
        ..Batch::default()
    };
    assert_eq!(export(&mut inst, &batch).unwrap().accepted, 1);
    check_token_request(
        &env.login.wait_for_requests(1, WAIT)[0],
        "https://monitor.azure.com//.default",
    );
    let r = &env.api.wait_for_requests(1, WAIT)[0];
    assert_eq!(r.path, "/v2.1/track");
    assert_eq!(r.header("authorization"), Some("Bearer tok-ai"));
    assert_eq!(json(r)[0]["iKey"], "ikey-2");
    assert_no_secrets(&host, &[], &["tok-ai"]);
}
