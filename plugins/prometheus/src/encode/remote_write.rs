//! Prometheus Remote-Write 1.0 payloads
//! (<https://prometheus.io/docs/specs/remote_write_spec/>).
//!
//! The body of a write request is a `prometheus.WriteRequest` protobuf message
//! (prometheus/prompb `remote.proto` and `types.proto`), compressed with Snappy's
//! **block** format (the framed format MUST NOT be used). The messages below are
//! the subset of those files the 1.0 spec defines, with the same field numbers:
//!
//! ```protobuf
//! message WriteRequest { repeated TimeSeries timeseries = 1; reserved 2; reserved 3; }
//! message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! message Label        { string name = 1; string value = 2; }
//! message Sample       { double value = 1; int64 timestamp = 2; }
//! ```
//!
//! What the spec requires of a sender, and how it is met here:
//! - every series has a `__name__` label, label names are unique and sorted
//!   lexicographically (by bytes, so `Zone` sorts before `__name__`), and labels
//!   with empty values are not sent;
//! - timestamps are int64 milliseconds since the epoch, samples of a series are in
//!   timestamp order (a repeated timestamp keeps the last value);
//! - one `TimeSeries` per label set in a request.
//!
//! Each family point becomes samples as the scrape endpoint exposes them: a
//! counter `<name>_total`, a gauge `<name>`, a histogram `<name>_bucket{le=...}`
//! (cumulative, up to `+Inf`) plus `_sum` and `_count`, a summary
//! `<name>{quantile=...}` plus `_sum` and `_count`, and `target_info` = 1. A point
//! without a timestamp is stamped with the time of the request.

use std::collections::BTreeMap;

use super::{canonical_float, Family, FamilyType, Point, Value};

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name, `__name__` included.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// In timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, prost::Message)]
pub struct Label {
    /// Label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `Content-Type` of a write request.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// `Content-Encoding` of a write request.
pub const CONTENT_ENCODING: &str = "snappy";
/// `X-Prometheus-Remote-Write-Version` of a 1.0 write request.
pub const VERSION: &str = "0.1.0";

/// Builds the write request for families whose points are cumulative (deltas
/// already accumulated); `now_ms` stamps points without a time.
pub fn build(families: &[Family], now_ms: i64) -> WriteRequest {
    let mut series: BTreeMap<Vec<(String, String)>, Vec<Sample>> = BTreeMap::new();
    for f in families {
        for p in &f.points {
            let ts = match p.time_unix_nano {
                0 => now_ms,
                t => (t / 1_000_000) as i64,
            };
            for (name, extra, value) in samples(&f.meta.name, f.meta.kind, p) {
                let mut labels: Vec<(String, String)> = Vec::with_capacity(p.labels.len() + 2);
                labels.push(("__name__".to_string(), name));
                labels.extend(p.labels.iter().filter(|(_, v)| !v.is_empty()).cloned());
                if let Some((k, v)) = extra {
                    labels.push((k.to_string(), v));
                }
                labels.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                labels.dedup_by(|a, b| a.0 == b.0);
                series.entry(labels).or_default().push(Sample {
                    value,
                    timestamp: ts,
                });
            }
        }
    }
    let timeseries = series
        .into_iter()
        .map(|(labels, mut samples)| {
            // Stable sort: of equal timestamps the later sample is last; keep it.
            samples.sort_by_key(|s| s.timestamp);
            let mut dedup: Vec<Sample> = Vec::with_capacity(samples.len());
            for s in samples {
                match dedup.last_mut() {
                    Some(last) if last.timestamp == s.timestamp => *last = s,
                    _ => dedup.push(s),
                }
            }
            TimeSeries {
                labels: labels
                    .into_iter()
                    .map(|(name, value)| Label { name, value })
                    .collect(),
                samples: dedup,
            }
        })
        .collect();
    WriteRequest { timeseries }
}

/// One sample of a point: its name, an extra label (`le`, `quantile`) and value.
type PointSample = (String, Option<(&'static str, String)>, f64);

/// The samples of one point.
fn samples(name: &str, kind: FamilyType, p: &Point) -> Vec<PointSample> {
    let mut out = Vec::new();
    match (&p.value, kind) {
        (Value::Histogram(h), _) => {
            let mut cumulative = 0u64;
            for (bound, count) in h.bounds.iter().zip(&h.counts) {
                cumulative = cumulative.saturating_add(*count);
                out.push((
                    format!("{name}_bucket"),
                    Some(("le", canonical_float(*bound))),
                    cumulative as f64,
                ));
            }
            out.push((
                format!("{name}_bucket"),
                Some(("le", "+Inf".to_string())),
                h.count as f64,
            ));
            if let Some(s) = h.sum {
                out.push((format!("{name}_sum"), None, s));
            }
            out.push((format!("{name}_count"), None, h.count as f64));
        }
        (Value::Summary(s), _) => {
            for (q, v) in &s.quantiles {
                out.push((
                    name.to_string(),
                    Some(("quantile", canonical_float(*q))),
                    *v,
                ));
            }
            if let Some(sum) = s.sum {
                out.push((format!("{name}_sum"), None, sum));
            }
            out.push((format!("{name}_count"), None, s.count as f64));
        }
        (v, FamilyType::Counter) => out.push((format!("{name}_total"), None, v.as_f64())),
        (_, FamilyType::Info) => out.push((format!("{name}_info"), None, 1.0)),
        (v, _) => out.push((name.to_string(), None, v.as_f64())),
    }
    out
}

/// The HTTP body: the protobuf encoding of `req`, Snappy block-compressed.
pub fn encode_body(req: &WriteRequest) -> Result<Vec<u8>, String> {
    let proto = prost::Message::encode_to_vec(req);
    snap::raw::Encoder::new()
        .compress_vec(&proto)
        .map_err(|e| format!("snappy compression: {e}"))
}

/// Decodes a body written by [`encode_body`] (tests and debugging).
pub fn decode_body(body: &[u8]) -> Result<WriteRequest, String> {
    let proto = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    <WriteRequest as prost::Message>::decode(proto.as_slice()).map_err(|e| format!("protobuf: {e}"))
}
