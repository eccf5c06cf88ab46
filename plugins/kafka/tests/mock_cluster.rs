//! The sink against librdkafka's mock cluster: what an independent consumer reads
//! back is what the docs promise (topics, keys, OTLP protobuf decoded here with the
//! opentelemetry-proto prost types, OTLP/JSON and plain JSON parsed as JSON); an
//! oversized item is left out without losing the rest; transient broker errors are
//! absorbed by librdkafka's retries; a cluster that stays down gives a retryable
//! error and recovers; errors a retry cannot fix are permanent.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::*;
use opentelemetry_proto::tonic::{
    collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    },
    metrics::v1::{metric::Data, number_data_point::Value as NumberValue},
};
use prost::Message as _;
use rdkafka_sys::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::json;
use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, AnyValue, Batch, ErrorKind, HealthState, LogRecord,
};

const WAIT: Duration = Duration::from_secs(15);

fn by_topic(records: &[Consumed]) -> BTreeMap<String, Vec<Consumed>> {
    let mut m: BTreeMap<String, Vec<Consumed>> = BTreeMap::new();
    for r in records {
        m.entry(r.topic.clone()).or_default().push(r.clone());
    }
    m
}

#[test]
fn otlp_proto_goes_to_one_topic_per_signal_keyed_by_metric_name_and_trace_id() {
    let mock = cluster(3, &TOPICS);
    let host = TestHost::default();
    let mut inst = start(
        &host,
        json!({ "brokers": mock.bootstrap_servers().split(',').collect::<Vec<_>>() }),
    );
    let ok = export(&mut inst, &batch()).expect("export");
    assert_eq!(ok.accepted, 8, "3 points + 3 spans + 2 logs");

    // 2 metric names + 2 trace ids + 1 logs request.
    let got = consume(&mock.bootstrap_servers(), &TOPICS, 5, WAIT);
    assert_eq!(got.len(), 5, "{got:?}");
    let topics = by_topic(&got);

    // Metrics: one record per metric name, keyed by it, on the metrics topic.
    let metrics = &topics["otlp_metrics"];
    let mut keys: Vec<String> = metrics.iter().map(|r| r.key_str().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["cpu.load", "http.requests"]);
    for r in metrics {
        let req = ExportMetricsServiceRequest::decode(&r.payload[..]).expect("metrics protobuf");
        let rm = &req.resource_metrics[0];
        let res: Vec<&str> = rm
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|a| a.key.as_str())
            .collect();
        assert_eq!(res, ["service.name", "host.name"]);
        let m = &rm.scope_metrics[0].metrics;
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, r.key_str().unwrap());
        match (m[0].name.as_str(), &m[0].data) {
            ("cpu.load", Some(Data::Gauge(g))) => {
                // NaN travels as a protobuf double and did not poison the batch.
                let Some(NumberValue::AsDouble(v)) = g.data_points[0].value else {
                    panic!()
                };
                assert!(v.is_nan());
            }
            ("http.requests", Some(Data::Sum(s))) => {
                assert!(s.is_monotonic);
                assert_eq!(s.aggregation_temporality, 2);
                assert_eq!(s.data_points.len(), 2);
                assert_eq!(s.data_points[0].value, Some(NumberValue::AsDouble(42.0)));
                assert_eq!(s.data_points[1].value, Some(NumberValue::AsInt(7)));
            }
            other => panic!("unexpected metric {other:?}"),
        }
    }

    // Spans: one record per trace, keyed by the hex trace id; spans of one trace
    // share a partition.
    let spans = &topics["otlp_spans"];
    assert_eq!(spans.len(), 2);
    for r in spans {
        let req = ExportTraceServiceRequest::decode(&r.payload[..]).expect("trace protobuf");
        let s = &req.resource_spans[0].scope_spans[0].spans;
        let key = r.key_str().unwrap();
        let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
        if key == "07".repeat(16) {
            assert_eq!(names, ["checkout", "db"]);
        } else {
            assert_eq!(key, "09".repeat(16));
            assert_eq!(names, ["login"]);
        }
        assert!(s.iter().all(|sp| sp.trace_id == hex_bytes(&key)));
        assert_eq!(s[0].kind, 2);
    }

    // Logs: one request, no key.
    let logs = &topics["otlp_logs"];
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].key, None);
    let req = ExportLogsServiceRequest::decode(&logs[0].payload[..]).expect("logs protobuf");
    let bodies: Vec<String> = req.resource_logs[0].scope_logs[0]
        .log_records
        .iter()
        .map(|l| format!("{:?}", l.body.as_ref().unwrap().value.as_ref().unwrap()))
        .collect();
    assert_eq!(bodies.len(), 2);
    assert!(
        bodies[0].contains("hello") && bodies[1].contains("world"),
        "{bodies:?}"
    );

    assert_eq!(inst.health().state, HealthState::Healthy);
    stop(inst);
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn custom_topics_otlp_json_and_plain_json() {
    let topics = ["m", "t", "l", "gm", "gt", "gl"];
    let mock = cluster(1, &topics);
    let host = TestHost::default();
    let brokers = vec![mock.bootstrap_servers()];

    // OTLP/JSON with nested topics and a compression codec.
    let mut inst = start(
        &host,
        json!({ "brokers": brokers, "encoding": "otlp_json", "compression": "zstd",
                "topics": { "metrics": "m", "traces": "t", "logs": "l" } }),
    );
    assert_eq!(export(&mut inst, &batch()).expect("export").accepted, 8);
    stop(inst);
    let got = by_topic(&consume(
        &mock.bootstrap_servers(),
        &["m", "t", "l"],
        5,
        WAIT,
    ));
    assert_eq!(got["m"].len(), 2);
    assert_eq!(got["t"].len(), 2);
    assert_eq!(got["l"].len(), 1);
    for r in &got["t"] {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).expect("OTLP/JSON");
        let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(
            span["traceId"].as_str().unwrap(),
            r.key_str().unwrap(),
            "hex ids"
        );
        assert_eq!(span["kind"], 2);
        assert!(
            span["startTimeUnixNano"].is_string(),
            "64-bit ints as strings"
        );
    }
    let gauge = got["m"]
        .iter()
        .find(|r| r.key_str().unwrap() == "cpu.load")
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&gauge.payload).unwrap();
    assert_eq!(
        v["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["gauge"]["dataPoints"][0]
            ["asDouble"],
        "NaN"
    );

    // Plain JSON with the Go agent's flat topic keys: one record per item.
    let mut inst = start(
        &host,
        json!({ "brokers": brokers, "encoding": "json",
                "metrics_topic": "gm", "traces_topic": "gt", "logs_topic": "gl" }),
    );
    assert_eq!(export(&mut inst, &batch()).expect("export").accepted, 8);
    stop(inst);
    let got = by_topic(&consume(
        &mock.bootstrap_servers(),
        &["gm", "gt", "gl"],
        8,
        WAIT,
    ));
    assert_eq!(got["gm"].len(), 3);
    assert_eq!(got["gt"].len(), 3);
    assert_eq!(got["gl"].len(), 2);
    for r in &got["gm"] {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!(v["name"].as_str().unwrap(), r.key_str().unwrap());
        assert_eq!(v["resource"]["service.name"], "shop");
        if v["name"] == "cpu.load" {
            assert_eq!(v["value"], "NaN");
        }
    }
    for r in &got["gt"] {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!(v["trace_id"].as_str().unwrap(), r.key_str().unwrap());
    }
    assert!(got["gl"].iter().all(|r| r.key.is_none()));
}

#[test]
fn records_are_split_under_max_message_bytes_and_an_oversized_item_is_left_out() {
    let mock = cluster(1, &TOPICS);
    let host = TestHost::default();
    let mut inst = start(
        &host,
        json!({ "brokers": [mock.bootstrap_servers()], "max_message_bytes": 4000 }),
    );
    let log = |body: String| LogRecord {
        time_unix_nano: T,
        observed_time_unix_nano: T,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: AnyValue::Str(body.into()),
        attributes: vec![].into(),
        trace_id: [0; 16],
        span_id: [0; 8],
    };
    // 40 logs of ~300 bytes (about 12 kB in one request) plus one 10 kB body.
    let mut logs: Vec<LogRecord> = (0..40)
        .map(|i| log(format!("{i:03}{}", "x".repeat(300))))
        .collect();
    logs.insert(17, log("big".repeat(3400)));
    let b = Batch {
        logs: logs.into(),
        ..Batch::default()
    };
    let ok = export(&mut inst, &b).expect("export");
    assert_eq!(ok.accepted, 40, "everything but the oversized record");
    host.wait_for_log("items left out", Duration::from_secs(1));
    stop(inst);

    let got = consume(&mock.bootstrap_servers(), &["otlp_logs"], 4, WAIT);
    assert!(
        got.len() >= 4,
        "12 kB must be split under 4 kB: {} record(s)",
        got.len()
    );
    let mut seen = Vec::new();
    for r in &got {
        assert!(r.payload.len() <= 4000 - 256, "{} bytes", r.payload.len());
        let req = ExportLogsServiceRequest::decode(&r.payload[..]).unwrap();
        for l in &req.resource_logs[0].scope_logs[0].log_records {
            let body = format!("{:?}", l.body.as_ref().unwrap().value.as_ref().unwrap());
            assert!(!body.contains("bigbig"), "the oversized record was sent");
            seen.push(body[13..16].to_string()); // StringValue("NNN...
        }
    }
    seen.sort();
    let want: Vec<String> = (0..40).map(|i| format!("{i:03}")).collect();
    assert_eq!(seen, want, "every small record exactly once");
}

#[test]
fn transient_produce_errors_are_retried_inside_librdkafka() {
    let mock = cluster(1, &TOPICS);
    let host = TestHost::default();
    let mut inst = start(&host, json!({ "brokers": [mock.bootstrap_servers()] }));
    // Let the producer learn the cluster first (metadata, producer id).
    export(&mut inst, &batch()).expect("warm-up export");
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ],
    );
    let ok = export(&mut inst, &batch()).expect("export after transient errors");
    assert_eq!(ok.accepted, 8);
    stop(inst);
    // The idempotent producer wrote each record once despite the retries.
    let got = consume(&mock.bootstrap_servers(), &TOPICS, 10, WAIT);
    assert_eq!(got.len(), 10, "5 records per export, no duplicates");
}

#[test]
fn a_cluster_that_stays_down_is_retryable_and_recovers() {
    let mock = cluster(1, &TOPICS);
    let host = TestHost::default();
    let mut inst = start(
        &host,
        json!({ "brokers": [mock.bootstrap_servers()], "timeout": "1500ms",
                "producer_config": { "reconnect.backoff.max.ms": 200 } }),
    );
    export(&mut inst, &batch()).expect("export while up");
    mock.broker_down(1).expect("broker down");
    let e = export(&mut inst, &batch()).expect_err("export while down");
    assert_eq!(e.kind, ErrorKind::Retryable, "{e:?}");
    assert!(e.message.contains("not delivered"), "{e:?}");
    assert_eq!(inst.health().state, HealthState::Unhealthy);

    mock.broker_up(1).expect("broker up");
    let t0 = std::time::Instant::now();
    let mut r = export(&mut inst, &batch());
    // As the host does: retry (librdkafka reconnects with a backoff).
    while r.is_err() && t0.elapsed() < Duration::from_secs(20) {
        r = export(&mut inst, &batch());
    }
    let ok = r.expect("export after recovery");
    assert_eq!(ok.accepted, 8);
    assert_eq!(inst.health().state, HealthState::Healthy);
    stop(inst);
}

#[test]
fn errors_a_retry_cannot_fix_are_permanent() {
    // Each case on its own cluster: a refused produce request is not retried, so
    // how many of the queued errors one export consumes depends on how librdkafka
    // batched the records.
    for (error, text) in [
        // The broker refuses the topic (ACLs).
        (
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
            "TopicAuthorizationFailed",
        ),
        // The broker says a record is too large (its limit is below ours).
        (
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
            "MessageSizeTooLarge",
        ),
    ] {
        let mock = cluster(1, &TOPICS);
        let host = TestHost::default();
        let mut inst = start(&host, json!({ "brokers": [mock.bootstrap_servers()] }));
        export(&mut inst, &batch()).expect("warm-up export");
        mock.request_errors(RDKafkaApiKey::Produce, &[error; 20]);
        let e = export(&mut inst, &batch()).expect_err("export refused");
        assert_eq!(e.kind, ErrorKind::Permanent, "{e:?}");
        assert!(e.message.contains(text), "{e:?}");
        assert_eq!(inst.health().state, HealthState::Unhealthy);
        stop(inst);
    }
}

/// The mock cluster speaks no SASL, so it shows what a broker refusing the
/// credentials looks like: librdkafka tries the configured mechanism (the SASL
/// settings reached it), the records time out, and the export is permanent with
/// the broker's reason.
#[test]
fn refused_sasl_authentication_is_permanent() {
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let mock = cluster(1, &TOPICS);
        let host = TestHost::default();
        let mut inst = start(
            &host,
            json!({ "brokers": [mock.bootstrap_servers()], "timeout": "1500ms",
                    "sasl": { "mechanism": mechanism, "username": "agent", "password": "secret" } }),
        );
        let e = export(&mut inst, &batch()).expect_err("export without authentication");
        assert_eq!(e.kind, ErrorKind::Permanent, "{e:?}");
        assert!(e.message.contains("refused authentication"), "{e:?}");
        assert!(
            e.message
                .contains(&format!("required by mechanism {mechanism}")),
            "{e:?}"
        );
        stop(inst);
    }
}

/// Shutdown stays within its deadline when the cluster is gone (librdkafka is
/// flushed for part of the deadline, then purged and destroyed, its threads
/// joined), so the host can unload the library.
#[test]
fn shutdown_is_bounded_while_the_cluster_is_down() {
    let mock = cluster(1, &TOPICS);
    let host = TestHost::default();
    let mut inst = start(
        &host,
        json!({ "brokers": [mock.bootstrap_servers()], "timeout": "20s" }),
    );
    export(&mut inst, &batch()).expect("export while up");
    mock.broker_down(1).expect("broker down");
    let started = std::time::Instant::now();
    let res = inst.shutdown(2_000);
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(matches!(res, RResult::ROk(())), "{res:?}");
}
