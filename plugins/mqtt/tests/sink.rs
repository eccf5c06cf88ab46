//! The sink against a real mosquitto broker: what an independent subscriber
//! (`mosquitto_sub`) receives is exactly what the encoder documents, for JSON and
//! Influx payloads and QoS 0, 1 and 2; OTLP protobuf payloads, decoded by the
//! official Python `opentelemetry-proto` classes (`otlp_decode.py`); the retain
//! flag; credentials; TLS with a generated CA, verification on by default, and
//! mutual TLS.

mod common;

use std::time::Duration;

use common::{config, start, Broker, BrokerOptions, TestHost};
use tfo_mqtt::{
    config::{Format, TopicTemplate},
    encode,
};
use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, AnyValue, Batch, DataPoint, ErrorKind, HealthState,
    KeyValue, LogRecord, Metric, PointValue, Resource, Span, SpanKind, StatusCode,
};

const T: u64 = 1_700_000_000_000_000_000;
const WAIT: Duration = Duration::from_secs(10);

fn batch() -> Batch {
    let mut counter = Metric::counter(
        "http.requests",
        "{request}",
        T - 1_000,
        T,
        42.0,
        vec![KeyValue::new("route", "/cart")],
    );
    counter.points.push(DataPoint {
        attributes: vec![KeyValue::new("route", "a b,c=d")].into(),
        start_time_unix_nano: T - 1_000,
        time_unix_nano: T,
        value: PointValue::Int(7),
    });
    Batch {
        resource: Resource {
            attributes: vec![
                KeyValue::new("service.name", "shop"),
                KeyValue::new("host.name", "web-1"),
            ]
            .into(),
        },
        metrics: vec![Metric::gauge("cpu.load", "1", T, 0.25, vec![]), counter].into(),
        spans: vec![Span {
            trace_id: [7; 16],
            span_id: [8; 8],
            parent_span_id: [0; 8],
            name: "checkout".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: T,
            end_time_unix_nano: T + 10,
            status_code: StatusCode::Ok,
            status_message: "".into(),
            attributes: vec![].into(),
            events: vec![].into(),
        }]
        .into(),
        logs: vec![LogRecord {
            time_unix_nano: T,
            observed_time_unix_nano: T,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: AnyValue::from("order placed"),
            attributes: vec![].into(),
            trace_id: [0; 16],
            span_id: [0; 8],
        }]
        .into(),
    }
}

fn expected(template: &str, format: Format, b: &Batch) -> Vec<(String, String)> {
    let t = TopicTemplate::parse(template).unwrap();
    let mut v: Vec<(String, String)> = encode::encode_batch(b, &t, format)
        .messages
        .into_iter()
        .map(|m| (m.topic, String::from_utf8(m.payload).unwrap()))
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

fn export_ok(inst: &mut tfo_plugin_api::PluginInstanceBox, b: &Batch) -> u64 {
    match inst.export(b) {
        RResult::ROk(ok) => ok.accepted,
        RResult::RErr(e) => panic!("export failed: {e}"),
    }
}

#[test]
fn json_and_influx_messages_reach_an_independent_subscriber() {
    let Some(broker) = Broker::start("json_and_influx", BrokerOptions::default()) else {
        return;
    };
    let b = batch();

    // JSON, QoS 1: one message per point, span and log record.
    let template = "tfo/{type}/{service}/{host}/{name}";
    let want = expected(template, Format::Json, &b);
    assert_eq!(want.len(), 5);
    let mut sub = broker.subscribe("tfo/#", want.len());
    let host = TestHost::default();
    let mut inst = start(
        &host,
        &config(
            &broker.url(),
            "sink-json",
            &format!(r#""topic": "{template}", "qos": 1"#),
        ),
    );
    assert_eq!(inst.health().state, HealthState::Healthy);
    assert_eq!(export_ok(&mut inst, &b), 5);
    assert_eq!(sorted(sub.messages(want.len(), WAIT)), want);
    assert!(want.iter().any(|(t, _)| t == "tfo/logs/shop/web-1/info"));
    // preview renders the same messages without sending them.
    match inst.preview(&b) {
        RResult::ROk(text) => assert!(
            text.contains("tfo/metrics/shop/web-1/cpu.load {\"type\":\"metric\""),
            "{text}"
        ),
        RResult::RErr(e) => panic!("preview: {e}"),
    }
    assert!(inst.shutdown(2000).is_ok());

    // Influx line protocol, QoS 2: metrics only, one line per point.
    let template = "influx/{host}/{name}";
    let want = expected(template, Format::Influx, &b);
    assert_eq!(
        want,
        [
            ("influx/web-1/cpu.load".to_string(), format!("cpu.load,host.name=web-1,service.name=shop gauge=0.25 {T}")),
            ("influx/web-1/http.requests".to_string(), format!("http.requests,host.name=web-1,route=/cart,service.name=shop counter=42 {T}")),
            ("influx/web-1/http.requests".to_string(), format!("http.requests,host.name=web-1,route=a\\ b\\,c\\=d,service.name=shop counter=7i {T}")),
        ]
    );
    let mut sub = broker.subscribe("influx/#", want.len());
    let mut inst = start(
        &host,
        &config(
            &broker.url(),
            "sink-influx",
            &format!(r#""topic": "{template}", "format": "influx", "qos": 2"#),
        ),
    );
    // The span and the log record are not published, so not accepted.
    assert_eq!(export_ok(&mut inst, &b), 3);
    assert_eq!(sorted(sub.messages(want.len(), WAIT)), want);
    assert!(inst.shutdown(2000).is_ok());

    // QoS 0 with the retain flag: a subscriber arriving later still gets it.
    let g = Batch {
        metrics: vec![Metric::gauge("door.open", "1", T, 1.0, vec![])].into(),
        ..Batch::default()
    };
    let mut live = broker.subscribe("retained/#", 1);
    let mut inst = start(
        &host,
        &config(
            &broker.url(),
            "sink-retain",
            r#""topic": "retained/{name}", "qos": 0, "retain": true"#,
        ),
    );
    assert_eq!(export_ok(&mut inst, &g), 1);
    let want = expected("retained/{name}", Format::Json, &g);
    assert_eq!(live.messages(1, WAIT), want);
    // A subscriber arriving after the export gets the message: the broker retained it.
    let mut late = broker.subscribe("retained/#", 1);
    assert_eq!(late.messages(1, WAIT), want);
    assert!(inst.shutdown(2000).is_ok());
    assert!(host.panics().is_empty());
}

/// Python modules the OTLP test decodes with.
const PY_MODULES: &str = "opentelemetry.proto.collector.metrics.v1.metrics_service_pb2, \
     opentelemetry.proto.collector.trace.v1.trace_service_pb2, \
     opentelemetry.proto.collector.logs.v1.logs_service_pb2, google.protobuf.json_format";

/// Writes `payload` to a file and decodes it as the `signal`'s export request with
/// the independent Python decoder.
fn decode_with_python(dir: &std::path::Path, signal: &str, payload: &[u8]) -> serde_json::Value {
    let file = dir.join(format!("{signal}.pb"));
    std::fs::write(&file, payload).unwrap();
    let out = common::run_python("otlp_decode.py", &[signal.as_ref(), file.as_os_str()]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"))
}

#[test]
fn otlp_protobuf_messages_decoded_by_python() {
    const TEST: &str = "otlp_protobuf_messages_decoded_by_python";
    if !common::python_has(PY_MODULES, TEST) {
        return;
    }
    let Some(broker) = Broker::start(TEST, BrokerOptions::default()) else {
        return;
    };
    let b = batch();
    let mut sub = broker.subscribe_binary("otlp/#", 3);
    let host = TestHost::default();
    let mut inst = start(
        &host,
        &config(
            &broker.url(),
            "sink-otlp",
            r#""topic": "otlp/{type}/{service}/{name}", "format": "otlp", "qos": 1"#,
        ),
    );
    // Three messages carrying 3 points, 1 span and 1 log record.
    assert_eq!(export_ok(&mut inst, &b), 5);
    let mut got = sub.binary_messages(3, WAIT);
    got.sort();
    let topics: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        topics,
        [
            "otlp/logs/shop/otlp",
            "otlp/metrics/shop/otlp",
            "otlp/traces/shop/otlp"
        ]
    );
    let dir = tempfile::tempdir().unwrap();

    let logs = decode_with_python(dir.path(), "logs", &got[0].1);
    let rl = &logs["resourceLogs"][0];
    let res = rl["resource"]["attributes"].as_array().unwrap();
    assert!(
        res.iter()
            .any(|a| a["key"] == "service.name" && a["value"]["stringValue"] == "shop"),
        "{logs}"
    );
    let rec = &rl["scopeLogs"][0]["logRecords"][0];
    assert_eq!(rec["body"]["stringValue"], "order placed", "{logs}");
    assert_eq!(rec["severityText"], "INFO", "{logs}");
    assert_eq!(rec["severityNumber"], "SEVERITY_NUMBER_INFO", "{logs}");
    assert_eq!(rec["timeUnixNano"], T.to_string(), "{logs}");
    // All-zero ids are absent, not zero bytes.
    assert!(rec.get("traceId").is_none(), "{logs}");

    let metrics = decode_with_python(dir.path(), "metrics", &got[1].1);
    let ms = metrics["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = ms.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cpu.load", "http.requests"], "{metrics}");
    let gauge = &ms[0]["gauge"]["dataPoints"][0];
    assert_eq!(gauge["asDouble"], 0.25, "{metrics}");
    assert_eq!(gauge["timeUnixNano"], T.to_string(), "{metrics}");
    let sum = &ms[1]["sum"];
    assert_eq!(sum["isMonotonic"], true, "{metrics}");
    assert_eq!(sum["dataPoints"][0]["asDouble"], 42.0, "{metrics}");
    assert_eq!(sum["dataPoints"][0]["attributes"][0]["key"], "route");
    assert_eq!(
        sum["dataPoints"][0]["attributes"][0]["value"]["stringValue"],
        "/cart"
    );
    // int64 is a string in proto3 JSON.
    assert_eq!(sum["dataPoints"][1]["asInt"], "7", "{metrics}");

    let traces = decode_with_python(dir.path(), "traces", &got[2].1);
    let span = &traces["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["name"], "checkout", "{traces}");
    assert_eq!(span["traceId"], "07".repeat(16), "{traces}");
    assert_eq!(span["spanId"], "08".repeat(8), "{traces}");
    assert!(span.get("parentSpanId").is_none(), "{traces}");
    assert_eq!(span["kind"], "SPAN_KIND_SERVER", "{traces}");
    assert_eq!(span["status"]["code"], "STATUS_CODE_OK", "{traces}");
    assert_eq!(span["endTimeUnixNano"], (T + 10).to_string(), "{traces}");

    // The bytes on the wire are exactly what the encoder produced.
    let t = TopicTemplate::parse("otlp/{type}/{service}/{name}").unwrap();
    let mut want: Vec<(String, Vec<u8>)> = encode::encode_batch(&b, &t, Format::Otlp)
        .messages
        .into_iter()
        .map(|m| (m.topic, m.payload))
        .collect();
    want.sort();
    assert_eq!(got, want);

    // preview describes the binary messages instead of printing them.
    match inst.preview(&b) {
        RResult::ROk(text) => assert!(
            text.contains("otlp/traces/shop/otlp <OTLP protobuf, "),
            "{text}"
        ),
        RResult::RErr(e) => panic!("preview: {e}"),
    }
    assert!(inst.shutdown(2000).is_ok());
    assert!(host.panics().is_empty());
}

#[test]
fn credentials_are_required_and_checked() {
    let Some(broker) = Broker::start(
        "credentials",
        BrokerOptions {
            user: Some(("agent".into(), "s3cret".into())),
            ..BrokerOptions::default()
        },
    ) else {
        return;
    };
    let host = TestHost::default();

    // Wrong password: start fails, permanently, saying why.
    for extra in [
        r#", "username": "agent", "password": "wrong""#,
        r#", "username": "nobody", "password": "s3cret""#,
        "",
    ] {
        let cfg = config(
            &broker.url(),
            "auth-bad",
            &format!(r#""topic": "a/{{type}}"{extra}"#),
        );
        let mut inst = common::create(&host, &cfg).unwrap();
        match inst.start() {
            RResult::ROk(()) => panic!("start with {extra:?} should fail"),
            RResult::RErr(e) => {
                eprintln!("start with {extra:?}: {e}");
                assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
                assert!(e.message.contains("refused the connection"), "{e}");
                assert!(
                    e.message.contains("not authorized")
                        || e.message.contains("bad user name or password"),
                    "{e}"
                );
                assert!(e.message.contains(&broker.url()), "{e}");
            }
        }
        assert!(inst.shutdown(1000).is_ok());
    }

    // Right password: published and received by a subscriber with the same user.
    let mut sub = broker.subscribe_with("a/#", 1, &["-u", "agent", "-P", "s3cret"]);
    let mut inst = start(
        &host,
        &config(
            &broker.url(),
            "auth-ok",
            r#""topic": "a/{type}", "username": "agent", "password": "s3cret""#,
        ),
    );
    let g = Batch {
        metrics: vec![Metric::gauge("x", "", T, 2.0, vec![])].into(),
        ..Batch::default()
    };
    assert_eq!(export_ok(&mut inst, &g), 1);
    assert_eq!(
        sub.messages(1, WAIT),
        expected("a/{type}", Format::Json, &g)
    );
    assert!(inst.shutdown(2000).is_ok());
    assert!(host.panics().is_empty());
}

#[test]
fn tls_with_a_generated_ca() {
    let Some(broker) = Broker::start(
        "tls",
        BrokerOptions {
            tls: true,
            ..BrokerOptions::default()
        },
    ) else {
        return;
    };
    let pki = broker.pki.as_ref().unwrap();
    let host = TestHost::default();
    let g = Batch {
        metrics: vec![Metric::gauge("secure", "", T, 3.0, vec![])].into(),
        ..Batch::default()
    };
    let tls_url = format!("mqtts://localhost:{}", broker.tls_port);
    let json_path = |p: &std::path::Path| serde_json::to_string(p).unwrap();

    // Verified against the generated CA: published, and a plain-TCP subscriber of the
    // same broker receives it.
    let mut sub = broker.subscribe("tls/#", 2);
    let mut inst = start(
        &host,
        &config(
            &tls_url,
            "tls-ok",
            &format!(
                r#""topic": "tls/{{name}}", "tls": {{"ca_file": {}}}"#,
                json_path(&pki.ca)
            ),
        ),
    );
    assert_eq!(export_ok(&mut inst, &g), 1);
    let want = expected("tls/{name}", Format::Json, &g);
    assert_eq!(sub.messages(1, WAIT), want);
    assert!(inst.shutdown(2000).is_ok());

    // Verification is on by default: without the CA, or with another CA, the broker's
    // certificate is refused and start says so.
    for tls in [
        String::new(),
        format!(r#", "tls": {{"ca_file": {}}}"#, json_path(&pki.other_ca)),
    ] {
        let mut inst = common::create(
            &host,
            &config(&tls_url, "tls-bad", &format!(r#""topic": "tls/x"{tls}"#)),
        )
        .unwrap();
        match inst.start() {
            RResult::ROk(()) => panic!("an untrusted certificate was accepted ({tls})"),
            RResult::RErr(e) => {
                eprintln!("untrusted broker certificate: {e}");
                assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
                assert!(e.message.contains("TLS"), "{e}");
                assert!(e.message.contains("UnknownIssuer"), "{e}");
            }
        }
        assert!(inst.shutdown(1000).is_ok());
    }

    // insecure_skip_verify accepts it (test systems only).
    let mut inst = start(
        &host,
        &config(
            &tls_url,
            "tls-insecure",
            r#""topic": "tls/{name}", "tls": {"insecure_skip_verify": true}"#,
        ),
    );
    assert_eq!(export_ok(&mut inst, &g), 1);
    assert_eq!(sub.messages(1, WAIT), want);
    assert!(inst.shutdown(2000).is_ok());

    // Mutual TLS: the listener requires a client certificate signed by the CA.
    let mtls_url = format!("mqtts://127.0.0.1:{}", broker.mtls_port);
    let mut sub = broker.subscribe("mtls/#", 1);
    let mut inst = start(
        &host,
        &config(
            &mtls_url,
            "mtls-ok",
            &format!(
                r#""topic": "mtls/{{name}}", "tls": {{"ca_file": {}, "client_cert": {}, "client_key": {}}}"#,
                json_path(&pki.ca),
                json_path(&pki.client_cert),
                json_path(&pki.client_key)
            ),
        ),
    );
    assert_eq!(export_ok(&mut inst, &g), 1);
    assert_eq!(
        sub.messages(1, WAIT),
        expected("mtls/{name}", Format::Json, &g)
    );
    assert!(inst.shutdown(2000).is_ok());

    // Without the client certificate the broker ends the handshake.
    let mut inst = common::create(
        &host,
        &config(
            &mtls_url,
            "mtls-bad",
            &format!(
                r#""topic": "mtls/x", "tls": {{"ca_file": {}}}"#,
                json_path(&pki.ca)
            ),
        ),
    )
    .unwrap();
    match inst.start() {
        RResult::RErr(e) => {
            eprintln!("no client certificate: {e}");
            assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
            assert!(e.message.contains("TLS"), "{e}");
            assert!(e.message.contains("CertificateRequired"), "{e}");
        }
        RResult::ROk(()) => panic!("connected without a client certificate"),
    }
    assert!(inst.shutdown(1000).is_ok());
    assert!(host.panics().is_empty());
}

#[test]
fn many_messages_through_a_small_inflight_window() {
    let Some(broker) = Broker::start("window", BrokerOptions::default()) else {
        return;
    };
    let host = TestHost::default();
    // 300 points: packet ids 1..=7 are reused again and again, and export has to
    // wait for acknowledgements before it can queue more.
    let b = Batch {
        metrics: (0..300)
            .map(|i| Metric::gauge("n", "1", T + i, i as f64, vec![]))
            .collect::<Vec<_>>()
            .into(),
        ..Batch::default()
    };
    for (qos, topic) in [(1, "w1"), (2, "w2")] {
        let mut sub = broker.subscribe(&format!("{topic}/#"), 300);
        let mut inst = start(
            &host,
            &config(
                &broker.url(),
                &format!("window-{qos}"),
                &format!(r#""topic": "{topic}/{{name}}", "qos": {qos}, "max_inflight": 7"#),
            ),
        );
        assert_eq!(export_ok(&mut inst, &b), 300);
        let want = expected(&format!("{topic}/{{name}}"), Format::Json, &b);
        assert_eq!(sorted(sub.messages(300, WAIT)), want);
        assert!(inst.shutdown(2000).is_ok());
    }
}

#[test]
fn an_unresponsive_broker_times_out_retryably() {
    let Some(broker) = Broker::start("paused", BrokerOptions::default()) else {
        return;
    };
    let host = TestHost::default();
    let mut inst = start(
        &host,
        &config(
            &broker.url(),
            "paused",
            r#""topic": "p/{name}", "publish_timeout": "1s""#,
        ),
    );
    let g = |v: f64| Batch {
        metrics: vec![Metric::gauge("p", "1", T, v, vec![])].into(),
        ..Batch::default()
    };
    broker.pause();
    match inst.export(&g(1.0)) {
        RResult::ROk(_) => panic!("export succeeded without an acknowledgement"),
        RResult::RErr(e) => {
            assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
            assert!(
                e.message
                    .contains("1 of 1 message(s) not acknowledged within 1s"),
                "{e}"
            );
        }
    }
    broker.resume();
    // The late acknowledgement of the first message does not confuse the next export.
    let mut sub = broker.subscribe("p/#", 1);
    assert_eq!(export_ok(&mut inst, &g(2.0)), 1);
    let got = sub.messages(1, WAIT);
    assert_eq!(got, expected("p/{name}", Format::Json, &g(2.0)));
    assert!(inst.shutdown(2000).is_ok());
}
