//! The agent's data model -> Alibaba Cloud wire formats. Pure, golden-tested.
//!
//! - **SLS PutLogs** (<https://www.alibabacloud.com/help/en/sls/developer-reference/api-sls-2020-12-30-putlogs>):
//!   a protobuf `LogGroup` (schema of the SLS SDKs' `log_logs.proto`: `Log{Time=1
//!   uint32, Contents=2 {Key=1, Value=2}, Time_ns=4 fixed32}`, `LogGroup{Logs=1,
//!   Topic=3, Source=4, LogTags=6 {Key=1, Value=2}}`), compressed with the LZ4 block
//!   format (no size prefix; `x-log-bodyrawsize` carries the raw size) or zlib
//!   deflate. One log per record with contents `level`, `severity_number`,
//!   `message`, `trace_id`, `span_id` (when set) and the record's attributes;
//!   the resource attributes and configured labels are LogTags. A LogGroup holds
//!   at most 4096 logs and about 5 MB (the API's limits); bigger batches are split.
//! - **CloudMonitor PutCustomMetric** (<https://www.alibabacloud.com/help/en/cms/developer-reference/api-cms-2019-01-01-putcustommetric>):
//!   `MetricList.N.{MetricName, GroupId, Dimensions, Time, Type, Values}` for N in
//!   1..=21 per request; raw data (`Type=0`, `Values={"value":v}`). Dimensions are a
//!   JSON object of the point attributes, the resource's `host.name` (as `host`)
//!   and the configured labels; keys and values are cut to 64 bytes and characters
//!   outside letters, digits, `. - _ / \` become `_`. Histograms and summaries send
//!   their mean. Non-finite values and empty histograms are skipped and counted.

use std::collections::BTreeMap;

use prost::Message;
use serde_json::{json, Value};
use tfo_plugin_api::{AnyValue, Batch, KeyValue, PointValue};
use tfo_plugin_common::hex;

use crate::config::SlsCompression;

/// Most logs in one LogGroup.
pub const MAX_LOGS_PER_GROUP: usize = 4096;
/// Target largest raw LogGroup.
pub const MAX_GROUP_BYTES: usize = 5 * 1024 * 1024;
/// Most metrics in one PutCustomMetric call.
pub const MAX_METRICS_PER_CALL: usize = 21;
/// Longest dimension key or value CloudMonitor keeps.
pub const MAX_DIMENSION_LEN: usize = 64;

/// `Log.Content`.
#[derive(Clone, PartialEq, Message)]
pub struct LogContent {
    /// Field name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Field value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `Log`.
#[derive(Clone, PartialEq, Message)]
pub struct Log {
    /// Unix seconds.
    #[prost(uint32, tag = "1")]
    pub time: u32,
    /// Fields.
    #[prost(message, repeated, tag = "2")]
    pub contents: Vec<LogContent>,
    /// Nanoseconds within the second.
    #[prost(fixed32, optional, tag = "4")]
    pub time_ns: Option<u32>,
}

/// `LogTag`.
#[derive(Clone, PartialEq, Message)]
pub struct LogTag {
    /// Tag name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Tag value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `LogGroup`, the PutLogs body before compression.
#[derive(Clone, PartialEq, Message)]
pub struct LogGroup {
    /// Logs.
    #[prost(message, repeated, tag = "1")]
    pub logs: Vec<Log>,
    /// Topic.
    #[prost(string, optional, tag = "3")]
    pub topic: Option<String>,
    /// Source (host).
    #[prost(string, optional, tag = "4")]
    pub source: Option<String>,
    /// Tags of the whole group.
    #[prost(message, repeated, tag = "6")]
    pub log_tags: Vec<LogTag>,
}

/// An attribute value as text.
pub fn value_text(v: &AnyValue) -> String {
    match v {
        AnyValue::Str(s) => s.to_string(),
        AnyValue::Bool(b) => b.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => d.to_string(),
        AnyValue::Bytes(b) => tfo_plugin_common::auth::base64(b),
    }
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| value_text(&kv.value))
}

/// LogGroup settings from the config.
#[derive(Debug, Clone, Default)]
pub struct GroupSettings {
    /// Topic.
    pub topic: String,
    /// Source; default the resource's `host.name`.
    pub source: Option<String>,
    /// Configured labels (LogTags).
    pub labels: BTreeMap<String, String>,
}

/// One LogGroup and the number of records in it.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedGroup {
    /// The serialized LogGroup (uncompressed).
    pub raw: Vec<u8>,
    /// Records in it.
    pub records: u64,
}

/// The batch's log records as LogGroups (split by count and size).
pub fn log_groups(batch: &Batch, s: &GroupSettings, now_unix_nanos: u64) -> Vec<EncodedGroup> {
    let res = &batch.resource.attributes;
    let mut tags: Vec<LogTag> = res
        .iter()
        .map(|kv| LogTag {
            key: kv.key.to_string(),
            value: value_text(&kv.value),
        })
        .collect();
    tags.extend(s.labels.iter().map(|(k, v)| LogTag {
        key: k.clone(),
        value: v.clone(),
    }));
    let source = s
        .source
        .clone()
        .or_else(|| attr(res, "host.name"))
        .unwrap_or_default();
    let empty = LogGroup {
        logs: Vec::new(),
        topic: Some(s.topic.clone()),
        source: Some(source),
        log_tags: tags,
    };
    let mut out = Vec::new();
    let mut cur = empty.clone();
    let mut cur_bytes = cur.encoded_len();
    for l in batch.logs.iter() {
        let t = if l.time_unix_nano != 0 {
            l.time_unix_nano
        } else if l.observed_time_unix_nano != 0 {
            l.observed_time_unix_nano
        } else {
            now_unix_nanos
        };
        let mut contents = vec![
            LogContent {
                key: "level".into(),
                value: l.severity_text.to_string(),
            },
            LogContent {
                key: "severity_number".into(),
                value: l.severity_number.to_string(),
            },
            LogContent {
                key: "message".into(),
                value: value_text(&l.body),
            },
        ];
        if l.trace_id != [0; 16] {
            contents.push(LogContent {
                key: "trace_id".into(),
                value: hex::encode(&l.trace_id),
            });
        }
        if l.span_id != [0; 8] {
            contents.push(LogContent {
                key: "span_id".into(),
                value: hex::encode(&l.span_id),
            });
        }
        contents.extend(l.attributes.iter().map(|kv| LogContent {
            key: kv.key.to_string(),
            value: value_text(&kv.value),
        }));
        let log = Log {
            time: (t / 1_000_000_000).min(u64::from(u32::MAX)) as u32,
            contents,
            time_ns: Some((t % 1_000_000_000) as u32),
        };
        let len = log.encoded_len() + 5;
        if !cur.logs.is_empty()
            && (cur.logs.len() >= MAX_LOGS_PER_GROUP || cur_bytes + len > MAX_GROUP_BYTES)
        {
            let records = cur.logs.len() as u64;
            out.push(EncodedGroup {
                raw: cur.encode_to_vec(),
                records,
            });
            cur = empty.clone();
            cur_bytes = cur.encoded_len();
        }
        cur_bytes += len;
        cur.logs.push(log);
    }
    if !cur.logs.is_empty() {
        let records = cur.logs.len() as u64;
        out.push(EncodedGroup {
            raw: cur.encode_to_vec(),
            records,
        });
    }
    out
}

/// Compresses a LogGroup for `x-log-compresstype`.
pub fn compress(raw: &[u8], c: SlsCompression) -> Vec<u8> {
    match c {
        SlsCompression::Lz4 => lz4_flex::block::compress(raw),
        SlsCompression::Deflate => {
            use std::io::Write as _;
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            // Writing to a Vec cannot fail.
            let _ = enc.write_all(raw);
            enc.finish().unwrap_or_default()
        }
    }
}

/// The `x-log-compresstype` value.
pub fn compress_type(c: SlsCompression) -> &'static str {
    match c {
        SlsCompression::Lz4 => "lz4",
        SlsCompression::Deflate => "deflate",
    }
}

/// One CloudMonitor data point.
#[derive(Debug, Clone, PartialEq)]
pub struct CmsPoint {
    /// Metric name.
    pub name: String,
    /// Dimensions as a JSON object string.
    pub dimensions: String,
    /// Unix milliseconds.
    pub time_ms: u64,
    /// `{"value": v}`.
    pub values: String,
}

/// Keeps letters, digits and `. - _ / \`, replaces the rest with `_`, cuts to 64
/// bytes.
pub fn dimension_text(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_/\\".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(MAX_DIMENSION_LEN);
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// The batch's points for PutCustomMetric, and how many were skipped.
pub fn cms_points(
    batch: &Batch,
    prefix: &str,
    labels: &BTreeMap<String, String>,
) -> (Vec<CmsPoint>, u64) {
    let host = attr(&batch.resource.attributes, "host.name");
    let mut out = Vec::new();
    let mut skipped = 0;
    for m in batch.metrics.iter() {
        for p in m.points.iter() {
            let v = match &p.value {
                PointValue::Double(d) => *d,
                PointValue::Int(i) => *i as f64,
                PointValue::Histogram(h) if h.count > 0 => {
                    h.sum.into_option().unwrap_or(f64::NAN) / h.count as f64
                }
                PointValue::Summary(s) if s.count > 0 => s.sum / s.count as f64,
                _ => f64::NAN,
            };
            if !v.is_finite() {
                skipped += 1;
                continue;
            }
            let mut dims: BTreeMap<String, String> = BTreeMap::new();
            if let Some(h) = &host {
                dims.insert("host".into(), dimension_text(h));
            }
            for (k, v) in labels {
                dims.insert(dimension_text(k), dimension_text(v));
            }
            for kv in p.attributes.iter() {
                dims.insert(
                    dimension_text(&kv.key),
                    dimension_text(&value_text(&kv.value)),
                );
            }
            if dims.is_empty() {
                dims.insert("source".into(), "tfo-agent".into());
            }
            out.push(CmsPoint {
                name: format!("{prefix}{}", m.name),
                dimensions: serde_json::to_string(&dims).unwrap_or_default(),
                time_ms: p.time_unix_nano / 1_000_000,
                values: json!({ "value": v }).to_string(),
            });
        }
    }
    (out, skipped)
}

/// The action parameters of one PutCustomMetric call (at most 21 points).
pub fn cms_params(points: &[CmsPoint], group_id: &str) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    p.insert("Action".to_string(), "PutCustomMetric".to_string());
    p.insert("Version".to_string(), "2019-01-01".to_string());
    for (i, pt) in points.iter().enumerate() {
        let n = i + 1;
        p.insert(format!("MetricList.{n}.MetricName"), pt.name.clone());
        p.insert(format!("MetricList.{n}.GroupId"), group_id.to_string());
        p.insert(format!("MetricList.{n}.Dimensions"), pt.dimensions.clone());
        p.insert(format!("MetricList.{n}.Time"), pt.time_ms.to_string());
        p.insert(format!("MetricList.{n}.Type"), "0".to_string());
        p.insert(format!("MetricList.{n}.Values"), pt.values.clone());
    }
    p
}

/// A CloudMonitor answer (`{"Code":"200","Message":"","RequestId":"..."}`).
pub fn cms_answer(body: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let code = match v.get("Code")? {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let msg = v
        .get("Message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Some((code, msg))
}

#[cfg(test)]
mod tests {
    use tfo_plugin_api::{HistogramValue, LogRecord, Metric, Resource};

    use super::*;

    const T: u64 = 1_700_000_010_123_456_789;

    fn record(body: &str, attrs: Vec<KeyValue>) -> LogRecord {
        LogRecord {
            time_unix_nano: T,
            observed_time_unix_nano: 0,
            severity_number: 13,
            severity_text: "WARN".into(),
            body: body.into(),
            attributes: attrs.into(),
            trace_id: [0xaa; 16],
            span_id: [0; 8],
        }
    }

    #[test]
    fn log_group_golden_bytes() {
        let batch = Batch {
            resource: Resource {
                attributes: vec![KeyValue::new("host.name", "h1")].into(),
            },
            logs: vec![record("disk", vec![KeyValue::new("n", 1i64)])].into(),
            ..Batch::default()
        };
        let s = GroupSettings {
            topic: "tp".into(),
            source: None,
            labels: [("env".to_string(), "prod".to_string())].into(),
        };
        let groups = log_groups(&batch, &s, 0);
        assert_eq!(groups.len(), 1);
        let g = LogGroup::decode(&groups[0].raw[..]).unwrap();
        assert_eq!(g.topic.as_deref(), Some("tp"));
        assert_eq!(g.source.as_deref(), Some("h1"));
        assert_eq!(
            g.log_tags,
            vec![
                LogTag {
                    key: "host.name".into(),
                    value: "h1".into()
                },
                LogTag {
                    key: "env".into(),
                    value: "prod".into()
                }
            ]
        );
        assert_eq!(g.logs[0].time, 1_700_000_010);
        assert_eq!(g.logs[0].time_ns, Some(123_456_789));
        let kv: Vec<(&str, &str)> = g.logs[0]
            .contents
            .iter()
            .map(|c| (c.key.as_str(), c.value.as_str()))
            .collect();
        assert_eq!(
            kv,
            [
                ("level", "WARN"),
                ("severity_number", "13"),
                ("message", "disk"),
                ("trace_id", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
                ("n", "1")
            ]
        );
        // Wire bytes, field by field: Log.Time is field 1 varint, Time_ns field 4
        // fixed32 (tag 0x25), LogGroup.Topic field 3 (0x1a), Source field 4 (0x22),
        // LogTags field 6 (0x32).
        let raw = &groups[0].raw;
        assert_eq!(raw[0], 0x0a, "LogGroup.Logs, field 1, length-delimited");
        let log_len = raw[1] as usize;
        let log = &raw[2..2 + log_len];
        // 1700000010 as a varint (computed independently: python3).
        assert_eq!(&log[..6], &[0x08, 0x8a, 0xe2, 0xcf, 0xaa, 0x06]);
        let ns = 123_456_789u32.to_le_bytes();
        assert!(log
            .windows(5)
            .any(|w| w == [0x25, ns[0], ns[1], ns[2], ns[3]]));
        let rest = &raw[2 + log_len..];
        assert_eq!(&rest[..4], &[0x1a, 0x02, b't', b'p']);
        assert_eq!(&rest[4..8], &[0x22, 0x02, b'h', b'1']);
        assert_eq!(rest[8], 0x32);
    }

    #[test]
    fn groups_split_at_4096_logs() {
        let batch = Batch {
            logs: (0..5000)
                .map(|i| record(&i.to_string(), vec![]))
                .collect::<Vec<_>>()
                .into(),
            ..Batch::default()
        };
        let groups = log_groups(&batch, &GroupSettings::default(), 0);
        assert_eq!(
            groups.iter().map(|g| g.records).collect::<Vec<_>>(),
            [4096, 904]
        );
    }

    #[test]
    fn compression_round_trips() {
        let raw = b"hello hello hello hello hello hello".repeat(20);
        let z = compress(&raw, SlsCompression::Lz4);
        assert!(z.len() < raw.len());
        assert_eq!(lz4_flex::block::decompress(&z, raw.len()).unwrap(), raw);
        let z = compress(&raw, SlsCompression::Deflate);
        use std::io::Read as _;
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&z[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, raw);
    }

    #[test]
    fn cms_golden() {
        let mut h = Metric::gauge("lat", "ms", T, 0.0, vec![]);
        h.points[0].value = PointValue::Histogram(HistogramValue {
            count: 4,
            sum: Some(10.0).into(),
            bounds: vec![].into(),
            bucket_counts: vec![4].into(),
            min: None.into(),
            max: None.into(),
        });
        let batch = Batch {
            resource: Resource {
                attributes: vec![KeyValue::new("host.name", "web 1")].into(),
            },
            metrics: vec![
                Metric::gauge("cpu", "1", T, 0.5, vec![KeyValue::new("core", 3i64)]),
                Metric::gauge("bad", "1", T, f64::INFINITY, vec![]),
                h,
            ]
            .into(),
            ..Batch::default()
        };
        let labels = [("env".to_string(), "prod:eu".to_string())].into();
        let (pts, skipped) = cms_points(&batch, "tfo.", &labels);
        assert_eq!(skipped, 1);
        assert_eq!(
            pts,
            vec![
                CmsPoint {
                    name: "tfo.cpu".into(),
                    dimensions: r#"{"core":"3","env":"prod_eu","host":"web_1"}"#.into(),
                    time_ms: 1_700_000_010_123,
                    values: r#"{"value":0.5}"#.into(),
                },
                CmsPoint {
                    name: "tfo.lat".into(),
                    dimensions: r#"{"env":"prod_eu","host":"web_1"}"#.into(),
                    time_ms: 1_700_000_010_123,
                    values: r#"{"value":2.5}"#.into(),
                },
            ]
        );
        let p = cms_params(&pts, "0");
        assert_eq!(p["MetricList.2.MetricName"], "tfo.lat");
        assert_eq!(p["MetricList.1.Type"], "0");
        assert_eq!(p["MetricList.1.Time"], "1700000010123");
        assert_eq!(p.len(), 2 + 2 * 6);
        assert_eq!(dimension_text(&"x".repeat(100)).len(), 64);
        assert_eq!(dimension_text(""), "_");
    }

    #[test]
    fn cms_answers() {
        assert_eq!(
            cms_answer(br#"{"Code":"200","Message":"","RequestId":"r"}"#),
            Some(("200".into(), "".into()))
        );
        assert_eq!(
            cms_answer(br#"{"Code":206,"Message":"partial"}"#),
            Some(("206".into(), "partial".into()))
        );
        assert_eq!(cms_answer(b"<xml/>"), None);
    }
}
