use std::collections::BTreeMap;

use super::*;
use crate::{
    config::{Format, Mapping, Subscription, TimeUnit, TopicTemplate, ValueKind},
    encode,
};
use tfo_plugin_common::lineproto::parse_lines;

const NOW: u64 = 1_700_000_000_000_000_000;

fn sub(format: Format, mapping: Option<Mapping>) -> Subscription {
    Subscription {
        topic: "#".into(),
        format,
        qos: 1,
        mapping,
    }
}

fn mapping(values: &[&str]) -> Mapping {
    Mapping {
        values: values.iter().map(|s| s.to_string()).collect(),
        name: None,
        name_field: None,
        timestamp: None,
        timestamp_unit: TimeUnit::Ms,
        labels: BTreeMap::new(),
        kind: ValueKind::Gauge,
    }
}

/// (name, value, time, attributes without mqtt.topic) of one point.
type Flat = (String, PointValue, u64, Vec<(String, AnyValue)>);

/// Every point of a batch, flattened.
fn points(b: &Batch) -> Vec<Flat> {
    let mut out = Vec::new();
    for m in b.metrics.iter() {
        for p in m.points.iter() {
            let attrs = p
                .attributes
                .iter()
                .filter(|kv| kv.key.as_str() != TOPIC_ATTRIBUTE)
                .map(|kv| (kv.key.to_string(), kv.value.clone()))
                .collect();
            out.push((m.name.to_string(), p.value.clone(), p.time_unix_nano, attrs));
        }
    }
    out
}

fn d(v: f64) -> PointValue {
    PointValue::Double(v)
}

#[test]
fn json_scalar_is_named_after_the_topic() {
    let b = decode(
        &sub(Format::Json, None),
        "sensors/kitchen//temp",
        b"21.5",
        NOW,
    )
    .unwrap();
    assert_eq!(
        points(&b),
        [("sensors.kitchen.temp".into(), d(21.5), NOW, vec![])]
    );
    let topic_attr = &b.metrics[0].points[0].attributes[0];
    assert_eq!(topic_attr.key.as_str(), "mqtt.topic");
    assert_eq!(topic_attr.value, AnyValue::from("sensors/kitchen//temp"));
    let b = decode(&sub(Format::Json, None), "door/open", b"true", NOW).unwrap();
    assert_eq!(points(&b)[0].1, d(1.0));
}

#[test]
fn json_object_fields_become_gauges() {
    let payload =
        br#"{"temp": 21, "ok": false, "env": {"hum": 40.5, "label": "x"}, "list": [1], "n": null}"#;
    let b = decode(&sub(Format::Json, None), "t", payload, NOW).unwrap();
    let mut got: Vec<(String, PointValue)> =
        points(&b).into_iter().map(|(n, v, _, _)| (n, v)).collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("env.hum".into(), d(40.5)),
            ("ok".into(), d(0.0)),
            ("temp".into(), d(21.0))
        ]
    );
    // An array of objects.
    let b = decode(
        &sub(Format::Json, None),
        "t",
        br#"[{"a": 1}, {"b": 2}, 3]"#,
        NOW,
    )
    .unwrap();
    let names: Vec<String> = points(&b).into_iter().map(|p| p.0).collect();
    assert_eq!(names, ["a", "b", "t"]);
}

#[test]
fn json_round_trip_of_the_sinks_own_messages() {
    let r = Resource {
        attributes: vec![KeyValue::new("host.name", "h")].into(),
    };
    let mut c = Metric::counter(
        "reqs",
        "{request}",
        5,
        10,
        0.0,
        vec![KeyValue::new("k", "v"), KeyValue::new("i", 3i64)],
    );
    c.points[0].value = PointValue::Int(42);
    c.description = "requests".into();
    let mut h = Metric::gauge("lat", "s", 10, 0.0, vec![]);
    h.kind = MetricKind::Histogram;
    h.temporality = Temporality::Delta;
    h.points[0].value = PointValue::Histogram(HistogramValue {
        count: 3,
        sum: Some(f64::INFINITY).into(),
        bounds: vec![1.0].into(),
        bucket_counts: vec![1, 2].into(),
        min: None.into(),
        max: Some(9.0).into(),
    });
    let mut s = Metric::gauge("q", "", 10, 0.0, vec![]);
    s.kind = MetricKind::Summary;
    s.points[0].value = PointValue::Summary(SummaryValue {
        count: 2,
        sum: 3.0,
        quantiles: vec![Quantile {
            quantile: 0.5,
            value: 1.0,
        }]
        .into(),
    });
    let g = Metric::gauge("g", "1", 10, 0.5, vec![]);
    for m in [c, h, s, g] {
        let json = encode::metric_json(&r, &m, &m.points[0]);
        let b = decode(&sub(Format::Json, None), "t", json.as_bytes(), NOW).unwrap();
        assert_eq!(b.resource, r);
        let mut got = b.metrics[0].clone();
        let topic = got.points[0].attributes.pop().unwrap();
        assert_eq!(topic.key.as_str(), "mqtt.topic");
        // Attributes come back sorted by key.
        let mut want = m.clone();
        want.points[0].attributes.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(got, want, "{json}");
    }
    let err = decode(
        &sub(Format::Json, None),
        "t",
        br#"{"type":"metric","name":"x","kind":"weird","value":1}"#,
        NOW,
    )
    .unwrap_err();
    assert!(err.contains("unknown metric kind"), "{err}");
}

#[test]
fn json_mapping() {
    let mut m = mapping(&["data.temp", "data.hum", "absent"]);
    m.name = Some("room".into());
    m.timestamp = Some("ts".into());
    m.labels = BTreeMap::from([
        ("room".to_string(), "where".to_string()),
        ("floor".to_string(), "meta.floor".to_string()),
        ("missing".to_string(), "nope".to_string()),
    ]);
    let payload = br#"{"data": {"temp": "21.5", "hum": 40}, "ts": 1700000000123, "where": "kitchen", "meta": {"floor": 2}}"#;
    let b = decode(&sub(Format::Json, Some(m.clone())), "t", payload, NOW).unwrap();
    let labels = vec![
        ("floor".to_string(), AnyValue::Int(2)),
        ("room".to_string(), AnyValue::from("kitchen")),
    ];
    let t = 1_700_000_000_123_000_000;
    assert_eq!(
        points(&b),
        [
            ("room.data.temp".into(), d(21.5), t, labels.clone()),
            ("room.data.hum".into(), d(40.0), t, labels),
        ]
    );

    // One value: the name is the metric name; name from a field; counters; arrays.
    let mut one = mapping(&["v"]);
    one.name_field = Some("metric".into());
    one.kind = ValueKind::Counter;
    one.timestamp = Some("at".into());
    let b = decode(
        &sub(Format::Json, Some(one)),
        "t",
        br#"[{"metric": "energy", "v": 5, "at": "2023-11-14T22:13:20.5+00:00"}, {"metric": "water", "v": 1, "at": "2023-11-14T23:13:20Z"}]"#,
        NOW,
    )
    .unwrap();
    let p = points(&b);
    assert_eq!(p[0].0, "energy");
    assert_eq!(p[0].2, 1_700_000_000_500_000_000);
    assert_eq!(p[1].0, "water");
    assert_eq!(p[1].2, 1_700_003_600_000_000_000);
    assert_eq!(b.metrics[0].kind, MetricKind::Sum);
    assert!(b.metrics[0].is_monotonic);

    // No name: the path is the name; seconds; array index in a path.
    let mut s = mapping(&["r.1.v"]);
    s.timestamp = Some("t".into());
    s.timestamp_unit = TimeUnit::S;
    let b = decode(
        &sub(Format::Json, Some(s)),
        "t",
        br#"{"r": [{"v": 1}, {"v": 2}], "t": 1.5}"#,
        NOW,
    )
    .unwrap();
    assert_eq!(
        points(&b),
        [("r.1.v".into(), d(2.0), 1_500_000_000, vec![])]
    );
}

#[test]
fn json_malformed_payloads_are_errors_not_panics() {
    let s = sub(Format::Json, None);
    for (payload, needle) in [
        (&b"{not json"[..], "invalid JSON"),
        (b"\"text\"", "got a string"),
        (b"null", "got null"),
        (b"{}", "no numeric value"),
        (b"{\"a\": \"x\"}", "no numeric value"),
        (b"[]", "no numeric value"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[[1]]", "element 0"),
    ] {
        let e = decode(&s, "t", payload, NOW).unwrap_err();
        assert!(e.contains(needle), "{payload:?}: {e}");
    }
    // A topic with no usable level for a bare number.
    assert!(decode(&s, "/", b"1", NOW).is_err());
    // Deep nesting is refused by serde_json's recursion limit, not a stack overflow.
    let deep = "[".repeat(100_000);
    assert!(decode(&s, "t", deep.as_bytes(), NOW).is_err());

    let mut m = mapping(&["v"]);
    m.timestamp = Some("ts".into());
    let ms = sub(Format::Json, Some(m));
    for (payload, needle) in [
        (&br#"{"v": 1}"#[..], "timestamp field \"ts\" is missing"),
        (
            br#"{"v": 1, "ts": "yesterday"}"#,
            "neither a number nor an RFC 3339",
        ),
        (br#"{"v": 1, "ts": -5}"#, "not a time after 1970"),
        (br#"{"v": "hot", "ts": 1}"#, "not a number"),
        (br#"{"v": [1], "ts": 1}"#, "must be a number"),
        (br#"{"w": 1, "ts": 1}"#, "none of the value fields"),
        (b"5", "expected an object"),
    ] {
        let e = decode(&ms, "t", payload, NOW).unwrap_err();
        assert!(e.contains(needle), "{payload:?}: {e}");
    }
    let mut nf = mapping(&["v"]);
    nf.name_field = Some("n".into());
    let e = decode(
        &sub(Format::Json, Some(nf)),
        "t",
        br#"{"v": 1, "n": 3}"#,
        NOW,
    )
    .unwrap_err();
    assert!(e.contains("non-empty string"), "{e}");
}

#[test]
fn influx_lines() {
    let payload = b"# a comment\n\
        weather,location=us-midwest,season=summer temperature=82,humidity=71i,raining=f,note=\"a \\\"b\\\" c\" 1465839830100400200\n\
        \n\
        cpu gauge=0.5\r\n\
        requests,route=/a counter=10u 5\n";
    let b = decode(&sub(Format::Influx, None), "t", payload, NOW).unwrap();
    let loc = vec![
        ("location".to_string(), AnyValue::from("us-midwest")),
        ("season".to_string(), AnyValue::from("summer")),
    ];
    let t = 1_465_839_830_100_400_200;
    assert_eq!(
        points(&b),
        [
            ("weather_temperature".into(), d(82.0), t, loc.clone()),
            (
                "weather_humidity".into(),
                PointValue::Int(71),
                t,
                loc.clone()
            ),
            ("weather_raining".into(), d(0.0), t, loc),
            ("cpu".into(), d(0.5), NOW, vec![]),
            (
                "requests".into(),
                PointValue::Int(10),
                5,
                vec![("route".to_string(), AnyValue::from("/a"))]
            ),
        ]
    );
    assert_eq!(b.metrics[4].kind, MetricKind::Sum);
    assert!(b.metrics[4].is_monotonic);
}

#[test]
fn influx_escapes_round_trip_with_the_encoder() {
    let mut g = Metric::gauge(
        "my measurement,v2",
        "",
        7,
        -1.5,
        vec![
            KeyValue::new("host name", "web 1,eu=west"),
            KeyValue::new("odd", "a\\,b"),
            KeyValue::new("path", "C:\\temp\\"),
        ],
    );
    g.kind = MetricKind::Gauge;
    let line = encode::influx_line(&Resource::default(), &g, &g.points[0]).unwrap();
    let parsed = parse_lines(&line).unwrap();
    assert_eq!(
        parsed,
        [Line {
            measurement: "my measurement,v2".into(),
            tags: vec![
                ("host name".into(), "web 1,eu=west".into()),
                ("odd".into(), "a\\,b".into()),
                ("path".into(), "C:\\temp\\".into()),
            ],
            fields: vec![("gauge".into(), FieldValue::Float(-1.5))],
            timestamp: Some(7),
        }]
    );
    // The encoder's own output decodes to the same name and value.
    let t = TopicTemplate::parse("x").unwrap();
    let b = Batch {
        metrics: vec![g].into(),
        ..Batch::default()
    };
    let msg = &encode::encode_batch(&b, &t, Format::Influx).messages[0];
    let back = decode(&sub(Format::Influx, None), "x", &msg.payload, NOW).unwrap();
    assert_eq!(back.metrics[0].name.as_str(), "my measurement,v2");
    assert_eq!(back.metrics[0].points[0].value, d(-1.5));
}

#[test]
fn influx_malformed_lines_are_errors_not_panics() {
    let s = sub(Format::Influx, None);
    for (payload, needle) in [
        (&b"cpu"[..], "expected a space"),
        (b"cpu value", "has no '='"),
        (b"cpu value=", "empty value"),
        (b"cpu value=abc", "invalid value"),
        (b"cpu value=inf", "invalid value"),
        (b"cpu value=NaN", "invalid value"),
        (b"cpu value=1x", "invalid value"),
        (b"cpu value=99999999999999999999i", "invalid integer"),
        (b"cpu value=-1u", "invalid unsigned"),
        (b"cpu value=\"open", "unterminated string"),
        (b"cpu value=1 notatime", "invalid timestamp"),
        (b"cpu value=1 -5", "before 1970"),
        (b"cpu,host value=1", "has no '='"),
        (b"cpu,=x value=1", "empty tag"),
        (b",t=1 value=1", "missing measurement"),
        (b"cpu =1", "empty field key"),
        (b"cpu value=\"x\"y", "unexpected"),
        (b"cpu s=\"only text\"", "no numeric value"),
        (b"ok value=1\nbad", "line 2"),
        (b"\xff value=1", "not UTF-8"),
    ] {
        let e = decode(&s, "t", payload, NOW).unwrap_err();
        assert!(
            e.contains(needle),
            "{:?}: {e}",
            String::from_utf8_lossy(payload)
        );
    }
}
