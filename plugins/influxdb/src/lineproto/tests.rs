//! The receiver's mapping of request bodies; the parser's own golden tests (the
//! examples of the line protocol reference) are in `tfo_plugin_common::lineproto`.

use super::*;
use tfo_plugin_api::AnyValue;

#[test]
fn body_maps_fields_to_gauges_and_keeps_good_lines() {
    let body = b"cpu,host=a,cpu=cpu0 usage_idle=99.5,usage_user=0.5 1700000000\n\
        # comment\n\
        broken line here\n\
        cpu,host=b,cpu=cpu0 usage_idle=90 1700000001\n\
        mem,host=a used=123i,free=5u,ok=true,note=\"hi\" 1700000000\n";
    let p = parse_body(
        body,
        Precision::S,
        7,
        &[("db".to_string(), "telegraf".to_string())],
    );
    assert_eq!((p.lines_ok, p.lines_bad), (3, 1));
    assert_eq!(p.errors[0].0, 3);
    assert_eq!(p.string_fields, 1);
    let names: Vec<&str> = p.batch.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cpu_usage_idle",
            "cpu_usage_user",
            "mem_used",
            "mem_free",
            "mem_ok"
        ]
    );
    let idle = &p.batch.metrics[0];
    assert_eq!(idle.kind, tfo_plugin_api::MetricKind::Gauge);
    assert_eq!(idle.points.len(), 2);
    assert_eq!(idle.points[0].time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(idle.points[0].value, PointValue::Double(99.5));
    assert_eq!(idle.points[1].value, PointValue::Double(90.0));
    let attrs: Vec<(&str, &AnyValue)> = idle.points[1]
        .attributes
        .iter()
        .map(|kv| (kv.key.as_str(), &kv.value))
        .collect();
    assert_eq!(
        attrs,
        [
            ("host", &AnyValue::from("b")),
            ("cpu", &AnyValue::from("cpu0")),
            ("db", &AnyValue::from("telegraf"))
        ]
    );
    assert_eq!(p.batch.metrics[2].points[0].value, PointValue::Int(123));
    assert_eq!(p.batch.metrics[3].points[0].value, PointValue::Int(5));
    assert_eq!(p.batch.metrics[4].points[0].value, PointValue::Int(1));
    assert_eq!(p.batch.item_count(), 6);
}

#[test]
fn precision_and_default_time() {
    let p = parse_body(b"m f=1\nm f=2 3", Precision::Ms, 42, &[]);
    let pts = &p.batch.metrics[0].points;
    assert_eq!(pts[0].time_unix_nano, 42);
    assert_eq!(pts[1].time_unix_nano, 3_000_000);
    let p = parse_body(b"m f=1 -1", Precision::Ns, 42, &[]);
    assert_eq!(p.lines_bad, 1);
    let p = parse_body(b"m f=1 9223372036854775807", Precision::H, 42, &[]);
    assert_eq!(p.lines_bad, 1);
    let p = parse_body(b"m f=18446744073709551615u", Precision::Ns, 42, &[]);
    assert_eq!(
        p.batch.metrics[0].points[0].value,
        PointValue::Double(18446744073709551615u64 as f64)
    );
    for (s, n) in [
        ("ns", 1),
        ("n", 1),
        ("us", 1_000),
        ("u", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
    ] {
        assert_eq!(Precision::parse(s).unwrap().nanos(), n);
    }
    assert_eq!(Precision::parse("d"), None);
}

#[test]
fn db_tag_in_the_line_wins_over_the_query() {
    let p = parse_body(
        b"m,db=own f=1",
        Precision::Ns,
        1,
        &[("db".into(), "q".into())],
    );
    assert_eq!(p.batch.metrics[0].points[0].attributes.len(), 1);
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap stand-in for the fuzz target in CI.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet = b"m, =\\\"tfi0123456789.-eu#\n\r\xff";
    for _ in 0..20_000 {
        let mut buf = Vec::new();
        for _ in 0..(x % 40) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push(alphabet[(x % alphabet.len() as u64) as usize]);
        }
        let _ = parse_body(&buf, Precision::Ns, 1, &[]);
    }
}

/// The mapping written the obvious way (the receiver's code before it was made
/// fast): one name string and one hash lookup per field, attributes built per
/// point. `parse_body` must give exactly the same batch.
fn naive(body: &[u8], precision: Precision, now: u64, extra: &[(String, String)]) -> Parsed {
    let mut out = Parsed::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut metrics: Vec<Metric> = Vec::new();
    for (n, raw) in body.split(|b| *b == b'\n').enumerate() {
        let line = match parse_line(raw) {
            Ok(None) => continue,
            Ok(Some(l)) => l,
            Err(e) => {
                out.reject(n + 1, e);
                continue;
            }
        };
        let time = match line.timestamp {
            None => now,
            Some(t) => match u64::try_from(i128::from(t) * i128::from(precision.nanos())) {
                Ok(ns) => ns,
                Err(_) => {
                    out.reject(
                        n + 1,
                        format!("timestamp {t} out of range (before 1970 or after 2554)"),
                    );
                    continue;
                }
            },
        };
        out.lines_ok += 1;
        let mut attrs: Vec<KeyValue> = line
            .tags
            .iter()
            .map(|(k, v)| KeyValue::new(k.as_ref(), v.as_ref()))
            .collect();
        for (k, v) in extra {
            if !line.tags.iter().any(|(t, _)| t == k) {
                attrs.push(KeyValue::new(k.as_str(), v.as_str()));
            }
        }
        for (key, value) in &line.fields {
            let value = match value {
                FieldValue::Float(f) => PointValue::Double(*f),
                FieldValue::Int(i) => PointValue::Int(*i),
                FieldValue::UInt(u) => match i64::try_from(*u) {
                    Ok(i) => PointValue::Int(i),
                    Err(_) => PointValue::Double(*u as f64),
                },
                FieldValue::Bool(b) => PointValue::Int(i64::from(*b)),
                FieldValue::Str(_) => {
                    out.string_fields += 1;
                    continue;
                }
            };
            let name = format!("{}_{}", line.measurement, key);
            let point = DataPoint {
                attributes: attrs.clone().into(),
                start_time_unix_nano: 0,
                time_unix_nano: time,
                value,
            };
            match index.get(&name) {
                Some(&i) => metrics[i].points.push(point),
                None => {
                    index.insert(name.clone(), metrics.len());
                    let mut m = Metric::gauge(&name, "", 0, 0.0, vec![]);
                    m.points = vec![point].into();
                    metrics.push(m);
                }
            }
        }
    }
    out.batch.metrics = metrics.into();
    out
}

#[test]
fn mapping_matches_the_naive_one() {
    let fixed: &[&[u8]] = &[
        // Same measurement, fields moving between positions, a field set that
        // changes, string fields first and last, names that collide (`a_b` + `c` and
        // `a` + `b_c` are one metric), escapes, the `db` tag present or not.
        b"cpu,host=a x=1,y=2\ncpu,host=b y=3,x=4\ncpu,host=c x=5\ncpu z=6,x=7,y=8 9\n\
          mem s=\"a\",used=1i\nmem used=2i,s=\"b\"\nmem s=\"only\"\n\
          a_b c=1\na b_c=2\nmy\\ m,t\\=k=v\\,1 f\\ k=1\nm,db=own f=1,g=t\nbad\nm f=1 -1\n",
        b"",
        b"\n\n# only comments\n",
    ];
    let extra = [("db".to_string(), "q".to_string())];
    for body in fixed {
        for ex in [&extra[..], &[]] {
            let expected = naive(body, Precision::S, 7, ex);
            assert_eq!(parse_body(body, Precision::S, 7, ex), expected);
            let earlier = parse_body(fixed[0], Precision::S, 7, &extra).batch;
            assert_eq!(
                parse_body_reusing(body, Precision::S, 7, ex, Some(earlier)),
                expected
            );
        }
    }
    // Random bodies over a small vocabulary, so names and field orders repeat.
    let mut x: u64 = 0x853c_49e6_748f_ea9b;
    let mut next = |k: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % k
    };
    let mut earlier: Option<Batch> = None;
    for _ in 0..300 {
        let mut body = String::new();
        for _ in 0..next(30) {
            body.push_str(["cpu", "mem", "a_b", "a", "disk\\ io"][next(5) as usize]);
            for t in 0..next(3) {
                body.push_str(&format!(",t{t}=v{}", next(4)));
            }
            if next(5) == 0 {
                body.push_str(",db=own");
            }
            body.push(' ');
            for f in 0..next(4) + 1 {
                if f > 0 {
                    body.push(',');
                }
                let key = ["x", "y", "b_c", "z", "s"][next(5) as usize];
                let value = [
                    "1",
                    "2.5",
                    "3i",
                    "4u",
                    "t",
                    "\"s\"",
                    "18446744073709551615u",
                ][next(7) as usize];
                body.push_str(&format!("{key}={value}"));
            }
            if next(2) == 0 {
                body.push_str(&format!(" {}", next(1000)));
            }
            body.push('\n');
        }
        let ex = if next(2) == 0 { &extra[..] } else { &[] };
        let expected = naive(body.as_bytes(), Precision::Ms, 7, ex);
        assert_eq!(
            parse_body(body.as_bytes(), Precision::Ms, 7, ex),
            expected,
            "{body}"
        );
        // Into the memory of the previous body's batch (another shape), or of
        // a batch unlike any the receiver builds.
        let into = if next(4) == 0 {
            Some(unlike_a_receivers_batch(next(6) as usize))
        } else {
            earlier.take()
        };
        let reused = parse_body_reusing(body.as_bytes(), Precision::Ms, 7, ex, into);
        assert_eq!(reused, expected, "{body}");
        earlier = Some(reused.batch);
    }
}

/// A batch of other kinds, units, descriptions, value types and attribute
/// counts than the receiver's, for `parse_body_reusing` to reuse.
fn unlike_a_receivers_batch(points: usize) -> Batch {
    let attrs = |i: usize| -> Vec<KeyValue> {
        (0..i % 5)
            .map(|k| match k % 3 {
                0 => KeyValue::new(format!("key{k}"), "a much longer value than a tag"),
                1 => KeyValue::new("n", i as i64),
                _ => KeyValue::new("b", true),
            })
            .collect()
    };
    let mut b = Batch::default();
    b.resource
        .attributes
        .push(KeyValue::new("service.name", "x"));
    for m in 0..3 {
        let mut metric = Metric::counter(&format!("old_{m}"), "By", 1, 2, 3.0, attrs(m));
        metric.description = "was a counter".into();
        for p in 0..points {
            let mut point = metric.points[0].clone();
            point.attributes = attrs(p + m).into();
            metric.points.push(point);
        }
        b.metrics.push(metric);
    }
    b
}
