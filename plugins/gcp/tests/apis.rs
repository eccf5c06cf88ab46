//! The three APIs, driven through the plugin's exported entry points against a strict
//! local HTTPS server standing in for `monitoring.googleapis.com`,
//! `logging.googleapis.com` and `cloudtrace.googleapis.com`; each captured body is
//! decoded as JSON (serde_json::Value) and compared with what the API references
//! document; the server also plays the documented error answers:
//! - bodies, paths, headers of `timeSeries.create`, `entries:write` and
//!   `traces:batchWrite`;
//! - 450 series -> 3 requests (the 200-series limit);
//! - 429 + Retry-After and 503 retryable; 400 with the Google error JSON permanent
//!   with its status and message; 5xx on the second request: the retry resends only
//!   what was not written;
//! - partial failures: Monitoring's `CreateTimeSeriesSummary` and Logging's
//!   `WriteLogEntriesPartialErrors` reported with the accepted counts;
//! - TLS verification is on; preview sends nothing; config errors carry paths.

mod common;

use common::*;
use serde_json::{json, Value};
use tfo_plugin_api::testing::export;
use tfo_plugin_api::{__private::abi_stable::std_types::RResult, ErrorKind, HealthState};
use tfo_plugin_common::testing::{ScriptedResponse, TestServer};

fn config(api: &TestServer) -> Value {
    json!({
        "project_id": PROJECT,
        "access_token": "ya29.test",
        "region": "europe-west1",
        "resource_labels": {"namespace": "prod"},
        "labels": {"env": "test"},
        "monitoring": {"endpoint": api.url("/v3"), "metric_prefix": "workload.googleapis.com"},
        "logging": {"endpoint": api.url("/v2"), "log_name": "tfo"},
        "trace": {"endpoint": api.url("/v2")},
        "ca_file": api.ca_file(),
    })
}

#[test]
fn bodies_match_the_api_references() {
    let api = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&api));
    let ok = export(&mut inst, &sample_batch()).unwrap();
    assert_eq!(ok.accepted, 4);
    let reqs = api.wait_for_requests(3, WAIT);
    assert_eq!(reqs.len(), 3);

    let resource = json!({"type": "generic_node", "labels": {
        "project_id": "my-proj", "location": "europe-west1", "namespace": "prod", "node_id": "web-1"}});

    check_api_request(&reqs[0], "/v3/projects/my-proj/timeSeries", "ya29.test");
    assert_eq!(
        body(&reqs[0]),
        json!({"timeSeries": [
            {
                "metric": {"type": "workload.googleapis.com/system.memory.usage",
                           "labels": {"state": "used", "service_name": "shop", "env": "test"}},
                "resource": resource,
                "metricKind": "GAUGE",
                "valueType": "DOUBLE",
                "unit": "By",
                "points": [{"interval": {"endTime": "2023-11-14T22:13:30Z"},
                            "value": {"doubleValue": 1024.0}}]
            },
            {
                "metric": {"type": "workload.googleapis.com/http.requests",
                           "labels": {"service_name": "shop", "env": "test"}},
                "resource": resource,
                "metricKind": "CUMULATIVE",
                "valueType": "DOUBLE",
                "unit": "1",
                "points": [{"interval": {"startTime": "2023-11-14T22:13:20Z",
                                         "endTime": "2023-11-14T22:13:30Z"},
                            "value": {"doubleValue": 17.0}}]
            }
        ]})
    );

    check_api_request(&reqs[1], "/v2/entries:write", "ya29.test");
    assert_eq!(
        body(&reqs[1]),
        json!({
            "logName": "projects/my-proj/logs/tfo",
            "resource": resource,
            "labels": {"env": "test"},
            "partialSuccess": true,
            "entries": [{
                "timestamp": "2023-11-14T22:13:30Z",
                "severity": "ERROR",
                "textPayload": "payment failed",
                "labels": {"order": "A-17"},
                "trace": "projects/my-proj/traces/5b8efff798038103d269b633813fc60c",
                "spanId": "eee19b7ec3c1b174"
            }]
        })
    );

    check_api_request(
        &reqs[2],
        "/v2/projects/my-proj/traces:batchWrite",
        "ya29.test",
    );
    assert_eq!(
        body(&reqs[2]),
        json!({"spans": [{
            "name": "projects/my-proj/traces/5b8efff798038103d269b633813fc60c/spans/eee19b7ec3c1b174",
            "spanId": "eee19b7ec3c1b174",
            "displayName": {"value": "POST /pay"},
            "startTime": "2023-11-14T22:13:20Z",
            "endTime": "2023-11-14T22:13:30Z",
            "attributes": {"attributeMap": {
                "http.status_code": {"intValue": "402"},
                "host.name": {"stringValue": {"value": "web-1"}},
                "service.name": {"stringValue": {"value": "shop"}}
            }},
            "status": {"code": 2, "message": "card declined"},
            "spanKind": "SERVER"
        }]})
    );
}

#[test]
fn time_series_are_sent_200_per_request() {
    let api = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&api));
    let ok = export(&mut inst, &metrics_batch(450)).unwrap();
    assert_eq!(ok.accepted, 450);
    let reqs = api.wait_for_requests(3, WAIT);
    let sizes: Vec<usize> = reqs
        .iter()
        .map(|r| body(r)["timeSeries"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [200, 200, 50]);
    let mut names: Vec<String> = reqs
        .iter()
        .flat_map(|r| {
            body(r)["timeSeries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["metric"]["type"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 450, "every series sent exactly once");
}

#[test]
fn documented_error_answers() {
    let api = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&api));
    let batch = metrics_batch(1);

    api.push_response(
        google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded").header("Retry-After", "7"),
    );
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.retry_after_ms.into_option(), Some(7000));
    assert!(
        e.message.contains("RESOURCE_EXHAUSTED: Quota exceeded"),
        "{e}"
    );

    api.push_response(google_error(
        503,
        "UNAVAILABLE",
        "The service is currently unavailable.",
    ));
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert!(e.message.contains("UNAVAILABLE"), "{e}");

    let msg = "Field timeSeries[0].metric.type had an invalid value of \"x\": \
               The metric type must be a URL-formatted string with a domain and non-empty path.";
    api.push_response(google_error(400, "INVALID_ARGUMENT", msg));
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(
        e.message
            .contains(&format!("HTTP 400: INVALID_ARGUMENT: {msg}")),
        "{e}"
    );
    let h = inst.health();
    assert_eq!(
        h.state,
        HealthState::Healthy,
        "a rejected batch is not an outage"
    );
    assert!(h.reason.contains("INVALID_ARGUMENT"), "{:?}", h.reason);

    // A non-Google body is quoted as is.
    api.push_response(ScriptedResponse::status(502).body("<html>bad gateway</html>"));
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert!(e.message.contains("bad gateway"), "{e}");
    assert_eq!(api.requests().len(), 4);
}

#[test]
fn a_retry_resends_only_what_was_not_written() {
    let api = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&api));
    let batch = sample_batch();
    api.push_response(ScriptedResponse::status(200).body("{}"));
    api.push_response(google_error(503, "UNAVAILABLE", "later"));
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert_eq!(e.accepted, 2, "the two metric points were written");
    let ok = export(&mut inst, &batch).unwrap();
    assert_eq!(ok.accepted, 4);
    let paths: Vec<String> = api.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/v3/projects/my-proj/timeSeries",
            "/v2/entries:write",
            "/v2/entries:write",
            "/v2/projects/my-proj/traces:batchWrite"
        ]
    );
    // A different batch starts from scratch.
    export(&mut inst, &batch).unwrap();
    assert_eq!(api.requests().len(), 7);
}

#[test]
fn time_series_partial_errors_are_reported() {
    let api = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&api));
    // The documented shape: an INVALID_ARGUMENT error whose details carry a
    // google.monitoring.v3.CreateTimeSeriesSummary.
    api.push_response(
        ScriptedResponse::status(400)
            .header("Content-Type", "application/json; charset=UTF-8")
            .body(
                json!({"error": {
                    "code": 400,
                    "message": "One or more TimeSeries could not be written: Points must be written in order. One or more of the points specified had an older start time than the most recent point.: timeSeries[1]",
                    "status": "INVALID_ARGUMENT",
                    "details": [{
                        "@type": "type.googleapis.com/google.monitoring.v3.CreateTimeSeriesSummary",
                        "totalPointCount": 2,
                        "successPointCount": 1,
                        "errors": [{"status": {"code": 3}, "pointCount": 1}]
                    }]
                }})
                .to_string(),
            ),
    );
    let e = export(&mut inst, &sample_batch()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    // 1 point written, then the log entry and the span (still sent).
    assert_eq!(e.accepted, 3);
    assert!(e.message.contains("1 of 2 time series rejected"), "{e}");
    assert!(e.message.contains("Points must be written in order"), "{e}");
    assert!(e.message.contains("1 point(s): status code 3"), "{e}");
    assert_eq!(
        api.requests().len(),
        3,
        "the other APIs still got their data"
    );
    let logs = host.logs();
    assert!(
        logs.iter()
            .any(|(_, l)| l.contains("1 of 2 time series rejected")),
        "{logs:?}"
    );
}

#[test]
fn log_partial_errors_are_reported() {
    let api = TestServer::https();
    let host = TestHost::default();
    let mut cfg = config(&api);
    cfg["monitoring"]["enabled"] = false.into();
    cfg["trace"]["enabled"] = false.into();
    let mut inst = instance(&host, &cfg);
    let mut batch = sample_batch();
    let first = batch.logs[0].clone();
    batch.logs = vec![first.clone(), first.clone(), first].into();
    api.push_response(
        ScriptedResponse::status(400)
            .header("Content-Type", "application/json")
            .body(
                json!({"error": {
                    "code": 400,
                    "message": "Log entry with size 300.5K exceeds maximum size of 256.0K",
                    "status": "INVALID_ARGUMENT",
                    "details": [{
                        "@type": "type.googleapis.com/google.logging.v2.WriteLogEntriesPartialErrors",
                        "logEntryErrors": {"1": {"code": 3, "message": "Log entry with size 300.5K exceeds maximum size of 256.0K"}}
                    }]
                }})
                .to_string(),
            ),
    );
    let e = export(&mut inst, &batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert_eq!(e.accepted, 2);
    assert!(e.message.contains("1 of 3 log entries rejected"), "{e}");
    assert!(e.message.contains("entry 1: Log entry with size"), "{e}");
    let reqs = api.requests();
    assert_eq!(reqs.len(), 1, "only logging is enabled");
    assert_eq!(body(&reqs[0])["entries"].as_array().unwrap().len(), 3);
}

#[test]
fn tls_verification_is_on() {
    let api = TestServer::https();
    let mut cfg = config(&api);
    cfg.as_object_mut().unwrap().remove("ca_file");
    let host = TestHost::default();
    let mut inst = instance(&host, &cfg);
    let e = export(&mut inst, &metrics_batch(1)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable);
    assert!(e.message.contains("certificate"), "{e}");
    assert!(api.requests().is_empty());
}

#[test]
fn preview_sends_nothing() {
    let api = TestServer::https();
    let host = TestHost::default();
    let mut inst = instance(&host, &config(&api));
    let text = match inst.preview(&sample_batch()) {
        RResult::ROk(t) => t.to_string(),
        RResult::RErr(e) => panic!("{e}"),
    };
    assert!(text.contains(&format!(
        "POST {}",
        api.url("/v3/projects/my-proj/timeSeries")
    )));
    assert!(
        text.contains("\"textPayload\": \"payment failed\""),
        "{text}"
    );
    assert!(text.contains("traces:batchWrite"), "{text}");
    assert!(api.requests().is_empty());
}

#[test]
fn config_errors_carry_paths() {
    let host = TestHost::default();
    let e = create(
        &host,
        &json!({"access_token": "t", "batch_size": 500, "monitoring": {"metric_prefix": "x.com"},
                "resource_type": "gce_instance", "resource_labels": {"zone": "z"}}),
    )
    .err()
    .unwrap();
    let paths: Vec<String> = e.config_errors.iter().map(|c| c.path.to_string()).collect();
    assert_eq!(
        paths,
        [
            "project_id",
            "monitoring.metric_prefix",
            "resource_labels.instance_id",
            "batch_size"
        ]
    );
    let e = create(&host, &json!({"project_id": "p-1", "timeout": "soon"}))
        .err()
        .unwrap();
    assert_eq!(e.config_errors[0].path.as_str(), "timeout");
    let e = create(
        &host,
        &json!({"project_id": "p-1", "trace": {"enable": true}}),
    )
    .err()
    .unwrap();
    assert_eq!(e.config_errors[0].path.as_str(), "trace.enable");
    assert!(e.config_errors[0].message.contains("enable"), "{e:?}");
}

#[test]
fn config_example_is_valid() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml"))
        .unwrap()
        // What the agent's `${VAR:-default}` substitution would give with the
        // variable unset, then set.
        .replace("${GCP_PROJECT_ID:-}", "my-proj");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut block: Value = serde_json::to_value(&doc["gcp"]).unwrap();
    // Keys the host consumes itself.
    let obj = block.as_object_mut().unwrap();
    assert_eq!(obj.remove("enabled"), Some(Value::Bool(false)));
    let host = TestHost::default();
    let inst = create(&host, &block);
    assert!(inst.is_ok(), "{:?}", inst.err());
}
