//! Log records -> Loki push requests; pure and golden-tested.
//!
//! Loki HTTP API, "Ingest logs"
//! (<https://grafana.com/docs/loki/latest/reference/loki-http-api/#ingest-logs>):
//! `POST /loki/api/v1/push` with either
//! - `Content-Type: application/x-protobuf` and a Snappy **block**-compressed
//!   (not framed) `PushRequest` of Loki's `pkg/push/push.proto` ([`proto`]), or
//! - `Content-Type: application/json` and
//!   `{"streams":[{"stream":{labels},"values":[["<ns>","<line>",{metadata}]]}]}`
//!   (the third element, structured metadata, only when there is some).
//!
//! Mapping:
//! - **stream labels**: the configured static `labels`, plus one label per
//!   `label_attributes` entry found on the record (then on the resource), its name
//!   sanitized to `[a-zA-Z_][a-zA-Z0-9_]*` (`service.name` -> `service_name`, a
//!   leading digit gets `_`); `level` without such an attribute is the record's
//!   severity in lower case (`error`, or the OpenTelemetry severity range name).
//!   Values longer than 2048 bytes (Loki's `max_label_value_length`) are cut; empty
//!   values are left out; a stream with no label at all gets
//!   `service_name="unknown_service"` (Loki refuses streams without labels);
//! - **line**: the body (non-string bodies as text), cut to `max_line_bytes` at a
//!   character boundary;
//! - **other attributes** (resource, then record; record wins) and the trace and
//!   span ids (`trace_id`, `span_id`, hex) become structured metadata (names
//!   sanitized as labels, at most 128 pairs and 64 KiB per entry, Loki's defaults),
//!   or logfmt `key=value` pairs appended to the line, or nothing;
//! - **time**: the record's time, else its observed time, else the export time.
//!
//! Entries are grouped into streams by label set and sorted by time within each
//! stream (stable for equal times); streams are ordered by their label string. A
//! batch is split into pushes of about `max_request_bytes`; a stream may continue
//! in the next push, in time order.

use std::collections::BTreeMap;

use prost::Message as _;
use serde_json::{json, Map, Value};
use tfo_plugin_api::{AnyValue, Batch, KeyValue, LogRecord};
use tfo_plugin_common::hex;

use crate::config::{Config, OtherAttributes, MAX_LABEL_VALUE_BYTES};

/// Loki's `pkg/push/push.proto` (package `logproto`), the messages of the push
/// request, as prost derives. Field numbers from that file: `PushRequest.streams =
/// 1`; `StreamAdapter.labels = 1, entries = 2, hash = 3`; `EntryAdapter.timestamp =
/// 1` (`google.protobuf.Timestamp`), `line = 2`, `structuredMetadata = 3`;
/// `LabelPairAdapter.name = 1, value = 2`.
pub mod proto {
    /// A push: streams of entries.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        /// The streams.
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }

    /// One stream: its label set (`{a="b", c="d"}`) and entries.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        /// The label set in Prometheus text form.
        #[prost(string, tag = "1")]
        pub labels: String,
        /// The entries, in time order.
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        /// Computed by Loki; clients send 0.
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }

    /// One log line.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        /// When.
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<prost_types::Timestamp>,
        /// The line.
        #[prost(string, tag = "2")]
        pub line: String,
        /// Structured metadata.
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
    }

    /// A name/value pair of structured metadata.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        /// Name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Value.
        #[prost(string, tag = "2")]
        pub value: String,
    }
}

/// Loki's default `max_structured_metadata_entries_count`.
pub const MAX_METADATA_PAIRS: usize = 128;
/// Loki's default `max_structured_metadata_size` (64 KB).
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// The mapping settings, from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Static labels (already valid names).
    pub labels: BTreeMap<String, String>,
    /// (attribute name, label name) pairs.
    pub label_attributes: Vec<(String, String)>,
    /// Where the other attributes go.
    pub other: OtherAttributes,
    /// Longest line.
    pub max_line_bytes: usize,
    /// Split size.
    pub max_request_bytes: usize,
}

impl Options {
    /// The options of a validated config.
    pub fn from_config(c: &Config) -> Options {
        Options {
            labels: c.labels.clone(),
            label_attributes: c
                .label_attributes
                .iter()
                .map(|a| (a.clone(), sanitize_label_name(a)))
                .collect(),
            other: c.other_attributes,
            max_line_bytes: usize::try_from(c.max_line_bytes).unwrap_or(usize::MAX),
            max_request_bytes: usize::try_from(c.max_request_bytes).unwrap_or(usize::MAX),
        }
    }
}

/// One entry of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Nanoseconds since the epoch.
    pub ts: u64,
    /// The line.
    pub line: String,
    /// Structured metadata, sorted by name.
    pub metadata: Vec<(String, String)>,
}

impl Entry {
    fn size(&self) -> usize {
        16 + self.line.len()
            + self
                .metadata
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>()
    }
}

/// One stream of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// Labels, sorted by name.
    pub labels: Vec<(String, String)>,
    /// Entries in time order.
    pub entries: Vec<Entry>,
}

/// One push request's content.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Push {
    /// Streams, ordered by label string.
    pub streams: Vec<Stream>,
}

impl Push {
    /// Number of entries.
    pub fn entries(&self) -> u64 {
        self.streams.iter().map(|s| s.entries.len() as u64).sum()
    }
}

/// The pushes of one batch and what had to be cut.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoded {
    /// Push requests, in order.
    pub pushes: Vec<Push>,
    /// Lines cut to `max_line_bytes`.
    pub lines_cut: u64,
    /// Label values cut to 2048 bytes.
    pub label_values_cut: u64,
    /// Structured metadata pairs left out (over 128 pairs or 64 KiB).
    pub metadata_dropped: u64,
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: other characters become `_`, a leading digit gets a
/// `_` prefix.
pub fn sanitize_label_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The Prometheus text form of a label set, as Loki parses it:
/// `{a="x", b="y \"q\""}` (Go string escapes for `\`, `"` and control characters).
pub fn label_string(labels: &[(String, String)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                '\r' => s.push_str("\\r"),
                '\t' => s.push_str("\\t"),
                c if c.is_control() => s.push_str(&format!("\\u{:04x}", c as u32)),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

fn cut(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    s.truncate(i);
    true
}

fn text(v: &AnyValue) -> String {
    match v {
        AnyValue::Str(s) => s.to_string(),
        AnyValue::Bool(b) => b.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => d.to_string(),
        AnyValue::Bytes(b) => tfo_plugin_common::auth::base64(b),
    }
}

/// The OpenTelemetry severity range name of a severity number, lower case.
pub fn severity_name(n: u8) -> Option<&'static str> {
    Some(match n {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => return None,
    })
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
}

/// logfmt value: bare when it is a plain token, else quoted with `\` escapes.
fn logfmt_value(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\')
    {
        return v.to_string();
    }
    let mut s = String::from("\"");
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Builds the pushes of a batch (only its log records).
pub fn encode_batch(batch: &Batch, opts: &Options, now_ns: u64) -> Encoded {
    let mut out = Encoded::default();
    let resource = &batch.resource.attributes;
    let mut streams: BTreeMap<String, Stream> = BTreeMap::new();
    for rec in batch.logs.iter() {
        let (labels, entry) = entry(rec, resource, opts, now_ns, &mut out);
        let key = label_string(&labels);
        streams
            .entry(key)
            .or_insert_with(|| Stream {
                labels,
                entries: Vec::new(),
            })
            .entries
            .push(entry);
    }
    let mut push = Push::default();
    let mut size = 0usize;
    for (key, mut stream) in streams {
        stream.entries.sort_by_key(|e| e.ts);
        let overhead = key.len() + 8;
        let mut part = Stream {
            labels: stream.labels.clone(),
            entries: Vec::new(),
        };
        for e in stream.entries {
            let n = e.size();
            if size + overhead + n > opts.max_request_bytes && size > 0 {
                if !part.entries.is_empty() {
                    push.streams.push(part);
                    part = Stream {
                        labels: stream.labels.clone(),
                        entries: Vec::new(),
                    };
                }
                out.pushes.push(std::mem::take(&mut push));
                size = 0;
            }
            if part.entries.is_empty() {
                size += overhead;
            }
            size += n;
            part.entries.push(e);
        }
        if !part.entries.is_empty() {
            push.streams.push(part);
        }
    }
    if !push.streams.is_empty() {
        out.pushes.push(push);
    }
    out
}

fn entry(
    rec: &LogRecord,
    resource: &[KeyValue],
    opts: &Options,
    now_ns: u64,
    out: &mut Encoded,
) -> (Vec<(String, String)>, Entry) {
    // Labels: attribute labels first, then the static ones over them.
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for (attr, name) in &opts.label_attributes {
        if labels.contains_key(name) {
            continue; // the first configured attribute of a name wins
        }
        let value = find(&rec.attributes, attr)
            .or_else(|| find(resource, attr))
            .map(text)
            .or_else(|| {
                (attr == "level")
                    .then(|| {
                        if rec.severity_text.is_empty() {
                            severity_name(rec.severity_number).map(str::to_string)
                        } else {
                            Some(rec.severity_text.to_lowercase())
                        }
                    })
                    .flatten()
            });
        if let Some(mut v) = value.filter(|v| !v.is_empty()) {
            if cut(&mut v, MAX_LABEL_VALUE_BYTES) {
                out.label_values_cut += 1;
            }
            labels.insert(name.clone(), v);
        }
    }
    for (k, v) in &opts.labels {
        labels.insert(k.clone(), v.clone());
    }
    if labels.is_empty() {
        labels.insert("service_name".into(), "unknown_service".into());
    }

    let mut line = text(&rec.body);
    let mut metadata: Vec<(String, String)> = Vec::new();
    if opts.other != OtherAttributes::Drop {
        let is_label = |k: &str| opts.label_attributes.iter().any(|(a, _)| a == k);
        let mut other: BTreeMap<String, String> = BTreeMap::new();
        for kv in resource.iter().chain(rec.attributes.iter()) {
            if !is_label(&kv.key) {
                other.insert(sanitize_label_name(&kv.key), text(&kv.value));
            }
        }
        if rec.trace_id.iter().any(|b| *b != 0) {
            other.insert("trace_id".into(), hex::encode(&rec.trace_id));
        }
        if rec.span_id.iter().any(|b| *b != 0) {
            other.insert("span_id".into(), hex::encode(&rec.span_id));
        }
        match opts.other {
            OtherAttributes::StructuredMetadata => {
                let mut bytes = 0;
                for (k, v) in other {
                    bytes += k.len() + v.len();
                    if metadata.len() >= MAX_METADATA_PAIRS || bytes > MAX_METADATA_BYTES {
                        out.metadata_dropped += 1;
                        continue;
                    }
                    metadata.push((k, v));
                }
            }
            OtherAttributes::Line => {
                for (k, v) in other {
                    line.push(' ');
                    line.push_str(&k);
                    line.push('=');
                    line.push_str(&logfmt_value(&v));
                }
            }
            OtherAttributes::Drop => {}
        }
    }
    if cut(&mut line, opts.max_line_bytes) {
        out.lines_cut += 1;
    }
    let ts = if rec.time_unix_nano != 0 {
        rec.time_unix_nano
    } else if rec.observed_time_unix_nano != 0 {
        rec.observed_time_unix_nano
    } else {
        now_ns
    };
    (labels.into_iter().collect(), Entry { ts, line, metadata })
}

/// The protobuf `PushRequest` of a push.
pub fn to_proto(push: &Push) -> proto::PushRequest {
    proto::PushRequest {
        streams: push
            .streams
            .iter()
            .map(|s| proto::StreamAdapter {
                labels: label_string(&s.labels),
                entries: s
                    .entries
                    .iter()
                    .map(|e| proto::EntryAdapter {
                        timestamp: Some(prost_types::Timestamp {
                            seconds: (e.ts / 1_000_000_000) as i64,
                            nanos: (e.ts % 1_000_000_000) as i32,
                        }),
                        line: e.line.clone(),
                        structured_metadata: e
                            .metadata
                            .iter()
                            .map(|(k, v)| proto::LabelPairAdapter {
                                name: k.clone(),
                                value: v.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
    }
}

/// The protobuf body: the encoded `PushRequest`, Snappy block-compressed.
pub fn protobuf_body(push: &Push) -> Result<Vec<u8>, String> {
    snap::raw::Encoder::new()
        .compress_vec(&to_proto(push).encode_to_vec())
        .map_err(|e| format!("snappy compression failed: {e}"))
}

/// The JSON body.
pub fn json_body(push: &Push) -> Vec<u8> {
    let streams: Vec<Value> = push
        .streams
        .iter()
        .map(|s| {
            let labels: Map<String, Value> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let values: Vec<Value> = s
                .entries
                .iter()
                .map(|e| {
                    let mut v = vec![
                        Value::String(e.ts.to_string()),
                        Value::String(e.line.clone()),
                    ];
                    if !e.metadata.is_empty() {
                        let m: Map<String, Value> = e
                            .metadata
                            .iter()
                            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                            .collect();
                        v.push(Value::Object(m));
                    }
                    Value::Array(v)
                })
                .collect();
            json!({ "stream": labels, "values": values })
        })
        .collect();
    json!({ "streams": streams }).to_string().into_bytes()
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
