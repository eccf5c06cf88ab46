//! Writing a source's next batch into the memory of one it produced earlier.
//!
//! The data model owns its strings: every point has its own attribute vector
//! and a key and a value string per attribute, so a source building a batch
//! from scratch allocates a few strings per value, and the host frees them all
//! again after the export, on another thread. The host hands exported batches
//! back to the source that asks (`Context::reclaimed_batch`, ABI 1.2): the
//! batches a receiver emitted and those a polled source's `collect` returned.
//! [`Spare`] takes such a batch apart into its
//! metrics and attribute vectors, and hands them out again with new content
//! written over the old (same strings, same capacity), so a batch shaped like
//! the previous one allocates nothing per value (docs/plugin-authoring.md,
//! "Reusing exported batches"; issue 9). Shared by the influxdb receiver and
//! the snmp source.

use tfo_plugin_api::__private::abi_stable::std_types::{RString, RVec};
use tfo_plugin_api::{AnyValue, Batch, KeyValue, Metric, MetricKind, Temporality};

/// Earlier batches taken apart for their memory: metrics without points, and
/// the attribute vectors of their points, with their strings.
#[derive(Default, Debug)]
pub struct Spare {
    metrics: Vec<Metric>,
    attributes: Vec<RVec<KeyValue>>,
}

impl Spare {
    /// Attribute vectors kept (one per point they can still hold).
    pub fn attribute_vectors(&self) -> usize {
        self.attributes.len()
    }

    /// Adds `other`'s memory.
    pub fn merge(&mut self, other: Spare) {
        self.metrics.extend(other.metrics);
        self.attributes.extend(other.attributes);
    }

    /// Takes out what is beyond `attribute_vectors` points' memory (and beyond
    /// `metrics` metrics), to be freed by the caller (outside a lock).
    pub fn split_excess(&mut self, attribute_vectors: usize, metrics: usize) -> Spare {
        Spare {
            attributes: self
                .attributes
                .split_off(attribute_vectors.min(self.attributes.len())),
            metrics: self.metrics.split_off(metrics.min(self.metrics.len())),
        }
    }

    /// Adds `batch`'s memory (its metrics and their points' attributes; spans
    /// and logs are dropped).
    pub fn take_apart(&mut self, mut batch: Batch) {
        while let Some(mut m) = batch.metrics.pop() {
            while let Some(p) = m.points.pop() {
                self.attributes.push(p.attributes);
            }
            self.metrics.push(m);
        }
    }

    /// An empty gauge named `name` with `description` and `unit`, in an
    /// earlier metric's memory (strings and points vector) if there is one.
    pub fn metric(&mut self, name: &str, description: &str, unit: &str) -> Metric {
        let Some(mut m) = self.metrics.pop() else {
            let mut m = Metric::gauge(name, unit, 0, 0.0, Vec::new());
            m.points = Default::default();
            m.description = description.into();
            return m;
        };
        set(&mut m.name, name);
        set(&mut m.description, description);
        set(&mut m.unit, unit);
        m.kind = MetricKind::Gauge;
        m.temporality = Temporality::Unspecified;
        m.is_monotonic = false;
        m
    }

    /// An attribute vector holding `pairs` as string attributes, written over
    /// an earlier point's (`None` when none is left: build one then).
    pub fn attributes_from<'a>(
        &mut self,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Option<RVec<KeyValue>> {
        let mut attrs = self.attributes.pop()?;
        overwrite_attributes(&mut attrs, pairs);
        Some(attrs)
    }

    /// An attribute vector equal to `head` followed by `tail`, written over an
    /// earlier point's (`None` when none is left).
    pub fn copy_of(&mut self, head: &[KeyValue], tail: &[KeyValue]) -> Option<RVec<KeyValue>> {
        let mut attrs = self.attributes.pop()?;
        let pairs = head.iter().chain(tail).map(|kv| match &kv.value {
            AnyValue::Str(s) => (kv.key.as_str(), Value::Str(s.as_str())),
            other => (kv.key.as_str(), Value::Other(other)),
        });
        overwrite_attributes(&mut attrs, pairs);
        Some(attrs)
    }
}

/// An attribute value to write: a string (into the old value's memory when
/// that is a string too) or any other value (cloned).
enum Value<'a> {
    Str(&'a str),
    Other(&'a AnyValue),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Str(s)
    }
}

/// Writes `pairs` into `attrs`, reusing its key and value strings (and their
/// capacity) in place; what is left over is dropped.
fn overwrite_attributes<'a, V: Into<Value<'a>>>(
    attrs: &mut RVec<KeyValue>,
    pairs: impl Iterator<Item = (&'a str, V)>,
) {
    let mut n = 0;
    for (k, v) in pairs {
        let v = v.into();
        match attrs.get_mut(n) {
            Some(kv) => {
                set(&mut kv.key, k);
                match (&mut kv.value, v) {
                    (AnyValue::Str(s), Value::Str(v)) => set(s, v),
                    (old, Value::Str(v)) => *old = AnyValue::Str(v.into()),
                    (old, Value::Other(v)) => *old = v.clone(),
                }
            }
            None => attrs.push(match v {
                Value::Str(v) => KeyValue::new(k, v),
                Value::Other(v) => KeyValue::new(k, v.clone()),
            }),
        }
        n += 1;
    }
    attrs.truncate(n);
}

/// `s` = `to`, in `s`'s memory.
fn set(s: &mut RString, to: &str) {
    s.clear();
    s.push_str(to);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfo_plugin_api::{DataPoint, PointValue};

    fn point(attrs: &[(&str, &str)]) -> DataPoint {
        DataPoint {
            attributes: attrs.iter().map(|(k, v)| KeyValue::new(*k, *v)).collect(),
            start_time_unix_nano: 0,
            time_unix_nano: 1,
            value: PointValue::Int(1),
        }
    }

    fn batch() -> Batch {
        let mut m = Metric::gauge("old", "u", 0, 0.0, Vec::new());
        m.description = "old description".into();
        m.kind = MetricKind::Sum;
        m.is_monotonic = true;
        m.points = vec![
            point(&[("a", "1"), ("b", "22")]),
            point(&[("a", "333"), ("b", "4444"), ("c", "5")]),
        ]
        .into();
        Batch {
            metrics: vec![m].into(),
            ..Batch::default()
        }
    }

    #[test]
    fn hands_out_old_memory_with_new_content() {
        let mut spare = Spare::default();
        spare.take_apart(batch());
        assert_eq!((spare.attribute_vectors(), spare.metrics.len()), (2, 1));
        let m = spare.metric("new", "", "By");
        assert_eq!(
            (m.name.as_str(), m.description.as_str(), m.unit.as_str()),
            ("new", "", "By")
        );
        assert_eq!(
            (m.kind, m.is_monotonic, m.points.len()),
            (MetricKind::Gauge, false, 0)
        );
        assert!(m.points.capacity() >= 2, "the points vector is the old one");
        let a = spare.attributes_from([("x", "y")].into_iter()).unwrap();
        assert_eq!(a.as_slice(), &[KeyValue::new("x", "y")]);
        let src = [
            KeyValue::new("k", "v"),
            KeyValue::new("n", AnyValue::Int(3)),
        ];
        let extra = KeyValue::new("info", "text");
        let b = spare.copy_of(&src, std::slice::from_ref(&extra)).unwrap();
        assert_eq!(
            b.as_slice(),
            &[src[0].clone(), src[1].clone(), extra.clone()]
        );
        assert!(spare.copy_of(&src, &[]).is_none(), "nothing left");
        assert_eq!((spare.attribute_vectors(), spare.metrics.len()), (0, 0));
        // Without spare memory a metric is built afresh, alike.
        let fresh = spare.metric("new", "d", "By");
        assert_eq!(
            (fresh.description.as_str(), fresh.kind),
            ("d", MetricKind::Gauge)
        );
    }

    #[test]
    fn overwrite_grows_shrinks_and_replaces_non_strings() {
        let mut a: RVec<KeyValue> = vec![KeyValue::new("a", AnyValue::Int(1))].into();
        overwrite_attributes(&mut a, [("k1", "v1"), ("k2", "v2")].into_iter());
        assert_eq!(
            a.as_slice(),
            &[KeyValue::new("k1", "v1"), KeyValue::new("k2", "v2")]
        );
        overwrite_attributes(&mut a, [("z", "")].into_iter());
        assert_eq!(a.as_slice(), &[KeyValue::new("z", "")]);
    }

    #[test]
    fn split_excess_keeps_what_was_asked() {
        let mut spare = Spare::default();
        spare.take_apart(batch());
        spare.take_apart(batch());
        let excess = spare.split_excess(3, 1);
        assert_eq!((spare.attribute_vectors(), spare.metrics.len()), (3, 1));
        assert_eq!((excess.attribute_vectors(), excess.metrics.len()), (1, 1));
        spare.merge(excess);
        assert_eq!(spare.attribute_vectors(), 4);
    }
}
