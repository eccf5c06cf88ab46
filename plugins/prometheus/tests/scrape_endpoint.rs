//! The scrape endpoint driven through the plugin's exported entry point: content
//! negotiation, both formats byte for byte, Prometheus' own parser (`promtool
//! check metrics`) on the served text, SO_REUSEPORT for make-before-break upgrades,
//! shutdown closing the port, config errors with paths.

mod support;

use std::{io::Write as _, process::Stdio, time::Duration};

use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, DataTypes, HealthState, KeyValue, PluginKind,
    PointValue, Temporality,
};

use support::*;

const START: u64 = 1_700_000_000_000_000_000;

fn sample_batch() -> tfo_plugin_api::Batch {
    let t = START + 5_000_000_000;
    batch(vec![
        gauge(
            "tfo.test.temperature",
            "Room temperature.",
            "Cel",
            21.5,
            t,
            vec![KeyValue::new("room", "lab \"A\"")],
        ),
        counter(
            "tfo.test.requests",
            "Requests served.",
            Temporality::Cumulative,
            START,
            t,
            PointValue::Int(7),
        ),
        histogram(
            "tfo.test.latency",
            "Request latency.",
            [1, 2, 3, 4],
            6.5,
            START,
            t,
        ),
    ])
}

#[test]
fn descriptor_describes_a_metrics_sink() {
    let d = (module().descriptor())();
    assert_eq!(d.name.as_str(), "prometheus");
    assert_eq!(d.kind, PluginKind::Sink);
    assert_eq!(d.data_types, DataTypes::METRICS);
    assert_eq!(d.version.as_str(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn serves_both_formats_with_negotiation() {
    let h = TestHost::default();
    let mut inst = started(&h, r#"{"listen": "127.0.0.1:0", "path": "/prom"}"#);
    let url = scrape_url(&h);
    assert!(url.ends_with("/prom"), "{url}");

    // Nothing exported yet: an empty but valid exposition.
    let r = get(&url, &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());

    match inst.export(&sample_batch()) {
        RResult::ROk(ok) => assert_eq!(ok.accepted, 3),
        RResult::RErr(e) => panic!("export: {e}"),
    }

    let r = get(&url, &[]);
    assert_eq!(
        r.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let expected_text = r#"# HELP tfo_test_latency_seconds Request latency.
# TYPE tfo_test_latency_seconds histogram
tfo_test_latency_seconds_bucket{instance="i-1",job="tfo-test",le="0.1"} 1
tfo_test_latency_seconds_bucket{instance="i-1",job="tfo-test",le="0.5"} 3
tfo_test_latency_seconds_bucket{instance="i-1",job="tfo-test",le="1.0"} 6
tfo_test_latency_seconds_bucket{instance="i-1",job="tfo-test",le="+Inf"} 10
tfo_test_latency_seconds_sum{instance="i-1",job="tfo-test"} 6.5
tfo_test_latency_seconds_count{instance="i-1",job="tfo-test"} 10
# HELP tfo_test_requests_total Requests served.
# TYPE tfo_test_requests_total counter
tfo_test_requests_total{instance="i-1",job="tfo-test"} 7
# HELP tfo_test_temperature_celsius Room temperature.
# TYPE tfo_test_temperature_celsius gauge
tfo_test_temperature_celsius{instance="i-1",job="tfo-test",room="lab \"A\""} 21.5
"#;
    assert_eq!(r.text(), expected_text);

    // What Prometheus 2.x sends.
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let r = get(&url, &[("Accept", accept)]);
    assert_eq!(
        r.headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let expected_om = r#"# TYPE tfo_test_latency_seconds histogram
# UNIT tfo_test_latency_seconds seconds
# HELP tfo_test_latency_seconds Request latency.
tfo_test_latency_seconds_bucket{instance="i-1",job="tfo-test",le="0.1"} 1
tfo_test_latency_seconds_bucket{instance="i-1",job="tfo-test",le="0.5"} 3
tfo_test_latency_seconds_bucket{instance="i-1",job="tfo-test",le="1.0"} 6
tfo_test_latency_seconds_bucket{instance="i-1",job="tfo-test",le="+Inf"} 10
tfo_test_latency_seconds_sum{instance="i-1",job="tfo-test"} 6.5
tfo_test_latency_seconds_count{instance="i-1",job="tfo-test"} 10
tfo_test_latency_seconds_created{instance="i-1",job="tfo-test"} 1700000000.000
# TYPE tfo_test_requests counter
# HELP tfo_test_requests Requests served.
tfo_test_requests_total{instance="i-1",job="tfo-test"} 7
tfo_test_requests_created{instance="i-1",job="tfo-test"} 1700000000.000
# TYPE tfo_test_temperature_celsius gauge
# UNIT tfo_test_temperature_celsius celsius
# HELP tfo_test_temperature_celsius Room temperature.
tfo_test_temperature_celsius{instance="i-1",job="tfo-test",room="lab \"A\""} 21.5
# EOF
"#;
    assert_eq!(r.text(), expected_om);

    // gzip when asked (Prometheus asks).
    let r = get(&url, &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.headers["content-encoding"], "gzip");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut text)
        .unwrap();
    assert_eq!(text, expected_text);

    // Other paths and methods.
    assert_eq!(get(&url.replace("/prom", "/metrics"), &[]).status, 404);

    assert_eq!(inst.health().state, HealthState::Healthy);
    assert!(inst.shutdown(2000).is_ok());
}

#[test]
fn promtool_accepts_the_served_text() {
    let Some(promtool) = require_program("promtool", "the promtool exposition check") else {
        return;
    };
    let h = TestHost::default();
    let mut inst = started(&h, r#"{"listen": "127.0.0.1:0"}"#);
    let mut b = sample_batch();
    // Resource attributes beyond service.* produce target_info.
    b.resource.attributes.push(KeyValue::new("host.name", "h1"));
    assert!(matches!(inst.export(&b), RResult::ROk(_)));
    let body = get(&scrape_url(&h), &[]).text();
    assert!(body.contains("target_info{host_name=\"h1\""), "{body}");

    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\non:\n{body}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A broken exposition must fail, or the check above proves nothing.
    let mut child = std::process::Command::new(require_program("promtool", "").unwrap())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"# TYPE x counter\nx{a=\"unterminated} 1\n")
        .unwrap();
    assert!(!child.wait().unwrap().success());
    assert!(inst.shutdown(2000).is_ok());
}

#[test]
fn a_second_instance_binds_the_same_port_for_upgrades() {
    let h1 = TestHost::default();
    let mut old = started(&h1, r#"{"listen": "127.0.0.1:0"}"#);
    let url = scrape_url(&h1);
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string();
    // The new instance starts while the old one still listens (SO_REUSEPORT).
    let h2 = TestHost::default();
    let mut new = started(&h2, &format!(r#"{{"listen": "{addr}"}}"#));
    assert_eq!(scrape_url(&h2), url);
    assert!(old.shutdown(2000).is_ok());
    // The new one serves alone now.
    let b = batch(vec![gauge("g", "G.", "", 1.0, START, vec![])]);
    assert!(matches!(new.export(&b), RResult::ROk(_)));
    for _ in 0..5 {
        assert!(get(&url, &[])
            .text()
            .contains("g{instance=\"i-1\",job=\"tfo-test\"} 1"));
    }
    assert!(new.shutdown(2000).is_ok());
}

#[test]
fn shutdown_closes_the_port() {
    let h = TestHost::default();
    let mut inst = started(&h, r#"{"listen": "127.0.0.1:0"}"#);
    let url = scrape_url(&h);
    assert_eq!(get(&url, &[]).status, 200);
    assert!(inst.shutdown(2000).is_ok());
    drop(inst);
    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .parse()
        .unwrap();
    let refused = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(refused.is_err(), "the endpoint still accepts connections");
}

#[test]
fn delta_counters_accumulate_on_the_endpoint() {
    let h = TestHost::default();
    let mut inst = started(&h, r#"{"listen": "127.0.0.1:0"}"#);
    for (i, v) in [3i64, 4, 5].into_iter().enumerate() {
        let t = START + i as u64 * 1_000_000_000;
        let b = batch(vec![counter(
            "jobs.done",
            "Jobs.",
            Temporality::Delta,
            t,
            t + 1_000_000_000,
            PointValue::Int(v),
        )]);
        assert!(matches!(inst.export(&b), RResult::ROk(_)));
    }
    let text = get(&scrape_url(&h), &[]).text();
    assert!(
        text.contains("jobs_done_total{instance=\"i-1\",job=\"tfo-test\"} 12\n"),
        "{text}"
    );
    assert!(inst.shutdown(2000).is_ok());
}

#[test]
fn a_port_in_use_fails_start_with_the_address() {
    // A listener without SO_REUSEPORT blocks the port for everyone.
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = blocker.local_addr().unwrap();
    let h = TestHost::default();
    let mut inst = match create(&h, &format!(r#"{{"listen": "{addr}"}}"#)) {
        RResult::ROk(i) => i,
        RResult::RErr(e) => panic!("create: {e:?}"),
    };
    match inst.start() {
        RResult::RErr(e) => assert!(e.message.contains(&addr.to_string()), "{e}"),
        RResult::ROk(()) => panic!("start should fail while {addr} is taken"),
    }
    assert!(inst.shutdown(1000).is_ok());
}

#[test]
fn config_errors_carry_paths() {
    let cases = [
        (r#"{"listen": "nope"}"#, vec!["listen"]),
        (r#"{"listen": ""}"#, vec!["listen"]),
        (
            r#"{"path": "metrics", "expire_after": 0}"#,
            vec!["path", "expire_after"],
        ),
        (r#"{"namespace": "a-b"}"#, vec!["namespace"]),
        (
            r#"{"remote_write": {"url": "localhost:9090"}}"#,
            vec!["remote_write.url"],
        ),
        (r#"{"unknown": 1}"#, vec!["unknown"]),
        (
            r#"{"remote_write": {"url": "http://h/", "timeout": "soon"}}"#,
            vec!["remote_write.timeout"],
        ),
    ];
    for (config, want) in cases {
        match create(&TestHost::default(), config) {
            RResult::ROk(_) => panic!("{config} should be refused"),
            RResult::RErr(e) => {
                let paths: Vec<&str> = e.config_errors.iter().map(|c| c.path.as_str()).collect();
                assert_eq!(paths, want, "{config}: {e:?}");
            }
        }
    }
}

#[test]
fn create_binds_nothing() {
    // `tfo-agent validate` runs create then shutdown: the port must stay free.
    let port = free_port();
    let h = TestHost::default();
    let mut inst = match create(&h, &format!(r#"{{"listen": "127.0.0.1:{port}"}}"#)) {
        RResult::ROk(i) => i,
        RResult::RErr(e) => panic!("create: {e:?}"),
    };
    let probe = std::net::TcpListener::bind(("127.0.0.1", port));
    assert!(probe.is_ok(), "create bound the port");
    drop(probe);
    assert!(inst.shutdown(1000).is_ok());
}
