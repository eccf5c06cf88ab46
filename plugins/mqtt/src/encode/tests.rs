//! Golden tests: the exact messages for a batch with one of everything, written from
//! the formats documented in the module docs and `docs/integrations/mqtt.md`.

use tfo_plugin_api::{
    __private::abi_stable::std_types::RVec, HistogramValue, Quantile, SpanEvent, SummaryValue,
};

use super::*;

const T: u64 = 1_700_000_000_000_000_000;

fn resource() -> Resource {
    Resource {
        attributes: vec![
            KeyValue::new("service.name", "shop"),
            KeyValue::new("host.name", "web-1"),
        ]
        .into(),
    }
}

fn histogram() -> Metric {
    let mut h = Metric::gauge("http.server.duration", "s", T, 0.0, vec![]);
    h.kind = MetricKind::Histogram;
    h.temporality = Temporality::Cumulative;
    h.points[0].start_time_unix_nano = T - 10_000_000_000;
    h.points[0].value = PointValue::Histogram(HistogramValue {
        count: 6,
        sum: Some(1.5).into(),
        bounds: vec![0.1, 0.5, 1.0].into(),
        bucket_counts: vec![1, 2, 2, 1].into(),
        min: Some(0.05).into(),
        max: Some(1.2).into(),
    });
    h
}

fn summary() -> Metric {
    let mut s = Metric::gauge("rpc.latency", "ms", T, 0.0, vec![]);
    s.kind = MetricKind::Summary;
    s.points[0].value = PointValue::Summary(SummaryValue {
        count: 10,
        sum: 120.5,
        quantiles: vec![
            Quantile {
                quantile: 0.5,
                value: 10.0,
            },
            Quantile {
                quantile: 0.99,
                value: 30.25,
            },
        ]
        .into(),
    });
    s
}

fn span() -> Span {
    Span {
        trace_id: [0xab; 16],
        span_id: [1, 2, 3, 4, 5, 6, 7, 8],
        parent_span_id: [0; 8],
        name: "GET /cart".into(),
        kind: SpanKind::Server,
        start_time_unix_nano: T,
        end_time_unix_nano: T + 1_500_000,
        status_code: StatusCode::Error,
        status_message: "boom".into(),
        attributes: vec![KeyValue::new("http.status_code", 500i64)].into(),
        events: vec![SpanEvent {
            name: "exception".into(),
            time_unix_nano: T + 1_000,
            attributes: vec![KeyValue::new("exception.type", "Timeout")].into(),
        }]
        .into(),
    }
}

fn log() -> LogRecord {
    LogRecord {
        time_unix_nano: T,
        observed_time_unix_nano: T + 5,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: AnyValue::from("disk \"full\"\n"),
        attributes: vec![
            KeyValue::new("b", true),
            KeyValue::new("a", 1.5),
            KeyValue {
                key: "raw".into(),
                value: AnyValue::Bytes(vec![0xde, 0xad, 0xbe, 0xef].into()),
            },
            KeyValue::new("a", f64::NAN),
        ]
        .into(),
        trace_id: [0; 16],
        span_id: [0; 8],
    }
}

fn batch() -> Batch {
    let mut counter = Metric::counter(
        "http.requests",
        "{request}",
        T - 10_000_000_000,
        T,
        42.0,
        vec![KeyValue::new("route", "/cart")],
    );
    counter.points.push(DataPoint {
        attributes: vec![KeyValue::new("route", "/pay")].into(),
        start_time_unix_nano: T - 10_000_000_000,
        time_unix_nano: T,
        value: PointValue::Int(7),
    });
    Batch {
        resource: resource(),
        metrics: vec![
            Metric::gauge("cpu.load", "1", T, 0.25, vec![]),
            counter,
            histogram(),
            summary(),
        ]
        .into(),
        spans: vec![span()].into(),
        logs: vec![log()].into(),
    }
}

fn texts(e: &Encoded) -> Vec<(String, String)> {
    e.messages
        .iter()
        .map(|m| {
            (
                m.topic.clone(),
                String::from_utf8(m.payload.clone()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn json_golden() {
    let t = TopicTemplate::parse("tfo/{type}/{service}/{host}/{name}").unwrap();
    let e = encode_batch(&batch(), &t, Format::Json);
    assert_eq!(e.skipped, 0);
    let got = texts(&e);
    let res = r#""resource":{"host.name":"web-1","service.name":"shop"}"#;
    let expected: Vec<(String, String)> = vec![
        (
            "tfo/metrics/shop/web-1/cpu.load".into(),
            format!(
                r#"{{"type":"metric","name":"cpu.load","description":"","unit":"1","kind":"gauge","temporality":"unspecified","monotonic":false,"time_unix_nano":{T},"start_time_unix_nano":0,"attributes":{{}},"value":0.25,{res}}}"#
            ),
        ),
        (
            "tfo/metrics/shop/web-1/http.requests".into(),
            format!(
                r#"{{"type":"metric","name":"http.requests","description":"","unit":"{{request}}","kind":"sum","temporality":"cumulative","monotonic":true,"time_unix_nano":{T},"start_time_unix_nano":1699999990000000000,"attributes":{{"route":"/cart"}},"value":42.0,{res}}}"#
            ),
        ),
        (
            "tfo/metrics/shop/web-1/http.requests".into(),
            format!(
                r#"{{"type":"metric","name":"http.requests","description":"","unit":"{{request}}","kind":"sum","temporality":"cumulative","monotonic":true,"time_unix_nano":{T},"start_time_unix_nano":1699999990000000000,"attributes":{{"route":"/pay"}},"value":7,{res}}}"#
            ),
        ),
        (
            "tfo/metrics/shop/web-1/http.server.duration".into(),
            format!(
                r#"{{"type":"metric","name":"http.server.duration","description":"","unit":"s","kind":"histogram","temporality":"cumulative","monotonic":false,"time_unix_nano":{T},"start_time_unix_nano":1699999990000000000,"attributes":{{}},"value":{{"count":6,"sum":1.5,"min":0.05,"max":1.2,"bounds":[0.1,0.5,1.0],"bucket_counts":[1,2,2,1]}},{res}}}"#
            ),
        ),
        (
            "tfo/metrics/shop/web-1/rpc.latency".into(),
            format!(
                r#"{{"type":"metric","name":"rpc.latency","description":"","unit":"ms","kind":"summary","temporality":"unspecified","monotonic":false,"time_unix_nano":{T},"start_time_unix_nano":0,"attributes":{{}},"value":{{"count":10,"sum":120.5,"quantiles":[{{"quantile":0.5,"value":10.0}},{{"quantile":0.99,"value":30.25}}]}},{res}}}"#
            ),
        ),
        (
            "tfo/traces/shop/web-1/GET _cart".into(),
            format!(
                r#"{{"type":"span","trace_id":"abababababababababababababababab","span_id":"0102030405060708","name":"GET /cart","kind":"server","start_time_unix_nano":{T},"end_time_unix_nano":1700000000001500000,"status_code":"error","status_message":"boom","attributes":{{"http.status_code":500}},"events":[{{"name":"exception","time_unix_nano":1700000000000001000,"attributes":{{"exception.type":"Timeout"}}}}],{res}}}"#
            ),
        ),
        (
            "tfo/logs/shop/web-1/error".into(),
            format!(
                r#"{{"type":"log","time_unix_nano":{T},"observed_time_unix_nano":1700000000000000005,"severity_number":17,"severity_text":"ERROR","body":"disk \"full\"\n","attributes":{{"a":"NaN","b":true,"raw":"3q2+7w=="}},{res}}}"#
            ),
        ),
    ];
    assert_eq!(got.len(), expected.len());
    for (g, x) in got.iter().zip(&expected) {
        assert_eq!(g, x);
    }
    // Every payload is valid JSON.
    for (_, p) in &got {
        serde_json::from_str::<serde_json::Value>(p).unwrap();
    }
}

#[test]
fn json_optional_ids_and_special_doubles() {
    let mut s = span();
    s.parent_span_id = [9; 8];
    let v: serde_json::Value = serde_json::from_str(&span_json(&Resource::default(), &s)).unwrap();
    assert_eq!(v["parent_span_id"], "0909090909090909");
    assert_eq!(v["resource"], serde_json::json!({}));

    let mut l = log();
    l.trace_id = [1; 16];
    l.span_id = [2; 8];
    l.body = AnyValue::Int(-3);
    let v: serde_json::Value = serde_json::from_str(&log_json(&Resource::default(), &l)).unwrap();
    assert_eq!(v["trace_id"], "01010101010101010101010101010101");
    assert_eq!(v["span_id"], "0202020202020202");
    assert_eq!(v["body"], -3);

    let g = Metric::gauge("g", "", 1, f64::NEG_INFINITY, vec![]);
    let v: serde_json::Value =
        serde_json::from_str(&metric_json(&Resource::default(), &g, &g.points[0])).unwrap();
    assert_eq!(v["value"], "-Infinity");
    let mut h = histogram();
    if let PointValue::Histogram(hv) = &mut h.points[0].value {
        hv.sum = None.into();
        hv.min = None.into();
        hv.max = None.into();
    }
    let text = metric_json(&Resource::default(), &h, &h.points[0]);
    assert!(text.contains(r#""value":{"count":6,"bounds""#), "{text}");
}

#[test]
fn topic_placeholders_are_sanitised() {
    let mut b = Batch {
        resource: Resource {
            attributes: vec![KeyValue::new("host.name", "a/b+c#d")].into(),
        },
        metrics: vec![Metric::gauge("x/y", "", 1, 1.0, vec![])].into(),
        ..Batch::default()
    };
    let mut l = log();
    l.severity_text = "".into();
    b.logs.push(l);
    let t = TopicTemplate::parse("{type}/{host}/{service}/{name}").unwrap();
    let e = encode_batch(&b, &t, Format::Json);
    let topics: Vec<&str> = e.messages.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "metrics/a_b_c_d/unknown/x_y",
            "logs/a_b_c_d/unknown/unspecified"
        ]
    );
}

#[test]
fn influx_golden() {
    let t = TopicTemplate::parse("influx/{name}").unwrap();
    let e = encode_batch(&batch(), &t, Format::Influx);
    let got = texts(&e);
    let tags = "host.name=web-1,service.name=shop";
    let expected: Vec<(String, String)> = vec![
        (
            "influx/cpu.load".into(),
            format!("cpu.load,{tags} gauge=0.25 {T}"),
        ),
        (
            "influx/http.requests".into(),
            format!("http.requests,host.name=web-1,route=/cart,service.name=shop counter=42 {T}"),
        ),
        (
            "influx/http.requests".into(),
            format!("http.requests,host.name=web-1,route=/pay,service.name=shop counter=7i {T}"),
        ),
        (
            "influx/http.server.duration".into(),
            format!("http.server.duration,{tags} 0.1=1,0.5=3,1=5,+Inf=6,count=6,sum=1.5 {T}"),
        ),
        (
            "influx/rpc.latency".into(),
            format!("rpc.latency,{tags} 0.5=10,0.99=30.25,count=10,sum=120.5 {T}"),
        ),
    ];
    assert_eq!(got, expected);
    assert_eq!(
        e.skipped, 2,
        "the span and the log record are not published"
    );
    assert!(e.skip_reason.unwrap().contains("metrics only"));
}

#[test]
fn influx_escaping_golden() {
    let r = Resource {
        attributes: vec![
            KeyValue::new("host name", "web 1,eu=west"),
            KeyValue::new("empty", ""),
            KeyValue::new("", "no key"),
        ]
        .into(),
    };
    let mut g = Metric::gauge(
        "my measurement,v2",
        "",
        0,
        -1.5,
        vec![
            KeyValue::new("path", "C:\\temp\\"),
            KeyValue::new("odd", "a\\,b"),
            KeyValue::new("multi", "line1\nline2"),
            KeyValue::new("eq=key", "x=y"),
            KeyValue::new("n", 3i64),
            KeyValue::new("flag", false),
        ],
    );
    g.kind = MetricKind::Sum; // non-monotonic sum: a gauge field
    let line = influx_line(&r, &g, &g.points[0]).unwrap();
    assert_eq!(
        line,
        r"my\ measurement\,v2,eq\=key=x\=y,flag=false,host\ name=web\ 1\,eu\=west,multi=line1\ line2,n=3,odd=a\\\,b,path=C:\temp\\ gauge=-1.5"
    );
    // A leading '#' would make the line a comment.
    let c = Metric::gauge("#hash", "", 5, 1.0, vec![]);
    assert_eq!(
        influx_line(&Resource::default(), &c, &c.points[0]).unwrap(),
        r"\#hash gauge=1 5"
    );
}

#[test]
fn influx_skips_what_line_protocol_cannot_carry() {
    let nan = Metric::gauge("g", "", 1, f64::NAN, vec![]);
    let b = Batch {
        metrics: vec![nan, Metric::gauge("", "", 1, 1.0, vec![])].into(),
        ..Batch::default()
    };
    let e = encode_batch(&b, &TopicTemplate::parse("x").unwrap(), Format::Influx);
    assert!(e.messages.is_empty());
    assert_eq!(e.skipped, 2);

    // Non-finite quantiles and sum are left out, the rest stays.
    let mut s = summary();
    if let PointValue::Summary(sv) = &mut s.points[0].value {
        sv.sum = f64::INFINITY;
        sv.quantiles = RVec::from(vec![Quantile {
            quantile: 0.5,
            value: f64::NAN,
        }]);
    }
    assert_eq!(
        influx_line(&Resource::default(), &s, &s.points[0]).unwrap(),
        format!("rpc.latency count=10 {T}")
    );
}

#[test]
fn preview_lists_topic_and_payload() {
    let e = encode_batch(
        &batch(),
        &TopicTemplate::parse("p/{type}").unwrap(),
        Format::Influx,
    );
    let text = preview(&e, Format::Influx);
    assert!(text.starts_with("p/metrics cpu.load,host.name=web-1,service.name=shop gauge=0.25 "));
    assert!(text.ends_with("# 2 item(s) not published: format influx publishes metrics only; spans and log records are not published\n"));
}

/// `format: otlp`: one message per signal, in the order metrics, traces, logs, each
/// the protobuf bytes of the shared encoder's request, `{name}` = `otlp`.
#[test]
fn otlp_golden_one_message_per_signal() {
    use tfo_plugin_common::otlp::{
        opentelemetry_proto::tonic::collector::{
            logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
            trace::v1::ExportTraceServiceRequest,
        },
        prost::Message as _,
    };
    let b = batch();
    let t = TopicTemplate::parse("tfo/{type}/{service}/{host}/{name}").unwrap();
    let e = encode_batch(&b, &t, Format::Otlp);
    assert_eq!((e.skipped, &e.skip_reason), (0, &None));
    let split: Vec<(&str, u64)> = e
        .messages
        .iter()
        .map(|m| (m.topic.as_str(), m.items))
        .collect();
    assert_eq!(
        split,
        [
            ("tfo/metrics/shop/web-1/otlp", 5),
            ("tfo/traces/shop/web-1/otlp", 1),
            ("tfo/logs/shop/web-1/otlp", 1),
        ]
    );
    assert_eq!(
        e.messages[0].payload,
        otlp::metrics(&b).0.unwrap().encode_to_vec()
    );
    assert_eq!(
        e.messages[1].payload,
        otlp::traces(&b).unwrap().encode_to_vec()
    );
    assert_eq!(
        e.messages[2].payload,
        otlp::logs(&b).unwrap().encode_to_vec()
    );

    // The payloads decode as the requests they claim to be.
    let m = ExportMetricsServiceRequest::decode(e.messages[0].payload.as_slice()).unwrap();
    let names: Vec<&str> = m.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "cpu.load",
            "http.requests",
            "http.server.duration",
            "rpc.latency"
        ]
    );
    let s = ExportTraceServiceRequest::decode(e.messages[1].payload.as_slice()).unwrap();
    assert_eq!(
        s.resource_spans[0].scope_spans[0].spans[0].name,
        "GET /cart"
    );
    let l = ExportLogsServiceRequest::decode(e.messages[2].payload.as_slice()).unwrap();
    let resource = l.resource_logs[0].resource.as_ref().unwrap();
    assert_eq!(resource.attributes[0].key, "service.name");
    assert_eq!(l.resource_logs[0].scope_logs[0].log_records.len(), 1);

    let text = preview(&e, Format::Otlp);
    assert!(
        text.starts_with(&format!(
            "tfo/metrics/shop/web-1/otlp <OTLP protobuf, {} bytes, 5 item(s)>\n",
            e.messages[0].payload.len()
        )),
        "{text}"
    );
}

/// Only the signals a batch holds are published; points OTLP cannot carry are
/// counted, not sent.
#[test]
fn otlp_skips_absent_signals_and_mismatched_points() {
    let mut bad = Metric::gauge("g", "1", T, 1.0, vec![]);
    bad.points.push(histogram().points[0].clone());
    let b = Batch {
        resource: resource(),
        metrics: vec![bad].into(),
        ..Batch::default()
    };
    let e = encode_batch(
        &b,
        &TopicTemplate::parse("o/{type}/{name}").unwrap(),
        Format::Otlp,
    );
    assert_eq!(e.messages.len(), 1);
    assert_eq!(
        (e.messages[0].topic.as_str(), e.messages[0].items),
        ("o/metrics/otlp", 1)
    );
    assert_eq!(e.skipped, 1);
    assert!(e.skip_reason.unwrap().contains("does not fit"));

    let logs_only = Batch {
        logs: vec![log()].into(),
        ..Batch::default()
    };
    let e = encode_batch(
        &logs_only,
        &TopicTemplate::parse("o/{type}").unwrap(),
        Format::Otlp,
    );
    let topics: Vec<&str> = e.messages.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, ["o/logs"]);
    assert!(encode_batch(
        &Batch::default(),
        &TopicTemplate::parse("o").unwrap(),
        Format::Otlp
    )
    .messages
    .is_empty());
}
