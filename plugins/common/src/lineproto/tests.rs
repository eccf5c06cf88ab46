//! Golden tests: the examples of the line protocol reference
//! (<https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/>), the
//! error cases of both former parsers (influxdb receiver, mqtt source), and the
//! fast float path against `str::parse`.

use super::*;

fn line(s: &str) -> Line<'_> {
    parse_line(s.as_bytes()).unwrap().unwrap()
}

fn tags<'a>(l: &'a Line<'_>) -> Vec<(&'a str, &'a str)> {
    l.tags
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
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
        [("fieldKey".into(), FieldValue::Str("fieldValue".into()))]
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
    // `=` needs no escape in a measurement, and `\=` there stays as written.
    assert_eq!(line("a=b f=1").measurement, "a=b");
    assert_eq!(line(r"a\=b f=1").measurement, r"a\=b");
    // `=` needs no escape in a tag value either.
    assert_eq!(tags(&line("m,t=a=b f=1")), [("t", "a=b")]);
    // Escapes next to multi-byte characters, and a string with a lone backslash.
    let l = line(r#"é\ ü,ä\,=ö\ ß ñ\==1,s="a\b\"ç""#);
    assert_eq!(l.measurement, "é ü");
    assert_eq!(tags(&l), [("ä,", "ö ß")]);
    assert_eq!(l.fields[0].0, "ñ=");
    assert_eq!(l.fields[1].1, FieldValue::Str(r#"a\b"ç"#.into()));
}

#[test]
fn names_borrow_from_the_input_unless_escaped() {
    let l = line(r#"cpu,host=a\ b,k=v usage=1,s="x",t="y\"" 5"#);
    assert!(matches!(l.measurement, Cow::Borrowed(_)));
    assert!(matches!(l.tags[0].0, Cow::Borrowed(_)));
    assert!(matches!(l.tags[0].1, Cow::Owned(_)));
    assert!(matches!(l.tags[1].1, Cow::Borrowed(_)));
    assert!(matches!(l.fields[0].0, Cow::Borrowed(_)));
    assert!(matches!(l.fields[1].1, FieldValue::Str(Cow::Borrowed("x"))));
    assert!(matches!(&l.fields[2].1, FieldValue::Str(Cow::Owned(s)) if s == "y\""));
}

#[test]
fn parse_line_into_reuses_and_resets_the_line() {
    let body = b"a,t=1 f=1,g=2 10\nb h=3";
    let mut l = Line::default();
    let mut lines = body.split(|b| *b == b'\n');
    assert!(parse_line_into(lines.next().unwrap(), &mut l).unwrap());
    assert_eq!(
        (l.tags.len(), l.fields.len(), l.timestamp),
        (1, 2, Some(10))
    );
    assert!(parse_line_into(lines.next().unwrap(), &mut l).unwrap());
    assert_eq!(l, line("b h=3"));
    assert!(!parse_line_into(b"# c", &mut l).unwrap());
    assert!(l.tags.is_empty() && l.fields.is_empty() && l.timestamp.is_none());
}

#[test]
fn comments_blank_lines_and_crlf() {
    assert_eq!(parse_line(b"# a comment").unwrap(), None);
    assert_eq!(
        parse_line(b"# \xff not UTF-8, still a comment").unwrap(),
        None
    );
    assert_eq!(parse_line(b"").unwrap(), None);
    assert_eq!(parse_line(b"   ").unwrap(), None);
    assert_eq!(line("m f=1 10\r").timestamp, Some(10));
    assert_eq!(line("  \tm f=1 10 \t").timestamp, Some(10));
    assert_eq!(line("m  f=1  10").timestamp, Some(10));
    assert_eq!(line("m f=1 ").timestamp, None);
}

#[test]
fn bad_lines_say_why() {
    for (bad, why) in [
        // The receiver's former parser.
        ("m", "missing fields"),
        ("m ", "missing field key"),
        (",t=v f=1", "missing measurement"),
        ("m,t f=1", "no value"),
        ("m,t= f=1", "empty value"),
        ("m f", "no value"),
        ("m f=", "empty value"),
        ("m f=abc", "invalid value"),
        ("m f=inf", "invalid value"),
        ("m f=NaN", "invalid value"),
        ("m f=+1", "invalid value"),
        ("m f=1.5i", "invalid value"),
        ("m f=+1i", "invalid value"),
        ("m f=-1u", "invalid value"),
        ("m f=99999999999999999999i", "invalid value"),
        ("m f=1e999", "invalid value"),
        ("m f=1.2.3", "invalid value"),
        ("m f=-", "invalid value"),
        ("m f=\"open", "unterminated"),
        ("m f=\"open\\\"", "unterminated"),
        ("m f=1 12x", "invalid timestamp"),
        ("m f=1 +12", "invalid timestamp"),
        ("m f=1 -", "invalid timestamp"),
        ("m f=1 99999999999999999999", "invalid timestamp"),
        ("m f=1 1 2", "after the timestamp"),
        ("m f=1\"x", "invalid value"),
        ("m f=1 \u{0}", "invalid timestamp"),
        ("m,\u{e9}=\u{e9} f=\"\u{e9}", "unterminated"),
        // The mqtt source's former parser.
        ("cpu", "expected a space"),
        ("cpu value", "has no '='"),
        ("cpu value=", "empty value"),
        ("cpu value=1x", "invalid value"),
        ("cpu value=99999999999999999999i", "invalid integer"),
        ("cpu value=-1u", "invalid unsigned"),
        ("cpu value=1 notatime", "invalid timestamp"),
        ("cpu,host value=1", "has no '='"),
        ("cpu,=x value=1", "empty tag"),
        ("cpu =1", "empty field key"),
        ("cpu value=\"x\"y", "unexpected"),
    ] {
        let e = parse_line(bad.as_bytes()).unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
    let e = parse_line(b"m\xff f=1").unwrap_err();
    assert!(e.contains("not valid UTF-8"), "{e}");
}

#[test]
fn parse_lines_is_all_or_nothing_with_line_numbers() {
    let l = parse_lines("# c\n\na f=1\r\nb g=2i 3\n").unwrap();
    assert_eq!(l, [line("a f=1"), line("b g=2i 3")]);
    let e = parse_lines("ok value=1\nbad").unwrap_err();
    assert!(e.starts_with("line 2: "), "{e}");
}

#[test]
fn timestamps_match_str_parse() {
    for ts in [
        "0",
        "-0",
        "1",
        "-1",
        "1764000000000000000",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "9999999999999999999",
        "18446744073709551616",
        "00000000000000000000042",
        "-00000000000000000000042",
        "",
        "-",
        "+1",
        "1-",
        "1.5",
        "1e3",
        " 1",
    ] {
        assert_eq!(
            parse_timestamp(ts),
            ts.parse::<i64>().ok().filter(|_| !ts.starts_with('+')),
            "{ts:?}"
        );
    }
    let l = line("m f=1 -9223372036854775808");
    assert_eq!(l.timestamp, Some(i64::MIN));
}

#[test]
fn precision_converts_exactly() {
    assert_eq!(
        Precision::S.to_unix_nanos(1_700_000_000),
        Some(1_700_000_000_000_000_000)
    );
    assert_eq!(Precision::Ns.to_unix_nanos(i64::MAX), Some(i64::MAX as u64));
    assert_eq!(Precision::Ns.to_unix_nanos(0), Some(0));
    assert_eq!(Precision::Ns.to_unix_nanos(-1), None);
    assert_eq!(Precision::H.to_unix_nanos(i64::MAX), None);
    for (s, n) in [
        ("", 1),
        ("ns", 1),
        ("n", 1),
        ("us", 1_000),
        ("u", 1_000),
        ("µ", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
    ] {
        assert_eq!(Precision::parse(s).unwrap().nanos(), n);
    }
    assert_eq!(Precision::parse("d"), None);
}

/// The fast float path gives bit for bit what `str::parse` gives, and the shapes
/// it refuses still go through the general path.
#[test]
fn fast_floats_match_str_parse() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut cases: Vec<String> = [
        "0",
        "-0",
        "0.0",
        "-0.0",
        ".5",
        "-.5",
        "5.",
        "96",
        "2.5",
        "12.5",
        "0.1",
        "0.3",
        "9007199254740992",
        "9007199254740993",
        "-9007199254740993.5",
        "1234567890123456789",
        "12345678901234567890",
        "0.0000000000000000000001",
        "0.00000000000000000000001",
        "123.456e7",
        "1E-3",
        "1e+3",
        "00012.50",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for _ in 0..20_000 {
        let int = next() % 10u64.pow((next() % 18) as u32 + 1);
        let frac_digits = (next() % 25) as usize;
        let frac: String = (0..frac_digits)
            .map(|_| char::from(b'0' + (next() % 10) as u8))
            .collect();
        let sign = if next() % 2 == 0 { "-" } else { "" };
        cases.push(format!("{sign}{int}.{frac}"));
        cases.push(format!("{sign}{int}"));
    }
    for c in &cases {
        let want = c.parse::<f64>().unwrap();
        let got = parse_float(c).unwrap_or_else(|| panic!("{c:?} refused"));
        assert_eq!(got.to_bits(), want.to_bits(), "{c:?}");
    }
    for bad in [
        "", "-", ".", "-.", "inf", "NaN", "+1", "1..2", "1.2.3", "1e", "1e999", "--1",
    ] {
        assert_eq!(parse_float(bad), None, "{bad:?}");
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap stand-in for the fuzz targets in CI.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet = "m, =\\\"tfi0123456789.-eu#\n\r\u{e9}".as_bytes();
    for _ in 0..20_000 {
        let mut buf = Vec::new();
        for _ in 0..(x % 40) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push(alphabet[(x % alphabet.len() as u64) as usize]);
        }
        let mut l = Line::default();
        for raw in buf.split(|b| *b == b'\n') {
            let _ = parse_line_into(raw, &mut l);
        }
        if let Ok(text) = std::str::from_utf8(&buf) {
            let _ = parse_lines(text);
        }
    }
}
