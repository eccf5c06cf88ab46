//! Golden tests of the mapping and both wire formats. Expected outputs are written
//! by hand from the specifications cited in the module docs, not produced by the
//! code under test.

use tfo_plugin_api::__private::abi_stable::std_types::{ROption, RVec};
use tfo_plugin_api::{
    AnyValue, Batch, DataPoint, HistogramValue, KeyValue, Metric, MetricKind, PointValue, Quantile,
    Resource, SummaryValue, Temporality,
};

use super::{
    canonical_float, convert, family_name, format_double, label_name, point_labels, prom_unit,
    remote_write,
    text::{self, negotiate, Format},
    Family, FamilyMeta, FamilyType, Options, Point, Value,
};

const START: u64 = 1_700_000_000_000_000_000;

fn metric(
    name: &str,
    desc: &str,
    unit: &str,
    kind: MetricKind,
    temporality: Temporality,
    monotonic: bool,
    points: Vec<DataPoint>,
) -> Metric {
    let mut m = Metric::gauge(name, unit, 0, 0.0, vec![]);
    m.description = desc.into();
    m.kind = kind;
    m.temporality = temporality;
    m.is_monotonic = monotonic;
    m.points = points.into();
    m
}

fn dp(attrs: Vec<KeyValue>, start: u64, time: u64, value: PointValue) -> DataPoint {
    DataPoint {
        attributes: attrs.into(),
        start_time_unix_nano: start,
        time_unix_nano: time,
        value,
    }
}

fn resource() -> Resource {
    Resource {
        attributes: vec![
            KeyValue::new("service.name", "api"),
            KeyValue::new("service.namespace", "shop"),
            KeyValue::new("service.instance.id", "i-1"),
            KeyValue::new("host.name", "h1"),
        ]
        .into(),
    }
}

fn golden_batch() -> Batch {
    let metrics = vec![
        metric(
            "system.memory.utilization",
            "Memory \"used\" share\nsecond line \\ backslash",
            "1",
            MetricKind::Gauge,
            Temporality::Unspecified,
            false,
            vec![dp(
                vec![KeyValue::new("state", "used")],
                0,
                START + 10,
                PointValue::Double(0.25),
            )],
        ),
        metric(
            "http.requests",
            "Requests.",
            "{request}",
            MetricKind::Sum,
            Temporality::Cumulative,
            true,
            vec![dp(
                vec![
                    KeyValue::new("http.status_code", 200i64),
                    KeyValue::new("http.method", "GET"),
                ],
                START,
                START + 10,
                PointValue::Int(42),
            )],
        ),
        metric(
            "http.server.duration",
            "Latency.",
            "s",
            MetricKind::Histogram,
            Temporality::Cumulative,
            false,
            vec![dp(
                vec![KeyValue::new("route", "/a\"b")],
                START + 500_000_000,
                START + 10,
                PointValue::Histogram(HistogramValue {
                    count: 10,
                    sum: ROption::RSome(7.5),
                    bounds: RVec::from(vec![0.1, 0.5, 1.0]),
                    bucket_counts: RVec::from(vec![1, 2, 3, 4]),
                    min: ROption::RNone,
                    max: ROption::RNone,
                }),
            )],
        ),
        metric(
            "rpc.latency",
            "",
            "ms",
            MetricKind::Summary,
            Temporality::Unspecified,
            false,
            vec![dp(
                vec![],
                0,
                START + 10,
                PointValue::Summary(SummaryValue {
                    count: 5,
                    sum: 20.0,
                    quantiles: RVec::from(vec![
                        Quantile {
                            quantile: 0.99,
                            value: 12.0,
                        },
                        Quantile {
                            quantile: 0.5,
                            value: 3.0,
                        },
                    ]),
                }),
            )],
        ),
        metric(
            "queue.size",
            "",
            "{item}",
            MetricKind::Sum,
            Temporality::Cumulative,
            false,
            vec![dp(vec![], 0, START + 10, PointValue::Int(-3))],
        ),
        metric(
            "queue.changes",
            "",
            "{item}",
            MetricKind::Sum,
            Temporality::Delta,
            false,
            vec![dp(vec![], 0, START + 10, PointValue::Int(1))],
        ),
    ];
    Batch {
        resource: resource(),
        metrics: metrics.into(),
        ..Batch::default()
    }
}

const GOLDEN_TEXT: &str = r#"# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{http_method="GET",http_status_code="200",instance="i-1",job="shop/api"} 42
# HELP http_server_duration_seconds Latency.
# TYPE http_server_duration_seconds histogram
http_server_duration_seconds_bucket{instance="i-1",job="shop/api",route="/a\"b",le="0.1"} 1
http_server_duration_seconds_bucket{instance="i-1",job="shop/api",route="/a\"b",le="0.5"} 3
http_server_duration_seconds_bucket{instance="i-1",job="shop/api",route="/a\"b",le="1.0"} 6
http_server_duration_seconds_bucket{instance="i-1",job="shop/api",route="/a\"b",le="+Inf"} 10
http_server_duration_seconds_sum{instance="i-1",job="shop/api",route="/a\"b"} 7.5
http_server_duration_seconds_count{instance="i-1",job="shop/api",route="/a\"b"} 10
# TYPE queue_size gauge
queue_size{instance="i-1",job="shop/api"} -3
# TYPE rpc_latency_milliseconds summary
rpc_latency_milliseconds{instance="i-1",job="shop/api",quantile="0.5"} 3
rpc_latency_milliseconds{instance="i-1",job="shop/api",quantile="0.99"} 12
rpc_latency_milliseconds_sum{instance="i-1",job="shop/api"} 20
rpc_latency_milliseconds_count{instance="i-1",job="shop/api"} 5
# HELP system_memory_utilization_ratio Memory "used" share\nsecond line \\ backslash
# TYPE system_memory_utilization_ratio gauge
system_memory_utilization_ratio{instance="i-1",job="shop/api",state="used"} 0.25
# HELP target_info Target metadata
# TYPE target_info gauge
target_info{host_name="h1",instance="i-1",job="shop/api"} 1
"#;

const GOLDEN_OPENMETRICS: &str = r#"# TYPE http_requests counter
# HELP http_requests Requests.
http_requests_total{http_method="GET",http_status_code="200",instance="i-1",job="shop/api"} 42
http_requests_created{http_method="GET",http_status_code="200",instance="i-1",job="shop/api"} 1700000000.000
# TYPE http_server_duration_seconds histogram
# UNIT http_server_duration_seconds seconds
# HELP http_server_duration_seconds Latency.
http_server_duration_seconds_bucket{instance="i-1",job="shop/api",route="/a\"b",le="0.1"} 1
http_server_duration_seconds_bucket{instance="i-1",job="shop/api",route="/a\"b",le="0.5"} 3
http_server_duration_seconds_bucket{instance="i-1",job="shop/api",route="/a\"b",le="1.0"} 6
http_server_duration_seconds_bucket{instance="i-1",job="shop/api",route="/a\"b",le="+Inf"} 10
http_server_duration_seconds_sum{instance="i-1",job="shop/api",route="/a\"b"} 7.5
http_server_duration_seconds_count{instance="i-1",job="shop/api",route="/a\"b"} 10
http_server_duration_seconds_created{instance="i-1",job="shop/api",route="/a\"b"} 1700000000.500
# TYPE queue_size gauge
queue_size{instance="i-1",job="shop/api"} -3
# TYPE rpc_latency_milliseconds summary
# UNIT rpc_latency_milliseconds milliseconds
rpc_latency_milliseconds{instance="i-1",job="shop/api",quantile="0.5"} 3
rpc_latency_milliseconds{instance="i-1",job="shop/api",quantile="0.99"} 12
rpc_latency_milliseconds_sum{instance="i-1",job="shop/api"} 20
rpc_latency_milliseconds_count{instance="i-1",job="shop/api"} 5
# TYPE system_memory_utilization_ratio gauge
# UNIT system_memory_utilization_ratio ratio
# HELP system_memory_utilization_ratio Memory \"used\" share\nsecond line \\ backslash
system_memory_utilization_ratio{instance="i-1",job="shop/api",state="used"} 0.25
# TYPE target info
# HELP target Target metadata
target_info{host_name="h1",instance="i-1",job="shop/api"} 1
# EOF
"#;

#[test]
fn golden_text_format() {
    let c = convert(&golden_batch(), &Options::default());
    assert_eq!(text::render(&c.families, Format::Text), GOLDEN_TEXT);
}

#[test]
fn golden_openmetrics_format() {
    let c = convert(&golden_batch(), &Options::default());
    assert_eq!(
        text::render(&c.families, Format::OpenMetrics),
        GOLDEN_OPENMETRICS
    );
}

#[test]
fn non_monotonic_delta_sums_are_dropped_with_a_reason() {
    let c = convert(&golden_batch(), &Options::default());
    assert_eq!(c.dropped.len(), 1, "{:?}", c.dropped);
    assert!(c.dropped[0].contains("queue.changes"), "{:?}", c.dropped);
    assert!(c.families.iter().all(|f| !f.meta.name.contains("changes")));
}

#[test]
fn namespace_prefixes_metrics_but_not_target_info() {
    let c = convert(
        &golden_batch(),
        &Options {
            namespace: Some("tfo".into()),
        },
    );
    let names: Vec<&str> = c.families.iter().map(|f| f.meta.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "target",
            "tfo_http_requests",
            "tfo_http_server_duration_seconds",
            "tfo_queue_size",
            "tfo_rpc_latency_milliseconds",
            "tfo_system_memory_utilization_ratio",
        ]
    );
}

#[test]
fn names_follow_the_compatibility_spec() {
    use FamilyType::*;
    let cases = [
        // (name, unit, kind, expected family name)
        (
            "system.filesystem.usage",
            "By",
            Gauge,
            "system_filesystem_usage_bytes",
        ),
        (
            "system.network.dropped",
            "{packets}",
            Counter,
            "system_network_dropped",
        ),
        (
            "system.network.dropped",
            "packets",
            Counter,
            "system_network_dropped_packets",
        ),
        (
            "system.memory.utilization",
            "1",
            Gauge,
            "system_memory_utilization_ratio",
        ),
        (
            "http.server.duration",
            "ms",
            Histogram,
            "http_server_duration_milliseconds",
        ),
        ("net.io", "By/s", Gauge, "net_io_bytes_per_second"),
        (
            "packets.rate",
            "{packets}/s",
            Gauge,
            "packets_rate_per_second",
        ),
        ("speed", "m/s", Gauge, "speed_meters_per_second"),
        ("temp", "Cel", Gauge, "temp_celsius"),
        // The unit is not repeated when the name already ends with it...
        ("process.cpu.seconds", "s", Counter, "process_cpu_seconds"),
        (
            "process_cpu_seconds_total",
            "s",
            Counter,
            "process_cpu_seconds",
        ),
        // ... but it is when the name only contains it elsewhere.
        (
            "seconds.before.birthday",
            "s",
            Gauge,
            "seconds_before_birthday_seconds",
        ),
        // `_total` is the counter's sample suffix, not part of the family name.
        ("requests_total", "", Counter, "requests"),
        ("requests_total", "", Gauge, "requests_total"),
        ("total", "", Counter, "total"),
        // Sanitising.
        ("a..b--c", "", Gauge, "a_b_c"),
        ("9lives", "", Gauge, "_9lives"),
        ("ns:sub.metric", "", Gauge, "ns:sub_metric"),
        ("déjà vu", "", Gauge, "d_j_vu"),
        ("x", "kBy", Gauge, "x_kBy"),
    ];
    for (name, unit, kind, want) in cases {
        let got = family_name(name, &prom_unit(unit), kind, None);
        assert_eq!(got.as_deref(), Some(want), "{name} [{unit}] {kind:?}");
    }
    assert_eq!(family_name("...", "", Gauge, None), None);
    assert_eq!(family_name("", "s", Gauge, None), None);
    assert_eq!(
        family_name("up", "", Gauge, Some("tfo")).as_deref(),
        Some("tfo_up")
    );
}

#[test]
fn units() {
    let cases = [
        ("", ""),
        ("1", "ratio"),
        ("%", "percent"),
        ("s", "seconds"),
        ("ns", "nanoseconds"),
        ("By", "bytes"),
        ("KiBy", "kibibytes"),
        ("{packet}", ""),
        ("{packet}/s", "per_second"),
        ("1/s", "per_second"),
        ("By/s", "bytes_per_second"),
        ("By/{batch}", "bytes"),
        ("requests/mo", "requests_per_month"),
        ("widgets", "widgets"),
        ("a b", "a_b"),
    ];
    for (unit, want) in cases {
        assert_eq!(prom_unit(unit), want, "{unit:?}");
    }
}

#[test]
fn label_names() {
    assert_eq!(label_name("http.method").as_deref(), Some("http_method"));
    assert_eq!(label_name("a..b").as_deref(), Some("a_b"));
    assert_eq!(label_name("__x").as_deref(), Some("_x"));
    assert_eq!(label_name("1st").as_deref(), Some("key_1st"));
    assert_eq!(label_name("a:b").as_deref(), Some("a_b"));
    assert_eq!(label_name(""), None);
    assert_eq!(label_name("..."), None);
}

#[test]
fn colliding_label_names_join_values_in_key_order() {
    let attrs = vec![
        KeyValue::new("a.b", "2"),
        KeyValue::new("a_b", "3"),
        KeyValue::new("a-b", "1"),
        KeyValue::new("empty", ""),
        KeyValue::new("bytes", AnyValue::Bytes(vec![0xfb, 0xff].into())),
        KeyValue::new("flag", true),
        KeyValue::new("ratio", 0.5),
    ];
    let labels = point_labels(&attrs, None, &vec![]);
    assert_eq!(
        labels,
        vec![
            // "a-b" < "a.b" < "a_b" in byte order.
            ("a_b".to_string(), "1;2;3".to_string()),
            ("bytes".to_string(), "+/8=".to_string()),
            ("flag".to_string(), "true".to_string()),
            ("ratio".to_string(), "0.5".to_string()),
        ]
    );
}

#[test]
fn a_repeated_attribute_key_keeps_the_last_value() {
    let attrs = vec![KeyValue::new("k", "1"), KeyValue::new("k", "2")];
    assert_eq!(
        point_labels(&attrs, None, &vec![]),
        vec![("k".to_string(), "2".to_string())]
    );
}

#[test]
fn reserved_labels_are_renamed_and_resource_labels_win() {
    let attrs = vec![
        KeyValue::new("le", "x"),
        KeyValue::new("job", "mine"),
        KeyValue::new("quantile", "q"),
    ];
    let resource = vec![("job".to_string(), "api".to_string())];
    let labels = point_labels(&attrs, Some("le"), &resource);
    assert_eq!(
        labels,
        vec![
            ("exported_le".to_string(), "x".to_string()),
            ("job".to_string(), "api".to_string()),
            ("quantile".to_string(), "q".to_string()),
        ]
    );
}

#[test]
fn resource_without_service_gives_no_job_and_no_target_without_other_attributes() {
    let (labels, target) = super::resource_labels(&Resource::default());
    assert!(labels.is_empty());
    assert!(target.is_none());
    let r = Resource {
        attributes: vec![KeyValue::new("service.name", "solo")].into(),
    };
    let (labels, target) = super::resource_labels(&r);
    assert_eq!(labels, vec![("job".to_string(), "solo".to_string())]);
    assert!(target.is_none());
}

#[test]
fn go_float_formatting() {
    let cases = [
        (0.0, "0"),
        (1.0, "1"),
        (-2.5, "-2.5"),
        (0.25, "0.25"),
        (100000.0, "100000"),
        (123456.7, "123456.7"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (1e21, "1e+21"),
        (0.0001, "0.0001"),
        (0.00012, "0.00012"),
        (1e-5, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (1e-300, "1e-300"),
        (f64::MAX, "1.7976931348623157e+308"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
    ];
    for (f, want) in cases {
        assert_eq!(format_double(f), want, "{f:e}");
    }
}

#[test]
fn canonical_numbers_match_the_openmetrics_examples() {
    // OpenMetrics "Canonical Numbers" examples.
    let cases = [
        (0.0, "0.0"),
        (0.001, "0.001"),
        (0.002, "0.002"),
        (0.01, "0.01"),
        (0.1, "0.1"),
        (0.9, "0.9"),
        (0.95, "0.95"),
        (0.99, "0.99"),
        (0.999, "0.999"),
        (1.0, "1.0"),
        (1.7, "1.7"),
        (10.0, "10.0"),
        (1e-10, "1e-10"),
        (1e-9, "1e-09"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (100000.0, "100000.0"),
        (1e6, "1e+06"),
        (1e10, "1e+10"),
        (f64::INFINITY, "+Inf"),
    ];
    for (f, want) in cases {
        assert_eq!(canonical_float(f), want, "{f:e}");
    }
}

fn histogram_point(h: HistogramValue) -> Result<super::Histogram, String> {
    super::histogram(&h)
}

fn hv(
    bounds: Vec<f64>,
    counts: Vec<u64>,
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
) -> HistogramValue {
    HistogramValue {
        count,
        sum: sum.into(),
        bounds: bounds.into(),
        bucket_counts: counts.into(),
        min: min.into(),
        max: ROption::RNone,
    }
}

#[test]
fn histogram_validation() {
    // Mismatched lengths, non-increasing or non-finite bounds: dropped.
    assert!(histogram_point(hv(vec![1.0], vec![1], 1, None, None)).is_err());
    assert!(histogram_point(hv(vec![2.0, 1.0], vec![1, 1, 1], 3, None, None)).is_err());
    assert!(histogram_point(hv(vec![1.0, f64::INFINITY], vec![1, 1, 1], 3, None, None)).is_err());
    // Count only: a single +Inf bucket.
    let h = histogram_point(hv(vec![], vec![], 7, Some(3.0), None)).unwrap();
    assert_eq!((h.count, h.counts.len(), h.sum), (7, 0, Some(3.0)));
    // The buckets decide the count.
    let h = histogram_point(hv(vec![1.0], vec![2, 3], 99, Some(1.0), None)).unwrap();
    assert_eq!(h.count, 5);
    // No `_sum` when observations may be negative.
    let h = histogram_point(hv(vec![0.0], vec![1, 0], 1, Some(2.0), Some(-1.0))).unwrap();
    assert_eq!(h.sum, None);
    let h = histogram_point(hv(vec![-1.0, 0.0], vec![1, 0, 0], 1, Some(2.0), None)).unwrap();
    assert_eq!(h.sum, None);
    let h = histogram_point(hv(vec![-1.0, 0.0], vec![0, 1, 0], 1, Some(2.0), None)).unwrap();
    assert_eq!(h.sum, Some(2.0));
}

#[test]
fn wrong_value_types_drop_the_point_not_the_batch() {
    let batch = Batch {
        metrics: vec![
            metric(
                "g",
                "",
                "",
                MetricKind::Gauge,
                Temporality::Unspecified,
                false,
                vec![
                    dp(
                        vec![],
                        0,
                        1,
                        PointValue::Summary(SummaryValue {
                            count: 1,
                            sum: 1.0,
                            quantiles: RVec::new(),
                        }),
                    ),
                    dp(vec![], 0, 1, PointValue::Double(1.0)),
                ],
            ),
            metric(
                "h",
                "",
                "",
                MetricKind::Histogram,
                Temporality::Cumulative,
                false,
                vec![dp(vec![], 0, 1, PointValue::Int(3))],
            ),
        ]
        .into(),
        ..Batch::default()
    };
    let c = convert(&batch, &Options::default());
    assert_eq!(c.dropped.len(), 2, "{:?}", c.dropped);
    assert_eq!(c.families.len(), 2);
    assert_eq!(c.families[0].points.len(), 1);
    assert!(c.families[1].points.is_empty());
    // A family without points renders nothing.
    assert_eq!(text::render(&c.families[1..], Format::Text), "");
}

#[test]
fn same_family_merges_and_type_conflicts_drop() {
    let g = |name: &str, v: f64, attr: &str| {
        metric(
            name,
            "",
            "",
            MetricKind::Gauge,
            Temporality::Unspecified,
            false,
            vec![dp(
                vec![KeyValue::new("a", attr)],
                0,
                1,
                PointValue::Double(v),
            )],
        )
    };
    let mut counter = g("x", 5.0, "c");
    counter.kind = MetricKind::Sum;
    counter.is_monotonic = true;
    counter.temporality = Temporality::Cumulative;
    let batch = Batch {
        metrics: vec![g("x", 1.0, "1"), g("x", 2.0, "2"), counter].into(),
        ..Batch::default()
    };
    let c = convert(&batch, &Options::default());
    assert_eq!(c.families.len(), 1);
    assert_eq!(c.families[0].points.len(), 2);
    assert_eq!(c.dropped.len(), 1);
    assert!(c.dropped[0].contains("already a gauge"), "{:?}", c.dropped);
}

#[test]
fn delta_families_are_flagged() {
    let batch = Batch {
        metrics: vec![metric(
            "c",
            "",
            "",
            MetricKind::Sum,
            Temporality::Delta,
            true,
            vec![dp(vec![], 1, 2, PointValue::Int(3))],
        )]
        .into(),
        ..Batch::default()
    };
    let c = convert(&batch, &Options::default());
    assert!(c.families[0].delta);
    assert_eq!(c.families[0].meta.kind, FamilyType::Counter);
}

#[test]
fn escaping() {
    assert_eq!(text::escape_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    assert_eq!(text::escape_help_text("a\\b\"c\nd"), "a\\\\b\"c\\nd");
}

#[test]
fn negotiation() {
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(negotiate(Some(prometheus)), Format::OpenMetrics);
    assert_eq!(
        negotiate(Some("application/openmetrics-text")),
        Format::OpenMetrics
    );
    assert_eq!(
        negotiate(Some("application/openmetrics-text; version=0.0.1")),
        Format::OpenMetrics
    );
    assert_eq!(negotiate(None), Format::Text);
    assert_eq!(negotiate(Some("*/*")), Format::Text);
    assert_eq!(negotiate(Some("text/plain")), Format::Text);
    assert_eq!(
        negotiate(Some(
            "text/plain;version=0.0.4,application/openmetrics-text;q=0.5"
        )),
        Format::Text
    );
    assert_eq!(
        negotiate(Some("application/openmetrics-text;q=0")),
        Format::Text
    );
    assert_eq!(
        negotiate(Some("application/openmetrics-text;version=2.0.0")),
        Format::Text
    );
    assert_eq!(negotiate(Some("garbage;;;,=")), Format::Text);
    assert_eq!(
        text::TEXT_CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        text::OPENMETRICS_CONTENT_TYPE,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
}

// ---- remote write ----

/// `WriteRequest{timeseries: [{labels: [{__name__, up}, {job, a}], samples: [{1.0,
/// 1000}]}]}`, encoded by hand from the protobuf encoding rules and the prompb field
/// numbers: tag = field << 3 | wire type (2 = length-delimited, 1 = 64-bit, 0 =
/// varint).
const GOLDEN_PROTO: [u8; 42] = [
    0x0a, 0x28, // WriteRequest.timeseries (1, LEN) 40 bytes
    0x0a, 0x0e, // TimeSeries.labels (1, LEN) 14 bytes
    0x0a, 0x08, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_', // Label.name (1)
    0x12, 0x02, b'u', b'p', // Label.value (2)
    0x0a, 0x08, // TimeSeries.labels 8 bytes
    0x0a, 0x03, b'j', b'o', b'b', // name
    0x12, 0x01, b'a', // value
    0x12, 0x0c, // TimeSeries.samples (2, LEN) 12 bytes
    0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // Sample.value (1, I64) 1.0 little-endian
    0x10, 0xe8, 0x07, // Sample.timestamp (2, VARINT) 1000
];

fn gauge_family(name: &str, labels: &[(&str, &str)], value: f64, time_ns: u64) -> Family {
    Family {
        meta: FamilyMeta {
            name: name.into(),
            kind: FamilyType::Gauge,
            help: String::new(),
            unit: String::new(),
        },
        delta: false,
        points: vec![Point {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: Value::Double(value),
            start_unix_nano: 0,
            time_unix_nano: time_ns,
        }],
    }
}

#[test]
fn golden_remote_write_protobuf() {
    let req = remote_write::build(
        &[gauge_family("up", &[("job", "a")], 1.0, 1_000_000_000)],
        0,
    );
    let bytes = prost::Message::encode_to_vec(&req);
    assert_eq!(bytes, GOLDEN_PROTO);
}

#[test]
fn remote_write_body_is_snappy_block_format() {
    let req = remote_write::build(
        &[gauge_family("up", &[("job", "a")], 1.0, 1_000_000_000)],
        0,
    );
    let body = remote_write::encode_body(&req).unwrap();
    // Block format starts with the uncompressed length as a varint (42); the
    // framed format would start with the stream identifier chunk 0xff.
    assert_eq!(body[0], 42);
    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    assert_eq!(raw, GOLDEN_PROTO);
    assert_eq!(remote_write::decode_body(&body).unwrap(), req);
}

#[test]
fn remote_write_series_from_the_golden_batch() {
    let c = convert(&golden_batch(), &Options::default());
    let req = remote_write::build(&c.families, 123);
    let rendered: Vec<String> = req
        .timeseries
        .iter()
        .map(|ts| {
            let labels: Vec<String> = ts
                .labels
                .iter()
                .map(|l| format!("{}={}", l.name, l.value))
                .collect();
            let samples: Vec<String> = ts
                .samples
                .iter()
                .map(|s| format!("{}@{}", s.value, s.timestamp))
                .collect();
            format!("{} {}", labels.join(","), samples.join(","))
        })
        .collect();
    let t = (START + 10) / 1_000_000;
    let r = "instance=i-1,job=shop/api";
    let expected = vec![
        format!("__name__=http_requests_total,http_method=GET,http_status_code=200,{r} 42@{t}"),
        format!("__name__=http_server_duration_seconds_bucket,{r},le=+Inf,route=/a\"b 10@{t}"),
        format!("__name__=http_server_duration_seconds_bucket,{r},le=0.1,route=/a\"b 1@{t}"),
        format!("__name__=http_server_duration_seconds_bucket,{r},le=0.5,route=/a\"b 3@{t}"),
        format!("__name__=http_server_duration_seconds_bucket,{r},le=1.0,route=/a\"b 6@{t}"),
        format!("__name__=http_server_duration_seconds_count,{r},route=/a\"b 10@{t}"),
        format!("__name__=http_server_duration_seconds_sum,{r},route=/a\"b 7.5@{t}"),
        format!("__name__=queue_size,{r} -3@{t}"),
        format!("__name__=rpc_latency_milliseconds,{r},quantile=0.5 3@{t}"),
        format!("__name__=rpc_latency_milliseconds,{r},quantile=0.99 12@{t}"),
        format!("__name__=rpc_latency_milliseconds_count,{r} 5@{t}"),
        format!("__name__=rpc_latency_milliseconds_sum,{r} 20@{t}"),
        format!("__name__=system_memory_utilization_ratio,{r},state=used 0.25@{t}"),
        // No timestamp on target_info: stamped with the request time.
        format!("__name__=target_info,host_name=h1,{r} 1@123"),
    ];
    assert_eq!(rendered, expected);
}

#[test]
fn remote_write_labels_sort_by_bytes_and_samples_by_time() {
    let mut f = gauge_family("m", &[("Zone", "z"), ("a", "1")], 1.0, 3_000_000);
    let mut p2 = f.points[0].clone();
    p2.time_unix_nano = 1_000_000;
    p2.value = Value::Double(2.0);
    let mut p3 = f.points[0].clone();
    p3.value = Value::Double(3.0); // same time as the first: the later one wins
    f.points.push(p2);
    f.points.push(p3);
    let req = remote_write::build(&[f], 0);
    assert_eq!(req.timeseries.len(), 1);
    let names: Vec<&str> = req.timeseries[0]
        .labels
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["Zone", "__name__", "a"]);
    let samples: Vec<(f64, i64)> = req.timeseries[0]
        .samples
        .iter()
        .map(|s| (s.value, s.timestamp))
        .collect();
    assert_eq!(samples, [(2.0, 1), (3.0, 3)]);
}

/// The hot-path encoder writes exactly the bytes prost writes for `build`.
#[test]
fn encode_families_matches_build_byte_for_byte() {
    let mut cases: Vec<(Vec<Family>, i64)> = vec![
        (convert(&golden_batch(), &Options::default()).families, 123),
        (
            vec![gauge_family("up", &[("job", "a")], 1.0, 1_000_000_000)],
            0,
        ),
        // Zero value and zero/negative times: proto3 defaults omitted alike.
        (vec![gauge_family("z", &[("a", "")], 0.0, 0)], 0),
        (vec![gauge_family("n", &[("a", "b")], -1.5, 0)], -5),
    ];
    let mut f = gauge_family("m", &[("Zone", "z"), ("a", "1")], 1.0, 3_000_000);
    let mut p2 = f.points[0].clone();
    p2.time_unix_nano = 1_000_000;
    p2.value = Value::Double(2.0);
    let mut p3 = f.points[0].clone();
    p3.value = Value::Double(3.0);
    f.points.push(p2);
    f.points.push(p3);
    cases.push((vec![f, gauge_family("m", &[("a", "0")], 4.0, 0)], 9));
    for (families, now) in cases {
        let expected = prost::Message::encode_to_vec(&remote_write::build(&families, now));
        let mut out = vec![0xee]; // appends
        let n = remote_write::encode_families(&families, now, &mut out);
        assert_eq!(&out[1..], expected.as_slice(), "{families:?}");
        assert_eq!(n, remote_write::build(&families, now).timeseries.len());
        let mut enc = snap::raw::Encoder::new();
        let mut body = Vec::new();
        remote_write::compress_into(&mut enc, &out[1..], &mut body).unwrap();
        assert_eq!(
            remote_write::decode_body(&body).unwrap(),
            remote_write::build(&families, now)
        );
    }
}
