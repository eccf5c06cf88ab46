//! Remote write straight from the batch ([`Encoder::encode_batch`]), for a sink
//! without a scrape endpoint: nothing keeps the families, so the gauge and
//! counter points that need no accumulation (the bulk of a batch) are written
//! from the batch's own strings, without building a [`Family`] with an owned
//! `String` per label name and value first and reading it back. The rest
//! (histograms, summaries, attribute keys that need sanitising, a value of the
//! wrong kind, delta families, `target_info`) goes through [`convert_point`] /
//! the accumulator as in [`convert_with`](super::super::convert_with) and is
//! encoded as [`Encoder::encode`] encodes a family's point.
//!
//! What makes it cheaper per sample than convert + [`Encoder::encode`]:
//! - no owned label strings, point or family vectors (the labels are borrowed
//!   from the batch; only non-string values are formatted, into one buffer);
//! - the keys of a point are checked and put in label order once per layout:
//!   the next point with the same keys in the same order reuses that order;
//! - no sort: samples are grouped into series by a hash table on their encoded
//!   labels (a label set has one encoding), series written in order of first
//!   appearance;
//! - a gauge or counter sample is written as a whole `TimeSeries` entry at
//!   once; when no series has two samples and every row is such an entry (the
//!   usual batch), the entries back to back are the request and are handed
//!   over as they are.
//!
//! The result has the series, labels and samples `convert_with` +
//! `Accumulator::apply` + [`Encoder::encode`] write (pinned by the equivalence
//! tests, which compare the requests with their series in label order), with
//! the same `dropped` reasons in the same order: the family bookkeeping below
//! (names, runs of metrics of one family, type conflicts) is `convert_with`'s,
//! and of two samples of one series with one timestamp the one kept is the one
//! the families path keeps (families by name, then arrival).

use std::{collections::BTreeMap, hash::BuildHasher};

use tfo_plugin_api::{AnyValue, Batch, DataPoint, PointValue};

use super::{
    compare, keys_with_lifetime, len_delimited, put_varint, sample_len, string_field_len,
    with_lifetime, write_label, write_series_encoded, Encoder, Row, Sample,
};
use crate::encode::{
    convert_point, convert_points, family_kind, is_label_name, name_cmp, push_attribute_value,
    resource_labels, Family, FamilyMeta, FamilyType, Labels, NameMemo, Options, Scratch,
};

/// What [`Encoder::encode_batch`] did with a batch it encoded.
#[derive(Debug)]
pub struct Direct<P> {
    /// Number of series written.
    pub series: usize,
    /// One line per dropped metric or point, as [`convert_with`](super::super::convert_with)
    /// reports them.
    pub dropped: Vec<String>,
    /// What the accumulation of the delta families returned (their new totals,
    /// to be committed once the batch was delivered).
    pub pending: P,
}

/// A family of the batch, in order of creation.
struct DirectFamily {
    name: String,
    kind: FamilyType,
    delta: bool,
    /// Points of a delta family (accumulated before they are written); empty
    /// otherwise, those are written as they come.
    points: Vec<crate::encode::Point>,
}

impl Encoder {
    /// Appends the protobuf `WriteRequest` of `batch` to `out`: the series
    /// [`convert_with`](super::super::convert_with), `accumulate` (the sink's
    /// `Accumulator::apply`, given the batch's delta families) and
    /// [`Encoder::encode`] would write, in order of first appearance instead of
    /// label order, without building families for the points that need no
    /// accumulation. `scratch` lends and takes back the label memory of the
    /// points that are converted. When `out` is empty it may receive the
    /// encoder's buffer (and the encoder keeps `out`'s).
    ///
    /// `None` (nothing written to `out`) when the batch must take the families
    /// path instead: labels beyond `u32` offsets (4 GiB).
    pub fn encode_batch<P>(
        &mut self,
        batch: &Batch,
        opts: &Options,
        scratch: &mut Scratch,
        now_ms: i64,
        accumulate: impl FnOnce(&mut [Family]) -> P,
        out: &mut Vec<u8>,
    ) -> Option<Direct<P>> {
        scratch.start_batch();
        self.clear();
        self.groups.framed_rows = 0;
        let mut dropped = Vec::new();
        let mut text = std::mem::take(&mut self.text);
        let mut text_ends = std::mem::take(&mut self.text_ends);
        let mut layout = Layout {
            keys: keys_with_lifetime(std::mem::take(&mut self.layout_keys)),
            order: std::mem::take(&mut self.layout_order),
        };
        let mut pairs = with_lifetime(std::mem::take(&mut self.pairs));
        let (resource, target) = resource_labels(&batch.resource);
        let mut families: Vec<DirectFamily> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        if let Some(t) = &target {
            index.insert(t.meta.name.clone(), 0);
            families.push(DirectFamily {
                name: t.meta.name.clone(),
                kind: t.meta.kind,
                delta: false,
                points: Vec::new(),
            });
            let mut converted = with_lifetime(std::mem::take(&mut pairs));
            for p in &t.points {
                self.add_converted_point::<false>(
                    &t.meta.name,
                    t.meta.kind,
                    p,
                    now_ms,
                    &mut converted,
                );
            }
            pairs = with_lifetime(converted);
            self.row_family.resize(self.rows.len(), 0);
        }
        // `convert_with`'s bookkeeping: the names of the previous metric are
        // reused for a run of metrics of one name, unit and type.
        let mut memo: Option<NameMemo<'_>> = None;
        for metric in batch.metrics.iter() {
            let Some((kind, delta)) = family_kind(metric, &mut dropped) else {
                continue;
            };
            let name = metric.name.as_str();
            let names = NameMemo::for_metric(&mut memo, metric, kind, opts);
            let Some(family) = &names.family else {
                dropped.push(format!("metric {name:?}: no usable name; dropped"));
                continue;
            };
            let slot = match names.slot {
                Some(i) => i,
                None => match index.get(family.as_str()) {
                    Some(&i) => i,
                    None => {
                        index.insert(family.clone(), families.len());
                        families.push(DirectFamily {
                            name: family.clone(),
                            kind,
                            delta,
                            points: if delta {
                                scratch.point_vec()
                            } else {
                                Vec::new()
                            },
                        });
                        families.len() - 1
                    }
                },
            };
            names.slot = Some(slot);
            let f = &mut families[slot];
            if f.kind != kind || f.delta != delta {
                // Converted for the reasons of dropped points only, as
                // `convert_with` does.
                let mut points = Vec::new();
                convert_points(metric, kind, &resource, &mut points, &mut dropped, scratch);
                recycle_points(scratch, points);
                dropped.push(format!(
                    "metric {:?}: family {} is already a {}{}; dropped",
                    metric.name.as_str(),
                    f.name,
                    if f.delta { "delta " } else { "" },
                    f.kind.as_str()
                ));
                continue;
            }
            if delta {
                convert_points(
                    metric,
                    kind,
                    &resource,
                    &mut f.points,
                    &mut dropped,
                    scratch,
                );
                continue;
            }
            let family = f.name.as_str();
            let suffix = if kind == FamilyType::Counter {
                "_total"
            } else {
                ""
            };
            for p in metric.points.iter() {
                let mut borrowed = with_lifetime(std::mem::take(&mut pairs));
                let value = direct_value(kind, p).filter(|_| {
                    gather_labels(
                        p,
                        &resource,
                        &mut text,
                        &mut text_ends,
                        &mut layout,
                        &mut borrowed,
                    )
                });
                if let Some(value) = value {
                    let timestamp = match p.time_unix_nano {
                        0 => now_ms,
                        t => (t / 1_000_000) as i64,
                    };
                    self.add_framed_row(family, suffix, &borrowed, value, timestamp);
                }
                pairs = with_lifetime(borrowed);
                if value.is_none() {
                    match convert_point(p, kind, &resource, scratch) {
                        Ok(point) => {
                            let mut converted = with_lifetime(std::mem::take(&mut pairs));
                            self.add_converted_point::<false>(
                                family,
                                kind,
                                &point,
                                now_ms,
                                &mut converted,
                            );
                            pairs = with_lifetime(converted);
                            scratch.give_labels(point.labels);
                        }
                        Err(why) => {
                            dropped.push(format!(
                                "metric {:?}: point dropped: {why}",
                                metric.name.as_str()
                            ));
                        }
                    }
                }
                self.row_family.resize(self.rows.len(), slot as u32);
            }
        }
        // The delta families, accumulated, then written as families.
        let mut deltas: Vec<Family> = Vec::new();
        let mut delta_slots: Vec<u32> = Vec::new();
        for (slot, f) in families.iter_mut().enumerate() {
            if f.delta {
                delta_slots.push(slot as u32);
                deltas.push(Family {
                    meta: FamilyMeta {
                        name: f.name.clone(),
                        kind: f.kind,
                        help: String::new(),
                        unit: String::new(),
                    },
                    delta: true,
                    points: std::mem::take(&mut f.points),
                });
            }
        }
        let pending = accumulate(&mut deltas);
        for (f, slot) in deltas.iter().zip(&delta_slots) {
            let mut converted = with_lifetime(std::mem::take(&mut pairs));
            for p in &f.points {
                self.add_converted_point::<false>(
                    &f.meta.name,
                    f.meta.kind,
                    p,
                    now_ms,
                    &mut converted,
                );
            }
            pairs = with_lifetime(converted);
            self.row_family.resize(self.rows.len(), *slot);
        }
        scratch.recycle(deltas);
        self.family_ranks(&families);
        self.pairs = with_lifetime(pairs);
        self.text = text;
        self.text_ends = text_ends;
        self.layout_keys = keys_with_lifetime(layout.keys);
        self.layout_order = layout.order;
        let series = self.write_grouped(out)?;
        Some(Direct {
            series,
            dropped,
            pending,
        })
    }

    /// A row of a gauge or counter point whose labels (`pairs`, label names
    /// none of which is `__name__`, sorted, values non-empty) are merged with
    /// `__name__` = `family` + `suffix`, written as a whole `WriteRequest`
    /// entry: tag, length, labels, sample. The row points at its labels inside
    /// it, for [`Encoder::write_grouped`] when the batch has a series twice;
    /// otherwise the entries, back to back, are the request.
    fn add_framed_row(
        &mut self,
        family: &str,
        suffix: &str,
        pairs: &[(&str, &str)],
        value: f64,
        timestamp: i64,
    ) {
        // The size of a `TimeSeries.labels` field; the usual label (name and
        // value non-empty, together under 124 bytes) has one-byte lengths.
        let label_len = |n: usize, v: usize| {
            if n > 0 && v > 0 && n + v <= 123 {
                n + v + 6
            } else {
                len_delimited(string_field_len(n) + string_field_len(v))
            }
        };
        let mut labels_len = label_len(8, family.len() + suffix.len());
        for (k, v) in pairs {
            labels_len += label_len(k.len(), v.len());
        }
        let sample = Sample { value, timestamp };
        let sample_len = sample_len(&sample);
        let len = labels_len + len_delimited(sample_len);
        // Tag and length (at most 10 bytes), then exactly `len` bytes.
        let room = len + 11;
        self.labels.reserve(room);
        let start = self.labels.len();
        let labels_start;
        // SAFETY: the writes are the tag and varint of `len` and the `len`
        // bytes it was computed from (each label once, then the sample),
        // within the `room` bytes reserved; both lengths are checked before
        // the vector's length is set.
        unsafe {
            let base = self.labels.as_mut_ptr().add(start);
            *base = 0x0a;
            let mut q = put_varint(base.add(1), len as u64);
            labels_start = q.offset_from(base) as usize;
            let mut name_written = false;
            let no_key = std::ptr::null_mut();
            for (k, v) in pairs {
                if !name_written && compare(k.as_bytes(), b"__name__").is_gt() {
                    (_, q) = write_label::<false>(no_key, q, "__name__", family, suffix);
                    name_written = true;
                }
                (_, q) = write_label::<false>(no_key, q, k, v, "");
            }
            if !name_written {
                (_, q) = write_label::<false>(no_key, q, "__name__", family, suffix);
            }
            assert_eq!(q.offset_from(base) as usize - labels_start, labels_len);
            *q = 0x12;
            q = put_varint(q.add(1), sample_len as u64);
            if value != 0.0 {
                *q = 0x09;
                q.add(1)
                    .cast::<[u8; 8]>()
                    .write_unaligned(value.to_le_bytes());
                q = q.add(9);
            }
            if timestamp != 0 {
                *q = 0x10;
                q = put_varint(q.add(1), timestamp as u64);
            }
            let written = q.offset_from(base) as usize;
            assert!(written <= room && written == labels_start + len);
            self.labels.set_len(start + written);
        }
        self.rows.push(Row {
            key_start: 0,
            key_len: 0,
            labels_start: (start + labels_start) as u32,
            labels_len: labels_len as u32,
            value,
            timestamp,
        });
        self.groups.framed_rows += 1;
    }

    /// `groups.rank`: the position of each family (by index of creation) in
    /// name order, the order in which the families path adds their rows.
    fn family_ranks(&mut self, families: &[DirectFamily]) {
        let g = &mut self.groups;
        g.by_name.clear();
        g.by_name.extend(0..families.len() as u32);
        g.by_name
            .sort_unstable_by(|a, b| families[*a as usize].name.cmp(&families[*b as usize].name));
        g.rank.clear();
        g.rank.resize(families.len(), 0);
        for (r, f) in g.by_name.iter().enumerate() {
            g.rank[*f as usize] = r as u32;
        }
    }

    /// Appends one `TimeSeries` per distinct label set of the rows to `out`,
    /// in order of first appearance, and returns their number; `None` (nothing
    /// written) when the arena outgrew `u32` offsets.
    ///
    /// Rows are grouped by their encoded labels (a label set has exactly one
    /// encoding: labels sorted, unique, length-prefixed) through a hash table
    /// instead of being sorted, so a request costs a hash and a probe per
    /// sample. The samples of a series are those the families path keeps: in
    /// timestamp order, and of equal timestamps the last one in that path's
    /// row order (families by name, then arrival).
    fn write_grouped(&mut self, out: &mut Vec<u8>) -> Option<usize> {
        if self.labels.len() > u32::MAX as usize || self.rows.len() >= u32::MAX as usize {
            return None;
        }
        let Encoder {
            labels,
            rows,
            row_family,
            groups: g,
            samples,
            ..
        } = self;
        let labels_of = |r: &Row| &labels[r.labels_start as usize..][..r.labels_len as usize];
        g.table.clear();
        g.hashes.clear();
        g.first.clear();
        g.last.clear();
        g.next.clear();
        g.next.resize(rows.len(), NONE);
        let mut twice = false;
        for (i, r) in rows.iter().enumerate() {
            let bytes = labels_of(r);
            let hash = g.hasher.hash_one(bytes);
            let (first, hashes) = (&g.first, &g.hashes);
            match g.table.find(hash, |s| {
                labels_of(&rows[first[*s as usize] as usize]) == bytes
            }) {
                Some(s) => {
                    twice = true;
                    let s = *s as usize;
                    g.next[g.last[s] as usize] = i as u32;
                    g.last[s] = i as u32;
                }
                None => {
                    let s = g.first.len() as u32;
                    g.table.insert_unique(hash, s, |s| hashes[*s as usize]);
                    g.first.push(i as u32);
                    g.last.push(i as u32);
                    g.hashes.push(hash);
                }
            }
        }
        if !twice && g.framed_rows == rows.len() {
            // Every row is a whole entry and a series of its own: the arena is
            // the request (handed over whole when `out` is empty).
            if out.is_empty() {
                std::mem::swap(out, labels);
            } else {
                out.extend_from_slice(labels);
            }
            return Some(rows.len());
        }
        out.reserve(labels.len() + rows.len() * 24);
        for (s, &first) in g.first.iter().enumerate() {
            let r = &rows[first as usize];
            if g.last[s] == first {
                // The common case: one sample per series.
                write_series_encoded(
                    labels_of(r),
                    std::slice::from_ref(&Sample {
                        value: r.value,
                        timestamp: r.timestamp,
                    }),
                    out,
                );
                continue;
            }
            g.group.clear();
            let mut i = first;
            while i != NONE {
                g.group.push(i);
                i = g.next[i as usize];
            }
            // The families path's order of the rows, then stable by time: of
            // equal timestamps the last one is kept.
            let rank = &g.rank;
            g.group.sort_unstable_by_key(|i| {
                let i = *i as usize;
                (rows[i].timestamp, rank[row_family[i] as usize], i)
            });
            samples.clear();
            for i in &g.group {
                let r = &rows[*i as usize];
                let s = Sample {
                    value: r.value,
                    timestamp: r.timestamp,
                };
                match samples.last_mut() {
                    Some(last) if last.timestamp == s.timestamp => *last = s,
                    _ => samples.push(s),
                }
            }
            write_series_encoded(labels_of(r), samples, out);
        }
        Some(g.first.len())
    }
}

/// End of a series' list of rows.
const NONE: u32 = u32::MAX;

/// [`Encoder::encode_batch`]'s grouping of rows into series (kept in the
/// encoder, so a batch allocates nothing once they have grown).
#[derive(Debug, Default)]
pub(super) struct Groups {
    /// Series by the hash of their encoded labels.
    table: hashbrown::HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    /// Per series: the hash, the first and the last row.
    hashes: Vec<u64>,
    first: Vec<u32>,
    last: Vec<u32>,
    /// Per row: the next row of its series, or [`NONE`].
    next: Vec<u32>,
    /// Per family (index of creation): its rank by name.
    rank: Vec<u32>,
    /// Families sorted by name (for `rank`).
    by_name: Vec<u32>,
    /// Rows of the series being written.
    group: Vec<u32>,
    /// Rows written by [`Encoder::add_framed_row`] in this batch.
    framed_rows: usize,
}

/// The value of a gauge or counter point that can be written as it is, or
/// `None` (a value of another kind, or a family of another type: converted,
/// which reports why it is dropped).
#[inline]
fn direct_value(kind: FamilyType, p: &DataPoint) -> Option<f64> {
    match (kind, &p.value) {
        (FamilyType::Gauge | FamilyType::Counter, PointValue::Int(i)) => Some(*i as f64),
        (FamilyType::Gauge | FamilyType::Counter, PointValue::Double(d)) => Some(*d),
        _ => None,
    }
}

/// The attribute keys of the previous point [`gather_labels`] took, and the
/// order they give its labels in: points of one metric usually have the same
/// keys in the same order, whose check and sort then are not done again.
#[derive(Default)]
struct Layout<'b> {
    /// The keys, all label names; empty when there is no previous point.
    keys: Vec<&'b str>,
    /// Indices of the attributes in label order, of a repeated key the last.
    order: Vec<u32>,
}

impl Layout<'_> {
    /// Whether `attrs` has exactly these keys, in this order.
    #[inline]
    fn matches(&self, attrs: &[tfo_plugin_api::KeyValue]) -> bool {
        !self.keys.is_empty()
            && self.keys.len() == attrs.len()
            && attrs
                .iter()
                .zip(&self.keys)
                .all(|(kv, k)| same_bytes(kv.key.as_str().as_bytes(), k.as_bytes()))
    }
}

/// `a == b` for the short strings of attribute keys, without a `memcmp`
/// call: two overlapping loads per side.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap());
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap());
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// The labels `convert_with` gives a point whose attribute keys all are label
/// names, borrowed: attributes (of a repeated key the last), then the
/// resource's `job` / `instance`, which win, empty values dropped, sorted by
/// name. Values that are not strings are written into `text` (their ends in
/// `ends`). `false` (and `pairs` to be ignored) when a key is not a label name
/// as it is: the point must be converted.
///
/// The keys are checked and put in label order once per layout (`layout`):
/// a point with the previous point's keys reuses that order.
fn gather_labels<'a, 'b: 'a>(
    p: &'b DataPoint,
    resource: &'a Labels,
    text: &'a mut String,
    ends: &mut Vec<u32>,
    layout: &mut Layout<'b>,
    pairs: &mut Vec<(&'a str, &'a str)>,
) -> bool {
    let attrs = p.attributes.as_slice();
    if !layout.matches(attrs) {
        layout.keys.clear();
        layout.order.clear();
        if !attrs.iter().all(|kv| is_label_name(kv.key.as_str())) {
            return false;
        }
        layout.keys.extend(attrs.iter().map(|kv| kv.key.as_str()));
        let keys = &layout.keys;
        layout.order.extend(0..attrs.len() as u32);
        if !keys.windows(2).all(|w| name_cmp(w[0], w[1]).is_lt()) {
            // Stable: of a repeated key the last one stays (attributes are a
            // map), with the place of the first.
            layout
                .order
                .sort_by(|a, b| name_cmp(keys[*a as usize], keys[*b as usize]));
            layout.order.dedup_by(|later, earlier| {
                let same = keys[*later as usize] == keys[*earlier as usize];
                if same {
                    *earlier = *later;
                }
                same
            });
        }
    }
    text.clear();
    ends.clear();
    for &i in &layout.order {
        let v = &attrs[i as usize].value;
        if !matches!(v, AnyValue::Str(_)) {
            push_attribute_value(text, v);
            ends.push(text.len() as u32);
        }
    }
    let text: &'a str = text;
    let mut ends = ends.iter();
    let mut start = 0usize;
    pairs.clear();
    let mut any_empty = false;
    for &i in &layout.order {
        let kv = &attrs[i as usize];
        let value = match &kv.value {
            AnyValue::Str(s) => s.as_str(),
            _ => {
                let end = *ends.next().expect("one end per non-string value") as usize;
                let v = &text[start..end];
                start = end;
                v
            }
        };
        any_empty |= value.is_empty();
        pairs.push((kv.key.as_str(), value));
    }
    let attributes = pairs.len();
    for (k, v) in resource {
        match pairs[..attributes]
            .iter_mut()
            .find(|(name, _)| *name == k.as_str())
        {
            Some((_, old)) => *old = v.as_str(),
            None => pairs.push((k.as_str(), v.as_str())),
        }
    }
    let added = pairs.len() > attributes;
    if any_empty {
        pairs.retain(|(_, v)| !v.is_empty());
    }
    // Removing keeps the order; labels added at the end may break it.
    if added && !pairs.windows(2).all(|w| name_cmp(w[0].0, w[1].0).is_lt()) {
        pairs.sort_unstable_by(|a, b| name_cmp(a.0, b.0));
    }
    true
}

/// Gives the label memory of points converted only for their drop reasons back
/// to `scratch`.
fn recycle_points(scratch: &mut Scratch, points: Vec<crate::encode::Point>) {
    for p in points {
        scratch.give_labels(p.labels);
    }
}

#[cfg(test)]
mod tests {
    use super::same_bytes;

    /// Against `==` on every pair of strings of up to 20 bytes that differ in
    /// at most one byte (each position), and of different lengths.
    #[test]
    fn same_bytes_is_equality() {
        for n in 0..=20usize {
            let a: Vec<u8> = (0..n as u8).map(|i| b'a' + i).collect();
            assert!(same_bytes(&a, &a.clone()), "{n}");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same_bytes(&a, &b), "{n} {at}");
            }
            for m in 0..=20usize {
                if m != n {
                    let b: Vec<u8> = (0..m as u8).map(|i| b'a' + i).collect();
                    assert!(!same_bytes(&a, &b), "{n} {m}");
                }
            }
        }
    }
}
