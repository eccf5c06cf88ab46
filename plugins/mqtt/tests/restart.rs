//! Broker restarts, with mosquitto's persistence on (sessions and queued messages
//! saved to disk on SIGTERM):
//! - QoS 1 messages published while the agent is away are queued by the broker for
//!   the agent's persistent session (`clean_session: false`, a stable `client_id`),
//!   survive a broker restart, and are delivered once the agent is back, exactly
//!   once; the session (and its subscription) also survives a broker restart under
//!   a connected agent;
//! - while the broker is down, the sink's `export` fails quickly with a retryable
//!   error (the host keeps the batch), and succeeds once the broker is back.

mod common;

use std::time::{Duration, Instant};

use common::{config, start, Broker, BrokerOptions, PointsExt, TestHost};
use tfo_mqtt::{
    config::{Format, TopicTemplate},
    encode,
};
use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, Batch, ErrorKind, HealthState, Metric,
    PluginInstanceBox,
};

const WAIT: Duration = Duration::from_secs(10);

fn values(host: &TestHost) -> Vec<f64> {
    host.points().iter().map(|p| p.value).collect()
}

/// Exports until the broker accepts; every failure on the way must be retryable
/// (as the host's retry loop would see it). Returns the failures seen.
fn export_until_ok(inst: &mut PluginInstanceBox, b: &Batch) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut failures = Vec::new();
    loop {
        match inst.export(b) {
            RResult::ROk(ok) => {
                assert_eq!(ok.accepted, b.item_count());
                return failures;
            }
            RResult::RErr(e) => {
                assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
                failures.push(e.message.to_string());
                assert!(
                    Instant::now() < deadline,
                    "export never succeeded: {failures:?}"
                );
                // The host's retry back-off, shortened.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

#[test]
fn qos1_messages_survive_broker_restarts_and_the_sink_retries() {
    let Some(mut broker) = Broker::start(
        "restart",
        BrokerOptions {
            persistence: true,
            ..BrokerOptions::default()
        },
    ) else {
        return;
    };
    let cfg = config(
        &broker.url(),
        "restart-agent",
        r#""topic": "out/{type}/{name}", "subscribe": [{"topic": "sensors/#", "qos": 1}]"#,
    );
    let gauge = |v: f64| Batch {
        metrics: vec![Metric::gauge(
            "level",
            "1",
            1_700_000_000_000_000_000,
            v,
            vec![],
        )]
        .into(),
        ..Batch::default()
    };

    // 1. The agent runs and ingests.
    let host1 = TestHost::default();
    let mut first = start(&host1, &cfg);
    host1.wait_for_log("subscribed to 1", WAIT);
    broker.publish("sensors/tank", "1", 1);
    host1.wait_for_points(1, WAIT);
    assert_eq!(values(&host1), [1.0]);

    // 2. The agent goes away (clean DISCONNECT: the broker keeps the session) and
    //    messages are published meanwhile; then the broker restarts.
    assert!(first.shutdown(2000).is_ok());
    drop(first);
    broker.publish("sensors/tank", "2", 1);
    broker.publish("sensors/tank", "3", 1);
    broker.stop();

    // 3. The agent comes back while the broker is down: start succeeds (the loop
    //    keeps trying), health says why it is not connected, export fails at once
    //    with a retryable error.
    let host2 = TestHost::default();
    let mut second = start(&host2, &cfg);
    let health = second.health();
    assert_eq!(health.state, HealthState::Unhealthy, "{health:?}");
    assert!(health.reason.contains("Connection refused"), "{health:?}");
    let t0 = Instant::now();
    match second.export(&gauge(10.0)) {
        RResult::ROk(_) => panic!("export succeeded with the broker down"),
        RResult::RErr(e) => {
            assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
            assert!(e.message.contains("not connected"), "{e}");
            assert!(e.message.contains(&broker.url()), "{e}");
        }
    }
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "a down broker must fail fast"
    );

    // 4. The broker is back with its saved state: the queued messages reach the
    //    agent, exactly once, and exports succeed again.
    let mark = host2.log_count();
    broker.spawn();
    host2.wait_for_log_after(mark, "connected to MQTT broker", WAIT);
    host2.wait_for_points(2, WAIT);
    assert_eq!(values(&host2), [2.0, 3.0]);
    let mut sub = broker.subscribe("out/#", 1);
    export_until_ok(&mut second, &gauge(10.0));
    let want: Vec<(String, String)> = encode::encode_batch(
        &gauge(10.0),
        &TopicTemplate::parse("out/{type}/{name}").unwrap(),
        Format::Json,
    )
    .messages
    .into_iter()
    .map(|m| (m.topic, String::from_utf8(m.payload).unwrap()))
    .collect();
    assert_eq!(sub.messages(1, WAIT), want);
    drop(sub);

    // 5. Mid-stream: the broker restarts under a connected agent. Exports fail
    //    (retryable) while it is down and succeed once it is back; a message
    //    published right after the restart is delivered whether the agent has
    //    reconnected by then (live) or not yet (queued for its kept session).
    let mark = host2.log_count();
    broker.stop();
    host2.wait_for_log_after(mark, "connection lost", WAIT);
    match second.export(&gauge(11.0)) {
        RResult::ROk(_) => panic!("export succeeded with the broker down"),
        RResult::RErr(e) => assert_eq!(e.kind, ErrorKind::Retryable, "{e}"),
    }
    broker.spawn();
    broker.publish("sensors/tank", "4", 1);
    let mut sub = broker.subscribe("out/#", 1);
    let failures = export_until_ok(&mut second, &gauge(11.0));
    eprintln!("retryable export failures while reconnecting: {failures:?}");
    assert_eq!(sub.messages(1, WAIT).len(), 1);
    host2.wait_for_points(3, WAIT);
    assert_eq!(values(&host2), [2.0, 3.0, 4.0]);

    assert!(second.shutdown(2000).is_ok());
    assert!(host1.panics().is_empty() && host2.panics().is_empty());
}
