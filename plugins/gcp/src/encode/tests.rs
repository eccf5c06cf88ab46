//! Golden tests: expected bodies written from the API references cited in the
//! module docs (field names, enum spellings, int64-as-string, timestamp form).

use super::*;
use tfo_plugin_api::{
    HistogramValue, Quantile, Resource, SpanEvent, SummaryValue, Temporality as T,
};

const T0: u64 = 1_700_000_000_000_000_000; // 2023-11-14T22:13:20Z
const T1: u64 = 1_700_000_010_500_000_000; // 2023-11-14T22:13:30.5Z

fn encoder() -> Encoder {
    Encoder {
        project: "my-proj".into(),
        metric_prefix: "custom.googleapis.com/tfo".into(),
        log_name: "agent/main".into(),
        resource_type: "generic_node".into(),
        resource_labels: BTreeMap::from([("namespace".into(), "prod".into())]),
        region: "europe-west1".into(),
        labels: BTreeMap::from([("Team".into(), "infra".into())]),
        batch_size: 200,
        enabled: [true; 3],
        endpoints: [
            "https://monitoring.googleapis.com/v3".into(),
            "https://logging.googleapis.com/v2".into(),
            "https://cloudtrace.googleapis.com/v2".into(),
        ],
    }
}

fn resource() -> Resource {
    Resource {
        attributes: vec![
            KeyValue::new("host.name", "web-1"),
            KeyValue::new("service.name", "shop"),
        ]
        .into(),
    }
}

fn batch_with(metrics: Vec<Metric>) -> Batch {
    Batch {
        resource: resource(),
        metrics: metrics.into(),
        ..Default::default()
    }
}

fn metric(name: &str, kind: MetricKind, t: T, mono: bool, value: PointValue) -> Metric {
    let mut m = Metric::gauge(name, "By", T1, 0.0, vec![KeyValue::new("dev.name", "sda")]);
    m.kind = kind;
    m.temporality = t;
    m.is_monotonic = mono;
    m.points[0].value = value;
    m.points[0].start_time_unix_nano = T0;
    m
}

fn gcp_resource() -> Value {
    json!({"type": "generic_node", "labels": {
        "project_id": "my-proj", "location": "europe-west1", "namespace": "prod", "node_id": "web-1"
    }})
}

#[test]
fn timestamps() {
    assert_eq!(rfc3339(T0), "2023-11-14T22:13:20Z");
    assert_eq!(rfc3339(T1), "2023-11-14T22:13:30.500000000Z");
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1), "1970-01-01T00:00:00.000000001Z");
    // Leap days, century rules, the end of a year.
    let day = 86_400_000_000_000u64;
    assert_eq!(rfc3339(11_016 * day), "2000-02-29T00:00:00Z");
    assert_eq!(
        rfc3339(19_783 * day - 1_000_000_000),
        "2024-02-29T23:59:59Z"
    );
    assert_eq!(
        rfc3339(4_102_444_800 * 1_000_000_000),
        "2100-01-01T00:00:00Z"
    );
    assert_eq!(
        rfc3339(1_735_689_599 * 1_000_000_000),
        "2024-12-31T23:59:59Z"
    );
    assert_eq!(rfc3339(u64::MAX), "2554-07-21T23:34:33.709551615Z");
}

#[test]
fn gauge_and_counter_golden() {
    let b = batch_with(vec![
        metric(
            "disk.io",
            MetricKind::Sum,
            T::Cumulative,
            true,
            PointValue::Int(42),
        ),
        metric(
            "temp",
            MetricKind::Gauge,
            T::Unspecified,
            false,
            PointValue::Double(21.5),
        ),
    ]);
    let (reqs, skipped) = encoder().metrics(&b);
    assert_eq!(skipped, 0);
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].url,
        "https://monitoring.googleapis.com/v3/projects/my-proj/timeSeries"
    );
    assert_eq!((reqs[0].items, reqs[0].objects), (2, 2));
    let labels = json!({"dev_name": "sda", "service_name": "shop", "team": "infra"});
    assert_eq!(
        reqs[0].body,
        json!({"timeSeries": [
            {
                "metric": {"type": "custom.googleapis.com/tfo/disk.io", "labels": labels},
                "resource": gcp_resource(),
                "metricKind": "CUMULATIVE",
                "valueType": "INT64",
                "unit": "By",
                "points": [{
                    "interval": {"startTime": "2023-11-14T22:13:20Z", "endTime": "2023-11-14T22:13:30.500000000Z"},
                    "value": {"int64Value": "42"}
                }]
            },
            {
                "metric": {"type": "custom.googleapis.com/tfo/temp", "labels": labels},
                "resource": gcp_resource(),
                "metricKind": "GAUGE",
                "valueType": "DOUBLE",
                "unit": "By",
                "points": [{
                    "interval": {"endTime": "2023-11-14T22:13:30.500000000Z"},
                    "value": {"doubleValue": 21.5}
                }]
            }
        ]})
    );
}

#[test]
fn non_monotonic_sums_are_gauges_and_unknown_starts_are_one_ms_before() {
    let mut updown = metric(
        "q",
        MetricKind::Sum,
        T::Cumulative,
        false,
        PointValue::Int(-3),
    );
    updown.points[0].start_time_unix_nano = 0;
    let mut counter = metric(
        "c",
        MetricKind::Sum,
        T::Delta,
        true,
        PointValue::Double(1.0),
    );
    counter.points[0].start_time_unix_nano = 0;
    let (reqs, _) = encoder().metrics(&batch_with(vec![updown, counter]));
    let ts = reqs[0].body["timeSeries"].as_array().unwrap();
    assert_eq!(ts[0]["metricKind"], "GAUGE");
    assert_eq!(ts[0]["points"][0]["value"], json!({"int64Value": "-3"}));
    assert_eq!(ts[1]["metricKind"], "CUMULATIVE");
    assert_eq!(
        ts[1]["points"][0]["interval"],
        json!({"startTime": "2023-11-14T22:13:30.499000000Z", "endTime": "2023-11-14T22:13:30.500000000Z"})
    );
}

#[test]
fn histogram_is_a_distribution() {
    let h = PointValue::Histogram(HistogramValue {
        count: 4,
        sum: Some(100.0).into(),
        bounds: vec![10.0, 50.0].into(),
        bucket_counts: vec![1, 2, 1].into(),
        min: None.into(),
        max: None.into(),
    });
    let (reqs, skipped) = encoder().metrics(&batch_with(vec![metric(
        "lat",
        MetricKind::Histogram,
        T::Cumulative,
        false,
        h,
    )]));
    assert_eq!(skipped, 0);
    let ts = &reqs[0].body["timeSeries"][0];
    assert_eq!(ts["metricKind"], "CUMULATIVE");
    assert_eq!(ts["valueType"], "DISTRIBUTION");
    assert_eq!(
        ts["points"][0]["value"],
        json!({"distributionValue": {
            "count": "4",
            "mean": 25.0,
            "bucketOptions": {"explicitBuckets": {"bounds": [10.0, 50.0]}},
            "bucketCounts": ["1", "2", "1"]
        }})
    );
}

#[test]
fn summary_becomes_count_sum_and_quantile_series() {
    let s = PointValue::Summary(SummaryValue {
        count: 9,
        sum: 4.5,
        quantiles: vec![
            Quantile {
                quantile: 0.5,
                value: 0.4,
            },
            Quantile {
                quantile: 0.99,
                value: 1.2,
            },
        ]
        .into(),
    });
    let (reqs, _) = encoder().metrics(&batch_with(vec![metric(
        "rpc",
        MetricKind::Summary,
        T::Unspecified,
        false,
        s,
    )]));
    let ts = reqs[0].body["timeSeries"].as_array().unwrap();
    let types: Vec<&str> = ts
        .iter()
        .map(|t| t["metric"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "custom.googleapis.com/tfo/rpc_count",
            "custom.googleapis.com/tfo/rpc_sum",
            "custom.googleapis.com/tfo/rpc",
            "custom.googleapis.com/tfo/rpc"
        ]
    );
    assert_eq!(ts[0]["points"][0]["value"], json!({"int64Value": "9"}));
    assert_eq!(ts[3]["metric"]["labels"]["quantile"], "0.99");
    assert_eq!(ts[3]["metricKind"], "GAUGE");
    // One agent item, four series.
    assert_eq!((reqs[0].items, reqs[0].objects), (1, 4));
}

#[test]
fn unsendable_points_are_skipped_and_counted() {
    let bad_hist = PointValue::Histogram(HistogramValue {
        count: 1,
        sum: None.into(),
        bounds: vec![1.0].into(),
        bucket_counts: vec![1].into(), // should be 2
        min: None.into(),
        max: None.into(),
    });
    let b = batch_with(vec![
        metric(
            "nan",
            MetricKind::Gauge,
            T::Unspecified,
            false,
            PointValue::Double(f64::NAN),
        ),
        metric("h", MetricKind::Histogram, T::Delta, false, bad_hist),
        metric(
            "mismatch",
            MetricKind::Gauge,
            T::Unspecified,
            false,
            PointValue::Summary(SummaryValue {
                count: 0,
                sum: 0.0,
                quantiles: vec![].into(),
            }),
        ),
        metric(
            "ok",
            MetricKind::Gauge,
            T::Unspecified,
            false,
            PointValue::Int(1),
        ),
    ]);
    let (reqs, skipped) = encoder().metrics(&b);
    assert_eq!(skipped, 3);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].body["timeSeries"].as_array().unwrap().len(), 1);
}

#[test]
fn at_most_200_series_and_one_point_per_series_per_request() {
    let mut metrics = Vec::new();
    for i in 0..250 {
        metrics.push(Metric::gauge(&format!("m{i}"), "", T1, 1.0, vec![]));
    }
    // A second, later point of m0 and an earlier one of m1.
    metrics.push(Metric::gauge("m0", "", T1 + 1_000_000_000, 2.0, vec![]));
    metrics.push(Metric::gauge("m1", "", T1 - 1_000_000_000, 0.5, vec![]));
    let (reqs, _) = encoder().metrics(&batch_with(metrics));
    let sizes: Vec<usize> = reqs
        .iter()
        .map(|r| r.body["timeSeries"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [200, 50, 2]);
    for r in &reqs {
        let mut ids: Vec<String> = r.body["timeSeries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["metric"].to_string())
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "a series appears twice in one request");
    }
    // m1's earlier point goes first, its later one in the last request.
    let first_m1 = reqs[0].body["timeSeries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["metric"]["type"] == "custom.googleapis.com/tfo/m1")
        .unwrap();
    assert_eq!(first_m1["points"][0]["value"]["doubleValue"], 0.5);
    let last: Vec<&Value> = reqs[2].body["timeSeries"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert!(last
        .iter()
        .any(|t| t["metric"]["type"] == "custom.googleapis.com/tfo/m0"
            && t["points"][0]["value"]["doubleValue"] == 2.0));
    assert!(last
        .iter()
        .any(|t| t["metric"]["type"] == "custom.googleapis.com/tfo/m1"
            && t["points"][0]["value"]["doubleValue"] == 1.0));
    assert_eq!(reqs.iter().map(|r| r.items).sum::<u64>(), 252);
}

#[test]
fn label_keys_and_metric_names_follow_the_naming_rules() {
    assert_eq!(label_key("http.status_code"), "http_status_code");
    assert_eq!(label_key("HTTP-Method"), "http_method");
    assert_eq!(label_key("1st"), "key_1st");
    assert_eq!(label_key(""), "key_");
    assert_eq!(label_key(&"a".repeat(150)).len(), 100);
    assert_eq!(metric_name("system.cpu.time"), "system.cpu.time");
    assert_eq!(metric_name("weird name!"), "weird_name_");
    assert_eq!(metric_name("/"), "unnamed");
}

#[test]
fn resource_for_other_types() {
    let mut e = encoder();
    e.resource_type = "gce_instance".into();
    e.resource_labels = BTreeMap::from([
        ("instance_id".into(), "123".into()),
        ("zone".into(), "us-central1-a".into()),
    ]);
    assert_eq!(
        e.resource(&batch_with(vec![])),
        json!({"type": "gce_instance", "labels": {"project_id": "my-proj", "instance_id": "123", "zone": "us-central1-a"}})
    );
    e.resource_type = "generic_task".into();
    e.resource_labels.clear();
    assert_eq!(
        e.resource(&batch_with(vec![])),
        json!({"type": "generic_task", "labels": {"project_id": "my-proj", "location": "europe-west1",
            "namespace": "", "job": "shop", "task_id": "web-1"}})
    );
}

fn log(sev: u8, text: &str, body: AnyValue) -> LogRecord {
    LogRecord {
        time_unix_nano: T1,
        observed_time_unix_nano: T0,
        severity_number: sev,
        severity_text: text.into(),
        body,
        attributes: vec![].into(),
        trace_id: [0; 16],
        span_id: [0; 8],
    }
}

#[test]
fn log_entries_golden() {
    let mut first = log(17, "ERROR", AnyValue::Str("disk full".into()));
    first.attributes = vec![KeyValue::new("disk", "sda"), KeyValue::new("n", 3i64)].into();
    first.trace_id = [0xab; 16];
    first.span_id = [0x01; 8];
    let mut second = log(
        0,
        "warn",
        AnyValue::Str(r#"{"msg": "slow", "ms": 1200}"#.into()),
    );
    second.time_unix_nano = 0;
    let b = Batch {
        resource: resource(),
        logs: vec![first, second, log(10, "", AnyValue::Int(7))].into(),
        ..Default::default()
    };
    let reqs = encoder().logs(&b);
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].url,
        "https://logging.googleapis.com/v2/entries:write"
    );
    assert_eq!(
        reqs[0].body,
        json!({
            "logName": "projects/my-proj/logs/agent%2Fmain",
            "resource": gcp_resource(),
            "labels": {"Team": "infra"},
            "partialSuccess": true,
            "entries": [
                {
                    "timestamp": "2023-11-14T22:13:30.500000000Z",
                    "severity": "ERROR",
                    "textPayload": "disk full",
                    "labels": {"disk": "sda", "n": "3"},
                    "trace": format!("projects/my-proj/traces/{}", "ab".repeat(16)),
                    "spanId": "0101010101010101"
                },
                {
                    "timestamp": "2023-11-14T22:13:20Z",
                    "severity": "WARNING",
                    "jsonPayload": {"msg": "slow", "ms": 1200}
                },
                {
                    "timestamp": "2023-11-14T22:13:30.500000000Z",
                    "severity": "NOTICE",
                    "jsonPayload": {"message": 7}
                }
            ]
        })
    );
}

#[test]
fn severity_mapping() {
    let cases = [
        (1, "DEBUG"),
        (5, "DEBUG"),
        (9, "INFO"),
        (12, "NOTICE"),
        (13, "WARNING"),
        (17, "ERROR"),
        (21, "CRITICAL"),
        (22, "ALERT"),
        (24, "EMERGENCY"),
    ];
    for (n, want) in cases {
        assert_eq!(severity(&log(n, "", AnyValue::Int(0))), want, "{n}");
    }
    for (t, want) in [
        ("fatal", "CRITICAL"),
        ("Info", "INFO"),
        ("?", "DEFAULT"),
        ("", "DEFAULT"),
    ] {
        assert_eq!(severity(&log(0, t, AnyValue::Int(0))), want, "{t}");
    }
}

#[test]
fn many_logs_are_split() {
    let b = Batch {
        logs: (0..2500)
            .map(|_| log(9, "", AnyValue::Str("x".into())))
            .collect::<Vec<_>>()
            .into(),
        ..Default::default()
    };
    let reqs = encoder().logs(&b);
    let sizes: Vec<u64> = reqs.iter().map(|r| r.items).collect();
    assert_eq!(sizes, [1000, 1000, 500]);
    // Large entries: split by size (~9 MB per request).
    let big = "y".repeat(1024 * 1024);
    let b = Batch {
        logs: (0..20)
            .map(|_| log(9, "", AnyValue::Str(big.as_str().into())))
            .collect::<Vec<_>>()
            .into(),
        ..Default::default()
    };
    let reqs = encoder().logs(&b);
    assert!(reqs.len() >= 3, "{}", reqs.len());
    for r in &reqs {
        assert!(r.body.to_string().len() < 10 * 1024 * 1024);
    }
    assert_eq!(reqs.iter().map(|r| r.items).sum::<u64>(), 20);
}

#[test]
fn span_golden() {
    let s = Span {
        trace_id: [0x5b; 16],
        span_id: [0xee; 8],
        parent_span_id: [0x01; 8],
        name: "checkout".into(),
        kind: SpanKind::Server,
        start_time_unix_nano: T0,
        end_time_unix_nano: T1,
        status_code: StatusCode::Error,
        status_message: "boom".into(),
        attributes: vec![
            KeyValue::new("http.status_code", 500i64),
            KeyValue::new("ratio", 0.25),
            KeyValue::new("cached", false),
            KeyValue::new("service.name", "override"),
        ]
        .into(),
        events: vec![SpanEvent {
            name: "retry".into(),
            time_unix_nano: T0 + 1,
            attributes: vec![KeyValue::new("attempt", 2i64)].into(),
        }]
        .into(),
    };
    let b = Batch {
        resource: resource(),
        spans: vec![s].into(),
        ..Default::default()
    };
    let (reqs, skipped) = encoder().spans(&b);
    assert_eq!(skipped, 0);
    assert_eq!(
        reqs[0].url,
        "https://cloudtrace.googleapis.com/v2/projects/my-proj/traces:batchWrite"
    );
    let trace = "5b".repeat(16);
    assert_eq!(
        reqs[0].body,
        json!({"spans": [{
            "name": format!("projects/my-proj/traces/{trace}/spans/eeeeeeeeeeeeeeee"),
            "spanId": "eeeeeeeeeeeeeeee",
            "parentSpanId": "0101010101010101",
            "displayName": {"value": "checkout"},
            "startTime": "2023-11-14T22:13:20Z",
            "endTime": "2023-11-14T22:13:30.500000000Z",
            "attributes": {"attributeMap": {
                "http.status_code": {"intValue": "500"},
                "ratio": {"stringValue": {"value": "0.25"}},
                "cached": {"boolValue": false},
                "service.name": {"stringValue": {"value": "override"}},
                "host.name": {"stringValue": {"value": "web-1"}}
            }},
            "timeEvents": {"timeEvent": [{
                "time": "2023-11-14T22:13:20.000000001Z",
                "annotation": {
                    "description": {"value": "retry"},
                    "attributes": {"attributeMap": {"attempt": {"intValue": "2"}}}
                }
            }]},
            "status": {"code": 2, "message": "boom"},
            "spanKind": "SERVER"
        }]})
    );
}

#[test]
fn span_limits_truncate_and_count() {
    let long = "é".repeat(100); // 200 bytes
    let s = Span {
        trace_id: [1; 16],
        span_id: [2; 8],
        parent_span_id: [0; 8],
        name: long.as_str().into(),
        kind: SpanKind::Internal,
        start_time_unix_nano: T0,
        end_time_unix_nano: T1,
        status_code: StatusCode::Ok,
        status_message: "".into(),
        attributes: (0..40)
            .map(|i| KeyValue::new(format!("k{i:02}"), "v"))
            .chain(std::iter::once(KeyValue::new("x".repeat(200), "v")))
            .collect::<Vec<_>>()
            .into(),
        events: vec![].into(),
    };
    let v = encoder().span(&s, &[]);
    assert_eq!(v["displayName"]["value"].as_str().unwrap().len(), 128);
    assert_eq!(v["displayName"]["truncatedByteCount"], 72);
    assert!(v.get("parentSpanId").is_none());
    assert_eq!(
        v["attributes"]["attributeMap"].as_object().unwrap().len(),
        32
    );
    assert_eq!(v["attributes"]["droppedAttributesCount"], 9);
    assert_eq!(v["status"], json!({"code": 0}));
    assert_eq!(v["spanKind"], "INTERNAL");
}

#[test]
fn disabled_signals_are_not_encoded() {
    let mut e = encoder();
    e.enabled = [false, true, false];
    let b = Batch {
        metrics: vec![Metric::gauge("m", "", T1, 1.0, vec![])].into(),
        logs: vec![log(9, "", AnyValue::Str("x".into()))].into(),
        ..Default::default()
    };
    let enc = e.encode(&b);
    assert_eq!(enc.requests.len(), 1);
    assert_eq!(enc.requests[0].api, Api::Logging);
}

#[test]
fn delta_sums_start_one_ms_after_the_previous_interval() {
    let m = metric("d", MetricKind::Sum, T::Delta, true, PointValue::Int(5));
    let (reqs, _) = encoder().metrics(&batch_with(vec![m]));
    assert_eq!(
        reqs[0].body["timeSeries"][0]["points"][0]["interval"],
        json!({"startTime": "2023-11-14T22:13:20.001000000Z", "endTime": "2023-11-14T22:13:30.500000000Z"})
    );
    assert_eq!(reqs[0].body["timeSeries"][0]["metricKind"], "CUMULATIVE");
}

#[test]
fn spans_without_ids_are_skipped() {
    let ok = Span {
        trace_id: [1; 16],
        span_id: [2; 8],
        parent_span_id: [0; 8],
        name: "ok".into(),
        kind: SpanKind::Client,
        start_time_unix_nano: T0,
        end_time_unix_nano: T1,
        status_code: StatusCode::Unset,
        status_message: "".into(),
        attributes: vec![].into(),
        events: vec![].into(),
    };
    let no_trace = Span {
        trace_id: [0; 16],
        ..ok.clone()
    };
    let no_span = Span {
        span_id: [0; 8],
        ..ok.clone()
    };
    let b = Batch {
        spans: vec![no_trace, ok, no_span].into(),
        ..Default::default()
    };
    let enc = encoder().encode(&b);
    assert_eq!(enc.skipped, 2);
    assert_eq!(enc.requests.len(), 1);
    assert_eq!(enc.requests[0].items, 1);
    assert_eq!(
        enc.requests[0].body["spans"][0]["displayName"]["value"],
        "ok"
    );
    assert!(enc.requests[0].body["spans"][0].get("status").is_none());
}
