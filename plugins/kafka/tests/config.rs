//! Configuration through the plugin's exported `create`, as `tfo-agent validate`
//! runs it: defaults, the Go agent's keys, and refusals carrying the field path
//! (including librdkafka's own refusal of a bad `producer_config` entry). Nothing
//! connects: `create` must not start a producer.

mod common;

use common::{module, TestHost};
use serde_json::json;

/// The config errors `create` returns, as (path, message).
fn errors(config: serde_json::Value) -> Vec<(String, String)> {
    match tfo_plugin_api::testing::create(
        module(),
        &TestHost::default(),
        "kafka",
        &config.to_string(),
    ) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .config_errors
            .iter()
            .map(|c| (c.path.to_string(), c.message.to_string()))
            .collect(),
    }
}

fn paths(config: serde_json::Value) -> Vec<String> {
    errors(config).into_iter().map(|(p, _)| p).collect()
}

#[test]
fn a_minimal_config_is_accepted_and_creates_no_connection() {
    assert!(errors(json!({ "brokers": ["localhost:1"] })).is_empty());
    // The Go agent's documented block, with its keys.
    assert!(errors(json!({
        "brokers": ["kafka:9092"], "topic": "telemetryflow-metrics",
        "logs_topic": "telemetryflow-logs", "traces_topic": "telemetryflow-traces",
        "compression": "snappy", "encoding": "json", "client_id": "telemetryflow-agent",
        "sasl": { "enabled": true, "mechanism": "SCRAM-SHA-512", "username": "u", "password": "p" },
        "tls": { "enabled": false },
    }))
    .is_empty());
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let got = paths(json!({
        "brokers": ["kafka", "ok:9092", "x:0"],
        "topics": { "metrics": "bad topic" },
        "traces_topic": "",
        "required_acks": 1,
        "timeout": "0s",
        "max_message_bytes": 10,
        "sasl": { "mechanism": "GSSAPI", "username": "", "password": "" },
        "tls": { "ca_file": "/nonexistent/ca.pem", "cert_file": "/nonexistent/c.pem" },
    }));
    for want in [
        "brokers[0]",
        "brokers[2]",
        "topics.metrics",
        "traces_topic",
        "required_acks",
        "timeout",
        "max_message_bytes",
        "sasl.mechanism",
        "sasl.username",
        "tls.ca_file",
        "tls.cert_file",
        "tls.key_file",
    ] {
        assert!(
            got.contains(&want.to_string()),
            "{want} missing from {got:?}"
        );
    }
    assert!(!got.contains(&"brokers[1]".to_string()));
}

#[test]
fn no_brokers_both_topic_spellings_and_unknown_keys_are_refused() {
    assert_eq!(paths(json!({})), ["brokers"]);
    assert_eq!(
        paths(json!({ "brokers": ["a:1"], "topics": { "logs": "a" }, "logs_topic": "b" })),
        ["logs_topic"]
    );
    // The Go agent's batching keys are not supported (the host batches).
    let e = errors(json!({ "brokers": ["a:1"], "batch_size": 100 }));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].1.contains("batch_size"), "{e:?}");
    assert_eq!(
        paths(json!({ "brokers": ["a:1"], "encoding": "avro" })),
        ["encoding"]
    );
    assert_eq!(
        paths(json!({ "brokers": ["a:1"], "compression": "brotli" })),
        ["compression"]
    );
}

#[test]
fn producer_config_is_checked_by_librdkafka() {
    let e = errors(json!({ "brokers": ["a:1"], "producer_config": {
        "linger.ms": 20, "no.such.property": "1", "batch.num.messages": "lots"
    }}));
    let p: Vec<&str> = e.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        p,
        [
            "producer_config.batch.num.messages",
            "producer_config.no.such.property"
        ],
        "{e:?}"
    );
    assert!(e[1].1.contains("No such configuration property"), "{e:?}");
    // Overriding acks against the idempotent producer is caught before rd_kafka_new.
    assert_eq!(
        paths(json!({ "brokers": ["a:1"], "producer_config": { "acks": "1" } })),
        ["producer_config.acks"]
    );
    // ...and allowed once idempotence is off.
    assert!(
        errors(json!({ "brokers": ["a:1"], "idempotent": false, "required_acks": 1 })).is_empty()
    );
}

/// `tfo-agent run --once` shows what would be produced, without a producer: one
/// block per record with its topic and key; protobuf values shown as OTLP/JSON.
#[test]
fn preview_renders_records_without_connecting() {
    use tfo_plugin_api::__private::abi_stable::std_types::RResult;
    for (encoding, needle) in [
        ("otlp_proto", "shown as OTLP/JSON"),
        ("otlp_json", "\"resourceSpans\""),
        ("json", "\"trace_id\":\"07070707070707070707070707070707\""),
    ] {
        let config = json!({ "brokers": ["127.0.0.1:1"], "encoding": encoding });
        let mut inst = tfo_plugin_api::testing::create(
            module(),
            &TestHost::default(),
            "kafka",
            &config.to_string(),
        )
        .expect("create");
        let RResult::ROk(text) = inst.preview(&common::batch()) else {
            panic!("preview failed")
        };
        assert!(text.contains("# topic=otlp_metrics key=cpu.load"), "{text}");
        assert!(
            text.contains(&format!("# topic=otlp_spans key={}", "07".repeat(16))),
            "{text}"
        );
        assert!(text.contains("# topic=otlp_logs key=(none)"), "{text}");
        assert!(text.contains(needle), "{encoding}: {text}");
    }
}
