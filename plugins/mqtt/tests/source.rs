//! The source against a real mosquitto broker: JSON (default shapes and a field
//! mapping) and Influx line protocol payloads published with `mosquitto_pub` become
//! the right metrics on the fake host; malformed payloads are counted, logged at
//! debug level and never stop ingestion; `EmitStatus::Full` drops and counts; and a
//! sink instance's JSON messages are ingested back by a source instance unchanged.

mod common;

use std::time::Duration;

use common::{config, start, Broker, BrokerOptions, Point, PointsExt, TestHost};
use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, Batch, EmitStatus, HealthState, KeyValue, LogLevel,
    Metric, MetricKind,
};

const WAIT: Duration = Duration::from_secs(10);

fn p(name: &str, value: f64, time: Option<u64>, attrs: &[(&str, &str)], topic: &str) -> Point {
    Point {
        name: name.into(),
        value,
        time: time.unwrap_or(0),
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        topic: topic.into(),
    }
}

/// Points with the receive time zeroed where the payload carried none.
fn normalise(points: Vec<Point>, stamped: &[bool]) -> Vec<Point> {
    points
        .into_iter()
        .zip(stamped)
        .map(|(mut p, s)| {
            if !s {
                assert!(p.time > 1_600_000_000_000_000_000, "receive time: {p:?}");
                p.time = 0;
            }
            p
        })
        .collect()
}

#[test]
fn json_and_influx_payloads_become_metrics() {
    let Some(broker) = Broker::start("ingest", BrokerOptions::default()) else {
        return;
    };
    let host = TestHost::default();
    let subscribe = r#""subscribe": [
        {"topic": "sensors/+/mapped", "mapping": {"values": ["t", "h"], "name": "climate",
            "timestamp": "ts", "timestamp_unit": "s", "labels": {"device": "id"}}},
        {"topic": "sensors/+/influx", "format": "influx"},
        {"topic": "sensors/#"}
    ]"#;
    let mut inst = start(&host, &config(&broker.url(), "source-ingest", subscribe));
    host.wait_for_log("subscribed to 3 MQTT topic filter(s)", WAIT);

    broker.publish("sensors/kitchen/temp", "21.5", 1);
    broker.publish(
        "sensors/kitchen/env",
        r#"{"temp": 21, "air": {"co2": 415}}"#,
        1,
    );
    broker.publish(
        "sensors/hall/mapped",
        r#"{"t": 19.5, "h": "40", "ts": 1700000000, "id": "dev-7"}"#,
        1,
    );
    broker.publish(
        "sensors/hall/influx",
        "weather,location=hall\\ 2 temperature=18.5,humidity=55i 1700000000000000000\nweather,location=roof gauge=3",
        2,
    );

    let got = host.wait_for_points(8, WAIT);
    let t = Some(1_700_000_000_000_000_000);
    let want = vec![
        p(
            "sensors.kitchen.temp",
            21.5,
            None,
            &[],
            "sensors/kitchen/temp",
        ),
        p("air.co2", 415.0, None, &[], "sensors/kitchen/env"),
        p("temp", 21.0, None, &[], "sensors/kitchen/env"),
        p(
            "climate.t",
            19.5,
            t,
            &[("device", "dev-7")],
            "sensors/hall/mapped",
        ),
        p(
            "climate.h",
            40.0,
            t,
            &[("device", "dev-7")],
            "sensors/hall/mapped",
        ),
        p(
            "weather_temperature",
            18.5,
            t,
            &[("location", "hall 2")],
            "sensors/hall/influx",
        ),
        p(
            "weather_humidity",
            55.0,
            t,
            &[("location", "hall 2")],
            "sensors/hall/influx",
        ),
        p(
            "weather",
            3.0,
            None,
            &[("location", "roof")],
            "sensors/hall/influx",
        ),
    ];
    let stamped = [false, false, false, true, true, true, true, false];
    assert_eq!(normalise(got, &stamped), want);
    assert_eq!(inst.health().state, HealthState::Healthy);
    assert!(inst.shutdown(2000).is_ok());
    assert!(host.panics().is_empty());
}

#[test]
fn malformed_payloads_are_counted_and_ingestion_goes_on() {
    let Some(broker) = Broker::start("malformed", BrokerOptions::default()) else {
        return;
    };
    let host = TestHost::default();
    let subscribe = r#""subscribe": [
        {"topic": "in/influx", "format": "influx"},
        {"topic": "in/mapped", "mapping": {"values": ["v"]}},
        {"topic": "in/#"}
    ]"#;
    let mut inst = start(&host, &config(&broker.url(), "source-malformed", subscribe));
    host.wait_for_log("subscribed to 3", WAIT);

    broker.publish("in/json", "{\"unterminated", 1);
    broker.publish("in/json", "\"just text\"", 1);
    broker.publish("in/influx", "cpu value=", 1);
    broker.publish("in/influx", "no fields here", 1);
    broker.publish("in/mapped", r#"{"other": 1}"#, 1);
    broker.publish("in/json", &"[".repeat(10_000), 1);
    // Messages from one publisher on one topic arrive in order; this one comes last.
    broker.publish("in/json", "7", 1);

    let got = host.wait_for_points(1, WAIT);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].name.as_str(), got[0].value), ("in.json", 7.0));
    let health = inst.health();
    assert_eq!(health.state, HealthState::Healthy);
    assert!(
        health.reason.contains(
            "received 7 message(s): 1 point(s) emitted, 0 dropped (queue full), 6 malformed"
        ),
        "{health:?}"
    );
    let debug: Vec<String> = host
        .logs()
        .into_iter()
        .filter(|(l, m)| *l == LogLevel::Debug && m.contains("malformed payload dropped"))
        .map(|(_, m)| m)
        .collect();
    assert_eq!(debug.len(), 6, "{debug:#?}");
    assert!(
        debug.iter().any(|m| m.contains("invalid JSON")),
        "{debug:#?}"
    );
    assert!(
        debug
            .iter()
            .any(|m| m.contains("line 1: field \"value\": empty value")),
        "{debug:#?}"
    );
    assert!(
        debug.iter().any(|m| m.contains("none of the value fields")),
        "{debug:#?}"
    );
    assert!(inst.shutdown(2000).is_ok());
    assert!(host.panics().is_empty());
}

#[test]
fn a_full_host_queue_drops_and_counts() {
    let Some(broker) = Broker::start("full", BrokerOptions::default()) else {
        return;
    };
    let host = TestHost::default();
    let mut inst = start(
        &host,
        &config(
            &broker.url(),
            "source-full",
            r#""subscribe": [{"topic": "q/#"}]"#,
        ),
    );
    host.wait_for_log("subscribed to 1", WAIT);
    host.answer(&[EmitStatus::Full, EmitStatus::Full]);
    broker.publish("q/a", r#"{"x": 1, "y": 2}"#, 1);
    broker.publish("q/a", "3", 1);
    broker.publish("q/a", "4", 1);
    let got = host.wait_for_points(1, WAIT);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value, 4.0);
    let health = inst.health();
    assert!(
        health
            .reason
            .contains("received 3 message(s): 1 point(s) emitted, 3 dropped (queue full)"),
        "{health:?}"
    );
    assert!(host
        .logs()
        .iter()
        .any(|(l, m)| *l == LogLevel::Warn && m.contains("queue is full")));
    assert!(inst.shutdown(2000).is_ok());
}

#[test]
fn a_sinks_json_messages_are_ingested_back_unchanged() {
    let Some(broker) = Broker::start("chain", BrokerOptions::default()) else {
        return;
    };
    let receiver_host = TestHost::default();
    let mut receiver = start(
        &receiver_host,
        &config(
            &broker.url(),
            "chain-in",
            r#""subscribe": [{"topic": "chain/#"}]"#,
        ),
    );
    receiver_host.wait_for_log("subscribed to 1", WAIT);

    let sender_host = TestHost::default();
    let mut sender = start(
        &sender_host,
        &config(
            &broker.url(),
            "chain-out",
            r#""topic": "chain/{type}/{name}""#,
        ),
    );
    let mut counter = Metric::counter(
        "jobs.done",
        "{job}",
        10,
        20,
        0.0,
        vec![KeyValue::new("queue", "q1")],
    );
    counter.points[0].value = tfo_plugin_api::PointValue::Int(12);
    let batch = Batch {
        resource: tfo_plugin_api::Resource {
            attributes: vec![KeyValue::new("host.name", "edge-1")].into(),
        },
        metrics: vec![counter.clone()].into(),
        ..Batch::default()
    };
    match sender.export(&batch) {
        RResult::ROk(ok) => assert_eq!(ok.accepted, 1),
        RResult::RErr(e) => panic!("export: {e}"),
    }
    receiver_host.wait_for_points(1, WAIT);
    let got = receiver_host.batches();
    assert_eq!(got.len(), 1);
    // The same resource and metric (kind, temporality, monotonic flag, unit,
    // timestamps, integer value, attributes), plus the topic attribute.
    assert_eq!(got[0].resource, batch.resource);
    let mut want = counter;
    want.points[0]
        .attributes
        .push(KeyValue::new("mqtt.topic", "chain/metrics/jobs.done"));
    assert_eq!(got[0].metrics[0], want);
    assert_eq!(got[0].metrics[0].kind, MetricKind::Sum);
    assert!(sender.shutdown(2000).is_ok());
    assert!(receiver.shutdown(2000).is_ok());
}
