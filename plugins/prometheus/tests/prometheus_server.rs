//! Against Debian's real `prometheus` binary (package `prometheus`), started by the
//! test on free loopback ports with its own data directory and config:
//! 1. prometheus scrapes the plugin's endpoint every second (asking for
//!    OpenMetrics, as Prometheus does) and the query API returns the gauge, the
//!    counter and a histogram bucket, then the updated gauge;
//! 2. with `--web.enable-remote-write-receiver`, the plugin's remote-write requests
//!    are accepted and the query API returns the written values; an out-of-order
//!    sample is refused with 400, which the plugin reports as permanent.
//!
//! Without `prometheus` in PATH the tests print why they skip, unless
//! `TFO_REQUIRE_SERVICES=1` (CI), where they fail.

mod support;

use std::time::Duration;

use tfo_plugin_api::{
    __private::abi_stable::std_types::RResult, ErrorKind, KeyValue, PointValue, Temporality,
};

use support::*;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn prometheus_scrapes_the_endpoint() {
    let Some(bin) = require_program("prometheus", "the real-Prometheus scrape test") else {
        return;
    };
    let h = TestHost::default();
    let mut inst = started(&h, r#"{"listen": "127.0.0.1:0", "namespace": "tfo"}"#);
    let url = scrape_url(&h);
    let target = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_string();
    let t = now_ns();
    let mut b = batch(vec![
        gauge(
            "room.temperature",
            "Room temperature.",
            "Cel",
            21.5,
            t,
            vec![KeyValue::new("room", "lab")],
        ),
        counter(
            "jobs.done",
            "Jobs done.",
            Temporality::Cumulative,
            t - 60_000_000_000,
            t,
            PointValue::Int(42),
        ),
        histogram(
            "rpc.duration",
            "RPC latency.",
            [1, 2, 3, 4],
            6.5,
            t - 60_000_000_000,
            t,
        ),
    ]);
    // Another resource attribute: a `target_info` (an OpenMetrics info family).
    b.resource.attributes.push(KeyValue::new("host.name", "h1"));
    assert!(matches!(inst.export(&b), RResult::ROk(_)));

    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: tfo\n    static_configs:\n      - targets: ['{target}']\n"
    );
    let prom = Prometheus::start(&bin, &config, &[]);

    prom.wait_for_value(r#"up{job="tfo"}"#, 1.0, WAIT);
    prom.wait_for_value(r#"tfo_room_temperature_celsius{room="lab"}"#, 21.5, WAIT);
    prom.wait_for_value("tfo_jobs_done_total", 42.0, WAIT);
    prom.wait_for_value(r#"tfo_rpc_duration_seconds_bucket{le="0.5"}"#, 3.0, WAIT);
    prom.wait_for_value(r#"tfo_rpc_duration_seconds_bucket{le="+Inf"}"#, 10.0, WAIT);
    prom.wait_for_value("tfo_rpc_duration_seconds_sum", 6.5, WAIT);
    prom.wait_for_value("tfo_rpc_duration_seconds_count", 10.0, WAIT);
    // `_created` only exists in OpenMetrics: prometheus negotiated and parsed it.
    let created = prom.query("tfo_jobs_done_created");
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(
        created[0].1,
        ((t - 60_000_000_000) / 1_000_000) as f64 / 1000.0
    );
    // The series carry the resource's job/instance (renamed by prometheus, which
    // sets its own job and instance on scraped series).
    let series = prom.query("tfo_jobs_done_total");
    assert_eq!(
        series[0].0.get("exported_job").map(String::as_str),
        Some("tfo-test")
    );
    assert_eq!(
        series[0].0.get("exported_instance").map(String::as_str),
        Some("i-1")
    );

    let info = prom.query("target_info");
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].0.get("host_name").map(String::as_str), Some("h1"));
    assert_eq!(info[0].1, 1.0);

    // A new value replaces the old one on the endpoint.
    let b = batch(vec![gauge(
        "room.temperature",
        "Room temperature.",
        "Cel",
        23.0,
        now_ns(),
        vec![KeyValue::new("room", "lab")],
    )]);
    assert!(matches!(inst.export(&b), RResult::ROk(_)));
    prom.wait_for_value(r#"tfo_room_temperature_celsius{room="lab"}"#, 23.0, WAIT);
    assert!(inst.shutdown(2000).is_ok());
}

#[test]
fn prometheus_receives_remote_write() {
    let Some(bin) = require_program("prometheus", "the real-Prometheus remote-write test") else {
        return;
    };
    let prom = Prometheus::start(
        &bin,
        "global:\n  scrape_interval: 1m\n",
        &["--web.enable-remote-write-receiver"],
    );
    let h = TestHost::default();
    let mut inst = started(
        &h,
        &format!(
            r#"{{"listen": "", "remote_write": {{"url": "{}/api/v1/write"}}}}"#,
            prom.url
        ),
    );
    // In the past, so that both delta points are before the query's evaluation time.
    let t = now_ns() - 5_000_000_000;
    let b = batch(vec![
        gauge(
            "room.temperature",
            "Room temperature.",
            "Cel",
            21.5,
            t,
            vec![KeyValue::new("room", "lab")],
        ),
        counter(
            "jobs.done",
            "Jobs done.",
            Temporality::Cumulative,
            t - 60_000_000_000,
            t,
            PointValue::Int(42),
        ),
        histogram(
            "rpc.duration",
            "RPC latency.",
            [1, 2, 3, 4],
            6.5,
            t - 60_000_000_000,
            t,
        ),
        counter(
            "events.seen",
            "Events.",
            Temporality::Delta,
            t - 1_000_000_000,
            t,
            PointValue::Int(3),
        ),
    ]);
    if let RResult::RErr(e) = inst.export(&b) {
        panic!("remote write refused: {e}\nprometheus log:\n{}", prom.log());
    }
    // A second delta accumulates into the cumulative counter.
    let t2 = t + 1_000_000_000;
    let b2 = batch(vec![counter(
        "events.seen",
        "Events.",
        Temporality::Delta,
        t,
        t2,
        PointValue::Int(4),
    )]);
    assert!(matches!(inst.export(&b2), RResult::ROk(_)));

    // A 2xx means the samples are in the head block: no waiting needed.
    let one = |expr: &str| -> f64 {
        let r = prom.query(expr);
        assert_eq!(r.len(), 1, "{expr}: {r:?}");
        r[0].1
    };
    assert_eq!(
        one(r#"room_temperature_celsius{room="lab",job="tfo-test",instance="i-1"}"#),
        21.5
    );
    assert_eq!(one("jobs_done_total"), 42.0);
    assert_eq!(one(r#"rpc_duration_seconds_bucket{le="0.5"}"#), 3.0);
    assert_eq!(one(r#"rpc_duration_seconds_bucket{le="+Inf"}"#), 10.0);
    assert_eq!(one("rpc_duration_seconds_sum"), 6.5);
    assert_eq!(one("rpc_duration_seconds_count"), 10.0);
    assert_eq!(one("events_seen_total"), 7.0);

    // An older sample for an existing series is refused with 400: permanent.
    let old = batch(vec![gauge(
        "room.temperature",
        "Room temperature.",
        "Cel",
        1.0,
        t - 600_000_000_000,
        vec![KeyValue::new("room", "lab")],
    )]);
    match inst.export(&old) {
        RResult::RErr(e) => {
            assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
            assert!(e.message.contains("400"), "{e}");
        }
        RResult::ROk(_) => panic!("an out-of-order sample was accepted"),
    }
    assert!(inst.shutdown(2000).is_ok());
}
