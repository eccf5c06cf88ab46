//! Helpers shared by the integration tests: a stable text rendering of metrics (one
//! line per point) for golden files, and lookups of points by attributes.
#![allow(dead_code)]

use tfo_plugin_api::{AnyValue, Batch, DataPoint, Metric, MetricKind, PointValue, Temporality};

/// `name kind unit {k=v,...} value` per point, points in batch order. Start and
/// point times are left out (checked separately) so the golden text stays readable.
pub fn render(metrics: &[Metric]) -> String {
    let mut out = String::new();
    for m in metrics {
        let kind = match (m.kind, m.temporality, m.is_monotonic) {
            (MetricKind::Gauge, Temporality::Unspecified, false) => "gauge",
            (MetricKind::Sum, Temporality::Cumulative, true) => "counter",
            (MetricKind::Sum, Temporality::Cumulative, false) => "updown",
            other => panic!("unexpected shape {other:?} for {}", m.name),
        };
        for p in m.points.iter() {
            let attrs: Vec<String> = p
                .attributes
                .iter()
                .map(|kv| format!("{}={}", kv.key, value_text(&kv.value)))
                .collect();
            let v = match &p.value {
                PointValue::Int(i) => format!("{i}i"),
                PointValue::Double(d) => format!("{d}"),
                other => panic!("unexpected point value {other:?}"),
            };
            out.push_str(&format!(
                "{} {kind} {} {{{}}} {v}\n",
                m.name,
                m.unit,
                attrs.join(",")
            ));
        }
    }
    out
}

fn value_text(v: &AnyValue) -> String {
    match v {
        AnyValue::Str(s) => s.to_string(),
        other => format!("{other:?}"),
    }
}

/// The metric named `name`, if present.
pub fn find<'a>(metrics: &'a [Metric], name: &str) -> Option<&'a Metric> {
    metrics.iter().find(|m| m.name.as_str() == name)
}

/// True when the point has every `(key, value)` string attribute.
pub fn has_attrs(p: &DataPoint, want: &[(&str, &str)]) -> bool {
    want.iter().all(|(k, v)| {
        p.attributes
            .iter()
            .any(|kv| kv.key.as_str() == *k && kv.value == AnyValue::Str((*v).into()))
    })
}

/// The points of `name` having the given attributes.
pub fn points<'a>(metrics: &'a [Metric], name: &str, want: &[(&str, &str)]) -> Vec<&'a DataPoint> {
    find(metrics, name)
        .map(|m| m.points.iter().filter(|p| has_attrs(p, want)).collect())
        .unwrap_or_default()
}

/// The numeric value of the single point of `name` with these attributes.
pub fn value(metrics: &[Metric], name: &str, want: &[(&str, &str)]) -> f64 {
    let ps = points(metrics, name, want);
    assert_eq!(
        ps.len(),
        1,
        "{name} {want:?}: expected one point, got {ps:?}"
    );
    match ps[0].value {
        PointValue::Int(i) => i as f64,
        PointValue::Double(d) => d,
        ref other => panic!("unexpected value {other:?}"),
    }
}

/// A string attribute of a point.
pub fn attr<'a>(p: &'a DataPoint, key: &str) -> Option<&'a str> {
    p.attributes.iter().find_map(|kv| match &kv.value {
        AnyValue::Str(s) if kv.key.as_str() == key => Some(s.as_str()),
        _ => None,
    })
}

/// A resource attribute of a batch.
pub fn resource_attr<'a>(b: &'a Batch, key: &str) -> Option<&'a AnyValue> {
    b.resource
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}
