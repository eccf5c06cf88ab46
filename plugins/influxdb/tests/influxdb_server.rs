//! Against Debian's real InfluxDB 1.x (`influxd`, package `influxdb`, 1.6 on Debian
//! 12), started by the test with its own config on free loopback ports and a temp
//! data dir. Data is written through the plugin's exported `export` and read back
//! with InfluxQL (`/query?epoch=ns`):
//! 1. values (floats near the double range's ends, integers), tags and timestamps
//!    (microsecond precision, `precision=u`), a retention policy, a database name
//!    with a space, gzip bodies, a histogram, a log record, a span, and the escaping
//!    of measurements, tag keys and values and string fields holding spaces, commas,
//!    equals signs, quotes, backslashes and newlines; a NaN point is skipped;
//! 2. with authentication on: wrong credentials and a missing database are
//!    permanent errors saying so; a batch split into several requests arrives
//!    whole; a field type conflict (InfluxDB's "partial write" 400) refuses only the
//!    conflicting line, the rest is written, and nothing is retried;
//! 3. with a small `max-body-size`, InfluxDB answers 413 and the plugin splits the
//!    request until the halves fit: every line arrives.
//!
//! Without `influxd` in PATH the tests print why they skip, unless
//! `TFO_REQUIRE_SERVICES=1` (CI), where they fail.

mod support;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tfo_plugin_api::{
    ErrorKind, KeyValue, PluginInstanceBox, PointValue, Span, SpanKind, StatusCode,
};

use support::*;

/// One series of an InfluxQL answer: tags, and each row as column -> value.
#[derive(Debug)]
struct Series {
    tags: BTreeMap<String, String>,
    rows: Vec<BTreeMap<String, Value>>,
}

fn series(answer: &Value) -> Vec<Series> {
    let Some(list) = answer["results"][0]["series"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|s| {
            let tags = s["tags"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let cols: Vec<String> = s["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            let rows = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| {
                    cols.iter()
                        .cloned()
                        .zip(row.as_array().unwrap().iter().cloned())
                        .filter(|(_, v)| !v.is_null())
                        .collect()
                })
                .collect();
            Series { tags, rows }
        })
        .collect()
}

fn one(server: &Server, db: &str, from: &str, auth: Option<(&str, &str)>) -> Series {
    let q = format!("SELECT * FROM {from} GROUP BY *");
    let mut s = series(&server.influxql(db, &q, auth));
    assert_eq!(s.len(), 1, "{q}: {s:?}\nlog:\n{}", server.log());
    s.remove(0)
}

fn export(
    inst: &mut PluginInstanceBox,
    b: &tfo_plugin_api::Batch,
) -> Result<u64, tfo_plugin_api::PluginError> {
    tfo_plugin_api::testing::export(inst, b).map(|ok| ok.accepted)
}

#[test]
fn influxdb_reads_back_what_the_plugin_wrote() {
    let Some(bin) = require_program("influxd", "influxdb", "the real-InfluxDB round trip") else {
        return;
    };
    let server = Server::influxd(&bin, false, 25_000_000);
    server.influxql("", r#"CREATE DATABASE "tfo db""#, None);
    server.influxql(
        "",
        r#"CREATE RETENTION POLICY "one week" ON "tfo db" DURATION 7d REPLICATION 1"#,
        None,
    );
    let h = TestHost::default();
    let mut inst = started(
        &h,
        &format!(
            r#"{{"url": "{}", "database": "tfo db", "retention_policy": "one week", "precision": "us"}}"#,
            server.url
        ),
    );
    let t = now_ns() - 60_000_000_000 + 123_456_789;
    let t_us = t / 1000 * 1000;
    let message = "line one\nsaid \"hi\", a=b \\ done";
    let mut b = batch(vec![
        gauge(
            "room temp,x",
            PointValue::Double(21.5),
            t,
            vec![
                KeyValue::new("room", TRICKY),
                KeyValue::new("k ey=", r"x\ y"),
                KeyValue::new("path", r"C:\dir\"),
            ],
        ),
        gauge("big", PointValue::Double(1.5e300), t, vec![]),
        gauge("tiny", PointValue::Double(-2.5e-7), t, vec![]),
        gauge("int", PointValue::Int(-42), t, vec![]),
        gauge("nan", PointValue::Double(f64::NAN), t, vec![]),
        histogram("rpc.duration", [1, 2, 3, 4], 6.5, t),
    ]);
    b.logs = vec![log(message, 9, t, vec![KeyValue::new("user", "bob")])].into();
    b.spans = vec![Span {
        trace_id: [0xab; 16],
        span_id: [0xcd; 8],
        parent_span_id: [0; 8],
        name: "GET /a b".into(),
        kind: SpanKind::Server,
        start_time_unix_nano: t,
        end_time_unix_nano: t + 2_500_000,
        status_code: StatusCode::Ok,
        status_message: "".into(),
        attributes: vec![KeyValue::new("http.status_code", 200i64)].into(),
        events: Default::default(),
    }]
    .into();
    // 8 items, the NaN point skipped.
    match export(&mut inst, &b) {
        Ok(n) => assert_eq!(n, 7),
        Err(e) => panic!("export failed: {e}\ninfluxd log:\n{}", server.log()),
    }

    let db = "tfo db";
    let from = |m: &str| format!(r#""tfo db"."one week"."{m}""#);
    let base_tags = |extra: &[(&str, &str)]| {
        let mut t: BTreeMap<String, String> = [("host.name", "h 1"), ("service.name", "tfo-test")]
            .iter()
            .chain(extra.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        t.retain(|_, v| !v.is_empty());
        t
    };

    let s = one(&server, db, &from("room temp,x"), None);
    assert_eq!(
        s.tags,
        base_tags(&[
            ("room", TRICKY),
            // InfluxDB 1.x keeps the backslash doubled before an escaped character
            // (documented limitation), and a trailing backslash cannot be written.
            ("k ey=", r"x\\ y"),
            ("path", r"C:\dir"),
        ])
    );
    assert_eq!(s.rows.len(), 1);
    assert_eq!(s.rows[0]["time"], json!(t_us));
    assert_eq!(s.rows[0]["value"], json!(21.5));

    for (m, v) in [
        ("big", json!(1.5e300)),
        ("tiny", json!(-2.5e-7)),
        ("int", json!(-42)),
    ] {
        let s = one(&server, db, &from(m), None);
        assert_eq!(s.rows[0]["value"], v, "{m}");
        assert_eq!(s.rows[0]["time"], json!(t_us), "{m}");
        assert_eq!(s.tags, base_tags(&[]));
    }
    let nan = series(&server.influxql(db, &format!("SELECT * FROM {}", from("nan")), None));
    assert!(nan.is_empty(), "{nan:?}");

    let s = one(&server, db, &from("rpc.duration"), None);
    let row = &s.rows[0];
    assert_eq!(row["count"], json!(10));
    assert_eq!(row["sum"], json!(6.5));
    assert_eq!(row["0.1"], json!(1));
    assert_eq!(row["0.5"], json!(3));
    assert_eq!(row["1"], json!(6));
    assert_eq!(row["+Inf"], json!(10));

    let s = one(&server, db, &from("logs"), None);
    assert_eq!(s.tags, base_tags(&[("level", "INFO")]));
    let row = &s.rows[0];
    // Quotes, commas, equals signs and backslashes come back as written; the
    // newline, which line protocol cannot carry, as the two characters `\n`.
    assert_eq!(row["message"], json!(message.replace('\n', "\\n")));
    assert_eq!(row["severity_number"], json!(9));
    assert_eq!(row["user"], json!("bob"));
    assert_eq!(row["time"], json!(t_us));

    let s = one(&server, db, &from("spans"), None);
    assert_eq!(
        s.tags,
        base_tags(&[
            ("span_name", "GET /a b"),
            ("span_kind", "server"),
            ("status_code", "ok")
        ])
    );
    let row = &s.rows[0];
    assert_eq!(row["trace_id"], json!("ab".repeat(16)));
    assert_eq!(row["span_id"], json!("cd".repeat(8)));
    assert_eq!(row["duration_ns"], json!(2_500_000));
    assert_eq!(row["http.status_code"], json!(200));
    assert!(inst.shutdown(2000).is_ok());
}

#[test]
fn influxdb_errors_partial_writes_and_split_batches() {
    let Some(bin) = require_program("influxd", "influxdb", "the real-InfluxDB error test") else {
        return;
    };
    let server = Server::influxd(&bin, true, 25_000_000);
    // With authentication on, the first admin user may be created without it.
    server.influxql(
        "",
        "CREATE USER admin WITH PASSWORD 'pa ss' WITH ALL PRIVILEGES",
        None,
    );
    let admin = Some(("admin", "pa ss"));
    server.influxql("", "CREATE DATABASE tfo", admin);
    let h = TestHost::default();
    let config = |db: &str, password: &str, extra: &str| {
        format!(
            r#"{{"url": "{}", "database": "{db}", "username": "admin", "password": "{password}"{extra}}}"#,
            server.url
        )
    };
    let t = now_ns() - 10_000_000_000;
    let b = |name: &str, v: PointValue, t: u64| batch(vec![gauge(name, v, t, vec![])]);

    // Wrong password: 401, permanent, says what to check.
    let mut inst = started(&h, &config("tfo", "wrong", ""));
    let e = export(&mut inst, &b("m", PointValue::Int(1), t)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(
        e.message.contains("HTTP 401") && e.message.contains("username and password"),
        "{e}"
    );

    // Missing database: 404, permanent, names it.
    let mut inst = started(&h, &config("missing", "pa ss", ""));
    let e = export(&mut inst, &b("m", PointValue::Int(1), t)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(e.message.contains(r#"database "missing" not found"#), "{e}");
    assert!(e.message.contains("CREATE DATABASE"), "{e}");

    // A batch split into three requests (plain bodies this time) arrives whole.
    let mut inst = started(
        &h,
        &config("tfo", "pa ss", r#", "batch_size": 2, "gzip": false"#),
    );
    let load = batch(
        (0..5)
            .map(|i| {
                gauge(
                    "load",
                    PointValue::Double(i as f64 / 4.0),
                    t,
                    vec![KeyValue::new("cpu", i as i64)],
                )
            })
            .collect(),
    );
    assert_eq!(export(&mut inst, &load).unwrap(), 5);
    let s = series(&server.influxql("tfo", "SELECT * FROM load GROUP BY *", admin));
    assert_eq!(s.len(), 5, "{s:?}");
    for x in &s {
        let cpu: f64 = x.tags["cpu"].parse().unwrap();
        assert_eq!(x.rows[0]["value"].as_f64(), Some(cpu / 4.0));
        assert_eq!(x.rows[0]["time"], json!(t));
    }

    // Field type conflict: `value` is an integer in `conflict`, a float arrives.
    // InfluxDB writes the rest of the request and answers 400 "partial write ...
    // dropped=1": one line refused, one accepted, nothing retried.
    assert_eq!(
        export(&mut inst, &b("conflict", PointValue::Int(1), t)).unwrap(),
        1
    );
    let mixed = batch(vec![
        gauge("conflict", PointValue::Double(2.5), t + 1, vec![]),
        gauge("fine", PointValue::Double(3.0), t + 1, vec![]),
    ]);
    assert_eq!(export(&mut inst, &mixed).unwrap(), 1);
    let logs = h.logs();
    assert!(
        logs.iter()
            .any(|(_, l)| l.contains("refused 1 of 2 lines") && l.contains("field type conflict")),
        "{logs:?}"
    );
    let s = one(&server, "tfo", "fine", admin);
    assert_eq!(s.rows[0]["value"].as_f64(), Some(3.0));
    let s = one(&server, "tfo", "conflict", admin);
    assert_eq!(s.rows.len(), 1);
    assert_eq!(s.rows[0]["value"], json!(1));
    assert!(inst.shutdown(2000).is_ok());
}

#[test]
fn influxdb_too_large_bodies_are_split() {
    let Some(bin) = require_program("influxd", "influxdb", "the real-InfluxDB 413 test") else {
        return;
    };
    // 60 lines of about 60 bytes: 3.6 kB in one request, over the 2 kB limit.
    let server = Server::influxd(&bin, false, 2000);
    server.influxql("", "CREATE DATABASE tfo", None);
    let h = TestHost::default();
    let mut inst = started(
        &h,
        // Plain bodies: gzip would shrink these repetitive lines under the limit.
        &format!(
            r#"{{"url": "{}", "database": "tfo", "gzip": false}}"#,
            server.url
        ),
    );
    let t = now_ns() - 10_000_000_000;
    let b = batch(
        (0..60)
            .map(|i| gauge("big", PointValue::Int(i), t, vec![KeyValue::new("n", i)]))
            .collect(),
    );
    match export(&mut inst, &b) {
        Ok(n) => assert_eq!(n, 60),
        Err(e) => panic!("export failed: {e}\ninfluxd log:\n{}", server.log()),
    }
    // The server did refuse the whole body (413) and the halves went through.
    let logs = h.logs();
    assert!(
        logs.iter()
            .any(|(_, l)| l.contains("HTTP 413") && l.contains("splitting the request in two")),
        "{logs:?}"
    );
    let s = series(&server.influxql("tfo", "SELECT * FROM big GROUP BY *", None));
    assert_eq!(s.len(), 60);
    for x in &s {
        assert_eq!(x.rows[0]["value"].to_string(), x.tags["n"]);
    }
    assert!(inst.shutdown(2000).is_ok());
}
