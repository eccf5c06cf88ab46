//! Against Debian's real VictoriaMetrics (`victoria-metrics`, package
//! `victoria-metrics`), which accepts InfluxDB line protocol on both `/write` (1.x)
//! and `/api/v2/write` (2.x). The test starts its own server on a free loopback port
//! with a temp data dir, writes through the plugin's `export` with each API version
//! (gzip bodies, millisecond and nanosecond precision), and reads the series back
//! with `/api/v1/export`: names (`<measurement>_<field>`), labels including tag
//! values with spaces, commas, equals signs, quotes and backslashes, values and
//! millisecond timestamps. VictoriaMetrics stores numbers only, so string fields
//! (log messages) are not checked here.
//!
//! Without `victoria-metrics` in PATH the test prints why it skips, unless
//! `TFO_REQUIRE_SERVICES=1` (CI), where it fails.

mod support;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tfo_plugin_api::{__private::abi_stable::std_types::RResult, KeyValue, PointValue};

use support::*;

/// `(labels, values, timestamps)` of each exported series, by metric name.
fn by_name(series: &[Value]) -> BTreeMap<String, (BTreeMap<String, String>, Value, Value)> {
    series
        .iter()
        .map(|s| {
            let labels: BTreeMap<String, String> = s["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            (
                labels["__name__"].clone(),
                (labels, s["values"].clone(), s["timestamps"].clone()),
            )
        })
        .collect()
}

#[test]
fn victoria_metrics_reads_back_both_apis() {
    let Some(bin) = require_program(
        "victoria-metrics",
        "victoria-metrics",
        "the VictoriaMetrics round trip",
    ) else {
        return;
    };
    let server = Server::victoria_metrics(&bin);
    let h = TestHost::default();
    let t = now_ns() - 30_000_000_000 + 987_654_321;
    let t_ms = (t / 1_000_000) as i64;

    // 1.x API, millisecond precision: the `db` query parameter becomes a `db` label.
    let mut v1 = started(
        &h,
        &format!(
            r#"{{"url": "{}", "version": 1, "database": "tfo", "precision": "ms"}}"#,
            server.url
        ),
    );
    let b = batch(vec![
        gauge(
            "v1.room",
            PointValue::Double(21.5),
            t,
            vec![
                KeyValue::new("room", TRICKY),
                KeyValue::new("k ey=", r"x\ y"),
            ],
        ),
        gauge("v1.jobs", PointValue::Int(42), t, vec![]),
        gauge("v1.nan", PointValue::Double(f64::NAN), t, vec![]),
        histogram("v1.rpc", [1, 2, 3, 4], 6.5, t),
    ]);
    match v1.export(&b) {
        RResult::ROk(ok) => assert_eq!(ok.accepted, 3),
        RResult::RErr(e) => panic!("export failed: {e}\nlog:\n{}", server.log()),
    }

    // 2.x API, nanosecond precision, a token (VictoriaMetrics ignores it).
    let mut v2 = started(
        &h,
        &format!(
            r#"{{"url": "{}", "version": 2, "organization": "o", "bucket": "b", "token": "t"}}"#,
            server.url
        ),
    );
    let b = batch(vec![gauge(
        "v2.room",
        PointValue::Double(-0.125),
        t,
        vec![KeyValue::new("room", TRICKY)],
    )]);
    match v2.export(&b) {
        RResult::ROk(ok) => assert_eq!(ok.accepted, 1),
        RResult::RErr(e) => panic!("export failed: {e}\nlog:\n{}", server.log()),
    }

    // v1.room_value, v1.jobs_value, v1.rpc_{count,sum,0.1,0.5,1,+Inf}, v2.room_value.
    let got = by_name(&server.vm_export(r#"{__name__=~"v[12][.].*"}"#, 9));
    let names: Vec<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "v1.jobs_value",
            "v1.room_value",
            "v1.rpc_+Inf",
            "v1.rpc_0.1",
            "v1.rpc_0.5",
            "v1.rpc_1",
            "v1.rpc_count",
            "v1.rpc_sum",
            "v2.room_value"
        ],
        "log:\n{}",
        server.log()
    );
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };

    let (l, values, ts) = &got["v1.room_value"];
    assert_eq!(
        *l,
        labels(&[
            ("__name__", "v1.room_value"),
            ("db", "tfo"),
            ("host.name", "h 1"),
            ("service.name", "tfo-test"),
            ("room", TRICKY),
            // VictoriaMetrics reads the doubled backslash back as one: exact.
            ("k ey=", r"x\ y"),
        ])
    );
    assert_eq!(*values, json!([21.5]));
    assert_eq!(*ts, json!([t_ms]));

    assert_eq!(got["v1.jobs_value"].1, json!([42]));
    for (name, want) in [
        ("v1.rpc_count", json!([10])),
        ("v1.rpc_sum", json!([6.5])),
        ("v1.rpc_0.1", json!([1])),
        ("v1.rpc_0.5", json!([3])),
        ("v1.rpc_1", json!([6])),
        ("v1.rpc_+Inf", json!([10])),
    ] {
        assert_eq!(got[name].1, want, "{name}");
        assert_eq!(got[name].2, json!([t_ms]), "{name}");
    }

    let (l, values, ts) = &got["v2.room_value"];
    assert_eq!(l["room"], TRICKY);
    assert!(!l.contains_key("db"), "{l:?}");
    assert_eq!(*values, json!([-0.125]));
    assert_eq!(*ts, json!([t_ms]));
    assert!(v1.shutdown(2000).is_ok());
    assert!(v2.shutdown(2000).is_ok());
}
