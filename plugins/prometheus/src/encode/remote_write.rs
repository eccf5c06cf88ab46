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

use std::{borrow::Cow, collections::BTreeMap};

use prost::encoding::{encode_varint as prost_varint, encoded_len_varint};

/// A varint; most lengths here fit one byte, which prost's out-of-line function
/// does not special-case.
#[inline]
fn encode_varint(v: u64, out: &mut Vec<u8>) {
    if v < 0x80 {
        out.push(v as u8);
    } else {
        prost_varint(v, out);
    }
}

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
                labels.push(("__name__".to_string(), name.into_owned()));
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

/// The protobuf `WriteRequest` of `families`, written straight from them (the
/// bytes [`build`] + `prost` produce, pinned by a test) without cloning labels
/// into an owned [`WriteRequest`] first: the export hot path. Appends to `out`
/// (reused between batches) and returns the number of series.
pub fn encode_families(families: &[Family], now_ms: i64, out: &mut Vec<u8>) -> usize {
    // Rows (sort key, labels, sample): sorted, then grouped per label set.
    let mut rows: Vec<Row<'_>> = Vec::new();
    let mut point_samples = Vec::new();
    for f in families {
        for p in &f.points {
            let ts = match p.time_unix_nano {
                0 => now_ms,
                t => (t / 1_000_000) as i64,
            };
            samples_into(&f.meta.name, f.meta.kind, p, &mut point_samples);
            for (name, extra, value) in point_samples.drain(..) {
                let mut labels: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(p.labels.len() + 2);
                labels.push(("__name__", name));
                labels.extend(
                    p.labels
                        .iter()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_str()))),
                );
                if let Some((k, v)) = extra {
                    labels.push((k, Cow::Owned(v)));
                }
                // Stable: of a repeated name the first stays, as in `build`.
                labels.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                labels.dedup_by(|a, b| a.0 == b.0);
                // The label set as one byte string, NUL-separated: comparing two of
                // them is one memcmp and orders like comparing the pairs one by
                // one (NUL sorts first), which chasing ten string pointers per
                // comparison made the most expensive step of the encoder.
                let mut key =
                    Vec::with_capacity(labels.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
                for (k, v) in &labels {
                    key.extend_from_slice(k.as_bytes());
                    key.push(0);
                    key.extend_from_slice(v.as_bytes());
                    key.push(0);
                }
                rows.push(Row {
                    key,
                    labels,
                    seq: rows.len(),
                    sample: Sample {
                        value,
                        timestamp: ts,
                    },
                });
            }
        }
    }
    // The order of `build`'s BTreeMap; equal keys (the same series, or, only with
    // NUL bytes in values, different ones) by labels, then by arrival, so samples
    // of one series are adjacent and in arrival order.
    rows.sort_unstable_by(|a, b| {
        a.key
            .cmp(&b.key)
            .then_with(|| labels_cmp(&a.labels, &b.labels))
            .then(a.seq.cmp(&b.seq))
    });
    let mut series = 0;
    let mut samples_of: Vec<Sample> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let mut j = i + 1;
        while j < rows.len() && rows[j].labels == rows[i].labels {
            j += 1;
        }
        if j == i + 1 {
            // The common case: one sample per series.
            write_series(&rows[i].labels, std::slice::from_ref(&rows[i].sample), out);
            series += 1;
            i = j;
            continue;
        }
        samples_of.clear();
        let mut group: Vec<Sample> = rows[i..j].iter().map(|r| r.sample.clone()).collect();
        group.sort_by_key(|s| s.timestamp);
        for s in group {
            match samples_of.last_mut() {
                Some(last) if last.timestamp == s.timestamp => *last = s,
                _ => samples_of.push(s),
            }
        }
        write_series(&rows[i].labels, &samples_of, out);
        series += 1;
        i = j;
    }
    series
}

/// One sample of [`encode_families`] with its series.
struct Row<'a> {
    key: Vec<u8>,
    labels: Vec<(&'a str, Cow<'a, str>)>,
    seq: usize,
    sample: Sample,
}

fn labels_cmp(a: &[(&str, Cow<'_, str>)], b: &[(&str, Cow<'_, str>)]) -> std::cmp::Ordering {
    a.iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .cmp(b.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
}

fn len_delimited(n: usize) -> usize {
    1 + encoded_len_varint(n as u64) + n
}

fn string_field_len(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        len_delimited(s.len())
    }
}

fn sample_len(s: &Sample) -> usize {
    (if s.value != 0.0 { 9 } else { 0 })
        + if s.timestamp != 0 {
            1 + encoded_len_varint(s.timestamp as u64)
        } else {
            0
        }
}

/// One `WriteRequest.timeseries` entry (field 1), as prost writes it: fields in
/// number order, proto3 defaults (empty strings, 0) omitted.
fn write_series(labels: &[(&str, Cow<'_, str>)], samples: &[Sample], out: &mut Vec<u8>) {
    let label_len = |k: &str, v: &str| string_field_len(k) + string_field_len(v);
    let len: usize = labels
        .iter()
        .map(|(k, v)| len_delimited(label_len(k, v)))
        .sum::<usize>()
        + samples
            .iter()
            .map(|s| len_delimited(sample_len(s)))
            .sum::<usize>();
    out.reserve(len + 4);
    out.push(0x0a);
    encode_varint(len as u64, out);
    for (k, v) in labels {
        out.push(0x0a);
        encode_varint(label_len(k, v) as u64, out);
        for (tag, text) in [(0x0a, *k), (0x12, v.as_ref())] {
            if !text.is_empty() {
                out.push(tag);
                encode_varint(text.len() as u64, out);
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    for s in samples {
        out.push(0x12);
        encode_varint(sample_len(s) as u64, out);
        if s.value != 0.0 {
            out.push(0x09);
            out.extend_from_slice(&s.value.to_le_bytes());
        }
        if s.timestamp != 0 {
            out.push(0x10);
            encode_varint(s.timestamp as u64, out);
        }
    }
}

/// Snappy block compression of an encoded `WriteRequest` into `out` (cleared and
/// reused; grown to the worst-case size once).
pub fn compress_into(
    encoder: &mut snap::raw::Encoder,
    proto: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    out.clear();
    out.resize(snap::raw::max_compress_len(proto.len()), 0);
    let n = encoder
        .compress(proto, out)
        .map_err(|e| format!("snappy compression: {e}"))?;
    out.truncate(n);
    Ok(())
}

/// One sample of a point: its name, an extra label (`le`, `quantile`) and value.
type PointSample<'a> = (Cow<'a, str>, Option<(&'static str, String)>, f64);

/// The samples of one point.
fn samples<'a>(name: &'a str, kind: FamilyType, p: &Point) -> Vec<PointSample<'a>> {
    let mut out = Vec::new();
    samples_into(name, kind, p, &mut out);
    out
}

/// [`samples`] into a vector the caller reuses (no allocation per point).
fn samples_into<'a>(name: &'a str, kind: FamilyType, p: &Point, out: &mut Vec<PointSample<'a>>) {
    match (&p.value, kind) {
        (Value::Histogram(h), _) => {
            let mut cumulative = 0u64;
            for (bound, count) in h.bounds.iter().zip(&h.counts) {
                cumulative = cumulative.saturating_add(*count);
                out.push((
                    format!("{name}_bucket").into(),
                    Some(("le", canonical_float(*bound))),
                    cumulative as f64,
                ));
            }
            out.push((
                format!("{name}_bucket").into(),
                Some(("le", "+Inf".to_string())),
                h.count as f64,
            ));
            if let Some(s) = h.sum {
                out.push((format!("{name}_sum").into(), None, s));
            }
            out.push((format!("{name}_count").into(), None, h.count as f64));
        }
        (Value::Summary(s), _) => {
            for (q, v) in &s.quantiles {
                out.push((
                    Cow::Borrowed(name),
                    Some(("quantile", canonical_float(*q))),
                    *v,
                ));
            }
            if let Some(sum) = s.sum {
                out.push((format!("{name}_sum").into(), None, sum));
            }
            out.push((format!("{name}_count").into(), None, s.count as f64));
        }
        (v, FamilyType::Counter) => out.push((format!("{name}_total").into(), None, v.as_f64())),
        (_, FamilyType::Info) => out.push((format!("{name}_info").into(), None, 1.0)),
        (v, _) => out.push((Cow::Borrowed(name), None, v.as_f64())),
    }
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
