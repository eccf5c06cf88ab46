//! Golden tests: the examples of the line protocol reference
//! (<https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/>).

use super::*;
use tfo_plugin_api::AnyValue;

fn line(s: &str) -> Line {
    parse_line(s.as_bytes()).unwrap().unwrap()
}

fn tags(l: &Line) -> Vec<(&str, &str)> {
    l.tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn reference_example_with_everything() {
    let l =
        line("myMeasurement,tag1=value1,tag2=value2 fieldKey=\"fieldValue\" 1556813561098000000");
    assert_eq!(l.measurement, "myMeasurement");
    assert_eq!(tags(&l), [("tag1", "value1"), ("tag2", "value2")]);
    assert_eq!(
        l.fields,
        [("fieldKey".to_string(), FieldValue::Str("fieldValue".into()))]
    );
    assert_eq!(l.timestamp, Some(1556813561098000000));
}

#[test]
fn field_types() {
    let l = line("m f=1.0,g=1,h=-1.5e3,i=12i,j=-12i,u=12u,s=\"x\",b1=t,b2=T,b3=true,b4=True,b5=TRUE,b6=f,b7=F,b8=false,b9=False,b10=FALSE");
    let v: Vec<&FieldValue> = l.fields.iter().map(|(_, v)| v).collect();
    assert_eq!(v[0], &FieldValue::Float(1.0));
    assert_eq!(v[1], &FieldValue::Float(1.0));
    assert_eq!(v[2], &FieldValue::Float(-1500.0));
    assert_eq!(v[3], &FieldValue::Int(12));
    assert_eq!(v[4], &FieldValue::Int(-12));
    assert_eq!(v[5], &FieldValue::UInt(12));
    assert_eq!(v[6], &FieldValue::Str("x".into()));
    for b in &v[7..12] {
        assert_eq!(*b, &FieldValue::Bool(true));
    }
    for b in &v[12..] {
        assert_eq!(*b, &FieldValue::Bool(false));
    }
    assert_eq!(l.timestamp, None);
}

#[test]
fn reference_escaping_examples() {
    // "Special characters" section of the reference.
    let l = line(r#"my\ Measurement fieldKey="string value""#);
    assert_eq!(l.measurement, "my Measurement");
    let l = line(r#"myMeasurement fieldKey="\"string\" within a string""#);
    assert_eq!(
        l.fields[0].1,
        FieldValue::Str(r#""string" within a string"#.into())
    );
    let l = line(r#"myMeasurement,tag\ Key1=tag\ Value1,tag\ Key2=tag\ Value2 fieldKey=100"#);
    assert_eq!(
        tags(&l),
        [("tag Key1", "tag Value1"), ("tag Key2", "tag Value2")]
    );
    let l = line(r#"myMeasurement,tagKey=🍭 fieldKey="Launch 🚀" 1556813561098000000"#);
    assert_eq!(tags(&l), [("tagKey", "🍭")]);
    assert_eq!(l.fields[0].1, FieldValue::Str("Launch 🚀".into()));
    // Backslashes: `\\` is one, a lone one before an ordinary character is literal.
    let l = line(r#"myMeasurement fieldKey="\\""#);
    assert_eq!(l.fields[0].1, FieldValue::Str("\\".into()));
    let l = line(r#"my\Measurement,t\=k=v\,1 f\ k=1"#);
    assert_eq!(l.measurement, r"my\Measurement");
    assert_eq!(tags(&l), [("t=k", "v,1")]);
    assert_eq!(l.fields[0].0, "f k");
    // `=` needs no escape in a measurement.
    assert_eq!(line("a=b f=1").measurement, "a=b");
}

#[test]
fn comments_blank_lines_and_crlf() {
    assert_eq!(parse_line(b"# a comment").unwrap(), None);
    assert_eq!(parse_line(b"").unwrap(), None);
    assert_eq!(parse_line(b"   ").unwrap(), None);
    assert_eq!(line("m f=1 10\r").timestamp, Some(10));
}

#[test]
fn bad_lines_say_why() {
    for (bad, why) in [
        ("m", "missing fields"),
        ("m ", "missing field key"),
        (",t=v f=1", "missing measurement"),
        ("m,t f=1", "no value"),
        ("m,t= f=1", "empty value"),
        ("m f", "no value"),
        ("m f=", "invalid value"),
        ("m f=abc", "invalid value"),
        ("m f=inf", "invalid value"),
        ("m f=NaN", "invalid value"),
        ("m f=1.5i", "invalid value"),
        ("m f=-1u", "invalid value"),
        ("m f=99999999999999999999i", "invalid value"),
        ("m f=\"open", "unterminated"),
        ("m f=1 12x", "invalid timestamp"),
        ("m f=1 1 2", "after the timestamp"),
        ("m f=1\"x", "invalid value"),
    ] {
        let e = parse_line(bad.as_bytes()).unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
}

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
