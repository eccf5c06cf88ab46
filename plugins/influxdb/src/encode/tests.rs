//! Golden tests: expected lines written by hand from the InfluxDB line protocol
//! documentation's examples (v1 "Line protocol reference", "Special characters and
//! keywords"; v2 "Line protocol", "Special characters"), then the mapping of each
//! data type.

use tfo_plugin_api::{
    __private::abi_stable::std_types::{ROption, RVec},
    DataPoint, LogRecord, Metric, MetricKind, Quantile, Resource, Temporality,
};

use super::*;

fn opts() -> Options {
    Options::default()
}

/// One line through the encoder's writer, as the docs' examples are built:
/// measurement, tags, fields, nanosecond timestamp.
fn line(
    measurement: &str,
    tags: &[(&str, &str)],
    fields: Vec<(&str, FieldValue)>,
    ts: u64,
) -> String {
    let o = opts();
    let mut enc = Encoder {
        opts: &o,
        now: 1,
        out: Encoded::default(),
    };
    let tags = tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let fields = fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    enc.push(measurement, tags, fields, ts);
    assert_eq!(enc.out.lines.len(), 1, "{:?}", enc.out.skipped);
    enc.out.lines.remove(0)
}

const T: u64 = 1465839830100400200;

#[test]
fn v1_reference_special_character_examples() {
    // "Special characters and keywords" > Examples (InfluxDB 1.x reference).
    assert_eq!(
        line(
            "weather",
            &[("location", "us,midwest")],
            vec![("temperature", FieldValue::Float(82.0))],
            T
        ),
        r"weather,location=us\,midwest temperature=82 1465839830100400200"
    );
    assert_eq!(
        line(
            "weather",
            &[("location", "us-midwest")],
            vec![("temp=rature", FieldValue::Float(82.0))],
            T
        ),
        r"weather,location=us-midwest temp\=rature=82 1465839830100400200"
    );
    assert_eq!(
        line(
            "weather",
            &[("location place", "us-midwest")],
            vec![("temperature", FieldValue::Float(82.0))],
            T
        ),
        r"weather,location\ place=us-midwest temperature=82 1465839830100400200"
    );
    assert_eq!(
        line(
            "wea,ther",
            &[("location", "us-midwest")],
            vec![("temperature", FieldValue::Float(82.0))],
            T
        ),
        r"wea\,ther,location=us-midwest temperature=82 1465839830100400200"
    );
    assert_eq!(
        line(
            "wea ther",
            &[("location", "us-midwest")],
            vec![("temperature", FieldValue::Float(82.0))],
            T
        ),
        r"wea\ ther,location=us-midwest temperature=82 1465839830100400200"
    );
    assert_eq!(
        line(
            "weather",
            &[("location", "us-midwest")],
            vec![("temperature", FieldValue::Str(r#"too"hot""#.into()))],
            T
        ),
        r#"weather,location=us-midwest temperature="too\"hot\"" 1465839830100400200"#
    );
    // Equals signs need no escaping in measurements ("=" only in keys and tag values).
    assert_eq!(
        line("a=b", &[("k", "v=w")], vec![("f", FieldValue::Int(1))], T),
        r"a=b,k=v\=w f=1i 1465839830100400200"
    );
}

#[test]
fn v2_reference_special_character_examples() {
    // "Special characters" examples of the InfluxDB 2.x line protocol page.
    assert_eq!(
        line(
            "my Measurement",
            &[],
            vec![("fieldKey", FieldValue::Str("string value".into()))],
            1556813561098000000
        ),
        r#"my\ Measurement fieldKey="string value" 1556813561098000000"#
    );
    assert_eq!(
        line(
            "myMeasurement",
            &[],
            vec![(
                "fieldKey",
                FieldValue::Str(r#""string" within a string"#.into())
            )],
            1556813561098000000
        ),
        r#"myMeasurement fieldKey="\"string\" within a string" 1556813561098000000"#
    );
    assert_eq!(
        line(
            "myMeasurement",
            &[("tag Key1", "tag Value1"), ("tag Key2", "tag Value2")],
            vec![("fieldKey", FieldValue::Float(100.0))],
            1556813561098000000
        ),
        r"myMeasurement,tag\ Key1=tag\ Value1,tag\ Key2=tag\ Value2 fieldKey=100 1556813561098000000"
    );
    assert_eq!(
        line(
            "myMeasurement",
            &[("tagKey", "🍭")],
            vec![("fieldKey", FieldValue::Str("Launch 🚀".into()))],
            1556813561098000000
        ),
        r#"myMeasurement,tagKey=🍭 fieldKey="Launch 🚀" 1556813561098000000"#
    );
    // Data types: float, integer, string, boolean ("Data types and format").
    assert_eq!(
        line(
            "myMeasurement",
            &[],
            vec![
                ("f", FieldValue::Float(1.0)),
                ("i", FieldValue::Int(-12485903)),
                ("s", FieldValue::Str("this is a string".into())),
                ("b", FieldValue::Bool(true)),
                ("e", FieldValue::Float(-1.234456e78)),
            ],
            1556813561098000000
        ),
        r#"myMeasurement f=1,i=-12485903i,s="this is a string",b=true,e=-1.234456e78 1556813561098000000"#
    );
}

#[test]
fn string_field_backslashes() {
    // Backslashes in string fields are escaped (v2 "Special characters": field string
    // values escape double quotes and backslashes).
    assert_eq!(
        line(
            "m",
            &[],
            vec![("f", FieldValue::Str(r"too hot\cold".into()))],
            1
        ),
        r#"m f="too hot\\cold" 1"#
    );
    assert_eq!(
        line("m", &[], vec![("f", FieldValue::Str(r#"end\"#.into()))], 1),
        r#"m f="end\\" 1"#
    );
}

#[test]
fn backslashes_and_newlines_in_names() {
    let esc = |s: &str, sp| {
        let mut o = String::new();
        escape_into(&mut o, s, sp);
        o
    };
    // A backslash before an ordinary character stays as it is (a Windows path).
    assert_eq!(esc(r"C:\Windows", KEY_SPECIALS), r"C:\Windows");
    // Before an escaped character or at the end, the run is doubled.
    assert_eq!(
        esc(r"C:\Program Files\", KEY_SPECIALS),
        r"C:\Program\ Files\\"
    );
    assert_eq!(esc(r"a\ b", KEY_SPECIALS), r"a\\\ b");
    assert_eq!(esc(r"a\\,b", KEY_SPECIALS), r"a\\\\\,b");
    assert_eq!(esc(r"a\\b", KEY_SPECIALS), r"a\\b");
    // '=' is not special in a measurement, so a backslash before it stays single.
    assert_eq!(esc(r"a\=b", MEASUREMENT_SPECIALS), r"a\=b");
    assert_eq!(esc(r"a\=b", KEY_SPECIALS), r"a\\\=b");
    // Newlines cannot be carried: written as the two characters \n.
    assert_eq!(esc("two\nlines\r", KEY_SPECIALS), r"two\nlines\r");
    assert_eq!(esc("x\\\ny", KEY_SPECIALS), r"x\\\ny");
    let mut o = String::new();
    escape_string_field(&mut o, "l1\nl2 \"q\" \\");
    assert_eq!(o, r#"l1\nl2 \"q\" \\"#);
}

fn batch(metrics: Vec<Metric>) -> Batch {
    Batch {
        resource: Resource {
            attributes: vec![
                KeyValue::new("service.name", "svc"),
                KeyValue::new("host.name", "h 1"),
            ]
            .into(),
        },
        metrics: metrics.into(),
        ..Batch::default()
    }
}

fn point(value: PointValue, attrs: Vec<KeyValue>, t: u64) -> DataPoint {
    DataPoint {
        attributes: attrs.into(),
        start_time_unix_nano: 0,
        time_unix_nano: t,
        value,
    }
}

fn metric(name: &str, kind: MetricKind, points: Vec<DataPoint>) -> Metric {
    let mut m = Metric::gauge(name, "", 0, 0.0, vec![]);
    m.kind = kind;
    m.temporality = Temporality::Cumulative;
    m.points = points.into();
    m
}

#[test]
fn gauges_and_sums() {
    let b = batch(vec![
        metric(
            "system.cpu.utilization",
            MetricKind::Gauge,
            vec![
                point(
                    PointValue::Double(0.25),
                    vec![KeyValue::new("cpu", "0"), KeyValue::new("state", "user")],
                    T,
                ),
                point(
                    PointValue::Double(1.5e-7),
                    vec![KeyValue::new("cpu", "1")],
                    T,
                ),
            ],
        ),
        metric(
            "jobs.done",
            MetricKind::Sum,
            vec![point(
                PointValue::Int(42),
                vec![KeyValue::new("host.name", "override")],
                T,
            )],
        ),
    ]);
    let e = encode(&b, &opts(), 7);
    assert_eq!(
        e.lines,
        [
            r"system.cpu.utilization,cpu=0,host.name=h\ 1,service.name=svc,state=user value=0.25 1465839830100400200",
            r"system.cpu.utilization,cpu=1,host.name=h\ 1,service.name=svc value=1.5e-7 1465839830100400200",
            // A point attribute wins over the resource attribute of the same key.
            r"jobs.done,host.name=override,service.name=svc value=42i 1465839830100400200",
        ]
    );
    assert!(e.skipped.is_empty());
}

#[test]
fn histogram_and_summary() {
    let h = PointValue::Histogram(HistogramValue {
        count: 10,
        sum: ROption::RSome(6.5),
        bounds: vec![0.1, 0.5, 1.0].into(),
        bucket_counts: vec![1, 2, 3, 4].into(),
        min: ROption::RSome(0.01),
        max: ROption::RNone,
    });
    let s = PointValue::Summary(SummaryValue {
        count: 3,
        sum: 9.0,
        quantiles: vec![
            Quantile {
                quantile: 0.5,
                value: 2.0,
            },
            Quantile {
                quantile: 0.99,
                value: 4.5,
            },
        ]
        .into(),
    });
    let mut b = batch(vec![
        metric(
            "rpc.duration",
            MetricKind::Histogram,
            vec![point(h, vec![], T)],
        ),
        metric("gc.pause", MetricKind::Summary, vec![point(s, vec![], T)]),
    ]);
    b.resource.attributes = RVec::new();
    let e = encode(&b, &opts(), 7);
    assert_eq!(
        e.lines,
        [
            "rpc.duration count=10i,sum=6.5,min=0.01,0.1=1i,0.5=3i,1=6i,+Inf=10i 1465839830100400200",
            "gc.pause count=3i,sum=9,0.5=2,0.99=4.5 1465839830100400200",
        ]
    );
}

#[test]
fn non_finite_values_are_skipped_and_counted() {
    let h = PointValue::Histogram(HistogramValue {
        count: 2,
        sum: ROption::RSome(f64::NAN),
        bounds: vec![1.0].into(),
        bucket_counts: vec![1, 1].into(),
        min: ROption::RSome(f64::NEG_INFINITY),
        max: ROption::RSome(3.0),
    });
    let mut b = batch(vec![
        metric(
            "g",
            MetricKind::Gauge,
            vec![
                point(PointValue::Double(f64::NAN), vec![], T),
                point(PointValue::Double(f64::INFINITY), vec![], T),
                point(PointValue::Double(1.0), vec![], T),
            ],
        ),
        metric("h", MetricKind::Histogram, vec![point(h, vec![], T)]),
    ]);
    b.resource.attributes = RVec::new();
    let e = encode(&b, &opts(), 7);
    assert_eq!(
        e.lines,
        [
            "g value=1 1465839830100400200",
            "h count=2i,max=3,1=1i,+Inf=2i 1465839830100400200"
        ]
    );
    assert_eq!(e.skipped.non_finite, 2);
    assert_eq!(e.skipped.non_finite_fields, 2);
    assert_eq!(e.skipped.items(), 2);
    assert_eq!(e.skipped.summary(), "non_finite=2 non_finite_fields=2");
}

#[test]
fn malformed_histograms_keep_count_and_sum() {
    let h = PointValue::Histogram(HistogramValue {
        count: 2,
        sum: ROption::RSome(1.0),
        bounds: vec![1.0, 2.0].into(),
        bucket_counts: vec![1, 1].into(),
        min: ROption::RNone,
        max: ROption::RNone,
    });
    let mut b = batch(vec![metric(
        "h",
        MetricKind::Histogram,
        vec![point(h, vec![], T)],
    )]);
    b.resource.attributes = RVec::new();
    let e = encode(&b, &opts(), 7);
    assert_eq!(e.lines, ["h count=2i,sum=1 1465839830100400200"]);
    assert_eq!(e.skipped.bad_buckets, 1);
    assert_eq!(e.skipped.items(), 0);
}

#[test]
fn empty_keys_values_names_and_reserved_keys() {
    let mut b = batch(vec![
        metric(
            "m",
            MetricKind::Gauge,
            vec![point(
                PointValue::Int(1),
                vec![
                    KeyValue::new("", "no key"),
                    KeyValue::new("empty", ""),
                    KeyValue::new("time", "t"),
                    KeyValue::new("_field", "f"),
                    KeyValue::new("value", "clash"),
                    KeyValue::new("flag", true),
                    KeyValue::new("n", 3i64),
                    KeyValue::new("x", 2.5),
                    KeyValue::new("path", r"C:\dir\"),
                    KeyValue::new("bs", r"\\"),
                ],
                T,
            )],
        ),
        metric(
            "",
            MetricKind::Gauge,
            vec![point(PointValue::Int(1), vec![], T)],
        ),
        // A line starting with '#' would be a comment; elsewhere '#' is ordinary.
        metric(
            "#m",
            MetricKind::Gauge,
            vec![point(PointValue::Int(1), vec![], T)],
        ),
        metric(
            "m#",
            MetricKind::Gauge,
            vec![point(PointValue::Int(2), vec![], T)],
        ),
    ]);
    b.resource.attributes = RVec::new();
    let e = encode(&b, &opts(), 7);
    assert_eq!(
        e.lines,
        [
            r"m,_field_=f,flag=true,n=3,path=C:\dir,time_=t,value_=clash,x=2.5 value=1i 1465839830100400200",
            "m# value=2i 1465839830100400200",
        ]
    );
    assert_eq!(e.skipped.invalid, 2);
    // Trailing backslashes cannot be written: removed and counted (a value of only
    // backslashes becomes empty and the tag is left out).
    assert_eq!(e.skipped.trimmed_backslashes, 2);
}

#[test]
fn precision_and_missing_or_bad_timestamps() {
    let mut b = batch(vec![metric(
        "m",
        MetricKind::Gauge,
        vec![
            point(PointValue::Int(1), vec![], 1_700_000_000_123_456_789),
            point(PointValue::Int(2), vec![], 0),
            point(PointValue::Int(3), vec![], u64::MAX),
        ],
    )]);
    b.resource.attributes = RVec::new();
    let lines = |p| {
        let o = Options {
            precision: p,
            ..opts()
        };
        encode(&b, &o, 1_800_000_000_999_999_999)
    };
    let e = lines(Precision::Ns);
    assert_eq!(
        e.lines,
        [
            "m value=1i 1700000000123456789",
            "m value=2i 1800000000999999999"
        ]
    );
    assert_eq!(e.skipped.bad_timestamp, 1);
    assert_eq!(lines(Precision::Us).lines[0], "m value=1i 1700000000123456");
    assert_eq!(lines(Precision::Ms).lines[0], "m value=1i 1700000000123");
    assert_eq!(lines(Precision::S).lines[0], "m value=1i 1700000000");
}

#[test]
fn logs() {
    let b = Batch {
        resource: Resource {
            attributes: vec![KeyValue::new("service.name", "svc")].into(),
        },
        logs: vec![
            LogRecord {
                time_unix_nano: T,
                observed_time_unix_nano: T + 5,
                severity_number: 17,
                severity_text: "".into(),
                body: AnyValue::Str("disk \"sda\" failed,\nretrying = soon \\o/".into()),
                attributes: vec![
                    KeyValue::new("code.line", 12i64),
                    KeyValue::new("message", "clash"),
                    KeyValue::new("ratio", f64::NAN),
                    KeyValue::new("ok", false),
                ]
                .into(),
                trace_id: [1; 16],
                span_id: [0xab; 8],
            },
            LogRecord {
                time_unix_nano: 0,
                observed_time_unix_nano: T + 5,
                severity_number: 0,
                severity_text: "notice".into(),
                body: AnyValue::Int(7),
                attributes: RVec::new(),
                trace_id: [0; 16],
                span_id: [0; 8],
            },
        ]
        .into(),
        ..Batch::default()
    };
    let e = encode(&b, &opts(), 7);
    assert_eq!(
        e.lines,
        [
            r#"logs,level=ERROR,service.name=svc message="disk \"sda\" failed,\nretrying = soon \\o/",severity_number=17i,trace_id="01010101010101010101010101010101",span_id="abababababababab",code.line=12i,message_="clash",ok=false 1465839830100400200"#,
            r#"logs,level=notice,service.name=svc message="7" 1465839830100400205"#,
        ]
    );
    assert_eq!(e.skipped.non_finite_fields, 1);
    // An empty measurement turns logs off; they are counted.
    let o = Options {
        logs_measurement: String::new(),
        ..opts()
    };
    let e = encode(&b, &o, 7);
    assert!(e.lines.is_empty());
    assert_eq!(e.skipped.disabled, 2);
}

#[test]
fn spans() {
    let b = Batch {
        spans: vec![Span {
            trace_id: [0x11; 16],
            span_id: [0x22; 8],
            parent_span_id: [0x33; 8],
            name: "GET /users".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: T,
            end_time_unix_nano: T + 1500,
            status_code: StatusCode::Error,
            status_message: "boom".into(),
            attributes: vec![KeyValue::new("http.status_code", 500i64)].into(),
            events: RVec::new(),
        }]
        .into(),
        ..Batch::default()
    };
    let e = encode(&b, &opts(), 7);
    assert_eq!(
        e.lines,
        [
            r#"spans,span_kind=server,span_name=GET\ /users,status_code=error trace_id="11111111111111111111111111111111",span_id="2222222222222222",parent_span_id="3333333333333333",duration_ns=1500i,status_message="boom",http.status_code=500i 1465839830100400200"#
        ]
    );
}

#[test]
fn limits() {
    let long = "x".repeat(100);
    let o = Options {
        max_line_bytes: 300,
        max_string_bytes: 10,
        ..opts()
    };
    let b = Batch {
        logs: vec![LogRecord {
            time_unix_nano: 1,
            observed_time_unix_nano: 0,
            severity_number: 0,
            severity_text: "".into(),
            body: AnyValue::Str(format!("é{long}").into()),
            attributes: RVec::new(),
            trace_id: [0; 16],
            span_id: [0; 8],
        }]
        .into(),
        ..Batch::default()
    };
    let e = encode(&b, &o, 7);
    // Cut at a character boundary: "é" is 2 bytes, then 8 x.
    assert_eq!(e.lines, [r#"logs message="éxxxxxxxx" 1"#]);
    assert_eq!(e.skipped.truncated_strings, 1);

    // Too long a line: skipped and counted.
    let mut b = batch(vec![metric(
        "m",
        MetricKind::Gauge,
        vec![
            point(
                PointValue::Int(1),
                vec![KeyValue::new("k", "v".repeat(400))],
                T,
            ),
            point(PointValue::Int(1), vec![], T),
        ],
    )]);
    b.resource.attributes = RVec::new();
    let e = encode(&b, &o, 7);
    assert_eq!(e.lines, ["m value=1i 1465839830100400200"]);
    assert_eq!(e.skipped.too_long, 1);

    // A series key over 65,535 bytes is skipped even when lines may be longer.
    let o = Options {
        max_line_bytes: 1 << 20,
        ..opts()
    };
    let mut b = batch(vec![metric(
        "m",
        MetricKind::Gauge,
        vec![point(
            PointValue::Int(1),
            vec![KeyValue::new("k", "v".repeat(70_000))],
            T,
        )],
    )]);
    b.resource.attributes = RVec::new();
    let e = encode(&b, &o, 7);
    assert!(e.lines.is_empty());
    assert_eq!(e.skipped.too_long, 1);
}

#[test]
fn chunking_by_lines_and_bytes() {
    let lines: Vec<String> = (0..7).map(|i| format!("m value={i}i 1")).collect(); // 14 bytes each
    let c = chunks(&lines, 3, 1000);
    assert_eq!(c.iter().map(|c| c.lines).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(c[0].body, b"m value=0i 1\nm value=1i 1\nm value=2i 1\n");
    let c = chunks(&lines, 100, 30);
    assert_eq!(c.iter().map(|c| c.lines).collect::<Vec<_>>(), [2, 2, 2, 1]);
    assert!(c.iter().all(|c| c.body.len() <= 30));
    // A line longer than the body limit still goes, alone.
    let c = chunks(&["x".repeat(50)], 100, 30);
    assert_eq!(c.len(), 1);
    assert!(chunks(&[], 10, 10).is_empty());
    // Every line exactly once, in order.
    let joined: Vec<u8> = chunks(&lines, 2, 40)
        .into_iter()
        .flat_map(|c| c.body)
        .collect();
    assert_eq!(String::from_utf8(joined).unwrap(), lines.join("\n") + "\n");
}
