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
//!
//! Two ways in: [`Encoder::encode`] writes converted families (series in label
//! order: the bytes [`build`] + prost write); without a scrape endpoint the
//! sink uses [`Encoder::encode_batch`], which writes the same series, labels
//! and samples straight from the batch, series in order of first appearance
//! (the spec asks nothing of the order of series in a request).

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

mod direct;
pub use direct::Direct;

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
/// into an owned [`WriteRequest`] first. Appends to `out` and returns the number
/// of series. A one-off [`Encoder`]: the export path keeps one per sink instead,
/// so its buffers are reused between batches.
pub fn encode_families(families: &[Family], now_ms: i64, out: &mut Vec<u8>) -> usize {
    Encoder::default().encode(families, now_ms, out)
}

/// The remote-write encoder of one sink: its work buffers live here and are
/// reused from batch to batch, so a batch allocates nothing once they have grown
/// to the batch size.
///
/// How it writes a request (the export hot path, ~10 labels per series):
/// - each sample becomes a row whose label set is written once, in label-name
///   order, into two arenas: a sort key (`name NUL value NUL ...`, so one memcmp
///   orders two label sets as comparing the pairs one by one would) and the
///   finished protobuf of its `TimeSeries.labels` fields; the row itself is 32
///   bytes of offsets, value and timestamp;
/// - rows are stably sorted by key (samples of one series end up adjacent and in
///   arrival order), then each series is one length prefix, one copy of its label
///   bytes and its samples.
///
/// A label containing a NUL byte would make two label sets share a key; then the
/// batch takes the general path (per-sample label vectors, compared pair by pair).
#[derive(Debug, Default)]
pub struct Encoder {
    /// Sort keys of all rows, back to back.
    keys: Vec<u8>,
    /// Encoded `TimeSeries.labels` fields of all rows, back to back.
    labels: Vec<u8>,
    /// One per sample.
    rows: Vec<Row>,
    /// The rows in key order.
    order: Vec<SortItem>,
    /// The samples of the series being written.
    samples: Vec<Sample>,
    /// Per-point label pairs, empty between uses; its lifetime is only a
    /// placeholder (see [`with_lifetime`]): kept so a point's labels are
    /// gathered without an allocation per batch.
    pairs: Vec<(&'static str, &'static str)>,
    /// [`Encoder::encode_batch`]: the family (index of creation) of each row.
    row_family: Vec<u32>,
    /// [`Encoder::encode_batch`]: the grouping of rows into series.
    groups: direct::Groups,
    /// [`Encoder::encode_batch`]: a point's attribute values that are not
    /// strings, as label text, back to back.
    text: String,
    /// [`Encoder::encode_batch`]: the end of each value in `text`.
    text_ends: Vec<u32>,
    /// [`Encoder::encode_batch`]: the previous point's attribute keys (empty
    /// between batches; lifetime a placeholder, see [`keys_with_lifetime`]) and
    /// their label order.
    layout_keys: Vec<&'static str>,
    layout_order: Vec<u32>,
}

/// [`with_lifetime`] for a vector of strings.
fn keys_with_lifetime<'b>(mut v: Vec<&str>) -> Vec<&'b str> {
    v.clear();
    v.into_iter().map(|_| unreachable!("emptied")).collect()
}

/// `v`, emptied, with another lifetime for its (no longer existing) elements:
/// the same allocation (in-place collection of a vector into one of the same
/// layout), so a vector of borrowed label pairs is kept between points and
/// batches whose borrows do not overlap.
fn with_lifetime<'b>(mut v: Vec<(&str, &str)>) -> Vec<(&'b str, &'b str)> {
    v.clear();
    v.into_iter().map(|_| unreachable!("emptied")).collect()
}

/// One sample of [`Encoder`]: where its key and encoded labels are, its value.
#[derive(Debug, Clone, Copy)]
struct Row {
    key_start: u32,
    key_len: u32,
    labels_start: u32,
    labels_len: u32,
    value: f64,
    timestamp: i64,
}

/// A label of a sample that is not one of its point's labels.
#[derive(Clone, Copy)]
struct Special<'a> {
    name: &'static str,
    value: &'a str,
    /// Second part of the value (`_total`, `_bucket`... after the family name).
    suffix: &'static str,
    /// `__name__` replaces a point label of the same name; `le` / `quantile`
    /// yield to one.
    wins: bool,
}

impl Encoder {
    /// Appends the protobuf `WriteRequest` of `families` to `out` (same bytes as
    /// [`encode_families`]) and returns the number of series.
    pub fn encode(&mut self, families: &[Family], now_ms: i64, out: &mut Vec<u8>) -> usize {
        self.clear();
        let mut pairs = with_lifetime(std::mem::take(&mut self.pairs));
        let mut labels_in_keys = 0usize;
        for f in families {
            for p in &f.points {
                labels_in_keys += self.add_converted_point::<true>(
                    &f.meta.name,
                    f.meta.kind,
                    p,
                    now_ms,
                    &mut pairs,
                );
            }
        }
        self.pairs = with_lifetime(pairs);
        match self.write(labels_in_keys, out) {
            Some(series) => series,
            None => encode_families_general(families, now_ms, out),
        }
    }

    /// Empties the work buffers (their capacity kept) for a new batch.
    fn clear(&mut self) {
        self.keys.clear();
        self.labels.clear();
        self.rows.clear();
        self.row_family.clear();
    }

    /// Adds the rows of a family's point: its labels as `build` sees them
    /// (empty values dropped, sorted by name (stable), the first of a repeated
    /// name kept), merged with the sample's `__name__` (and `le`, `quantile`).
    /// `pairs` is an empty vector to gather the labels in, left empty. Returns
    /// the number of labels written into the keys.
    fn add_converted_point<'p, const KEYS: bool>(
        &mut self,
        name: &str,
        kind: FamilyType,
        p: &'p Point,
        now_ms: i64,
        pairs: &mut Vec<(&'p str, &'p str)>,
    ) -> usize {
        let timestamp = match p.time_unix_nano {
            0 => now_ms,
            t => (t / 1_000_000) as i64,
        };
        pairs.clear();
        pairs.extend(
            p.labels
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        if !pairs
            .windows(2)
            .all(|w| less(w[0].0.as_bytes(), w[1].0.as_bytes()))
        {
            pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            pairs.dedup_by(|a, b| a.0 == b.0);
        }
        let n = self.add_point::<KEYS>(name, kind, p, timestamp, pairs);
        pairs.clear();
        n
    }

    /// Orders the rows added since [`Encoder::clear`] and appends their
    /// `WriteRequest` to `out`; returns the number of series, or `None` (and
    /// writes nothing) when the batch must take the general path: a NUL byte in
    /// a label (`labels_in_keys`, the number of labels written into the keys,
    /// is then less than half the NUL bytes in them) or arenas beyond `u32`
    /// offsets.
    fn write(&mut self, labels_in_keys: usize, out: &mut Vec<u8>) -> Option<usize> {
        // Offsets are u32, and a NUL inside a name or value makes keys ambiguous:
        // either sends the batch down the general path.
        let nuls = count_nuls(&self.keys);
        if nuls != 2 * labels_in_keys
            || self.keys.len() > u32::MAX as usize
            || self.labels.len() > u32::MAX as usize
        {
            return None;
        }
        let keys = &self.keys;
        let rows = &self.rows;
        self.order.clear();
        self.order
            .extend((0..rows.len() as u32).map(|row| SortItem {
                prefix: 0,
                row,
                same_as_previous: false,
            }));
        sort_rows(&mut self.order, keys, rows, 0);
        out.reserve(self.labels.len() + rows.len() * 24);
        let mut series = 0;
        let mut i = 0;
        let order = &self.order;
        while i < order.len() {
            let r = &rows[order[i].row as usize];
            let mut j = i + 1;
            while j < order.len() && order[j].same_as_previous {
                j += 1;
            }
            let labels = &self.labels[r.labels_start as usize..][..r.labels_len as usize];
            if j == i + 1 {
                // The common case: one sample per series.
                write_series_encoded(
                    labels,
                    std::slice::from_ref(&Sample {
                        value: r.value,
                        timestamp: r.timestamp,
                    }),
                    out,
                );
            } else {
                self.samples.clear();
                let mut group: Vec<&Row> =
                    order[i..j].iter().map(|o| &rows[o.row as usize]).collect();
                // Stable: of equal timestamps the later sample is last; keep it.
                group.sort_by_key(|r| r.timestamp);
                for r in group {
                    let s = Sample {
                        value: r.value,
                        timestamp: r.timestamp,
                    };
                    match self.samples.last_mut() {
                        Some(last) if last.timestamp == s.timestamp => *last = s,
                        _ => self.samples.push(s),
                    }
                }
                write_series_encoded(labels, &self.samples, out);
            }
            series += 1;
            i = j;
        }
        Some(series)
    }

    /// Adds the rows of one point's samples; returns the number of labels written
    /// into the keys.
    fn add_point<const KEYS: bool>(
        &mut self,
        name: &str,
        kind: FamilyType,
        p: &Point,
        timestamp: i64,
        point_labels: &[(&str, &str)],
    ) -> usize {
        let mut n = 0;
        let named = |suffix: &'static str| Special {
            name: "__name__",
            value: name,
            suffix,
            wins: true,
        };
        match (&p.value, kind) {
            (Value::Histogram(h), _) => {
                let mut cumulative = 0u64;
                for (bound, count) in h.bounds.iter().zip(&h.counts) {
                    cumulative = cumulative.saturating_add(*count);
                    let le = canonical_float(*bound);
                    n += self.add_row::<KEYS, _>(
                        [named("_bucket"), extra("le", &le)],
                        point_labels,
                        cumulative as f64,
                        timestamp,
                    );
                }
                n += self.add_row::<KEYS, _>(
                    [named("_bucket"), extra("le", "+Inf")],
                    point_labels,
                    h.count as f64,
                    timestamp,
                );
                if let Some(s) = h.sum {
                    n += self.add_row::<KEYS, _>([named("_sum")], point_labels, s, timestamp);
                }
                n += self.add_row::<KEYS, _>(
                    [named("_count")],
                    point_labels,
                    h.count as f64,
                    timestamp,
                );
            }
            (Value::Summary(s), _) => {
                for (q, v) in &s.quantiles {
                    let q = canonical_float(*q);
                    n += self.add_row::<KEYS, _>(
                        [named(""), extra("quantile", &q)],
                        point_labels,
                        *v,
                        timestamp,
                    );
                }
                if let Some(sum) = s.sum {
                    n += self.add_row::<KEYS, _>([named("_sum")], point_labels, sum, timestamp);
                }
                n += self.add_row::<KEYS, _>(
                    [named("_count")],
                    point_labels,
                    s.count as f64,
                    timestamp,
                );
            }
            (v, FamilyType::Counter) => {
                n += self.add_row::<KEYS, _>([named("_total")], point_labels, v.as_f64(), timestamp)
            }
            (_, FamilyType::Info) => {
                n += self.add_row::<KEYS, _>([named("_info")], point_labels, 1.0, timestamp)
            }
            (v, _) => {
                n += self.add_row::<KEYS, _>([named("")], point_labels, v.as_f64(), timestamp)
            }
        }
        n
    }

    /// One row: the point's labels merged with `specials` (sorted by name), as
    /// protobuf and, with `KEYS`, as sort key (the direct path groups series by
    /// their protobuf bytes and writes no keys). Returns the number of labels.
    fn add_row<const KEYS: bool, const N: usize>(
        &mut self,
        specials: [Special<'_>; N],
        point_labels: &[(&str, &str)],
        value: f64,
        timestamp: i64,
    ) -> usize {
        // Room for every candidate label, whichever of two equal names is kept:
        // a label is at most name + value + 2 bytes of key, and name + value +
        // 33 bytes of protobuf (three tags and three varints of at most 10).
        let mut bytes = 0;
        for (k, v) in point_labels {
            bytes += k.len() + v.len();
        }
        for s in &specials {
            bytes += s.name.len() + s.value.len() + s.suffix.len();
        }
        let count = point_labels.len() + N;
        let key_room = if KEYS { bytes + 2 * count } else { 0 };
        let labels_room = bytes + 33 * count;
        self.keys.reserve(key_room);
        self.labels.reserve(labels_room);
        let key_start = self.keys.len();
        let labels_start = self.labels.len();
        let mut n = 0;
        let (mut i, mut j) = (0, 0);
        // SAFETY: the loop writes each label at most once (each step advances
        // `i` or `j`), so it writes at most `key_room` and `labels_room` bytes,
        // reserved above; the lengths are then set to cover what was written.
        unsafe {
            let mut p = self.keys.as_mut_ptr().add(key_start);
            let mut q = self.labels.as_mut_ptr().add(labels_start);
            loop {
                let take_special = match (point_labels.get(i), specials.get(j)) {
                    (None, None) => break,
                    (Some(_), None) => false,
                    (None, Some(_)) => true,
                    (Some((k, _)), Some(s)) => match compare(k.as_bytes(), s.name.as_bytes()) {
                        std::cmp::Ordering::Less => false,
                        std::cmp::Ordering::Greater => true,
                        std::cmp::Ordering::Equal => {
                            // One of the two is dropped.
                            if s.wins {
                                i += 1;
                                true
                            } else {
                                j += 1;
                                false
                            }
                        }
                    },
                };
                (p, q) = if take_special {
                    let s = &specials[j];
                    j += 1;
                    write_label::<KEYS>(p, q, s.name, s.value, s.suffix)
                } else {
                    let (k, v) = point_labels[i];
                    i += 1;
                    write_label::<KEYS>(p, q, k, v, "")
                };
                n += 1;
            }
            let key_len = p.offset_from(self.keys.as_ptr().add(key_start)) as usize;
            let labels_len = q.offset_from(self.labels.as_ptr().add(labels_start)) as usize;
            assert!(key_len <= key_room && labels_len <= labels_room);
            self.keys.set_len(key_start + key_len);
            self.labels.set_len(labels_start + labels_len);
        }
        self.rows.push(Row {
            key_start: key_start as u32,
            key_len: (self.keys.len() - key_start) as u32,
            labels_start: labels_start as u32,
            labels_len: (self.labels.len() - labels_start) as u32,
            value,
            timestamp,
        });
        n
    }
}

/// One label (value = `value` + `suffix`): with `KEYS` its key bytes at `p`
/// (name, NUL, value, NUL), and its `TimeSeries.labels` field at `q`; returns
/// both ends.
///
/// # Safety
/// With `KEYS`, `p` must be valid for name + value + 2 bytes of writes; `q`
/// for name + value + 33.
#[inline(always)]
unsafe fn write_label<const KEYS: bool>(
    p: *mut u8,
    q: *mut u8,
    name: &str,
    value: &str,
    suffix: &str,
) -> (*mut u8, *mut u8) {
    let (name, value, suffix) = (name.as_bytes(), value.as_bytes(), suffix.as_bytes());
    let value_len = value.len() + suffix.len();
    // SAFETY: the writes below stay within the bounds the caller guarantees.
    unsafe {
        let p = if KEYS {
            let mut p = put(p, name);
            *p = 0;
            p = put(p.add(1), value);
            p = put(p, suffix);
            *p = 0;
            p.add(1)
        } else {
            p
        };

        let mut q = q;
        if !name.is_empty() && value_len > 0 && name.len() + value_len <= 123 {
            // Every length fits one varint byte: `0a len 0a name_len name 12
            // value_len value`.
            let len = name.len() + value_len + 4;
            q.cast::<[u8; 4]>()
                .write_unaligned([0x0a, len as u8, 0x0a, name.len() as u8]);
            q = put(q.add(4), name);
            q.cast::<[u8; 2]>().write_unaligned([0x12, value_len as u8]);
            q = put(q.add(2), value);
            q = put(q, suffix);
        } else {
            let len = string_field_len(name.len()) + string_field_len(value_len);
            *q = 0x0a;
            q = put_varint(q.add(1), len as u64);
            if !name.is_empty() {
                *q = 0x0a;
                q = put_varint(q.add(1), name.len() as u64);
                q = put(q, name);
            }
            if value_len > 0 {
                *q = 0x12;
                q = put_varint(q.add(1), value_len as u64);
                q = put(q, value);
                q = put(q, suffix);
            }
        }
        (p, q)
    }
}

/// Copies `src` to `dst` and returns the end of the copy; the short strings of
/// label sets are copied inline (two overlapping loads and stores) instead of
/// through a `memcpy` call.
///
/// # Safety
/// `dst` must be valid for `src.len()` bytes of writes and not overlap `src`.
#[inline(always)]
unsafe fn put(dst: *mut u8, src: &[u8]) -> *mut u8 {
    let n = src.len();
    let s = src.as_ptr();
    // SAFETY: every read is within `src` and every write within
    // `dst..dst + n` (the loads and stores of 8 or 4 bytes overlap in the
    // middle; n >= 8 resp. n >= 4 where they are used).
    unsafe {
        if (8..=16).contains(&n) {
            let a = s.cast::<u64>().read_unaligned();
            let b = s.add(n - 8).cast::<u64>().read_unaligned();
            dst.cast::<u64>().write_unaligned(a);
            dst.add(n - 8).cast::<u64>().write_unaligned(b);
        } else if (4..8).contains(&n) {
            let a = s.cast::<u32>().read_unaligned();
            let b = s.add(n - 4).cast::<u32>().read_unaligned();
            dst.cast::<u32>().write_unaligned(a);
            dst.add(n - 4).cast::<u32>().write_unaligned(b);
        } else if (1..4).contains(&n) {
            *dst = *s;
            *dst.add(n / 2) = *s.add(n / 2);
            *dst.add(n - 1) = *s.add(n - 1);
        } else if n > 16 {
            std::ptr::copy_nonoverlapping(s, dst, n);
        }
        dst.add(n)
    }
}

/// Writes `v` as a varint at `dst` and returns the end.
///
/// # Safety
/// `dst` must be valid for `encoded_len_varint(v)` bytes of writes.
#[inline(always)]
unsafe fn put_varint(mut dst: *mut u8, mut v: u64) -> *mut u8 {
    // SAFETY: one byte per 7 bits of `v`, as the caller reserved.
    unsafe {
        while v >= 0x80 {
            *dst = v as u8 | 0x80;
            dst = dst.add(1);
            v >>= 7;
        }
        *dst = v as u8;
        dst.add(1)
    }
}

/// Byte-wise order of two short strings; label names usually differ in their
/// first byte, which is decided here without a `memcmp` call.
#[inline(always)]
fn compare(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    match (a.first(), b.first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// `a < b` by [`compare`].
#[inline(always)]
fn less(a: &[u8], b: &[u8]) -> bool {
    compare(a, b).is_lt()
}

/// Number of NUL bytes in `bytes`, eight at a time.
fn count_nuls(bytes: &[u8]) -> usize {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let mut chunks = bytes.chunks_exact(8);
    let mut n = 0;
    for c in &mut chunks {
        let x = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        // High bit set exactly in the bytes that are zero.
        let zero = !(((x & LOW7) + LOW7) | x | LOW7);
        // One bit per zero byte, at bit 7 of it: summing the bytes of `zero >> 7`
        // (the multiply adds them into the top byte) counts them.
        n += ((zero >> 7).wrapping_mul(0x0101_0101_0101_0101) >> 56) as usize;
    }
    n + chunks.remainder().iter().filter(|b| **b == 0).count()
}

fn extra<'a>(name: &'static str, value: &'a str) -> Special<'a> {
    Special {
        name,
        value,
        suffix: "",
        wins: false,
    }
}

/// A row being sorted: 8 bytes of its key (big-endian, from the depth the
/// rows of its run have in common) and its index, which breaks ties so equal
/// keys stay in arrival order.
#[derive(Debug, Clone, Copy)]
struct SortItem {
    prefix: u64,
    row: u32,
    /// Set by [`sort_rows`]: the key equals the previous item's (same series).
    same_as_previous: bool,
}

/// Sorts `items` by key, then by row, and flags each item whose key equals the
/// previous one's; all of their keys have the same first `depth` bytes. Each level skips the bytes the run's keys have in common, sorts
/// by the next 8 as one integer, and recurses into runs that tie, so most
/// comparisons are one integer comparison instead of a memcmp over a long common
/// prefix (label sets of one metric share `__name__` and usually several pairs).
fn sort_rows(items: &mut [SortItem], keys: &[u8], rows: &[Row], depth: usize) {
    if items.len() < 2 {
        return;
    }
    let key = |it: &SortItem| key_of(keys, &rows[it.row as usize]);
    let first = &key(&items[0])[depth..];
    let mut common = first.len();
    for it in &items[1..] {
        common = common_prefix(&first[..common], &key(it)[depth..]);
        if common == 0 {
            break;
        }
    }
    let depth = depth + common;
    let mut short = false;
    for it in items.iter_mut() {
        let k = key(it);
        let rest = &k[depth.min(k.len())..];
        let mut b = [0u8; 8];
        let n = rest.len().min(8);
        b[..n].copy_from_slice(&rest[..n]);
        short |= n < 8;
        it.prefix = u64::from_be_bytes(b);
    }
    // Zero padding keeps the order: a key that is a prefix of another sorts
    // first, and never after.
    items.sort_unstable_by(|a, b| a.prefix.cmp(&b.prefix).then(a.row.cmp(&b.row)));
    let mut i = 0;
    while i < items.len() {
        let mut j = i + 1;
        while j < items.len() && items[j].prefix == items[i].prefix {
            j += 1;
        }
        if j - i > 1 {
            let run = &mut items[i..j];
            if short {
                // A key ends within these 8 bytes: compare whole keys.
                run.sort_unstable_by(|a, b| {
                    key(a)[depth..]
                        .cmp(&key(b)[depth..])
                        .then(a.row.cmp(&b.row))
                });
                // Only here can two keys be equal: items of different runs
                // differ in their prefix.
                for k in 1..run.len() {
                    run[k].same_as_previous = key(&run[k]) == key(&run[k - 1]);
                }
            } else {
                sort_rows(run, keys, rows, depth + 8);
            }
        }
        i = j;
    }
}

/// Length of the common prefix of `a` and `b`.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().unwrap())
            ^ u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        if x != 0 {
            return i + (x.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

#[inline]
fn key_of<'k>(keys: &'k [u8], r: &Row) -> &'k [u8] {
    &keys[r.key_start as usize..][..r.key_len as usize]
}

/// One `WriteRequest.timeseries` entry whose labels are already encoded.
#[inline]
fn write_series_encoded(labels: &[u8], samples: &[Sample], out: &mut Vec<u8>) {
    let len = labels.len()
        + samples
            .iter()
            .map(|s| len_delimited(sample_len(s)))
            .sum::<usize>();
    // Tag, length (at most 10 bytes), then exactly `len` bytes.
    let room = len + 11;
    out.reserve(room);
    let start = out.len();
    // SAFETY: the writes are the tag, the varint of `len` and the `len` bytes
    // `len` was computed from, within the `room` bytes reserved; the length is
    // set to what was written, after checking it.
    unsafe {
        let base = out.as_mut_ptr().add(start);
        let mut q = base;
        *q = 0x0a;
        q = put_varint(q.add(1), len as u64);
        q = put(q, labels);
        for s in samples {
            *q = 0x12;
            q = put_varint(q.add(1), sample_len(s) as u64);
            if s.value != 0.0 {
                *q = 0x09;
                q.add(1)
                    .cast::<[u8; 8]>()
                    .write_unaligned(s.value.to_le_bytes());
                q = q.add(9);
            }
            if s.timestamp != 0 {
                *q = 0x10;
                q = put_varint(q.add(1), s.timestamp as u64);
            }
        }
        let written = q.offset_from(base) as usize;
        assert!(written <= room);
        out.set_len(start + written);
    }
}

fn write_samples(samples: &[Sample], out: &mut Vec<u8>) {
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

/// [`encode_families`] for any labels (NUL bytes included): per sample a label
/// vector, ordered and grouped by comparing labels pair by pair.
fn encode_families_general(families: &[Family], now_ms: i64, out: &mut Vec<u8>) -> usize {
    // Rows (sort key, labels, sample): sorted, then grouped per label set.
    let mut rows: Vec<GeneralRow<'_>> = Vec::new();
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
                rows.push(GeneralRow {
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
    // The order of `build`'s BTreeMap (label pairs compared one by one; a
    // NUL-separated key would not give it when values contain NUL bytes: found by
    // the remote_write fuzz target), then arrival, so samples of one series are
    // adjacent and in arrival order.
    rows.sort_unstable_by(|a, b| labels_cmp(&a.labels, &b.labels).then(a.seq.cmp(&b.seq)));
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

/// One sample of [`encode_families_general`] with its series.
struct GeneralRow<'a> {
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

fn string_field_len(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len_delimited(len)
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
    let label_len = |k: &str, v: &str| string_field_len(k.len()) + string_field_len(v.len());
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
    write_samples(samples, out);
}

/// Snappy block compression for a sink: the compressor's hash table and a
/// zeroed output buffer of the worst-case size are kept between batches, so a
/// batch neither allocates nor zeroes ~1.17x its protobuf size again (the
/// compressed body, typically a tenth of that, is what the caller copies out).
#[derive(Debug)]
pub struct Compressor {
    encoder: snap::raw::Encoder,
    scratch: Vec<u8>,
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor {
            encoder: snap::raw::Encoder::new(),
            scratch: Vec::new(),
        }
    }
}

impl Compressor {
    /// The Snappy block (same bytes as [`compress_into`]) of `proto`, borrowed
    /// from the reused buffer.
    pub fn compress(&mut self, proto: &[u8]) -> Result<&[u8], String> {
        let max = snap::raw::max_compress_len(proto.len());
        if self.scratch.len() < max {
            self.scratch.resize(max, 0);
        }
        let n = self
            .encoder
            .compress(proto, &mut self.scratch)
            .map_err(|e| format!("snappy compression: {e}"))?;
        Ok(&self.scratch[..n])
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

#[cfg(test)]
mod tests {
    use super::{common_prefix, compress_into, count_nuls, Compressor};

    #[test]
    fn compressor_writes_what_compress_into_writes() {
        let mut c = Compressor::default();
        let mut enc = snap::raw::Encoder::new();
        // Large, then smaller, then larger again: the reused buffer is longer
        // than needed the second time.
        for len in [50_000usize, 10, 0, 70_000] {
            let proto: Vec<u8> = (0..len).map(|i| (i % 251 / 7) as u8).collect();
            let mut want = Vec::new();
            compress_into(&mut enc, &proto, &mut want).unwrap();
            assert_eq!(c.compress(&proto).unwrap(), want.as_slice(), "{len}");
        }
    }

    #[test]
    fn count_nuls_counts_every_zero_byte() {
        let mut bytes = Vec::new();
        for i in 0..200u32 {
            bytes.push(if i % 7 == 0 || i % 11 == 0 {
                0
            } else {
                (i % 255) as u8 + 1
            });
            bytes.push(0x80);
            for start in 0..3 {
                let s = &bytes[start.min(bytes.len())..];
                assert_eq!(count_nuls(s), s.iter().filter(|b| **b == 0).count());
            }
        }
        assert_eq!(count_nuls(&[0; 17]), 17);
        assert_eq!(
            count_nuls(&[0x01, 0x80, 0xff, 0x7f, 0x00, 0x10, 0x01, 0x01]),
            1
        );
    }

    #[test]
    fn common_prefix_lengths() {
        let a = b"__name__\0node_benchmark_metric_1\0cluster";
        for i in 0..=a.len() {
            assert_eq!(common_prefix(a, &a[..i]), i);
            let mut b = a.to_vec();
            if i < a.len() {
                b[i] ^= 1;
                assert_eq!(common_prefix(a, &b), i);
            }
        }
    }
}
