//! Golden tests of the Loki encoder. The JSON is written by hand from the push
//! API's JSON example (labels object, `[ns-string, line, {structured metadata}]`
//! values); the protobuf bytes by hand from push.proto's field numbers and the
//! protobuf wire format (tag = field << 3 | wire type, lengths as varints).

use tfo_plugin_api::{AnyValue, Batch, KeyValue, LogRecord, Resource};

use super::*;
use crate::config::Config;

const T: u64 = 1_700_000_000_000_000_000;

fn opts(extra: &str) -> Options {
    let c: Config =
        serde_json::from_str(&format!(r#"{{"endpoint": "http://x" {extra}}}"#)).unwrap();
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    Options::from_config(&c)
}

fn rec(time: u64, sev: u8, text: &str, body: &str, attrs: Vec<KeyValue>) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: 0,
        severity_number: sev,
        severity_text: text.into(),
        body: AnyValue::Str(body.into()),
        attributes: attrs.into(),
        trace_id: [0; 16],
        span_id: [0; 8],
    }
}

fn batch(resource: Vec<KeyValue>, logs: Vec<LogRecord>) -> Batch {
    Batch {
        resource: Resource {
            attributes: resource.into(),
        },
        logs: logs.into(),
        ..Default::default()
    }
}

fn shop() -> Vec<KeyValue> {
    vec![
        KeyValue::new("service.name", "checkout"),
        KeyValue::new("host.name", "web-1"),
        KeyValue::new("k8s.pod.name", "pod-1"),
    ]
}

#[test]
fn json_streams_labels_order_and_structured_metadata() {
    let mut second = rec(
        T + 2,
        9,
        "INFO",
        "second",
        vec![KeyValue::new("user.id", "superUser123")],
    );
    second.trace_id = [0x02, 0x42, 0xac, 0x12, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let first = rec(T + 1, 9, "", "first", vec![]);
    let boom = rec(
        T,
        17,
        "ERROR",
        "boom",
        vec![KeyValue::new("level", "critical")],
    );
    let b = batch(shop(), vec![second, first, boom]);
    let e = encode_batch(&b, &opts(r#", "labels": {"job": "tfo-agent"}"#), 0);
    assert_eq!(e.pushes.len(), 1);
    let got = String::from_utf8(json_body(&e.pushes[0])).unwrap();
    let want = concat!(
        r#"{"streams":["#,
        r#"{"stream":{"host_name":"web-1","job":"tfo-agent","level":"critical","service_name":"checkout"},"#,
        r#""values":[["1700000000000000000","boom",{"k8s_pod_name":"pod-1"}]]},"#,
        r#"{"stream":{"host_name":"web-1","job":"tfo-agent","level":"info","service_name":"checkout"},"#,
        r#""values":[["1700000000000000001","first",{"k8s_pod_name":"pod-1"}],"#,
        r#"["1700000000000000002","second",{"k8s_pod_name":"pod-1","trace_id":"0242ac12000200000000000000000001","user_id":"superUser123"}]]}"#,
        r#"]}"#
    );
    assert_eq!(got, want);
    // The protobuf form carries the same streams, label sets as text.
    let p = to_proto(&e.pushes[0]);
    assert_eq!(
        p.streams[0].labels,
        r#"{host_name="web-1", job="tfo-agent", level="critical", service_name="checkout"}"#
    );
    assert_eq!(p.streams[1].entries[1].line, "second");
    assert_eq!(
        p.streams[1].entries[1].timestamp,
        Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 2
        })
    );
}

#[test]
fn protobuf_bytes_follow_push_proto() {
    let push = Push {
        streams: vec![Stream {
            labels: vec![("job".into(), "a".into())],
            entries: vec![Entry {
                ts: 1_000_000_002, // 1 s + 2 ns
                line: "hi".into(),
                metadata: vec![("k".into(), "v".into())],
            }],
        }],
    };
    #[rustfmt::skip]
    let want: Vec<u8> = vec![
        0x0a, 0x1f,                   // PushRequest.streams (1, LEN) 31 bytes
          0x0a, 0x09,                 // StreamAdapter.labels (1, LEN) 9 bytes
            b'{', b'j', b'o', b'b', b'=', b'"', b'a', b'"', b'}',
          0x12, 0x12,                 // StreamAdapter.entries (2, LEN) 18 bytes
            0x0a, 0x04,               // EntryAdapter.timestamp (1, LEN) 4 bytes
              0x08, 0x01,             // Timestamp.seconds (1, VARINT) = 1
              0x10, 0x02,             // Timestamp.nanos (2, VARINT) = 2
            0x12, 0x02, b'h', b'i',   // EntryAdapter.line (2, LEN)
            0x1a, 0x06,               // EntryAdapter.structuredMetadata (3, LEN)
              0x0a, 0x01, b'k',       // LabelPairAdapter.name (1)
              0x12, 0x01, b'v',       // LabelPairAdapter.value (2)
          // hash (3) = 0 is not written (proto3 default)
    ];
    assert_eq!(to_proto(&push).encode_to_vec(), want);
    let body = protobuf_body(&push).unwrap();
    // Block format: starts with the uncompressed length as a varint (33), not the
    // framed format's stream identifier chunk (0xff).
    assert_eq!(body[0], 33);
    assert_eq!(
        snap::raw::Decoder::new().decompress_vec(&body).unwrap(),
        want
    );
}

#[test]
fn label_names_are_sanitized_and_values_escaped() {
    assert_eq!(sanitize_label_name("service.name"), "service_name");
    assert_eq!(sanitize_label_name("1st"), "_1st");
    assert_eq!(sanitize_label_name("ü-x"), "__x");
    assert_eq!(sanitize_label_name("ok_1"), "ok_1");
    assert_eq!(
        label_string(&[
            ("a".into(), "say \"hi\" \\ now\n\tdone\u{1}".into()),
            ("b".into(), "ünïcode".into()),
        ]),
        r#"{a="say \"hi\" \\ now\n\tdone\u0001", b="ünïcode"}"#
    );
    // Attribute names with characters Loki refuses become valid label names.
    let b = batch(
        vec![],
        vec![rec(
            T,
            0,
            "",
            "x",
            vec![KeyValue::new("http.status-code", 200i64)],
        )],
    );
    let e = encode_batch(
        &b,
        &opts(r#", "label_attributes": ["http.status-code"]"#),
        0,
    );
    assert_eq!(
        e.pushes[0].streams[0].labels,
        [("http_status_code".to_string(), "200".to_string())]
    );
}

#[test]
fn other_attributes_in_the_line_or_dropped() {
    let mut r = rec(
        T,
        13,
        "WARN",
        "disk low",
        vec![
            KeyValue::new("mount", "/var/lib"),
            KeyValue::new("msg", "a b"),
            KeyValue::new("free.ratio", 0.05),
            KeyValue::new("quote", "x\"y"),
        ],
    );
    r.span_id = [0xab; 8];
    let b = batch(shop(), vec![r]);
    let e = encode_batch(&b, &opts(r#", "other_attributes": "line""#), 0);
    let entry = &e.pushes[0].streams[0].entries[0];
    assert_eq!(
        entry.line,
        r#"disk low free_ratio=0.05 k8s_pod_name=pod-1 mount=/var/lib msg="a b" quote="x\"y" span_id=abababababababab"#
    );
    assert!(entry.metadata.is_empty());
    let e = encode_batch(&b, &opts(r#", "other_attributes": "drop""#), 0);
    let entry = &e.pushes[0].streams[0].entries[0];
    assert_eq!(entry.line, "disk low");
    assert!(entry.metadata.is_empty());
    assert_eq!(
        e.pushes[0].streams[0].labels,
        [
            ("host_name".to_string(), "web-1".to_string()),
            ("level".to_string(), "warn".to_string()),
            ("service_name".to_string(), "checkout".to_string()),
        ]
    );
}

#[test]
fn bad_data_is_cut_not_refused() {
    // A 300-byte line of two-byte characters: cut at a character boundary.
    let huge = "é".repeat(150);
    let long_label = "v".repeat(3000);
    let many: Vec<KeyValue> = (0..200)
        .map(|i| KeyValue::new(format!("k{i:03}"), "x"))
        .collect();
    let mut logs = vec![
        rec(T, 0, "", &huge, vec![KeyValue::new("ratio", f64::NAN)]),
        rec(
            T,
            0,
            "",
            "long label",
            vec![KeyValue::new("service.name", long_label.as_str())],
        ),
        rec(T, 0, "", "many", many),
    ];
    logs[0].observed_time_unix_nano = T + 5; // no time: the observed time is used
    logs[0].time_unix_nano = 0;
    let b = batch(vec![], logs);
    let o = opts(r#", "max_line_bytes": 101, "label_attributes": ["service.name"]"#);
    let e = encode_batch(&b, &o, 0);
    assert_eq!(
        (e.lines_cut, e.label_values_cut, e.metadata_dropped),
        (1, 1, 72)
    );
    let streams = &e.pushes[0].streams;
    // No label at all: Loki refuses such streams, so one is supplied.
    let unknown = streams
        .iter()
        .find(|s| s.labels == [("service_name".to_string(), "unknown_service".to_string())])
        .expect("unknown_service stream");
    let cut = unknown
        .entries
        .iter()
        .find(|e| e.line.starts_with('é'))
        .unwrap();
    assert_eq!(cut.line, "é".repeat(50));
    assert_eq!(cut.ts, T + 5);
    assert_eq!(cut.metadata, [("ratio".to_string(), "NaN".to_string())]);
    let many = unknown.entries.iter().find(|e| e.line == "many").unwrap();
    assert_eq!(many.metadata.len(), MAX_METADATA_PAIRS);
    let long = streams
        .iter()
        .find(|s| s.labels[0].1.starts_with('v'))
        .unwrap();
    assert_eq!(long.labels[0].1.len(), 2048);
}

#[test]
fn large_batches_are_split_in_time_order() {
    let logs: Vec<LogRecord> = (0..40u64)
        .rev()
        .map(|i| {
            rec(
                T + i,
                9,
                "INFO",
                &format!("{i:02}{}", "x".repeat(90)),
                vec![],
            )
        })
        .collect();
    let b = batch(vec![KeyValue::new("service.name", "s")], logs);
    let e = encode_batch(
        &b,
        &opts(r#", "max_request_bytes": 1024, "max_line_bytes": 512"#),
        0,
    );
    assert!(e.pushes.len() >= 4, "{}", e.pushes.len());
    let mut seen = Vec::new();
    for p in &e.pushes {
        assert_eq!(p.streams.len(), 1);
        let size: usize = p.streams[0].entries.iter().map(|e| e.line.len() + 16).sum();
        assert!(size <= 1024, "{size}");
        seen.extend(p.streams[0].entries.iter().map(|e| e.ts - T));
    }
    assert_eq!(seen, (0..40).collect::<Vec<u64>>());
}
