//! The plugin through its exported entry point, without a broker: descriptor,
//! config errors with their field paths, and what an instance does when its broker
//! is unreachable (start succeeds, export fails fast and retryably, health says why,
//! shutdown is prompt).

mod common;

use std::time::{Duration, Instant};

use common::{create, free_port, TestHost};
use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, Batch, DataTypes, ErrorKind, HealthState, Metric,
    PluginKind,
};

fn gauge() -> Batch {
    Batch {
        metrics: vec![Metric::gauge("g", "1", 1, 1.0, vec![])].into(),
        ..Batch::default()
    }
}

#[test]
fn descriptor_describes_a_source_and_sink_for_all_data() {
    let d = (common::module().descriptor())();
    assert_eq!(d.name.as_str(), "mqtt");
    assert_eq!(d.version.as_str(), env!("CARGO_PKG_VERSION"));
    assert_eq!(d.kind, PluginKind::SourceAndSink);
    assert_eq!(d.data_types, DataTypes::ALL);
    assert_eq!(
        d.plugin_api_version.as_str(),
        tfo_plugin_api::PLUGIN_API_VERSION
    );
}

#[test]
fn config_errors_carry_their_field_paths() {
    let host = TestHost::default();
    let cases = [
        (
            r#"{"broker": "tcp://b", "qos_level": 1}"#,
            vec!["qos_level"],
            "unknown field `qos_level`",
        ),
        (r#"{}"#, vec![""], "missing field `broker`"),
        (
            r#"{"broker": "b:1883"}"#,
            vec!["broker"],
            "not a broker URL",
        ),
        (
            r#"{"broker": "tcp://b", "qos": 3}"#,
            vec!["qos"],
            "not a QoS level",
        ),
        (
            r#"{"broker": "tcp://b", "format": "xml"}"#,
            vec!["format"],
            "unknown variant `xml`",
        ),
        (
            r#"{"broker": "tcp://b", "keep_alive": "forever"}"#,
            vec!["keep_alive"],
            "invalid duration",
        ),
        (
            r#"{"broker": "tcp://b", "subscribe": [{"topic": "ok"}, {"topic": "a/#/b"}]}"#,
            vec!["subscribe[1].topic"],
            "'#' must be the whole last level",
        ),
        (
            r#"{"broker": "tcp://b", "subscribe": [{"topic": "a", "mapping": {"values": ["v"], "colour": 1}}]}"#,
            vec!["subscribe[0].mapping.colour"],
            "unknown field `colour`",
        ),
        (
            r#"{"broker": "mqtts://b", "tls": {"ca_file": "/nonexistent/ca.pem"}}"#,
            vec!["tls.ca_file"],
            "/nonexistent/ca.pem",
        ),
        (
            r#"{"broker": "tcp://b", "topic": "x/{nope}", "password": "p"}"#,
            vec!["password", "topic"],
            "",
        ),
    ];
    for (cfg, paths, needle) in cases {
        match create(&host, cfg) {
            Ok(_) => panic!("{cfg} should be refused"),
            Err(e) => {
                let got: Vec<&str> = e.config_errors.iter().map(|c| c.path.as_str()).collect();
                assert_eq!(got, paths, "{cfg}: {e:?}");
                assert!(
                    e.config_errors.iter().any(|c| c.message.contains(needle)),
                    "{cfg}: {e:?}"
                );
            }
        }
    }
    assert!(host.panics().is_empty());
}

#[test]
fn an_unreachable_broker_is_retryable_not_fatal() {
    let host = TestHost::default();
    let port = free_port(); // nothing listens there
    let cfg = common::config(&format!("tcp://127.0.0.1:{port}"), "nobody-home", "");
    let mut inst = create(&host, &cfg).unwrap();
    assert_eq!(inst.health().state, HealthState::Initializing);
    assert!(inst.start().is_ok());
    let health = inst.health();
    assert_eq!(health.state, HealthState::Unhealthy);
    assert!(health.reason.contains("Connection refused"), "{health:?}");
    let t0 = Instant::now();
    match inst.export(&gauge()) {
        RResult::ROk(_) => panic!("export without a broker succeeded"),
        RResult::RErr(e) => {
            assert_eq!(e.kind, ErrorKind::Retryable, "{e}");
            assert!(e.message.contains(&format!("127.0.0.1:{port}")), "{e}");
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(1));
    // An empty batch sends nothing and succeeds.
    match inst.export(&Batch::default()) {
        RResult::ROk(ok) => assert_eq!(ok.accepted, 0),
        RResult::RErr(e) => panic!("{e}"),
    }
    let t0 = Instant::now();
    assert!(inst.shutdown(2000).is_ok());
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(host.panics().is_empty());
}

#[test]
fn a_subscribe_only_instance_publishes_nothing() {
    let host = TestHost::default();
    let port = free_port();
    let cfg = common::config(
        &format!("tcp://127.0.0.1:{port}"),
        "source-only",
        r#""subscribe": [{"topic": "a/#"}]"#,
    );
    let mut inst = create(&host, &cfg).unwrap();
    assert!(inst.start().is_ok());
    // Accepted 0, even with the broker down: nothing is sent, nothing to retry.
    match inst.export(&gauge()) {
        RResult::ROk(ok) => assert_eq!(ok.accepted, 0),
        RResult::RErr(e) => panic!("{e}"),
    }
    match inst.preview(&gauge()) {
        RResult::ROk(t) => assert!(t.contains("publishes nothing"), "{t}"),
        RResult::RErr(e) => panic!("{e}"),
    }
    assert!(inst.shutdown(2000).is_ok());
}

#[test]
fn create_then_shutdown_without_start() {
    // What `tfo-agent validate` does: nothing connects, nothing is left running.
    let host = TestHost::default();
    let mut inst = create(&host, r#"{"broker": "tcp://127.0.0.1:1"}"#).unwrap();
    assert!(inst.shutdown(1000).is_ok());
    assert!(host.panics().is_empty());
}

#[test]
fn a_self_feeding_configuration_is_warned_about() {
    let host = TestHost::default();
    let cfg = r#"{"broker": "tcp://127.0.0.1:1", "topic": "t/{type}/{name}",
                  "subscribe": [{"topic": "other/#"}, {"topic": "t/metrics/#"}]}"#;
    let mut inst = create(&host, cfg).unwrap();
    let warnings: Vec<String> = host
        .logs()
        .into_iter()
        .filter(|(l, _)| *l == tfo_plugin_api::LogLevel::Warn)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("subscribe[1].topic"), "{warnings:?}");
    assert!(warnings[0].contains("routes"), "{warnings:?}");
    assert!(inst.shutdown(1000).is_ok());
}
